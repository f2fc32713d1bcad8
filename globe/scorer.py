"""The one scorer: when two names match, and where an answer puts the photo.

Rewards, verification, evaluation and serving all score answers here, so a training reward, a
dataset filter, `metrics.json` and an HTTP response can never disagree about the same pair.

**Matching** (GLOBE's released rule, plus aliases). Two names match when one contains the other
(case-insensitively) and the shorter is at least 70% as long as the longer. That scores "USA"
against "United States" as a miss, so `aliases=True` also accepts two country names that
`globe.geo.normalize_country` maps to the same ISO code and two city names equal after folding
accents and punctuation (Zürich/Zurich); `gazetteer=True` further accepts two city names the
gazetteer resolves to the same real place in that country (Kyiv/Kiev). Accuracy is 1.0 for city
and country, 0.2 for the country only, else 0.

**Locating** (answer -> place -> coordinates), under one of two protocols:

- "names" (the headline, the paper's protocol): geocode the place the answer names (its city,
  region and country, or its free-text place) with `globe.geo.resolve`; an answer that names no
  place but states coordinates is placed by those.
- "stated": the coordinates the answer states (or a predictions file gives) when it has them,
  else its names as above.

A `Location` says where (`lat`, `lon`), from what (`source`: "geocoded", "stated", "given" for
coordinates a predictions file or a served predictor supplied, "none") and how precisely
(`resolution`: `globe.geo.resolve`'s city, landmark, admin1, capital-fallback, centroid-fallback;
"coordinates" for stated or given ones; "none").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from globe.answer import Answer

RATIO = 0.7
CITY_AND_COUNTRY, COUNTRY_ONLY = 1.0, 0.2
PROTOCOLS = ("names", "stated")
HEADLINE_PROTOCOL = "names"
# Resolutions that place the photo at a real named place (not a region or country stand-in).
PLACE_RESOLUTIONS = ("coordinates", "city", "landmark")


# ----------------------------------------------------------------------------- matching


def string_match(pred: str | None, truth: str | None) -> bool:
    """The released rule: substring containment either way, length ratio >= 0.7, ignoring case.

    >>> string_match("New York", "new york city"), string_match("Paris", "Paris")
    (False, True)
    """
    if not pred or not truth:
        return False
    a, b = pred.strip().lower(), truth.strip().lower()
    if not a or not b or (a not in b and b not in a):
        return False
    return min(len(a), len(b)) / max(len(a), len(b)) >= RATIO


@lru_cache(maxsize=65536)
def _code(name: str) -> str | None:
    from globe.geo import normalize_country

    return normalize_country(name)


@lru_cache(maxsize=65536)
def _fold(name: str) -> str:
    from globe.geo.text import fold

    return fold(name)


@lru_cache(maxsize=65536)
def country_match(pred: str | None, truth: str | None, aliases: bool = True) -> bool:
    """Released rule, or (aliases) the same ISO code: "USA" matches "United States"."""
    if string_match(pred, truth):
        return True
    if not aliases or not pred or not truth:
        return False
    code = _code(pred)
    return code is not None and code == _code(truth)


@lru_cache(maxsize=65536)
def _real_place(city: str, country: str | None) -> tuple[float, float] | None:
    from globe.geo import geocode

    place = geocode(city, country)
    if place is None or place.approximate is not None:  # a region or capital stand-in is not the city
        return None
    return round(place.lat, 4), round(place.lon, 4)


@lru_cache(maxsize=65536)
def city_match(pred: str | None, truth: str | None, country: str | None = None, aliases: bool = True,
               gazetteer: bool = False) -> bool:
    """Released rule, or (aliases) equal after folding accents and punctuation (Zürich/Zurich), or
    (gazetteer) the same real GeoNames place inside `country` (Kiev/Kyiv, Bombay/Mumbai).

    The gazetteer lookup costs a geocode per new name pair, so evaluation uses it and the
    per-step training reward does not.
    """
    if string_match(pred, truth):
        return True
    if not aliases or not pred or not truth:
        return False
    if string_match(_fold(pred), _fold(truth)):
        return True
    if not gazetteer:
        return False
    where = _real_place(pred, country)
    return where is not None and where == _real_place(truth, country)


@lru_cache(maxsize=65536)
def score(pred_country: str | None, pred_city: str | None, country: str | None, city: str | None,
          aliases: bool = True, gazetteer: bool = False) -> float:
    """1.0 city and country, 0.2 country only, 0.0 otherwise (cached: the same pairs recur every step)."""
    if not country_match(pred_country, country, aliases):
        return 0.0
    if city_match(pred_city, city, country, aliases, gazetteer):
        return CITY_AND_COUNTRY
    return COUNTRY_ONLY


# ----------------------------------------------------------------------------- locating


@dataclass(frozen=True, slots=True)
class Location:
    """Where an answer puts the photo, from what and how precisely (see the module doc)."""

    lat: float | None = None
    lon: float | None = None
    source: str = "none"
    resolution: str = "none"
    place: str | None = None
    country_code: str | None = None
    protocol: str = HEADLINE_PROTOCOL

    @property
    def found(self) -> bool:
        return self.lat is not None and self.lon is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_float(value: Any) -> float | None:
    """A finite float from a number or numeric text, else None (CSV cells, JSON nulls, NaN)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and abs(out) != float("inf") else None


def _valid(lat: Any, lon: Any) -> tuple[float, float] | None:
    try:
        a, b = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if math.isfinite(a) and math.isfinite(b) and -90 <= a <= 90 and -180 <= b <= 180:
        return a, b
    return None


@lru_cache(maxsize=65536)
def _geocoded(place: str | None, country: str | None, city: str | None) -> Location | None:
    from globe.geo import resolve

    found = resolve(place, country, city)
    if found is None:
        return None
    p = found.place
    label = ", ".join(x for x in (p.city, p.admin1, p.country) if x)
    return Location(p.lat, p.lon, "geocoded", found.how, label, p.country_code)


def clear_caches() -> None:
    """Forget every cached geocoding result (after switching a geocoder setting, as a benchmark does)."""
    from globe.geo.geocoding import _resolve

    for cached in (_real_place, city_match, score, _geocoded, _resolve):
        cached.cache_clear()


def geocoded(answer: Answer) -> Location | None:
    """The answer's names geocoded (None when they name nothing the gazetteer knows). Never raises:
    a geocoder bug must not stop a training run, so the row is then simply unplaced."""
    place = getattr(answer, "place", None) or None
    if not (answer.city or answer.country or place):
        return None
    country, city = answer.country or None, answer.city or None
    if place:  # the whole place already holds the components it names; add only the others
        folded = _fold(place)
        country = None if country and _fold(country) in folded else country
        city = None if city and _fold(city) in folded else city
    try:
        return _geocoded(place, country, city)
    except Exception:  # noqa: BLE001
        return None


def locate(answer: Answer, protocol: str = HEADLINE_PROTOCOL, given: tuple[Any, Any] | None = None) -> Location:
    """Where `answer` puts the photo under `protocol` ("names" or "stated"; see the module doc).

    `given` is a (lat, lon) pair that came with the answer from outside its text (a predictions
    file's pred_lat/pred_lon, a served predictor's coordinates); it counts as stated coordinates.

    >>> a = Answer(country="France", city="Paris", lat=-40.0, lon=80.0)
    >>> locate(a).resolution, round(locate(a).lat), locate(a, "stated").lat
    ('city', 49, -40.0)
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    stated = _valid(answer.lat, answer.lon) if answer.lat is not None else None
    source = "stated"
    if stated is None and given is not None and (stated := _valid(*given)) is not None:
        source = "given"
    coords = None if stated is None else Location(stated[0], stated[1], source, "coordinates", protocol=protocol)
    if protocol == "stated" and coords is not None:
        return coords
    names = geocoded(answer)
    if names is not None:
        return Location(names.lat, names.lon, names.source, names.resolution, names.place, names.country_code,
                        protocol)
    return coords or Location(protocol=protocol)
