"""GRPO with TRL: sample G completions per image, score them with GLOBE's rewards, push the policy
towards the completions that beat their group's mean.

The rewards and their weights come from `params.rewards` through
`globe.rewards.build_reward_funcs`; TRL logs each reward's mean and std (`rewards/<name>/mean`)
and the weighted total (`reward`). The localizability reward needs a judge (the reward model from
`globe train reward-model`). Without one we stop before loading anything rather than silently
dropping a reward the paper trains with: pass `--reward-model DIR`, or say so explicitly with
`--set rewards.weights.localizability=0`.

Order matters for DeepSpeed ZeRO-3: the judge is loaded first (it must stay whole), then the TRL
config (which switches on ZeRO-3-partitioned loading), then the policy.

Multi-GPU / multi-node: `torchrun --nproc_per_node 8 -m globe train grpo --model ... --data ...
--out ...` runs the `globe train grpo` command on every rank (`globe/__main__.py`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from globe.config import Params

log = logging.getLogger(__name__)


JUDGE_BATCH = 64


def load_judge(spec: str):
    """The localizability judge: a model directory (LocalEngine) or an engine spec in YAML/JSON,
    e.g. `{kind: openai, base_url: http://judge:8000/v1, model: globe-rm}` for a served judge."""
    import yaml

    from globe.engines import LocalEngine, make_engine

    try:
        parsed = yaml.safe_load(spec)
    except yaml.YAMLError:
        parsed = None
    if isinstance(parsed, dict):
        return make_engine(parsed)
    device = "auto"
    import torch

    if torch.cuda.is_available():  # one judge per rank, on the rank's own GPU
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    # one forward pass for a whole generation batch (the judge only reads the first token's logits)
    return LocalEngine(spec, device=device, name="reward-model", batch_size=JUDGE_BATCH)


def reward_functions(params: Params, judge=None):
    """(funcs, weights) from params.rewards: the rewards `globe.rewards.planned_rewards` lists,
    the same list `--dry-run` shows."""
    from globe.rewards import build_reward_funcs

    return build_reward_funcs(params.rewards, judge=judge)


def train_grpo(
    params: Params,
    data: str | Path,
    out: str | Path,
    model: str | None = None,
    reward_model: str | None = None,
    resume: bool = False,
    callbacks: list[Any] | None = None,
    results: str | Path | None = None,
) -> dict[str, Any]:
    """`globe train grpo`; returns the metrics.json summary (rewards per window, failures, timing).

    `results`: also write the headline figures and the reward curves there (`run.write_results`)."""
    from trl import GRPOTrainer

    from globe.train.datasets import grpo_dataset
    from globe.train.monitor import RewardMonitor
    from globe.train.plan import TrainConfigError, build_config, make_plan, problems
    from globe.train.run import load_model, resume_checkpoint, runtime, save_clean, weights_source, world_size
    from globe.train.sft import lora_config

    out = Path(out)
    plan = make_plan("grpo", params, out, model=model, world_size=world_size(), reward_model=reward_model)
    errors = problems(plan)
    if errors:
        raise TrainConfigError("grpo: the training configuration is invalid:\n  - " + "\n  - ".join(errors))
    with runtime(plan):
        last = resume_checkpoint(out, resume)
        dataset = grpo_dataset(Path(data))
        judge = load_judge(plan.reward_model) if plan.reward_model else None
        funcs, weights = reward_functions(params, judge)
        config = build_config(plan, reward_weights=weights)
        policy, processor = load_model(
            weights_source(plan, last), bf16=bool(plan.args.get("bf16")), freeze_vision=plan.freeze_vision
        )
        policy.config._name_or_path = str(plan.model)  # TRL's KL reference: the start, not a resume point
        monitor = RewardMonitor()
        trainer = GRPOTrainer(
            model=policy,
            reward_funcs=monitor.wrap(funcs),
            args=config,
            train_dataset=dataset,
            processing_class=processor,
            peft_config=lora_config(plan.peft),
            callbacks=callbacks,
        )
        monitor.attach(trainer)
        if plan.skip_flat_groups:
            skip_flat_groups(trainer, plan.skip_flat_groups)
        if plan.split_advantage:  # after the mask: a masked group stays masked on both sides
            from globe.train.split_advantage import install_split_advantage

            install_split_advantage(trainer, [f.__name__ for f in funcs], weights)
        output = trainer.train(resume_from_checkpoint=last)
        save_clean(trainer, processor, out)
    summary = _write_summary(out, plan, trainer, output, monitor, funcs, weights, len(dataset), last)
    if results is not None and trainer.is_world_process_zero():
        from globe.train.run import write_results

        names = [f.__name__ for f in funcs]
        curves = ("loss", "reward", *(f"rewards/{n}/mean" for n in names), "rewards/accuracy/zero_std_frac",
                  "completions/mean_length", "completions/clipped_ratio", "kl")
        write_results(results, summary, trainer.state.log_history, curves=curves)
    return summary


def skip_flat_groups(trainer, reward: str) -> None:
    """Give zero advantage to the groups in which `reward` is flat (logged as `flat_groups_skipped`).

    Group-normalised advantages ignore a reward that is the same for all G completions, so in such a
    group the other rewards alone decide which completions are pushed up: for a small policy, tiny
    differences in the judge's P(yes) or in the entities named. DAPO drops those groups and samples
    new ones; TRL has no dynamic sampling, so here every reward of a flat group is set to its group
    mean: the weighted total is then constant, the advantages are zero, and the logged means stay
    what they were. Wraps `_calculate_rewards` after the monitor, which sees the raw rewards.
    """
    import torch

    names = list(trainer.reward_func_names)
    if reward not in names:
        raise ValueError(f"grpo.skip_flat_groups: {reward!r} is not one of this run's rewards ({', '.join(names)})")
    column = names.index(reward)
    calculate = trainer._calculate_rewards

    def gated(*args: Any, **kwargs: Any):
        rewards = calculate(*args, **kwargs)
        size = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        if size < 2 or rewards.shape[0] % size:
            return rewards
        grouped = rewards.view(-1, size, rewards.shape[1])
        key = grouped[:, :, column]
        finite = ~torch.isnan(key)
        high = torch.where(finite, key, torch.full_like(key, -torch.inf)).amax(dim=1)
        low = torch.where(finite, key, torch.full_like(key, torch.inf)).amin(dim=1)
        flat = (finite.sum(dim=1) < 2) | torch.isclose(high, low)
        if flat.any():
            means = torch.nanmean(grouped, dim=1, keepdim=True).expand_as(grouped)
            scored = ~torch.isnan(grouped)  # None stays None: it is left out of the sums either way
            grouped = torch.where(flat[:, None, None] & scored, means, grouped)
        mode = "train" if trainer.model.training else "eval"
        trainer._metrics[mode]["flat_groups_skipped"].append(float(flat.float().mean()))
        return grouped.reshape(rewards.shape)

    trainer._calculate_rewards = gated


DIAGNOSTICS = ("reward", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio", "kl", "entropy")


def _write_summary(out, plan, trainer, output, monitor, funcs, weights, examples: int, last) -> dict[str, Any]:
    """metrics.json: TRL's history plus what explains the run (docs/train.md, "Reading a GRPO run").

    Per reward: its mean on the sampled completions and the share of groups in which it was flat,
    early and late in the run (the first and last fifth of the logging windows); the completion
    length and clipped share; failures; the step-time split; and warnings a user can act on.
    """
    from globe.train.run import phase_means, write_metrics

    history = trainer.state.log_history
    names = [f.__name__ for f in funcs]
    per_reward = {
        name: {
            "weight": weight,
            "mean": phase_means(history, f"rewards/{name}/mean"),
            "zero_std_frac": phase_means(history, f"rewards/{name}/zero_std_frac"),
        }
        for name, weight in zip(names, weights)
    }
    diagnostics = {key: phase_means(history, key) for key in DIAGNOSTICS}
    extra = {
        "examples": examples,
        "resumed_from": last,
        "reward_first_window": diagnostics["reward"]["first"],
        "reward_last_window": diagnostics["reward"]["last"],
        "rewards": per_reward,
        "diagnostics": diagnostics,
        "reward_weights": dict(zip(names, weights)),
        "reward_failures": monitor.failure_summary(),
        "timing": monitor.timing_summary(skip=1 if monitor.steps > 1 else 0),  # step 1 is warm-up
        "warnings": learning_warnings(diagnostics["reward"], per_reward),
    }
    for message in extra["warnings"]:
        log.warning("grpo: %s", message)
    extra["headline"] = headline(per_reward, diagnostics, len(extra["warnings"]))
    return write_metrics(out, plan, trainer, output, extra=extra)


def headline(per_reward: dict[str, dict[str, Any]], diagnostics: dict[str, dict], warnings: int) -> dict[str, Any]:
    """The few GRPO figures `dvc metrics show` prints: the total and the accuracy reward early ->
    late, how flat the accuracy reward was, the completion length and clipped share, the KL, and the
    warning count (every reward's figures are in OUT/metrics.json)."""
    out: dict[str, Any] = {}
    if "accuracy" in per_reward:
        out["accuracy_first"], out["accuracy_last"] = (per_reward["accuracy"]["mean"][k] for k in ("first", "last"))
        out["accuracy_zero_std_last"] = per_reward["accuracy"]["zero_std_frac"]["last"]
    for key, name in (("reward", "reward"), ("completions/mean_length", "completion_length"),
                      ("completions/clipped_ratio", "clipped_share"), ("kl", "kl")):
        out[f"{name}_last"] = diagnostics[key]["last"]
    out["reward_first"] = diagnostics["reward"]["first"]
    out["warnings"] = warnings
    return out


def learning_warnings(total: dict[str, float | None], per_reward: dict[str, dict[str, Any]]) -> list[str]:
    """What a user should look at: a total reward that rose while accuracy did not, and an
    accuracy reward that was flat in most groups (so other rewards steered the policy).

    >>> learning_warnings({"first": 1.2, "last": 1.5},
    ...                   {"accuracy": {"mean": {"first": 0.3, "last": 0.3}, "zero_std_frac": {"last": 0.2}}})
    ['the total reward rose (1.200 -> 1.500) while the accuracy reward did not (0.300 -> 0.300): the policy learned other rewards (format, judge), not the place; see docs/train.md, "Reading a GRPO run"']
    """
    out = []
    acc = per_reward.get("accuracy")
    if acc is None:
        return out
    first, last = total.get("first"), total.get("last")
    a_first, a_last = acc["mean"].get("first"), acc["mean"].get("last")
    if None not in (first, last, a_first, a_last) and last > first + 1e-3 and a_last <= a_first + 1e-3:
        out.append(
            f"the total reward rose ({first:.3f} -> {last:.3f}) while the accuracy reward did not "
            f"({a_first:.3f} -> {a_last:.3f}): the policy learned other rewards (format, judge), not the place; "
            'see docs/train.md, "Reading a GRPO run"'
        )
    flat = acc["zero_std_frac"].get("last")
    if flat is not None and flat > 0.8:
        out.append(
            f"the accuracy reward was flat in {flat:.0%} of the groups late in the run: its advantages are zero "
            "there and the other rewards steer the policy; raise grpo.num_generations or lower the temperature"
        )
    return out


if __name__ == "__main__":  # the old torchrun entry point: say where it went instead of doing nothing
    raise SystemExit("globe.train.grpo is a library module; run `torchrun ... -m globe train grpo ...` "
                     "(the globe command on every rank, same options)")
