"""Per-continent and per-country breakdowns, and bootstrap 95% confidence intervals.

A headline number on 40 (or even 3,000) images moves by several points when the images change, so
every metric in `metrics.json` comes with a percentile-bootstrap interval: resample the rows with
replacement B times, recompute the metric, take the 2.5th and 97.5th percentiles. The point values
are `globe.evaluate.metrics.summarize`'s; the intervals recompute the same definitions on
resampled rows, vectorised: one B x n index matrix shared by all metrics (drawn in chunks to bound
memory), seeded, so the same predictions always give the same intervals. With the same seed the
draws equal `metrics.bootstrap_ci`'s, which recomputes one metric at a time.

The definitions follow `summarize`: accuracy at d km over all rows (no coordinates = a miss);
median error over all rows with an unlocated row counted as infinitely far (so a model that answers
less cannot look better on the median); mean error over the located rows only; country/city
accuracy over the rows that carry that label (alias-aware; `_string` for the released rule).

Each metric's statistic is looked up by its own name in `STATISTICS`, never guessed from a column
key: a resampling helper that renamed its columns (the paired branch once prefixed them with
`a:`/`b:`) would otherwise silently compute a mean where a median was meant.

Comparing two runs on the same images uses a *paired* bootstrap: the same resampled images are
applied to both runs, so the interval is for the difference itself and the per-image difficulty
that both runs share cancels out (much tighter than two independent intervals).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Callable, Mapping, Sequence

import numpy as np

from globe.evaluate.metrics import THRESHOLDS_KM, summarize

ACC_KEYS = tuple(f"acc_{t}km" for t in THRESHOLDS_KM)
NAME_KEYS = ("country_acc", "city_acc", "country_acc_string", "city_acc_string")
FAITH_KEYS = ("consistency", "wrong_reason", "cue_precision", "cue_recall")  # metrics.faithfulness_summary
CI_KEYS = (*ACC_KEYS, "median_km", "mean_km", *NAME_KEYS, *FAITH_KEYS)


def scored_view(rows: Sequence[Mapping]) -> list[dict]:
    """Rows as `summarize` wants them: `distance_km` None (JSON has no inf) back to inf."""
    return [{**r, "distance_km": math.inf if r.get("distance_km") is None else float(r["distance_km"])} for r in rows]


def _match_column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(bool(r[key])) for r in rows], dtype=float)


def row_columns(rows: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """Per-row columns whose statistic (`STATISTICS[name]`) is each metric."""
    d = np.array([np.inf if r.get("distance_km") is None else float(r["distance_km"]) for r in rows], dtype=float)
    cols: dict[str, np.ndarray] = {f"acc_{t}km": (d <= t).astype(float) for t in THRESHOLDS_KM}
    cols["median_km"] = d  # unlocated rows are infinitely far: see `metrics.median_km`
    cols["mean_km"] = np.where(np.isfinite(d), d, np.nan)
    for field in ("country", "city"):
        cols[f"{field}_acc"] = _match_column(rows, f"{field}_match_alias")
        cols[f"{field}_acc_string"] = _match_column(rows, f"{field}_match_string")
    cols["consistency"] = _match_column(rows, "consistent")
    cols["wrong_reason"] = np.array([float(bool(r.get("wrong_reason"))) for r in rows], dtype=float)
    for key in ("cue_precision", "cue_recall"):
        cols[key] = np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows], dtype=float)
    return cols


# The statistic of each metric's column (see `row_columns`). No default: an unknown name is a bug.
STATISTICS: dict[str, Callable[..., np.ndarray]] = {
    **{f"acc_{t}km": np.nanmean for t in THRESHOLDS_KM},
    "median_km": np.median,  # over all rows: the column holds inf for unlocated ones
    "mean_km": np.nanmean,
    **{name: np.nanmean for name in NAME_KEYS},
    **{name: np.nanmean for name in FAITH_KEYS},
}


def _stat(name: str, values: np.ndarray, axis: int | None = None):
    try:
        fn = STATISTICS[name]
    except KeyError:
        raise KeyError(f"no statistic defined for metric {name!r} (known: {', '.join(STATISTICS)})") from None
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-nan resample is undefined, dropped below
        return fn(values, axis=axis)


def _resampled(runs: Sequence[Mapping[str, np.ndarray]], n_boot: int, seed: int,
               chunk: int = 100) -> list[dict[str, np.ndarray]]:
    """B bootstrap replicates of every metric of every run, all drawn from the same resampled rows.

    Several runs (the paired comparison) share each index matrix, so replicate k of run A and of
    run B are the same images; every run keeps its own metric names.
    """
    n = len(next(iter(runs[0].values())))
    if any(len(v) != n for cols in runs for v in cols.values()):
        raise ValueError("resampling runs together needs the same number of rows in each")
    rng = np.random.default_rng(seed)
    reps: list[dict[str, list[np.ndarray]]] = [defaultdict(list) for _ in runs]
    means = [[name for name in cols if STATISTICS.get(name) is np.nanmean] for cols in runs]
    stacked = [(np.nan_to_num(np.stack([cols[k] for k in names], axis=1)), ~np.isnan(np.stack([cols[k] for k in names], axis=1)))
               if names else None for cols, names in zip(runs, means)]
    for start in range(0, n_boot, chunk):
        m = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(m, n))
        # how often each row was drawn in each replicate: a nan-mean is then two matrix products
        counts = np.bincount((idx + np.arange(m)[:, None] * n).ravel(), minlength=m * n).reshape(m, n).astype(float)
        for cols, out, names, stack in zip(runs, reps, means, stacked):
            if stack is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    values = (counts @ stack[0]) / (counts @ stack[1])  # nan where a replicate drew no labelled row
                for j, name in enumerate(names):
                    out[name].append(values[:, j])
            for name, values in cols.items():
                if name not in names:
                    out[name].append(_stat(name, values[idx], axis=1))
    return [{name: np.concatenate(parts) for name, parts in out.items()} for out in reps]


def _interval(samples: np.ndarray, level: float) -> list[float | None]:
    samples = samples[~np.isnan(samples)]  # undefined replicates; inf (a median beyond every row) stays
    if not samples.size:
        return [None, None]
    with np.errstate(invalid="ignore"):
        lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo) if np.isfinite(lo) else None, float(hi) if np.isfinite(hi) else None]


def bootstrap_intervals(
    rows: Sequence[Mapping], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float | None]]:
    """Percentile-bootstrap `level` interval [lo, hi] of every metric in CI_KEYS."""
    if n_boot <= 0 or not rows:
        return {}
    reps = _resampled([row_columns(rows)], n_boot, seed)[0]
    return {name: _interval(reps[name], level) for name in CI_KEYS}


def _point(cols: Mapping[str, np.ndarray], name: str) -> float | None:
    v = float(_stat(name, cols[name])) if cols[name].size else math.nan
    return v if math.isfinite(v) else None


def deltas(
    rows_a: Sequence[Mapping],
    rows_b: Sequence[Mapping],
    *,
    paired: bool,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict]:
    """B - A for every metric with a bootstrap interval of the difference.

    paired=True: `rows_a[i]` and `rows_b[i]` are the same image, resampled together.
    paired=False: the runs share no images; each is resampled on its own.
    """
    if paired and len(rows_a) != len(rows_b):
        raise ValueError(f"paired comparison needs aligned rows, got {len(rows_a)} and {len(rows_b)}")
    cols_a, cols_b = row_columns(rows_a), row_columns(rows_b)
    if paired:
        reps_a, reps_b = _resampled([cols_a, cols_b], n_boot, seed)
    else:
        reps_a, reps_b = _resampled([cols_a], n_boot, seed)[0], _resampled([cols_b], n_boot, seed + 1)[0]
    out: dict[str, dict] = {}
    for name in CI_KEYS:
        a, b = _point(cols_a, name), _point(cols_b, name)
        out[name] = {
            "a": a,
            "b": b,
            "delta": None if a is None or b is None else b - a,
            "ci": _interval(_difference(reps_b[name], reps_a[name]), level),
        }
    return out


def _difference(b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """b - a per replicate; nan (undefined) where both are inf, i.e. neither median is defined."""
    with np.errstate(invalid="ignore"):
        return b - a


def group_breakdown(
    rows: Sequence[Mapping], key_of: Callable[[Mapping], str | None], n_boot: int = 0, seed: int = 0, min_n_for_ci: int = 5
) -> dict[str, dict]:
    """`summarize` per group (`key_of(row)`), largest groups first; CIs for groups of >= min_n_for_ci."""
    groups: dict[str, list[Mapping]] = defaultdict(list)
    for row in rows:
        groups[key_of(row) or "unknown"].append(row)
    out: dict[str, dict] = {}
    for name, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        entry = summarize(scored_view(members))
        for key in ("coords_source", "resolution", "by_resolution", "protocol", "stated"):  # the headline's
            entry.pop(key, None)
        if n_boot and len(members) >= min_n_for_ci:
            entry["ci95"] = bootstrap_intervals(members, n_boot=n_boot, seed=seed)
        out[name] = entry
    return out


def continent_key(row: Mapping) -> str:
    from globe.geo import continent_of

    code = row.get("country_code")
    return continent_of(code) if code else "unknown"


def country_key(row: Mapping) -> str:
    return row.get("country_code") or "unknown"


def condition_key(row: Mapping) -> str | None:
    return row.get("condition")


def breakdowns(rows: Sequence[Mapping], n_boot: int = 200, seed: int = 0) -> dict[str, dict]:
    """`{"continent": {...}, "country": {...}, "condition": {...}}` as stored in metrics.json (CIs
    per continent and per condition; `condition` only when the test set says one, as GeoScenes do:
    where the tiny policy's reasoning stops supporting its answer is where a flag is hidden)."""
    return {
        "continent": group_breakdown(rows, continent_key, n_boot=n_boot, seed=seed),
        "country": group_breakdown(rows, country_key, n_boot=0),
        **({"condition": group_breakdown(rows, condition_key, n_boot=n_boot, seed=seed)}
           if any(r.get("condition") for r in rows) else {}),
    }
