"""Geodesic reward (ours; the paper names coordinate-level prediction as future work).

The accuracy reward is a step function: a guess 5 km off in the wrong city earns what a guess on
the wrong continent earns. This reward is continuous in the great-circle error d,
`exp(-d / scale_km)`: 1.0 on the spot, 1/e at `scale_km`, near 0 across the globe, so GRPO can
rank "close" above "far" inside a group where every city is wrong.

The prediction's position is its stated `lat`/`lon` when it gives them, else its geocoded names
(city, region, country; `globe.scorer.locate` under the "stated" protocol, GeoNames, offline). An
answer with no place at all scores 0.0: saying nothing is a bad answer, not a broken reward.
"""

from __future__ import annotations

import math
from typing import Any

from globe.answer import Answer
from globe.rewards._inputs import answers, as_float, column
from globe.scorer import locate as scorer_locate

DEFAULT_SCALE_KM = 750.0


def locate(answer: Answer) -> tuple[float, float, str] | None:
    """(lat, lon, source) for an answer under the "stated" protocol of `globe.scorer.locate`:
    its stated lat/lon, else its geocoded names. None when it names no place the gazetteer knows.

    The training reward keeps stated coordinates first (they are what this reward teaches);
    evaluation's headline geocodes the names. Both come from the one scorer.
    """
    where = scorer_locate(answer, "stated")
    return (where.lat, where.lon, where.source) if where.found else None


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
