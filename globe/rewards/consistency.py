"""Consistency: pay when the reasoning concludes the place the answer names (ours, not the paper's).

GRPO's accuracy reward reads only the answer, so a policy can learn to answer right while its
`<think>` still argues for another city: right for the wrong reason (docs/eval.md, "Does the
reasoning support the answer?"). This reward is 1.0 when `globe.faithfulness.judge` finds that the
reasoning's own conclusion supports the answer and 0.0 otherwise, a reasoning that concludes no
place included: silence is not support. It is the same function as evaluation's `consistency`
metric and the served answer's `consistent` flag, and it reads real text, not only the tiny
world's phrasing (the conclusion reader is `globe.answer.conclusion`).

Group normalisation (DESIGN.md §8) erases a reward that is the same for every completion of a
group: log `rewards/consistency/zero_std_frac` beside the others. Cost: one conclusion read per
completion, cached by text, plus cached gazetteer look-ups.
"""

from __future__ import annotations

from typing import Any

from globe.faithfulness import judge
from globe.rewards._inputs import completion_text, parsed


def consistency_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 when the reasoning concludes the answered place, else 0.0.

    >>> consistency_reward([
    ...     "<think>That silhouette belongs to Berlin.</think><answer>country: Germany\\ncity: Berlin</answer>",
    ...     "<think>That silhouette belongs to Berlin.</think><answer>country: Germany\\ncity: Hamburg</answer>"])
    [1.0, 0.0]
    """
    out = []
    for completion in completions:
        answer = parsed(completion if type(completion) is str else completion_text(completion))
        out.append(1.0 if judge(answer).consistent else 0.0)
    return out


consistency_reward.__name__ = "consistency"
