"""`globe pipeline run-local`: the whole pipeline on this machine with kfp.local's SubprocessRunner.

Every step runs as a subprocess of the current Python environment (no containers, nothing installed:
`use_venv=False`), its artifacts under WORKDIR/kfp. What kfp.local cannot do, and so what this run
leaves out (docs/architecture.md, "Real parts and how they start"): Kubernetes settings are ignored (GPU placement, Secrets, PVC,
timeouts), GRPO trains in a step instead of a TrainJob, and the deploy step is skipped. MLflow is a
local sqlite store in WORKDIR unless MLFLOW_TRACKING_URI is set; the DVC remote is WORKDIR/dvc-remote
unless the `dvc_remote` argument names one (an `s3://` URL: endpoint and credentials from AWS_*).

The source and benchmark specs and the DVC remote are checked here, before kfp.local starts, so a bad
spec costs no step; the run's own first step checks them again, as it does on a cluster.
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

from globe.kfp.build import PipelineError, build



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


def preflight(params: Any, num_shards: int, dvc_remote: str) -> dict[str, Any]:
    """The checks of the pipeline's `check sources` step, here, before any work: a SourceError
    (unreadable spec, missing bucket, refused credentials) becomes a PipelineError."""
    from globe.data.source import SourceError
    from globe.kfp.steps import check_sources

    groups = {"source": params.source.model_dump(mode="json"), "benchmark": params.benchmark.model_dump(mode="json")}
    try:
        return check_sources(groups, num_shards, dvc_remote)
    except SourceError as exc:
        raise PipelineError(str(exc)) from exc


def _outputs(task_dir: Path) -> dict[str, Any]:
    path = task_dir / "executor_output.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _read_json(path: Path | None) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None


def absolute_specs(params: Any) -> Any:
    """Params whose local source/benchmark paths are absolute: the steps run in the work directory."""
    update = {}
    for group in ("source", "benchmark"):
        spec = getattr(params, group)
        paths = {k: str(Path(v).resolve()) for k in ("csv", "images") if (v := getattr(spec, k)) and "://" not in v}
        update[group] = spec.model_copy(update=paths)
    return params.model_copy(update=update)


def run_local(params: Any, workdir: str | Path, num_shards: int = 2, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the pipeline locally; return the run directory, timings, the dataset versions, the
    evaluation's headline (every model on every held-out split, the paired deltas), the
    registration and the lineage.

    The steps run in `workdir`, so what MLflow writes next to a local store (`mlruns/`) lands there
    and not in the checkout."""
    from kfp import local

    from globe.lineage import local_runtime

    workdir = Path(workdir).resolve()
    params = absolute_specs(params)
    arguments = {"num_shards": num_shards, "dvc_remote": str(workdir / "dvc-remote"), **(arguments or {}), "deploy": False}
    if "://" not in str(arguments["dvc_remote"]):  # a local remote: the steps run elsewhere
        arguments["dvc_remote"] = str(Path(arguments["dvc_remote"]).resolve())
    preflight(params, int(arguments["num_shards"]), str(arguments["dvc_remote"]))
    root = workdir / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'mlflow.db'}")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    pipeline = build(params, multi_node_grpo=False, runtime=local_runtime())
    started = time.monotonic()
    try:
        with stdout_to_stderr(), contextlib.chdir(workdir):
            pipeline(**arguments)
    except RuntimeError as exc:
        raise PipelineError(f"local pipeline run failed: {exc}") from exc
    run_dir = latest_run_dir(root)
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "seconds": round(time.monotonic() - started, 1),
        "tasks": sorted(p.name for p in run_dir.iterdir() if p.is_dir()),
        "mlflow_tracking_uri": os.environ["MLFLOW_TRACKING_URI"],
        "dvc_remote": arguments["dvc_remote"],
        "datasets": {},
    }
    for dvc_file in sorted(run_dir.glob("**/version-dataset*/dvc_file")):
        from globe.data.versioning import read_dvc_file

        found = read_dvc_file(dvc_file)
        summary["datasets"][found["path"]] = {"md5": found["md5"], "nfiles": found["nfiles"], "dvc_file": str(dvc_file)}
    summary["import"] = _read_json(next(run_dir.glob("merge-imports/dataset/import_report.json"), None))
    if summary["import"]:
        summary["import"]["examples"] = summary["import"]["examples"][:5]
    # the suite's headline (results/evaluate/metrics.json's layout: split -> model or pair -> figures)
    summary["metrics"] = _read_json(next(run_dir.glob("evaluate/evaluation/metrics.json"), None))
    bench = _read_json(next(run_dir.glob("**/evaluate-benchmark/evaluation/metrics.json"), None))
    if bench is not None:
        summary["benchmark_metrics"] = {k: v for k, v in bench.items() if not isinstance(v, dict)}
    registered = _outputs(run_dir / "register").get("parameterValues")
    if registered:
        summary["registered"] = registered
    summary["lineage"] = {k: v for k, v in (_read_json(run_dir / "lineage" / "lineage") or {}).items() if k != "params"}
    return summary
