"""One-off: Natural Earth 1:10m named natural features -> globe/geo/data/ne_features.json.

Run by a maintainer; the output is committed as package data (the features are public domain,
see ../shared/data/SOURCE.md), so nothing is converted at run time:

    python scripts/build_ne_features.py [../shared/data/natural_earth]

Inputs (martynafford/natural-earth-geojson, commit 0b9a6ceb0a7032713abd9460ac1e995a9c60cd1e, a
direct conversion of the Natural Earth shapefiles):
  ne_10m_geography_regions_elevation_points   mountains, spot elevations, depressions, passes
  ne_10m_geography_regions_points             islands, capes, waterfalls
  ne_10m_parks_and_protected_lands_point      US National Park Service units as points
  ne_10m_parks_and_protected_lands_area       the same units as polygons (61 of them)

Each feature becomes [name, kind, lat, lon, scalerank]; names are kept as Natural Earth writes
them ("Mt. Blanc", "Yosemite NP", "Uluru/Ayers Rock"): globe.geo.features expands the
abbreviations when it reads them. A park with a polygon is placed at the polygon's
representative point (the middle of the widest stretch of the largest part along the horizontal
line through its bounding box's middle, as shapely's representative_point does), which always
lies inside the park, instead of Natural Earth's label point. Coordinates are rounded to 4
decimals (~10 m). Features without a name are dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "globe" / "geo" / "data" / "ne_features.json"
SOURCE = ("Natural Earth 1:10m (public domain), via martynafford/natural-earth-geojson "
          "0b9a6ceb0a7032713abd9460ac1e995a9c60cd1e; built by scripts/build_ne_features.py")


def ring_area(ring: list[list[float]]) -> float:
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0, *_), (x1, y1, *_) in zip(ring, ring[1:] + ring[:1])))


def representative_point(geometry: dict) -> tuple[float, float]:
    """(lat, lon) inside the largest part of a (Multi)Polygon: the midpoint of the widest segment
    of the horizontal line through the middle of its bounding box (holes are excluded)."""
    polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    rings = max(polygons, key=lambda rs: ring_area(rs[0]))
    ys = [p[1] for p in rings[0]]
    y = (min(ys) + max(ys)) / 2
    if any(p[1] == y for r in rings for p in r):  # avoid passing exactly through a vertex
        y += 1e-9
    xs = []
    for ring in rings:
        for (x0, y0, *_), (x1, y1, *_) in zip(ring, ring[1:] + ring[:1]):
            if (y0 > y) != (y1 > y):
                xs.append(x0 + (y - y0) * (x1 - x0) / (y1 - y0))
    xs.sort()
    segments = [(xs[i], xs[i + 1]) for i in range(0, len(xs) - 1, 2)]
    a, b = max(segments, key=lambda s: s[1] - s[0])
    return y, (a + b) / 2


def main(folder: Path) -> None:
    features: list[list] = []
    polygons: dict[str, tuple[float, float]] = {}
    for f in json.loads((folder / "ne_10m_parks_and_protected_lands_area.geojson").read_text())["features"]:
        polygons[f["properties"]["unit_code"]] = representative_point(f["geometry"])
    for name in ("ne_10m_geography_regions_elevation_points", "ne_10m_geography_regions_points"):
        for f in json.loads((folder / f"{name}.geojson").read_text())["features"]:
            p = f["properties"]
            if not p.get("name"):
                continue
            lon, lat = f["geometry"]["coordinates"][:2]
            names = [p["name"]] + ([p["name_alt"]] if p.get("name_alt") else [])
            for n in names:
                features.append([n.strip().rstrip(","), p["featurecla"], round(lat, 4), round(lon, 4), p.get("scalerank")])
    seen = set()
    for f in json.loads((folder / "ne_10m_parks_and_protected_lands_point.geojson").read_text())["features"]:
        p = f["properties"]
        lon, lat = f["geometry"]["coordinates"][:2]
        lat, lon = polygons.get(p["unit_code"], (lat, lon))
        seen.add(p["unit_code"])
        features.append([p["unit_name"], "park", round(lat, 4), round(lon, 4), p.get("scalerank")])
    for f in json.loads((folder / "ne_10m_parks_and_protected_lands_area.geojson").read_text())["features"]:
        p = f["properties"]
        if p["unit_code"] not in seen:
            lat, lon = polygons[p["unit_code"]]
            features.append([p["unit_name"], "park", round(lat, 4), round(lon, 4), p.get("scalerank")])
    OUT.write_text(json.dumps({"source": SOURCE, "fields": ["name", "kind", "lat", "lon", "scalerank"],
                               "features": features}, ensure_ascii=False, separators=(",", ":")) + "\n",
                   encoding="utf-8")
    print(f"wrote {OUT} ({len(features)} features, {OUT.stat().st_size / 1024:.0f} KiB, {len(polygons)} from polygons)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "natural_earth")
