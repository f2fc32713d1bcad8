"""`dvc repro` of the tiny world, end to end, in a scratch copy of the project: every stage runs,
metrics and the lock are written, a second `dvc repro` does nothing, and `dvc exp run -S` reruns
only what the changed parameter invalidates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["data", "distill", "verify", "base-model", "sft", "reward-model", "grpo", "evaluate", "register"]


def _small(params: dict) -> dict:
    """A smaller tiny world than params.yaml's, so the chain fits the CI budget on 2 cores."""
    params["synth"]["n"] = 96
    params["eval"]["bootstrap"] = 50
    params["eval"]["gallery_size"] = 4
    params["register"]["min_value"] = None  # 8 GRPO steps need not clear the real world's floor
    tiny = params["presets"]["tiny-cpu"]
    tiny["grpo"]["max_steps"] = 8
    tiny["sft"]["epochs"] = 2
    tiny["reward_model"]["epochs"] = 1
    return params


def _run(args: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_dvc_repro_tiny_world_then_nothing_then_an_experiment(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "dvc.yaml", proj / "dvc.yaml")
    shutil.copytree(ROOT / "globe", proj / "globe", ignore=shutil.ignore_patterns("__pycache__"))  # code deps
    params = _small(yaml.safe_load((ROOT / "params.yaml").read_text()))
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the `globe` CLI
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], proj, env)
    _run([*dvc, "init", "-q"], proj, env)
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "tiny world"], proj, env)

    started = time.monotonic()
    out = _run([*dvc, "repro"], proj, env)
    elapsed = time.monotonic() - started
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out, stage
    lock = yaml.safe_load((proj / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    metrics = json.loads((proj / "results/evaluate/metrics.json").read_text())
    assert metrics["n"] > 0 and 0.0 <= metrics["acc_25km"] <= 1.0
    assert json.loads((proj / "results/register/registered.json").read_text())["version"] == "1"
    assert json.loads((proj / "results/register/promotion.json").read_text())["promoted"] is True
    shown = json.loads(_run([*dvc, "metrics", "show", "--json"], proj, env))
    assert "results/evaluate/metrics.json" in json.dumps(shown)

    again = _run([*dvc, "repro"], proj, env)
    assert "Running stage" not in again and "up to date" in again.lower()

    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "lock"], proj, env)
    exp = _run([*dvc, "exp", "run", "-S", "register.min_improvement=0.5"], proj, env)
    assert "Running stage 'register'" in exp
    assert "Running stage 'grpo'" not in exp and "Running stage 'synth'" not in exp
    promotion = json.loads((proj / "results/register/promotion.json").read_text())
    assert promotion["promoted"] is False  # v2 equals v1's metric: not better by 0.5
    print(f"dvc repro of the tiny world: {elapsed:.0f} s")
    assert elapsed < 600
