"""Watch a GRPO run from the outside: what each reward teaches, failures, and where time goes.

TRL already logs `rewards/<name>/mean|std`, the weighted total `reward`, `frac_reward_zero_std`
(of the *total*), `completions/mean_length` and `completions/clipped_ratio`. What it does not
keep is what explains a run that does not learn:

- per reward, the share of groups in which all G completions got the same value
  (`rewards/<name>/zero_std_frac`). Group-normalised advantages ignore a reward whose groups
  are flat, so a flat accuracy reward means only format and the judge steer the policy, however
  they are weighted (docs/train.md, "Reading a GRPO run");
- how many completions a reward could not score (a reward returning None is left out of the
  mean, so a judge that fails half the time still shows a healthy-looking mean);
- how a step splits into generation, reward scoring and optimisation.

`RewardMonitor` wraps the reward functions (keeping their `__name__`, which TRL uses for the log
keys), the trainer's `_generate` and `_calculate_rewards` (whose output holds every completion of
the generation batch, gathered over processes, so groups are whole even when one spans two GPUs),
and is a `TrainerCallback` that times whole optimizer steps; optimisation = step - generation -
rewards.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable

from transformers import TrainerCallback


class _Monitored:
    """A reward function that reports its time and its None results to the monitor."""

    def __init__(self, func: Callable, monitor: "RewardMonitor") -> None:
        self.func = func
        self.monitor = monitor
        self.__name__ = getattr(func, "__name__", type(func).__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
        start = time.perf_counter()
        try:
            out = self.func(*args, **kwargs)
        finally:
            self.monitor.reward_s += time.perf_counter() - start
        missing = sum(v is None for v in out)
        self.monitor.calls[self.__name__] += len(out)
        self.monitor.failures[self.__name__] += missing
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric(f"reward_failures/{self.__name__}", float(missing))
        return out


def zero_std_shares(rewards, group_size: int, names: list[str]) -> dict[str, float]:
    """Per reward: the share of groups whose completions all scored the same (None/NaN ignored).

    A group with fewer than two scored completions counts as flat: it cannot rank anything.

    >>> import torch
    >>> r = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.2, 1.0], [1.0, 1.0]])  # 2 groups of 2, 2 rewards
    >>> zero_std_shares(r, 2, ["accuracy", "format"])
    {'accuracy': 0.5, 'format': 0.5}
    """
    import torch

    if group_size < 2 or rewards.numel() == 0 or rewards.shape[0] % group_size:
        return {}
    grouped = rewards.detach().float().cpu().view(-1, group_size, rewards.shape[1])
    finite = ~torch.isnan(grouped)
    high = torch.where(finite, grouped, torch.full_like(grouped, -torch.inf)).amax(dim=1)
    low = torch.where(finite, grouped, torch.full_like(grouped, torch.inf)).amin(dim=1)
    flat = (finite.sum(dim=1) < 2) | torch.isclose(high, low)
    return {name: float(flat[:, k].float().mean()) for k, name in enumerate(names)}


class RewardMonitor(TrainerCallback):
    """Counts unscored completions per reward and splits step time (seconds, summed over the run)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.failures: dict[str, int] = defaultdict(int)
        self.reward_s = 0.0
        self.generate_s = 0.0
        self.step_s = 0.0
        self.steps = 0
        self.per_step: list[tuple[float, float, float]] = []  # (step, generation, reward) seconds
        self._step_start: float | None = None
        self._at_start = (0.0, 0.0)
        self._rewards: list[_Monitored] = []

    def wrap(self, funcs: list[Callable]) -> list[Callable]:
        """The reward functions, each wrapped so its time and failures are recorded."""
        self._rewards = [_Monitored(f, self) for f in funcs]
        return list(self._rewards)

    def attach(self, trainer) -> None:
        """Time the rollout generation (model.generate or vLLM) and log per-reward group statistics."""
        generate = trainer._generate
        calculate = trainer._calculate_rewards

        def timed_generate(*args: Any, **kwargs: Any):
            start = time.perf_counter()
            try:
                return generate(*args, **kwargs)
            finally:
                self.generate_s += time.perf_counter() - start

        def calculate_and_log(*args: Any, **kwargs: Any):
            rewards = calculate(*args, **kwargs)  # (completions, reward functions), all processes
            mode = "train" if trainer.model.training else "eval"
            size = trainer.num_generations if mode == "train" else trainer.num_generations_eval
            for name, share in zero_std_shares(rewards, size, trainer.reward_func_names).items():
                trainer._metrics[mode][f"rewards/{name}/zero_std_frac"].append(share)
            return rewards

        trainer._generate = timed_generate
        trainer._calculate_rewards = calculate_and_log
        trainer.add_callback(self)

    # TrainerCallback hooks: one optimizer step = on_step_begin .. on_step_end
    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()
        self._at_start = (self.generate_s, self.reward_s)

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_start is not None:
            step = time.perf_counter() - self._step_start
            self.step_s += step
            self.steps += 1
            self.per_step.append((step, self.generate_s - self._at_start[0], self.reward_s - self._at_start[1]))
            self._step_start = None

    def failure_summary(self) -> dict[str, dict[str, float]]:
        """Per reward: completions scored, completions left unscored (None) and their share.

        Over all processes: each rank scores only its own completions, so the counters are summed
        across ranks (every rank must call this, as every rank writes the summary) and the shares
        are recomputed from the sums; one process's share would hide the other ranks' failures.
        """
        out: dict[str, dict[str, float]] = {}
        for name, calls in self.calls.items():
            out[name] = {"calls": calls, "failures": self.failures.get(name, 0)}
        for reward in self._rewards:  # the judge's own counters (calls that errored inside the engine)
            metrics = getattr(reward.func, "metrics", None)
            if callable(metrics):
                out.setdefault(reward.__name__, {}).update(
                    {k: v for k, v in metrics().items() if not k.endswith("_share")})
        out = _sum_over_ranks(out)
        for counters in out.values():
            if "calls" in counters:
                counters["failure_share"] = counters.get("failures", 0) / counters["calls"] if counters["calls"] else 0.0
            if "judge_calls" in counters:
                calls = counters["judge_calls"]
                counters["judge_failure_share"] = counters.get("judge_failures", 0.0) / calls if calls else 0.0
        return out

    def timing_summary(self, skip: int = 0) -> dict[str, float]:
        """Mean seconds per optimizer step for each part, and each part's share of the step.

        `skip` leaves out the first steps (warm-up: allocator, lazy imports, first compile).
        """
        steps = self.per_step[skip:]
        if not steps:
            return {}
        step = sum(s for s, _, _ in steps) / len(steps)
        gen = sum(g for _, g, _ in steps) / len(steps)
        rew = sum(r for _, _, r in steps) / len(steps)
        opt = max(step - gen - rew, 0.0)
        return {
            "steps_timed": len(steps),
            "step_s": step,
            "generation_s": gen,
            "reward_s": rew,
            "optimisation_s": opt,
            "generation_share": gen / step if step else 0.0,
            "reward_share": rew / step if step else 0.0,
            "optimisation_share": opt / step if step else 0.0,
        }


def _sum_over_ranks(counters: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """The counters summed over all processes (unchanged in a single-process run)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return counters
    import torch

    keys = sorted((name, key) for name, values in counters.items() for key in values)
    summed = torch.tensor([float(counters[n][k]) for n, k in keys], dtype=torch.float64)
    dist.all_reduce(summed)  # the same keys on every rank: the same rewards and judge
    out: dict[str, dict[str, float]] = {name: {} for name in counters}
    for (name, key), value in zip(keys, summed.tolist()):
        out[name][key] = int(value) if isinstance(counters[name][key], int) else value
    return out
