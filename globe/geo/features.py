"""Named natural features: peaks, waterfalls, islands, capes and US national parks, offline.

The data is Natural Earth's (public domain), vendored in `data/ne_features.json` by
`scripts/build_ne_features.py`: 1:10m elevation points (Mt. Blanc, Grossglockner, Uluru/Ayers
Rock), region points (islands, capes, Iguazu and Victoria Falls) and the US National Park Service
units, a park with a polygon placed at the polygon's representative point (Yosemite, Zion).

Names are matched exactly after folding and after expanding Natural Earth's and people's
abbreviations the same way on both sides: "Mt."/"Mount"/"Mont"/"Monte" at the start, "Pk." ->
peak, "NP"/"N.P." -> national park, "NM" -> national monument, "NHS", "NHP", "NRA", "N PRES",
"MEM", ... A mountain is also known by its name without the prefix ("Kilimanjaro", "Aconcagua")
and a national park by its name alone ("Yosemite"), because that is how people write them; a
name Natural Earth lists twice ("Mt. Olympus" in Greece and in Washington) is only used where
the rest of the answer says which, or where the copies lie within `SAME_KM` of each other.

`globe.geo.geocoding` asks here only for a part of an answer that names no city and no region.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

import numpy as np

from globe.geo.distance import haversine_km
from globe.geo.text import fold

# Copies of one name further apart than this are different features: which one needs a country.
SAME_KM = 100.0
# A feature lies "in" a country or region when one of its gazetteer places is within this of it: a
# peak on a border is in both countries (Mont Blanc is French and Italian), and mountains and parks
# lie far from the towns of cities1000 (Aconcagua 112 km from an Argentine one, Yellowstone's point
# ~120 km from a Wyoming one).
AREA_KM = 150.0

_PREFIXES = ("mount", "cerro", "pico", "nevado", "volcan", "volcano", "gunung", "jebel", "jabal", "djebel",
             "gora", "pik", "pic", "monte", "mont", "mt", "puncak", "sierra")
_EXPAND = [(re.compile(p), r) for p, r in (
    (r"^(?:mt|mont|monte|mount)\b", "mount"),
    (r"\bmt$", "mountain"),
    (r"\bpk\b", "peak"),
    (r"\bn ?p\b", "national park"),
    (r"\bn ?pres\b", "national preserve"),
    (r"\bpres\b", "preserve"),
    (r"\bnhp\b", "national historical park"),
    (r"\bnhs\b", "national historic site"),
    (r"\bnmp\b", "national military park"),
    (r"\bnm\b", "national monument"),
    (r"\bnra\b", "national recreation area"),
    (r"\bnrra\b", "national river and recreation area"),
    (r"\bns\b", "national seashore"),
    (r"\bnl\b", "national lakeshore"),
    (r"\bnbp\b", "national battlefield park"),
    (r"\bnb\b", "national battlefield"),
    (r"\bn ?mem\b", "national memorial"),
    (r"\bmem\b", "memorial"),
    (r"\bst\b", "saint"),
    (r"\band\b", " "),
)]
_PARK_TYPE = re.compile(r"\s+(?:national (?:park|preserve|monument|memorial|seashore|lakeshore|recreation area"
                        r"|historical park|historic site|battlefield|military park)|memorial)"
                        r"(?: preserve| national preserve)*$")


def feature_key(text: str) -> str:
    """Folded name with abbreviations expanded: 'Mt. Blanc' and 'Mont Blanc' -> 'mount blanc',
    'Yosemite NP' and 'Yosemite N.P.' -> 'yosemite national park'.

    >>> feature_key("Mt. Blanc"), feature_key("Yosemite N.P."), feature_key("Great Sand Dunes NP & PRES")
    ('mount blanc', 'yosemite national park', 'great sand dunes national park preserve')
    """
    key = fold(text)
    for pattern, repl in _EXPAND:
        key = pattern.sub(repl, key)
    return " ".join(key.split())


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    kind: str  # mountain, waterfall, island, cape, park, ... (Natural Earth's featurecla; "park")
    lat: float
    lon: float
    rank: int  # Natural Earth's scalerank: lower is more prominent


def _keys(name: str, kind: str) -> set[str]:
    return {k for k, _ in _keyed(name, kind)}


def _keyed(name: str, kind: str) -> set[tuple[str, bool]]:
    """(key, whether it is a park's bare name) for every way the feature's name is written."""
    keys = set()
    for written in {name, *name.split("/")}:
        written = re.sub(r"\s*\([^)]*\)", "", written).strip()
        if not written:
            continue
        key = feature_key(written)
        keys.add((key, False))
        words = key.split()
        if kind != "park" and len(words) > 1 and words[0] in _PREFIXES:
            keys.add((" ".join(words[1:]), False))  # "Kilimanjaro", "Aconcagua", "Etna"
        elif kind in ("mountain", "spot elevation") and words and words[0] not in _PREFIXES:
            keys.add(("mount " + key, False))  # "Mount Fuji" for Natural Earth's "Fuji"
        if kind == "park" and (bare := _PARK_TYPE.sub("", key)) != key:
            keys.add((bare, True))  # "Yosemite", "Death Valley"
    return {(k, bare) for k, bare in keys if len(k) >= 3}


@cache
def features() -> list[Feature]:
    data = json.loads(resources.files("globe.geo").joinpath("data", "ne_features.json").read_text(encoding="utf-8"))
    return [Feature(n, k, float(lat), float(lon), int(r) if r is not None else 10) for n, k, lat, lon, r in data["features"]]


@cache
def index(inner: bool = False) -> dict[str, tuple[int, ...]]:
    """Folded key -> features. `inner`: without parks' bare names, for names found inside a longer
    text ("Olympic Stadium" is not Olympic National Park; "Olympic", written alone, may be)."""
    out: dict[str, list[int]] = {}
    for i, f in enumerate(features()):
        for key, bare in _keyed(f.name, f.kind):
            if not (inner and bare) and i not in out.setdefault(key, []):
                out[key].append(i)
    return {k: tuple(v) for k, v in out.items()}


@lru_cache(maxsize=4096)
def nearest_row(i: int) -> int:
    """The gazetteer row nearest feature `i` (its country and region label the feature)."""
    from globe.geo.gazetteer import load

    g = load()
    f = features()[i]
    return int(np.argmin(haversine_km(f.lat, f.lon, g.lat, g.lon)))


@lru_cache(maxsize=16384)
def lies_in(i: int, country: str, admin1: str | None = None) -> bool:
    """Whether feature `i` is within AREA_KM of a gazetteer place of the country, or of its
    first-level region `admin1` (a code) when given."""
    rows = _area_rows().get((country, admin1) if admin1 is not None else (country,))
    if rows is None or not len(rows):
        return False
    from globe.geo.gazetteer import load

    g = load()
    f = features()[i]
    return bool(np.min(haversine_km(f.lat, f.lon, g.lat[rows], g.lon[rows])) <= AREA_KM)


@cache
def _area_rows() -> dict[tuple, np.ndarray]:
    """(country,) and (country, admin1 code) -> gazetteer rows."""
    from globe.geo.gazetteer import load

    g = load()
    groups: dict[tuple, list[int]] = {}
    for row, (cc, admin1) in enumerate(zip(g.country_code, g.admin1_code)):
        groups.setdefault((cc,), []).append(row)
        groups.setdefault((cc, admin1), []).append(row)
    return {k: np.asarray(v) for k, v in groups.items()}


def lookup(text: str, inner: bool = False) -> list[int]:
    """Indexes of the features named exactly `text` (after folding and expanding abbreviations);
    `inner` for a run of words inside a longer text (no park by its bare name)."""
    return list(index(inner).get(feature_key(text), ()))


def one_place(ids: list[int]) -> bool:
    """True when the features lie within SAME_KM of the first (one feature, listed more than once)."""
    fs = features()
    return all(haversine_km(fs[ids[0]].lat, fs[ids[0]].lon, fs[i].lat, fs[i].lon) <= SAME_KM for i in ids)
