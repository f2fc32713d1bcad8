"""Why held-out reasonings stop supporting their answer: misread cues or misinferred ones.

Reads a benchmark directory (`benchmarks/grpo_learning.py --out DIR` or `globe train ablate --out
DIR`): the GeoScenes held-out sets under `DIR/world/{heldout,shifted}` (records with the cues drawn,
`world.json` with the legend) and each seed's evaluations `DIR/seed-*/MODEL.eval` and
`MODEL.shifted.eval`. For each set and model it prints, summed over the seeds, all rows and then the
rows whose answer the reasoning does not support, each by which cue the reasoning got wrong
(`globe.tiny.cue_reading`), and the reasonings that name a flag's palette and then another country
than its owner. With `--against REF` it adds, per seed, each model's paired difference from REF
over the same images (95% bootstrap interval, `globe.evaluate.metrics.bootstrap_ci`) in the share
of reasonings read and inferred and of flags called another country's: what tells reward sets
apart when consistency cannot (a reasoning that calls a flag another country's and an answer that
follows it agree).

    python benchmarks/reasoning_failures.py --out DIR [--model sft --model grpo] [--against grpo-accuracy]
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from globe.tiny.world import World

SETS = (("in-domain", "heldout", ""), ("shifted", "shifted", "shifted."))


Legend = tuple["World", dict[str, list[str]]]


def _legend(data: Path) -> Legend:
    """A held-out set's world (its legend) and each record's drawn cues, by record id."""
    from globe.tiny.world import World

    records = map(json.loads, (data / "records.jsonl").open(encoding="utf-8"))
    return World.load(data), {r["id"]: r.get("entities") or [] for r in records}


def _keys(row: dict[str, Any], legend: Legend) -> list[str]:
    """The row's `cue_reading` label, and "flag misinferred" when its reasoning is one."""
    from globe.tiny.cue_reading import cue_reading, flag_misinferred

    world, entities = legend
    think = (row.get("answer") or {}).get("think")
    label = cue_reading(think, entities.get(row["id"], []), world)
    return [label, "flag misinferred"] if flag_misinferred(think, world) else [label]


def failures(out: Path, model: str, suffix: str, legend: Legend) -> tuple[Counter[str], Counter[str]] | None:
    """(all rows by label, unsupported rows by label) over the seeds, each with the flags
    misinferred under "flag misinferred"; None when the model was not evaluated on the set."""
    runs = sorted(out.glob(f"seed-*/{model}.{suffix}eval/predictions.jsonl"))
    if not runs:
        return None
    every, unsupported = Counter[str](), Counter[str]()
    for run in runs:
        for row in map(json.loads, run.open(encoding="utf-8")):
            keys = ["rows", *_keys(row, legend)]
            every.update(keys)
            if row.get("consistent") is False:
                unsupported.update(keys)
            elif row.get("consistent") is None:
                every["no conclusion"] += 1
    return every, unsupported


def _labels(run: Path, legend: Legend) -> dict[str, tuple[bool, bool]]:
    """Per row id of one evaluation: (read and inferred, flag misinferred)."""
    out = {}
    for row in map(json.loads, run.open(encoding="utf-8")):
        keys = _keys(row, legend)
        out[row["id"]] = ("read and inferred" in keys, "flag misinferred" in keys)
    return out


def paired_differences(out: Path, model: str, reference: str, suffix: str, legend: Legend) -> list[str]:
    """One line per seed: model - reference in the two shares, in points, with 95% intervals."""
    from globe.evaluate.metrics import bootstrap_ci

    lines = []
    for ref_run in sorted(out.glob(f"seed-*/{reference}.{suffix}eval/predictions.jsonl")):
        run = ref_run.parents[1] / f"{model}.{suffix}eval" / "predictions.jsonl"
        if not run.is_file():
            continue
        a, b = _labels(ref_run, legend), _labels(run, legend)
        pairs = [{"read": b[i][0] - a[i][0], "flag": b[i][1] - a[i][1]} for i in a if i in b]
        if not pairs:
            lines.append(f"  {ref_run.parts[-3]}: {model} and {reference} share no image")
            continue
        cells = []
        for key, what in (("read", "read and inferred"), ("flag", "flag misinferred")):
            mean = sum(p[key] for p in pairs) / len(pairs)
            lo, hi = bootstrap_ci(pairs, lambda rows, k=key: sum(r[k] for r in rows) / len(rows), n=1000, seed=42) or (mean, mean)
            cells.append(f"{what} {100 * mean:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}] pt")
        lines.append(f"  {ref_run.parts[-3]}: {model} - {reference} over {len(pairs)} images: " + "; ".join(cells))
    return lines


def main(
    out: Path = typer.Option(..., help="a benchmark or ablation directory"),
    model: list[str] = typer.Option(["sft", "grpo"], help="the evaluated variants to read (repeat)"),
    against: str | None = typer.Option(None, help="a variant to pair every other --model with, per seed"),
) -> None:
    from globe.tiny.cue_reading import LABELS

    legends: dict[str, Legend] = {}
    for name, world_dir, _ in SETS:
        data = out / "world" / world_dir
        if (data / "world.json").is_file() and (data / "records.jsonl").is_file():
            legends[name] = _legend(data)
        else:
            typer.echo(f"{name}: skipped, {data} holds no GeoScenes set (world.json + records.jsonl)", err=True)
    columns = ("rows", *LABELS, "flag misinferred", "no conclusion")
    print(f"{'set':<10} {'model':<14} {'which rows':<12} " + " ".join(f"{c:>17}" for c in columns))
    for name, _, suffix in SETS:
        for m in model if name in legends else ():
            found = failures(out, m, suffix, legends[name])
            for which, counts in zip(("all", "unsupported"), found or ()):
                print(f"{name:<10} {m:<14} {which:<12} " + " ".join(f"{counts[c]:>17}" for c in columns))
    for name, _, suffix in SETS if against else ():
        lines = [line for m in model if m != against and name in legends
                 for line in paired_differences(out, m, against, suffix, legends[name])]
        if lines:
            print(f"{name}, paired against {against}:", *lines, sep="\n")


if __name__ == "__main__":
    typer.run(main)
