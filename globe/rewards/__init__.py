"""GLOBE's reward functions, in TRL's signature: `(completions, **dataset_columns) -> list[float | None]`.

| params key       | function                         | columns            |
|------------------|----------------------------------|--------------------|
| `accuracy`       | `accuracy_reward`                | country, city      |
| `format`         | `format_reward`                  | —                  |
| `grounding`      | `grounding_reward`               | entities           |
| `localizability` | `make_localizability_reward(judge)` | image           |
| `geodesic`       | `geodesic_reward` (ours)         | lat, lon           |
| `consistency`    | `consistency_reward` (ours)      | —                  |
| `reasoning_accuracy` | `reasoning_accuracy_reward` (ours) | country, city  |
| `supported_accuracy` | `supported_accuracy_reward` (ours) | country, city  |
| `coherence`      | `coherence_reward` (ours)        | —                  |

Each function's `__name__` is its params key, so TRL logs `rewards/<key>/mean`.
`build_reward_funcs(params.rewards, judge)` turns the `rewards.weights` mapping into the
`reward_funcs` and `reward_weights` that `GRPOTrainer`/`GRPOConfig` take.
"""

from __future__ import annotations

from globe.rewards.accuracy import accuracy_reward, city_match, country_match, string_match
from globe.rewards.coherence import coherence_reward
from globe.rewards.consistency import consistency_reward
from globe.rewards.reasoning_accuracy import reasoning_accuracy_reward
from globe.rewards.supported_accuracy import supported_accuracy_reward
from globe.rewards.format import format_reward
from globe.rewards.geodesic import geodesic_reward, locate
from globe.rewards.grounding import grounding_reward
from globe.rewards.localizability import LocalizabilityReward, RewardFailure, make_localizability_reward
from globe.rewards.recipe import REWARD_NAMES, build_reward_funcs, planned_rewards

localizability_reward = make_localizability_reward  # the factory, under the name the design uses

__all__ = [
    "REWARD_NAMES",
    "LocalizabilityReward",
    "RewardFailure",
    "accuracy_reward",
    "build_reward_funcs",
    "planned_rewards",
    "reasoning_accuracy_reward",
    "supported_accuracy_reward",
    "city_match",
    "coherence_reward",
    "consistency_reward",
    "country_match",
    "format_reward",
    "geodesic_reward",
    "grounding_reward",
    "locate",
    "localizability_reward",
    "make_localizability_reward",
    "string_match",
]
