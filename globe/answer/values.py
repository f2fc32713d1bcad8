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
