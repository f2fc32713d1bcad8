"""Natural Earth 1:110m country polygons (public domain), shipped as package data for offline maps.

One reader of the outlines (`land_rings`) draws every map: the evaluation report's world map
(matplotlib, globe/evaluate/plots.py) and the served demo page's (`land_svg`, an SVG path), both
in the plate carrée (equirectangular) projection, so nothing is fetched from a tile server or CDN.
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib.resources import files
from pathlib import Path

import numpy as np

SVG_WIDTH, SVG_HEIGHT = 360, 180  # the demo map's viewBox: one unit per degree


def land_geojson_path() -> Path:
    """Path of the bundled GeoJSON FeatureCollection (properties: name, iso_a2, iso_a3, continent)."""
    return Path(str(files("globe.geo") / "data" / "ne_110m_countries.geojson"))


@cache
def land_centroids() -> dict[str, tuple[float, float]]:
    """ISO alpha-2 -> (lat, lon) centroid of the country's largest polygon."""
    data = json.loads(land_geojson_path().read_text(encoding="utf-8"))
    return {
        f["properties"]["iso_a2"]: (f["properties"]["centroid_lat"], f["properties"]["centroid_lon"])
        for f in data["features"]
        if f["properties"].get("iso_a2")
    }


@lru_cache(maxsize=2)
def land_rings(geojson_path: str) -> tuple[np.ndarray, ...]:
    """Exterior and hole rings (N x 2 lon/lat arrays) of every polygon in a GeoJSON file."""
    data = json.loads(Path(geojson_path).read_text(encoding="utf-8"))
    features = data.get("features", [data]) if isinstance(data, dict) else []
    rings: list[np.ndarray] = []
    for feature in features:
        geom = feature.get("geometry") or feature
        kind, coords = geom.get("type"), geom.get("coordinates") or []
        polygons = [coords] if kind == "Polygon" else coords if kind == "MultiPolygon" else []
        for polygon in polygons:
            rings.extend(np.asarray(ring, dtype=float)[:, :2] for ring in polygon if len(ring) >= 3)
    return tuple(rings)


def project(lat: float, lon: float) -> tuple[float, float]:
    """(x, y) of a point on the `land_svg` map: x = lon + 180, y = 90 - lat (plate carrée).
    The demo page places its markers with the same two lines of arithmetic."""
    return lon + SVG_WIDTH / 2, SVG_HEIGHT / 2 - lat


@cache
def land_svg(fill: str = "#e6e0cf", stroke: str = "#8d8d8d") -> str:
    """The land as one standalone SVG document (viewBox 0 0 360 180, `project`'s coordinates).

    Coordinates are rounded to 0.1 degree (about 11 km, far below what 1:110m outlines resolve)
    and written relative to the previous point, tersely, which keeps the file near 65 KB; it is built once
    per process. Holes draw with `fill-rule="evenodd"`."""
    parts: list[str] = []
    for ring in land_rings(str(land_geojson_path())):
        x = np.round((ring[:, 0] + SVG_WIDTH / 2) * 10).astype(int)
        y = np.round((SVG_HEIGHT / 2 - ring[:, 1]) * 10).astype(int)
        dx, dy = np.diff(x), np.diff(y)
        keep = (dx != 0) | (dy != 0)
        steps = _numbers(np.stack([dx[keep], dy[keep]], axis=1).ravel())
        parts.append(f"M{_numbers(np.array([x[0], y[0]]))}l{steps}z")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {SVG_WIDTH} {SVG_HEIGHT}" '
            f'width="{SVG_WIDTH * 4}" height="{SVG_HEIGHT * 4}">'
            f'<rect width="{SVG_WIDTH}" height="{SVG_HEIGHT}" fill="#dcecf7"/>'
            f'<path fill="{fill}" fill-rule="evenodd" stroke="{stroke}" stroke-width="0.15" '
            f'stroke-linejoin="round" d="{"".join(parts)}"/></svg>')


def _numbers(tenths: np.ndarray) -> str:
    """Integers in tenths as SVG path numbers: `12 -.3 .5` is written `12-.3 .5` (SVG's grammar
    lets a sign or a leading dot end the previous number)."""
    out = []
    for v in tenths.tolist():
        text = f"{v / 10:g}".replace("0.", ".", 1) if abs(v) < 10 else f"{v / 10:g}"
        out.append(text if not out or text[0] == "-" else " " + text)
    return "".join(out)
