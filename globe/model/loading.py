"""Load any Qwen2.5-VL-style checkpoint (the tiny model, the 7B, a trained output, a LoRA adapter).

One function so that every stage loads models the same way: through the Auto classes (so a real
hub checkpoint and the tiny one take the same path), on the device the caller asked for, in eval
mode, with the processor set up for batched generation (left padding).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def resolve_device(device: str = "auto") -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: Any, device: str):
    """None -> bfloat16 on CUDA (what the 7B is trained in), float32 on CPU; strings -> torch dtypes."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, str):
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; expected e.g. float32, bfloat16, float16")
        return value
    return dtype


def load_model_and_processor(path: str | Path, device: str = "auto", dtype: Any = None):
    """Return `(model, processor)` from a model directory or hub id, ready for `generate`.

    A directory holding a PEFT adapter (`adapter_config.json`, e.g. the localizability reward
    model's LoRA) is loaded onto its base model and merged, so callers never special-case it.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    path = str(path)
    adapter_cfg = Path(path) / "adapter_config.json"
    if adapter_cfg.is_file():
        base = json.loads(adapter_cfg.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{adapter_cfg}: field base_model_name_or_path is empty; cannot find the base model")
        from peft import PeftModel

        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch_dtype)
        model = PeftModel.from_pretrained(model, path).merge_and_unload()
        proc_src = path if (Path(path) / "processor_config.json").is_file() else base
    else:
        if Path(path).exists() and not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a model directory (no config.json or adapter_config.json)")
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype)
        proc_src = path
    processor = AutoProcessor.from_pretrained(proc_src)
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return model, processor
