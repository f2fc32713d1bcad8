"""benchmarks/gpu_check.py at the tiny shape on CPU: the code path the GPU check takes (GRPO with a
judge and SFT under DeepSpeed ZeRO-3, through globe.train), so it is known to run when a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_gpu_check_runs_at_the_tiny_shape_on_cpu(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu_check.py"), "--size", "tiny", "--out", str(tmp_path),
           "--grpo-steps", "2", "--sft-steps", "1", "--images", "16"]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert doc["grpo_steps"] == 2 and doc["sft_steps"] == 1 and doc["grpo_completions_per_s"] > 0
    assert 0 < doc["judge_share_of_step"] < 1 and doc["paper_examples_per_s"] == 0.44
    assert "completions/s" in proc.stdout and not (tmp_path / "grpo" / "model.safetensors").exists()  # not saved


def test_gpu_check_shapes_are_the_published_ones():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from gpu_check import SHAPES
    finally:
        sys.path.pop(0)
    for size, params_b in (("3b", 3.75), ("7b", 8.29)):
        t, v = SHAPES[size]["text"], SHAPES[size]["vision"]
        h, i, n, kv = t["hidden_size"], t["intermediate_size"], t["num_hidden_layers"], t["num_key_value_heads"]
        head = h // t["num_attention_heads"]
        assert sum(t["mrope_section"]) == head // 2
        layer = h * h * 2 + 2 * h * kv * head + 3 * h * i  # q, o, k, v, gate/up/down
        text = n * layer + t["vocab_size"] * h * (1 if t["tie"] else 2)
        vision = v["depth"] * (4 * v["hidden_size"] ** 2 + 3 * v["hidden_size"] * v["intermediate_size"])
        vision += (4 * v["hidden_size"]) ** 2 + 4 * v["hidden_size"] * v["out_hidden_size"]  # merger MLP
        assert abs((text + vision) / 1e9 - params_b) < 0.1, (size, (text + vision) / 1e9)
