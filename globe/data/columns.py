"""The column names and the coordinate check of every benchmark CSV and JSONL, in one place.

IM2GPS3K writes `IMG_ID,…,LAT,LON`, YFCC4K `IMG_ID` and `LAT`/`LON` among numbered columns, OSV-5M
`id,latitude,longitude`, MP16-Reason-style JSONL `lat`/`latitude`. Importing a dataset
(`globe.data.ingest`, which skips and reports bad rows) and loading a benchmark
(`globe.evaluate.benchmarks`, which stops at the first bad row) find the columns and read a
coordinate with these, so the two never disagree about what a valid row is.
"""

from __future__ import annotations

import math
import re
from typing import Iterable

LAT_COLUMNS = ("lat", "latitude", "gps_lat")
LON_COLUMNS = ("lon", "lng", "long", "longitude", "gps_lon")


class CoordinateError(ValueError):
    """A coordinate cell that is empty ("missing coordinates") or unusable ("invalid coordinates")."""

    def __init__(self, category: str, detail: str):
        super().__init__(detail)
        self.category = category


def find_column(header: Iterable[object], names: Iterable[str]) -> int | None:
    """Index of the first of `names` in `header`, matched case-insensitively and stripped."""
    low = [str(h).strip().lower() for h in header]
    for name in names:
        if name.lower() in low:
            return low.index(name.lower())
    return None


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?", re.ASCII)


def _short(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:60] + "..."


def coordinate(raw: object, what: str, limit: float) -> float:
    """A finite number in [-limit, limit] (90 for a latitude, 180 for a longitude), or CoordinateError.

    >>> coordinate(" 48.85 ", "lat", 90.0)
    48.85
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise CoordinateError("missing coordinates", f"{what} is empty")
    text = raw.strip() if isinstance(raw, str) else repr(raw) if isinstance(raw, float) else str(raw)
    if not _DECIMAL.fullmatch(text):  # float() also reads "1_0" as 10 and Arabic-Indic digits, "inf", "nan"
        raise CoordinateError("invalid coordinates", f"{what}={_short(raw)} is not a plain decimal number (ASCII digits, '.', '-')")
    value = float(text)
    if not math.isfinite(value) or abs(value) > limit:
        raise CoordinateError("invalid coordinates", f"{what}={_short(raw)} is outside [-{limit:g}, {limit:g}]")
    return value
