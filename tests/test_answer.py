"""globe.answer: one parser for GLOBE's format and for what real models write."""

from __future__ import annotations

import csv
import re

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from globe.answer import FORMAT_RE, Answer, format_answer, format_ok, parse, parse_coordinates
from globe.answer.refuse import city_is_a_country
from globe.answer.values import refusal
from globe.answer.reader import read_general
from globe.answer.values import NONE_VALUES
from globe.geo import normalize_country


@pytest.mark.parametrize(
    ("text", "country", "city", "lat", "lon"),
    [
        # GLOBE's format, with and without our lat/lon lines
        ("<think>Eiffel Tower.</think>\n<answer>country: France\ncity: Paris</answer>", "France", "Paris", None, None),
        ("<think>x</think><answer>country: France\ncity: Paris\nlat: 48.85\nlon: 2.35</answer>", "France", "Paris", 48.85, 2.35),
        # broken tags: missing </answer>, unclosed <think>, no tags
        ("<think>Eiffel Tower.</think><answer>country: France\ncity: Paris", "France", "Paris", None, None),
        ("<think>Red flag with stars\ncountry: China\ncity: Beijing", "China", "Beijing", None, None),
        ("country: Japan\ncity: Osaka", "Japan", "Osaka", None, None),
        # markdown
        ("**Country:** France\n**City:** Lyon", "France", "Lyon", None, None),
        ("- **Country**: United States\n- **City**: New York", "United States", "New York", None, None),
        ("Country: Kenya, City: Nairobi", "Kenya", "Nairobi", None, None),
        ("Final country: Peru (PE)\nCity: Cusco.", "Peru", "Cusco", None, None),
        # coordinates
        ("Latitude: 48.85 / Longitude: 2.35", None, None, 48.85, 2.35),
        ("The photo is at 33.8688° S, 151.2093° E.", None, None, -33.8688, 151.2093),
        ("Coordinates: 40°42′46″N 74°00′22″W", None, None, 40.7128, -74.0061),
        ("<answer>country: Brazil\ncity: Rio\nlat: 22.9° S\nlon: 43.2° W</answer>", "Brazil", "Rio", -22.9, -43.2),
        # JSON answers
        ('{"address": {"city": "Paris", "country": "France", "country_code": "fr"}, '
         '"coordinates": {"lat": 48.85, "lng": 2.35}}', "France", "Paris", 48.85, 2.35),
        ('My guess:\n```json\n{"country": "Vietnam", "city": "Hanoi", "lat": "21.03 N", "lon": "105.85 E"}\n```',
         "Vietnam", "Hanoi", 21.03, 105.85),
        ('{"location": "Qingdao, China", "latitude": 36.07, "longitude": 120.38}', "China", "Qingdao", 36.07, 120.38),
        ('{"answer": {"town": "Hallstatt", "country": {"name": "Austria"}}, "coordinates": [47.56, 13.65]}',
         "Austria", "Hallstatt", 47.56, 13.65),
        # free text and bare places
        ("The image was most likely taken in Hanoi, Vietnam, Asia.", "Vietnam", "Hanoi", None, None),
        ("…most likely taken in Hanoi, Vietnam, Asia.", "Vietnam", "Hanoi", None, None),
        ("Qingdao, China", "China", "Qingdao", None, None),
        ("qingdao, china", "china", "qingdao", None, None),
        ("<answer>Paris, Île-de-France, France</answer>", "France", "Paris", None, None),
        ("This photo was taken in São Paulo, Brazil.", "Brazil", "São Paulo", None, None),
        ("Signs are in Icelandic. I think this is Reykjavík, Iceland.", "Iceland", "Reykjavík", None, None),
        ("Left-hand traffic. Therefore, this is likely taken in a rural area in Northern Italy, Europe.", "Italy", None, None, None),
        ("It could be in a city in Germany, Europe, possibly in Cologne.", "Germany", "Cologne", None, None),
        ("The continent is Europe, the country is the United Kingdom.", "United Kingdom", None, None, None),
        ("Most likely somewhere in South America or Central Europe.", None, None, None, None),
        ("", None, None, None, None),
        ("Sorry, I cannot tell where this is.", None, None, None, None),
    ],
)
def test_parse_reads_place(text, country, city, lat, lon):
    a = parse(text)
    assert (a.country, a.city) == (country, city)
    if lat is None:
        assert a.lat is None and a.lon is None
    else:
        assert a.lat == pytest.approx(lat, abs=1e-4) and a.lon == pytest.approx(lon, abs=1e-4)


def test_think_answer_and_format_flags():
    good = parse("<think>Big Ben and red buses.</think>\n<answer>country: UK\ncity: London</answer>")
    assert good.format_ok and good.think == "Big Ben and red buses." and good.answer_text == "country: UK\ncity: London"
    assert good.source == "lines"
    unclosed = parse("<think>Big Ben<answer>country: UK\ncity: London</answer>")
    assert not unclosed.format_ok and unclosed.think == "Big Ben" and unclosed.city == "London"
    assert not parse("Sure! <think>a</think><answer>country: UK</answer>").format_ok  # text outside the tags
    assert not parse("<answer>country: UK</answer><think>a</think>").format_ok
    assert parse("country: UK").think is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localizable: yes\n<think>a</think><answer>country: France\ncity: Paris</answer>", True),
        ("**Localizable:** No", False),
        ("Localizability: yes", True),
        ('{"country": "France", "localizable": false}', False),
        ("<think>a</think><answer>country: France\ncity: Paris</answer>", None),
    ],
)
def test_localizable(text, expected):
    assert parse(text).localizable is expected


def test_unknown_values_are_none():
    a = parse("<think>a white wall</think><answer>country: unknown\ncity: N/A</answer>")
    assert (a.country, a.city, a.has_place) == (None, None, False)


def test_parse_accepts_non_strings():
    assert parse(None) == Answer(raw="")
    assert parse(12.5).raw == "12.5"


def test_parse_coordinates_rejects_out_of_range_and_partial():
    assert parse_coordinates("lat: 95.0, lon: 10.0") is None
    assert parse_coordinates("lat: 45.0 only") is None
    assert parse_coordinates("the road is long: 300 km") is None


@pytest.mark.parametrize("text", [
    "lat: 08.0728\nlon: 77.9.9.",                  # a tiny policy's garbled number: not 77.9
    "lat: -23.5475\nlon: -4.6.63",
    "(48.85, 2.3.5)",
    "the server at 12.5.3, 4.5 answered",
])
def test_a_number_with_two_decimal_points_is_not_a_coordinate(text):
    assert parse_coordinates(text) is None
    answer = parse(f"<think>x</think><answer>country: India\ncity: Mumbai\n{text}</answer>")
    assert (answer.lat, answer.lon) == (None, None) and answer.country == "India"


def test_a_sentence_full_stop_after_a_coordinate_is_kept():
    assert parse_coordinates("lat: 48.85. lon: 2.35.") == (48.85, 2.35)


_NAME = st.text(alphabet=st.characters(whitelist_categories=("Lu", "Ll"), max_codepoint=0x24F), min_size=1, max_size=12)
_PLACE = st.lists(_NAME, min_size=1, max_size=3).map(" ".join).filter(lambda s: s.casefold() not in NONE_VALUES)


@settings(max_examples=150, deadline=None)
@given(
    country=_PLACE,
    city=_PLACE,
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
)
def test_format_answer_round_trips(country, city, lat, lon):
    assume(not city_is_a_country(city, country))  # "country: Chad / city: Chad" is refused on purpose
    text = format_answer("Some cues.", country, city, lat, lon)
    a = parse(text)
    assert a.format_ok and (a.country, a.city) == (country, city)
    assert a.lat == pytest.approx(round(lat, 4), abs=1e-9) and a.lon == pytest.approx(round(lon, 4), abs=1e-9)


_FRAGMENTS = st.sampled_from([
    "<think>", "</think>", "<answer>", "</answer>", "{", "}", '"lat":', '"country":', "[", "]", "```json",
    "country:", "city:", "lat:", "lon:", "48.85", "-0.0", "°", "N", "S", "′", "″", ",", ".", "\n", "**",
    "Paris", "France", "United States of America", "U.S.", "Asia", "taken in", "localizable: yes", "1e309",
])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.lists(st.one_of(_FRAGMENTS, st.text(max_size=5)), max_size=60).map("".join)))
def test_parse_never_raises(text):
    a = parse(text)
    assert isinstance(a, Answer) and a.raw == text
    if a.lat is not None:
        assert -90 <= a.lat <= 90 and -180 <= a.lon <= 180


# --- real text: 494 GeoCoT outputs that mostly end "…most likely taken in City, Country, Continent."


@pytest.fixture(scope="module")
def geocot(shared_data):
    path = shared_data / "reasoning_outputs" / "geocomp_geocot.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [row["output"] for row in csv.DictReader(handle)]


def test_geocot_outputs_yield_countries(geocot):
    accepted = sum(1 for text in geocot if (c := parse(text).country) and normalize_country(c))
    share = accepted / len(geocot)
    print(f"\nGeoCoT free text: {accepted}/{len(geocot)} = {share:.1%} yield a country normalize_country accepts")
    # measured 462/494 = 93.5%; the other 32 name only continents or say the country cannot be told
    assert share >= 0.93


def test_geocot_structured_conclusions_are_read_exactly(geocot):
    ending = re.compile(r"taken in ([A-Z][^,.]*), ([A-Z][^,.]*), (?:in )?"
                        r"(?:Asia|Europe|Africa|North America|South America|Oceania)\.\s*$")
    cases = [(m.group(1), m.group(2), t) for t in geocot if (m := ending.search(t))]
    exact = sum(1 for city, country, t in cases if (parse(t).city, parse(t).country) == (city, country))
    print(f"\nGeoCoT 'taken in City, Country, Continent.': {exact}/{len(cases)} read exactly")
    # measured 57/60; the misses are a province, a region and Jersey (itself a country code)
    assert len(cases) >= 50 and exact / len(cases) >= 0.93


def test_geocot_never_takes_a_continent_for_a_country(geocot):
    continents = {"asia", "europe", "africa", "america", "north america", "south america", "oceania"}
    assert not [t for t in geocot if (parse(t).country or "").casefold() in continents]


# --- the fast reader for GLOBE's own format must agree with the general one wherever it answers

_THINK_BITS = st.sampled_from(["Red flag. ", "cues: ", "localizable: no ", "LOCALIZABLE = yes ", "a < b ", "\n",
                               "</think>", "<answer>", "country: Peru ", "48.85° N ", " "])
_VALUE = st.one_of(_PLACE, st.sampled_from(["unknown", "N/A", "**France**", "France (FR)", "Paris, Texas",
                                            "São Paulo", "Paris 48.85° N, 2.35° E", "a: b", "", "  Kyiv  "]))
_COORD = st.one_of(st.floats(-200, 200).map(lambda v: f"{v:.3f}"), st.sampled_from(["12", "-0.5", "1e3", "abc"]))


@st.composite
def globe_like(draw):
    think = "".join(draw(st.lists(_THINK_BITS, max_size=6)))
    lines = [f"country: {draw(_VALUE)}", f"city: {draw(_VALUE)}"]
    if draw(st.booleans()):
        lines += [f"lat: {draw(_COORD)}", f"lon: {draw(_COORD)}"]
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n", " \n"]))
    close = draw(st.sampled_from(["</answer>", "</answer>\n", "", "</answer> trailing"]))
    lead = draw(st.sampled_from(["", " ", "\n", "Sure: "]))
    return f"{lead}<think>{think}</think>{draw(st.sampled_from(['', chr(10), ' x ']))}<answer>{sep.join(lines)}{close}"


@settings(max_examples=400, deadline=None)
@given(globe_like())
def test_fast_reader_agrees_with_general_reader(text):
    fast = parse(text)
    slow = Answer(raw=text)
    read_general(slow, text)
    assert fast == slow


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_FRAGMENTS, st.sampled_from([" ", "\t", "\u00a0", "\x1c", "x"])), max_size=20).map("".join))
def test_format_ok_is_the_tag_regex(text):
    assert format_ok(text) == (FORMAT_RE.fullmatch(text) is not None)


@pytest.mark.parametrize("module", ["globe.answer.result", "globe.answer.reader", "globe.answer.coordinates",
                                    "globe.answer.values", "globe.answer.refuse"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("text,lat,lon", [
    ("**Latitude:** 48.85\n**Longitude:** 2.35", 48.85, 2.35),  # markdown around the labels
    ("Latitude: approximately 35.68, Longitude: approximately 139.69", 35.68, 139.69),
    ("Latitude: ~35.68 / Longitude: ~139.69", 35.68, 139.69),
    ("Latitude: around 35.68° N / Longitude: around 139.69° E", 35.68, 139.69),
    ("Latitude: +48.85 / Longitude: +2.35", 48.85, 2.35),  # a plus sign is not a minus
    ("Latitude: 33.86° S / Longitude: 151.20° E", -33.86, 151.2),
])
def test_every_latitude_longitude_form_seen_in_real_text(text, lat, lon):
    a = parse(text)
    assert (a.lat, a.lon) == (lat, lon)


def test_the_whole_place_is_kept_for_the_geocoder():
    assert parse("Chelsea Market, New York City, USA").place == "Chelsea Market, New York City, USA"
    assert parse("Sydney Opera House").place == "Sydney Opera House"  # no city or country recognised
    address = parse('```json\n{"reverse_geocoding": {"address": {"street": "Main St", "city": "Kingston", '
                    '"state": "NY", "country": "USA"}, "coordinates": {"latitude": "41.93", "longitude": "-74.0"}}}\n```')
    assert (address.country, address.city, address.place) == ("USA", "Kingston", "Kingston, NY, USA")
    assert (address.lat, address.lon) == (41.93, -74.0)
    assert parse("location: Chelsea Market, New York City, USA").place == "Chelsea Market, New York City, USA"
    assert parse("Latitude: -33.86 / Longitude: 151.20").place is None  # coordinates, not a place
    assert parse("Unknown").place is None and parse("I cannot tell.").source == "none"
    assert parse("<think>x</think><answer>country: France\ncity: Paris</answer>").place is None


# --- garbage is refused: a tag, a bare number, a country in `city:`, a value cleaning empties

@pytest.mark.parametrize(
    ("text", "country", "city", "refused"),
    [  # the cases seen from the tiny model on real IM2GPS3K photos, served and by `globe predict`
        ("<think>x</think>\n<answer>country: Brazil\ncity: </think></answer>", "Brazil", None, ("city",)),
        ("<think>x</think>\n<answer>country: Brazil\ncity: Brazil</answer>", "Brazil", None, ("city",)),
        ("<think>x</think>\n<answer>country: Brazil\ncity: 55.5525</answer>", "Brazil", None, ("city",)),
        ("<think>x</think>\n<answer>country: </think>\ncity: Lima</answer>", None, "Lima", ("country",)),
        ("<think>x</think>\n<answer>country: France\ncity: **</answer>", "France", None, ("city",)),
        ("<think>x</think>\n<answer>country: France\ncity: answer></answer>", "France", None, ("city",)),
        ("<think>x</think>\n<answer>country: France\ncity: </thi", "France", None, ("city",)),
        ("<think>x</think>\n<answer>country: Japan\ncity: 35.68° N, 139.69° E</answer>", "Japan", None, ("city",)),
        ("<think>x</think>\n<answer>country: 12\ncity: 34</answer>", None, None, ("city", "country")),
        ('```json\n{"country": "Peru", "city": "think>"}\n```', "Peru", None, ("city",)),
        ('{"country": "Peru", "city": 55.5525}', "Peru", None, ("city",)),
        ("**Country:** Chile\n**City:** Chile", "Chile", None, ("city",)),
        # the tiny GRPO policy's reasoning run on into a field (held-out GeoScenes, benchmark seeds 0-2)
        ("<think>x</think>\n<answer>country: the skyline; that silhouette belongs to New York City\nlon: -74.0</answer>",
         None, None, ("country",)),
        ("<think>x</think>\n<answer>country: India. The tropical latitudes9.7.0.0.99</answer>", None, None, ("country",)),
        ("<think>x</think>\n<answer>country: Egypt\ncity: 8 subtropical sky and sandy ground fit tropical latitudes.06"
         "</answer>", "Egypt", None, ("city",)),
        ("<think>x</think>\n<answer>country: Italy\ncity: band, the colours of Germany</answer>", "Italy", None, ("city",)),
        ("<think>x</think>\n<answer>country: 8 Italy\ncity: Rome</answer>", None, "Rome", ("country",)),
        # a lowercase phrase that opens with an article and names no place
        ("<think>x</think>\n<answer>country: Germany\ncity: the colours</answer>", "Germany", None, ("city",)),
        ("<think>x</think>\n<answer>country: France\ncity: this city, france</answer>", "France", None, ("city",)),
    ],
)
def test_garbage_fields_are_refused(text, country, city, refused):
    a = parse(text)
    assert (a.country, a.city, a.refused, a.format_ok) == (country, city, refused, False)


@pytest.mark.parametrize(
    ("text", "country", "city"),
    [  # names, not garbage: city-states, a capital named like its country, a state beside its country
        ("<think>x</think>\n<answer>country: Singapore\ncity: Singapore</answer>", "Singapore", "Singapore"),
        ("<think>x</think>\n<answer>country: Luxembourg\ncity: Luxembourg</answer>", "Luxembourg", "Luxembourg"),
        ("<think>x</think>\n<answer>country: Vatican City\ncity: Vatican City</answer>", "Vatican City", "Vatican City"),
        ("<think>x</think>\n<answer>country: USA\ncity: Georgia</answer>", "USA", "Georgia"),
        ("<think>x</think>\n<answer>country: USA\ncity: LA</answer>", "USA", "LA"),
        ("<think>x</think>\n<answer>country: Japan\ncity: Tokyo, Japan</answer>", "Japan", "Tokyo, Japan"),
        ("<think>x</think>\n<answer>country: United States\ncity: Route 66</answer>", "United States", "Route 66"),
        ("<think>x</think>\n<answer>country: Egypt\ncity: 6th of October City</answer>", "Egypt", "6th of October City"),
        # long names are capitalised; a hedge with a place in it is kept (G3's real answers)
        ("<think>x</think>\n<answer>country: Poland\ncity: Church of St. Michael the Archangel in Dębno</answer>",
         "Poland", "Church of St. Michael the Archangel in Dębno"),
        ("<think>x</think>\n<answer>country: China\ncity: Likely a rural area in Jiangxi Province</answer>",
         "China", "Likely a rural area in Jiangxi Province"),
        ("<think>x</think>\n<answer>country: France\ncity: paris, île-de-france, france</answer>", "France",
         "paris, île-de-france, france"),  # an address in lowercase is still an address
        ("<think>x</think>\n<answer>country: Brazil\ncity: rio de janeiro, brazil</answer>", "Brazil",
         "rio de janeiro, brazil"),  # with a particle in it too
        ("<think>x</think>\n<answer>country: Netherlands\ncity: the hague</answer>", "Netherlands", "the hague"),
        ("<think>x</think>\n<answer>country: Spain\ncity: a coruña</answer>", "Spain", "a coruña"),  # article-led names
        ("<think>x</think>\n<answer>country: France\ncity:</answer>", "France", None),  # not stated
        ("<think>x</think>\n<answer>country: France\ncity: unknown</answer>", "France", None),  # an honest abstention
    ],
)
def test_names_that_look_odd_are_kept(text, country, city):
    a = parse(text)
    assert (a.country, a.city, a.refused, a.format_ok) == (country, city, (), True)


_TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
# truncated tags ("</thi", "answer>"), as generation stops or a tokenizer splits them
_TAG_BITS = _TAGS + [t[:k] for t in _TAGS for k in range(2, len(t))] + [t[k:] for t in _TAGS for k in range(1, len(t) - 1)]
_FIELD_LINES = st.sampled_from(["country: France", "city: Paris", "country: Brazil", "city: Brazil", "city: 55.5525",
                                "lat: 48.85", "lon: 2.35", "country:", "city:", "Rio", "\n", " "])


@st.composite
def mangled(draw):
    """GLOBE answers with truncated, duplicated and interleaved tags and field lines."""
    pieces = draw(st.lists(st.one_of(st.sampled_from(_TAG_BITS), _FIELD_LINES, st.sampled_from(["Cues. ", "\n"])),
                           min_size=1, max_size=14))
    glue = draw(st.sampled_from(["", "\n", " "]))
    return glue.join(pieces)


def _is_garbage(value):
    return value is not None and (refusal(value) in ("tag", "number") or "<" in value or ">" in value)


@settings(max_examples=600, deadline=None)
@given(mangled())
def test_mangled_tags_never_yield_a_garbage_field(text):
    a = parse(text)
    assert not _is_garbage(a.country) and not _is_garbage(a.city) and not _is_garbage(a.place)
    assert not (a.city and a.country and city_is_a_country(a.city, a.country))
    if a.refused:
        assert not a.format_ok
    fast, slow = a, Answer(raw=text)
    read_general(slow, text)
    assert fast == slow


def test_well_formed_real_places_are_never_refused(shared_data):
    """Every G3 answer (real place text) written in GLOBE's format reads back whole and format_ok."""
    path = shared_data / "reasoning_outputs" / "g3_gemini_im2gps3k_dev900.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        places = [row["location"] for row in csv.DictReader(handle)]
    bad = []
    for place in places:
        parts = [p.strip() for p in place.split(",") if p.strip()]
        if len(parts) < 2:
            continue
        text = format_answer("Cues.", parts[-1], ", ".join(parts[:-1]))
        a = parse(text)
        if not a.format_ok or a.refused or not a.city or not a.country:
            bad.append((place, a.refused))
    assert not bad, bad[:10]


@pytest.mark.parametrize(
    ("text", "country", "city"),
    [  # how other LVLMs write addresses and conclusions (G3's, Claude-style); read as a person would
        ("Los Angeles, CA, USA", "USA", "Los Angeles"),  # CA is the state, not Canada
        ("Axum Cafe, 698 Haight St, San Francisco, CA 94117, USA", "USA", None),
        ("Overall: GA, USA", "USA", None),
        ("Tunis, Tunisia", "Tunisia", "Tunis"),  # Tunis is Tunisia only in translation
        ("Palace of Charles V, Granada, Spain", "Spain", "Palace of Charles V"),  # and Granada Grenada
        ("Taken in Granada, Spain.", "Spain", "Granada"),
        ("Hong Kong, China", "Hong Kong", None),  # a country by its own name stays first
        ("Most likely taken in Vatican City, Rome, Italy, Europe.", "Italy", "Rome"),  # an address ends at its country
        ("Most likely taken in Germany, Austria, Switzerland.", "Germany", None),  # a list, not an address
        ("…in a country like the UK or France.", "UK", None),  # a hedge, not an address: the first
        ("The photo is likely from New Zealand's South Island.", "New Zealand", None),
        ("It's Türkiye, near Istanbul.", "Türkiye", "Istanbul"),
        ("Near Telluride, Colorado", None, "Telluride"),
        ('{"predicted_country": "Kenya", "predicted_city": "Nairobi"}', "Kenya", "Nairobi"),
    ],
)
def test_countries_are_read_the_way_addresses_are_written(text, country, city):
    a = parse(text)
    assert (a.country, a.city) == (country, city)
