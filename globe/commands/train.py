"""`globe train sft | reward-model | grpo`: thin wrappers over globe.train (heavy imports inside)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from globe.commands.common import ParamsOpt, PresetOpt, SetOpt, fail, load, load_resolved, print_json

train_app = typer.Typer(help="Train the policy (SFT, GRPO) and the localizability reward model with TRL.")

ModelOpt = Annotated[str | None, typer.Option("--model", help="model dir or hub id (default: <stage>.model)")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="dataset dir: records.jsonl + images/ (default: base.data_dir)")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="output dir (default: <base.results_dir>/<stage>)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint in --out")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="print the resolved TRL + DeepSpeed config as JSON and validate it; load nothing")
]
ResultsOpt = Annotated[
    Path | None,
    typer.Option("--results", help="also write the headline metrics.json and curves.csv here (e.g. results/sft for dvc)"),
]
RewardModelOpt = Annotated[
    str | None,
    typer.Option("--reward-model", help="localizability judge: a model dir or an engine spec in YAML (default: grpo.reward_model)"),
]


def _run(stage: str, params_path, preset, overrides, model, data, out, resume, dry_run, reward_model=None,
         results=None) -> None:
    import contextlib
    import sys

    from globe.train.datasets import TrainDataError
    from globe.train.plan import TrainConfigError

    resolved = load_resolved(params_path, preset, overrides)
    params = resolved.params
    data = data or Path(params.base.data_dir)
    out = out or Path(params.base.results_dir) / stage
    try:
        if dry_run:
            from globe.train.plan import dry_run as resolve, make_plan

            print_json(resolve(make_plan(stage, params, out, model=model, reward_model=reward_model)))
            return
        # the trainers' progress and log lines go to stderr: stdout carries only the JSON summary
        with contextlib.redirect_stdout(sys.stderr):
            from globe.train.stages import train_stage

            summary = train_stage(stage, params, data, out, model=model, reward_model=reward_model, resume=resume,
                                  results=results)
    except (TrainConfigError, TrainDataError) as exc:
        fail(str(exc))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
        from globe.config import STAGE_SETTINGS, write_resolved

        keys = STAGE_SETTINGS[stage.replace("_", "-")]
        for folder in {out, *([results] if results else [])}:  # the settings this run used, beside its outputs
            write_resolved(resolved, folder, keys)
        print_json(summary)


@train_app.command("sft")
def sft_command(
    model: ModelOpt = None,
    data: DataOpt = None,
    out: OutOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    dry_run: DryRunOpt = False,
    results: ResultsOpt = None,
) -> None:
    """Supervised warm start: image -> reference reasoning + answer (TRL SFTTrainer)."""
    _run("sft", params, preset, set_, model, data, out, resume, dry_run, results=results)


@train_app.command("reward-model")
def reward_model_command(
    model: ModelOpt = None,
    data: DataOpt = None,
    out: OutOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    dry_run: DryRunOpt = False,
    results: ResultsOpt = None,
) -> None:
    """SFT of the localizability judge (yes/no; LoRA in the 8-GPU preset); OUT is a plain checkpoint LocalEngine judges with."""
    _run("reward_model", params, preset, set_, model, data, out, resume, dry_run, results=results)


@train_app.command("grpo")
def grpo_command(
    model: ModelOpt = None,
    data: DataOpt = None,
    out: OutOpt = None,
    reward_model: RewardModelOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
    resume: ResumeOpt = False,
    dry_run: DryRunOpt = False,
    results: ResultsOpt = None,
) -> None:
    """GRPO with GLOBE's rewards (TRL GRPOTrainer); also `torchrun -m globe train grpo` for multi-GPU."""
    _run("grpo", params, preset, set_, model, data, out, resume, dry_run, reward_model=reward_model, results=results)


@train_app.command("ablate")
def ablate_command(
    out: Annotated[Path, typer.Option("--out", help="ablation directory (resumed if it exists)")],
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="number of training seeds (0, 1, ...)")] = 3,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="repeatable; default: every variant of globe.train.ablation.VARIANTS (seven)")] = None,
    model: Annotated[Path | None, typer.Option("--model", help="base model (default: build the tiny world in OUT/world)")] = None,
    sft_data: Annotated[Path | None, typer.Option("--sft-data", help="verified traces for SFT")] = None,
    grpo_data: Annotated[Path | None, typer.Option("--grpo-data", help="labelled images for GRPO (e.g. data/distilled)")] = None,
    judge_data: Annotated[Path | None, typer.Option("--judge-data", help="data of the localizability judge")] = None,
    heldout: Annotated[Path | None, typer.Option("--heldout", help="held-out test set (globe data heldout)")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="trainings run side by side")] = 2,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """The paper's reward ablation in miniature: sft, sft-longer and four GRPO reward sets from one start."""
    import contextlib
    import sys

    from globe.train.ablation import VARIANTS, AblationError, Inputs, build_inputs, run_ablation
    from globe.train.datasets import TrainDataError
    from globe.train.plan import TrainConfigError

    cfg = load(params, preset, set_)
    given = [model, sft_data, grpo_data, judge_data, heldout]

    def say(message: str) -> None:
        print(f"ablate: {message}", file=sys.stderr, flush=True)

    try:
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise AblationError("give all of --model --sft-data --grpo-data --judge-data --heldout, or none "
                                "(then the tiny world is built in OUT/world)")
        with contextlib.redirect_stdout(sys.stderr):
            inputs = Inputs(*given) if model is not None else build_inputs(cfg, out / "world", say)
            rows = run_ablation(cfg, inputs, out, seeds=list(range(seeds)), variants=variant or list(VARIANTS),
                                workers=workers, on_event=say)
    except (AblationError, TrainConfigError, TrainDataError) as exc:
        fail(str(exc))
    print_json({"out": str(out), "rows": len(rows), "table": str(out / "ablation.md"), "plot": str(out / "ablation.png")})


def register(app: typer.Typer) -> None:
    """Add `globe train ...` to the main app."""
    app.add_typer(train_app, name="train")
