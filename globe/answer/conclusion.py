"""The place a reasoning concludes, read from the `<think>` text alone (never from the answer).

GLOBE sells recognition *through* reasoning, so the platform checks that the reasoning argues for
the place the answer names (`globe.faithfulness`). That needs the reasoning's own conclusion:

1. the free-text reader (`globe.answer.places`) finds the concluding sentence of real reasonings
   ("…most likely taken in Kampala, Uganda, Africa."): its city and country, or its whole place;
2. when that names no city, the last city the reasoning names elsewhere ("that silhouette belongs
   to Berlin"; "the skyline is unmistakably Lyon's"), looked up by its primary GeoNames name: a
   city of the concluded country when one was concluded, else a city of at least `MIN_POPULATION`
   people, so that a capitalised word that happens to be a hamlet's name is not a conclusion. A
   city of another country than the concluded one counts only when it is named after that
   country's last mention (a later cue overruling it); one named before it was set aside ("…
   another Commonwealth nation … most likely taken in India" concludes India, not a Philippine place
   called Commonwealth). Conclusions come last, so the last mention wins.

The result says where the reasoning points (`lat`/`lon` of the city, or nothing for a country-only
conclusion) and how specifically (`level`: "city" or "country"); `None` when the reasoning names
no place at all. Never raises: rewards call it on every sampled completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from globe.answer.places import _cap_runs, _country_of, _OPENERS, _sentences, from_free_text
from globe.answer.values import strip_markdown

MIN_POPULATION = 100_000  # a city named with no country to anchor it must be at least this large
_MAX_CHARS = 6000  # conclusions come last; bound the work on a runaway reasoning


@dataclass(frozen=True, slots=True)
class Conclusion:
    """Where a reasoning points: a city (with its coordinates) or only a country."""

    city: str | None
    country: str | None
    country_code: str | None
    lat: float | None
    lon: float | None
    level: str  # "city" | "country"

    def to_dict(self) -> dict:
        return {"city": self.city, "country": self.country, "country_code": self.country_code,
                "lat": self.lat, "lon": self.lon, "level": self.level}


@lru_cache(maxsize=65536)
def _city_row(name: str, country_code: str | None) -> tuple[str, str, str, float, float] | None:
    """(city, country code, country, lat, lon) of the most populous place with this primary name."""
    from globe.geo.gazetteer import load
    from globe.geo.text import fold

    key = fold(name)
    if not key or _country_of(name):
        return None
    g = load()
    rows = [i for i in g.rows(g.by_name, key)
            if (g.country_code[i] == country_code if country_code else g.population[i] >= MIN_POPULATION)]
    if not rows:
        return None
    p = g.place(max(rows, key=lambda i: (g.population[i], -i)))
    return p.city, p.country_code, p.country, float(p.lat), float(p.lon)


def _last_city(text: str, country_code: str | None) -> tuple[str, str, str, float, float] | None:
    """The last city named in `text` (see the module doc, step 2)."""
    for sentence in reversed(_sentences(text)):
        for run in reversed(_cap_runs(sentence)):
            words = [w[2].rstrip(".'’") for w in run.words if w[2].casefold() not in _OPENERS]
            for n in range(min(len(words), 4), 0, -1):  # "Rio de Janeiro" before "Janeiro"
                for i in range(len(words) - n, -1, -1):
                    hit = _city_row(" ".join(words[i:i + n]), country_code)
                    if hit:
                        return hit
    return None


def _after_last(text: str, country: str | None) -> str:
    """`text` from the last mention of `country` on: where a city of another country can still
    overrule it ("the colours of India … that silhouette belongs to Novosibirsk"), while one named
    before it was weighed and set aside ("…another Commonwealth nation … most likely in India").
    A mention is the whole name, as the free-text reader reads it: "Niger" is not inside "Nigeria".

    >>> _after_last("The colours of Niger. That silhouette belongs to Lagos, as in Nigeria.", "Niger")
    'Niger. That silhouette belongs to Lagos, as in Nigeria.'
    >>> _after_last("Nothing named here.", "Niger")
    'Nothing named here.'
    """
    mentions = list(re.finditer(rf"(?<!\w){re.escape(country)}(?!\w)", text, re.IGNORECASE)) if country else []
    return text[mentions[-1].start():] if mentions else text


@lru_cache(maxsize=65536)
def _located(city: str, country: str | None) -> tuple[float, float, str | None] | None:
    from globe.geo import resolve

    found = resolve(city, country)
    if found is None or found.how not in ("city", "landmark"):
        return None
    return found.place.lat, found.place.lon, found.place.country_code


def reasoning_conclusion(think: str | None) -> Conclusion | None:
    """The place `think` concludes (module doc); None when it names none.

    >>> c = reasoning_conclusion("A dome landmark; that silhouette belongs to Berlin. Grassy ground.")
    >>> c.city, c.country_code, c.level
    ('Berlin', 'DE', 'city')
    >>> reasoning_conclusion("Birch trees: this is likely taken in Scandinavia, possibly Finland, Europe.").level
    'country'
    >>> reasoning_conclusion("Nothing here points to a place.") is None
    True
    """
    if not think or not think.strip():
        return None
    try:
        return _conclude(strip_markdown(think[-_MAX_CHARS:]))
    except Exception:  # noqa: BLE001 - a reader that raises would stop a training run
        return None


def reasoning_coherent(think: str | None) -> bool | None:
    """Whether the city a reasoning concludes lies in the country the reasoning names.

    A reasoning infers places from cues ("a black-red-yellow flag band, the colours of Germany";
    "that silhouette belongs to Berlin"), and its conclusion is the last city it names. When it
    reads one cue as one country and another cue as a city of *another* country, its inferences
    contradict each other and no answer can follow all of them: False. The country is the one the
    free-text reader takes (the concluding sentence's, else the last sentence that names one).
    True when they agree, or when the reasoning names no country; None when it concludes nothing.

    >>> reasoning_coherent("The colours of Germany. That silhouette belongs to Berlin.")
    True
    >>> reasoning_coherent("The colours of India. That silhouette belongs to Novosibirsk.")
    False
    >>> reasoning_coherent("Nothing here points to a place.") is None
    True
    """
    conclusion = reasoning_conclusion(think)
    if conclusion is None or conclusion.country_code is None:
        return None if conclusion is None else True
    try:
        named = _read(strip_markdown(think[-_MAX_CHARS:]))[3]  # type: ignore[index]
    except Exception:  # noqa: BLE001 - a reader that raises would stop a training run
        return None
    return named is None or named == conclusion.country_code


@lru_cache(maxsize=16384)
def _read(text: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(city, country, place, country code) the free-text reader takes from `text`: the one home of
    "which country the reasoning names", for its conclusion and for whether that is coherent."""
    found = from_free_text(text)
    country = found.get("country")
    known = _country_of(country) if country else None
    return found.get("city"), country, found.get("place"), known[1] if known else None


@lru_cache(maxsize=16384)
def _conclude(text: str) -> Conclusion | None:
    city, country, place, code = _read(text)
    if city:
        where = _located(place or city, country)
        if where is not None:
            return Conclusion(city, country, where[2] or code, where[0], where[1], "city")
    hit = _last_city(text, code) or (_last_city(_after_last(text, country), None) if code else None)
    if hit:
        name, cc, cname, lat, lon = hit
        return Conclusion(name, country if cc == code else cname, cc, lat, lon, "city")
    if city:  # named, but not a place the gazetteer knows: still a city-level claim
        return Conclusion(city, country, code, None, None, "city")
    if code:
        return Conclusion(None, country, code, None, None, "country")
    return None
