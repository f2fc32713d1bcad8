"""Cleaning one written value: markdown, "France (FR)", "unknown", yes/no."""

from __future__ import annotations

import re
from typing import Any

MARKDOWN_RE = re.compile(r"[*`#]+|(?<!\w)_+|_+(?!\w)")


def strip_markdown(text: str) -> str:
    if "*" in text or "`" in text or "#" in text or "_" in text:
        return MARKDOWN_RE.sub("", text)
    return text


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


def refusal(raw: Any) -> str | None:
    """Why a written name value is not a name ("tag", "number", "empty"), or None when it may be one.

    A value that is absent or blank is not refused (it is simply not given: `format_answer` writes
    `city:` for an unknown city), nor is an honest "unknown"; refusal is for text that is there but
    is not a name.

    >>> refusal("</think>"), refusal("55.5525"), refusal("**"), refusal("Paris"), refusal(""), refusal("unknown")
    ('tag', 'number', 'empty', None, None, None)
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
    if clean_value(text) is None and not strip_markdown(text).strip().strip("\"'“”‘’").strip().rstrip(".;,:").strip() \
            .casefold() in NONE_VALUES - {""}:
        return "empty"
    return None
