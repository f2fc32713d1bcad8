"""Natural Earth 1:110m country polygons (public domain), shipped as package data for offline maps."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path


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
