"""`Place`: the one value type every geography call returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Place:
    """A populated place (or a stand-in for one) from the offline GeoNames gazetteer.

    `approximate` is None when the place is a real match for what was asked. When geocoding could
    not find the city it falls back to the country's capital (`"capital"`) or, for a country with no
    usable capital, its centroid (`"centroid"`); callers that score distances can then tell a guess
    from a hit instead of silently trusting it. A named natural feature (a peak, a waterfall, a
    national park: `globe.geo.features`) is `"feature"`: named, but not a populated place, so `city`
    holds the feature's name as Natural Earth writes it ("Mt. Blanc", "Yosemite NP").
    """

    city: str
    admin1: str
    country_code: str  # ISO 3166-1 alpha-2 (GeoNames uses XK for Kosovo)
    country: str
    lat: float
    lon: float
    population: int = 0
    approximate: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
