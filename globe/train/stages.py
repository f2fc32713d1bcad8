"""The one stage runner: `train_stage("sft" | "reward_model" | "grpo", ...)`.

The CLI (`globe train`), the KFP steps (`globe.kfp.steps.train`) and the ablation's workers all
dispatch through it, so a stage's arguments are passed one way everywhere. Stage names are
params.yaml's group names; the dvc/CLI spelling `reward-model` is accepted too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from globe.config import Params

STAGES = ("sft", "reward_model", "grpo")


class UnknownStage(ValueError):
    """Not one of the training stages."""


def stage_name(stage: str) -> str:
    """`reward-model` -> `reward_model`; an unknown stage is an error naming the known ones."""
    name = stage.replace("-", "_")
    if name not in STAGES:
        raise UnknownStage(f"unknown training stage {stage!r}; expected sft, reward-model or grpo")
    return name


def train_stage(stage: str, params: Params, data: str | Path, out: str | Path, *, model: str | None = None,
                reward_model: str | None = None, resume: bool = False,
                results: str | Path | None = None) -> dict[str, Any]:
    """Train one stage into `out`; returns its metrics.json summary. `reward_model` (the GRPO judge)
    is GRPO's alone."""
    name = stage_name(stage)
    if name != "grpo" and reward_model is not None:
        raise ValueError(f"{stage}: --reward-model is GRPO's (the localizability judge)")
    if name == "sft":
        from globe.train.sft import train_sft

        return train_sft(params, data, out, model=model, resume=resume, results=results)
    if name == "reward_model":
        from globe.train.reward_model import train_reward_model

        return train_reward_model(params, data, out, model=model, resume=resume, results=results)
    from globe.train.grpo import train_grpo

    return train_grpo(params, data, out, model=model, reward_model=reward_model, resume=resume, results=results)
