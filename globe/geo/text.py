"""Text folding for place names: one rule shared by every index and every query.

Matching is exact on folded strings (no fuzzy search): a fuzzy matcher turns "Republic of Korea"
into North Korea and "U.S." into the US Virgin Islands, and a wrong place is worse than none.
Folding removes what people and models vary without meaning a different place: case, Latin
diacritics (Zürich/Zurich, São Paulo/Sao Paulo), punctuation (U.S./US, Côte d'Ivoire/Cote dIvoire),
hyphens and repeated spaces, and a leading "the".
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters that NFKD does not decompose into base + combining mark.
_EXTRA = str.maketrans({
    "ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe", "đ": "d", "Đ": "d",
    "ł": "l", "Ł": "l", "ı": "i", "ß": "ss", "þ": "th", "Þ": "th", "ð": "d", "Ð": "d",
    "ħ": "h", "Ħ": "h", "ŀ": "l", "Ŀ": "l",
})
_DROP = re.compile(r"[.'’‘`´ʻʼ\"“”]")
_SPACE = re.compile(r"[\s\-‐–—_,;:/()\[\]{}!?&+*]+")


# The Combining Diacritical Marks block: the accents of Latin, Greek and Cyrillic letters. Kana
# voicing marks (U+3099/U+309A), which NFKD also splits off, lie outside it and are kept.
_MARKS = re.compile("[\u0300-\u036f]")


def fold_uncached(text: str) -> str:
    """Normalise a place name for exact matching: 'The U.S.' -> 'us', 'Zürich' -> 'zurich'."""
    if text.isascii():
        out = text.lower()
    else:
        decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA))
        out = unicodedata.normalize("NFC", _MARKS.sub("", decomposed)).casefold()
    out = _SPACE.sub(" ", _DROP.sub("", out)).strip()
    return out[4:] if out.startswith("the ") else out


fold = lru_cache(maxsize=65536)(fold_uncached)
