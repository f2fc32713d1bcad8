"""Where a tiny GRPO step spends its time: generation, reward scoring, optimisation.

Target: reward scoring under 1% of the step, so that the rewards (and the judge) never become
the bottleneck of RL training. Two reward sets are measured side by side in one run, on the same
tiny policy and data:

- rules: accuracy + grounding + format (parsing and string matching only);
- rules + judge: the same plus the localizability reward, scored by a tiny-model `LocalEngine`
  judge (one batched forward pass per step over the distinct (image, reasoning) pairs).

The policy is a freshly built tiny model (it never stops early, so every completion runs to
`max_completion_length`: the worst case for generation). Step 1 is warm-up and left out.

    python benchmarks/grpo_step.py [--steps 12] [--completion-length N]

It prints its settings and the machine's load and exits non-zero when a target is missed.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]


def run(steps: int, completion_length: int | None, judge: Path | None, workdir: Path, model: Path, data: Path) -> dict:
    from globe.config import load_params
    from globe.train.grpo import train_grpo

    # the paper's weights; without a judge, localizability is switched off (and then not built at all)
    weights = "{accuracy: 1.0, localizability: %s, grounding: 0.2, format: 1.0}" % (0.5 if judge else 0)
    overrides = [f"grpo.max_completion_length={completion_length}"] if completion_length else []
    params = load_params(
        ROOT / "params.yaml",
        preset="tiny-cpu",
        overrides=overrides + [
            f"rewards.weights={weights}",
            f"grpo.max_steps={steps}",
            f"grpo.logging_steps={steps}",
            f"grpo.save_steps={steps * 10}",
            "grpo.extra={disable_tqdm: true}",
        ],
    )
    out = workdir / ("grpo_judge" if judge else "grpo_rules")
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's log lines; stdout keeps the table
        summary = train_grpo(params, data, out, model=str(model), reward_model=str(judge) if judge else None)
    return summary["timing"]


def main(
    steps: int = typer.Option(12, help="GRPO steps per configuration (the first is warm-up)"),
    completion_length: int | None = typer.Option(None, help="max_completion_length (default: the tiny-cpu preset's)"),
) -> None:
    import os

    from globe.tiny.geoscenes import synthesize
    from globe.tiny.model import build_tiny

    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="grpo_step_") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        model = build_tiny(work / "tiny", seed=0)
        synthesize(work / "geoscenes", n=64, seed=0)
        print(f"setup (tiny model + 64 GeoScenes images): {time.perf_counter() - start:.1f} s")
        rows = {
            "rules": run(steps, completion_length, None, work, model, work / "geoscenes"),
            "rules + judge": run(steps, completion_length, model, work, model, work / "geoscenes"),
        }
    from globe.config import load_params

    g = load_params(ROOT / "params.yaml", preset="tiny-cpu").grpo
    length = completion_length or g.max_completion_length
    print(f"\ntiny GRPO step, batch {g.per_device_train_batch_size} = {g.per_device_train_batch_size // g.num_generations} "
          f"prompts x {g.num_generations} generations, <= {length} new tokens, mean of {steps - 1} steps "
          f"(step 1 is warm-up); load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'rewards':<14} {'step s':>8} {'generation':>17} {'reward scoring':>17} {'optimisation':>17}  target <1%")
    met = True
    for name, t in rows.items():
        cells = [f"{t[k + '_s']:.3f} ({t[k + '_share']:6.2%})" for k in ("generation", "reward", "optimisation")]
        ok = t["reward_share"] < 0.01
        met &= ok
        print(f"{name:<14} {t['step_s']:>8.3f} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17}  {'met' if ok else 'MISSED'}")
    raise typer.Exit(0 if met else 1)


if __name__ == "__main__":
    typer.run(main)
