"""Coherence: pay when the reasoning's own inferences agree (ours, not the paper's).

GLOBE's grounding reward pays for naming the cues that are in the image; it cannot see what the
reasoning infers from them. The tiny policy's remaining inconsistencies are mostly reasonings that
read the flag as one country and the landmark as a city of another ("…the colours of India … that
silhouette belongs to Novosibirsk"): on three seeds, 77% of such held-out answers name another
place than the reasoning concludes, against 4% after a coherent reasoning (docs/train.md,
"Coherent inferences"). This reward is 1.0 when the city the reasoning concludes lies in the
country it names (`globe.answer.conclusion.reasoning_coherent`, or when it names no country), and
0.0 otherwise, a reasoning that concludes no place included. It reads the reasoning alone, with
the same reader as the consistency metric, so it works on real text, not only on the tiny world's
phrasing.

On real reasonings that weigh two countries before settling ("…could be Spain, but the tiles
point to Lisbon"), the country the reader takes is the concluding sentence's, else the last one
named: a reasoning that ends on a city of a country it ruled out earlier is not paid. Cost: one
conclusion read per completion, cached by text.
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
