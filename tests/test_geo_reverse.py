"""reverse / reverse_batch: known coordinates, exactness of the k-d tree, input errors."""

from __future__ import annotations

import numpy as np
import pytest

from globe.geo import cities, haversine_km, reverse, reverse_batch
from globe.geo.gazetteer import load
from globe.geo.reverse_geocoding import reverse_rows


@pytest.mark.parametrize("lat,lon,city,cc", [
    (48.8566, 2.3522, "Paris", "FR"),
    (48.8430, 2.2970, "Paris", "FR"),  # 15th arrondissement: the city, not "Paris 15 Vaugirard"
    (35.6895, 139.6917, "Tokyo", "JP"),
    (-1.2864, 36.8172, "Nairobi", "KE"),
    (-23.5505, -46.6333, "São Paulo", "BR"),
    (64.1466, -21.9426, "Reykjavík", "IS"),
    (33.66094, -95.55551, "Paris", "US"),
    (47.4979, 19.0402, "Budapest", "HU"),
])
def test_known_coordinates(lat, lon, city, cc):
    place = reverse(lat, lon)
    assert (place.city, place.country_code) == (city, cc)
    assert place.country and place.approximate is None


def test_batch_matches_single_and_accepts_arrays():
    rng = np.random.default_rng(0)
    lats, lons = rng.uniform(-60, 70, 200), rng.uniform(-180, 180, 200)
    batch = reverse_batch(lats, lons)
    assert len(batch) == 200
    assert batch[:20] == [reverse(a, b) for a, b in zip(lats[:20].tolist(), lons[:20].tolist())]
    assert reverse_batch(list(lats), tuple(lons)) == batch
    assert reverse_batch([], []) == []


def test_large_batches_take_the_sorted_path_with_the_same_answers():
    rng = np.random.default_rng(2)
    lats, lons = rng.uniform(-60, 70, 6000), rng.uniform(-180, 180, 6000)
    whole = reverse_rows(lats, lons)  # > 4096 points: queried in sorted order, then unsorted
    parts = np.concatenate([reverse_rows(lats[i:i + 3000], lons[i:i + 3000]) for i in (0, 3000)])
    assert (whole == parts).all()
    assert (reverse_rows(lats, lons, nearest=True) == np.concatenate(
        [reverse_rows(lats[i:i + 3000], lons[i:i + 3000], nearest=True) for i in (0, 3000)])).all()


EDGE_LATS = [-16.8, 65.5, 89.0, -85.0, 0.0, -23.56, 19.06, 37.50, 40.68]
EDGE_LONS = [-179.95, 179.9, 10.0, 0.0, 180.0, -46.66, 72.83, 127.03, -73.94]


@pytest.fixture(scope="module")
def points():
    """Random points, poles, the antimeridian, megacity neighbourhoods, points ~1 km from random
    towns and ~10 km from the 40 biggest cities (where many reaches overlap)."""
    g, rng = load(), np.random.default_rng(1)
    towns = rng.choice(len(g), 80, replace=False)
    big = np.argsort(-g.population)[:40]
    near = np.concatenate([towns, big])
    spread = np.concatenate([np.full(80, 0.01), np.full(40, 0.1)])
    lats = np.concatenate([rng.uniform(-60, 70, 40), EDGE_LATS, np.clip(g.lat[near] + rng.normal(0, spread), -90, 90)])
    lons = np.concatenate([rng.uniform(-180, 180, 40), EDGE_LONS,
                           (g.lon[near] + rng.normal(0, spread) + 180) % 360 - 180])
    return lats, lons


@pytest.fixture(scope="module")
def brute_force(points):
    """Per point, by haversine over every place: (distances, distance/reach)."""
    g = load()
    return [(d, d / g.radius_km) for d in (haversine_km(a, b, g.lat, g.lon) for a, b in zip(*points))]


def test_nearest_mode_is_the_brute_force_great_circle_nearest(points, brute_force):
    for (d, _), row in zip(brute_force, reverse_rows(*points, nearest=True)):
        assert d[row] == pytest.approx(d.min(), abs=1e-6)


def test_default_mode_matches_brute_force_over_all_places(points, brute_force):
    """The banded k-d tree queries lose nothing against brute force:
    the place of smallest distance/reach among those whose reach holds the point, else the nearest."""
    g = load()
    rows = reverse_rows(*points)
    contained = 0
    for (d, score), row in zip(brute_force, rows):
        if score.min() <= 1.0:
            contained += 1
            assert score[row] == pytest.approx(score.min(), rel=1e-9, abs=1e-12)
        else:
            assert d[row] == pytest.approx(d.min(), abs=1e-6)
    assert 20 < contained < len(rows) - 20  # the test covers both branches
    for place, row in zip(reverse_batch(*points), rows):
        assert place == g.place(int(g.city_of[row]))  # a numbered district reports its city


def test_neighbourhoods_give_way_to_their_city():
    """Plain nearest-neighbour returns the neighbourhood; the default returns the city."""
    for lat, lon, city in [(-23.5505, -46.6333, "São Paulo"), (18.9067, 72.8147, "Mumbai"),
                           (37.4979, 127.0276, "Seoul")]:
        assert reverse(lat, lon).city == city
        assert reverse(lat, lon, nearest=True).city != city
    # ... but a town keeps its own name next to a big city
    assert reverse(48.8397, 2.2399).city == "Boulogne-Billancourt"


def test_longitudes_0_to_360_are_accepted():
    assert reverse(40.7128, 360 - 74.006) == reverse(40.7128, -74.006)


@pytest.mark.parametrize("lat,lon", [(91, 0), (-90.5, 0), (0, 361), (float("nan"), 0), (0, float("inf"))])
def test_invalid_coordinates_are_clear_errors(lat, lon):
    with pytest.raises(ValueError, match="invalid coordinate"):
        reverse(lat, lon)


def test_batch_error_names_the_first_bad_index():
    with pytest.raises(ValueError, match=r"index 2: lat=95\.0.*2 invalid"):
        reverse_batch([0, 1, 95, 99], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="3 latitudes but 2 longitudes"):
        reverse_batch([0, 1, 2], [0, 1])


def test_reverse_of_a_gazetteer_city_is_itself():
    for p in cities(min_population=2_000_000)[:50]:
        q = reverse(p.lat, p.lon)
        assert haversine_km(p.lat, p.lon, q.lat, q.lon) < 1e-6 or q.population >= p.population
