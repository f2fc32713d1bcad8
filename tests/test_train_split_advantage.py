"""`grpo.split_advantage`: where a completion's reasoning ends in tokens (the tiny model's real
tokenizer) and which advantage each side gets (reward matrices of known groups)."""

from __future__ import annotations

import pytest
import torch

from globe.answer import format_answer
from globe.train.split_advantage import (
    ANSWER_REWARDS,
    REASONING_REWARDS,
    reasoning_end,
    reasoning_tokens,
    side_advantages,
    token_advantages,
)

NAMES = ["accuracy", "format", "reasoning_accuracy", "consistency"]
WEIGHTS = torch.tensor([1.0, 1.0, 1.0, 0.5])
REASONING = torch.tensor([n in REASONING_REWARDS for n in NAMES])
ANSWER = torch.tensor([n in ANSWER_REWARDS for n in NAMES])


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir).tokenizer


def _decode(tokenizer):
    return lambda ids: tokenizer.decode(ids, skip_special_tokens=False)


def test_the_reasoning_ends_with_its_closing_tag_in_real_tokens(tokenizer):
    text = format_answer(
        "A arch landmark stands on the skyline; that silhouette belongs to Berlin.", "Germany", "Hamburg", 52.52, 13.41
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = reasoning_tokens(ids, _decode(tokenizer))
    assert n is not None and 0 < n < len(ids)
    assert tokenizer.decode(ids[:n]).endswith("</think>")
    assert "</think>" not in tokenizer.decode(ids[: n - 1])
    assert tokenizer.decode(ids[n:]).lstrip().startswith("<answer>country: Germany")


def test_a_stray_closing_tag_inside_the_reasoning_is_not_its_end(tokenizer):
    text = "<think>the sign says </think> in red; that silhouette belongs to Paris</think>\n<answer>country: France\ncity: Paris</answer>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    n = reasoning_tokens(ids, _decode(tokenizer))
    assert tokenizer.decode(ids[:n]).endswith("belongs to Paris</think>")
    assert reasoning_end(text)[1] == 2


def test_a_completion_without_a_closing_tag_has_no_split(tokenizer):
    ids = tokenizer("<think>that silhouette belongs to Paris <answer>country: France</answer>",
                    add_special_tokens=False)["input_ids"]
    assert reasoning_tokens(ids, _decode(tokenizer)) is None


def test_the_reasoning_is_not_paid_for_an_answer_that_argued_past_it():
    """One group of four; completion 0's reasoning names the popular city (reasoning_accuracy 0.2) and
    its answer the true one. With one advantage its wrong reasoning is pushed up with the right
    answer; split, its reasoning's tokens go down and its answer's up. Completion 3 is the mirror."""
    rewards = torch.tensor([
        # accuracy, format, reasoning_accuracy, consistency
        [1.0, 1.0, 0.2, 0.0],  # reasoning: Berlin (prior), answer: Hamburg (true)
        [0.2, 1.0, 0.2, 1.0],  # Berlin, Berlin
        [0.2, 1.0, 0.2, 1.0],  # Berlin, Berlin
        [0.2, 1.0, 1.0, 0.0],  # Hamburg, Berlin
    ])
    whole = side_advantages(rewards, WEIGHTS, torch.ones(4, dtype=torch.bool), group=4, scale="none")
    reasoning = side_advantages(rewards, WEIGHTS, REASONING, group=4, scale="none")
    answer = side_advantages(rewards, WEIGHTS, ANSWER, group=4, scale="none")
    assert whole[0] > 0  # the paper's GRPO: every token of completion 0, its reasoning included, goes up
    assert reasoning[0] < 0 and answer[0] > 0
    assert whole[3] > 0 and reasoning[3] > 0 and answer[3] < 0
    assert torch.allclose(reasoning.sum(), torch.tensor(0.0), atol=1e-6)  # centred within the group


def test_group_scaling_follows_trl_and_a_side_with_no_score_gets_zero():
    nan = float("nan")
    rewards = torch.tensor([[1.0, 1.0, 0.2, 0.0], [0.2, 1.0, 1.0, 1.0], [nan, nan, nan, nan], [0.2, 1.0, 0.2, 1.0]])
    total = (rewards * WEIGHTS).nansum(dim=1)[[0, 1, 3]]
    expected = (total - total.mean()) / (total.std() + 1e-4)  # TRL: (r - mean) / (std + 1e-4), std with n - 1
    got = side_advantages(rewards, WEIGHTS, torch.ones(4, dtype=torch.bool), group=4, scale="group")
    assert torch.allclose(got[[0, 1, 3]], expected, atol=1e-5) and got[2] == 0
    with pytest.raises(ValueError, match="scale_rewards"):
        side_advantages(rewards, WEIGHTS, REASONING, group=4, scale="sometimes")


def test_each_token_gets_its_sides_advantage_and_an_unsplit_completion_keeps_the_whole():
    out = token_advantages(torch.tensor([0.5, -0.5]), torch.tensor([-1.0, 2.0]), torch.tensor([1.0, 3.0]), [2, None], 4)
    assert out.tolist() == [[-1.0, -1.0, 1.0, 1.0], [-0.5, -0.5, -0.5, -0.5]]


def test_docstring_examples():
    import doctest

    import globe.train.split_advantage as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_a_trainer_with_an_unpaid_side_is_not_split():
    from types import SimpleNamespace

    from globe.train.split_advantage import install_split_advantage

    trainer = SimpleNamespace(multi_objective_aggregation="sum_then_normalize")
    with pytest.raises(ValueError, match="reads the answer"):
        install_split_advantage(trainer, ["reasoning_accuracy", "accuracy"], [1.0, 0.0])
