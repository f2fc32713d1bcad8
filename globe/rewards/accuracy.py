"""Geo-accuracy: GLOBE's released rule, with country aliases resolved.

The rule itself (1.0 city and country, 0.2 country only; substring containment with a 0.7 length
ratio, plus aliases) lives in `globe.scorer`, which evaluation, verification and serving use too;
this module only applies it to TRL's completions and dataset columns, with the same city rule as
evaluation's `city_acc` (`gazetteer=True`: Kiev and Kyiv are one place), so the reward and the
metric never disagree on a pair. The gazetteer is asked only when the names differ as strings, and
every comparison is cached: within a GRPO step the same few ground-truth names meet the same few
predicted names over and over.
"""

from __future__ import annotations

from typing import Any

from globe.rewards._inputs import column, completion_text, parsed
from globe.scorer import CITY_AND_COUNTRY, COUNTRY_ONLY, RATIO, city_match, country_match, score, string_match

__all__ = ["CITY_AND_COUNTRY", "COUNTRY_ONLY", "RATIO", "accuracy_reward", "city_match", "country_match", "score",
           "string_match"]


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
                 gt_city if gt_city is None or type(gt_city) is str else str(gt_city), True, True))
    return rewards


accuracy_reward.__name__ = "accuracy"
