"""params.yaml `rewards:` -> the reward functions and weights GRPO trains with."""

from __future__ import annotations

import functools
from typing import Any, Callable

from globe.engines.base import Engine
from globe.rewards.accuracy import accuracy_reward
from globe.rewards.format import format_reward
from globe.rewards.geodesic import geodesic_reward
from globe.rewards.grounding import grounding_reward
from globe.rewards.localizability import make_localizability_reward

REWARD_NAMES = ("accuracy", "format", "grounding", "localizability", "geodesic")


def _setting(group: Any, name: str, default: Any) -> Any:
    if isinstance(group, dict):
        return group.get(name, default)
    return getattr(group, name, default)


def build_reward_funcs(rewards_group: Any, judge: Engine | None = None) -> tuple[list[Callable], list[float]]:
    """(reward functions, weights) in the order of `rewards.weights`.

    `rewards_group` is `Params.rewards` (or a plain dict with the same keys). A zero weight still
    builds the function, so a reward can be logged without being trained on. The localizability
    reward needs `judge`, an Engine serving the reward model.

    >>> funcs, weights = build_reward_funcs({"weights": {"accuracy": 1.0, "format": 0.5}})
    >>> [f.__name__ for f in funcs], weights
    (['accuracy', 'format'], [1.0, 0.5])
    """
    weights = _setting(rewards_group, "weights", None)
    if not isinstance(weights, dict) or not weights:
        raise ValueError("rewards.weights must map reward names to weights, e.g. {accuracy: 1.0, format: 1.0}")
    funcs: list[Callable] = []
    for name, weight in weights.items():
        if name == "accuracy":
            funcs.append(accuracy_reward)
        elif name == "format":
            funcs.append(format_reward)
        elif name == "grounding":
            funcs.append(grounding_reward)
        elif name == "geodesic":
            scale_km = float(_setting(rewards_group, "geodesic_scale_km", 750.0))
            geodesic = functools.partial(geodesic_reward, scale_km=scale_km)
            funcs.append(functools.update_wrapper(geodesic, geodesic_reward))  # keeps __name__ "geodesic"
        elif name == "localizability":
            if judge is None:
                raise ValueError(
                    "rewards.weights has 'localizability' but no judge was given: pass the reward-model Engine "
                    "(build_reward_funcs(params.rewards, judge=engine)) or remove localizability from rewards.weights"
                )
            funcs.append(make_localizability_reward(
                judge,
                max_failure_share=float(_setting(rewards_group, "max_failure_share", 0.2)),
                min_calls=int(_setting(rewards_group, "min_judge_calls", 32)),
            ))
        else:
            raise ValueError(f"rewards.weights: unknown reward {name!r} (known: {', '.join(REWARD_NAMES)})")
    return funcs, [float(w) for w in weights.values()]
