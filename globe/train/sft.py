"""Supervised warm start: image -> the reference reasoning + answer, with TRL's SFTTrainer.

GRPO learns only from differences in reward between completions of the same prompt; a random
policy never writes a parsable answer, so every reward is 0 and there is nothing to learn from
(docs/architecture.md, "The tiny world"). A short SFT on the reference reasonings teaches the format and the cues
first. The data are prompt/completion pairs, so the loss covers only the completion (TRL's
`completion_only_loss`), and the prompt is the one evaluation and serving use.

`train_supervised` is shared with the reward model, which is the same recipe on different rows
(and usually with LoRA).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from globe.config import Params


def train_supervised(
    stage: str,
    params: Params,
    data: str | Path,
    out: str | Path,
    build_dataset: Callable[[Path], Any],
    model: str | None = None,
    resume: bool = False,
    results: str | Path | None = None,
) -> dict[str, Any]:
    """Run SFTTrainer for `stage` ("sft" or "reward_model"); returns the metrics.json summary.

    `results`: also write the headline figures and the loss curve there (`run.write_results`)."""
    from trl import SFTTrainer

    from globe.train.plan import build_config, check, make_plan
    from globe.train.run import load_model, resume_checkpoint, runtime, save_clean, weights_source, world_size
    from globe.train.run import write_metrics, write_results

    out = Path(out)
    plan = make_plan(stage, params, out, model=model, world_size=world_size())
    check(plan)  # everything, the launch's world size included, before anything is loaded
    with runtime(plan):
        config = build_config(plan)  # before the model, so that ZeRO-3 can partition it while loading
        last = resume_checkpoint(out, resume)
        dataset = build_dataset(Path(data))
        cases = follows_cases(plan, data, params.base.seed)  # before the weights: a gate with no cases is an error
        policy, processor = load_model(
            weights_source(plan, last), bf16=bool(plan.args.get("bf16")), freeze_vision=plan.freeze_vision
        )
        trainer = SFTTrainer(
            model=policy,
            args=config,
            train_dataset=dataset,
            processing_class=processor,
            peft_config=lora_config(plan.peft),
        )
        if "answer_only" in dataset.column_names:  # counterfactual traces (globe.train.counterfactual)
            trainer.data_collator = counterfactual_collator(trainer.data_collator, processor, dataset, params.base.seed,
                                                            plan.counterfactual_scope)
        gate = None
        if cases is not None:
            from globe.train.follows import FollowsGate

            gate = FollowsGate(processor, cases, log=trainer.log, **plan.follows_gate)
            trainer.add_callback(gate)
        output = trainer.train(resume_from_checkpoint=last)
        save_clean(trainer, processor, out)
    extra = {"examples": len(dataset), "resumed_from": last, **counterfactual_summary(plan), **(gate.summary() if gate else {})}
    summary = write_metrics(out, plan, trainer, output, extra=extra)
    if results is not None and trainer.is_world_process_zero():
        write_results(results, summary, trainer.state.log_history, curves=("loss", "mean_token_accuracy"))
    return summary


def counterfactual_summary(plan: Any) -> dict[str, Any]:
    """What metrics.json records of the counterfactual traces a run trained with (nothing without
    them): they are not TrainingArguments, so this is the only place a reused run can be checked."""
    if plan.counterfactual_traces <= 0:
        return {}
    return {"counterfactual": {"traces": plan.counterfactual_traces, "scope": plan.counterfactual_scope}}


def follows_cases(plan: Any, data: str | Path, seed: int) -> list | None:
    """The follows gate's probe cases (globe.train.follows.dev_cases), or None without a gate."""
    if not plan.follows_gate:
        return None
    from globe.train.follows import dev_cases

    return dev_cases(data, seed=seed, scope=plan.counterfactual_scope)


def counterfactual_collator(base: Any, processor: Any, dataset: Any, seed: int, scope: str = "country"):
    """TRL's collator wrapped to rewrite the flagged rows, drawing cities from the real rows' reasonings."""
    from globe.answer import parse
    from globe.train.counterfactual import AnswerOnlyCollator, Rewriter, answered_places

    thinks = [parse(c[-1]["content"]).think or "" for c, flagged in zip(dataset["completion"], dataset["answer_only"])
              if not flagged]
    return AnswerOnlyCollator(base, processor.tokenizer, Rewriter(answered_places(thinks), seed, scope))


def lora_config(peft: dict[str, Any] | None):
    """peft.LoraConfig from the plan's LoRA settings (None: full fine-tune)."""
    if not peft:
        return None
    from peft import LoraConfig

    return LoraConfig(**peft)


def train_sft(
    params: Params, data: str | Path, out: str | Path, model: str | None = None, resume: bool = False,
    results: str | Path | None = None,
) -> dict[str, Any]:
    """`globe train sft`: warm-start the policy on the dataset's reference reasonings."""
    from functools import partial

    from globe.train.datasets import sft_dataset

    build = partial(sft_dataset, counterfactual=params.sft.counterfactual_traces, seed=params.base.seed,
                    scope=params.sft.counterfactual_scope)
    return train_supervised("sft", params, data, out, build, model=model, resume=resume, results=results)
