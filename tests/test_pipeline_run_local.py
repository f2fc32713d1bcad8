"""`globe pipeline run-local`: the whole KFP pipeline on the tiny world with kfp.local's
SubprocessRunner (the real components, this Python environment, no Kubernetes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A smaller tiny world than params.yaml's, so the chain fits the CI budget on 2 cores.
SMALL = ["synth.n=96", "sft.epochs=2", "reward_model.epochs=1", "grpo.max_steps=8", "eval.bootstrap=50", "eval.gallery_size=4"]


@pytest.mark.slow
def test_run_local_runs_every_stage_of_the_tiny_world(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    args = [sys.executable, "-m", "globe.cli", "pipeline", "run-local", "--workdir", str(tmp_path / "run"), "--shards", "2"]
    for item in SMALL:
        args += ["--set", item]
    started = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout)
    run_dir = Path(summary["run_dir"])

    tasks = set(summary["tasks"])
    for task in ("synth", "shard-plan", "merge-shards", "verify", "base-model", "sft", "reward-model", "grpo", "evaluate", "register"):
        assert task in tasks, f"{task} did not run: {sorted(tasks)}"
    assert not any(t.startswith("deploy") or t.startswith("condition") and "deploy" in t for t in tasks)
    shards = sorted(run_dir.glob("for-loop-*-iteration-*/distill-shard/distilled/records.jsonl"))
    assert len(shards) == 2
    merged = (run_dir / "merge-shards" / "dataset" / "records.jsonl").read_text().splitlines()
    assert len(merged) == sum(len(s.read_text().splitlines()) for s in shards) > 0

    metrics = summary["metrics"]
    assert metrics["n"] > 0 and 0.0 <= metrics["acc_2500km"] <= 1.0
    assert (run_dir / "evaluate" / "report").stat().st_size > 0  # the HTML report artifact
    assert "within 25 km" in (run_dir / "evaluate" / "summary").read_text()  # the Markdown artifact
    outputs = json.loads((run_dir / "evaluate" / "executor_output.json").read_text())
    assert "acc_25km" in json.dumps(outputs)  # KFP Metrics

    register = json.loads((run_dir / "register" / "executor_output.json").read_text())
    params = register["parameterValues"]
    assert params["version"] == "1" and params["promoted"] is True
    assert params["champion_storage_uri"]

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("globe", "champion").version) == "1"
    print(f"run-local on the tiny world: {elapsed:.0f} s")
    assert elapsed < 600
