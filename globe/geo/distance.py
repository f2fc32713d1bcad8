"""Great-circle distance (haversine, spherical Earth R = 6371.0 km, the metric the paper reports)."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between points given in degrees; numpy-broadcast.

    Scalars in give a Python float out; arrays give an ndarray. The haversine form is
    numerically stable for the short distances that decide the 1 km and 25 km accuracy bands
    (the spherical law of cosines loses metres to rounding there). The argument of arcsin is
    clipped to [0, 1] so antipodal points give exactly pi*R instead of NaN.

    >>> round(haversine_km(48.8566, 2.3522, 51.5074, -0.1278))
    344
    """
    p1, l1, p2, l2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2.0) ** 2
    d = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return float(d) if np.ndim(d) == 0 else d
