"""Places named in free text: "…most likely taken in Hanoi, Vietnam, Asia.", "Qingdao, China".

The concluding sentence is found (the last one with a conclusion phrase and a country, else the
last one with a country); runs of capitalised words in it are offered to
`globe.geo.normalize_country`, and the first country after the last conclusion phrase wins, unless
the same address goes on to another one ("San Francisco, CA 94117, USA"; "Vatican City, Rome,
Italy"), which is then the country. The city is the most specific name of a "City, Region,
Country" chain ending at that country, else a name introduced as "near X", "a city like X", "the
city of X". Continents and regions are never countries (normalize_country returns None for them)
nor cities (a short list of region words).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from globe.answer.values import NAME_PARTICLES, NONE_VALUES, country_code, strip_markdown

_WORD_RE = re.compile(r"[^\W\d_][\w'’.\-]*")
# Sentence openers that are capitalised without being names ("Therefore, Hanoi, Vietnam").
_OPENERS = {"therefore", "thus", "hence", "however", "overall", "additionally", "finally", "based", "given",
            "considering", "combining", "this", "these", "it", "there", "in", "on", "at", "a", "an", "so",
            "also", "moreover", "furthermore", "consequently", "accordingly", "while", "although", "with",
            "without", "i", "my", "answer", "final", "yes", "no", "the", "it's", "it’s", "that's", "that’s", "i'd",
            "i’d", "i'm", "i’m", "taken", "located", "situated", "photographed", "probably", "likely", "possibly",
            "perhaps", "maybe", "somewhere", "near", "here's", "here’s", "this's", "we're", "we’re", "i'll", "i’ll"}
# Words that may precede a country inside one capitalised run: "Northern Italy" -> Italy ("New Mexico" stays).
_MODIFIERS = {"the", "northern", "southern", "eastern", "western", "central", "north", "south", "east", "west",
              "northeastern", "northwestern", "southeastern", "southwestern", "rural", "coastal", "mainland",
              "upper", "lower", "inland", "tropical", "urban", "suburban"}
# A city candidate containing one of these is a region, a continent or a description, not a city.
_REGION_WORDS = {"europe", "asia", "africa", "america", "americas", "oceania", "antarctica", "scandinavia",
                 "balkans", "caribbean", "mediterranean", "isles", "hemisphere", "middle", "sahara", "alps",
                 "andes", "himalayas", "patagonia", "siberia", "pacific", "atlantic", "continent", "region",
                 "country", "world", "northwest", "northeast", "southwest", "southeast", "arctic", "savannah",
                 "highway", "street", "road", "avenue", "territory", "province", "state", "county", "desert"}
_CONCLUSION_RE = re.compile(
    r"\b(?:most likely|most probably|taken in|taken on|located in|therefore|thus|in conclusion|conclude|"
    r"combining|based on|considering|given these|overall)\b",
    re.IGNORECASE,
)
_COUNTRY_IS_RE = re.compile(r"\bcountry\s+(?:is|would be)\s+(?:likely\s+|probably\s+|most likely\s+)?", re.IGNORECASE)
_ABBREV_END_RE = re.compile(r"(?:\b[A-Za-z]\.)+$|\b(?:St|Mt|Mr|Dr|vs|approx|etc|Ft)\.$")
_NOT_A_NAME_RE = re.compile(r"[^\w\s'’.\-]|[\d_]")
_SENTENCE_END_RE = re.compile(r"[.!?]+[\"”')\]]*(?:\s+|$)|\n+")
_NEAR_CITY_RE = re.compile(
    r"\b(?:city|town|village|cities|towns|capital|outskirts|suburbs)\s+(?:of|like|such as|called|named)\s+"
    r"|\b(?:near|around|possibly in|probably in|likely in|specifically in|perhaps in)\s+",
    re.IGNORECASE,
)


def _country_of(name: str) -> tuple[str, str] | None:
    """(name without a sentence-final full stop or a possessive, ISO code) when `name` is a country."""
    name = name.strip()
    if name.endswith(".") and not _ABBREV_END_RE.search(name):
        name = name.rstrip(".")
    if name.endswith(("'s", "’s")) and len(name) > 3:  # "New Zealand's South Island"
        name = name[:-2]
    code = country_code(name) if name else None
    return (name, code) if code else None


@lru_cache(maxsize=4096)


def _is_english_name(name: str, code: str) -> bool:
    """True when `name` is the country's English name ("Italy"), not a local-language alias.

    Used after dropping a modifier ("South Island" -> "Island" is Iceland in Icelandic).
    """
    try:
        from globe.geo import country_name
        from globe.geo.text import fold

        return fold(country_name(code)) == fold(name)
    except Exception:  # noqa: BLE001
        return False


@dataclass(frozen=True)


class _Run:
    """Capitalised words in a row (name connectors allowed inside): "Bosnia and Herzegovina"."""

    words: tuple[tuple[int, int, str], ...]

    @property
    def start(self) -> int:
        return self.words[0][0]

    @property
    def end(self) -> int:
        return self.words[-1][1]

    def text(self, i: int = 0, j: int | None = None) -> str:
        return " ".join(w[2] for w in self.words[i:j])


def _capitalised(word: str) -> bool:
    return word[0].isupper() or (word[:2].casefold() in ("d'", "d’") and len(word) > 2 and word[2].isupper())


def _cap_runs(text: str) -> list[_Run]:
    runs: list[_Run] = []
    cur: list[tuple[int, int, str]] = []

    def close() -> None:
        while cur and not _capitalised(cur[-1][2]):
            cur.pop()
        while cur and cur[0][2].casefold() in _OPENERS:
            cur.pop(0)
        if cur:
            runs.append(_Run(tuple(cur)))
        cur.clear()

    for m in _WORD_RE.finditer(text):
        word = (m.start(), m.end(), m.group(0))
        joined = bool(cur) and text[cur[-1][1]:m.start()].isspace() and not (
            cur[-1][2].endswith(".") and not _ABBREV_END_RE.search(cur[-1][2]))
        if _capitalised(word[2]) or (joined and word[2].casefold() in NAME_PARTICLES):
            if not joined:
                close()
            cur.append(word)
        else:
            close()
    close()
    return runs


def _country_in_run(run: _Run, i: int = 0, j: int | None = None) -> tuple[int, str] | None:
    """(index of the country's first word, country text) when the run names a country."""
    j = len(run.words) if j is None else j
    while i < j and run.words[i][2].islower():  # a piece split off at "of the United States"
        i += 1
    if i >= j:
        return None
    hit = _country_of(run.text(i, j))
    if hit:
        return i, hit[0]
    for k in range(i + 1, j):  # "New Zealand's South Island"
        if run.words[k - 1][2].endswith(("'s", "’s")) and (hit := _country_of(run.text(i, k))):
            return i, hit[0]
    if not any(w[2].casefold().strip(".") in _REGION_WORDS for w in run.words[i:j]):
        for k in range(i + 1, j):  # "Northern Italy" -> Italy; "New Mexico", "South America" stay
            if run.words[k - 1][2].casefold() not in _MODIFIERS:
                break
            hit = _country_of(run.text(k, j))
            if hit and _is_english_name(hit[0], hit[1]):
                return k, hit[0]
    for k in range(i, j):  # "Germany and Austria" -> Germany, "Hanoi in Vietnam" -> Vietnam
        if run.words[k][2].islower():
            return _country_in_run(run, i, k) or _country_in_run(run, k + 1, j)
    return None


_LEADING_HEDGE_RE = re.compile(r"^(?:near|around|outside|close to|somewhere in|probably|possibly|likely)\s+",
                               re.IGNORECASE)
_ADDRESS_GAP_RE = re.compile(r"[\s\d\-]*,\s*(?:the\s+)?")  # "CA 94117, " between a state code and the country
# A place named inside an address that ends at another country: "Vatican City, Rome, Italy". An
# address runs from the most specific name to the most general, so a country followed by one or two
# names and then a country lies inside the last (a list of countries, "Germany, Austria or
# Switzerland", has no name between them and keeps the first).
_HOST_GAP_RE = re.compile(r"(?:,\s*(?:the\s+)?[A-Z][\w'’.\-]*(?:\s+[A-Z][\w'’.\-]*){0,3}){1,2},\s*(?:the\s+)?")


def _is_code(name: str) -> bool:
    """A country written as a two-letter code ("CA", "GA", "IN"): in an address, usually a state's."""
    compact = name.replace(".", "").strip()
    return len(compact) == 2 and compact.isupper()


@lru_cache(maxsize=4096)
def _weak(name: str) -> bool:
    """A country reading that a later country in the same address overrules: a two-letter code
    (a state's: "CA", "GA") or a name that is a country only in translation ("Granada" is Grenada
    in Spanish: "Granada, Spain")."""
    if _is_code(name):
        return True
    try:
        from globe.geo.countries import is_country_name

        return not is_country_name(name)
    except Exception:  # noqa: BLE001
        return False


def _is_city_name(name: str, require_caps: bool = True) -> bool:
    words = name.replace(",", " ").split()
    if not words or len(words) > 5 or (require_caps and not _capitalised(name)):
        return False
    if name.casefold() in NONE_VALUES or _NOT_A_NAME_RE.search(name):
        return False
    first = words[0].casefold()
    if first in _MODIFIERS or first in _OPENERS:
        return False
    if any(w.casefold().strip(".") in _REGION_WORDS for w in words):
        return False
    country = _country_of(name)  # a country only in translation is a city here: "Tunis, Tunisia"
    return country is None or (not _is_code(country[0]) and _weak(country[0]))


def _sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END_RE.finditer(text):
        if "\n" not in m.group(0) and _ABBREV_END_RE.search(text, max(start, m.start() - 12), m.start() + 1):
            continue
        out.append(text[start:m.end()].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _chain_before(sentence: str, pos: int) -> list[str]:
    """The names of a "Landmark, City, Admin, " chain that ends at `pos`, most specific first."""
    chain: list[str] = []
    head = sentence[max(0, pos - 160):pos]
    for _ in range(3):
        m = re.search(r",\s*(?:the\s+)?$", head)
        if not m:
            break
        head = head[:m.start()]
        runs = _cap_runs(head)
        if not runs or runs[-1].end != len(head):
            break
        chain.append(runs[-1].text())
        head = head[:runs[-1].start]
    return chain[::-1]


def _city_before(sentence: str, pos: int) -> str | None:
    """The most specific name of a "City, Admin, Country" chain that ends at `pos`."""
    chain: list[str] = []
    head = sentence[max(0, pos - 160):pos]  # three names and their commas fit in this window
    for _ in range(3):
        m = re.search(r",\s*(?:the\s+)?$", head)
        if not m:
            break
        head = head[:m.start()]
        runs = _cap_runs(head)
        if not runs or runs[-1].end != len(head):
            break
        chain.append(runs[-1].text())
        head = head[:runs[-1].start]
    for name in reversed(chain):  # leftmost (most specific) first
        if _is_city_name(name.rstrip(".") if not _ABBREV_END_RE.search(name) else name):
            return name
    return None


def _city_near(sentence: str) -> str | None:
    """A city named as "near Nairobi", "a city like Tampere", "the city of Versailles"."""
    for m in _NEAR_CITY_RE.finditer(sentence):
        runs = _cap_runs(sentence[m.end():m.end() + 60])
        if runs and runs[0].start == 0:
            name = runs[0].text()
            name = name if _ABBREV_END_RE.search(name) else name.rstrip(".")
            if _is_city_name(name):
                return name
    return None


def _place_in_sentence(sentence: str) -> tuple[str | None, str | None, str | None]:
    """(city, country) named in one sentence; the first country after the last conclusion phrase wins."""
    m = _COUNTRY_IS_RE.search(sentence)
    if m:
        anchor = m.end()
    else:
        anchors = list(_CONCLUSION_RE.finditer(sentence))
        anchor = anchors[-1].start() if anchors else 0
    found: list[tuple[int, str]] = []
    for run in _cap_runs(sentence):
        hit = _country_in_run(run)
        if hit:
            found.append((run.words[hit[0]][0], hit[1]))
    if not found:
        return None, None, None
    pos, country = next((f for f in found if f[0] >= anchor), found[0])
    after = next((f for f in found if f[0] > pos), None)
    if after and not _weak(after[1]):
        gap = sentence[pos + len(country):after[0]]
        if (_weak(country) and _ADDRESS_GAP_RE.fullmatch(gap)) or _HOST_GAP_RE.fullmatch(gap):
            pos, country = after  # the country follows in the same address
    chain = _chain_before(sentence, pos)
    place = ", ".join([*chain, country]) if len(chain) > 1 else None
    return _city_before(sentence, pos) or _city_near(sentence), country, place


def comma_place(text: str) -> tuple[str | None, str | None]:
    """(city, country) from a short place string: "Qingdao, China", "paris, île-de-france, france".

    Every comma part must look like a name (at most four words), so a sentence such as
    "Sorry, I cannot tell" is not read as a city called "Sorry".
    """
    parts = [_LEADING_HEDGE_RE.sub("", p.strip(" .\"'")) for p in re.split(r"[,\n]", text) if p.strip(" .\"'")]
    parts = [p for p in parts if p]
    if not parts or len(parts) > 4 or any(len(p.split()) > 4 for p in parts):
        return None, None
    countries = [_country_of(p) for p in parts]
    names = [bool(c) or _is_city_name(p, require_caps=False) or p.casefold() in _REGION_WORDS
             for p, c in zip(parts, countries)]
    if not all(names):
        return None, None
    named = [i for i, hit in enumerate(countries) if hit]
    if len(named) > 1 and _weak(countries[named[0]][0]):  # "Atlanta, GA, USA": GA is Georgia, not Gabon
        named = [i for i in named if not _weak(countries[i][0])] or named
    for i in named[:1]:
        hit = countries[i]
        if hit:
            city = next((p for p in parts[:i] if _is_city_name(p, require_caps=False)), None)
            return city, hit[0]
    return (parts[0] if _is_city_name(parts[0], require_caps=False) else None), None


def from_free_text(region: str) -> dict[str, Any]:
    text = strip_markdown(region[-6000:])  # conclusions come last; bound the work
    best: tuple[str | None, str | None, str | None] | None = None
    for sentence in reversed(_sentences(text)[-12:]):
        city, country, place = _place_in_sentence(sentence)
        if not country:
            continue
        if _CONCLUSION_RE.search(sentence):
            best = (city, country, place)
            break
        best = best or (city, country, place)
    short = text.strip() if len(text) <= 200 and "\n" not in text.strip() else None
    if short and short.rstrip(".").casefold() in NONE_VALUES:
        short = None
    if short and not (best and _CONCLUSION_RE.search(short)):
        # a short answer that is not a sentence about a place is a place as written ("Chelsea Market, New York City, USA", "Sydney
        # Opera House"): the geocoder reads all of it, even where no city or country is recognised
        best = (*(best[:2] if best else comma_place(text)), short.rstrip("."))
    if best is None or not (best[0] or best[1] or best[2]):
        return {}
    return {"city": best[0], "country": best[1], "place": best[2]}
