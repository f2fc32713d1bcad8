"""Turn engine results into scored prediction rows, with the shared scorer.

Every row is scored by `globe.evaluate.metrics.score_rows`, the same code behind
`globe eval score`, so the harness and a re-score of its `predictions.jsonl` cannot disagree.
This module only adds what the harness knows and the scorer does not: the image, the label source,
the ISO country of the ground truth (for the breakdowns), the parsed reasoning, engine errors and
latency, and, for a served `globe` predictor, the predictor's own coordinates (given to the scorer,
so they count under the stated protocol) and the predictor's name for their source.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from globe.evaluate.benchmarks import Sample


def _predictor_fields(text: str) -> tuple[dict[str, Any], str | None]:
    """(scorer inputs, raw model text) from a predictor JSON document."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {"output": text}, text
    if not isinstance(doc, dict):
        return {"output": text}, text
    raw = doc.get("raw") if isinstance(doc.get("raw"), str) else None
    fields: dict[str, Any] = {"output": raw or "", "pred_country": doc.get("country"), "pred_city": doc.get("city")}
    if doc.get("lat") is not None and doc.get("lon") is not None:
        # the predictor's coordinates are "given" to the scorer: the stated protocol uses them,
        # the headline geocodes the names like for any other engine; their own source is kept
        fields["pred_lat"], fields["pred_lon"] = doc["lat"], doc["lon"]
        fields["_predictor_source"] = ":".join(str(x) for x in (doc.get("coords_source"), doc.get("resolution")) if x)
    return fields, raw


def score_batch(
    samples: Sequence[Sample],
    texts: Sequence[str | None],
    errors: Sequence[str | None],
    latencies: Sequence[float],
    returns_json: bool = False,
) -> list[dict[str, Any]]:
    """One JSON-ready prediction row per sample (ground truth, output, answer, coordinates, distance)."""
    from globe.answer import parse
    from globe.evaluate.metrics import score_rows
    from globe.jsonl import json_safe

    inputs, raws, sources = [], [], []
    for s, text, error in zip(samples, texts, errors):
        row: dict[str, Any] = {"id": s.id, "lat": s.lat, "lon": s.lon, "country": s.country, "city": s.city}
        raw = text
        if text is not None and error is None and returns_json:
            fields, raw = _predictor_fields(text)
            row.update(fields)
        elif text is not None and error is None:
            row["output"] = text
        sources.append(row.pop("_predictor_source", None))
        inputs.append(row)
        raws.append(raw if error is None else None)
    scored = score_rows(inputs)
    out = []
    for s, sc, raw, error, latency, source in zip(samples, scored, raws, errors, latencies, sources):
        answer = parse(raw) if raw else None
        distance = sc["distance_km"]
        out.append({
            "id": s.id,
            "image": s.image,
            "lat": s.lat,
            "lon": s.lon,
            "country_code": s.country_code,
            "country": s.country,
            "city": s.city,
            "label_source": s.label_source,
            "output": raw,
            "error": error,
            "answer": None if answer is None else {
                "think": answer.think, "country": answer.country, "city": answer.city, "lat": answer.lat,
                "lon": answer.lon, "localizable": answer.localizable, "format_ok": answer.format_ok,
                "source": answer.source,
            },
            "pred_country": sc["pred_country"],
            "pred_city": sc["pred_city"],
            "protocol": sc["protocol"],
            "pred_lat": sc["pred_lat"],
            "pred_lon": sc["pred_lon"],
            "coords_source": sc["coords_source"],
            "resolution": sc["resolution"],
            "resolved_place": sc["resolved_place"],
            "distance_km": distance if math.isfinite(distance) else None,
            "stated": json_safe(sc["stated"]),
            **({"predictor_coords_source": source} if source else {}),
            "format_ok": sc["format_ok"],
            "country_match_string": sc["country_match_string"],
            "country_match_alias": sc["country_match_alias"],
            "city_match_string": sc["city_match_string"],
            "city_match_alias": sc["city_match_alias"],
            "latency_s": round(float(latency), 4),
        })
    return out


def headline_metrics(rows: Sequence[dict]) -> dict[str, Any]:
    """`metrics.summarize` over the rows plus the number of engine/image errors (already misses)."""
    from globe.evaluate.breakdown import scored_view
    from globe.evaluate.metrics import summarize
    from globe.jsonl import json_safe

    metrics = summarize(scored_view(rows))
    metrics["n_errors"] = sum(1 for r in rows if r.get("error"))
    return json_safe(metrics)


def rescore_legacy(rows: Sequence[dict]) -> list[dict]:
    """Rows written before both protocols existed (no `protocol` key: their `distance_km` used the
    model's stated coordinates first), re-located by the current scorer from their own output, so
    that `globe eval compare` never sets one protocol against the other. Current rows pass as is."""
    from globe.evaluate.metrics import score_rows
    from globe.jsonl import json_safe

    old = [i for i, r in enumerate(rows) if "protocol" not in r]
    if not old:
        return list(rows)
    inputs = []
    for i in old:
        r = rows[i]
        given = str(r.get("coords_source") or "").startswith("predictor:")
        inputs.append({"id": r["id"], "lat": r["lat"], "lon": r["lon"], "country": r.get("country"),
                       "city": r.get("city"), "output": r.get("output") or "",
                       "pred_country": r.get("pred_country"), "pred_city": r.get("pred_city"),
                       **({"pred_lat": r.get("pred_lat"), "pred_lon": r.get("pred_lon")} if given else {})})
    out = list(rows)
    for i, sc in zip(old, score_rows(inputs)):
        keep = ("protocol", "pred_lat", "pred_lon", "coords_source", "resolution", "resolved_place", "distance_km", "stated")
        out[i] = {**rows[i], **json_safe({k: sc[k] for k in keep})}
    return out
