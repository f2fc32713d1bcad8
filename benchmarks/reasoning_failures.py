"""Why held-out reasonings stop supporting their answer: misread cues or misinferred ones.

Reads a benchmark directory (`benchmarks/grpo_learning.py --out DIR` or `globe train ablate --out
DIR`): the GeoScenes held-out sets under `DIR/world/{heldout,shifted}` (records with the cues drawn,
`world.json` with the legend) and each seed's evaluations `DIR/seed-*/MODEL.eval` and
`MODEL.shifted.eval`. For each set and model it prints, summed over the seeds, all rows and then the
rows whose answer the reasoning does not support, each by which cue the reasoning got wrong
(`globe.tiny.cue_reading`), and the reasonings that name a flag's palette and then another country
than its owner.

    python benchmarks/reasoning_failures.py --out DIR [--model sft --model grpo]
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

SETS = (("in-domain", "heldout", ""), ("shifted", "shifted", "shifted."))


def failures(out: Path, model: str, world_dir: str, suffix: str) -> tuple[Counter[str], Counter[str]] | None:
    """(all rows by label, unsupported rows by label) over the seeds, each with the flags
    misinferred under "flag misinferred"; None when the model was not evaluated on the set."""
    from globe.tiny.cue_reading import cue_reading, flag_misinferred
    from globe.tiny.world import World

    data = out / "world" / world_dir
    runs = sorted(out.glob(f"seed-*/{model}.{suffix}eval/predictions.jsonl"))
    if not runs or not (data / "world.json").is_file():
        return None
    world = World.load(data)
    entities = {r["id"]: r.get("entities") or [] for r in map(json.loads, (data / "records.jsonl").open(encoding="utf-8"))}
    every, unsupported = Counter[str](), Counter[str]()
    for run in runs:
        for row in map(json.loads, run.open(encoding="utf-8")):
            think = (row.get("answer") or {}).get("think")
            keys = [cue_reading(think, entities.get(row["id"], []), world)] + ["flag misinferred"] * flag_misinferred(think, world)
            every.update(["rows", *keys])
            if row.get("consistent") is False:
                unsupported.update(["rows", *keys])
            elif row.get("consistent") is None:
                every["no conclusion"] += 1
    return every, unsupported


def main(
    out: Path = typer.Option(..., help="a benchmark or ablation directory"),
    model: list[str] = typer.Option(["sft", "grpo"], help="the evaluated variants to read (repeat)"),
) -> None:
    from globe.tiny.cue_reading import LABELS

    columns = ("rows", *LABELS, "flag misinferred", "no conclusion")
    print(f"{'set':<10} {'model':<14} {'which rows':<12} " + " ".join(f"{c:>17}" for c in columns))
    for name, world_dir, suffix in SETS:
        for m in model:
            found = failures(out, m, world_dir, suffix)
            if found is None:
                continue
            for which, counts in zip(("all", "unsupported"), found):
                print(f"{name:<10} {m:<14} {which:<12} " + " ".join(f"{counts[c]:>17}" for c in columns))


if __name__ == "__main__":
    typer.run(main)
