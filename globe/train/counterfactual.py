"""Counterfactual SFT traces: teach the answer to follow the reasoning, not to read the image again.

Every reference trace SFT learns from is consistent (its reasoning and its answer name the same
city, and both are right), so SFT never has to *use* the reasoning: the answer can be read off
the image a second time. The tiny policy does exactly that, and GRPO, which pays only the
answer, widens the gap (docs/train.md, "Recognition through reasoning").

A counterfactual trace takes a reference trace whose reasoning concludes a city, rewrites that
city everywhere in the reasoning as another city of the same country (one the dataset's
reasonings conclude elsewhere), and writes the answer that this reasoning supports: the other
city, with the gazetteer's coordinates. The image still shows the first city, so the only way to
predict the answer is to read the reasoning. The loss covers the answer alone
(`AnswerOnlyCollator`): the policy must never learn to *write* a reasoning that contradicts the
image, only to answer what its reasoning concludes. Same country on purpose: what GRPO leaves
inconsistent is almost only "the reasoning reads one city, the answer names another of the same
country".

The other city is drawn again each time a row is batched (`Rewriter`): with one fixed rewrite per
image the tiny policy can memorise "this image, rewritten, answers Y" instead of learning to copy.
Measured with `benchmarks/answer_follows_reasoning.py` (answers that follow a forced reasoning):
one rewrite per image at share 0.5 left two SFT seeds at 0.27 / 0.44; fresh rewrites at 0.5 reached
0.57-0.94 on four.

The share of extra rows is `sft.counterfactual_traces` (0 = the paper's SFT, and the recipe's:
docs/train.md, "Teaching the answer to read the reasoning", says what it did to GRPO).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

ANSWER_TAG = "<answer>"

Scope = Literal["country", "world"]  # where the counterfactual city is drawn: the same country, or another


@dataclass(frozen=True, slots=True)
class Place:
    """A city the dataset answers, as the reasoning reader resolves it."""

    city: str
    country: str
    country_code: str


def _rewrite(think: str, old: str, new: str) -> str | None:
    """`think` with every whole-word `old` replaced by `new`; None when `old` does not occur."""
    pattern = re.compile(rf"(?<!\w){re.escape(old)}(?!\w)")
    text, n = pattern.subn(new, think)
    return text if n else None


def counterfactual_trace(think: str, other: Place, scope: Scope = "country") -> str | None:
    """The GLOBE-format trace whose reasoning argues for `other` instead of the city `think`
    concludes, and whose answer follows it; None when the rewrite would not read as intended
    (no located city concluded, `other` in another country for scope "country" or in the same one
    for "world", the name not written out, or the reader disagrees).

    >>> print(counterfactual_trace("A tower; that silhouette belongs to Berlin. Grassy ground.",
    ...                            Place("Hamburg", "Germany", "DE")))
    <think>A tower; that silhouette belongs to Hamburg. Grassy ground.</think>
    <answer>country: Germany
    city: Hamburg
    lat: 53.5507
    lon: 9.9930</answer>
    >>> print(counterfactual_trace("The colours of Germany. That silhouette belongs to Berlin.",
    ...                            Place("Lyon", "France", "FR"), scope="world"))
    <think>The colours of Germany. That silhouette belongs to Lyon.</think>
    <answer>country: France
    city: Lyon
    lat: 45.7491
    lon: 4.8479</answer>
    """
    from globe.answer import format_answer
    from globe.answer.conclusion import reasoning_conclusion
    from globe.scorer import city_match

    before = reasoning_conclusion(think)
    if before is None or before.level != "city" or (before.country_code == other.country_code) != (scope == "country"):
        return None
    if city_match(other.city, before.city, before.country, True, True):
        return None
    text = _rewrite(think, before.city, other.city)
    after = reasoning_conclusion(text) if text else None
    if after is None or after.level != "city" or after.lat is None or after.country_code != other.country_code \
            or not city_match(other.city, after.city, after.country, True, True):
        return None
    return format_answer(text, other.country, other.city, after.lat, after.lon)


def answered_places(thinks: Sequence[str]) -> dict[str, list[Place]]:
    """Country code -> the distinct cities these reasonings conclude (the pool a counterfactual
    city is drawn from, so it is always a place the dataset itself argues for)."""
    from globe.answer.conclusion import reasoning_conclusion

    seen: dict[str, dict[str, Place]] = {}
    for think in thinks:
        c = reasoning_conclusion(think)
        if c is not None and c.level == "city" and c.country_code and c.city and c.lat is not None:
            seen.setdefault(c.country_code, {}).setdefault(c.city, Place(c.city, c.country or "", c.country_code))
    return {code: sorted(cities.values(), key=lambda p: p.city) for code, cities in sorted(seen.items())}


class Rewriter:
    """Draws, for a reasoning, another city from `pool` (of its country, or of another for scope
    "world") and writes its counterfactual trace; seeded, so a run's sequence of rewrites is
    reproducible."""

    def __init__(self, pool: dict[str, list[Place]], seed: int, scope: Scope = "country") -> None:
        self.pool = pool
        self.rng = random.Random(seed)
        self.scope = scope

    def others(self, think: str) -> list[Place]:
        from globe.answer.conclusion import reasoning_conclusion

        c = reasoning_conclusion(think)
        if c is None or c.level != "city":
            return []
        if self.scope == "world":
            return [p for code, places in self.pool.items() if code != c.country_code for p in places]
        return [p for p in self.pool.get(c.country_code or "", []) if p.city != c.city]

    def __call__(self, think: str) -> str | None:
        """A counterfactual trace for `think` (cities tried in random order), or None if none reads right."""
        others = self.others(think)
        self.rng.shuffle(others)
        return next((t for p in others if (t := counterfactual_trace(think, p, self.scope)) is not None), None)


def counterfactual_rows(thinks: Sequence[str], share: float, seed: int, scope: Scope = "country") -> list[int]:
    """Indices of about `share` x len(thinks) reasonings, each at most once, that can be rewritten
    (they conclude a city and another city of the scope is in the pool); may be fewer."""
    if share <= 0 or not thinks:
        return []
    rewrite = Rewriter(answered_places(thinks), seed, scope)
    order = list(range(len(thinks)))
    rewrite.rng.shuffle(order)
    want, out = round(share * len(thinks)), []
    for i in order:
        if len(out) >= want:
            break
        if rewrite(thinks[i]) is not None:
            out.append(i)
    return out


def _last(row: list[int], marker: list[int]) -> int | None:
    """Index of the last occurrence of `marker` in `row`."""
    n = len(marker)
    for start in range(len(row) - n, -1, -1):
        if row[start:start + n] == marker:
            return start
    return None


class AnswerOnlyCollator:
    """Wraps TRL's vision collator for SFT with counterfactual traces.

    Rows flagged `answer_only` carry a reference trace: each time one is batched it is rewritten
    with a freshly drawn city (`rewrite`), and every label before its last `<answer>` tag (the
    completion's: the prompt names the tag too, earlier) is masked (-100), so the reasoning is
    context, never a target. The flag column is popped before TRL's collator sees the rows. A
    flagged row that cannot be rewritten is an error, never a silent full-sequence loss."""

    def __init__(self, base: Any, tokenizer: Any, rewrite: Rewriter) -> None:
        self.base = base
        self.rewrite = rewrite
        self.marker = tokenizer.encode(ANSWER_TAG, add_special_tokens=False)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        from globe.answer import parse

        if any("answer_only" not in example for example in examples):  # dropped by remove_unused_columns
            raise ValueError("SFT rows reached the counterfactual collator without their answer_only flag: "
                             "the trainer must keep unused columns (remove_unused_columns=False, as the plan sets)")
        flags = [bool(example.pop("answer_only")) for example in examples]
        for example, flagged in zip(examples, flags):
            if flagged:
                think = parse(example["completion"][-1]["content"]).think or ""
                trace = self.rewrite(think)
                if trace is None:
                    raise ValueError(f"a counterfactual SFT row cannot be rewritten (its reasoning: {think[:120]!r}): "
                                     "cannot restrict its loss to an answer that follows it")
                example["completion"] = [{"role": "assistant", "content": trace}]
        batch = self.base(examples)
        for i, flagged in enumerate(flags):
            if flagged:  # the trace was written by format_answer, so only truncation can lose its tag
                start = _last(batch["input_ids"][i].tolist(), self.marker)
                if start is None or batch["labels"][i, start] == -100:
                    raise ValueError(f"a counterfactual SFT row lost its {ANSWER_TAG} tag to truncation "
                                     "(sft.max_length): its answer cannot be trained; raise sft.max_length")
                batch["labels"][i, :start] = -100
        return batch
