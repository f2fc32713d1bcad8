"""Visual grounding: the share of the sample's entities that the reasoning names.

Each training sample carries `entities`, the visual cues verified to be in the image (GeoScenes
knows what it drew; distilled data keeps the entities the teachers named and the verifier
confirmed). The reward is the share of them found, case-insensitively, inside `<think>`, so the
policy is paid for reasoning about what is really there rather than about plausible clichés.

A sample with no entities (None or []) scores 0.0, not None: there is nothing to ground, and
since every generation of that prompt gets the same 0.0 its group-relative GRPO advantage is
zero, so the constant changes no gradient; None would instead make TRL warn when it is the only
reward, and would hide such samples from the logged mean. A completion without `<think>` grounds
nothing and scores 0.0.
"""

from __future__ import annotations

from typing import Any

from globe.rewards._inputs import answers, as_list, column


def grounding_share(think: str | None, entities: list[str]) -> float:
    """Share of `entities` found in `think`, case-insensitively (0.0 when either is empty)."""
    if not think or not entities:
        return 0.0
    text = think.casefold()
    return sum(1 for e in entities if e.casefold().strip() in text) / len(entities)


def grounding_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """Share of the sample's `entities` named inside `<think>`.

    >>> grounding_reward(["<think>A red flag and a pagoda.</think><answer>country: China</answer>"],
    ...                  entities=[["red flag", "pagoda", "palm tree", "tram"]])
    [0.5]
    """
    n = len(completions)
    entities = column(kwargs, "entities", n, "grounding")
    return [grounding_share(a.think, as_list(e)) for a, e in zip(answers(completions), entities)]


grounding_reward.__name__ = "grounding"
