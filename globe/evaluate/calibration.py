"""How far to trust a consensus answer: calibration of its confidence, and selective accuracy.

A consensus run (`globe eval run --samples N`) gives every answer a `confidence` in [0, 1]
(`globe.consensus`). Two questions about it, each answered against being within 25 km (the
headline acc_25km, a row's `distance_km`):

- **Is it calibrated?** Expected calibration error over 10 equal-width bins: the gap
  |accuracy - mean confidence| of each bin, weighted by the bin's share of the rows (Guo et al. 2017). 0 = the confidence means what it says; a confidence of 1.0 falls in the last
  bin. `reliability` lists the bins, for the reliability diagram.
- **Does it rank?** The selective-accuracy curve: the accuracy of the most confident k% of the
  answers, for k = 10, 20, ..., 100. With N samples the confidence takes only N + 1 values, so
  many answers tie at the cut; the tied group then counts with its mean accuracy (the expectation
  over every order of the ties) instead of an arbitrary order deciding the figure.

Rows without a confidence (a greedy run) have no calibration: `calibration(rows)` returns None.
`globe.evaluate.calibrate.fit_run(dev_run)` fits the map from agreement to confidence
(`globe.consensus.Calibration`) that `eval.calibration` / `serve.calibration` then apply;
`ece_agreement` keeps the raw agreement's error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

TARGET_KM = 25.0
BINS = 10
COVERAGES = tuple(round(0.1 * k, 1) for k in range(1, 11))


def reliability(confidence: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of confidence: its range, rows, mean confidence and accuracy (empty bins too)."""
    conf, hit = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((conf * bins).astype(int), bins - 1)  # 1.0 belongs to the last bin
    out = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        out.append({"lo": b / bins, "hi": (b + 1) / bins, "n": n,
                    "confidence": float(conf[inside].mean()) if n else None,
                    "accuracy": float(hit[inside].mean()) if n else None})
    return out


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> float | None:
    """ECE over `bins` equal-width bins; None without rows.

    >>> expected_calibration_error([1.0, 1.0, 0.5, 0.5], [True, False, True, False])
    0.25
    """
    n = len(confidence)
    if not n:
        return None
    return float(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability(confidence, correct, bins) if b["n"]))


def selective_accuracy(confidence: Sequence[float], correct: Sequence[bool],
                       coverages: Sequence[float] = COVERAGES) -> list[dict[str, Any]]:
    """Accuracy of the most confident share `coverage` of the rows, ties at the cut by their mean.

    >>> [p["accuracy"] for p in selective_accuracy([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0], (0.25, 0.5, 1.0))]
    [1.0, 0.75, 0.5]
    """
    conf, hit = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    n = len(conf)
    out = []
    for cov in coverages:
        k = int(round(cov * n))
        if k == 0:
            out.append({"coverage": float(cov), "n": 0, "accuracy": None, "min_confidence": None})
            continue
        cut = np.sort(conf)[::-1][k - 1]  # the k-th highest confidence
        above, tied = conf > cut, conf == cut
        hits = hit[above].sum() + (k - above.sum()) * hit[tied].mean()
        out.append({"coverage": float(cov), "n": k, "accuracy": float(hits / k), "min_confidence": float(cut)})
    return out


def calibration(rows: Sequence[Mapping], target_km: float = TARGET_KM) -> dict[str, Any] | None:
    """What metrics.json gains for rows that carry `confidence` (None for a greedy run):
    `ece`, `mean_confidence`, `reliability` (the bins) and `selective_accuracy` (the curve)."""
    if not rows or not any(r.get("confidence") is not None for r in rows):
        return None
    conf = [float(r.get("confidence") or 0.0) for r in rows]  # an errored row: no answer, no confidence
    hit = hits(rows, target_km)
    out = {
        "ece": expected_calibration_error(conf, hit),
        "mean_confidence": float(np.mean(conf)),
        "reliability": reliability(conf, hit),
        "selective_accuracy": selective_accuracy(conf, hit),
    }
    if any(r.get("calibrated") for r in rows):  # what the calibration corrected: the raw agreement's error
        out["ece_agreement"] = expected_calibration_error([float(r.get("agreement") or 0.0) for r in rows], hit)
    return out


def hits(rows: Sequence[Mapping], target_km: float = TARGET_KM) -> list[bool]:
    """Per row: is the answer within `target_km` of the truth (no answer: no)."""
    return [r.get("distance_km") is not None and float(r["distance_km"]) <= target_km for r in rows]


def plot_calibration(block: Mapping[str, Any], path: Path, title: str | None = None) -> Path:
    """Reliability diagram (left) and selective-accuracy curve (right) in one PNG at `path`."""
    from matplotlib.figure import Figure

    from globe.evaluate.plots import _save

    fig = Figure(figsize=(10, 4.3), dpi=110, layout="constrained")
    left, right = fig.subplots(1, 2)
    bins = [b for b in block["reliability"] if b["n"]]
    width = 1.0 / len(block["reliability"])
    left.bar([b["lo"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge", color="#1f77b4",
             edgecolor="white", label="accuracy in bin")
    for b in bins:
        left.annotate(str(b["n"]), (b["lo"] + width / 2, b["accuracy"]), textcoords="offset points", xytext=(0, 3),
                      ha="center", fontsize=7, color="0.3")
    left.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="perfect calibration")
    what = "agreement calibrated on a dev split" if "ece_agreement" in block else "share of samples in the winning cluster"
    left.set(xlim=(0, 1), ylim=(0, 1.05), xlabel=f"confidence ({what})",
             ylabel=f"share within {TARGET_KM:g} km", title=f"reliability (ECE {block['ece']:.3f}, n per bin on bars)")
    left.legend(loc="upper left", fontsize=8)
    curve = [p for p in block["selective_accuracy"] if p["accuracy"] is not None]
    overall = curve[-1]["accuracy"]  # coverage 1.0: every answer
    right.plot([100 * p["coverage"] for p in curve], [100 * p["accuracy"] for p in curve], "o-", color="#d62728", lw=2)
    right.axhline(100 * overall, ls=":", color="0.4", lw=1, label=f"all answers ({100 * overall:.1f}%)")
    right.set(xlim=(0, 105), ylim=(0, 105), xlabel="most confident answers kept (%)",
              ylabel=f"accuracy within {TARGET_KM:g} km (%)", title="selective accuracy")
    right.legend(loc="lower left", fontsize=8)
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)
