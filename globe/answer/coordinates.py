"""Coordinates as models write them: `lat: 48.85`, `48.8566° N, 2.3522° E`, `40°42′46″N`, `(48.85, 2.35)`."""

from __future__ import annotations

import math
import re

_NUM = r"\d{1,3}(?:\.\d+)?"
COORD = (
    r"(?P<sign{i}>[-+−–])?\s*(?<![\d.])(?P<deg{i}>" + _NUM + r")(?!\d)(?!\.\d)\s*(?:°|º|˚|deg(?:rees)?\b)?\s*"
    r"(?:(?P<min{i}>\d{1,2}(?:\.\d+)?)\s*['′’]\s*(?:(?P<sec{i}>\d{1,2}(?:\.\d+)?)\s*(?:\"|″|''|”)\s*)?)?"
    r"(?P<hemi{i}>(?:north|south|east|west|[NSEWnsew])(?![A-Za-z]))?"
)


def coord(i: int) -> str:
    return COORD.replace("{i}", str(i))


# Hedges models put between a label and its number: "Latitude: approximately 35.68", "~35.68".
_HEDGE = r"(?:(?:approximately|approx\.?|about|around|roughly|circa|ca\.|near|estimated|est\.)\s*|[~≈]\s*)?"
_LAT_RE = re.compile(r"\blat(?:itude)?\b[\"']?\s*[:=：]?\s*" + _HEDGE + coord(1), re.IGNORECASE)
_LON_RE = re.compile(
    r"(?:\b(?:lon|lng|longitude)\b|\blong\b(?=[\"']?\s*[:=：]))[\"']?\s*[:=：]?\s*" + _HEDGE + coord(1),
    re.IGNORECASE,
)
_PAIR_RE = re.compile(coord(1) + r"\s*[,;/]?\s*" + coord(2))
DIGIT_RE = re.compile(r"\d")
_BARE_PAIR_RE = re.compile(r"\(?\s*(?<![\d.])([-+]?\d{1,2}\.\d+)(?!\.?\d)\s*,\s*([-+]?\d{1,3}\.\d+)(?!\.?\d)\s*\)?")


def coord_value(m: re.Match[str], i: int) -> tuple[float, str | None]:
    value = float(m.group(f"deg{i}"))
    if m.group(f"min{i}"):
        value += float(m.group(f"min{i}")) / 60.0
    if m.group(f"sec{i}"):
        value += float(m.group(f"sec{i}")) / 3600.0
    hemi = (m.group(f"hemi{i}") or "")[:1].upper() or None
    if (m.group(f"sign{i}") or "+") != "+" or hemi in ("S", "W"):
        value = -value
    return value, hemi


def valid_coordinates(lat: float | None, lon: float | None) -> tuple[float, float] | None:
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
        return float(lat), float(lon)
    return None


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """(lat, lon) from labelled lines, a hemisphere pair or a short bare pair; None otherwise.

    >>> parse_coordinates("Latitude: 48.85 / Longitude: 2.35")
    (48.85, 2.35)
    >>> parse_coordinates("33.87° S, 151.21° E")
    (-33.87, 151.21)
    """
    if not DIGIT_RE.search(text):
        return None
    if "*" in text or "_" in text or "`" in text:  # "**Latitude:** 48.85"
        from globe.answer.values import strip_markdown

        text = strip_markdown(text)
    lat_m, lon_m = _LAT_RE.search(text), _LON_RE.search(text)
    if lat_m and lon_m:
        found = valid_coordinates(coord_value(lat_m, 1)[0], coord_value(lon_m, 1)[0])
        if found:
            return found
    for m in _PAIR_RE.finditer(text):
        (a, ha), (b, hb) = coord_value(m, 1), coord_value(m, 2)
        if ha in ("N", "S") and hb in ("E", "W"):
            found = valid_coordinates(a, b)
        elif ha in ("E", "W") and hb in ("N", "S"):
            found = valid_coordinates(b, a)
        else:
            continue
        if found:
            return found
    if len(text) <= 80:  # a bare "(48.85, 2.35)" is only trusted as the whole answer
        m = _BARE_PAIR_RE.search(text)
        if m:
            return valid_coordinates(float(m.group(1)), float(m.group(2)))
    return None
