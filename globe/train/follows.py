"""Does the answer read the reasoning? The probe, and the SFT gate built on it.

Consistency (the evaluation metric) says whether a model's answer names the place its own
reasoning concludes; it cannot say *why*: an answer read off the image a second time agrees with a
reasoning that read the same image. The probe separates the two. For an image and a reasoning
about it, the reasoning is rewritten to argue for another city of the same country
(`counterfactual_trace`, the rewrite SFT's counterfactual traces use), forced after the prompt up
to `<answer>`, and the answer decoded greedily. An answer that follows the forced reasoning reads
it; one that names the reasoning's own city read the image instead.

Why a gate: counterfactual traces teach the copy at a speed that differs by seed (answers that
follow after 1,800 SFT steps at share 0.5: 0.31 to 0.97 over four seeds), and GRPO from a start
where the copy formed only partly lost both accuracy and consistency, while the start where it
formed whole gave the best model measured (docs/train.md, "Teaching the answer"). So
`sft.follows_target` trains until the probe, on the data's `test` split (images SFT never trained
on, with their reference reasonings), shows the copy formed, instead of for a fixed number of
steps; `sft.max_steps` is then the ceiling.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from transformers import TrainerCallback

from globe.train.counterfactual import ANSWER_TAG, Rewriter, Scope, answered_places, counterfactual_trace


@dataclass(frozen=True, slots=True)
class ProbeCase:
    """An image, the reasoning forced on it (arguing for `wanted`), and the city that reasoning
    argued for before the rewrite (`own`)."""

    image: Any  # a PIL image, a local path or an s3:// URI (or what the caller resolves to one)
    forced: str  # the counterfactual trace up to and including <answer>
    wanted: tuple[str, str]  # (city, country) the forced reasoning concludes
    own: tuple[str, str]  # (city, country) the original reasoning concludes


@dataclass(frozen=True, slots=True)
class Follows:
    """Shares of the probed answers: `follows` the forced reasoning, names its `own_city`, or `other`."""

    tried: int
    follows: float
    own_city: float
    other: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def probe_cases(pairs: Sequence[tuple[Any, str]], pool_thinks: Sequence[str], seed: int = 0,
                scope: Scope = "country") -> list[ProbeCase]:
    """One case per (image, reasoning) pair whose reasoning concludes a city that another city of
    its country (of another country for scope "world"; one `pool_thinks` conclude) can replace; the
    others are left out, not guessed."""
    from globe.answer import parse
    from globe.answer.conclusion import reasoning_conclusion

    cities = Rewriter(answered_places(pool_thinks), seed, scope)
    cases: list[ProbeCase] = []
    for image, think in pairs:
        others = cities.others(think)
        trace = counterfactual_trace(think, cities.rng.choice(others), scope) if others else None
        if trace is None:
            continue
        own, wanted = reasoning_conclusion(think), parse(trace)
        cases.append(ProbeCase(image, trace.split(ANSWER_TAG)[0] + ANSWER_TAG,
                               (wanted.city or "", wanted.country or ""), (own.city or "", own.country or "")))
    return cases


def answer_follows(model: Any, processor: Any, cases: Sequence[ProbeCase], max_new_tokens: int = 32) -> Follows:
    """Decode each case's answer greedily after its forced reasoning and count where it went.

    The model is put in eval mode for the probe and given back in the mode it came in (the SFT gate
    probes the policy in the middle of training)."""
    import torch

    from globe.answer import parse
    from globe.images import open_ref
    from globe.scorer import city_match
    from globe.train.datasets import geo_messages

    messages = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in geo_messages()]
    messages[-1]["content"].insert(0, {"type": "image"})
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    counts = {"follows": 0, "own_city": 0, "other": 0}
    training = model.training
    model.eval()
    try:
        for case in cases:
            image = open_ref(case.image) if isinstance(case.image, (str, Path)) else case.image
            inputs = processor(images=[image], text=[prompt + case.forced], return_tensors="pt").to(model.device)
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                     temperature=None, top_p=None, top_k=None)
            tail = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            city = parse(case.forced + tail).city
            if city and city_match(city, case.wanted[0], case.wanted[1], True, True):
                counts["follows"] += 1
            elif city and city_match(city, case.own[0], case.own[1], True, True):
                counts["own_city"] += 1
            else:
                counts["other"] += 1
    finally:
        model.train(training)
    tried = len(cases)
    return Follows(tried, *(counts[k] / tried if tried else float("nan") for k in ("follows", "own_city", "other")))


def dev_cases(data_dir: str | Path, limit: int = 200, seed: int = 0, scope: Scope = "country") -> list[ProbeCase]:
    """The gate's probe cases: the data's `test` split with its reference reasonings (images SFT
    never trained on), cities drawn from what the `train` split concludes (in the scope the
    counterfactual traces are drawn in). A TrainDataError when no test record can be probed (the
    gate cannot decide anything then)."""
    from globe.answer import parse
    from globe.data.records import load_image, records_path
    from globe.train.datasets import TrainDataError, sft_targets

    targets = [(record, parse(target).think or "") for record, target in sft_targets(data_dir, split=None)]
    test = [(record, think) for record, think in targets if record.split == "test"]
    random.Random(seed).shuffle(test)
    cases = probe_cases(test, [think for record, think in targets if record.split == "train"], seed, scope)[:limit]
    cases = [ProbeCase(load_image(data_dir, c.image), c.forced, c.wanted, c.own) for c in cases]  # once, not per probe
    if not cases:
        raise TrainDataError(f"{records_path(data_dir)}: sft.follows_target needs test-split records whose "
                             "reasoning concludes a city another train-split city of its country can replace; "
                             f"{len(test)} test record(s), none usable")
    return cases


class FollowsGate(TrainerCallback):
    """Probes the policy every `every` optimizer steps from `min_steps` on and logs `follows/*`;
    once the answers follow the forced reasoning at least `target` of the time, it decays the
    learning rate linearly to 0 over `decay_steps` and then stops the run (at once when 0).

    Why a decay and not a plain stop: a linear schedule planned for the ceiling is still high when
    the copy forms, and an SFT start stopped there is weaker (seed 42 stopped at 1,800 of 3,000:
    44.2% acc_25km against 57.2% for the same 1,800 steps annealed to 0), which GRPO does not make
    up. It is the stop-whenever schedule of warmup-stable-decay training, with the gate choosing when.

    Every process probes the same cases greedily, so all of them reach the same decision (under
    ZeRO-3, transformers' generate keeps the processes in step). A resume after the target was met
    probes again and decays from there."""

    def __init__(self, processor: Any, cases: Sequence[ProbeCase], target: float, every: int, min_steps: int = 0,
                 decay_steps: int = 0, log: Callable[[dict[str, float]], None] | None = None) -> None:
        self.processor, self.cases = processor, list(cases)
        self.target, self.every, self.min_steps, self.decay_steps = target, every, min_steps, decay_steps
        self.log = log  # the trainer's log, so the figures reach metrics.json, MLflow and the progress bar
        self.history: list[dict[str, float]] = []
        self.met_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, lr_scheduler: Any = None,
                    **kwargs: Any) -> Any:
        step = state.global_step
        if self.met_at is not None:  # decaying: stop when the learning rate reaches 0
            if step >= self.met_at + self.decay_steps:
                control.should_training_stop = True
            return control
        if step < self.min_steps or step % self.every or model is None:
            return control
        result = answer_follows(model, self.processor, self.cases)
        self.history.append({"step": step, **result.as_dict()})
        if self.log is not None:
            self.log({f"follows/{k}": v for k, v in result.as_dict().items()})
        if result.follows >= self.target:
            self.met_at = step
            if not (self.decay_steps and decay_to_zero(lr_scheduler, step, self.decay_steps)):
                self.decay_steps = 0
                control.should_training_stop = True
        return control

    def summary(self) -> dict[str, Any]:
        """What metrics.json records: the target, every probe, and where (whether) the target was met."""
        return {"follows_gate": {"target": self.target, "every": self.every, "min_steps": self.min_steps,
                                 "decay_steps": self.decay_steps, "cases": len(self.cases), "met_at": self.met_at,
                                 "probes": self.history}}

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.met_at is None and state.is_world_process_zero:
            last = f"{self.history[-1]['follows']:.2f} at step {self.history[-1]['step']}" if self.history else "no probe"
            logging.getLogger(__name__).warning(
                "the follows gate was never met: answers did not follow the forced reasoning %.2f of the time "
                "before max_steps (last: %s); the model is max_steps' model", self.target, last)
        return control


def decay_to_zero(scheduler: Any, start: int, steps: int) -> bool:
    """Make a LambdaLR scheduler (every transformers schedule is one) go linearly from its factor
    at `start` to 0 at `start + steps`; False for any other scheduler (the caller stops at once)."""
    from torch.optim.lr_scheduler import LambdaLR

    if not isinstance(scheduler, LambdaLR):
        return False
    scheduler.lr_lambdas = [_LinearTail(f(start), start, steps) for f in scheduler.lr_lambdas]
    return True


@dataclass(frozen=True)  # no slots: LambdaLR's state_dict saves a non-function lambda's __dict__
class _LinearTail:
    """factor(step) = `at_start` at `start`, falling linearly to 0 at `start + steps`."""

    at_start: float
    start: int
    steps: int

    def __call__(self, step: int) -> float:
        return self.at_start * max(0.0, (self.start + self.steps - step) / self.steps)
