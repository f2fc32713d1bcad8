"""The localizability reward model: a LoRA SFT of a VLM that answers "yes"/"no" to "can this photo
be located, given this reasoning?" (`globe.prompts.localizability_prompt`).

Its score is P(yes)/(P(yes)+P(no)) of the first generated token, read by `LocalEngine.judge`
(or any Engine serving the checkpoint). Two choices keep training and scoring identical:

- the completions are the judge's own spelling of the answers: the first spelling of "yes"/"no"
  whose first token is one `LocalEngine.judge` reads (`choice_first_tokens`), e.g. " yes" for
  the tiny byte-level tokenizer, "yes" for Qwen's;
- the LoRA adapter is merged into the base weights at the end: OUT holds a plain checkpoint that
  `LocalEngine(OUT).judge(...)`, vLLM or KServe load without peft (the adapter alone is kept in
  OUT/adapter for inspection).

LoRA is the paper's choice for the 7B judge (the 8-GPU preset). The tiny-cpu preset fine-tunes the
whole tiny model instead: a LoRA cannot touch embeddings or norms, and the tiny model's tied
embedding rows for "yes"/"no" are too small for any adapter to raise those logits — its loss
stalls near ln(vocab) on the answer token (peft's `trainable_token_indices` would fix that, but
TRL's fused LM-head loss reads `lm_head.weight` directly and bypasses it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from globe.config import Params


def judge_spellings(model_path: str, choices: tuple[str, str] = ("yes", "no")) -> tuple[str, str]:
    """Per choice, the first of "yes", " yes", "Yes", " Yes" whose first token the judge scores."""
    from transformers import AutoTokenizer

    from globe.engines.local import choice_first_tokens

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    spellings = []
    for word in choices:
        wanted = choice_first_tokens(tokenizer, word)
        for spelling in (word, " " + word, word.capitalize(), " " + word.capitalize()):
            first = tokenizer.encode(spelling, add_special_tokens=False)[:1]
            if first and first[0] in wanted:
                break
        else:
            spelling = word
        spellings.append(spelling)
    return spellings[0], spellings[1]


def train_reward_model(
    params: Params, data: str | Path, out: str | Path, model: str | None = None, resume: bool = False,
    results: str | Path | None = None,
) -> dict[str, Any]:
    """`globe train reward-model`; returns the metrics.json summary."""
    from globe.train.datasets import judge_records, reward_model_dataset
    from globe.train.run import check_model_path
    from globe.train.sft import train_supervised

    base = model or params.reward_model.model

    def build(data_dir: Path):
        judge_records(data_dir)  # a dataset without both labels fails before any model file is read
        check_model_path(base)
        return reward_model_dataset(data_dir, seed=params.base.seed, answers=judge_spellings(base))

    return train_supervised("reward_model", params, data, out, build, model=model, resume=resume, results=results)
