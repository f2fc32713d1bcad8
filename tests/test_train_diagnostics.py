"""What a GRPO run logs to explain itself, and the flat-group mask, on reward matrices built by hand."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from globe.train.grpo import learning_warnings, skip_flat_groups
from globe.train.monitor import zero_std_shares
from globe.train.run import phase_means


def _trainer(rewards: torch.Tensor, names=("accuracy", "localizability", "format"), group=4):
    return SimpleNamespace(
        reward_func_names=list(names), num_generations=group, num_generations_eval=group,
        model=SimpleNamespace(training=True), _metrics=defaultdict(lambda: defaultdict(list)),
        _calculate_rewards=lambda *a, **k: rewards.clone(),
    )


def test_flat_accuracy_groups_get_a_constant_total_and_mixed_groups_are_left_alone():
    rewards = torch.tensor([
        # group 1: accuracy flat (all wrong), the judge and format differ a little
        [0.0, 0.91, 1.0], [0.0, 0.93, 1.0], [0.0, 0.90, 0.0], [0.0, 0.92, 1.0],
        # group 2: accuracy differs: this group teaches something, untouched
        [1.0, 0.91, 1.0], [0.2, 0.93, 1.0], [0.2, 0.90, 1.0], [float("nan"), 0.92, 1.0],
    ])
    trainer = _trainer(rewards)
    skip_flat_groups(trainer, "accuracy")
    out = trainer._calculate_rewards()
    weights = torch.tensor([1.0, 0.5, 1.0])
    total = (out * weights).nansum(dim=1).view(2, 4)
    assert torch.allclose(total[0], total[0, :1].expand(4))  # constant: zero advantage for every completion
    assert torch.allclose(out[:4].mean(dim=0), rewards[:4].mean(dim=0))  # the logged means do not move
    assert torch.equal(out[4:].nan_to_num(-1), rewards[4:].nan_to_num(-1))  # None stays None
    assert trainer._metrics["train"]["flat_groups_skipped"] == [0.5]


def test_the_mask_needs_one_of_the_runs_rewards():
    with pytest.raises(ValueError, match="'geodesic' is not one of this run's rewards"):
        skip_flat_groups(_trainer(torch.zeros(4, 3)), "geodesic")


def test_zero_std_shares_count_flat_groups_per_reward_and_a_lone_score_as_flat():
    r = torch.tensor([[1.0, 0.5], [1.0, 0.5], [0.2, float("nan")], [1.0, float("nan")]])
    assert zero_std_shares(r, 2, ["accuracy", "localizability"]) == {"accuracy": 0.5, "localizability": 1.0}
    assert zero_std_shares(r, 3, ["accuracy", "localizability"]) == {}  # groups must be whole


def test_warnings_name_what_to_look_at():
    flat_and_rising = {"accuracy": {"mean": {"first": 0.30, "last": 0.29}, "zero_std_frac": {"last": 0.9}}}
    messages = learning_warnings({"first": 1.2, "last": 1.5}, flat_and_rising)
    assert len(messages) == 2 and "accuracy reward did not" in messages[0] and "90%" in messages[1]
    learning = {"accuracy": {"mean": {"first": 0.30, "last": 0.45}, "zero_std_frac": {"last": 0.3}}}
    assert learning_warnings({"first": 1.2, "last": 1.5}, learning) == []
    assert learning_warnings({"first": 1.2, "last": 1.5}, {}) == []  # no accuracy reward: nothing to compare


def test_phase_means_average_a_fifth_of_the_windows():
    history = [{"r": float(i)} for i in range(10)] + [{"other": 1.0}]
    assert phase_means(history, "r") == {"first": 0.5, "last": 8.5, "windows": 10}
    assert phase_means(history, "missing") == {"first": None, "last": None, "windows": 0}
