"""Natural features in the offline geocoder: Natural Earth peaks, waterfalls, islands, capes, US parks."""

from __future__ import annotations

import json

import pytest

from globe.geo import haversine_km, resolve
from globe.geo.features import feature_key, features, lookup

# (query, true lat, true lon, km): where the feature is, from any atlas; a park's point is its
# polygon's representative point, so the tolerance is about the park's size.
FEATURES = [
    ("Iguazu Falls", -25.69, -54.44, 25),
    ("Mont Blanc", 45.833, 6.865, 2),
    ("Mt. Blanc, France", 45.833, 6.865, 2),
    ("Uluru, Northern Territory, Australia", -25.345, 131.036, 2),
    ("Ayers Rock", -25.345, 131.036, 2),
    ("Grossglockner High Alpine Road, Austria", 47.074, 12.695, 2),
    ("Yosemite National Park, California, USA", 37.75, -119.59, 25),
    ("Yosemite NP", 37.75, -119.59, 25),
    ("Yosemite N.P.", 37.75, -119.59, 25),
    ("Mt. Rainier N.P.", 46.85, -121.76, 10),
    ("Zion National Park", 37.30, -113.03, 25),  # not Zion, Illinois
    ("Death Valley National Park", 36.5, -117.08, 40),
    ("Mount Olympus, Greece", 40.085, 22.358, 5),
    ("Mount Olympus, Washington", 47.80, -123.71, 5),
    ("Mount Fuji, Japan", 35.363, 138.731, 2),  # Natural Earth writes "Fuji"; Fuji the city is ~25 km away
    ("Yellowstone National Park, Wyoming", 44.6, -110.5, 40),  # no Wyoming town within 100 km of its point
    ("Aconcagua, Argentina", -32.653, -70.011, 2),  # on the border; the nearest Argentine town is 112 km off
    ("Mount Rushmore", 43.879, -103.459, 5),  # a national memorial by its bare name
]


@pytest.mark.parametrize("query,lat,lon,km", FEATURES)
def test_named_features_are_placed(query, lat, lon, km):
    found = resolve(query)
    assert found is not None and found.how == "feature", found
    assert found.place.approximate == "feature"
    assert haversine_km(found.place.lat, found.place.lon, lat, lon) <= km


@pytest.mark.parametrize(
    ("query", "how"),
    [
        ("Fort Vancouver, Vancouver, WA", "city"),  # a city resolves: no feature
        ("Niagara Falls", "city"),  # the city of that name
        ("Kilimanjaro, Tanzania", "admin1"),  # the region of that name
        ("Kilimanjaro Airport, Tanzania", "admin1"),  # a region named inside a part is not a feature
        ("Kilimanjaro National Park", "admin1"),  # nor inside a park's name Natural Earth does not list
        ("Paris", "city"),
    ],
)
def test_a_city_or_region_that_resolves_wins(query, how):
    assert resolve(query).how == how


def test_features_obey_the_other_parts_and_ambiguity():
    assert resolve("Yosemite, Texas") is None or resolve("Yosemite, Texas").how != "feature"
    assert resolve("Olympus") is None  # three peaks of that name: which one needs a country
    found = resolve("Olympic Stadium")  # a park's bare name is not found inside a longer name
    assert found is None or found.how != "feature"


def test_abbreviations_expand_on_both_sides():
    assert feature_key("Mt. Blanc") == feature_key("Mont Blanc") == feature_key("Mount Blanc")
    assert feature_key("Yosemite NP") == feature_key("Yosemite N.P.") == feature_key("Yosemite National Park")
    assert feature_key("Baldy Mt.") == "baldy mountain" and feature_key("Borah Pk.") == "borah peak"
    assert lookup("Canyon de Chelly National Monument") and lookup("Great Sand Dunes National Park and Preserve")


def test_vendored_data_is_sane():
    fs = features()
    assert len(fs) > 1000 and all(f.name and -90 <= f.lat <= 90 and -180 <= f.lon <= 180 for f in fs)
    kinds = {f.kind for f in fs}
    assert {"mountain", "waterfall", "island", "cape", "park"} <= kinds


def _inside(lon, lat, rings):
    inside = False
    for ring in rings:
        for (x0, y0, *_), (x1, y1, *_) in zip(ring, ring[1:] + ring[:1]):
            if (y0 > lat) != (y1 > lat) and lon < x0 + (lat - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
    return inside


def test_parks_sit_inside_their_polygons(shared_data):
    path = shared_data / "natural_earth" / "ne_10m_parks_and_protected_lands_area.geojson"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    by_name = {f.name: f for f in features() if f.kind == "park"}
    outside = []
    for feat in json.loads(path.read_text())["features"]:
        f = by_name[feat["properties"]["unit_name"]]
        geom = feat["geometry"]
        polys = geom["coordinates"] if geom["type"] == "MultiPolygon" else [geom["coordinates"]]
        if not any(_inside(f.lon, f.lat, rings) for rings in polys):
            outside.append(f.name)
    assert not outside
