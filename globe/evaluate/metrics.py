"""Distance and name metrics over predictions: the paper's table, computed offline and honestly.

A prediction is the model's raw `output` (read by `globe.answer.parse`), optionally with
`pred_country`/`pred_city` and coordinates (`pred_lat`, `pred_lon`) given as columns. Every row is
located twice by the one scorer (`globe.scorer.locate`):

- the headline protocol, "names" (the paper's): the answered place names (city, region and
  country, or the free-text place) geocoded offline with GeoNames (`globe.geo.resolve`; the paper
  used a commercial maps API). A row that names no place but gives coordinates is placed by those.
  Its fields: `pred_lat`, `pred_lon`, `coords_source`, `resolution` (city, landmark, feature,
  admin1, capital-fallback, centroid-fallback, coordinates, none), `resolved_place`, `distance_km`.
  `by_resolution` splits the accuracy at each threshold by resolution (`by_resolution`).
- "stated": the coordinates the answer states (or the row gives), else its names as above. Its
  fields sit under the row's `stated` key with the same names; its metrics under
  `metrics["stated"]`, with the same names as the headline ones.

Accuracy at d km is the share of *all* rows whose great-circle error (R = 6371 km) is <= d. A row
with no usable prediction has an infinite error: it is a miss at every threshold and is counted
in `n_unparsed`, never dropped. `median_km` follows the same rule: it is the median over *all*
rows with an unlocated row counted as infinitely far, i.e. the smallest d with acc_d >= 50%, and
None when half the rows or more have no location. Dropping those rows instead would make a model
that answers less look better. `mean_km` is over the located rows only (an infinite mean says
nothing), so read it next to `n_unparsed`. `globe eval run`, `eval score` and `eval compare` all
use these definitions (`breakdown.STATISTICS` for the intervals).

Country and city accuracy are reported under both rules (see `globe.scorer`): `*_string` is
GLOBE's released substring rule; `*_alias` also accepts aliases (USA = United States, Kiev =
Kyiv). `country_acc`/`city_acc` are the alias-aware ones. Their denominators are the rows that
carry a ground-truth country/city (`n_country_labels`, `n_city_labels`).
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from globe.answer import Answer, parse
from globe.faithfulness import cue_grounding, judge, wrong_reason
from globe.jsonl import json_line, json_safe
from globe.scorer import HEADLINE_PROTOCOL, Location, as_float, city_match, country_match, locate

THRESHOLDS_KM = (1, 25, 200, 750, 2500)
# What `score_rows` adds per row from `globe.faithfulness` (the prediction rows keep them too).
FAITHFULNESS_FIELDS = ("reasoning_place", "consistent", "wrong_reason", "cue_precision", "cue_recall")
# Which definition of `globe.faithfulness.supports` scored a row. Bump it when that definition
# changes: rows stamped with another rule are re-judged from their own output when read back
# (`scoring.rescore_legacy`), so a comparison or a resumed run never mixes two definitions.
# 2: an answer naming another country than the reasoning's does not support it.
FAITHFULNESS_RULE = 2
_MEAN_METRICS = {f"acc_{t}km" for t in THRESHOLDS_KM} | {
    "country_acc", "city_acc", "country_acc_string", "city_acc_string", "country_acc_alias", "city_acc_alias"}


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _match(pred: str | None, truth: str | None, fn: Callable[..., bool], **kw: Any) -> bool | None:
    if truth is None:
        return None
    return bool(pred) and fn(pred, truth, **kw)


def _location_fields(where: Location) -> dict[str, Any]:
    return {"pred_lat": where.lat, "pred_lon": where.lon, "coords_source": where.source,
            "resolution": where.resolution, "resolved_place": where.place}


def score_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One scored record per input row: parsed fields, both protocols' locations, errors and matches.

    Input keys: `lat`, `lon` (ground truth, required), optional `id`, `country`, `city`, and the
    prediction as `output` (raw model text) and/or `pred_lat`/`pred_lon`, optionally
    `pred_country`/`pred_city`. Raises ValueError naming the row when ground truth is unusable.
    """
    scored: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        lat, lon = as_float(row.get("lat")), as_float(row.get("lon"))
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"row {index}: ground truth lat/lon must be numbers in range, got "
                             f"{row.get('lat')!r}, {row.get('lon')!r}")
        output = row.get("output")
        answer = parse(output) if isinstance(output, str) else Answer()
        pred_country = _text(row.get("pred_country")) or answer.country
        pred_city = _text(row.get("pred_city")) or answer.city
        given = (as_float(row.get("pred_lat")), as_float(row.get("pred_lon")))
        named = Answer(country=pred_country, city=pred_city, lat=answer.lat, lon=answer.lon,
                       place=answer.place if pred_country == answer.country and pred_city == answer.city else None)
        headline, stated = locate(named, HEADLINE_PROTOCOL, given), locate(named, "stated", given)
        country, city = _text(row.get("country")), _text(row.get("city"))
        faith = _faithfulness(answer if isinstance(output, str) else None, named, headline, row.get("entities"))
        scored.append({
            "id": row.get("id", index),
            "lat": lat, "lon": lon, "country": country, "city": city,
            "protocol": HEADLINE_PROTOCOL,
            **_location_fields(headline),
            "stated": _location_fields(stated),
            "pred_country": pred_country, "pred_city": pred_city,
            "format_ok": answer.format_ok if isinstance(output, str) else None,
            "country_match_string": _match(pred_country, country, country_match, aliases=False),
            "country_match_alias": _match(pred_country, country, country_match, aliases=True),
            "city_match_string": _match(pred_city, city, city_match, aliases=False),
            "city_match_alias": _match(pred_city, city, lambda p, t: city_match(p, t, country, True, True)),
            **faith,
        })
    _add_distances(scored)
    for r in scored:
        r["wrong_reason"] = wrong_reason(r["consistent"], r["distance_km"])
        r["faithfulness_rule"] = FAITHFULNESS_RULE
    _add_distances([r["stated"] | {"lat": r["lat"], "lon": r["lon"]} for r in scored], into=[r["stated"] for r in scored])
    return scored


def _faithfulness(answer: Answer | None, named: Answer, where: Location, entities: Any) -> dict[str, Any]:
    """`globe.faithfulness` on one row: the reasoning's conclusion read from the model's own text,
    whether it supports the scored answer, and cue precision/recall when the image's cues are known
    (`wrong_reason` needs the distance and is added after it)."""
    if answer is None:
        return {"reasoning_place": None, "consistent": None, "cue_precision": None, "cue_recall": None}
    support = judge(Answer(think=answer.think, country=named.country, city=named.city, lat=named.lat,
                           lon=named.lon), where)
    known = list(entities) if isinstance(entities, (list, tuple)) else None
    precision, recall = cue_grounding(answer.think, known)
    return {**support.to_dict(), "cue_precision": precision, "cue_recall": recall}


def _add_distances(scored: list[dict[str, Any]], into: list[dict[str, Any]] | None = None) -> None:
    """distance_km for every row in one vectorised call (inf where nothing was located)."""
    from globe.geo import haversine_km

    into = scored if into is None else into
    located = [(r, out) for r, out in zip(scored, into) if r["pred_lat"] is not None]
    for out in into:
        out["distance_km"] = math.inf
    if located:
        d = haversine_km(np.array([r["lat"] for r, _ in located]), np.array([r["lon"] for r, _ in located]),
                         np.array([r["pred_lat"] for r, _ in located]), np.array([r["pred_lon"] for r, _ in located]))
        for (_, out), km in zip(located, np.atleast_1d(d).tolist()):
            out["distance_km"] = float(km)


def _share(values: Sequence[bool | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _distance_metrics(distances: Sequence[float | None]) -> dict[str, Any]:
    d = np.array([math.inf if x is None else x for x in distances], dtype=float)
    located = d[np.isfinite(d)]
    out: dict[str, Any] = {"n_unparsed": int(len(d) - located.size)}
    for t in THRESHOLDS_KM:
        out[f"acc_{t}km"] = float(np.mean(d <= t)) if len(d) else None
    out["median_km"] = median_km(d)
    out["mean_km"] = float(np.mean(located)) if located.size else None
    return out


def summarize(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of already scored rows (see `score_rows`); usable on any subset of them.

    The top-level distance metrics are the headline protocol's; `stated` holds the same ones
    under the stated-coordinates protocol, with where its coordinates came from."""
    out: dict[str, Any] = {"n": len(scored), "protocol": HEADLINE_PROTOCOL}
    out.update(_distance_metrics([r["distance_km"] for r in scored]))
    for field in ("country", "city"):
        for rule in ("string", "alias"):
            out[f"{field}_acc_{rule}"] = _share([r[f"{field}_match_{rule}"] for r in scored])
        out[f"{field}_acc"] = out[f"{field}_acc_alias"]
        out[f"n_{field}_labels"] = sum(1 for r in scored if r[f"{field}_match_alias"] is not None)
    out["format_ok"] = _share([r["format_ok"] for r in scored])
    out["coords_source"] = dict(sorted(Counter(r["coords_source"] for r in scored).items()))
    out["resolution"] = dict(sorted(Counter(r.get("resolution", "none") for r in scored).items()))
    out.update(faithfulness_summary(scored))
    out["by_resolution"] = by_resolution(scored)
    stated = [r.get("stated") or {} for r in scored]
    out["stated"] = {
        **_distance_metrics([s.get("distance_km", math.inf) for s in stated]),
        "coords_source": dict(sorted(Counter(s.get("coords_source", "none") for s in stated).items())),
        "by_resolution": by_resolution(stated),
    }
    return out


def mean_known(values: Sequence[float | None]) -> float | None:
    """The mean of the values that were measured (None = not measured, not zero); None if none were."""
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


def faithfulness_summary(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Whether the reasoning supports the answer, over scored rows (`globe.faithfulness`):

    - `consistency`: share of the rows whose reasoning concludes a place and whose answer names one
      (`n_consistency` of them) where the answer is the place the reasoning concludes;
    - `no_conclusion`: share of the rows whose answer names a place while their reasoning concludes
      none (not counted in `consistency`, never counted as support);
    - `wrong_reason`: share of *all* rows that are right within 25 km while the reasoning concludes
      another place;
    - `cue_precision` / `cue_recall`: mean over the rows whose image's cues are known (GeoScenes) of
      the share of named cues really in the image / of the image's cues named (for real photos,
      precision only, by a judge engine); `cue_grounding` says which.
    """
    answered = [r for r in scored if r.get("format_ok") is not None and (r.get("pred_country") or r.get("pred_city"))]
    defined = [r["consistent"] for r in scored if r.get("consistent") is not None]
    out: dict[str, Any] = {
        "consistency": _share(defined),
        "n_consistency": len(defined),
        "no_conclusion": (sum(1 for r in answered if r.get("reasoning_place") is None) / len(answered)
                          if answered else None),
        "wrong_reason": _share([bool(r.get("wrong_reason")) for r in scored]) if scored else None,
        "cue_precision": mean_known([r.get("cue_precision") for r in scored]),
        "cue_recall": mean_known([r.get("cue_recall") for r in scored]),
    }
    if out["cue_recall"] is not None:
        out["cue_grounding"] = "exact: the images' cues are known (GeoScenes)"
    elif out["cue_precision"] is not None:
        out["cue_grounding"] = "precision by a judge engine (eval.grounding_judge); recall needs every cue in the image"
    else:
        out["cue_grounding"] = "not measured: the images' cues are not known; set eval.grounding_judge for real photos"
    return out


def by_resolution(scored: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Accuracy at each threshold split by how the rows were placed (city, landmark, feature,
    admin1, capital-fallback, centroid-fallback, coordinates, none): per resolution its rows `n`,
    `hits_<t>km` (rows within t km; summed over resolutions they give the headline's hits) and
    `acc_<t>km` (the share of its own rows), so that a fallback's lucky hit shows at a glance.

    >>> by_resolution([{"resolution": "city", "distance_km": 3.0},
    ...                {"resolution": "capital-fallback", "distance_km": 0.9}])["capital-fallback"]["hits_1km"]
    1
    """
    groups: dict[str, list[float]] = {}
    for r in scored:
        d = r.get("distance_km")
        groups.setdefault(r.get("resolution") or "none", []).append(math.inf if d is None else float(d))
    out: dict[str, dict[str, Any]] = {}
    for name, distances in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        d = np.array(distances, dtype=float)
        entry: dict[str, Any] = {"n": int(d.size)}
        for t in THRESHOLDS_KM:
            hits = int(np.sum(d <= t))
            entry[f"hits_{t}km"] = hits
            entry[f"acc_{t}km"] = hits / d.size
        out[name] = entry
    return out


def median_km(distances: np.ndarray) -> float | None:
    """Median error over all rows, unlocated rows (inf) included; None when it is not finite.

    >>> median_km(np.array([1.0, 5.0, np.inf])), median_km(np.array([1.0, np.inf, np.inf]))
    (5.0, None)
    """
    if not len(distances):
        return None
    value = float(np.median(distances))
    return value if math.isfinite(value) else None


def compute_metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Score prediction rows and summarise them: n, n_unparsed, acc_1km … acc_2500km, median_km, …

    >>> m = compute_metrics([{"lat": 0.0, "lon": 0.0, "pred_lat": 0.0, "pred_lon": 0.1},
    ...                      {"lat": 0.0, "lon": 0.0, "output": "no idea"}])
    >>> m["n"], m["n_unparsed"], m["acc_1km"], m["acc_25km"]
    (2, 1, 0.0, 0.5)
    """
    return summarize(score_rows(rows))


def _indicator(scored: Sequence[Mapping[str, Any]], metric: str) -> np.ndarray:
    """Per-row values whose (nan-)mean is `metric`."""
    if metric.startswith("acc_"):
        limit = float(metric[4:-2])
        return np.array([r["distance_km"] <= limit for r in scored], dtype=float)
    field, rule = metric.split("_acc")[0], (metric.split("_acc")[1].lstrip("_") or "alias")
    return np.array([np.nan if r[f"{field}_match_{rule}"] is None else float(r[f"{field}_match_{rule}"])
                     for r in scored], dtype=float)


def bootstrap_ci(
    rows: Sequence[Mapping[str, Any]],
    metric_fn: str | Callable[[Sequence[Mapping[str, Any]]], float | None],
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float] | None:
    """Percentile bootstrap (1 - alpha) interval of a metric over scored rows (resampled with replacement).

    `metric_fn` is a metric name from `summarize` (the mean-type ones run vectorised) or any
    function of a list of scored rows. None when there are no rows or the metric is undefined.
    """
    if not rows:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(rows), size=(n, len(rows)))
    if isinstance(metric_fn, str) and metric_fn in _MEAN_METRICS:
        values = _indicator(rows, metric_fn)
        if np.isnan(values).all():
            return None
        sample = values[idx]
        counts = np.sum(~np.isnan(sample), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = np.nansum(sample, axis=1) / counts  # nan where a resample drew no labelled row
    else:
        fn = metric_fn if callable(metric_fn) else (lambda sample, key=metric_fn: summarize(sample)[key])
        stats = np.array([np.nan if (v := fn([rows[i] for i in sample])) is None else float(v) for sample in idx])
    stats = stats[np.isfinite(stats)]
    if not stats.size:
        return None
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------- predictions files


class PredictionsError(ValueError):
    """A predictions file that cannot be scored; the message names the file, the row and the column."""


REQUIRED_COLUMNS = ("id", "lat", "lon")


def _check_row(path: str, where: str, row: dict[str, Any]) -> dict[str, Any]:
    for name in ("lat", "lon"):
        value = row.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise PredictionsError(f"{path}: {where}: column {name!r} is empty (ground truth is required)")
        number = as_float(value)
        limit = 90 if name == "lat" else 180
        if number is None or not -limit <= number <= limit:
            raise PredictionsError(
                f"{path}: {where}: column {name!r} must be a number in [-{limit}, {limit}], got {value!r}")
    for name in ("pred_lat", "pred_lon"):
        value = row.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()) and as_float(value) is None:
            raise PredictionsError(f"{path}: {where}: column {name!r} must be a number or empty, got {value!r}")
    if row.get("id") is None or str(row["id"]).strip() == "":
        raise PredictionsError(f"{path}: {where}: column 'id' is empty")
    return row


def _check_columns(path: str, columns: Iterable[str], where: str) -> None:
    have = set(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in have]
    if missing:
        raise PredictionsError(f"{path}: {where}: missing column(s) {', '.join(map(repr, missing))} "
                               f"(have: {', '.join(sorted(have)) or 'none'})")
    if ("pred_lat" in have) != ("pred_lon" in have):
        raise PredictionsError(f"{path}: {where}: 'pred_lat' and 'pred_lon' come together; only one is present")
    if "pred_lat" not in have and "output" not in have:
        raise PredictionsError(f"{path}: {where}: needs a prediction: columns 'pred_lat','pred_lon' or 'output'")


def read_predictions(path: str | Any) -> list[dict[str, Any]]:
    """Rows of a predictions CSV or JSONL (by suffix: .jsonl/.json lines, else CSV), checked.

    Column names are matched case-insensitively (IM2GPS3K writes LAT/LON). Every row needs `id`,
    `lat`, `lon`; the file needs `pred_lat`+`pred_lon` or `output`. Errors name file, row and column.
    """
    import csv
    import json
    from pathlib import Path

    from globe.io import read_text_lines

    p = Path(path)
    if not p.is_file():
        raise PredictionsError(f"{p}: no such file")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    reader: Any = None
    # bounded lines, UTF-8 errors and csv errors (a field over 128 KiB) name the file and the line
    with contextlib.closing(read_text_lines(p)) as handle, _reading(p, lambda: reader):
        if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    raise PredictionsError(f"{p}: line {line_no}: not valid JSON ({exc})") from None
                if not isinstance(obj, dict):
                    raise PredictionsError(f"{p}: line {line_no}: expected a JSON object, got {type(obj).__name__}")
                row = {str(k).strip().lower(): v for k, v in obj.items()}
                _check_columns(str(p), row, f"line {line_no}")
                rows.append(_check_row(str(p), f"line {line_no}", row))
                _unique(str(p), f"line {line_no}", rows[-1], seen)
        else:
            reader = csv.DictReader(handle)
            if not reader.fieldnames:
                raise PredictionsError(f"{p}: empty file (expected a CSV header with id, lat, lon, ...)")
            _check_columns(str(p), [f.strip().lower() for f in reader.fieldnames if f], "header")
            for row_no, raw in enumerate(reader, start=1):
                row = {str(k).strip().lower(): v for k, v in raw.items() if k is not None}
                where = f"row {row_no} (line {reader.line_num})"
                rows.append(_check_row(str(p), where, row))
                _unique(str(p), where, rows[-1], seen)
    if not rows:
        raise PredictionsError(f"{p}: no prediction rows")
    return rows


@contextlib.contextmanager
def _reading(path: Any, reader: Callable[[], Any]):
    """Turn file-reading errors into PredictionsError (the CSV reader, once made, knows the line)."""
    import csv

    from globe.io import LineError

    try:
        yield
    except LineError as exc:
        raise PredictionsError(str(exc)) from None
    except csv.Error as exc:
        where = f"line {reader().line_num + 1}" if reader() is not None else "header"  # csv counts finished lines
        raise PredictionsError(f"{path}: {where}: {exc}") from None


def _unique(path: str, where: str, row: dict[str, Any], seen: dict[str, int]) -> None:
    key = str(row["id"])
    if key in seen:
        raise PredictionsError(f"{path}: {where}: duplicate id {key!r} (first at entry {seen[key]})")
    seen[key] = len(seen) + 1


def write_json_atomic(path: str | Any, obj: Any) -> None:
    """metrics.json, atomically; inf/nan become null (JSON has neither)."""
    import json

    from globe.io import atomic_write_text

    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_jsonl_atomic(path: str | Any, rows: Iterable[Any]) -> None:
    """One JSON object per line (e.g. the scored rows), atomically."""
    from globe.io import atomic_write_text

    atomic_write_text(path, "".join(json_line(json_safe(r)) + "\n" for r in rows))
