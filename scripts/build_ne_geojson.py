"""One-off: convert Natural Earth 110m countries (public domain) into globe/geo/data/ne_110m_countries.geojson.

Run once by a maintainer; the output is committed as package data so nothing is downloaded or
converted at run time. The source shapefile ships inside the PyPI wheel of geopandas 0.14.4, and
pyshp reads it; neither is a runtime dependency of globe:

    pip download geopandas==0.14.4 pyshp --no-deps -d /tmp/gp
    cd /tmp/gp && unzip -q geopandas-0.14.4-py3-none-any.whl 'geopandas/datasets/*' -d gpx \
        && unzip -q pyshp-*.whl -d pyshp
    PYTHONPATH=/tmp/gp/pyshp python scripts/build_ne_geojson.py \
        /tmp/gp/gpx/geopandas/datasets/naturalearth_lowres/naturalearth_lowres

What it does beyond a format change: coordinates are rounded to 2 decimals (~1 km, far below what
a 110m map can show) to keep the file small; shapefile rings (outer clockwise, holes counter-
clockwise, e.g. Lesotho inside South Africa) become RFC 7946 polygons with their holes; the
NE `-99` code of Kosovo is replaced with XK/XKX (GeoNames' code), and Northern Cyprus and
Somaliland, which have no ISO code, get iso_a2 null; each feature carries the area-weighted
centroid of its largest polygon, used by globe.geo as the fallback point of a country.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pycountry
import shapefile  # pyshp, only for this script

OUT = Path(__file__).resolve().parents[1] / "globe" / "geo" / "data" / "ne_110m_countries.geojson"
FIXED_A3 = {"Kosovo": "XKX"}
FIXED_A2 = {"XKX": "XK"}


def signed_area(ring: list[tuple[float, float]]) -> float:
    """Shoelace area; positive for counter-clockwise rings."""
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))


def centroid(ring: list[tuple[float, float]]) -> tuple[float, float]:
    a = signed_area(ring)
    cx = sum((x0 + x1) * (x0 * y1 - x1 * y0) for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))
    cy = sum((y0 + y1) * (x0 * y1 - x1 * y0) for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]))
    return cx / (6 * a), cy / (6 * a)


def inside(point: tuple[float, float], ring: list[tuple[float, float]]) -> bool:
    """Ray casting point-in-polygon."""
    x, y = point
    hit = False
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1]):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            hit = not hit
    return hit


def rounded(ring: list[tuple[float, float]]) -> list[list[float]]:
    """Round to 2 decimals, drop repeated points, close the ring."""
    out: list[list[float]] = []
    for x, y in ring:
        p = [round(x, 2), round(y, 2)]
        if not out or p != out[-1]:
            out.append(p)
    if out[0] != out[-1]:
        out.append(out[0])
    return out


def polygons(shape) -> list[list[list[tuple[float, float]]]]:
    """Split a shapefile polygon into [outer, *holes] lists with RFC 7946 winding (outer CCW)."""
    bounds = list(shape.parts) + [len(shape.points)]
    rings = [[tuple(p) for p in shape.points[a:b]] for a, b in zip(bounds, bounds[1:])]
    outers = [r for r in rings if signed_area(r) < 0]  # shapefile outer rings are clockwise
    holes = [r for r in rings if signed_area(r) > 0]
    polys = [[r[::-1]] for r in outers]
    for hole in holes:
        owner = next((p for p in polys if inside(hole[0], p[0])), None)
        if owner is not None:
            owner.append(hole[::-1])
    return polys


def main(source: str) -> None:
    reader = shapefile.Reader(source)
    features = []
    for rec, shape in zip(reader.records(), reader.shapes()):
        props = rec.as_dict()
        a3 = FIXED_A3.get(props["name"], props["iso_a3"])
        country = pycountry.countries.get(alpha_3=a3)
        a2 = country.alpha_2 if country else FIXED_A2.get(a3)
        polys = polygons(shape)
        largest = max(polys, key=lambda p: abs(signed_area(p[0])))
        cx, cy = centroid(largest[0])
        coords = [[rounded(r) for r in p] for p in polys]
        coords = [[r for r in p if len(r) >= 4] for p in coords]
        coords = [p for p in coords if p]
        geometry = (
            {"type": "Polygon", "coordinates": coords[0]}
            if len(coords) == 1
            else {"type": "MultiPolygon", "coordinates": coords}
        )
        features.append({
            "type": "Feature",
            "properties": {
                "name": props["name"],
                "iso_a2": a2,
                "iso_a3": a3 if (country or a2) else None,
                "continent": props["continent"],
                "centroid_lat": round(cy, 2),
                "centroid_lon": round(cx, 2),
            },
            "geometry": geometry,
        })
    collection = {
        "type": "FeatureCollection",
        "name": "ne_110m_countries",
        "source": "Natural Earth 1:110m Admin 0 countries (public domain), via geopandas 0.14.4 naturalearth_lowres",
        "features": features,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(collection, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {len(features)} countries)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gp/gpx/geopandas/datasets/naturalearth_lowres/naturalearth_lowres")
