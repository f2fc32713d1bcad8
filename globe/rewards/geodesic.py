"""Geodesic reward (ours; the paper names coordinate-level prediction as future work).

The accuracy reward is a step function: a guess 5 km off in the wrong city earns what a guess on
the wrong continent earns. This reward is continuous in the great-circle error d,
`exp(-d / scale_km)`: 1.0 on the spot, 1/e at `scale_km`, near 0 across the globe, so GRPO can
rank "close" above "far" inside a group where every city is wrong.

The prediction's position is its stated `lat`/`lon` when it gives them, else the geocoded city
(within the stated country), else the country's capital (GeoNames, offline; see `locate`). An
answer with no place at all scores 0.0: saying nothing is a bad answer, not a broken reward.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from globe.answer import Answer
from globe.rewards._inputs import answers, as_float, column

DEFAULT_SCALE_KM = 750.0


@lru_cache(maxsize=65536)
def _geocoded(city: str | None, country: str | None) -> tuple[float, float, str] | None:
    from globe.geo import geocode

    place = geocode(city or None, country or None)
    if place is None:
        return None
    source = "geocoded" if place.approximate is None else f"geocoded_{place.approximate}"
    return place.lat, place.lon, source


def locate(answer: Answer) -> tuple[float, float, str] | None:
    """(lat, lon, source) for an answer; source is "stated", "geocoded", "geocoded_capital" or
    "geocoded_centroid". None when the answer names no place the gazetteer knows."""
    if answer.lat is not None and answer.lon is not None:
        return answer.lat, answer.lon, "stated"
    if answer.city or answer.country:
        try:
            return _geocoded(answer.city, answer.country)
        except Exception:  # noqa: BLE001 - a geocoder bug must not stop training; the row scores as unplaced
            return None
    return None


def _haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from globe.geo import haversine_km

    return float(haversine_km(lat1, lon1, lat2, lon2))


def geodesic_reward(completions: list[Any], scale_km: float = DEFAULT_SCALE_KM, **kwargs: Any) -> list[float | None]:
    """exp(-great-circle error / scale_km); needs the `lat` and `lon` columns.

    A sample without ground-truth coordinates scores None (TRL leaves it out).

    >>> geodesic_reward(["<answer>country: France\\ncity: Paris\\nlat: 48.8566\\nlon: 2.3522</answer>"],
    ...                 lat=[48.8566], lon=[2.3522])
    [1.0]
    """
    n = len(completions)
    lats, lons = column(kwargs, "lat", n, "geodesic"), column(kwargs, "lon", n, "geodesic")
    out: list[float | None] = []
    for a, lat, lon in zip(answers(completions), lats, lons):
        lat, lon = as_float(lat), as_float(lon)
        if lat is None or lon is None:
            out.append(None)
            continue
        where = locate(a)
        out.append(0.0 if where is None else math.exp(-_haversine_km(lat, lon, where[0], where[1]) / scale_km))
    return out


geodesic_reward.__name__ = "geodesic"
