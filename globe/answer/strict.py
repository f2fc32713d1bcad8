"""The fast reader for GLOBE's own format, the text every GRPO step scores.

Every reward parses every completion at every step, and a regex scan over a long <think> costs
more than the rest of the reward, so this reader uses only str methods on the <think> and caches
the short answer body (a policy writes the same few answers after ever different thoughts). It
answers only for text it fully understands and returns None otherwise; a property test checks
that wherever it answers, the general reader agrees.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from globe.answer.coordinates import DIGIT_RE, valid_coordinates
from globe.answer.refuse import refuse_fields
from globe.answer.result import Answer
from globe.answer.values import NONE_VALUES, clean_value, refusal

_STRICT_NUMBER_RE = re.compile(r"-?\d{1,3}(?:\.\d+)?")
_PLAIN_VALUE_RE = re.compile(r"[^\W_][\w '’-]*")


@lru_cache(maxsize=65536)


def _fast_value(value: str) -> str | None:
    if _PLAIN_VALUE_RE.fullmatch(value):
        return None if value.casefold() in NONE_VALUES else value
    return clean_value(value)


def _strict_field(line: str, key: str) -> str | None:
    """The value of a `key: value` line, or None when the line is not exactly that."""
    name, colon, value = line.partition(":")
    if not colon or name.strip() != key:
        return None
    value = value.strip()
    return None if ":" in value else value


@lru_cache(maxsize=65536)


def _strict_tail(tail: str) -> tuple[Any, ...] | None:
    """What follows `<answer>` in GLOBE's format -> (country, city, lat, lon, closed, answer_text,
    source), or None when it is not in that format (cached: a policy writes the same few answers
    over and over, each after a different <think>)."""
    body = tail.rstrip()
    closed = body.endswith("</answer>")
    if closed:
        body = body[:-9]
    lines = body.strip().split("\n")
    if len(lines) not in (2, 4) or "<" in body or "ocali" in body or "OCALI" in body:
        return None
    country, city = _strict_field(lines[0], "country"), _strict_field(lines[1], "city")
    if country is None or city is None or DIGIT_RE.search(country) or DIGIT_RE.search(city):
        return None  # digits in a name may be coordinates: the general reader looks for them
    lat = lon = None
    if len(lines) == 4:
        lat_text, lon_text = _strict_field(lines[2], "lat"), _strict_field(lines[3], "lon")
        number = _STRICT_NUMBER_RE.fullmatch
        if not (lat_text and lon_text and number(lat_text) and number(lon_text)):
            return None
        lat, lon = valid_coordinates(float(lat_text), float(lon_text)) or (None, None)
    empty = tuple(k for k, v in (("country", country), ("city", city)) if v and refusal(v) == "empty")
    country, city, refused = refuse_fields(_fast_value(country), _fast_value(city))
    refused = tuple(sorted({*empty, *refused}))
    source = "lines" if (country or city or lat is not None) else "none"
    return country, city, lat, lon, closed and not refused, body.strip(), source, refused


def parse_strict(raw: str) -> Answer | None:
    """GLOBE's own format (also when generation stopped before </answer>), or None for anything else.

    Anything unusual (other tags, markdown keys, localizability lines, extra lines) returns None
    and is left to the general reader, so both paths agree wherever this one answers. Only str
    methods scan the long <think>: this runs for every completion of every GRPO step.
    """
    if raw.startswith("<think>"):
        text = raw
    else:
        text = raw.lstrip()
        if not text.startswith("<think>"):
            return None
    start = text.rfind("<answer>")
    end = text.rfind("</think>", 7, start) if start > 0 else -1
    if end < 0 or text.find("<", 7, end) >= 0 or (end + 8 < start and not text[end + 8:start].isspace()):
        return None
    tail = _strict_tail(text[start + 8:])
    if tail is None:
        return None
    think = text[7:end]
    # a localizability line needs a separator; most thoughts have none, so skip the word search
    if (":" in think or "=" in think or "：" in think) and ("ocali" in think or "OCALI" in think):
        return None
    return Answer(think.strip(), tail[5], tail[0], tail[1], tail[2], tail[3], None, tail[4], raw, tail[6], None, tail[7])
