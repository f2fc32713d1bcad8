"""Supported accuracy: GLOBE's accuracy rule, paid only when the reasoning supports the answer (ours).

The consistency reward pays for agreement whether the agreed place is right or not, so weighting
it up pulls the answer onto the reasoning's prior as often as onto the truth: on the tiny world,
consistency 1.0 raised consistency by 2-6 pt and cost 11 pt of acc_25km on seed 0 (docs/train.md,
"Reasoning that supports its answer"). This reward pays only the agreement that is also right:
the accuracy rule (1.0 city and country, 0.2 country only; `globe.scorer.score`) on the answer
when `globe.faithfulness.judge` finds that the reasoning concludes the answered place, else 0.0.
Its group variance follows the accuracy reward's, so it sharpens the accuracy signal toward
"right, and right because of what the reasoning read" instead of diluting it. It is ACRE's
consistency-gated accuracy (DESIGN.md §9) with the reasoning's own conclusion as the re-asked answer.
Measured at weight 1.0 beside the recipe's rewards on three SFT starts: it did not dilute
(acc_25km within 4 pt) and did not raise consistency reliably (+5.5, -0.7, +2.1 pt), so it is a
named choice, off by default.
"""

from __future__ import annotations

from typing import Any

from globe.answer import Answer
from globe.faithfulness import judge
from globe.rewards._inputs import labelled
from globe.scorer import score


def supported_accuracy_reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
    """The accuracy rule on the answer when its reasoning supports it, else 0.0; needs `country`
    (and `city`) columns, and a sample without a ground-truth country scores None like accuracy's.

    >>> supported_accuracy_reward(
    ...     ["<think>That silhouette belongs to Hamburg.</think><answer>country: Germany\\ncity: Hamburg</answer>",
    ...      "<think>That silhouette belongs to Berlin.</think><answer>country: Germany\\ncity: Hamburg</answer>",
    ...      "<think>That silhouette belongs to Berlin.</think><answer>country: Germany\\ncity: Berlin</answer>"],
    ...     country=["Germany"] * 3, city=["Hamburg"] * 3)
    [1.0, 0.0, 0.2]
    """
    return [None if row is None else _paid(*row) for row in labelled(completions, kwargs, "supported_accuracy")]


def _paid(answer: Answer, country: str, city: str | None) -> float:
    return score(answer.country, answer.city, country, city, True, True) if judge(answer).consistent else 0.0


supported_accuracy_reward.__name__ = "supported_accuracy"
