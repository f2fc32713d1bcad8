"""`parse`: the fast reader for GLOBE's format first, then the general one."""

from __future__ import annotations

import re
from typing import Any

from globe.answer.coordinates import parse_coordinates
from globe.answer.places import from_free_text
from globe.answer.refuse import refuse_fields
from globe.answer.result import Answer
from globe.answer.strict import parse_strict
from globe.answer.structured import from_json, from_lines
from globe.answer.tags import format_ok, regions
from globe.answer.values import refusal

_LOCALIZABLE_RE = re.compile(
    r"\blocali[sz](?:able|ability)\b\s*\??\s*[\"']?\s*[:=：]\s*[*_`\"']*\s*(yes|no|true|false|y|n)\b", re.IGNORECASE
)


def parse(text: Any) -> Answer:
    """Read country, city, coordinates and the localizability verdict from any model text.

    Never raises. Unknown fields are None; `format_ok` is the strict GLOBE tag format.

    >>> a = parse("<think>Eiffel Tower.</think><answer>country: France\\ncity: Paris</answer>")
    >>> (a.country, a.city, a.format_ok)
    ('France', 'Paris', True)
    >>> parse("The image was most likely taken in Hanoi, Vietnam, Asia.").city
    'Hanoi'
    """
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    try:
        strict = parse_strict(raw)
    except Exception:  # noqa: BLE001 - the contract is "never raises"
        strict = None
    if strict is not None:
        return strict
    answer = Answer(raw=raw)
    try:
        read_general(answer, raw)
    except Exception:  # noqa: BLE001 - keep what was read so far
        pass
    return answer


def read_general(answer: Answer, raw: str) -> None:
    answer.format_ok = format_ok(raw)
    think, answer_text, region = regions(raw)
    answer.think, answer.answer_text = think, answer_text
    m = _LOCALIZABLE_RE.search(raw) if ("ocali" in raw or "OCALI" in raw) else None
    if m:
        answer.localizable = m.group(1).casefold() in ("yes", "true", "y")
    place: dict[str, Any] = {}
    coords: tuple[float, float] | None = None
    for source, reader in (("json", from_json), ("lines", from_lines)):
        got = reader(region)
        if answer.localizable is None and got.get("localizable") is not None:
            answer.localizable = got["localizable"]
        coords = coords or got.get("coords")
        if got.get("country") or got.get("city") or got.get("refused"):
            place, answer.source = got, source
            break
    coords = coords or parse_coordinates(region)
    if coords:
        answer.lat, answer.lon = coords
    if not place:
        place = from_free_text(region)
        if place.get("country") or place.get("city"):
            answer.source = "free_text"
    answer.country, answer.city, refused = refuse_fields(place.get("country"), place.get("city"))
    refused = tuple(sorted({*place.get("refused", ()), *refused}))
    if refused:
        answer.refused, answer.format_ok = refused, False
        if answer.source != "none" and not (answer.country or answer.city):
            answer.source = "none"
    # a short text read whole as a place, unless it is coordinates ("Latitude: -33.86 / Longitude: 151.2")
    answer.place = place.get("place") if not (coords and answer.source != "json" and not answer.city) else None
    if answer.place is not None and refusal(answer.place) in ("tag", "number"):
        answer.place = None
    if answer.source == "none" and coords:
        answer.source = "lines"
