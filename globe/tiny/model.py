"""The tiny offline VLM: a real Qwen2.5-VL, shrunk until it trains on two CPU cores.

The point is to exercise the exact code path of Qwen2.5-VL-7B-Instruct — `AutoProcessor`,
`AutoModelForImageTextToText`, the chat template, image tokens, M-RoPE, TRL's trainers — without a
download. Every size below is the smallest that keeps the architecture's invariants:

- text: 2 layers, hidden 64, 4 query heads of dim 16 and 2 KV heads (grouped-query attention, as
  in the 7B); `mrope_section` [2, 3, 3] splits the 8 rotary frequency pairs of a 16-dim head
  into temporal/height/width parts (it must sum to head_dim / 2);
- vision: 2 blocks of width 32, patch 14, 2x2 spatial merge into the 64-dim text space, one window
  (the image processor caps images at 112x112 px = 8x8 patches = 16 image tokens);
- a 1,280-token vocabulary (see `globe.tiny.tokenizer`), embeddings tied to the LM head: even
  so they are 82k of the 221k parameters.

The result is 221k parameters and 0.97 MB on disk, and everything is seeded: the same seed gives
byte-identical files.
"""

from __future__ import annotations

from pathlib import Path

MIN_PIXELS = 56 * 56
MAX_PIXELS = 112 * 112
VOCAB_SIZE = 1280


def tiny_config(tokenizer):
    """A `Qwen2_5_VLConfig` sized for CPU tests, with token ids taken from `tokenizer`."""
    from transformers import Qwen2_5_VLConfig

    ids = tokenizer.convert_tokens_to_ids
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=None,
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
        max_window_layers=2,
    )
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=32,
        num_heads=2,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        out_hidden_size=64,
        fullatt_block_indexes=[1],
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=True,
    )


def build_tiny_processor(vocab_size: int = VOCAB_SIZE):
    """Tokenizer + Qwen2-VL image/video processors + chat template, as one `Qwen2_5_VLProcessor`."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    from globe.tiny.chat_template import QWEN2_5_VL_CHAT_TEMPLATE
    from globe.tiny.tokenizer import train_qwen_tokenizer

    tokenizer = train_qwen_tokenizer(vocab_size=vocab_size)
    tokenizer.chat_template = QWEN2_5_VL_CHAT_TEMPLATE
    image_processor = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS})
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_5_VL_CHAT_TEMPLATE,
    )


def build_tiny(out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny model and processor with `seed` and save both to `out_dir`; return the path.

    The directory is written next to `out_dir` first and renamed into place, so a crash never
    leaves a half-written model where a later stage would load it. An existing `out_dir` is
    replaced only when it is empty or already a model directory (has `config.json`).
    """
    import os

    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration

    from globe.io import atomic_directory

    out = Path(out_dir)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / "config.json").is_file())):
        raise FileExistsError(f"{out}: exists and is not a model directory; refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    processor = build_tiny_processor()
    config = tiny_config(processor.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[config.text_config.eos_token_id, config.text_config.pad_token_id],
        pad_token_id=config.text_config.pad_token_id,
        do_sample=False,
    )
    with atomic_directory(out, replace=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        for f in tmp.iterdir():  # transformers writes the weights 0600 (via a temp file)
            os.chmod(f, 0o644)
    return out


def count_parameters(model) -> int:
    """Unique parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


TEXT_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
VISION_FIELDS = ("depth", "hidden_size", "out_hidden_size", "patch_size", "spatial_merge_size")


def describe(path: str | Path) -> dict:
    """Summary of a saved model directory (read from its files; no weights are loaded)."""
    import json
    import math

    from safetensors import safe_open

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError("not a model directory (no config.json)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    params = 0
    for shard in sorted(path.glob("*.safetensors")):
        with safe_open(str(shard), framework="numpy") as f:
            params += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    text, vision = config.get("text_config", {}), config.get("vision_config", {})
    processor_file = path / "processor_config.json"
    processor = json.loads(processor_file.read_text(encoding="utf-8")) if processor_file.is_file() else {}
    return {
        "path": str(path),
        "model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
        "parameters": params,
        "bytes_on_disk": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
        "text": {k: text.get(k) for k in TEXT_FIELDS},
        "vision": {k: vision.get(k) for k in VISION_FIELDS},
        "processor": processor.get("processor_class"),
        "pixels": (processor.get("image_processor") or {}).get("size"),
    }
