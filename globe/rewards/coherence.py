"""Coherence: pay when the reasoning's own inferences agree (ours, not the paper's; measured, off).

GLOBE's grounding reward pays for naming the cues that are in the image; it cannot see what the
reasoning infers from them. Most of the tiny policy's remaining inconsistencies follow reasonings
that read the flag as one country and the landmark as a city of another ("…the colours of India …
that silhouette belongs to Novosibirsk"): on three seeds, 75% of the held-out answers after such a
reasoning name another place than it concludes, against 3% after a coherent one. This reward is
1.0 when the city the reasoning concludes lies in the country it names
(`globe.answer.conclusion.reasoning_coherent`, or when it names no country), and 0.0 otherwise, a
reasoning that concludes no place included. It reads the reasoning alone, with the same reader as
the consistency metric, so it works on real text: of GeoCoT's 494 real reasonings it flags one.

Measured at weight 0.5 on three seeds (docs/train.md, "A fresh round"): 87-91% of GRPO's groups
were flat on it, the greedy reasonings stayed about as incoherent, and consistency moved +2.2,
-0.4 and -0.2 pt, so the recipe leaves it off. Cost: one conclusion read per completion, cached.
"""

from __future__ import annotations

from typing import Any

from globe.answer.conclusion import reasoning_coherent
from globe.rewards._inputs import answers


def coherence_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when the reasoning's concluded city lies in the country it names, else 0.0.

    >>> coherence_reward([
    ...     "<think>The colours of Germany. That silhouette belongs to Berlin.</think><answer>city: Berlin</answer>",
    ...     "<think>The colours of India. That silhouette belongs to Novosibirsk.</think><answer>city: Delhi</answer>"])
    [1.0, 0.0]
    """
    return [1.0 if reasoning_coherent(a.think) else 0.0 for a in answers(completions)]


coherence_reward.__name__ = "coherence"
