"""Split advantage: the reasoning's tokens are credited for the rewards that read the reasoning, the
answer's tokens for those that read the answer (`grpo.split_advantage`; CORA's advantage split,
DESIGN.md §9, with rule-based rewards).

GRPO gives every token of a completion one advantage, the completion's weighted reward minus its
group's mean. So a reasoning that argues for the country's popular city, followed by an answer
that names the right one, has its *reasoning* pushed up by the answer's accuracy reward: the
outcome pays the words that argued against it. That is how outcome-only GRPO decouples the two
(docs/train.md, "Reasoning that supports its answer"). With the split, the tokens up to the end of
`</think>` get the advantage of the rewards that judge the reasoning (`reasoning_accuracy`,
`grounding`, `localizability`), the tokens after it the advantage of those that judge the answer
(`accuracy`, `geodesic`, `supported_accuracy`). `format` and `consistency` judge the pair and count
on both sides. Consistency on the answer's side alone was measured first (docs/train.md, "Crediting
each part for what it controls"): the answer then learned the right city ahead of its reasoning and
"right answer, reasoning for another city" grew; paid on both sides, the reasoning is also pushed
towards the answer it leads to, while `reasoning_accuracy` keeps it tied to the image.

Each side is centred on its group's mean and scaled as `scale_rewards` says, as TRL does for the
whole. A completion without `</think>` keeps TRL's one advantage on every token. TRL 1.x takes a
(batch, tokens) advantage from a subclass (`GRPOTrainer._compute_loss`); this installs one on an
existing trainer, after `skip_flat_groups` so that a masked group stays masked on both sides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

if TYPE_CHECKING:
    import torch

REASONING_REWARDS = frozenset({"coherence", "reasoning_accuracy", "grounding", "localizability", "format", "consistency"})
ANSWER_REWARDS = frozenset({"accuracy", "geodesic", "supported_accuracy", "format", "consistency"})
SIDES = {"reasoning": REASONING_REWARDS, "answer": ANSWER_REWARDS}
THINK_END = "</think>"


def unpaid_sides(weights: Mapping[str, float]) -> list[str]:
    """One problem per side (reasoning, answer) that no reward with a non-zero weight reads: its
    tokens would get no advantage. The plan refuses such a run (`--dry-run` included) and
    `install_split_advantage` will not install on one.

    >>> unpaid_sides({"accuracy": 1.0, "reasoning_accuracy": 0.0})
    ['grpo.split_advantage: no reward with a non-zero weight reads the reasoning (coherence, consistency, format, grounding, localizability, reasoning_accuracy); its tokens would get no advantage']
    """
    return [
        f"grpo.split_advantage: no reward with a non-zero weight reads the {side} ({', '.join(sorted(names))}); "
        "its tokens would get no advantage"
        for side, names in SIDES.items() if not any(weights.get(n) for n in names)
    ]


def reasoning_end(text: str) -> tuple[int, int] | None:
    """(character offset just past the reasoning's `</think>`, how many `</think>` lie up to it), or
    None when there is none. The reasoning's tag is the last `</think>` before the last `<answer>`
    (where the strict reader, `globe.answer.strict`, finds it in GLOBE's format), or the last one
    when there is no `<answer>`. A stray `</think>` inside the reasoning, which the general reader
    (`globe.answer.tags.regions`) takes as the reasoning's end, leaves the text up to the last one
    on the reasoning's side.

    >>> reasoning_end("<think>a</think>\\n<answer>country: France</answer>")
    (16, 1)
    >>> reasoning_end("<answer>country: France</answer>") is None
    True
    """
    answer = text.rfind("<answer>")
    end = text.rfind(THINK_END, 0, answer if answer >= 0 else len(text))
    if end < 0:
        return None
    stop = end + len(THINK_END)
    return stop, text.count(THINK_END, 0, stop)


def reasoning_tokens(ids: Sequence[int], decode: Callable[[Sequence[int]], str]) -> int | None:
    """How many of `ids` (one completion's tokens) belong to the reasoning, through its `</think>`;
    None when it has none. A binary search over decoded prefixes (about 8 decodes for 256 tokens),
    so it holds for any tokenizer, whatever pieces `</think>` is cut into."""
    found = reasoning_end(decode(ids))
    if found is None:
        return None
    tags = found[1]
    low, high = 1, len(ids)  # the smallest prefix that holds `tags` closing tags
    while low < high:
        mid = (low + high) // 2
        if decode(ids[:mid]).count(THINK_END) >= tags:
            high = mid
        else:
            low = mid + 1
    return low


def side_advantages(
    rewards: torch.Tensor, weights: torch.Tensor, columns: torch.Tensor, group: int, scale: str
) -> torch.Tensor:
    """Advantages from the reward columns `columns` (a bool mask) alone: weighted sum, minus the
    group's mean, divided by the group's (or the batch's) std unless `scale` is "none". A row whose
    rewards on this side are all None gets 0, as TRL gives an unscorable completion."""
    import torch
    from trl.trainer.utils import nanstd

    chosen = rewards[:, columns]
    unscorable = torch.isnan(chosen).all(dim=1) if chosen.shape[1] else torch.ones(len(rewards), dtype=torch.bool)
    total = (chosen * weights[columns]).nansum(dim=1)
    total[unscorable] = torch.nan
    grouped = total.view(-1, group)
    centred = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)).reshape(-1)
    if scale == "group":
        centred = centred / (nanstd(grouped, dim=1).repeat_interleave(group) + 1e-4)
    elif scale == "batch":
        centred = centred / (nanstd(total) + 1e-4)
    elif scale != "none":
        raise ValueError(f"scale_rewards: {scale!r} must be 'group', 'batch' or 'none'")
    return torch.nan_to_num(centred, nan=0.0)


def token_advantages(
    whole: torch.Tensor, reasoning: torch.Tensor, answer: torch.Tensor, lengths: Sequence[int | None], tokens: int
) -> torch.Tensor:
    """(batch, tokens): `reasoning` on each completion's first `lengths[i]` tokens, `answer` after;
    `whole` (TRL's one advantage) on every token of a completion whose length is None."""
    out = whole[:, None].expand(-1, tokens).clone()
    for i, n in enumerate(lengths):
        if n is not None:
            out[i, :n] = reasoning[i]
            out[i, n:] = answer[i]
    return out


def install_split_advantage(trainer: Any, names: Sequence[str], weights: Sequence[float]) -> None:
    """Give `trainer` (a TRL GRPOTrainer) per-token advantages split at the reasoning's end.

    Logs `split/unsplit_frac` (completions without `</think>`, trained as a whole) and
    `split/reasoning_token_frac` (the share of completion tokens credited to the reasoning)."""
    import torch

    if getattr(trainer, "multi_objective_aggregation", "sum_then_normalize") != "sum_then_normalize":
        raise ValueError("grpo.split_advantage needs TRL's multi_objective_aggregation 'sum_then_normalize'")
    names = list(names)
    unpaid = unpaid_sides(dict(zip(names, weights)))
    if unpaid:
        raise ValueError("; ".join(unpaid))
    reasoning_cols = torch.tensor([n in REASONING_REWARDS for n in names])
    answer_cols = torch.tensor([n in ANSWER_REWARDS for n in names])
    weight = torch.tensor(list(weights), dtype=torch.float32)
    calculate, generate = trainer._calculate_rewards, trainer._generate_and_score_completions
    seen: dict[str, torch.Tensor] = {}
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)

    def remembered(*args: Any, **kwargs: Any) -> torch.Tensor:
        seen["rewards"] = rewards = calculate(*args, **kwargs)
        return rewards

    def split(*args: Any, **kwargs: Any) -> dict[str, Any]:
        output = generate(*args, **kwargs)
        whole = output["advantages"]
        mode = "train" if trainer.model.training else "eval"
        group = trainer.num_generations if mode == "train" else trainer.num_generations_eval
        rewards = seen.pop("rewards").float().cpu()
        if group < 2 or rewards.shape[0] % group:
            return output
        scale = str(trainer.scale_rewards)
        local = slice(trainer.accelerator.process_index * len(whole), (trainer.accelerator.process_index + 1) * len(whole))
        reasoning = side_advantages(rewards, weight, reasoning_cols, group, scale)[local]
        answer = side_advantages(rewards, weight, answer_cols, group, scale)[local]
        ids, mask = output["completion_ids"], output["completion_mask"]
        lengths = [
            reasoning_tokens(row[: int(m.sum())].tolist(), lambda t: tokenizer.decode(t, skip_special_tokens=False))
            for row, m in zip(ids, mask)
        ]
        device = whole.device
        output["advantages"] = token_advantages(
            whole.cpu(), reasoning, answer, lengths, ids.shape[1]
        ).to(device=device, dtype=whole.dtype)
        split_rows = [n for n in lengths if n is not None]
        trainer._metrics[mode]["split/unsplit_frac"].append(1.0 - len(split_rows) / max(len(lengths), 1))
        trainer._metrics[mode]["split/reasoning_token_frac"].append(
            float(sum(split_rows)) / max(float(mask.sum()), 1.0)
        )
        return output

    trainer._calculate_rewards = remembered
    trainer._generate_and_score_completions = split
