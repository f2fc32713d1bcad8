"""Structured answers: `key: value` lines and JSON objects (fenced or bare, Nominatim-style)."""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from globe.answer.coordinates import coord, coord_value, parse_coordinates, valid_coordinates
from globe.answer.places import comma_place
from globe.answer.values import clean_value, localizable_from, refusal, strip_markdown

_KEYS = r"country|nation|city|town|location|place|address|localizable|localizability|region|state|province"
_KV_RE = re.compile(
    r"(?:^|[\n,;|{]|\b)\s*(?:(?:predicted|final|guessed|estimated|most likely|likely)\s+)?"
    r"(?P<key>country|nation|city|town|location|place|address|localizable|localizability|state|province|region)"
    r"(?:\s+name)?"
    r"[ \t]*\??[ \t]*[\"']?[ \t]*[:=：][ \t]*(?P<value>[^\n]*?)\s*"
    r"(?=(?:[,;|]\s*|\s+)(?:" + _KEYS + r"|lat|latitude|lon|lng|longitude)\b\s*[:=：]|\n|$)",
    re.IGNORECASE,
)


def from_lines(region: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if ":" not in region and "=" not in region and "：" not in region:
        return found
    plain = strip_markdown(region)
    refused: list[str] = []
    for m in _KV_RE.finditer(plain):
        key = m.group("key").casefold()
        key = {"nation": "country", "town": "city", "localizability": "localizable",
               "place": "location", "address": "location", "state": "region", "province": "region"}.get(key, key)
        if key in found or key in refused:
            continue
        if key in ("country", "city") and refusal(m.group("value")):
            refused.append(key)
            continue
        value = clean_value(m.group("value"))
        if key == "localizable":
            if (flag := localizable_from(value)) is not None:
                found[key] = flag
        elif value:
            found[key] = value
    if "location" in found and not ("country" in found and "city" in found):
        city, country = comma_place(found["location"])
        found.setdefault("country", country)
        found.setdefault("city", city)
    _add_place(found)
    if refused:
        found["refused"] = tuple(refused)
    return {k: v for k, v in found.items() if v is not None}


def _add_place(found: dict[str, Any]) -> None:
    """The whole place: the written location, else city, region and country when a region is given."""
    location, region = found.pop("location", None), found.pop("region", None)
    if location and (found.get("city") is None or found["city"] != location):
        found["place"] = location
    elif region:
        found["place"] = ", ".join(v for v in (found.get("city"), region, found.get("country")) if v)


# ----------------------------------------------------------------------------- JSON

_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_JSON_KEYS = {
    "country": ("country", "country_name", "nation"),
    "country_code": ("country_code", "countrycode", "iso2"),
    "city": ("city", "city_name", "town", "village", "municipality", "locality", "hamlet"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "lng", "long", "longitude"),
    "pair": ("coordinates", "coords", "coordinate", "latlng", "lat_lng", "latlon", "lat_lon", "gps", "position"),
    "location": ("location", "address", "place", "answer", "prediction", "display_name", "formatted_address"),
    "region": ("state", "province", "region", "state_name", "admin1", "county", "state_district"),
    "localizable": ("localizable", "localizability", "is_localizable"),
}


def _json_objects(region: str) -> Iterator[dict]:
    candidates = [m.group(1) for m in _FENCE_RE.finditer(region)] + [region]
    decoder = json.JSONDecoder()
    for chunk in candidates[:4]:
        starts = [i for i, ch in enumerate(chunk[:20000]) if ch == "{"][:4]
        for start in starts:
            try:
                obj, _ = decoder.raw_decode(chunk, start)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict):
                yield obj
                return


_KEY_PREFIX_RE = re.compile(r"^(?:predicted|final|guessed|estimated|likely|most_likely|best)_(?=\w)")


def _walk(obj: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(normalised key, value) pairs, breadth first, so top-level keys win over nested ones."""
    level = [obj]
    while level and depth < 5:
        nxt: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                for k, v in list(node.items())[:200]:
                    key = re.sub(r"[\s\-]+", "_", str(k).strip().casefold())
                    yield _KEY_PREFIX_RE.sub("", key), v
                    if isinstance(v, (dict, list)):
                        nxt.append(v)
            elif isinstance(node, list):
                nxt.extend(x for x in node[:50] if isinstance(x, (dict, list)))
        level, depth = nxt, depth + 1


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = re.fullmatch(r"\s*" + coord(1) + r"\s*", value)
        if m:
            return coord_value(m, 1)[0]
    return None


def _pair(value: Any) -> tuple[float, float] | None:
    if isinstance(value, dict):
        lat = next((_number(v) for k, v in value.items() if str(k).casefold() in _JSON_KEYS["lat"]), None)
        lon = next((_number(v) for k, v in value.items() if str(k).casefold() in _JSON_KEYS["lon"]), None)
        return valid_coordinates(lat, lon)
    if isinstance(value, list) and len(value) == 2:
        return valid_coordinates(_number(value[0]), _number(value[1]))
    if isinstance(value, str):
        return parse_coordinates(value)
    return None


def _refused(value: Any, key: str, refused: list[str]) -> str | None:
    """The cleaned value, or None (and `key` noted as refused) when it is not a name."""
    if isinstance(value, str) and refusal(value) or isinstance(value, (int, float)) and not isinstance(value, bool):
        refused.append(key)
        return None
    return clean_value(value)


def from_json(region: str) -> dict[str, Any]:
    if "{" not in region:
        return {}
    for obj in _json_objects(region):
        found: dict[str, Any] = {}
        refused: list[str] = []
        lat = lon = None
        for key, value in _walk(obj):
            if key in _JSON_KEYS["country"] and "country" not in found:
                if isinstance(value, dict):
                    value = value.get("name") or value.get("common")
                found["country"] = _refused(value, "country", refused)
            elif key in _JSON_KEYS["country_code"] and "country_code" not in found:
                found["country_code"] = clean_value(value)
            elif key in _JSON_KEYS["city"] and "city" not in found:
                found["city"] = _refused(value if not isinstance(value, dict) else value.get("name"), "city", refused)
            elif key in _JSON_KEYS["lat"] and lat is None:
                lat = _number(value)
            elif key in _JSON_KEYS["lon"] and lon is None:
                lon = _number(value)
            elif key in _JSON_KEYS["pair"] and "coords" not in found:
                found["coords"] = _pair(value)
            elif key in _JSON_KEYS["location"] and isinstance(value, str) and "location" not in found:
                found["location"] = clean_value(value)
            elif key in _JSON_KEYS["region"] and isinstance(value, str) and "region" not in found:
                found["region"] = clean_value(value)
            elif key in _JSON_KEYS["localizable"] and "localizable" not in found:
                found["localizable"] = value if isinstance(value, bool) else localizable_from(clean_value(value))
        if not found.get("coords"):
            found["coords"] = valid_coordinates(lat, lon)
        if not found.get("country") and found.get("country_code"):
            found["country"] = found["country_code"]
        if found.get("location") and not (found.get("country") and found.get("city")):
            city, country = comma_place(found["location"])
            found["country"] = found.get("country") or country
            found["city"] = found.get("city") or city
        found.pop("country_code", None)
        _add_place(found)
        if refused:
            found["refused"] = tuple(refused)
        return {k: v for k, v in found.items() if v is not None}
    return {}
