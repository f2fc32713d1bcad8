"""Localizability reward: a judge's P(yes) that the reasoning can place the photo.

GLOBE scores each completion with a reward model (a LoRA-tuned VLM) asked whether the image is
localizable given the completion's reasoning; the reward is P(yes)/(P(yes)+P(no)) from the
judge's first-token probabilities. Here the judge is any `globe.engines` Engine, injected, so the
same code runs against an in-process model, a vLLM server or a test double.

The released code scored a failed judge call as 0, which silently teaches the policy that
whatever it wrote was unlocalizable whenever the judge server hiccups. Here a failure scores None
(TRL leaves it out of the sum and of the logged mean), is counted (`calls`, `failures`,
`failure_share`, and `judge_failure_share` in TRL's logs), and once at least `min_calls` judgments
have been requested, a failure share above `max_failure_share` raises `RewardFailure`: a run whose
judge is down should stop, loudly, rather than train on half a reward.

The judge is the one reward that calls a model, so it is kept off the step's critical path: the
completions of a group share their image, and a policy that has settled writes the same reasoning
for it again and again, so each distinct (image, reasoning) pair is judged once, in one batch,
and remembered (the judge is frozen: the same pair always gets the same score).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from globe.engines.base import Engine, JudgeResult, Request
from globe.prompts import localizability_prompt
from globe.rewards._inputs import answers, completion_text


class RewardFailure(RuntimeError):
    """A reward that cannot be trusted any more (e.g. too many failed judge calls)."""


def _image(value: Any) -> Any:
    """A PIL image from what the dataset column holds: a PIL image, a path, a list of them, or None."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if isinstance(value, dict):  # datasets' undecoded Image feature: {"bytes": ..., "path": ...}
        value = value.get("path") or value.get("bytes")
    if (isinstance(value, (str, Path)) and str(value) and "://" not in str(value)) or isinstance(value, bytes):
        from globe.images import open_image  # the one image opener: the judge sees what the policy saw

        return open_image(value if isinstance(value, bytes) else Path(value), where="judge image")
    return value


class LocalizabilityReward:
    """Callable TRL reward (`__name__ == "localizability"`) with failure counters."""

    __name__ = "localizability"

    CACHE_SIZE = 8192

    def __init__(self, judge: Engine, max_failure_share: float = 0.2, min_calls: int = 32) -> None:
        if not 0.0 <= max_failure_share <= 1.0:
            raise ValueError(f"max_failure_share must lie in [0, 1], got {max_failure_share}")
        self.judge = judge
        self.max_failure_share = max_failure_share
        self.min_calls = max(1, int(min_calls))
        self.calls = 0
        self.failures = 0
        self.judged = 0  # distinct (image, reasoning) pairs sent to the judge
        self.last_error: str | None = None
        self._scores: OrderedDict[tuple[str, str], float] = OrderedDict()

    @property
    def failure_share(self) -> float:
        return self.failures / self.calls if self.calls else 0.0

    def metrics(self) -> dict[str, float]:
        """Counters to log next to the reward: calls, failures and their share."""
        return {"judge_calls": float(self.calls), "judge_failures": float(self.failures),
                "judge_failure_share": self.failure_share, "judge_forward_requests": float(self.judged)}

    def _requests(self, completions: Sequence[Any], images: Sequence[Any]) -> list[Request | None]:
        out: list[Request | None] = []
        for i, (completion, a, image) in enumerate(zip(completions, answers(completions), images)):
            reasoning = a.think if a.think else completion_text(completion)
            try:
                out.append(Request(image=_image(image), prompt=localizability_prompt(reasoning), id=str(i)))
            except Exception as exc:  # noqa: BLE001 - an unreadable image is one failed judgment
                self.last_error = f"image {i}: {exc}"
                out.append(None)
        return out

    def _remember(self, key: tuple[str, str], score: float) -> None:
        self._scores[key] = score
        if len(self._scores) > self.CACHE_SIZE:
            self._scores.popitem(last=False)

    def _judge(self, requests: list[Request]) -> list[JudgeResult]:
        try:
            results = list(self.judge.judge(requests))
        except Exception as exc:  # noqa: BLE001 - a judge that throws is counted like one that errors
            return [JudgeResult(error=f"{type(exc).__name__}: {exc}") for _ in requests]
        if len(results) != len(requests):
            error = f"judge returned {len(results)} results for {len(requests)} requests"
            return [JudgeResult(error=error) for _ in requests]
        return results

    def __call__(self, completions: list[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        images = kwargs.get("image", kwargs.get("images"))
        images = list(images) if isinstance(images, (list, tuple)) and len(images) == n else [images] * n
        requests = self._requests(completions, images)
        keys = [None if r is None else _key(r) for r in requests]
        todo: dict[tuple[str, str], Request] = {}
        for key, request in zip(keys, requests):
            if key is not None and key not in self._scores and key not in todo:
                todo[key] = request
        fresh: dict[tuple[str, str], JudgeResult] = {}
        if todo:
            self.judged += len(todo)
            fresh = dict(zip(todo, self._judge(list(todo.values()))))
        scores: list[float | None] = []
        for key, request in zip(keys, requests):
            self.calls += 1
            if key is not None and key in self._scores:
                self._scores.move_to_end(key)
                scores.append(self._scores[key])
                continue
            result = fresh.get(key) if key is not None else None
            if result is not None and result.ok and 0.0 <= float(result.p_yes) <= 1.0:
                self._remember(key, float(result.p_yes))
                scores.append(float(result.p_yes))
            else:
                self.failures += 1
                self.last_error = (result.error if result else None) or self.last_error or "no request"
                if result is not None and result.ok:
                    self.last_error = f"p_yes out of range: {result.p_yes!r}"
                scores.append(None)
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("localizability/judge_failure_share", self.failure_share)
        if self.calls >= self.min_calls and self.failure_share > self.max_failure_share:
            raise RewardFailure(
                f"localizability judge {getattr(self.judge, 'name', type(self.judge).__name__)!r} failed "
                f"{self.failures} of {self.calls} calls ({self.failure_share:.1%} > max_failure_share "
                f"{self.max_failure_share:.1%}); last error: {self.last_error}"
            )
        return scores


def _key(request: Request) -> tuple[str, str]:
    """What a judgment depends on: the image's pixels and the prompt (which holds the reasoning)."""
    image = request.image
    digest = hashlib.blake2b(digest_size=16)
    if image is not None:
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    return digest.hexdigest(), request.prompt


def make_localizability_reward(
    judge: Engine, max_failure_share: float = 0.2, min_calls: int = 32
) -> LocalizabilityReward:
    """The localizability reward over `judge`; abort past `max_failure_share` after `min_calls` calls.

    >>> from globe.engines.base import JudgeResult
    >>> class Judge:
    ...     name = "half-sure"
    ...     def judge(self, requests, choices=("yes", "no")):
    ...         return [JudgeResult(p_yes=0.75) for _ in requests]
    >>> reward = make_localizability_reward(Judge())
    >>> reward(["<think>Big Ben.</think><answer>country: UK\\ncity: London</answer>"], image=[None])
    [0.75]
    >>> reward.calls, reward.failures
    (1, 0)
    """
    return LocalizabilityReward(judge, max_failure_share=max_failure_share, min_calls=min_calls)
