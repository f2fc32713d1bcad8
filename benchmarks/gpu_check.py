"""The GPU check, ready for the day a device is lent: GRPO and SFT at Qwen2.5-VL-3B/7B shape under
DeepSpeed ZeRO-3, with random weights built from the architecture's config (nothing downloaded).

    python benchmarks/gpu_check.py --size 3b --out /tmp/gpu-check           # one H100, <= 8 min
    python benchmarks/gpu_check.py --size 7b --deepspeed zero3_offload ...   # optimizer states on CPU
    python benchmarks/gpu_check.py --size tiny --out /tmp/gpu-check          # CPU: the same code path

What it does, with `globe train`'s own functions (`train_grpo`, `train_sft`) and a `params.yaml`
preset-style override set (bf16, gradient checkpointing, DeepSpeed):

1. builds the model from a `Qwen2_5_VLConfig` at the published shape of Qwen2.5-VL-3B/7B-Instruct
   (text and vision towers, 151,936/152,064-token embeddings) with random bf16 weights, and saves it
   with the tiny model's processor (a byte-level BPE of 1,280 tokens whose special-token ids are
   copied into the config; the image processor is raised to `--max-pixels`);
2. runs `--grpo-steps` GRPO steps (G = `--generations`, `--completion-length` new tokens,
   HF `generate`: vLLM is not installable on the device machine) with the localizability judge
   (the same random model through `LocalEngine`, so the judge costs what a real one of that size
   costs) and the rule rewards, then `--sft-steps` SFT steps;
3. prints examples/s (completions per second of GRPO training, and SFT examples per second), the
   peak GPU memory, and the judge's share of a GRPO step, beside the paper's 0.44 examples/s on
   8 x H20; writes OUT/gpu_check.json. Rewards of a random policy are zero: only speed and memory
   are measured. The final model is not saved (`--save` to save it) to keep the check in budget.

The device machine has torch, transformers, peft and accelerate, not trl or deepspeed. Carry them
as wheels built here (`pip wheel --no-deps trl==1.16.0 deepspeed==0.19.8 -w wheels/`; deepspeed
builds without CUDA, its ops JIT-compile on first use) and install them there with
`pip install --no-deps wheels/*.whl` before running the check (see the device tool's README).

`--size tiny` (init-tiny, CPU, fp32, DeepSpeed's CPU accelerator) is what the tests run
(tests/test_gpu_check.py); it has not run on a GPU in this repository yet.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
PAPER_EXAMPLES_PER_S = 0.44  # GLOBE's GRPO on 8 x H20 (docs/architecture.md, field facts)

# The published configs of Qwen/Qwen2.5-VL-{3B,7B}-Instruct (config.json), architecture fields only.
SHAPES = {
    "3b": dict(
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                  num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                  rope_theta=1000000.0, mrope_section=[16, 24, 24], tie=True),
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                    fullatt_block_indexes=[7, 15, 23, 31], window_size=112, tokens_per_second=2),
    ),
    "7b": dict(
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                  rope_theta=1000000.0, mrope_section=[16, 24, 24], tie=False),
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                    fullatt_block_indexes=[7, 15, 23, 31], window_size=112, tokens_per_second=2),
    ),
}


def build_model(size: str, out: Path, max_pixels: int) -> Path:
    """A random-weight model of `size` saved at `out` (tiny: init-tiny itself)."""
    from globe.tiny.model import build_tiny, build_tiny_processor

    if (out / "config.json").is_file():
        return out
    if size == "tiny":
        return build_tiny(out, seed=0)
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    shape = SHAPES[size]
    processor = build_tiny_processor()
    processor.image_processor.max_pixels = max_pixels
    processor.image_processor.size = {"shortest_edge": processor.image_processor.min_pixels, "longest_edge": max_pixels}
    ids = processor.tokenizer.convert_tokens_to_ids
    t, v = shape["text"], shape["vision"]
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=t["vocab_size"], hidden_size=t["hidden_size"], intermediate_size=t["intermediate_size"],
            num_hidden_layers=t["num_hidden_layers"], num_attention_heads=t["num_attention_heads"],
            num_key_value_heads=t["num_key_value_heads"], max_position_embeddings=t["max_position_embeddings"],
            rope_parameters={"rope_type": "default", "rope_theta": t["rope_theta"], "mrope_section": t["mrope_section"]},
            eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"), bos_token_id=None,
            max_window_layers=t["num_hidden_layers"],
        ),
        vision_config=dict(depth=v["depth"], hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                           num_heads=v["num_heads"], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           window_size=v["window_size"], out_hidden_size=v["out_hidden_size"],
                           fullatt_block_indexes=v["fullatt_block_indexes"], tokens_per_second=v["tokens_per_second"]),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=t["tie"],
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # random init on the GPU: minutes faster than on the CPU at 7B
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id, do_sample=True,
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def overrides(size: str, stage: str, deepspeed: str, steps: int, batch: int, extra: list[str]) -> list[str]:
    gpu = size != "tiny"
    sets = [f"{stage}.deepspeed={deepspeed}", f"{stage}.max_steps={steps}", f"{stage}.logging_steps=1",
            f"{stage}.save_steps={100 * steps}", f"{stage}.per_device_train_batch_size={batch}",
            f"{stage}.use_cpu={str(not gpu).lower()}", f"{stage}.bf16={str(gpu).lower()}",
            f"{stage}.gradient_checkpointing={str(gpu).lower()}", f"{stage}.torch_threads={1 if not gpu else 'null'}",
            f"{stage}.extra={{disable_tqdm: true}}"]
    return sets + extra


def main(
    out: Path = typer.Option(..., help="work directory (model, data, runs, gpu_check.json)"),
    size: str = typer.Option("3b", help="3b | 7b | tiny (tiny: init-tiny on CPU, what the tests run)"),
    deepspeed: str = typer.Option("zero3", help="zero3 | zero3_offload (7B on one 80 GB GPU needs the offload)"),
    grpo_steps: int = typer.Option(3, help="GRPO steps (the first is warm-up in the timing split)"),
    sft_steps: int = typer.Option(2, help="SFT steps"),
    generations: int = typer.Option(8, help="GRPO group size G; one step = one prompt x G completions"),
    completion_length: int = typer.Option(256, help="max new tokens per completion"),
    max_pixels: int = typer.Option(448 * 448, help="image processor max_pixels (3b/7b)"),
    images: int = typer.Option(32, help="synthesized GeoScenes"),
    save: bool = typer.Option(False, help="also write the trained checkpoints (minutes at 7B)"),
) -> None:
    import torch

    from globe.config import load_params
    from globe.tiny.geoscenes import synthesize
    from globe.train import grpo as grpo_mod
    from globe.train import sft as sft_mod

    if size not in ("tiny", *SHAPES):
        raise typer.BadParameter(f"--size must be tiny, 3b or 7b, not {size!r}")
    if size != "tiny" and not torch.cuda.is_available():
        raise typer.BadParameter(f"--size {size} needs a GPU; use --size tiny on CPU")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    model = build_model(size, out / f"model-{size}", max_pixels)
    built_s = time.monotonic() - started
    data = out / "data"
    if not (data / "records.jsonl").is_file():
        synthesize(data, n=images, seed=0)
    if size == "tiny":
        completion_length = min(completion_length, 32)
    if not save:  # the check measures training; writing a 7B checkpoint would take minutes of it
        import globe.train.run as run_mod  # the trainers import save_clean from it when they run

        run_mod.save_clean = lambda *a, **k: None

    cuda = torch.cuda.is_available()
    params = load_params(ROOT / "params.yaml", preset="tiny-cpu", overrides=overrides(
        size, "grpo", deepspeed, grpo_steps, generations, [
            f"grpo.num_generations={generations}", f"grpo.max_completion_length={completion_length}",
            "grpo.temperature=1.0", "grpo.learning_rate=1e-6"]))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with contextlib.redirect_stdout(sys.stderr):
        grpo = grpo_mod.train_grpo(params, data, out / "grpo", model=str(model), reward_model=str(model))
    grpo_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    timing = grpo["timing"]
    completions = grpo["global_step"] * generations * int(os.environ.get("WORLD_SIZE", "1"))
    grpo_rate = completions / grpo["train_runtime"]

    params = load_params(ROOT / "params.yaml", preset="tiny-cpu", overrides=overrides(
        size, "sft", deepspeed, sft_steps, 1 if size != "tiny" else 4, ["sft.learning_rate=1e-5"]))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with contextlib.redirect_stdout(sys.stderr):
        sft = sft_mod.train_sft(params, data, out / "sft", model=str(model))
    sft_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    doc = {
        "size": size, "device": torch.cuda.get_device_name(0) if cuda else "cpu", "deepspeed": deepspeed,
        "model_build_s": round(built_s, 1), "grpo_steps": grpo["global_step"], "generations": generations,
        "completion_length": completion_length, "grpo_runtime_s": grpo["train_runtime"],
        "grpo_completions_per_s": grpo_rate, "grpo_peak_gpu_gib": grpo_peak,
        "judge_share_of_step": (timing["reward_s"] / timing["step_s"]) if timing.get("step_s") else None,
        "generation_share_of_step": (timing["generation_s"] / timing["step_s"]) if timing.get("step_s") else None,
        "timing": timing, "sft_steps": sft["global_step"], "sft_examples_per_s": sft.get("train_samples_per_second"),
        "sft_peak_gpu_gib": sft_peak, "paper_examples_per_s": PAPER_EXAMPLES_PER_S,
        "generation_engine": "transformers generate (vLLM is not installed on the device machine)",
        "total_s": round(time.monotonic() - started, 1),
    }
    (out / "gpu_check.json").write_text(json.dumps(doc, indent=2, default=str))
    peak = lambda x: f"{x:.1f} GiB" if x is not None else "n/a (CPU)"  # noqa: E731
    print(f"{size} on {doc['device']}, DeepSpeed {deepspeed}, HF generate (no vLLM)")
    print(f"GRPO: {grpo['global_step']} steps x {generations} completions (<= {completion_length} tokens): "
          f"{grpo_rate:.3f} completions/s (the paper: {PAPER_EXAMPLES_PER_S} examples/s on 8 x H20), "
          f"peak GPU memory {peak(grpo_peak)}")
    if doc["judge_share_of_step"] is not None:
        print(f"      step split: generation {doc['generation_share_of_step']:.1%}, reward scoring incl. the judge "
              f"{doc['judge_share_of_step']:.1%}")
    print(f"SFT:  {sft['global_step']} steps, {doc['sft_examples_per_s']} examples/s, peak GPU memory {peak(sft_peak)}")
    print(f"total {doc['total_s']} s (model built in {doc['model_build_s']} s)")


if __name__ == "__main__":
    typer.run(main)
