"""Geocoding: place text (as people and models write it) -> a gazetteer Place.

Matching is exact on folded names (see `globe.geo.text`), never fuzzy. The text is split on
commas and similar separators; parts that name a country or a first-level region ("Texas", "TX",
"Bavaria") become filters, and the remaining parts are tried from the most specific (first) to
the least: "Bayon Temple, Angkor Thom, Siem Reap, Cambodia" tries the temple, then Angkor Thom,
then Siem Reap, inside Cambodia. Among places with the same name the most populous wins, with
alternate-name matches (Kiev for Kyiv, NYC for New York City) counted at 5% of their population:
Calcutta is still Kolkata (4.6M) rather than Calcutta, South Africa (36k), but Fairview, US is a
town of that name (14k) rather than Costa Mesa (113k), which GeoNames also calls "Fairview", and
Venice is Venice, not Dayton.

When no part matches but the country is known, the answer is the country's capital, or its
centroid when it has none in the gazetteer, with `approximate` saying so. Without a country
there is nothing honest to fall back to, and the answer is None.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import cache, lru_cache

import numpy as np

from globe.geo.countries import countries, normalize_country
from globe.geo.gazetteer import Gazetteer, load, unit_vectors
from globe.geo.maps import land_centroids
from globe.geo.place import Place
from globe.geo.text import fold

ALT_NAME_WEIGHT = 0.05
_SPLIT = re.compile(r"\s*(?:[,;|/()\[\]]|\s-\s|\n)\s*")
_CITY_WORDS = re.compile(r"^(?:city of |greater |downtown |central )|(?: city| metropolitan area| metro| downtown)$")


def _best(g: Gazetteer, name: str, cc: str | None, regions: set[tuple[str, str]], strict: bool = False) -> int | None:
    """Row of the most populous place called `name` (inside cc and regions when given)."""
    key = fold(name)
    if not key:
        return None
    weighted = {i: 1.0 for i in g.rows(g.by_name, key)}
    for i in g.rows(g.by_alt, key):
        weighted.setdefault(i, ALT_NAME_WEIGHT)
    if cc:
        weighted = {i: w for i, w in weighted.items() if g.country_code[i] == cc}
    if regions:
        inside = {i: w for i, w in weighted.items() if (g.country_code[i], g.admin1_code[i]) in regions}
        weighted = inside if (inside or strict) else weighted
    if not weighted:
        return None
    return max(weighted, key=lambda i: (g.population[i] * weighted[i], -i))


def _lookup(g: Gazetteer, name: str, cc: str | None, regions: set[tuple[str, str]],
            strict: bool = False) -> int | None:
    found = _best(g, name, cc, regions, strict)
    if found is None:
        stripped = _CITY_WORDS.sub("", fold(name)).strip()
        if stripped and stripped != fold(name):
            found = _best(g, stripped, cc, regions, strict)
    return found


def geocode(city: str | None, country: str | None = None) -> Place | None:
    """Place for a city (or landmark) text, optionally constrained by a country name or code.

    Anything that is not a string (None, NaN from a CSV) counts as absent. Answers are cached
    per (city, country): evaluation geocodes the same predicted names over and over.

    >>> geocode("Paris, Texas").admin1
    'Texas'
    >>> geocode("Springfield, IL").admin1
    'Illinois'
    >>> geocode("Sydney", "Japan").approximate
    'capital'
    """
    return _geocode(city if isinstance(city, str) else "", country if isinstance(country, str) else None)


@lru_cache(maxsize=65536)
def _geocode(city: str, country: str | None) -> Place | None:
    g = load()
    parts = [p for p in _SPLIT.split(city.strip()) if p]
    given_cc = normalize_country(country) if country else None
    regions: set[tuple[str, str]] = set()
    if country and given_cc is None:  # geocode("Paris", "Texas"): not a country, maybe a region
        regions |= g.by_admin1.get(fold(country), set())
    names: list[str] = []
    region_names: list[str] = []  # "Siem Reap" is a province and its city: try it after the rest
    part_ccs: list[tuple[str, str]] = []  # (code, folded part) for trailing parts naming a country
    for k, part in enumerate(parts):
        part_cc = normalize_country(part)
        if part_cc and (k > 0 or len(parts) == 1):
            part_ccs.append((part_cc, fold(part)))
            if k > 0:
                continue
        elif k > 0 and fold(part) in g.by_admin1:
            regions |= g.by_admin1[fold(part)]
            region_names.append(part)
            continue
        names.append(part)
    cc = given_cc or (part_ccs[-1][0] if part_ccs else None)
    # A part that names another country *and* a region is the region ("Atlanta, Georgia, USA").
    dual = [key for code, key in part_ccs if key in g.by_admin1]
    regions |= {r for key in dual for r in g.by_admin1[key] if r[0] == cc and given_cc is None}

    found = _search(g, names, cc, regions)
    if found is None and region_names:
        found = _search(g, region_names, cc, regions, strict=True)
    if found is None and given_cc is None and dual:  # "Springfield, IL": Illinois, not Israel
        dual_regions = {r for key in dual for r in g.by_admin1[key]}
        found = _search(g, names, None, regions | dual_regions)
    if found is not None:
        return g.place(found)
    if len(parts) == 1 and " " in parts[0] and cc is None:  # "Paris France"
        words = parts[0].split()
        for cut in range(len(words) - 1, 0, -1):
            tail_cc = normalize_country(" ".join(words[cut:]))
            if tail_cc:
                return _geocode(" ".join(words[:cut]), tail_cc)
    if cc is None and regions and len({c for c, _ in regions}) == 1:
        cc = next(iter(regions))[0]  # "Unknownville, Texas": the country of the region
    return country_fallback(cc) if cc else None


def _search(g: Gazetteer, names: list[str], cc: str | None, regions: set[tuple[str, str]],
            strict: bool = False) -> int | None:
    """First name (most specific first) that matches a place; `strict`: only inside `regions`."""
    if cc and regions:
        regions = {r for r in regions if r[0] == cc} or regions
    for name in names:
        found = _lookup(g, name, cc, regions, strict)
        if found is not None:
            return found
    return None


@cache
def country_fallback(cc: str) -> Place | None:
    """The country's capital (approximate='capital'), else its centroid (approximate='centroid')."""
    known = countries().get(cc)
    if known is None:
        return None
    g = load()
    if known.capital:
        row = _lookup(g, known.capital, cc, set())
        if row is not None:
            return replace(g.place(row), approximate="capital")
    lat_lon = land_centroids().get(cc)
    if lat_lon is None:
        rows = [i for i, c in enumerate(g.country_code) if c == cc]
        if not rows:
            return None
        v = unit_vectors(g.lat[rows], g.lon[rows]).mean(axis=0)
        lat_lon = (float(np.degrees(np.arctan2(v[2], np.hypot(v[0], v[1])))), float(np.degrees(np.arctan2(v[1], v[0]))))
    return Place(city="", admin1="", country_code=cc, country=known.name, lat=lat_lon[0], lon=lat_lon[1],
                 population=0, approximate="centroid")
