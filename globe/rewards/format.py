"""Format reward: 1.0 when the completion is exactly `<think>…</think><answer>…</answer>`.

This is the released strict tag regex (`globe.answer.FORMAT_RE`, matched against the whole
completion, surrounding whitespace allowed). It stays strict on purpose: the parser forgives
broken tags so that evaluation can still score the place, and this reward is what teaches the
policy not to rely on that.
"""

from __future__ import annotations

from typing import Any

from globe.rewards._inputs import answers


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 for the strict GLOBE tag format, else 0.0.

    >>> format_reward(["<think>Red flag.</think><answer>country: China\\ncity: Beijing</answer>", "Beijing"])
    [1.0, 0.0]
    """
    return [1.0 if a.format_ok else 0.0 for a in answers(completions)]


format_reward.__name__ = "format"
