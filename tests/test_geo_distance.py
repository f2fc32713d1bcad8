"""Properties of haversine_km (hypothesis), plus figures anyone can check on a globe."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from globe.geo import EARTH_RADIUS_KM, haversine_km

lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lons = st.floats(min_value=-180, max_value=180, allow_nan=False)
points = st.tuples(lats, lons)
HALF_CIRCUMFERENCE = math.pi * EARTH_RADIUS_KM


@settings(max_examples=300, deadline=None)
@given(points, points)
def test_symmetric_nonnegative_and_bounded(a, b):
    d = haversine_km(*a, *b)
    assert d == pytest.approx(haversine_km(*b, *a), abs=1e-6)
    assert 0.0 <= d <= HALF_CIRCUMFERENCE + 1e-6


@settings(max_examples=200, deadline=None)
@given(points)
def test_zero_distance_to_itself(a):
    assert haversine_km(*a, *a) == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(points, points, points)
def test_triangle_inequality(a, b, c):
    assert haversine_km(*a, *c) <= haversine_km(*a, *b) + haversine_km(*b, *c) + 1e-6


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(points, points), min_size=1, max_size=20))
def test_vectorised_equals_scalar(pairs):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    vec = haversine_km(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    assert isinstance(vec, np.ndarray) and vec.shape == (len(pairs),)
    assert vec == pytest.approx([haversine_km(*p, *q) for p, q in pairs], abs=1e-9)


def test_known_distances():
    assert isinstance(haversine_km(0, 0, 0, 1), float)
    # one degree of arc on a sphere of R = 6371 km
    assert haversine_km(0, 0, 0, 1) == pytest.approx(2 * math.pi * 6371.0 / 360, rel=1e-12)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(HALF_CIRCUMFERENCE)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(HALF_CIRCUMFERENCE)
    assert haversine_km(10, 179.5, 10, -179.5) == pytest.approx(haversine_km(10, 0, 10, 1))  # antimeridian
    assert haversine_km(48.8566, 2.3522, 51.5074, -0.1278) == pytest.approx(343.5, abs=1.0)  # Paris-London


def test_broadcasts_one_point_against_many():
    d = haversine_km(0.0, 0.0, np.zeros(5), np.arange(5.0))
    assert d.shape == (5,) and np.all(np.diff(d) > 0)
