"""Does GRPO beat the SFT checkpoint it starts from? The main job's recipe over several training seeds.

For each seed (base.seed = 0, 1, 2 ...: SFT data order, GRPO sampling and batches), the tiny-cpu
preset's SFT warm start and the main job's GRPO (params.rewards as configured, judge included)
are trained on the tiny world of params.yaml and scored on its in-domain held-out set (400
GeoScenes of a seed training never sees) and on its shifted held-out set (400 in a rendering
training never saw). It prints one row per seed with both models' figures and the paired-bootstrap
delta GRPO - SFT with its 95% interval, and checks the targets of issue 10:

- on every seed, GRPO - SFT > 0 for country_acc and acc_25km, the interval above 0;
- the GRPO model reaches country_acc >= 0.90 and acc_25km >= 0.60 (the mean over seeds);

and of issue 22, whether the reasoning still supports the answer after GRPO (`globe.faithfulness`):

- on every seed, in-domain: GRPO consistency >= 0.95 and not below SFT's (the paired interval's
  lower bound above -2 pt); right for the wrong reason <= 3%; GRPO - SFT on acc_25km >= +20 pt
  with the interval above 0;
- on the shifted set, the same direction: acc_25km gain with the interval above 0, consistency not
  below SFT's (lower bound above -2 pt).

It exits non-zero when a target is missed. It reuses `globe train ablate`'s machinery (variant `sft`
and the main job's GRPO, which is the ablation's `globe` when params.rewards holds the paper's
weights), so it resumes where it stopped, and pointed at the directory of a `globe train ablate`
run it reads those runs instead of training them again.

    python benchmarks/grpo_learning.py [--seeds 3] [--out DIR] [--workers 2] [--preset NAME]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
TARGET_COUNTRY, TARGET_ACC25 = 0.90, 0.60
TARGET_CONSISTENCY, MAX_WRONG_REASON, MIN_GAIN_25KM, CONSISTENCY_FLOOR = 0.95, 0.03, 0.20, -0.02


def _ci(d: dict) -> str:
    lo, hi = d["ci"]
    return f"{100 * d['delta']:+6.1f} pt [{100 * lo:+5.1f}, {100 * hi:+5.1f}]"


def faithfulness_rows(params, inputs, out: Path, seeds: int, main_job: str, say) -> bool:
    """Issue 22's targets per seed, in-domain (the ablation's runs) and shifted (scored here)."""
    from globe.tiny.geoscenes import synthesize_heldout
    from globe.evaluate.compare import compare_runs
    from globe.train.ablation import _evaluate, seed_params

    shifted = out / "world" / "shifted"
    if not (shifted / "records.jsonl").is_file():
        say(f"building {shifted}")
        synthesize_heldout(shifted, params, shifted=True)
    print(f"\n{'seed':>4} | {'set':>11} | {'SFT cons':>8} {'GRPO cons':>9} {'wrong':>6} | {'delta consistency [95% CI]':>28} | "
          f"{'delta acc_25km [95% CI]':>26} | verdict")
    ok = True
    for s in range(seeds):
        base = out / f"seed-{s}"
        runs = {"in_domain": (base / "sft.eval", base / f"{main_job}.eval")}
        for name in ("sft", main_job):
            model = base / name if name != "sft" else base / "sft"
            _evaluate(seed_params(params, s).model_dump(), str(model), str(shifted), str(base / f"{name}.shifted.eval"))
        runs["shifted"] = (base / "sft.shifted.eval", base / f"{main_job}.shifted.eval")
        for split, (a, b) in runs.items():
            result = compare_runs(a, b, n_boot=params.eval.bootstrap, seed=params.base.seed)
            cons, acc = result["metrics"]["consistency"], result["metrics"]["acc_25km"]
            wrong = result["metrics"]["wrong_reason"]["b"]
            floor = cons["ci"][0] is not None and cons["ci"][0] > CONSISTENCY_FLOOR
            gains = acc["ci"][0] is not None and acc["ci"][0] > 0
            if split == "in_domain":
                met = (floor and gains and cons["b"] >= TARGET_CONSISTENCY and wrong <= MAX_WRONG_REASON
                       and acc["delta"] >= MIN_GAIN_25KM)
            else:
                met = floor and gains
            ok &= met
            print(f"{s:>4} | {split:>11} | {cons['a']:>8.3f} {cons['b']:>9.3f} {100 * wrong:>5.1f}% | {_ci(cons):>28} | "
                  f"{_ci(acc):>26} | {'met' if met else 'MISSED'}")
            for condition, block in result.get("by_condition", {}).items():  # where the reasoning stops supporting
                c = block["consistency"]
                print(f"{'':>4} | {condition:>11} | {c['a']:>8.3f} {c['b']:>9.3f} {'':>6} | {_ci(c):>28} | "
                      f"{_ci(block['acc_25km']):>26} | (n={block['n']})")
    print(f"targets (issue 22): in-domain consistency >= {TARGET_CONSISTENCY}, lower bound of Δ consistency > "
          f"{100 * CONSISTENCY_FLOOR:+.0f} pt, wrong reason <= {100 * MAX_WRONG_REASON:.0f}%, Δ acc_25km >= "
          f"+{100 * MIN_GAIN_25KM:.0f} pt above 0; shifted: Δ acc_25km above 0, Δ consistency > "
          f"{100 * CONSISTENCY_FLOOR:+.0f} pt: {'met' if ok else 'MISSED'}")
    return ok


def main(
    seeds: int = typer.Option(3, min=1, help="training seeds 0..N-1"),
    out: Path = typer.Option(Path("/tmp/globe-ablation"), help="work directory (resumed; a `globe train ablate` dir is reused)"),
    workers: int = typer.Option(2, min=1, help="trainings side by side"),
    preset: str | None = typer.Option(None, help="a params.yaml preset to measure instead of base.preset"),
) -> None:
    from globe.config import load_params
    from globe.train.ablation import PAPER_WEIGHTS, build_inputs, run_ablation

    params = load_params(ROOT / "params.yaml", preset=preset)
    g = params.grpo
    print(f"settings: preset {params.base.preset}; world synth.n={params.synth.n}, held-out n={params.heldout.n} "
          f"(seed {params.heldout.seed}); SFT {params.sft.max_steps} steps; GRPO {g.max_steps} steps, G={g.num_generations}, "
          f"{g.per_device_train_batch_size} completions/step, T={g.temperature}, lr={g.learning_rate:g}; "
          f"rewards {dict(params.rewards.weights)}")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    t0 = time.perf_counter()

    def say(message: str) -> None:
        print(f"  {message}", file=sys.stderr, flush=True)

    inputs = build_inputs(params, out / "world", say)
    main_job = "globe" if dict(params.rewards.weights) == PAPER_WEIGHTS else "grpo"
    rows = run_ablation(params, inputs, out, seeds=list(range(seeds)), variants=["sft", main_job], workers=workers,
                        on_event=say)
    by = {(r["variant"] if r["variant"] != main_job else "grpo", r["seed"]): r["metrics"] for r in rows}
    print(f"\n{'seed':>4} | {'SFT country':>11} {'acc_25km':>8} | {'GRPO country':>12} {'acc_25km':>8} | "
          f"{'delta country [95% CI]':>26} | {'delta acc_25km [95% CI]':>26}")
    ok = True
    grpo_country, grpo_acc = [], []
    for s in range(seeds):
        sft, grpo = by[("sft", s)], by[("grpo", s)]
        cells = []
        for k in ("country_acc", "acc_25km"):
            d = grpo["vs_sft"][k]
            lo, hi = d["ci"]
            wins = d["delta"] is not None and d["delta"] > 0 and lo is not None and lo > 0
            ok &= wins
            cells.append(f"{100 * d['delta']:+6.1f} pt [{100 * lo:+5.1f}, {100 * hi:+5.1f}] {'ok' if wins else 'MISS'}")
        grpo_country.append(grpo["country_acc"])
        grpo_acc.append(grpo["acc_25km"])
        print(f"{s:>4} | {sft['country_acc']:>11.3f} {sft['acc_25km']:>8.3f} | {grpo['country_acc']:>12.3f} "
              f"{grpo['acc_25km']:>8.3f} | {cells[0]:>26} | {cells[1]:>26}")
    mean_c, mean_a = sum(grpo_country) / seeds, sum(grpo_acc) / seeds
    reach = mean_c >= TARGET_COUNTRY and mean_a >= TARGET_ACC25
    print(f"\nGRPO mean over seeds: country_acc {mean_c:.3f} (target >= {TARGET_COUNTRY}), acc_25km {mean_a:.3f} "
          f"(target >= {TARGET_ACC25}): {'met' if reach else 'MISSED'}")
    print(f"every seed GRPO > SFT with the interval above 0: {'met' if ok else 'MISSED'}")
    faithful = faithfulness_rows(params, inputs, out, seeds, main_job, say)
    print(f"wall time {time.perf_counter() - t0:.0f} s; tables in {out}/ablation.md")
    raise typer.Exit(0 if ok and reach and faithful else 1)


if __name__ == "__main__":
    typer.run(main)
