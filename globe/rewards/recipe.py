"""params.yaml `rewards:` -> the reward functions and weights GRPO trains with.

One function decides which rewards a run has (`planned_rewards`), and both the real run
(`build_reward_funcs`) and `globe train grpo --dry-run` (`globe.train.plan`) call it, so the dry
run lists exactly the rewards the trainer will log and train on. A zero weight keeps the reward:
it is logged (`rewards/<name>/mean`) without moving the policy. The one exception is a zero-weight
localizability reward without a judge: there is nothing to call, so it is left out.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

from globe.config import REWARD_NAMES, RewardsGroup
from globe.engines.base import Engine
from globe.rewards.accuracy import accuracy_reward
from globe.rewards.coherence import coherence_reward
from globe.rewards.consistency import consistency_reward
from globe.rewards.reasoning_accuracy import reasoning_accuracy_reward
from globe.rewards.supported_accuracy import supported_accuracy_reward
from globe.rewards.format import format_reward
from globe.rewards.geodesic import geodesic_reward
from globe.rewards.grounding import grounding_reward
from globe.rewards.localizability import make_localizability_reward


def rewards_group(group: RewardsGroup | Mapping[str, Any]) -> RewardsGroup:
    """A validated `rewards` group (a plain mapping gets the defaults of `globe.config.RewardsGroup`;
    an unknown reward name is a ValueError that lists the known ones)."""
    if isinstance(group, RewardsGroup):
        return group
    from pydantic import ValidationError

    try:
        return RewardsGroup.model_validate(dict(group))
    except ValidationError as exc:
        raise ValueError(f"rewards.weights: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def planned_rewards(group: RewardsGroup | Mapping[str, Any], judge: bool) -> dict[str, float]:
    """name -> weight of the rewards a run has, in the order of `rewards.weights`; `judge` says
    whether a localizability judge is available.

    >>> planned_rewards({"weights": {"accuracy": 1.0, "localizability": 0.0, "format": 0.5}}, judge=False)
    {'accuracy': 1.0, 'format': 0.5}
    """
    weights = rewards_group(group).weights
    if not weights:
        raise ValueError("rewards.weights must map reward names to weights, e.g. {accuracy: 1.0, format: 1.0}")
    return {name: float(w) for name, w in weights.items() if judge or not (name == "localizability" and w == 0)}


def build_reward_funcs(
    group: RewardsGroup | Mapping[str, Any], judge: Engine | None = None
) -> tuple[list[Callable], list[float]]:
    """(reward functions, weights) of `planned_rewards`; localizability needs `judge`, an Engine
    serving the reward model.

    >>> funcs, weights = build_reward_funcs({"weights": {"accuracy": 1.0, "format": 0.5}})
    >>> [f.__name__ for f in funcs], weights
    (['accuracy', 'format'], [1.0, 0.5])
    """
    group = rewards_group(group)
    planned = planned_rewards(group, judge is not None)
    return [_reward_func(name, group, judge) for name in planned], list(planned.values())


# The rewards that need nothing but the completions and the dataset's columns.
_PLAIN: dict[str, Callable] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "grounding": grounding_reward,
    "consistency": consistency_reward,
    "coherence": coherence_reward,
    "reasoning_accuracy": reasoning_accuracy_reward,
    "supported_accuracy": supported_accuracy_reward,
}


def _reward_func(name: str, group: RewardsGroup, judge: Engine | None) -> Callable:
    """The function of one reward name; those with settings are bound to `group`'s."""
    if name in _PLAIN:
        return _PLAIN[name]
    if name == "geodesic":
        geodesic = functools.partial(geodesic_reward, scale_km=group.geodesic_scale_km)
        return functools.update_wrapper(geodesic, geodesic_reward)  # keeps __name__ "geodesic"
    if name == "localizability":
        if judge is None:
            raise ValueError(
                "rewards.weights has 'localizability' but no judge was given: pass the reward-model Engine "
                "(build_reward_funcs(params.rewards, judge=engine)) or remove localizability from rewards.weights"
            )
        return make_localizability_reward(judge, max_failure_share=group.max_failure_share,
                                          min_calls=group.min_judge_calls)
    raise ValueError(f"rewards.weights: no reward function for {name!r}; known: {', '.join(REWARD_NAMES)}")
