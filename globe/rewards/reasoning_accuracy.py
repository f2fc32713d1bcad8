"""Reasoning accuracy: GLOBE's accuracy rule applied to the place the *reasoning* concludes (ours).

The paper's accuracy reward reads only the answer. GRPO's advantage is one number per completion,
so the words of the reasoning get credit only through their correlation with the answer: in the
tiny world the policy learned to answer the right city while its `<think>` kept the SFT prior's
city ("that silhouette belongs to Berlin" over a Hamburg answer), right for the wrong reason
(docs/train.md, "Reasoning that supports its answer"). This reward scores the reasoning's own
conclusion (`globe.answer.conclusion`, read from `<think>` alone) against the ground truth with the
one scorer: 1.0 for the right city and country, 0.2 for the right country only, 0.0 otherwise and
for a reasoning that concludes no place. Together with the accuracy reward it pays for a right
answer reached by a right reasoning; the consistency reward then aligns the two where both err.
ACRE (DESIGN.md §9) pays the answer only when a re-asked answer from the reasoning agrees; here
the reasoning names the place itself, so no second generation is needed.
"""

from __future__ import annotations

from typing import Any

from globe.answer import Answer
from globe.answer.conclusion import reasoning_conclusion
from globe.rewards._inputs import labelled
from globe.scorer import score


def reasoning_accuracy_reward(completions: list[Any], **kwargs: Any) -> list[float | None]:
    """The accuracy rule on the reasoning's conclusion; needs the `country` and `city` columns.

    >>> reasoning_accuracy_reward(
    ...     ["<think>That silhouette belongs to Hamburg.</think><answer>country: Germany\\ncity: Berlin</answer>",
    ...      "<think>That silhouette belongs to Berlin.</think><answer>country: Germany\\ncity: Hamburg</answer>"],
    ...     country=["Germany", "Germany"], city=["Hamburg", "Hamburg"])
    [1.0, 0.2]
    """
    return [None if row is None else _scored(*row) for row in labelled(completions, kwargs, "reasoning_accuracy")]


def _scored(answer: Answer, country: str, city: str | None) -> float:
    c = reasoning_conclusion(answer.think)
    return 0.0 if c is None else score(c.country or c.country_code, c.city, country, city, True, True)


reasoning_accuracy_reward.__name__ = "reasoning_accuracy"
