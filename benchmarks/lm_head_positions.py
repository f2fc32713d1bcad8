"""What scoring only the labelled positions in TRL's fused LM head saves on CPU (globe.train.lm_head).

The same SFT and GRPO runs of the tiny-cpu recipe (a fresh tiny model, 64 GeoScenes images), once
with TRL's CPU default (the head scores every position, the prompt's included) and once as
`globe train` runs them (only the positions that carry a label), alternated `--rounds` times so
that both arms see the same machine load. It prints each arm's train_runtime per step, the ratio,
and each run's mean training loss (equal between arms: the values at the labelled positions are the same
computation).

    python benchmarks/lm_head_positions.py [--sft-steps 60] [--grpo-steps 10] [--rounds 2]

Target: SFT steps at least 1.25x faster (the tiny recipe's SFT is 3,000 steps of the main job).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
from functools import partial
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
TARGET_SFT_SPEEDUP = 1.25


def run(stage: str, steps: int, compact: bool, model: Path, data: Path, out: Path) -> tuple[float, float]:
    """(seconds per step, mean training loss) of one `stage` run with the switch on or off."""
    import globe.train.run as train_run
    from globe.config import load_params
    from globe.train.grpo import train_grpo
    from globe.train.lm_head import labelled_positions_only
    from globe.train.sft import train_sft

    overrides = [f"{stage}.max_steps={steps}", f"{stage}.logging_steps={steps}", f"{stage}.save_steps={steps * 10}"]
    if stage == "grpo":  # the rule-based rewards; no judge model to build
        overrides.append("rewards.weights.localizability=0")
    params = load_params(ROOT / "params.yaml", preset="tiny-cpu", overrides=overrides + [f"{stage}.extra={{disable_tqdm: true}}"])
    train_run.labelled_positions_only = partial(labelled_positions_only, enabled=compact)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's log lines; stdout keeps the table
            train = train_sft if stage == "sft" else train_grpo
            summary = train(params, data, out, model=str(model))
    finally:
        train_run.labelled_positions_only = labelled_positions_only
    return summary["train_runtime"] / steps, summary["train_loss"]


def main(
    sft_steps: int = typer.Option(60, help="SFT steps per run"),
    grpo_steps: int = typer.Option(10, help="GRPO steps per run"),
    rounds: int = typer.Option(2, help="alternations of the two arms"),
) -> None:
    from globe.tiny.geoscenes import synthesize
    from globe.tiny.model import build_tiny

    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    times: dict[tuple[str, bool], list[float]] = {}
    losses: dict[tuple[str, bool], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lm_head_") as tmp:
        work = Path(tmp)
        model = build_tiny(work / "tiny", seed=0)
        synthesize(work / "geoscenes", n=64, seed=0)
        for r in range(rounds):
            for stage, steps in (("sft", sft_steps), ("grpo", grpo_steps)):
                for compact in (False, True):
                    out = work / f"{stage}-{compact}-{r}"
                    per_step, loss = run(stage, steps, compact, model, work / "geoscenes", out)
                    times.setdefault((stage, compact), []).append(per_step)
                    losses.setdefault((stage, compact), []).append(loss)
    print(f"\n{'stage':>5} | {'every position':>15} | {'labelled only':>14} | {'speed-up':>8} | train loss (every / labelled)")
    speedups = {}
    for stage in ("sft", "grpo"):
        every, labelled = statistics.median(times[(stage, False)]), statistics.median(times[(stage, True)])
        speedups[stage] = every / labelled
        loss = " ".join(f"{a:.4g}/{b:.4g}" for a, b in zip(losses[(stage, False)], losses[(stage, True)]))
        print(f"{stage:>5} | {every * 1000:>11.0f} ms | {labelled * 1000:>10.0f} ms | {speedups[stage]:>7.2f}x | {loss}")
    ok = speedups["sft"] >= TARGET_SFT_SPEEDUP
    print(f"\ntarget: SFT >= {TARGET_SFT_SPEEDUP}x faster: {'met' if ok else 'MISSED'} ({speedups['sft']:.2f}x)")
    raise typer.Exit(0 if ok else 1)


if __name__ == "__main__":
    typer.run(main)
