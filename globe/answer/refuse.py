"""Refusing what is not an answer: a field whose value is markup, a number, prose or a country in `city:`.

A model that writes `city: </think>`, `city: 55.5525` or `country: Brazil / city: Brazil` has not
named a city. Such a field is dropped (it counts as unparsed: evaluation falls back to what else
the answer names, the accuracy reward gets no city) and the answer is not `format_ok`, so the
format reward does not pay for it. A country in `city:` is refused only when it is the answer's
own country (or no country is given) and not also the name of that country's capital: "Singapore",
"Luxembourg", "Djibouti" and "Vatican City" are cities; "Georgia" beside "USA" is left to the
geocoder (a state).

No country's name holds a digit, so a `country:` with one ("8 Italy") is refused too; a city's
may ("6th of October City", "Route 66").
"""

from __future__ import annotations

from functools import lru_cache

from globe.answer.values import country_code, refusal


@lru_cache(maxsize=4096)
def _is_country_name(name: str) -> bool:
    try:
        from globe.geo.countries import is_country_name

        return is_country_name(name)
    except Exception:  # noqa: BLE001
        return False


@lru_cache(maxsize=4096)
def city_is_a_country(city: str, country: str | None) -> bool:
    """True when `city` is a country's name as a whole (not a code, not "City, Country"), the answer's own (or no country is given), and is not also
    that country's capital by name.

    >>> city_is_a_country("Brazil", "Brazil"), city_is_a_country("Singapore", "Singapore")
    (True, False)
    >>> city_is_a_country("Georgia", "USA"), city_is_a_country("Paris", "France")
    (False, False)
    """
    if "," in city or (len(city) <= 3 and city.isupper()) or not _is_country_name(city):
        return False  # "Tokyo, Japan" names a city; "LA", "BA" may be codes of cities
    code = country_code(city)
    if code is None:
        return False
    if country and country_code(country) not in (None, code):
        return False
    try:
        from globe.geo.countries import countries
        from globe.geo.text import fold

        capital = fold(countries()[code].capital) if code in countries() else ""
        name = fold(city)
    except Exception:  # noqa: BLE001
        return True
    return not capital or name not in (capital, capital.removesuffix(" city"))


@lru_cache(maxsize=65536)
def refuse_fields(country: str | None, city: str | None) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(country, city, names of the refused fields) with every refused value set to None."""
    refused = []
    if country is not None and (refusal(country) or any(c.isdigit() for c in country)):  # "8 Italy"
        country = None
        refused.append("country")
    if city is not None and (refusal(city) or city_is_a_country(city, country)):
        city = None
        refused.append("city")
    return country, city, tuple(refused)
