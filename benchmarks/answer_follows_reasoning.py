"""Does the answer read the reasoning? Force a reasoning that argues for another city, decode the answer.

Consistency (the evaluation metric) says whether a model's answer names the place its own
reasoning concludes; it cannot say *why*: an answer read off the image a second time agrees with a
reasoning that read the same image. This probe separates the two. For each held-out image a model
reasoned about (its `globe eval` predictions), the model's own `<think>` is rewritten to argue for
another city of the same country, forced after the prompt up to `<answer>`, and the answer decoded
greedily (`globe.train.follows`: the same probe SFT's follows gate runs on the data's test split).
An answer that follows the forced reasoning reads it; one that names the model's own city read the
image instead. `--scope world` forces a city of another country instead, the flag left as it was:
an incoherent reasoning, the kind a misread landmark gives on the shifted set.

    python benchmarks/answer_follows_reasoning.py --model models/sft \
        --predictions results/evaluate/in_domain/sft/predictions.jsonl [--model ... --predictions ...] [--limit 200] [--scope world]

It prints, per model: the forced reasonings tried, and the shares of answers that follow them,
name the model's own city, or name another place.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def probe(model_dir: Path, predictions: Path, limit: int, seed: int = 0, scope: str = "country") -> dict[str, float]:
    """Shares of answers that follow a forced counterfactual reasoning (module doc)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from globe.train.follows import answer_follows, probe_cases

    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()][:limit]
    thinks = [(row.get("answer") or {}).get("think") or "" for row in rows]
    cases = probe_cases([(row["image"], think) for row, think in zip(rows, thinks)], thinks, seed, scope)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    return answer_follows(model, processor, cases).as_dict()


def main(
    model: list[Path] = typer.Option(..., help="a model directory (repeat, one per --predictions)"),
    predictions: list[Path] = typer.Option(..., help="its `globe eval` predictions.jsonl on held-out images"),
    limit: int = typer.Option(200, min=1, help="predictions read per model"),
    scope: str = typer.Option("country", help="the forced city: another of the same country, or of another (world)"),
) -> None:
    if scope not in ("country", "world"):
        raise typer.BadParameter(f"--scope {scope!r}: expected country or world")
    if len(model) != len(predictions):
        raise typer.BadParameter("give one --predictions per --model")
    import torch

    torch.set_num_threads(1)
    print(f"{'model':<40} {'tried':>5} {'follows':>8} {'own city':>9} {'other':>6}")
    for m, p in zip(model, predictions):
        r = probe(m, p, limit, scope=scope)
        print(f"{str(m):<40} {r['tried']:>5} {r['follows']:>8.3f} {r['own_city']:>9.3f} {r['other']:>6.3f}")


if __name__ == "__main__":
    typer.run(main)
