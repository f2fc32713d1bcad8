"""normalize_country: the names people and models write -> ISO alpha-2, or None when unsure."""

from __future__ import annotations

import pytest

from globe.geo import continent_of, country_name, normalize_country
from globe.geo.countries import countries

ALIASES = {
    "USA": "US", "U.S.": "US", "U.S.A.": "US", "United States of America": "US", "the United States": "US",
    "UK": "GB", "U.K.": "GB", "England": "GB", "Scotland": "GB", "Wales": "GB", "Britain": "GB",
    "Great Britain": "GB", "Holland": "NL", "The Netherlands": "NL", "Czechia": "CZ", "Czech Republic": "CZ",
    "Ivory Coast": "CI", "Côte d’Ivoire": "CI", "Cote d'Ivoire": "CI", "Republic of Korea": "KR",
    "South Korea": "KR", "Korea, Republic of": "KR", "North Korea": "KP", "Vatican": "VA", "Holy See": "VA",
    "UAE": "AE", "DR Congo": "CD", "DRC": "CD", "Democratic Republic of the Congo": "CD",
    "Republic of the Congo": "CG", "Türkiye": "TR", "Turkey": "TR", "Russia": "RU", "Iran": "IR",
    "Vietnam": "VN", "Viet Nam": "VN", "Laos": "LA", "Syria": "SY", "Bolivia": "BO", "Venezuela": "VE",
    "Tanzania": "TZ", "Taiwan": "TW", "Macedonia": "MK", "North Macedonia": "MK", "Burma": "MM",
    "Myanmar": "MM", "Swaziland": "SZ", "Eswatini": "SZ", "Cape Verde": "CV", "East Timor": "TL",
    "Timor-Leste": "TL", "Kosovo": "XK", "Hong Kong": "HK", "Palestine": "PS",
}
LOCAL = {
    "Deutschland": "DE", "España": "ES", "Espana": "ES", "Italia": "IT", "Brasil": "BR", "México": "MX",
    "Österreich": "AT", "Schweiz": "CH", "Suisse": "CH", "Nederland": "NL", "Polska": "PL", "Sverige": "SE",
    "Norge": "NO", "Suomi": "FI", "Ελλάδα": "GR", "Россия": "RU", "中国": "CN", "日本": "JP", "美国": "US",
    "法国": "FR", "德国": "DE", "대한민국": "KR",
}


@pytest.mark.parametrize("name,code", sorted(ALIASES.items()))
def test_aliases(name, code):
    assert normalize_country(name) == code


@pytest.mark.parametrize("name,code", sorted(LOCAL.items()))
def test_local_and_chinese_names(name, code):
    assert normalize_country(name) == code


def test_case_spacing_and_punctuation_do_not_matter():
    for text in ("france", "FRANCE", "  France ", "France.", "Japan (likely)", "Tokyo, Japan"):
        assert normalize_country(text) in {"FR", "JP"}
    assert normalize_country("  united   KINGDOM ") == "GB"


def test_codes_only_in_capitals():
    assert normalize_country("DE") == "DE"
    assert normalize_country("FRA") == "FR"
    assert normalize_country("JPN") == "JP"
    # lower-case two-letter words are words, not codes
    assert normalize_country("in") is None
    assert normalize_country("no") is None


@pytest.mark.parametrize("text", ["Atlantis", "Texas", "Paris", "", "   ", "Congo", "Virgin Islands", "Europe", "Asia"])
def test_unknown_or_ambiguous_is_none(text):
    assert normalize_country(text) is None


@pytest.mark.parametrize("bad", [None, 42, 3.5, ["France"], "x" * 1000])
def test_non_text_is_none(bad):
    assert normalize_country(bad) is None


def test_fuzzy_traps_are_not_taken():
    """search_fuzzy maps these to the wrong country; exact lookup must not."""
    assert normalize_country("Republic of Korea") != "KP"
    assert normalize_country("U.S.") != "VI"
    assert normalize_country("Niger") == "NE" and normalize_country("Nigeria") == "NG"
    assert normalize_country("Guinea") == "GN" and normalize_country("Equatorial Guinea") == "GQ"
    assert normalize_country("Sudan") == "SD" and normalize_country("South Sudan") == "SS"
    assert normalize_country("Dominica") == "DM" and normalize_country("Dominican Republic") == "DO"


def test_every_country_name_round_trips():
    for code, country in countries().items():
        assert normalize_country(country.name) == code, (code, country.name)
        assert normalize_country(code) == code


def test_country_name_and_continent():
    assert country_name("US") == "United States"
    assert country_name("gb") == "United Kingdom"
    assert country_name("Deutschland") == "Germany"
    assert continent_of("FR") == "Europe"
    assert continent_of("BR") == "South America"
    assert continent_of("KE") == "Africa"
    assert continent_of("AU") == "Oceania"
    assert continent_of("MX") == "North America"
    assert continent_of("JP") == "Asia"
    assert continent_of("AQ") == "Antarctica"
    assert {continent_of(c) for c in countries()} == {
        "Africa", "Asia", "Europe", "North America", "South America", "Oceania", "Antarctica"}


def test_unknown_code_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown country 'ZZ'"):
        country_name("ZZ")
    with pytest.raises(ValueError, match="unknown country"):
        continent_of("Atlantis")
