"""Geo-accuracy: GLOBE's released rule, with country aliases resolved.

The released rule gives 1.0 when city and country both match, 0.2 when only the country does and
0 otherwise; two names match when one contains the other (case-insensitively) and the shorter is
at least 70% as long as the longer. That rule scores "USA" against "United States" as a miss, so
we also accept two country names that `globe.geo.normalize_country` maps to the same ISO code,
and two city names that are equal after folding accents and punctuation (Zürich/Zurich).
Evaluation (`gazetteer=True`) further accepts two city names that the gazetteer resolves to the
same real place in that country (Kyiv/Kiev); the training reward skips that lookup because it
costs a geocode per new name pair at every step. Both rules are exposed (`aliases=False` is the
released one) because evaluation reports both.

Every comparison is cached: within a GRPO step the same few ground-truth names meet the same few
predicted names over and over.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from globe.rewards._inputs import column, completion_text, parsed

RATIO = 0.7
CITY_AND_COUNTRY, COUNTRY_ONLY = 1.0, 0.2


def string_match(pred: str | None, truth: str | None) -> bool:
    """The released rule: substring containment either way, length ratio >= 0.7, ignoring case.

    >>> string_match("New York", "new york city"), string_match("Paris", "Paris")
    (False, True)
    """
    if not pred or not truth:
        return False
    a, b = pred.strip().lower(), truth.strip().lower()
    if not a or not b or (a not in b and b not in a):
        return False
    return min(len(a), len(b)) / max(len(a), len(b)) >= RATIO


@lru_cache(maxsize=65536)
def _code(name: str) -> str | None:
    from globe.geo import normalize_country

    return normalize_country(name)


@lru_cache(maxsize=65536)
def _fold(name: str) -> str:
    from globe.geo.text import fold

    return fold(name)


@lru_cache(maxsize=65536)
def country_match(pred: str | None, truth: str | None, aliases: bool = True) -> bool:
    """Released rule, or (aliases) the same ISO code: "USA" matches "United States"."""
    if string_match(pred, truth):
        return True
    if not aliases or not pred or not truth:
        return False
    code = _code(pred)
    return code is not None and code == _code(truth)


@lru_cache(maxsize=65536)
def _real_place(city: str, country: str | None) -> tuple[float, float] | None:
    from globe.geo import geocode

    place = geocode(city, country)
    if place is None or place.approximate is not None:  # a capital fallback is not the city
        return None
    return round(place.lat, 4), round(place.lon, 4)


@lru_cache(maxsize=65536)
def city_match(pred: str | None, truth: str | None, country: str | None = None, aliases: bool = True,
               gazetteer: bool = False) -> bool:
    """Released rule, or (aliases) equal after folding accents and punctuation (Zürich/Zurich), or
    (gazetteer) the same real GeoNames place inside `country` (Kiev/Kyiv, Bombay/Mumbai).

    The gazetteer lookup costs a geocode per new name pair, so evaluation uses it and the
    per-step training reward does not.
    """
    if string_match(pred, truth):
        return True
    if not aliases or not pred or not truth:
        return False
    if string_match(_fold(pred), _fold(truth)):
        return True
    if not gazetteer:
        return False
    where = _real_place(pred, country)
    return where is not None and where == _real_place(truth, country)


@lru_cache(maxsize=65536)
def score(pred_country: str | None, pred_city: str | None, country: str | None, city: str | None,
          aliases: bool = True, gazetteer: bool = False) -> float:
    """1.0 city and country, 0.2 country only, 0.0 otherwise (cached: the same pairs recur every step)."""
    if not country_match(pred_country, country, aliases):
        return 0.0
    if city_match(pred_city, city, country, aliases, gazetteer):
        return CITY_AND_COUNTRY
    return COUNTRY_ONLY


def accuracy_reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
    """GLOBE's accuracy reward with country aliases; needs the `country` and `city` columns.

    A sample without a ground-truth country scores None (TRL leaves it out) rather than 0.

    >>> accuracy_reward(["<think>.</think><answer>country: USA\\ncity: New York</answer>"],
    ...                 country=["United States"], city=["New York"])
    [1.0]
    """
    n = len(completions)
    countries = column(kwargs, "country", n, "accuracy")
    cities = column(kwargs, "city", n, "accuracy") if kwargs.get("city") is not None else [None] * n
    rewards: list[float | None] = []
    add, read, rate = rewards.append, parsed, score  # hot loop: every completion of every step
    for completion, gt_country, gt_city in zip(completions, countries, cities):
        if not gt_country:
            add(None)
            continue
        a = read(completion if type(completion) is str else completion_text(completion))
        add(rate(a.country, a.city, gt_country if type(gt_country) is str else str(gt_country),
                 gt_city if gt_city is None or type(gt_city) is str else str(gt_city)))
    return rewards


accuracy_reward.__name__ = "accuracy"
