"""The Engine protocol: one way to get text from (image, prompt) for every stage.

Teachers in distillation, the policy in evaluation, the localizability judge in rewards and the
predictor in serving all call an Engine. `LocalEngine` runs a transformers model in-process;
`OpenAIEngine` calls any OpenAI-compatible chat endpoint. Engines never raise in the middle of a
batch: a failed request comes back as a `Result` with `error` set, so callers can count failures
instead of losing a whole batch to one bad sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # PIL is cheap, but keep the protocol importable without it
    from PIL.Image import Image


@dataclass
class Request:
    """One generation request: an image (or None for text-only) and a user prompt."""

    image: "Image | None"
    prompt: str
    system: str | None = None
    id: str = ""


MAX_NEW_TOKENS = 120
"""The one default answer length: `Sampling`, `eval.max_new_tokens`, `serve.max_new_tokens` and
`globe model generate` all start from it. A GLOBE answer (reasoning plus the answer block) fits:
GeoScenes reference completions are 76-80 tokens with the tiny tokenizer."""


@dataclass
class Sampling:
    """Decoding settings. temperature 0 means greedy.

    `n` > 1 asks for n completions of every request, returned request-major (all n of request 0,
    then all n of request 1, ...) by engines whose `samples_per_request` is True: LocalEngine draws
    them in the same batched `generate` (`num_return_sequences`), OpenAIEngine sends n concurrent
    requests, seeded `seed + j` for copy j. `generate_samples` serves any engine and groups them.
    """

    max_new_tokens: int = MAX_NEW_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    n: int = 1


@dataclass
class Result:
    """What came back for one request. Exactly one of `text` / `error` is set."""

    text: str | None = None
    error: str | None = None
    latency_s: float = 0.0
    attempts: int = 1
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


@dataclass
class JudgeResult:
    """First-token probabilities of a yes/no judgment; `p_yes` = P(yes)/(P(yes)+P(no))."""

    p_yes: float | None = None
    error: str | None = None
    # How p_yes was obtained: "logits" / "logprobs" (a real probability) or "text" (the endpoint
    # returned no logprobs, so a parsed yes/no answer scored 1.0/0.0).
    source: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.p_yes is not None


@runtime_checkable
class Engine(Protocol):
    """What every engine does. One optional method is not part of the protocol check:
    `input_size(width, height) -> (width, height) | None`, the size the engine resizes an image
    to before its model sees it (`LocalEngine` has it); a caller that decodes images itself may
    resize to it in advance, off the critical path (the evaluation harness's loader does)."""

    name: str

    def generate(self, requests: Sequence[Request], sampling: Sampling) -> list[Result]:
        """Generate one completion per request, in order. Never raises for a single bad request."""
        ...

    def judge(self, requests: Sequence[Request], choices: tuple[str, str] = ("yes", "no")) -> list[JudgeResult]:
        """Score a yes/no question from the first generated token's probabilities."""
        ...


def generate_samples(engine: Engine, requests: Sequence[Request], sampling: Sampling) -> list[list[Result]]:
    """`sampling.n` completions of every request, grouped per request, in one `generate` call.

    Engines that take `Sampling.n` themselves (`samples_per_request = True`) get it as is; any
    other engine gets every request repeated n times with n = 1 (distinct draws only where that
    engine samples each request on its own). A wrong number of results is an error, not a guess.
    """
    from dataclasses import replace

    n = max(1, sampling.n)
    if getattr(engine, "samples_per_request", False):
        flat = engine.generate(requests, sampling)
    else:
        flat = engine.generate([r for r in requests for _ in range(n)], replace(sampling, n=1))
    if len(flat) != len(requests) * n:
        raise RuntimeError(f"engine {getattr(engine, 'name', engine)!r} returned {len(flat)} results for "
                           f"{len(requests)} requests x {n} samples; an Engine must answer every one, in order")
    return [list(flat[i * n:(i + 1) * n]) for i in range(len(requests))]
