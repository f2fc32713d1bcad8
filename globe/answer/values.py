"""Cleaning one written value: markdown, "France (FR)", "unknown", yes/no."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

MARKDOWN_RE = re.compile(r"[*`#]+|(?<!\w)_+|_+(?!\w)")


def strip_markdown(text: str) -> str:
    if "*" in text or "`" in text or "#" in text or "_" in text:
        return MARKDOWN_RE.sub("", text)
    return text


# Lowercase words that belong inside place names ("Rio de Janeiro", "Frankfurt am Main").
NAME_PARTICLES = frozenset({"of", "and", "the", "de", "du", "da", "do", "dos", "das", "del", "della", "di", "la", "le",
                            "el", "al", "van", "von", "y", "et", "upon", "im", "am", "an", "der", "ob", "sur", "in"})
NONE_VALUES = {"", "unknown", "n/a", "na", "none", "null", "-", "?", "unclear", "uncertain", "not sure",
               "undetermined", "indeterminate", "cannot be determined", "not determinable"}
_YES = {"yes", "y", "true", "1", "localizable", "high"}
_NO = {"no", "n", "false", "0", "not localizable", "low"}


def clean_value(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = strip_markdown(str(value))
    text = re.sub(r"\s*\([^()]*\)\s*$", "", text)  # "France (FR)" -> "France"
    text = text.strip().strip("\"'“”‘’").strip().rstrip(".;,:").strip()
    return None if text.casefold() in NONE_VALUES else text


def localizable_from(value: str | None) -> bool | None:
    if value is None:
        return None
    word = value.strip().casefold()
    first = word.split()[0].strip(".,;:!") if word.split() else ""
    if word in _NO or first in _NO:
        return False
    if word in _YES or first in _YES:
        return True
    return None


# ----------------------------------------------------------------------------- refused values
# A value that is not a name: markup ("</think>", "answer>", a truncated "</thi", another field's
# key run into it: "city: Paris city: Paris"), a bare number
# where a name belongs ("55.5525", "48.85° N"), or text that cleaning empties ("**", "..."). A
# model that writes these has not answered, so the field is unparsed and the format is not ok.
_TAG_FRAGMENT_RE = re.compile(r"[<>]|(?:^|[\s/])/?(?:think|answer)\s*/?$|^/\s*(?:think|answer)\b"
                              r"|\b(?:country|city|lat|lon|latitude|longitude)\s*[:=]", re.IGNORECASE)
_NUMBER_ONLY_RE = re.compile(r"[\s\d.,:;+\-−–°º'′\"″()/NSEWnsew]*\d[\s\d.,:;+\-−–°º'′\"″()/NSEWnsew]*")


@lru_cache(maxsize=65536)
def country_code(name: str) -> str | None:
    """normalize_country, cached (every GRPO step asks the same few names), never raising: the
    parser's one way to ask whether a name is a country."""
    try:
        from globe.geo import normalize_country

        return normalize_country(name)
    except Exception:  # noqa: BLE001 - a parser that raises would stop a training run
        return None


# Prose where a name belongs: the reasoning run on into a field, as a real (tiny) policy wrote it.
# A place name has no word fused to a number ("India. The tropical latitudes9.7.0", "flag364"), and
# not four lowercase words besides the particles names are made of ("the skyline; that silhouette
# belongs to New York City"). Long landmark names are capitalised ("Basílica Nuestra Señora del
# Rosario y Convento de Santo Domingo"), and a hedged answer keeps its place ("Likely a rural area
# in Jiangxi Province": three). Nor is a part of an address a lowercase common word beside
# capitalised names ("band, the colours of Germany"); an address written all in lowercase ("paris,
# île-de-france, france") is a name, unless a part of it opens with an article or a determiner and
# names no place the gazetteer knows ("the colours", "this city"; "the hague", "a coruña" are kept).
_FUSED_NUMBER_RE = re.compile(r"[^\W\d_]\.?\d")
_WORD_RE = re.compile(r"[^\W\d_][\w'’-]*")
_MAX_PROSE_WORDS = 3
_DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "its", "their", "his", "her",
                          "our", "my", "your", "some", "any", "no"})


@lru_cache(maxsize=4096)
def _known_name(text: str) -> bool:
    """Whether the gazetteer has a place whose name is `text` (folded), or a country is called so."""
    try:
        from globe.geo.gazetteer import load
        from globe.geo.text import fold

        g = load()
        return bool(g.rows(g.by_name, fold(text))) or country_code(text) is not None
    except Exception:  # noqa: BLE001 - a parser that raises would stop a training run
        return True  # without a gazetteer, a lowercase name keeps the benefit of the doubt


def _is_prose(text: str) -> bool:
    if _FUSED_NUMBER_RE.search(text):
        return True
    words = _WORD_RE.findall(text)
    lowercase = [w for w in words if w[0].islower() and w.casefold() not in NAME_PARTICLES]
    if len(lowercase) > _MAX_PROSE_WORDS:
        return True
    pieces = [p.strip() for p in re.split(r"[,;]", text)]
    if not any(w[0].isupper() for w in words):  # an address written all in lowercase is a name, unless
        return any(p and p.split()[0] in _DETERMINERS and not _known_name(p) for p in pieces)  # a part is a phrase
    parts = [_WORD_RE.findall(p) for p in pieces]
    return len(parts) > 1 and any(  # a country in lowercase ("Paris, france") is a name too
        p and all(w[0].islower() for w in p) and not all(w.casefold() in NAME_PARTICLES for w in p)
        and country_code(" ".join(p)) is None for p in parts)


def refusal(raw: Any) -> str | None:
    """Why a written name value is not a name ("tag", "number", "empty", "prose"), or None when it may be one.

    A value that is absent or blank is not refused (it is simply not given: `format_answer` writes
    `city:` for an unknown city), nor is an honest "unknown"; refusal is for text that is there but
    is not a name.

    >>> refusal("</think>"), refusal("55.5525"), refusal("**"), refusal("Paris"), refusal(""), refusal("unknown")
    ('tag', 'number', 'empty', None, None, None)
    >>> refusal("the skyline; that silhouette belongs to New York City"), refusal("India. The tropical latitudes9.7")
    ('prose', 'prose')
    >>> refusal("band, the colours of Germany"), refusal("Rome, Lazio, Italy"), refusal("rio de janeiro, brazil")
    ('prose', None, None)
    >>> refusal("the colours"), refusal("the hague"), refusal("a coruña, spain")
    ('prose', None, None)
    >>> refusal("Church of St. Michael the Archangel in Dębno"), refusal("Frankfurt am Main")
    (None, None)
    """
    if raw is None or isinstance(raw, (dict, list, bool)):
        return None
    text = str(raw).strip()
    if not text:
        return None
    if _TAG_FRAGMENT_RE.search(text):
        return "tag"
    if _NUMBER_ONLY_RE.fullmatch(text):
        return "number"
    if isinstance(raw, (int, float)):
        return "number"
    cleaned = clean_value(text)
    if cleaned is None and not strip_markdown(text).strip().strip("\"'“”‘’").strip().rstrip(".;,:").strip() \
            .casefold() in NONE_VALUES - {""}:
        return "empty"
    if cleaned is not None and _is_prose(cleaned):
        return "prose"
    return None
