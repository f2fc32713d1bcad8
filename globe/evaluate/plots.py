"""The two evaluation plots, drawn offline with matplotlib.

1. Accuracy against distance: the share of images whose error is within d km, for d on a log axis
   from 1 to 20,000 km (half the Earth's circumference is ~20,015 km, so the curve reaches 1.0 for
   every parsed answer). The paper's five thresholds 1/25/200/750/2500 km (street, city, region,
   country, continent) are marked with their values, so the curve and the table can be read together.
   Unparsed answers have an infinite error: they pull the whole curve down instead of vanishing.
2. A world map of ground truth against predictions, with the error drawn as a great-circle arc
   (split where it crosses the antimeridian; at most `MAX_ARCS` of them, evenly spread, so the
   drawing does not grow with the run), over Natural Earth 1:110m land polygons stored as
   GeoJSON in the package. cartopy and plotly fetch map data at run time, which fails offline.

Only `matplotlib.figure.Figure` is used (no pyplot), so plotting never touches a GUI backend or
global state and is safe in worker threads and KFP containers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from globe.geo.maps import land_rings

THRESHOLDS_KM = (1, 25, 200, 750, 2500)
THRESHOLD_NAMES = {1: "street", 25: "city", 200: "region", 750: "country", 2500: "continent"}
CURVE_MIN_KM, CURVE_MAX_KM = 1.0, 20_000.0
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
GT_COLOR, PRED_COLOR, ERROR_COLOR = "#1a9850", "#d7301f", "#6a51a3"
MAX_ARCS = 2000  # beyond this the arcs are a solid wash at the lowest alpha; an even subset keeps the map's cost fixed


def accuracy_curve(distances_km: Sequence[float], points: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(d, share of errors <= d) on a log grid from 1 to 20,000 km; NaN/None count as misses."""
    d = np.asarray([np.inf if v is None else v for v in distances_km], dtype=float)
    d = np.where(np.isnan(d), np.inf, d)
    grid = np.geomspace(CURVE_MIN_KM, CURVE_MAX_KM, points)
    grid = np.union1d(grid, np.asarray(THRESHOLDS_KM, dtype=float))
    if d.size == 0:
        return grid, np.zeros_like(grid)
    sorted_d = np.sort(d)
    return grid, np.searchsorted(sorted_d, grid, side="right") / d.size


def plot_accuracy_curve(curves: Mapping[str, Sequence[float]], path: Path, title: str | None = None) -> Path:
    """Draw one accuracy-vs-distance curve per run label and save a PNG at `path`."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(7.5, 4.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for i, (label, distances) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        x, y = accuracy_curve(distances)
        n = len(distances)
        ax.plot(x, 100 * y, color=color, lw=2.2, label=f"{label} (n={n})")
        marks = np.asarray(THRESHOLDS_KM, dtype=float)
        at = np.interp(marks, x, y)
        ax.plot(marks, 100 * at, "o", color=color, ms=6)
        if len(curves) == 1:
            for m, v in zip(marks, at):
                ax.annotate(f"{100 * v:.1f}%", (m, 100 * v), textcoords="offset points", xytext=(-6, 9), ha="right",
                            fontsize=9, color=color, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    for km in THRESHOLDS_KM:
        ax.axvline(km, color="0.55", ls=":", lw=1)
        ax.text(km, 101.5, f"{km:g} km\n{THRESHOLD_NAMES[km]}", ha="center", va="bottom", fontsize=8, color="0.3")
    ax.set_xscale("log")
    ax.set_xlim(CURVE_MIN_KM, CURVE_MAX_KM)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylim(0, 100)
    ax.set_xlabel("great-circle error d (km, log scale)")
    ax.set_ylabel("images within d (%)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def great_circle_paths(lat1, lon1, lat2, lon2, steps: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """All arcs as one (lon, lat) polyline with NaN breaks between arcs and at antimeridian jumps.

    Spherical linear interpolation between the two unit vectors, vectorised over all pairs, so a
    map of 12,000 predictions is one `plot` call.
    """
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(a, dtype=float)) for a in (lat1, lon1, lat2, lon2))
    if lat1.size == 0:
        return np.array([]), np.array([])

    def unit(lat, lon):
        return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)

    a, b = unit(lat1, lon1), unit(lat2, lon2)
    omega = np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0))[:, None]
    t = np.linspace(0.0, 1.0, steps)[None, :]
    sin_omega = np.sin(omega)
    safe = np.where(sin_omega < 1e-9, 1.0, sin_omega)
    wa = np.where(sin_omega < 1e-9, 1 - t, np.sin((1 - t) * omega) / safe)
    wb = np.where(sin_omega < 1e-9, t, np.sin(t * omega) / safe)
    p = wa[..., None] * a[:, None, :] + wb[..., None] * b[:, None, :]
    lon = np.degrees(np.arctan2(p[..., 1], p[..., 0]))
    lat = np.degrees(np.arcsin(np.clip(p[..., 2] / np.linalg.norm(p, axis=-1), -1, 1)))
    jump = np.abs(np.diff(lon, axis=1)) > 180
    lon[:, 1:][jump] = np.nan  # break the line where it wraps around the map edge
    pad = np.full((lon.shape[0], 1), np.nan)
    return np.hstack([lon, pad]).ravel(), np.hstack([lat, pad]).ravel()


def plot_world_map(
    gt_lat: Sequence[float],
    gt_lon: Sequence[float],
    pred_lat: Sequence[float | None],
    pred_lon: Sequence[float | None],
    path: Path,
    land_geojson: Path | None = None,
    title: str | None = None,
) -> Path:
    """Ground truth (green dots) vs predictions (red crosses) joined by great-circle error arcs."""
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    if land_geojson is None:
        from globe.geo import land_geojson_path

        land_geojson = land_geojson_path()
    gt_lat, gt_lon = np.asarray(gt_lat, dtype=float), np.asarray(gt_lon, dtype=float)
    p_lat = np.asarray([np.nan if v is None else v for v in pred_lat], dtype=float)
    p_lon = np.asarray([np.nan if v is None else v for v in pred_lon], dtype=float)
    has_pred = np.isfinite(p_lat) & np.isfinite(p_lon)

    fig = Figure(figsize=(11, 5.9), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("#dcecf7")
    ax.add_collection(PolyCollection(land_rings(str(land_geojson)), facecolor="#f3efe4", edgecolor="#9c9c9c", linewidths=0.4, zorder=1))
    arcs = np.flatnonzero(has_pred)
    shown = arcs[np.linspace(0, arcs.size - 1, MAX_ARCS).round().astype(int)] if arcs.size > MAX_ARCS else arcs
    xs, ys = great_circle_paths(gt_lat[shown], gt_lon[shown], p_lat[shown], p_lon[shown])
    alpha = float(np.clip(30 / max(shown.size, 1), 0.08, 0.7))
    ax.plot(xs, ys, color=ERROR_COLOR, lw=0.9, alpha=alpha, zorder=2,
            label="error (great circle)" if shown.size == arcs.size else f"error (great circle), {shown.size:,} of {arcs.size:,} shown")
    size = float(np.clip(600 / max(len(gt_lat), 1), 4, 30))
    ax.scatter(gt_lon, gt_lat, s=size, c=GT_COLOR, edgecolors="white", linewidths=0.4, zorder=3, label=f"ground truth (n={len(gt_lat)})")
    ax.scatter(p_lon[has_pred], p_lat[has_pred], s=size * 1.3, c=PRED_COLOR, marker="x", linewidths=1.0, zorder=4,
               label=f"prediction (n={int(has_pred.sum())}; {int((~has_pred).sum())} without coordinates)")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.tick_params(labelsize=8)
    ax.grid(True, color="white", lw=0.5, alpha=0.6)
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=11)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write the PNG atomically so a killed run never leaves a half-written plot behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path
