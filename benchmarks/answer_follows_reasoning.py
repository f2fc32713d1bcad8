"""Does the answer read the reasoning? Force a reasoning that argues for another city, decode the answer.

Consistency (the evaluation metric) says whether a model's answer names the place its own
reasoning concludes; it cannot say *why*: an answer read off the image a second time agrees with a
reasoning that read the same image. This probe separates the two. For each held-out image a model
reasoned about (its `globe eval` predictions), the model's own `<think>` is rewritten to argue for
another city of the same country (`globe.train.counterfactual.counterfactual_trace`, the rewrite
SFT's counterfactual traces use), forced after the prompt up to `<answer>`, and the answer decoded
greedily. An answer that follows the forced reasoning reads it; one that names the model's own
city read the image instead.

    python benchmarks/answer_follows_reasoning.py --model models/sft \
        --predictions results/evaluate/in_domain/sft/predictions.jsonl [--model ... --predictions ...] [--limit 200]

It prints, per model: the forced reasonings tried, and the shares of answers that follow them,
name the model's own city, or name another place.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def probe(model_dir: Path, predictions: Path, limit: int, seed: int = 0) -> dict[str, float]:
    """Shares of answers that follow a forced counterfactual reasoning (module doc)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from globe.answer import parse
    from globe.answer.conclusion import reasoning_conclusion
    from globe.images import open_ref
    from globe.scorer import city_match
    from globe.train.counterfactual import Rewriter, answered_places, counterfactual_trace
    from globe.train.datasets import geo_messages

    rows = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line.strip()][:limit]
    thinks = [(row.get("answer") or {}).get("think") or "" for row in rows]
    cities = Rewriter(answered_places(thinks), seed)  # its others(); one seeded draw per reasoning
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    messages = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in geo_messages()]
    messages[-1]["content"].insert(0, {"type": "image"})
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    counts = {"follows": 0, "own_city": 0, "other": 0}
    for row, think in zip(rows, thinks):
        others = cities.others(think)
        trace = counterfactual_trace(think, cities.rng.choice(others)) if others else None
        if trace is None:
            continue
        own = reasoning_conclusion(think)
        forced = trace.split("<answer>")[0] + "<answer>"
        inputs = processor(images=[open_ref(row["image"])], text=[prompt + forced], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=32, do_sample=False)
        tail = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        answer, wanted = parse(forced + tail), parse(trace)
        if answer.city and city_match(answer.city, wanted.city, wanted.country, True, True):
            counts["follows"] += 1
        elif answer.city and city_match(answer.city, own.city, own.country, True, True):
            counts["own_city"] += 1
        else:
            counts["other"] += 1
    tried = sum(counts.values())
    return {"tried": tried, **{k: v / tried if tried else float("nan") for k, v in counts.items()}}


def main(
    model: list[Path] = typer.Option(..., help="a model directory (repeat, one per --predictions)"),
    predictions: list[Path] = typer.Option(..., help="its `globe eval` predictions.jsonl on held-out images"),
    limit: int = typer.Option(200, min=1, help="predictions read per model"),
) -> None:
    if len(model) != len(predictions):
        raise typer.BadParameter("give one --predictions per --model")
    import torch

    torch.set_num_threads(1)
    print(f"{'model':<40} {'tried':>5} {'follows':>8} {'own city':>9} {'other':>6}")
    for m, p in zip(model, predictions):
        r = probe(m, p, limit)
        print(f"{str(m):<40} {r['tried']:>5} {r['follows']:>8.3f} {r['own_city']:>9.3f} {r['other']:>6.3f}")


if __name__ == "__main__":
    typer.run(main)
