"""geocode: known places, alternate names, diacritics, ambiguity, landmarks, fallbacks; cities()."""

from __future__ import annotations

import pytest

from globe.geo import Place, cities, geocode, haversine_km

# (query, country_code, true lat, true lon): coordinates from any atlas; 15 km leaves room for
# where GeoNames puts a city's point.
KNOWN = [
    ("Paris", "FR", 48.8566, 2.3522),
    ("Tokyo", "JP", 35.6762, 139.6503),
    ("New York", "US", 40.7128, -74.0060),
    ("Sydney", "AU", -33.8688, 151.2093),
    ("Nairobi", "KE", -1.2921, 36.8219),
    ("São Paulo", "BR", -23.5505, -46.6333),
    ("Reykjavík", "IS", 64.1466, -21.9426),
    ("Paris, Texas", "US", 33.6609, -95.5555),
]


@pytest.mark.parametrize("query,cc,lat,lon", KNOWN)
def test_known_places(query, cc, lat, lon):
    place = geocode(query)
    assert isinstance(place, Place)
    assert place.country_code == cc and place.approximate is None
    assert haversine_km(place.lat, place.lon, lat, lon) < 15


@pytest.mark.parametrize("plain,accented", [("Sao Paulo", "São Paulo"), ("Reykjavik", "Reykjavík"),
                                            ("Zurich", "Zürich"), ("Koln", "Köln"), ("Krakow", "Kraków"),
                                            ("Malmo", "Malmö"), ("Bogota", "Bogotá")])
def test_diacritics_do_not_matter(plain, accented):
    a, b = geocode(plain), geocode(accented)
    assert a is not None and a == b
    assert a.city == accented  # the gazetteer keeps the real spelling


@pytest.mark.parametrize("alias,city,cc", [("Kiev", "Kyiv", "UA"), ("New York City", "New York City", "US"),
                                           ("NYC", "New York City", "US"), ("Peking", "Beijing", "CN"),
                                           ("Bombay", "Mumbai", "IN"), ("Saigon", "Ho Chi Minh City", "VN"),
                                           ("Cologne", "Köln", "DE"), ("北京", "Beijing", "CN"),
                                           ("Calcutta", "Kolkata", "IN"), ("Seville", "Sevilla", "ES")])
def test_alternate_names(alias, city, cc):
    place = geocode(alias)
    assert (place.city, place.country_code) == (city, cc)


def test_a_real_town_beats_a_bigger_city_only_also_called_so():
    assert geocode("Fairview", "United States").city == "Fairview"  # not Costa Mesa (alt. "Fairview")
    assert geocode("Venice").country_code == "IT"  # not Dayton, Ohio (alt. "Venice")
    assert geocode("Rome").country_code == "IT"


def test_ambiguity_resolved_by_country_and_region():
    assert geocode("Paris").country_code == "FR"  # the most populous Paris
    us = geocode("Paris", "United States")
    assert (us.country_code, us.admin1) == ("US", "Texas")  # the largest US Paris
    assert geocode("Paris", "US") == us
    assert geocode("Paris", "Texas") == us  # a region as the "country"
    assert geocode("Paris, TX") == us
    assert geocode("Paris, Tennessee").admin1 == "Tennessee"
    assert geocode("Paris", "Canada").admin1 == "Ontario"
    assert geocode("Springfield, IL").admin1 == "Illinois"  # Illinois, not Israel
    assert geocode("Atlanta, Georgia").country_code == "US"  # the state, not the country
    assert geocode("Tbilisi, Georgia").country_code == "GE"
    assert geocode("Cambridge, MA").admin1 == "Massachusetts"


def test_landmark_text_tries_the_specific_parts_first():
    eiffel = geocode("Eiffel Tower, Paris, France")
    assert (eiffel.city, eiffel.approximate) == ("Paris", None)
    siem_reap = geocode("Bayon Temple, Angkor Thom, Siem Reap, Cambodia")
    assert (siem_reap.city, siem_reap.country_code, siem_reap.approximate) == ("Siem Reap", "KH", None)
    assert geocode("Hanoi, Vietnam, Asia").city == "Hanoi"


def test_unknown_city_falls_back_to_capital():
    bayon = geocode("Bayon Temple, Angkor Thom, Cambodia")
    assert (bayon.city, bayon.country_code, bayon.approximate) == ("Phnom Penh", "KH", "capital")
    tokyo = geocode("Sydney", "Japan")  # no Sydney in Japan
    assert (tokyo.city, tokyo.approximate) == ("Tokyo", "capital")
    assert geocode("Japan").approximate == "capital"
    texas = geocode("Unknownville, Texas")  # the region named, not the country's capital
    assert (texas.approximate, texas.admin1, texas.country_code) == ("admin1", "Texas", "US")
    assert geocode("Qqqq", "Deutschland").city == "Berlin"


def test_country_without_a_capital_falls_back_to_centroid():
    place = geocode("Somewhere", "Antarctica")
    assert place.approximate == "centroid" and place.country_code == "AQ"
    assert place.lat < -60


def test_every_country_with_a_capital_falls_back_to_it():
    from globe.geo.countries import countries
    from globe.geo.geocoding import country_fallback

    missing = [c.code for c in countries().values() if c.capital and country_fallback(c.code).approximate != "capital"]
    assert len(missing) <= 3, missing


@pytest.mark.parametrize("text", ["Qqqq Zzzz", "", "   ", ",,,", None, "Zzzyzx Bay", "approximate", "12345"])
def test_unknown_without_country_is_none(text):
    assert geocode(text) is None


def test_city_state_and_country_named_cities():
    assert geocode("Singapore").approximate is None
    assert geocode("Luxembourg").city == "Luxembourg"
    assert geocode("Mexico City").country_code == "MX"


def test_cities_gazetteer():
    big = cities(min_population=1_000_000)
    assert 300 < len(big) < 1000
    assert all(p.population >= 1_000_000 for p in big)
    assert [p.population for p in big] == sorted((p.population for p in big), reverse=True)
    assert {"Tokyo", "Paris", "Nairobi", "São Paulo"} <= {p.city for p in big}
    assert len(cities()) > 140_000
    assert all(p.approximate is None and len(p.country_code) == 2 for p in big)


def test_non_text_arguments_count_as_absent():
    assert geocode("Nairobi", float("nan")) == geocode("Nairobi")
    assert geocode(float("nan")) is None
    assert geocode(None, "Kenya").approximate == "capital"
