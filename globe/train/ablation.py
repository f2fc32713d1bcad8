"""The paper's reward ablation (its Table 3) in miniature: `globe train ablate`.

Every variant starts from the same SFT checkpoint of a seed, trains on the same data with the same
budget, and is scored on the same held-out images; then each is compared with the start by a
paired bootstrap. The variants:

- `sft`: the start itself;
- `sft-longer`: SFT continued for as many optimizer steps as GRPO takes (the sft group's settings),
  the fair comparison the paper makes: is GRPO better than simply more supervised training?
- `grpo-accuracy`, `grpo-accuracy-localizability`, `globe` (accuracy + localizability + grounding
  + format, the paper's weights), `globe-geodesic` (ours: + the continuous geodesic reward),
  `globe-faithful` (ours: + reasoning_accuracy and consistency): GRPO with the `grpo` group's
  settings (the tiny recipe's advantages unscaled by their group's spread included) and these
  reward weights. Beside accuracy, every variant's reasoning is measured
  (consistency, right for the wrong reason, cue precision/recall) and compared with
  `grpo-accuracy` on the same images.

A seed sets `base.seed`: the SFT data order, GRPO's sampling and batches. The base model and the
data are the same for every seed; the localizability judge is trained once (it is part of the
environment, not of what is compared). Every step is resumable: a finished model or evaluation is
kept, a started one continues from its last checkpoint, so an interrupted ablation reruns only what
is missing. Two CPU workers run independent trainings side by side (torch uses one thread each).

Outputs in OUT: `ablation.json` (a list of {variant, seed, metrics}), `ablation.md` (means over
seeds, the per-seed paired deltas against `sft` with their intervals), `ablation.png`, and every
model and evaluation run under `seed-<s>/`.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from globe.config import Params
from globe.evaluate.metrics import mean_known
from globe.io import atomic_write_bytes

log = logging.getLogger(__name__)

PAPER_WEIGHTS = {"accuracy": 1.0, "localizability": 0.5, "grounding": 0.2, "format": 1.0}
# Ours (docs/train.md, "Reasoning that supports its answer"): the reasoning's conclusion scored like
# the answer, and consistency above accuracy's 1.0, so that an answer that contradicts its own
# reasoning is never worth more than one that follows it; 1.25, params.yaml's recipe ("Consistency
# above accuracy").
FAITHFUL_WEIGHTS = {"reasoning_accuracy": 1.0, "consistency": 1.25}


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "start" | "sft" | "grpo"
    weights: Mapping[str, float] = field(default_factory=dict)
    what: str = ""


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("sft", "start", what="the SFT warm start every variant begins from"),
    Variant("sft-longer", "sft", what="SFT continued for the GRPO budget"),
    Variant("grpo-accuracy", "grpo", {"accuracy": 1.0, "format": 1.0}, "accuracy + format"),
    Variant("grpo-accuracy-localizability", "grpo", {"accuracy": 1.0, "localizability": 0.5, "format": 1.0},
            "accuracy + localizability + format"),
    Variant("globe", "grpo", PAPER_WEIGHTS, "the paper's four rewards and weights"),
    Variant("globe-geodesic", "grpo", {**PAPER_WEIGHTS, "geodesic": 0.5}, "GLOBE + the continuous geodesic reward"),
    Variant("globe-faithful", "grpo", {**PAPER_WEIGHTS, **FAITHFUL_WEIGHTS},
            "GLOBE + reasoning_accuracy + consistency (the reasoning concludes the right, answered place)"),
)}
# the main job's GRPO: params.rewards as configured (not part of the default ablation)
MAIN_JOB = Variant("grpo", "grpo", {}, "the main job's GRPO (params.rewards)")
REPORTED = ("country_acc", "city_acc", "acc_25km", "acc_750km", "acc_2500km", "median_km",
            "consistency", "wrong_reason", "no_conclusion", "cue_precision", "cue_recall")
COMPARED = ("country_acc", "acc_25km")
# What each reward is for, compared against accuracy-only GRPO on the same images and seed.
FAITHFULNESS = ("acc_25km", "country_acc", "consistency", "wrong_reason", "cue_precision", "cue_recall")
REFERENCE = "grpo-accuracy"


class AblationError(ValueError):
    """Inputs that cannot run: the message names the missing file or the unknown variant."""


@dataclass(frozen=True)
class Inputs:
    """Where an ablation reads from: the base model, the SFT traces, the GRPO and judge data, the test set."""

    model: Path
    sft_data: Path
    grpo_data: Path
    judge_data: Path
    heldout: Path

    def check(self) -> None:
        for label, path, marker in (("--model", self.model, "config.json"), ("--sft-data", self.sft_data, "records.jsonl"),
                                    ("--grpo-data", self.grpo_data, "records.jsonl"),
                                    ("--judge-data", self.judge_data, "records.jsonl"),
                                    ("--heldout", self.heldout, "records.jsonl")):
            if not (path / marker).is_file():
                raise AblationError(f"{label} {path}: no {marker} there (build the tiny world with `dvc repro verify heldout "
                                    "base-model`, or let `globe train ablate` build it by leaving the inputs out)")


def build_inputs(params: Params, root: str | Path, say: Callable[[str], None] = print) -> Inputs:
    """The tiny world of `params`, built once under `root` the way dvc.yaml builds it (each step
    skipped when its output is there): source -> distilled -> verified, the held-out set, the base model."""
    from globe.data.distill import distill
    from globe.data.heldout import write_heldout
    from globe.data.source import build_source
    from globe.data.verify import verify
    from globe.tiny.model import build_tiny

    root = Path(root)
    steps = (
        ("source", lambda out: build_source(params, out)),
        ("distilled", lambda out: distill(root / "source", out, params.distill, progress=False)),
        ("verified", lambda out: verify(root / "distilled", out, params.verify)),
        ("heldout", lambda out: write_heldout(params, out)),
    )
    for name, build in steps:
        if not (root / name / "records.jsonl").is_file():
            say(f"building {root / name}")
            build(root / name)
    if not (root / "base" / "config.json").is_file():
        build_tiny(root / "base", seed=params.base.seed)
    return Inputs(model=root / "base", sft_data=root / "verified", grpo_data=root / "distilled",
                  judge_data=root / "distilled", heldout=root / "heldout")


def seed_params(params: Params, seed: int, **groups: dict[str, Any]) -> Params:
    """`params` with base.seed = seed and the given groups updated (validated again)."""
    data = params.model_dump()
    data["base"]["seed"] = seed
    for group, update in groups.items():
        data[group] = {**data[group], **update}
    return Params.model_validate(data)


def done(model_dir: Path) -> bool:
    return (model_dir / "config.json").is_file() and (model_dir / "metrics.json").is_file()


def _resume(out: Path) -> bool:
    return out.is_dir() and any(p.name.startswith("checkpoint-") for p in out.iterdir())


# what a plan's arguments hold that does not change what is learned
_PRESENTATION = {"output_dir", "run_name", "report_to", "logging_steps", "save_strategy", "save_steps", "save_total_limit",
                 "dataloader_num_workers", "disable_tqdm", "deepspeed", "activation_checkpointing_kwargs"}


def _saved_args(out: Path) -> Any | None:
    """The TrainingArguments a run in `out` was trained with: the finished model's, else those of
    the checkpoint a resume would continue from."""
    import torch

    from globe.train.run import last_complete_checkpoint

    last = out if done(out) else last_complete_checkpoint(out)
    path = Path(last) / "training_args.bin" if last else None
    return torch.load(path, weights_only=False) if path is not None and path.is_file() else None  # our own file


def settings_mismatch(stage: str, params: Params, out: Path, model: str, reward_model: str | None = None) -> list[str]:
    """How the run already in `out` was trained differently from what `params` asks ([] when alike).

    An ablation directory is resumed: a finished run is kept and a started one continued. A run
    trained with other settings (another params.yaml, or none, when the command was started
    outside the project) would otherwise be reused silently and compared as if it were this one.
    """
    from globe.train.plan import make_plan

    saved = _saved_args(out)
    if saved is None:
        return []
    plan = make_plan(stage, params, out, model=model, reward_model=reward_model)
    wanted = plan.args
    differences = []
    if stage == "sft" and (out / "metrics.json").is_file():  # not TrainingArguments: metrics.json records them
        from globe.train.sft import counterfactual_summary

        have = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["summary"].get("counterfactual")
        if have != counterfactual_summary(plan).get("counterfactual"):
            differences.append(f"counterfactual traces {have!r}, not {counterfactual_summary(plan).get('counterfactual')!r}")
    for key, value in wanted.items():
        if key in _PRESENTATION or not hasattr(saved, key):
            continue
        have = getattr(saved, key)
        have = getattr(have, "value", have)  # enums (lr_scheduler_type)
        same = abs(float(have) - float(value)) <= 1e-12 * max(1.0, abs(float(value))) if (
            isinstance(value, (int, float)) and isinstance(have, (int, float)) and not isinstance(value, bool)) else have == value
        if not same:
            differences.append(f"{key} {have!r}, not {value!r}")
    return differences


def _train(run: "Training") -> str:
    """Train `run` into its directory unless it is there already (`check_reuse` has vetted what is).

    Runs in a worker process."""
    if done(run.out):
        return str(run.out)
    from globe.train.stages import train_stage

    out, resume = str(run.out), _resume(run.out)
    train_stage(run.stage, run.params, run.data, out, model=run.model,
                reward_model=run.reward_model if run.stage == "grpo" else None, resume=resume)
    return out


def _evaluate(params: dict, model: str, heldout: str, out: str) -> dict:
    from globe.evaluate.benchmarks import load_benchmark
    from globe.evaluate.runner import run_benchmark

    metrics_path = Path(out) / "metrics.json"
    if metrics_path.is_file() and (Path(out) / "predictions.jsonl").is_file():
        return json.loads(metrics_path.read_text(encoding="utf-8"))
    p = Params.model_validate(params)
    samples = load_benchmark("geoscenes", path=Path(heldout), limit=p.eval.limit)
    return run_benchmark(p, model, samples, Path(out), benchmark="geoscenes", progress=False)


# ---- the schedule ------------------------------------------------------------------------------

def run_ablation(
    params: Params,
    inputs: Inputs,
    out: str | Path,
    seeds: Sequence[int],
    variants: Sequence[str] = tuple(VARIANTS),
    workers: int = 2,
    on_event: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every (variant, seed); write ablation.json/.md/.png; return the rows."""
    unknown = [v for v in variants if v not in VARIANTS and v != MAIN_JOB.name]
    if unknown:
        raise AblationError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join([*VARIANTS, MAIN_JOB.name])}")
    if "sft" not in variants:
        variants = ["sft", *variants]  # every comparison is against the start
    inputs.check()
    out = Path(out)
    # two workers' progress bars would interleave: the ablation reports progress itself
    params = seed_params(params, params.base.seed, **{
        g: {"extra": {**getattr(params, g).extra, "disable_tqdm": True}} for g in ("sft", "reward_model", "grpo")
    })
    say = on_event or (lambda msg: log.info("%s", msg))
    needs_judge = any(variant(v, params).weights.get("localizability") for v in variants)
    t0 = time.perf_counter()

    import multiprocessing

    judge_dir = str(out / "reward_model") if needs_judge else None
    runs = trainings(params, inputs, out, seeds, variants, judge_dir)
    check_reuse(runs, out)
    by_out = {r.out: r for r in runs}

    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn")) as pool:
        judge = pool.submit(_train, by_out[out / "reward_model"]) if needs_judge else None
        starts = {s: pool.submit(_train, by_out[out / f"seed-{s}" / "sft"]) for s in seeds}
        if judge:
            say(f"judge trained: {judge.result()}")
        jobs: dict[tuple[str, int], Future] = {}
        for s in seeds:
            start = starts[s].result()
            say(f"seed {s}: SFT start ready ({start})")
            for name in variants:
                run = by_out.get(out / f"seed-{s}" / name) if name != "sft" else None
                jobs[(name, s)] = pool.submit(_variant, params, run, s, name, inputs, out, start)
        rows = []
        for (name, s), job in jobs.items():
            metrics = job.result()
            say(f"seed {s} {name}: country {metrics.get('country_acc'):.3f}, acc_25km {metrics.get('acc_25km'):.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
            rows.append({"variant": name, "seed": s, "metrics": {k: metrics.get(k) for k in ("n", *REPORTED)}})
    _add_deltas(rows, out, params)
    rows = _with_earlier(rows, out)
    write_outputs(rows, out, params, [v for v in (*VARIANTS, MAIN_JOB.name) if any(r["variant"] == v for r in rows)])
    return rows


def _with_earlier(rows: list[dict], out: Path) -> list[dict]:
    """The rows of this call plus those an earlier call into `out` wrote for other (variant, seed)s,
    so that running a subset (benchmarks/grpo_learning.py) keeps the full table."""
    path = out / "ablation.json"
    if not path.is_file():
        return rows
    mine = {(r["variant"], r["seed"]) for r in rows}
    earlier = [r for r in json.loads(path.read_text(encoding="utf-8")) if (r["variant"], r["seed"]) not in mine]
    return sorted(earlier + rows, key=lambda r: (r["seed"], [*VARIANTS, MAIN_JOB.name].index(r["variant"])))


def variant(name: str, params: Params) -> Variant:
    """A variant by name; `grpo` is the main job's GRPO with params.rewards as configured."""
    if name == MAIN_JOB.name:
        return Variant(MAIN_JOB.name, "grpo", dict(params.rewards.weights), MAIN_JOB.what)
    return VARIANTS[name]


@dataclass(frozen=True)
class Training:
    """One training of the ablation: what `_train` gets."""

    stage: str
    params: Params
    data: Path
    out: Path
    model: str
    reward_model: str | None = None


def trainings(params: Params, inputs: Inputs, out: Path, seeds: Sequence[int], variants: Sequence[str],
              judge: str | None) -> list[Training]:
    """Every training an ablation over `seeds` x `variants` runs, in order: the judge (when a
    variant needs it), each seed's SFT start, then the variants that train."""
    runs = [Training("reward_model", params, inputs.judge_data, out / "reward_model", str(inputs.model))] if judge else []
    for seed in seeds:
        base, start = out / f"seed-{seed}", str(out / f"seed-{seed}" / "sft")
        runs.append(Training("sft", seed_params(params, seed), inputs.sft_data, base / "sft", str(inputs.model)))
        for name in variants:
            v = variant(name, params)
            if v.kind == "sft":
                if params.grpo.max_steps <= 0:
                    raise AblationError("sft-longer needs grpo.max_steps > 0: it gets the same number of optimizer steps as GRPO")
                p = seed_params(params, seed, sft={"max_steps": params.grpo.max_steps})
                runs.append(Training("sft", p, inputs.sft_data, base / v.name, start))
            elif v.kind == "grpo":
                p = seed_params(params, seed, rewards={"weights": dict(v.weights)})
                runs.append(Training("grpo", p, inputs.grpo_data, base / v.name, start,
                                     judge if v.weights.get("localizability") else None))
    return runs


def check_reuse(runs: Sequence[Training], root: Path) -> None:
    """Refuse, before anything trains, to reuse a run in `root` that was trained with other settings."""
    found = [f"{r.out.relative_to(root)}: {'; '.join(m[:6])}" for r in runs if r.out.is_dir()
             for m in [settings_mismatch(r.stage, r.params, r.out, r.model, r.reward_model)] if m]
    if found:
        raise AblationError(f"{root} holds runs trained with other settings than these (another params.yaml, or none?): "
                            + " | ".join(found[:4]) + (f" | and {len(found) - 4} more" if len(found) > 4 else "")
                            + ". Remove them to retrain, or pass another --out")  # fmt: skip


def _variant(params: Params, run: Training | None, seed: int, name: str, inputs: Inputs, out: Path, start: str) -> dict:
    """Train one variant (in this worker; `run` is None for the start itself) and evaluate it on the held-out set."""
    model = start if run is None else _train(run)
    return _evaluate(seed_params(params, seed).model_dump(), model, str(inputs.heldout), str(out / f"seed-{seed}" / f"{name}.eval"))


def _add_deltas(rows: list[dict], out: Path, params: Params) -> None:
    """Each row's paired-bootstrap delta against the same seed's `sft` on the held-out images."""
    from globe.evaluate.compare import compare_runs

    for row in rows:
        if row["variant"] == "sft":
            continue
        base = out / f"seed-{row['seed']}"
        result = compare_runs(base / "sft.eval", base / f"{row['variant']}.eval", n_boot=params.eval.bootstrap,
                              seed=params.base.seed)
        row["metrics"]["vs_sft"] = {
            k: {"delta": result["metrics"][k]["delta"], "ci": result["metrics"][k]["ci"]} for k in COMPARED
        }
        if row["variant"] != REFERENCE and (base / f"{REFERENCE}.eval").is_dir():
            result = compare_runs(base / f"{REFERENCE}.eval", base / f"{row['variant']}.eval",
                                  n_boot=params.eval.bootstrap, seed=params.base.seed)
            row["metrics"][f"vs_{REFERENCE}"] = {
                k: {"delta": result["metrics"][k]["delta"], "ci": result["metrics"][k]["ci"]} for k in FAITHFULNESS
            }


# ---- the report --------------------------------------------------------------------------------

def ablation_table(rows: Sequence[Mapping], variants: Sequence[str]) -> str:
    """Markdown: per variant, the mean [min, max] over seeds and every seed's paired delta against sft."""
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"Held-out GeoScenes, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); mean over seeds [min, max]; "
        "Δ = paired-bootstrap delta against the same seed's `sft`, 95% interval.",
        "",
        "| variant | what | country_acc | acc_25km | median_km | Δ country_acc per seed | Δ acc_25km per seed | beats sft on every seed |",
        "|---|---|---:|---:|---:|---|---|:---:|",
    ]
    for name in variants:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        cells = []
        for k in ("country_acc", "acc_25km", "median_km"):
            vals = [r["metrics"].get(k) for r in mine if r["metrics"].get(k) is not None]
            if not vals:
                cells.append("–")
            elif k == "median_km":
                cells.append(f"{mean_known(vals):,.1f} [{min(vals):,.1f}, {max(vals):,.1f}]")
            else:
                cells.append(f"{100 * mean_known(vals):.1f}% [{100 * min(vals):.1f}, {100 * max(vals):.1f}]")
        deltas, wins = [], []
        for k in COMPARED:
            parts = []
            for r in sorted(mine, key=lambda r: r["seed"]):
                d = r["metrics"].get("vs_sft", {}).get(k)
                if not d or d["delta"] is None:
                    continue
                lo, hi = d["ci"]
                parts.append(f"{100 * d['delta']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
                wins.append(lo is not None and lo > 0)
            deltas.append("; ".join(parts) or "–")
        beats = "–" if name == "sft" or not wins else ("yes" if all(wins) else "no")
        what = VARIANTS[name].what if name in VARIANTS else MAIN_JOB.what
        lines.append(f"| {name} | {what} | {cells[0]} | {cells[1]} | {cells[2]} | {deltas[0]} | {deltas[1]} | {beats} |")
    return "\n".join(lines) + "\n"


def _pt(d: Mapping | None) -> str:
    if not d or d.get("delta") is None:
        return "–"
    lo, hi = d["ci"]
    return f"{100 * d['delta']:+.1f} [{'–' if lo is None else f'{100 * lo:+.1f}'}, {'–' if hi is None else f'{100 * hi:+.1f}'}]"


def faithfulness_table(rows: Sequence[Mapping], variants: Sequence[str]) -> str:
    """Markdown: does each variant's reasoning support its answers (means over seeds), and every
    seed's paired delta against `grpo-accuracy` on each metric its extra rewards target."""
    lines = [
        "", f"Does the reasoning support the answer (docs/eval.md)? Mean over seeds; Δ: paired delta against "
        f"`{REFERENCE}` per seed, 95% interval.", "",
        "| variant | consistency | wrong reason | no conclusion | cue precision | cue recall | "
        + " | ".join(f"Δ {k}" for k in FAITHFULNESS) + " |",
        "|---|---:|---:|---:|---:|---:|" + "---|" * len(FAITHFULNESS),
    ]
    for name in variants:
        mine = sorted((r for r in rows if r["variant"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        means = []
        for k in ("consistency", "wrong_reason", "no_conclusion", "cue_precision", "cue_recall"):
            m = mean_known([r["metrics"].get(k) for r in mine])
            means.append("–" if m is None else f"{100 * m:.1f}%")
        deltas = ["; ".join(_pt(r["metrics"].get(f"vs_{REFERENCE}", {}).get(k)) for r in mine) if name != REFERENCE
                  else "–" for k in FAITHFULNESS]
        lines.append(f"| {name} | " + " | ".join(means) + " | " + " | ".join(deltas) + " |")
    return "\n".join(lines) + "\n"


def plot_ablation(rows: Sequence[Mapping], variants: Sequence[str], path: Path) -> Path:
    """Bars: the mean over seeds per variant for country_acc and acc_25km, with each seed as a dot."""
    from matplotlib.figure import Figure

    names = [v for v in variants if any(r["variant"] == v for r in rows)]
    fig = Figure(figsize=(1.6 * len(names) + 2, 4.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    width = 0.38
    for j, (k, colour) in enumerate((("country_acc", "#1f77b4"), ("acc_25km", "#d62728"))):
        for i, name in enumerate(names):
            vals = [100 * r["metrics"][k] for r in rows if r["variant"] == name and r["metrics"].get(k) is not None]
            x = i + (j - 0.5) * width
            ax.bar(x, mean_known(vals) or 0, width, color=colour, alpha=0.55, label=k if i == 0 else None)
            ax.plot([x] * len(vals), vals, "o", color=colour, ms=4)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Reward ablation from the same SFT start (bars: mean over seeds; dots: seeds)")
    from globe.evaluate.plots import _save

    return _save(fig, path)


def write_outputs(rows: Sequence[Mapping], out: Path, params: Params, variants: Sequence[str]) -> None:
    atomic_write_bytes(out / "ablation.json", (json.dumps(list(rows), indent=2, allow_nan=False) + "\n").encode("utf-8"))
    header = (
        "## Reward ablation (globe train ablate)\n\n"
        f"Budget: GRPO {params.grpo.max_steps} steps (G = {params.grpo.num_generations}, "
        f"{params.grpo.per_device_train_batch_size} completions a step, temperature {params.grpo.temperature}, "
        f"lr {params.grpo.learning_rate:g}); `sft-longer` the same number of SFT steps "
        f"({params.sft.per_device_train_batch_size} images a step).\n\n"
    )
    tables = ablation_table(rows, variants) + faithfulness_table(rows, variants)
    atomic_write_bytes(out / "ablation.md", (header + tables).encode("utf-8"))
    plot_ablation(rows, variants, out / "ablation.png")
