"""Answer-parser rates on the text models really write: free text, coordinates, JSON address blocks.

1. GeoCoT free text (../shared/data/reasoning_outputs/geocomp_geocot.csv, 494 real outputs). An
   answer *commits* to a place when its concluding sentence names a country (by any name
   `globe.geo.normalize_country` reads, found word by word) without hedging it away ("cannot be
   determined", "difficult to pinpoint"). Target: >= 98% of committing answers yield, through
   `globe.answer.parse`, a country their concluding sentence names.
2. "Latitude/Longitude" lines: every form collected from real model output (labels, hemispheres,
   degrees-minutes-seconds, markdown, hedges such as "approximately" or "~", signs), each written
   with the coordinates of the 900 G3 answers in ../shared/data. Target: every one read exactly
   (to 1e-6 degrees).
3. JSON answers with an address block, in the layouts LVLM geolocation benchmarks collect (an
   IMAGEO-Bench-style `reverse_geocoding.address` with street/city/state/country and string
   coordinates, fenced or bare; a Nominatim-style `address` with display_name and country_code;
   a flat object). The places are real: the G3 system's coordinates reverse geocoded, countries
   written as people do (name, USA/UK, ISO alpha-3). The ten LVLMs' own JSON answers are not in
   ../shared/data, so these are built from their layouts. Target: >= 98% yield the stated country.
4. G3's free-text place answers (../shared/data/reasoning_outputs/g3_gemini_im2gps3k_dev900.csv,
   900 real outputs such as "Rhode Island State House, Providence, RI, USA"): those with a comma
   part that names a country commit to the last such part (a two-letter code before a country's
   name is a state: "Los Angeles, CA, USA" commits to the US, not Canada). Target: >= 98% read as
   that country.
5. Garbage is refused, nothing well-formed is lost: the garbage fields seen from a real model
   (`city: </think>`, `city: 55.5525`, `country: Brazil / city: Brazil`, reasoning run on into a
   field, ...) must all be refused and not `format_ok`; a seeded fuzz corpus of truncated,
   duplicated and interleaved tags must never yield a tag or a bare number as a field; every G3
   place written in GLOBE's format (a well-formed answer) must read back `format_ok` with its
   country and city.

    python benchmarks/answer_parsing.py

Exits 1 when a target is missed, 2 when the data is absent.
"""

from __future__ import annotations

import csv
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "reasoning_outputs"
TARGET_COMMITTED = 0.98
TARGET_JSON = 0.98

HEDGES = re.compile(r"cannot be (?:accurately |precisely )?(?:determined|narrowed|identified)|not possible|impossible|"
                    r"difficult to|challenging to|indeterminate|undetermined|cannot be pinpointed|unclear|uncertain",
                    re.IGNORECASE)
# Continents and world regions are not countries, whatever word they contain ("North America").
REGIONS = re.compile(r"\b(?:North|South|Central|Latin|Middle|Southeast|South-East|East|West|Northern|Southern|"
                     r"Eastern|Western)\s+(?:America|Asia|Europe|Africa|East)\b")
CONCLUSION = re.compile(r"\b(?:most likely|likely|taken in|located in|therefore|thus|in conclusion|overall)\b",
                        re.IGNORECASE)

COORD_FORMS = (
    "Latitude: {lat} / Longitude: {lon}", "Latitude: {lat}, Longitude: {lon}", "Lat: {lat}, Long: {lon}",
    "**Latitude:** {lat}\n**Longitude:** {lon}", "- Latitude: {lat}\n- Longitude: {lon}", "latitude {lat} longitude {lon}",
    "Latitude = {lat}; Longitude = {lon}", "Latitude: approximately {lat}, Longitude: approximately {lon}",
    "Latitude: ~{lat} / Longitude: ~{lon}", "Estimated Latitude: {lat}\nEstimated Longitude: {lon}",
    "LATITUDE: {lat} LONGITUDE: {lon}", "Latitude: {lat}°, Longitude: {lon}°", "Coordinates (lat, lon): {lat}, {lon}",
    "Latitude: {alat}° {ns} / Longitude: {alon}° {ew}", "Latitude: {alat}{ns}, Longitude: {alon}{ew}",
    "Latitude: {dms_lat} Longitude: {dms_lon}", "Coordinates: {alat}° {ns}, {alon}° {ew}",
    "Latitude: {plat} / Longitude: {plon}", "Latitude: {lat} (approx.) Longitude: {lon}",
)


def dms(value: float, pos: str, neg: str) -> str:
    v = abs(value)
    d, m = int(v), int((v - int(v)) * 60)
    s = round(((v - int(v)) * 60 - m) * 60, 2)
    return f"{d}°{m}′{s}″{pos if value >= 0 else neg}"


def geocot() -> tuple[int, int, int, int, list[str]]:
    from globe.answer import parse
    from globe.answer.places import _sentences
    from globe.geo import normalize_country

    with (DATA / "geocomp_geocot.csv").open(encoding="utf-8-sig", newline="") as fh:
        texts = [r["output"] for r in csv.DictReader(fh)]
    committed = hits = 0
    misses = []
    any_country = sum(1 for t in texts if normalize_country(parse(t).country or ""))
    for text in texts:
        sentences = _sentences(text)[-3:]
        final = next((s for s in reversed(sentences) if CONCLUSION.search(s)), sentences[-1] if sentences else "")
        words = re.findall(r"[A-Z][\w'.-]*(?:\s+(?:and|of|the)?\s*[A-Z][\w'.-]*)*", REGIONS.sub(" ", final))
        named = {c for w in words for span in _subspans(w) if (c := normalize_country(span))}
        if not named or HEDGES.search(final):
            continue
        committed += 1
        got = normalize_country(parse(text).country or "")
        if got in named:
            hits += 1
        else:
            misses.append(final[-160:])
    return len(texts), any_country, committed, hits, misses


def _subspans(run: str) -> list[str]:
    words = run.split()
    return [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, min(len(words), i + 4) + 1)]


def coordinate_forms(points: list[tuple[float, float]]) -> tuple[int, int, list[str]]:
    from globe.answer import parse

    total = ok = 0
    misses = []
    for lat, lon in points:
        lat, lon = round(lat, 4), round(lon, 4)  # what the text says
        fields = {"lat": f"{lat:.4f}", "lon": f"{lon:.4f}", "alat": f"{abs(lat):.4f}", "alon": f"{abs(lon):.4f}",
                  "ns": "N" if lat >= 0 else "S", "ew": "E" if lon >= 0 else "W",
                  "plat": f"{lat:+.4f}", "plon": f"{lon:+.4f}", "dms_lat": dms(lat, "N", "S"), "dms_lon": dms(lon, "E", "W")}
        for form in COORD_FORMS:
            text = form.format(**fields)
            a = parse(text)
            exact = 1e-6 if "dms" not in form else 1e-3
            total += 1
            if a.lat is not None and abs(a.lat - lat) <= exact and abs(a.lon - lon) <= exact:
                ok += 1
            elif len(misses) < 10:
                misses.append(f"{text!r} -> {a.lat}, {a.lon}")
    return total, ok, misses


def json_answers(points: list[tuple[float, float]], seed: int = 0) -> tuple[int, int, list[str]]:
    import pycountry

    from globe.answer import parse
    from globe.geo import normalize_country, reverse_batch

    rng = random.Random(seed)
    total = ok = 0
    misses = []
    for (lat, lon), place in zip(points, reverse_batch([p[0] for p in points], [p[1] for p in points])):
        alpha3 = getattr(pycountry.countries.get(alpha_2=place.country_code), "alpha_3", place.country_code)
        country = rng.choice([place.country, place.country, {"US": "USA", "GB": "UK"}.get(place.country_code, alpha3)])
        coords = {"latitude": f"{lat:.4f}", "longitude": f"{lon:.4f}"}
        layouts = [
            {"image_information": {"environment": "outdoor"}, "reasoning": {"text_and_signage": "No text is visible."},
             "reverse_geocoding": {"confidence": "4", "address": {"street": "Main Street", "city": place.city,
                                                                   "state": place.admin1, "country": country},
                                   "coordinates": coords}},
            {"display_name": f"{place.city}, {place.admin1}, {country}", "lat": coords["latitude"], "lon": coords["longitude"],
             "address": {"road": "High Street", "town": place.city, "state": place.admin1, "postcode": "12345",
                         "country": country, "country_code": place.country_code.lower()}},
            {"country": country, "city": place.city, "latitude": lat, "longitude": lon, "confidence": 0.6},
        ]
        for obj in layouts:
            blob = json.dumps(obj, ensure_ascii=False, indent=rng.choice([None, 2]))
            text = rng.choice([f"```json\n{blob}\n```", blob, f"Here is my analysis.\n```json\n{blob}\n```"])
            total += 1
            got = normalize_country(parse(text).country or "")
            if got == place.country_code:
                ok += 1
            elif len(misses) < 10:
                misses.append(f"{country!r} ({place.country_code}) -> {parse(text).country!r}")
    return total, ok, misses


GARBAGE = (  # the fields a real model wrote (served and `globe predict`, IM2GPS3K photos) and their kin
    "<think>x</think>\n<answer>country: Brazil\ncity: </think></answer>",
    "<think>x</think>\n<answer>country: Brazil\ncity: Brazil</answer>",
    "<think>x</think>\n<answer>country: Brazil\ncity: 55.5525</answer>",
    "<think>x</think>\n<answer>country: </think>\ncity: Lima</answer>",
    "<think>x</think>\n<answer>country: France\ncity: **</answer>",
    "<think>x</think>\n<answer>country: France\ncity: </thi",
    "<think>x</think>\n<answer>country: Japan\ncity: 35.68° N, 139.69° E</answer>",
    # the tiny GRPO policy's reasoning run on into a field (held-out GeoScenes)
    "<think>x</think>\n<answer>country: the skyline; that silhouette belongs to New York City\nlon: -74.0</answer>",
    "<think>x</think>\n<answer>country: India. The tropical latitudes9.7.0.0.99</answer>",
    "<think>x</think>\n<answer>country: Egypt\ncity: 8 subtropical sky and sandy ground fit tropical latitudes.06</answer>",
)
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
TAG_BITS = TAGS + [t[:k] for t in TAGS for k in range(2, len(t))] + [t[k:] for t in TAGS for k in range(1, len(t) - 1)]
FIELD_BITS = ["country: France", "city: Paris", "country: Brazil", "city: Brazil", "city: 55.5525", "lat: 48.85",
              "lon: 2.35", "country:", "city:", "Rio", "Cues. "]


def _garbage_value(value: str | None) -> bool:
    return value is not None and ("<" in value or ">" in value or bool(re.fullmatch(r"[\s\d.,°+-]*\d[\s\d.,°+-]*", value)))


def g3_places(rows: list[dict]) -> tuple[int, int, list[str]]:
    from globe.answer import parse
    from globe.geo import normalize_country

    committed = hits = 0
    misses = []
    for row in rows:
        place = row["location"]
        parts = [p.strip(" .") for p in re.split(r"[,()]", place) if p.strip(" .")]
        # the country an address commits to is its last part that names one; a two-letter code
        # before it is a state's ("Los Angeles, CA, USA"), unless no other country is named
        named = [c for p in parts if (c := normalize_country(p))]
        by_name = [c for p in parts if (c := normalize_country(p)) and not re.fullmatch(r"[A-Z]{2}", p)]
        if not named:
            continue
        committed += 1
        if normalize_country(parse(place).country or "") == (by_name or named)[-1]:
            hits += 1
        else:
            misses.append(place)
    return committed, hits, misses


def garbage(rows: list[dict], n_fuzz: int = 20000, seed: int = 0) -> dict[str, tuple[int, int]]:
    """(ok, of) for: real garbage refused; fuzz texts with no garbage field; well-formed answers kept."""
    from globe.answer import format_answer, parse

    refused = sum(1 for t in GARBAGE if not parse(t).format_ok and _garbage_value(parse(t).city) is False
                  and (parse(t).city is None or parse(t).country is None))
    rng = random.Random(seed)
    clean = 0
    for _ in range(n_fuzz):
        pieces = [rng.choice(TAG_BITS) if rng.random() < 0.4 else rng.choice(FIELD_BITS) for _ in range(rng.randint(1, 14))]
        a = parse(rng.choice(["", "\n", " "]).join(pieces))
        bad = _garbage_value(a.country) or _garbage_value(a.city) or _garbage_value(a.place) or (
            a.city is not None and a.city == a.country)
        clean += not bad
    kept = total = 0
    for row in rows:
        parts = [p.strip() for p in row["location"].split(",") if p.strip()]
        if len(parts) < 2:
            continue
        total += 1
        a = parse(format_answer("Cues.", parts[-1], ", ".join(parts[:-1])))
        kept += bool(a.format_ok and a.country and a.city)
    return {"refused": (refused, len(GARBAGE)), "fuzz": (clean, n_fuzz), "kept": (kept, total)}


def main() -> int:
    if not (DATA / "geocomp_geocot.csv").is_file() or not (DATA / "g3_gemini_im2gps3k_dev900.csv").is_file():
        print(f"{DATA}: data not found (see ../shared/data/SOURCE.md)")
        return 2
    with (DATA / "g3_gemini_im2gps3k_dev900.csv").open(encoding="utf-8-sig", newline="") as fh:
        points = [(float(r["LAT_pred"]), float(r["LON_pred"])) for r in csv.DictReader(fh)]
    print(f"settings: {DATA}; targets: committed GeoCoT >= {TARGET_COMMITTED:.0%}, every coordinate form, "
          f"JSON address blocks >= {TARGET_JSON:.0%}")
    t0 = time.perf_counter()
    n, any_country, committed, hits, cot_misses = geocot()
    total_c, ok_c, coord_misses = coordinate_forms(points)
    total_j, ok_j, json_misses = json_answers(points)
    with (DATA / "g3_gemini_im2gps3k_dev900.csv").open(encoding="utf-8-sig", newline="") as fh:
        g3_rows = list(csv.DictReader(fh))
    committed_g3, hits_g3, g3_misses = g3_places(g3_rows)
    junk = garbage(g3_rows)
    elapsed = time.perf_counter() - t0
    rate_cot, rate_c, rate_j = hits / max(committed, 1), ok_c / max(total_c, 1), ok_j / max(total_j, 1)
    print(f"{'':44}{'read':>8}{'of':>8}{'rate':>9}{'target':>9}")
    print(f"{'GeoCoT answers committing to a country':44}{hits:>8}{committed:>8}{rate_cot:>9.1%}{TARGET_COMMITTED:>9.0%}")
    print(f"{'  all GeoCoT answers that yield a country':44}{any_country:>8}{n:>8}{any_country / n:>9.1%}{'':>9}")
    print(f"{f'Latitude/Longitude lines ({len(COORD_FORMS)} forms)':44}{ok_c:>8}{total_c:>8}{rate_c:>9.1%}{'100%':>9}")
    print(f"{'JSON answers with an address block':44}{ok_j:>8}{total_j:>8}{rate_j:>9.1%}{TARGET_JSON:>9.0%}")
    rate_g3 = hits_g3 / max(committed_g3, 1)
    print(f"{'G3 place answers committing to a country':44}{hits_g3:>8}{committed_g3:>8}{rate_g3:>9.1%}{TARGET_COMMITTED:>9.0%}")
    both, both_of = hits + hits_g3, committed + committed_g3
    print(f"{'  all real answers committing to a country':44}{both:>8}{both_of:>8}{both / both_of:>9.1%}{TARGET_COMMITTED:>9.0%}")
    for key, label in (("refused", "real garbage fields refused"), ("fuzz", "fuzzed tags: no garbage field"),
                       ("kept", "well-formed GLOBE answers kept")):
        got, of = junk[key]
        print(f"{label:44}{got:>8}{of:>8}{got / max(of, 1):>9.1%}{'100%':>9}")
    print(f"time: {elapsed:.1f} s")
    for label, misses in (("GeoCoT", cot_misses), ("coordinates", coord_misses), ("JSON", json_misses),
                          ("G3", g3_misses)):
        for m in misses[:5]:
            print(f"  {label} miss: {m}")
    ok = rate_cot >= TARGET_COMMITTED and ok_c == total_c and rate_j >= TARGET_JSON and rate_g3 >= TARGET_COMMITTED \
        and all(got == of for got, of in junk.values())
    print("all targets met" if ok else "targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
