"""What each KFP step does, as plain functions over directories (the components are wrappers).

Every step runs the same `globe` CLI that `dvc repro` runs, in a subprocess, with a params.yaml
written from the params groups the step was given. Why the CLI and not library calls: it is the
one contract every stage already tests, a subprocess returns the memory a trainer took, and a
step's log shows exactly the command a user can re-run by hand.

KFP hands steps local paths for their artifacts (downloaded before, uploaded after the step), so
these functions only see directories. Training steps additionally keep their work on the shared
workspace PVC when `GLOBE_WORKSPACE` is set (cluster), so a retried step resumes from its last
checkpoint instead of starting over; the finished model is then copied into the KFP artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from globe.pipeline import settings


class StepError(RuntimeError):
    """A pipeline step failed; the message names the step's command and its exit status."""


# --- plumbing ------------------------------------------------------------------------------------


def write_params(groups: Mapping[str, Any], path: str | Path) -> Path:
    """Write the given params groups as a params.yaml that `load_params` accepts, and validate it.

    The groups arrive already resolved (the preset was applied when the pipeline was compiled), so
    `base.preset` is cleared: re-applying a preset would silently override values the user set.
    """
    from globe.config import load_params

    doc = {name: dict(value or {}) for name, value in groups.items()}
    doc.setdefault("base", {})["preset"] = None
    path = Path(path)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    load_params(path)  # raises ConfigError naming the file and field
    return path


def run_cli(args: list[str], cwd: str | Path | None = None, raw: bool = False) -> Any:
    """Run `globe ARGS` in a subprocess; return the JSON object it printed last (None if none),
    or with `raw` its whole stdout stripped.

    stderr (progress, logs) streams through; stdout is captured to read the result and echoed.
    """
    cmd = [sys.executable, "-m", "globe.cli", *map(str, args)]
    print("+ globe " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    if proc.returncode != 0:
        raise StepError(f"`globe {' '.join(map(str, args))}` exited with status {proc.returncode}")
    return proc.stdout.strip() if raw else last_json(proc.stdout)


def last_json(text: str) -> Any:
    """The last top-level JSON value in `text` (the CLI prints one indented JSON document)."""
    start = text.rfind("\n{")
    start = 0 if start < 0 and text.lstrip().startswith("{") else start
    if start < 0:
        return None
    try:
        return json.loads(text[start:])
    except json.JSONDecodeError:
        return None


def _params(groups: Mapping[str, Any], step: str, tmp: str | Path) -> Path:
    wanted = settings.STEP_GROUPS[step]
    return write_params({g: groups.get(g) or {} for g in wanted}, Path(tmp) / "params.yaml")


def copy_tree(src: str | Path, dst: str | Path) -> None:
    """Copy a directory's contents into `dst` (created; existing files replaced)."""
    shutil.copytree(src, dst, dirs_exist_ok=True)


def staging_dir(stage: str, out: str | Path, run_id: str | None) -> tuple[Path, bool]:
    """Where a training step writes: the PVC workspace on a cluster (resumable), else `out`.

    Returns (directory, staged) where `staged` says the result must be copied into `out`.
    """
    workspace = os.environ.get("GLOBE_WORKSPACE")
    # Only a workspace that is there (the PVC mount): kfp.local passes the same env var on a laptop.
    if workspace and run_id and Path(workspace).is_dir():
        path = Path(workspace) / "runs" / run_id / stage
        path.mkdir(parents=True, exist_ok=True)
        return path, True
    Path(out).mkdir(parents=True, exist_ok=True)
    return Path(out), False


# --- datasets ------------------------------------------------------------------------------------


def _read_lines(dataset: Path) -> list[str]:
    path = dataset / "records.jsonl"
    if not path.is_file():
        raise StepError(f"{dataset}: no records.jsonl (expected a dataset directory)")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _link_images(src: Path, dst: Path, lines: Iterable[str]) -> None:
    from globe.data.records import link_or_copy

    for line in lines:
        image = json.loads(line).get("image") or ""
        if image and "://" not in image and (src / image).is_file():
            link_or_copy(src / image, dst / image)


def _copy_side_files(src: Path, dst: Path) -> None:
    """Dataset-level files other than the records (e.g. GeoScenes' world.json legend)."""
    for item in src.iterdir():
        if item.is_file() and item.name != "records.jsonl":
            shutil.copy2(item, dst / item.name)


def shard_dataset(src: str | Path, dst: str | Path, shard: int, num_shards: int) -> int:
    """Write every `num_shards`-th record starting at `shard` (and its images) to `dst`."""
    from globe.data.records import atomic_write_bytes

    if not 0 <= shard < num_shards:
        raise StepError(f"shard {shard} is outside 0..{num_shards - 1}")
    src, dst = Path(src), Path(dst)
    lines = _read_lines(src)[shard::num_shards]
    dst.mkdir(parents=True, exist_ok=True)
    _copy_side_files(src, dst)
    _link_images(src, dst, lines)
    atomic_write_bytes(dst / "records.jsonl", "".join(line + "\n" for line in lines).encode())
    return len(lines)


def merge_datasets(srcs: Iterable[str | Path], dst: str | Path) -> int:
    """Concatenate datasets (records sorted by id, so the order does not depend on shard timing)."""
    from globe.data.records import atomic_write_bytes

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    by_id: dict[str, str] = {}
    for src in map(Path, srcs):
        lines = _read_lines(src)
        _copy_side_files(src, dst)
        _link_images(src, dst, lines)
        for line in lines:
            rid = json.loads(line)["id"]
            if rid in by_id:
                raise StepError(f"record {rid!r} appears in more than one shard")
            by_id[rid] = line
    atomic_write_bytes(dst / "records.jsonl", "".join(by_id[k] + "\n" for k in sorted(by_id)).encode())
    return len(by_id)


# --- stages --------------------------------------------------------------------------------------


def synth(groups: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        p = _params(groups, "synth", tmp)
        return run_cli(["data", "synth", "--out", Path(out).resolve(), "--params", p], cwd=tmp) or {}


def distill_shard(groups: Mapping[str, Any], dataset: str | Path, shard: int, num_shards: int, out: str | Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "shard"
        n = shard_dataset(dataset, part, shard, num_shards)
        p = _params(groups, "distill", tmp)
        result = run_cli(["distill", "--data", part, "--out", Path(out).resolve(), "--params", p, "--no-progress"], cwd=tmp) or {}
    return {"shard": shard, "num_shards": num_shards, "records": n, **result}


def verify(groups: Mapping[str, Any], dataset: str | Path, out: str | Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        p = _params(groups, "verify", tmp)
        result = run_cli(["verify", "--data", Path(dataset).resolve(), "--out", Path(out).resolve(), "--params", p], cwd=tmp)
    report = Path(out) / "report.json"
    return result or (json.loads(report.read_text()) if report.is_file() else {})


def base_model(groups: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    """The model SFT and the reward model start from: `sft.model` (a hub id or path) when set,
    otherwise the tiny offline model built here (the tiny world)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = (groups.get("sft") or {}).get("model")
    if model:
        (out / "MODEL_ID").write_text(str(model) + "\n", encoding="utf-8")
        return {"model": model, "built": False}
    seed = int((groups.get("base") or {}).get("seed", 0))
    run_cli(["model", "init-tiny", "--out", out.resolve(), "--seed", seed])
    return {"model": "tiny", "built": True}


def model_ref(path: str | Path) -> str:
    """A model artifact as a `--model` argument: its directory, or the hub id it points to."""
    path = Path(path)
    pointer = path / "MODEL_ID"
    return pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else str(path.resolve())


def train(
    stage: str,
    groups: Mapping[str, Any],
    dataset: str | Path,
    model: str | Path,
    out: str | Path,
    reward_model: str | Path | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """`globe train sft|reward-model|grpo` into `out` (via the workspace PVC when on a cluster)."""
    step = stage.replace("-", "_")
    work, staged = staging_dir(step, out, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        p = _params(groups, step, tmp)
        args = ["train", stage, "--data", Path(dataset).resolve(), "--model", model_ref(model), "--out", work, "--params", p]
        if reward_model is not None:
            args += ["--reward-model", model_ref(reward_model)]
        if staged:
            args.append("--resume")
        result = run_cli(args, cwd=tmp)
    if staged:
        copy_tree(work, out)
    metrics = Path(out) / "metrics.json"
    return result or (json.loads(metrics.read_text()) if metrics.is_file() else {})


def evaluate(groups: Mapping[str, Any], model: str | Path, dataset: str | Path, out: str | Path) -> dict[str, Any]:
    bench = (groups.get("eval") or {}).get("benchmark", "geoscenes")
    with tempfile.TemporaryDirectory() as tmp:
        p = _params(groups, "evaluate", tmp)
        args = ["eval", "run", "--model", model_ref(model), "--out", Path(out).resolve(), "--benchmark", bench,
                "--data", Path(dataset).resolve(), "--params", p, "--no-progress"]
        run_cli(args, cwd=tmp)
    metrics = Path(out) / "metrics.json"
    if not metrics.is_file():
        raise StepError(f"evaluation wrote no {metrics}")
    return json.loads(metrics.read_text())


def register(groups: Mapping[str, Any], model: str | Path, evaluation: str | Path) -> dict[str, Any]:
    """Register the model with its evaluation as `challenger`, then gate-promote it to `champion`.

    Returns the registration, the promotion decision and the champion's storage location.
    """
    evaluation = Path(evaluation)
    name = (groups.get("register") or {}).get("model_name", "globe")
    with tempfile.TemporaryDirectory() as tmp:
        p = _params(groups, "register", tmp)
        args = ["register", "--model", Path(model).resolve(), "--metrics", evaluation / "metrics.json", "--params", p]
        if (evaluation / "report.html").is_file():
            args += ["--report", evaluation / "report.html"]
        registered = run_cli(args, cwd=tmp) or {}
        decision = run_cli(["promote", "--params", p], cwd=tmp) or {}
        location = run_cli(["resolve", f"models:/{name}@champion"], cwd=tmp, raw=True)
    return {"registered": registered, "decision": decision, "champion_storage_uri": location}


def publish(summary: Mapping[str, Any], metrics: Any = None, markdown: Any = None, title: str = "") -> None:
    """Show a step's summary in the KFP UI: numbers as Metrics, everything as a Markdown table."""
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if metrics is not None:
        for key, value in numbers.items():
            metrics.log_metric(key, float(value))
    if markdown is not None:
        rows = "\n".join(f"| {k} | {json.dumps(v, default=str)[:200]} |" for k, v in summary.items())
        Path(markdown.path).write_text(f"## {title}\n\n| field | value |\n|---|---|\n{rows}\n", encoding="utf-8")


def grpo_trainjob(
    groups: Mapping[str, Any],
    dataset: str | Path,
    model: str | Path,
    reward_model: str | Path,
    out: str | Path,
    *,
    run_id: str,
    namespace: str,
    image: str,
    num_nodes: int,
    gpus_per_node: int,
    gpu_resource: str,
    node_selector: Mapping[str, str],
    tolerations: list[dict[str, Any]],
    timeout_s: int,
) -> dict[str, Any]:
    """GRPO as a multi-node Kubeflow Trainer TrainJob, with its inputs and output on the PVC.

    The TrainJob's pods mount the same workspace PVC as this step (manifests/base/training-runtime.yaml),
    so inputs are copied there, the job trains into `runs/<run_id>/grpo/out` with `--resume` (a retried
    step re-attaches to the same job name or resumes from the last checkpoint), and the result is copied
    back into the step's model artifact.
    """
    from globe.k8s.trainjob import GpuSettings, TrainJobRequest, launch_trainjob

    workspace = Path(os.environ.get("GLOBE_WORKSPACE", settings.WORKSPACE_PATH))
    root = workspace / "runs" / run_id / "grpo"
    inputs = {"data": Path(dataset), "model": Path(model), "reward_model": Path(reward_model)}
    refs: dict[str, str] = {}
    for name, src in inputs.items():
        if (src / "MODEL_ID").is_file():
            refs[name] = model_ref(src)
        else:
            copy_tree(src, root / name)
            refs[name] = str(root / name)
    root.mkdir(parents=True, exist_ok=True)
    p = _params(groups, "grpo", root)
    request = TrainJobRequest(
        image=image,
        command=["torchrun", "--no-python", "globe", "train", "grpo"],
        args=["--data", refs["data"], "--model", refs["model"], "--reward-model", refs["reward_model"],
              "--out", str(root / "out"), "--params", str(p), "--resume"],
        runtime=settings.TRAINING_RUNTIME,
        num_nodes=num_nodes,
        gpu=GpuSettings(gpus_per_node=gpus_per_node, resource_name=gpu_resource, node_selector=dict(node_selector),
                        tolerations=list(tolerations), shm_size=settings.SHM_SIZE),
        env={"GLOBE_WORKSPACE": str(workspace)},
        secret_env={env: (settings.S3_SECRET, key) for key, env in settings.S3_SECRET_ENV.items()},
        workspace_pvc=settings.WORKSPACE_PVC,
        workspace_path=settings.WORKSPACE_PATH,
        active_deadline_s=timeout_s,
        name="grpo-" + run_id.replace("-", "")[:12].lower(),
    )
    outcome = launch_trainjob(request, namespace, timeout_s=timeout_s, poll_s=30)
    copy_tree(root / "out", out)
    metrics = Path(out) / "metrics.json"
    summary = json.loads(metrics.read_text()) if metrics.is_file() else {}
    return {"trainjob": outcome.name, "trainjob_seconds": round(outcome.seconds, 1), "num_nodes": num_nodes, **summary}


def deploy(storage_uri: str, namespace: str, name: str, wait_ready_s: float) -> dict[str, Any]:
    """Create or patch the InferenceService to serve the champion from its storage location."""
    from globe.k8s.deploy import deploy_inference_service, kserve_storage_uri

    uri = kserve_storage_uri(storage_uri, os.environ.get("MLFLOW_ARTIFACTS_DESTINATION"))
    outcome = deploy_inference_service(namespace, uri, name=name, wait_ready_s=wait_ready_s)
    return {"action": outcome.action, "storage_uri": outcome.storage_uri, "ready": outcome.ready, "url": outcome.url}
