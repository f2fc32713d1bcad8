"""Reverse geocoding: coordinates -> the gazetteer place the point belongs to.

Plain nearest-neighbour lookup (what reverse_geocoder does) labels a photo taken in central
São Paulo "Sé", in Colaba "Kegaon" and in Gangnam "Yongsan-dong", because GeoNames lists many
neighbourhoods beside their city; a ground-truth city like that fails every correct answer under
the string rule. So each place reaches a radius that grows with its size,
r = 0.006 km * sqrt(population) clipped to 1..30 km (Paris 8.8 km, São Paulo 21 km, a town of
28k 1 km). A point inside the reach of one or more places goes to the one it is relatively
closest to (smallest distance / r); a point inside no reach goes to the nearest place, as before.
Both cases come from a few vectorised k-d tree queries over the whole batch (see `reverse_rows`).
`nearest=True` gives plain nearest-neighbour semantics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from globe.geo.distance import EARTH_RADIUS_KM
from globe.geo.gazetteer import load, unit_vectors
from globe.geo.place import Place


def _checked(lats: Sequence[float] | np.ndarray, lons: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate coordinates: finite, |lat| <= 90, |lon| <= 360 (0..360 longitudes are accepted)."""
    lat = np.asarray(lats, dtype=np.float64).reshape(-1)
    lon = np.asarray(lons, dtype=np.float64).reshape(-1)
    if lat.shape != lon.shape:
        raise ValueError(f"reverse_batch: {lat.size} latitudes but {lon.size} longitudes")
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 360.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"invalid coordinate at index {i}: lat={float(lat[i])!r}, lon={float(lon[i])!r} "
            f"(expected finite degrees, -90<=lat<=90, -180<=lon<=180); {int(bad.sum())} invalid in all"
        )
    return lat, lon


def _km(chord: np.ndarray) -> np.ndarray:
    """Great-circle km from the chord between unit vectors."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord / 2.0, 1.0))


def reverse_rows(lats: Sequence[float] | np.ndarray, lons: Sequence[float] | np.ndarray, *,
                 nearest: bool = False) -> np.ndarray:
    """Gazetteer row chosen for each point (before numbered districts are mapped to their city).

    Vectorised k-d tree queries over the whole batch:
    1. the nearest place overall. Every place of fewer than ~28k people has the same 1 km reach,
       so no other small place can be relatively closer than the nearest one;
    2. per band of reach (1-3, 3-9, 9-30 km), the k nearest places of that band no further than
       the band's largest reach: the only others that can hold the point. Within a band reaches
       differ by at most 3x, so the band's winner is among its few nearest. Points whose nearest
       place is already further away than the band's reach skip the band's query.
    """
    lat, lon = _checked(lats, lons)
    if lat.size == 0:
        return np.zeros(0, dtype=np.int64)
    if lat.size > 4096:  # neighbouring queries walk the same tree nodes: ~25% faster in band order
        order = np.lexsort((lon, np.floor(lat)))
        rows = np.empty(lat.size, dtype=np.int64)
        rows[order] = _rows(lat[order], lon[order], nearest)
        return rows
    return _rows(lat, lon, nearest)


def _rows(lat: np.ndarray, lon: np.ndarray, nearest: bool) -> np.ndarray:
    g = load()
    v = unit_vectors(lat, lon)
    chord0, best = g.tree.query(v, k=1, workers=-1)
    if nearest:
        return best
    # The nearest place's ratio is > 1 when it does not hold the point; a band's candidate
    # wins only when it holds the point and is relatively closer than the best so far.
    km0 = _km(chord0)
    best_ratio = km0 / g.radius_km[best]
    for tree, band_rows, k, max_km in g.reach_tiers:
        # No place of the band lies within max_km of a point whose nearest place lies beyond it.
        todo = np.flatnonzero(km0 <= max_km)
        if todo.size == 0:
            continue
        bound = 2.0 * np.sin(max_km / (2.0 * EARTH_RADIUS_KM)) * (1 + 1e-9)
        chord, idx = tree.query(v[todo], k=k, workers=-1, distance_upper_bound=bound)
        found = idx < len(band_rows)  # scipy marks "no neighbour within the bound" with idx == n
        rows = band_rows[np.where(found, idx, 0)]
        ratio = np.where(found, _km(np.where(found, chord, 0.0)) / g.radius_km[rows], np.inf)
        ratio[ratio > 1.0] = np.inf  # outside that place's reach
        n = np.arange(len(todo))
        pick = ratio.argmin(axis=1)
        pick_ratio, pick_row = ratio[n, pick], rows[n, pick]
        take = pick_ratio < best_ratio[todo]
        best[todo[take]] = pick_row[take]
        best_ratio[todo[take]] = pick_ratio[take]
    return best


def reverse_batch(lats: Sequence[float] | np.ndarray, lons: Sequence[float] | np.ndarray, *,
                  nearest: bool = False) -> list[Place]:
    """The place each (lat, lon) belongs to, for a whole batch at once (see the module doc).

    >>> [p.city for p in reverse_batch([48.8566, 35.68, -23.5505], [2.3522, 139.76, -46.6333])]
    ['Paris', 'Tokyo', 'São Paulo']
    """
    g = load()
    rows = reverse_rows(lats, lons, nearest=nearest)
    place = g.place
    return [place(i) for i in g.city_of[rows].tolist()]


def reverse(lat: float, lon: float, *, nearest: bool = False) -> Place:
    """The place one point belongs to (see `reverse_batch`)."""
    try:
        return reverse_batch([lat], [lon], nearest=nearest)[0]
    except (ValueError, TypeError):
        raise ValueError(
            f"invalid coordinate lat={lat!r}, lon={lon!r}: expected finite degrees, -90<=lat<=90, -180<=lon<=180"
        ) from None
