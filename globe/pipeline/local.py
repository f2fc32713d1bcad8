"""`globe pipeline run-local`: the whole pipeline on this machine with kfp.local's SubprocessRunner.

Every step runs as a subprocess of the current Python environment (no containers, nothing installed:
`use_venv=False`), its artifacts under WORKDIR/kfp. What kfp.local cannot do, and so what this run
leaves out (DESIGN.md section 4): Kubernetes settings are ignored (GPU placement, Secrets, PVC,
timeouts), GRPO trains in a step instead of a TrainJob, and the deploy step is skipped. MLflow is a
local sqlite store in WORKDIR unless MLFLOW_TRACKING_URI is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from globe.pipeline.build import PipelineError, build


def latest_run_dir(pipeline_root: Path) -> Path:
    runs = sorted((p for p in pipeline_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise PipelineError(f"{pipeline_root}: kfp.local wrote no run directory")
    return runs[-1]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """kfp.local logs the run and every task's output to stdout; send it to stderr at the file
    descriptor level (subprocesses included) so that stdout carries only the command's JSON result."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_local(params: Any, workdir: str | Path, num_shards: int = 2) -> dict[str, Any]:
    """Run the pipeline locally; return the run directory, timings and the evaluation metrics."""
    from kfp import local

    workdir = Path(workdir).resolve()
    root = workdir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    pipeline = build(params, multi_node_grpo=False)
    started = time.monotonic()
    try:
        with stdout_to_stderr():
            pipeline(num_shards=num_shards, deploy=False)
    except RuntimeError as exc:
        raise PipelineError(f"local pipeline run failed: {exc}") from exc
    run_dir = latest_run_dir(root)
    metrics_file = next(run_dir.glob("evaluate*/evaluation/metrics.json"), None)
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "seconds": round(time.monotonic() - started, 1),
        "tasks": sorted(p.name for p in run_dir.iterdir() if p.is_dir()),
        "mlflow_tracking_uri": os.environ["MLFLOW_TRACKING_URI"],
    }
    if metrics_file is not None:
        summary["metrics"] = json.loads(metrics_file.read_text(encoding="utf-8"))
    return summary
