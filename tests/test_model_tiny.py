"""The tiny offline VLM: real Qwen2.5-VL classes through the Auto API, small, seeded, generates."""

from __future__ import annotations

import hashlib
import json

import pytest
from _model_helpers import solid
from typer.testing import CliRunner

from globe.cli import app


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_auto_classes_load_real_qwen2_5_vl(tiny_model_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"  # not just a tokenizer
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    text = model.config.text_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (64, 2, 4)
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert model.config.vision_config.out_hidden_size == text.hidden_size
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert len(processor.tokenizer) == text.vocab_size


def test_small_on_disk_and_in_parameters(tiny_model_dir):
    from globe.tiny.model import describe

    info = describe(tiny_model_dir)
    assert info["bytes_on_disk"] < 1_000_000
    assert 150_000 < info["parameters"] < 300_000
    assert info["pixels"] == {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}


def test_tokenizer_tags_are_ordinary_tokens_and_qwen_tokens_special(tiny_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "<think>red flag, tall tower</think>\n<answer>country: Poland\ncity: Warsaw</answer>"
    ids = tok(text, add_special_tokens=False).input_ids
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert tok.convert_tokens_to_ids(tag) in ids  # one token each
    # TRL decodes with skip_special_tokens=True: the tags must survive it, chat tokens must not.
    assert tok.decode(ids, skip_special_tokens=True) == text
    chat = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert chat.startswith("<|im_start|>system\n") and chat.endswith("<|im_start|>assistant\n")
    assert tok.decode(tok(chat).input_ids, skip_special_tokens=True).count("<|im_start|>") == 0
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_chat_template_is_the_one_trl_recognises(tiny_model_dir):
    from transformers import AutoProcessor
    from trl.chat_template_utils import get_training_chat_template, qwen2_5_vl_chat_template

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    assert processor.chat_template == qwen2_5_vl_chat_template
    assert "{% generation %}" in get_training_chat_template(processor.tokenizer)


def test_generate_from_an_image_through_the_processor(tiny_model_dir):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).eval()
    messages = [{"role": "user", "content": [{"type": "image", "image": solid((200, 30, 30), (150, 100))}, {"type": "text", "text": "Where?"}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    grid = inputs["image_grid_thw"][0]
    assert n_image_tokens == int(grid.prod()) // 4 and 4 <= n_image_tokens <= 16  # 2x2 merge, 56..112 px
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_same_seed_same_bytes_other_seed_other_weights(tiny_model_dir, tmp_path):
    from globe.tiny.model import build_tiny

    again = build_tiny(tmp_path / "again", seed=0)
    other = build_tiny(tmp_path / "other", seed=1)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert _sha(again / name) == _sha(tiny_model_dir / name), name
    assert _sha(other / "model.safetensors") != _sha(tiny_model_dir / "model.safetensors")
    assert _sha(other / "tokenizer.json") == _sha(tiny_model_dir / "tokenizer.json")
    # Rebuilding over an existing directory replaces it whole and leaves no temp dirs behind.
    build_tiny(tmp_path / "other", seed=0)
    assert _sha(tmp_path / "other" / "model.safetensors") == _sha(tiny_model_dir / "model.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]


def test_cli_init_tiny_and_info(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["model", "init-tiny", "--out", str(tmp_path / "m"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    built = json.loads(result.stdout[result.stdout.index("{") :])
    assert built["processor"] == "Qwen2_5_VLProcessor" and built["parameters"] > 0
    result = runner.invoke(app, ["model", "info", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_load_rejects_a_directory_that_is_not_a_model(tmp_path):
    from globe.model.loading import load_model_and_processor

    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model_and_processor(tmp_path, device="cpu")


def test_load_merges_a_lora_adapter(tiny_model_dir, tmp_path):
    """A reward-model LoRA directory loads like a full model (base + adapter merged)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from globe.model.loading import load_model_and_processor

    base = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "lora")
    cfg = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(tiny_model_dir)
    (tmp_path / "lora" / "adapter_config.json").write_text(json.dumps(cfg))

    merged, processor = load_model_and_processor(tmp_path / "lora", device="cpu")
    plain, _ = load_model_and_processor(tiny_model_dir, device="cpu")
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert not any("lora" in name for name, _ in merged.named_parameters())
    q_merged = merged.model.language_model.layers[0].self_attn.q_proj.weight
    q_plain = plain.model.language_model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q_merged, q_plain)  # the adapter really changed the weights


def test_refuses_to_replace_a_directory_that_is_not_a_model(tmp_path):
    from globe.tiny.model import build_tiny

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "records.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="not a model directory"):
        build_tiny(tmp_path / "data")
    assert (tmp_path / "data" / "records.jsonl").read_text() == "{}\n"
