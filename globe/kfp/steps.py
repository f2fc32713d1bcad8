"""What each KFP step does, as plain functions over params groups and directories.

A component (globe/kfp/components/<name>/component.py) is a few lines: it calls one function here and writes
the typed outputs KFP gave it. Each function validates the groups it was handed into `Params`
(`globe.config.params_from_groups`: a wrong field fails the step with its name) and calls the
library in this process: no subprocess, no CLI, nothing parsed from stdout. Each KFP step is its
own process (a pod on a cluster, a subprocess under kfp.local), so a trainer's memory still goes
back when the step ends.

KFP hands steps local paths for their artifacts (downloaded before, uploaded after the step), so
these functions only see directories. Training steps additionally keep their work on the shared
workspace PVC when `GLOBE_WORKSPACE` is set (cluster), so a retried step resumes from its last
checkpoint instead of starting over; the finished model is then copied into the KFP artifact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from globe.config import Params, load_params, params_from_groups
# NO_SHIFTED_SET and heldout_splits are re-exported: the held-out rule's one home is globe.data.heldout
from globe.data.heldout import NO_SHIFTED_SET, HeldoutError, heldout_splits, write_heldout, write_heldout_sets
from globe.io import atomic_write_text
from globe.kfp import settings


class StepError(RuntimeError):
    """A pipeline step cannot run on what it was given; the message says what is missing."""


# --- plumbing ------------------------------------------------------------------------------------


def params_of(groups: Mapping[str, Any]) -> Params:
    """The validated params of a step (groups it was not given keep their defaults)."""
    return params_from_groups(dict(groups), source="pipeline parameters")


def drop_none(value: Any) -> Any:
    """Remove None-valued keys at every depth: KFP parameter defaults cannot hold null, and a
    missing key validates back to the same None default."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def resolved_groups(params: Any) -> dict[str, dict[str, Any]]:
    """Params (preset applied) as JSON-able dicts per group: the pipeline's parameter defaults."""
    dumped = params.model_dump(mode="json", exclude={"presets"})
    dumped["base"]["preset"] = None
    return drop_none(dumped)


def write_params(groups: Mapping[str, Any], path: str | Path) -> Path:
    """Write groups as a params.yaml that `load_params` accepts, and validate it. Only the TrainJob
    needs one: its pods run `globe train grpo --params` on the shared PVC."""
    doc = {name: dict(value or {}) for name, value in groups.items()}
    doc.setdefault("base", {})["preset"] = None
    path = Path(path)
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
    load_params(path)  # raises ConfigError naming the file and field
    return path


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


def publish(summary: Mapping[str, Any], metrics: Any = None, markdown: Any = None, title: str = "") -> None:
    """Show a step's summary in the KFP UI: numbers as Metrics, everything as a Markdown table."""
    numbers = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if metrics is not None:
        for key, value in numbers.items():
            metrics.log_metric(key, float(value))
    if markdown is not None:
        rows = "\n".join(f"| {k} | {json.dumps(v, default=str)[:200]} |" for k, v in summary.items())
        Path(markdown.path).write_text(f"## {title}\n\n| field | value |\n|---|---|\n{rows}\n", encoding="utf-8")


# --- data ----------------------------------------------------------------------------------------


def check_sources(groups: Mapping[str, Any], num_shards: int, dvc_remote: str = "") -> dict[str, Any]:
    """Before any work: the source and benchmark specs are readable and the DVC remote's bucket is
    there; returns the import's shard indices and whether a benchmark is configured."""
    from globe.data import source

    p = params_of(groups)
    found = {"source": source.check_spec(p.source, "source")}
    if p.benchmark.format is not None:
        found["benchmark"] = source.check_spec(p.benchmark, "benchmark")
    if dvc_remote:
        check_remote(dvc_remote)
    return {"shards": source.plan_shards(p.source, num_shards), "has_benchmark": p.benchmark.format is not None, **found}


def benchmark_given(groups: Mapping[str, Any]) -> bool:
    return params_of(groups).benchmark.format is not None


def check_remote(remote: str) -> None:
    """The DVC remote's bucket exists and the credentials may use it (S3 remotes; others are local)."""
    from globe import s3
    from globe.data.source import SourceError

    if s3.is_s3(remote):
        try:
            s3.check_bucket(remote)
        except s3.S3Error as exc:
            raise SourceError(f"dvc_remote: {exc}") from exc


def import_shard(groups: Mapping[str, Any], shard: int, num_shards: int, out: str | Path) -> dict[str, Any]:
    """One shard of the source dataset: GeoScenes synthesized (one shard), or photos imported."""
    from globe.data.source import build_shard

    p = params_of(groups)
    return build_shard(p.source, p.synth, out, shard, num_shards)


def merge_imports(shard_dirs: list[str], out: str | Path) -> dict[str, Any]:
    from globe.data.source import merge_imports as merge

    return merge(shard_dirs, out)


def import_benchmark(groups: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    from globe.data.source import import_benchmark as do_import

    return do_import(params_of(groups).benchmark, out)


def version_dataset(dataset: str | Path, name: str, remote: str, dvc_file: str | Path, run_id: str = "") -> dict[str, Any]:
    """Record the dataset on the DVC remote (DVC's own add + push); the `.dvc` file goes to `dvc_file`."""
    from globe.data.versioning import version_dataset as record

    meta = {"dataset": name, **({"pipeline_run_id": run_id} if run_id else {})}
    return record(dataset, name, remote, dvc_file, meta=meta).to_dict()


def distill_shard(groups: Mapping[str, Any], dataset: str | Path, shard: int, num_shards: int, out: str | Path) -> dict[str, Any]:
    """Every `num_shards`-th record from `shard` on, through every teacher (resumable)."""
    from globe.data.distill import distill
    from globe.data.shards import shard_dataset

    cfg = params_of(groups).distill
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "shard"
        n = shard_dataset(dataset, part, shard, num_shards)
        counts = distill(part, out, cfg, progress=False)
    return {"shard": shard, "num_shards": num_shards, "records": n, **dict(counts)}


def merge_distilled(shard_dirs: list[str], out: str | Path) -> dict[str, Any]:
    from globe.data.shards import merge_datasets

    return {"shards": len(shard_dirs), "records": merge_datasets(shard_dirs, out)}


def verify(groups: Mapping[str, Any], dataset: str | Path, out: str | Path) -> dict[str, Any]:
    from globe.data.verify import verify as run_filters

    return run_filters(dataset, out, params_of(groups).verify)


# --- models --------------------------------------------------------------------------------------


def base_model(groups: Mapping[str, Any], out: str | Path) -> dict[str, Any]:
    """The model SFT and the reward model start from: `sft.model` (a hub id or path) when set,
    otherwise the tiny offline model built here (the tiny world)."""
    from globe.tiny.model import build_tiny

    p = params_of(groups)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if p.sft.model:
        (out / "MODEL_ID").write_text(str(p.sft.model) + "\n", encoding="utf-8")
        return {"model": p.sft.model, "built": False}
    build_tiny(out, seed=p.base.seed)
    return {"model": "tiny", "built": True}


def model_ref(path: str | Path) -> str:
    """A model artifact as a model argument: its directory, or the hub id it points to."""
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
    """SFT, the reward model or GRPO into `out` (via the workspace PVC when on a cluster)."""
    from globe.train.stages import UnknownStage, stage_name, train_stage

    p = params_of(groups)
    try:
        step = stage_name(stage)
    except UnknownStage as exc:
        raise StepError(str(exc)) from exc
    work, staged = staging_dir(step, out, run_id)
    judge = model_ref(reward_model) if step == "grpo" and reward_model is not None else None
    result = train_stage(step, p, Path(dataset), work, model=model_ref(model), reward_model=judge, resume=staged)
    if staged:
        copy_tree(work, out)
    return dict(result or {})


# --- evaluation and registry ---------------------------------------------------------------------


def lineage(groups: Mapping[str, Any], dvc_files: Mapping[str, str | Path], run_id: str, images: Mapping[str, str]) -> dict[str, str]:
    """The run's lineage (globe.lineage) from the datasets' `.dvc` files, the images and the params."""
    from globe.data.versioning import read_dvc_file
    from globe.lineage import build_lineage

    datasets = {name: read_dvc_file(path) for name, path in dvc_files.items()}
    evaluated = "heldout" if "heldout" in datasets else "verified"  # the gate's data: the held-out set (steps.heldout)
    return build_lineage(datasets, params=resolved_groups(params_of(groups)), images=images, pipeline_run_id=run_id,
                         evaluated=evaluated)


def heldout(groups: Mapping[str, Any], dataset: str | Path, out: str | Path, shifted: bool = False) -> dict[str, Any]:
    """One held-out set, as `globe data heldout` writes it (`globe.data.heldout.write_heldout`):
    GeoScenes of an unseen seed in the tiny world, an imported source's test split (`dataset`) as
    imported, or, `shifted` with an imported source, the `NO_SHIFTED_SET` marker."""
    try:
        return write_heldout(params_of(groups), out, dataset, shifted=shifted)
    except HeldoutError as exc:
        raise StepError(f"heldout: {exc}") from exc


def heldout_sets(groups: Mapping[str, Any], dataset: str | Path, in_domain: str | Path, shifted: str | Path) -> dict[str, Any]:
    """Both held-out sets of dvc.yaml's heldout stage (`data/heldout`, `data/shifted`) in one step,
    through the same `globe.data.heldout.write_heldout_sets`. A KFP step has a fixed set of outputs,
    so an imported source, which has no shifted rendering (`heldout_splits`), still gets a `shifted`
    artifact: a directory with only the marker saying why. `evaluate` decides the splits from the
    params (`heldout_splits`), never from what a directory holds."""
    try:
        return write_heldout_sets(params_of(groups), dataset, in_domain, shifted)
    except HeldoutError as exc:
        raise StepError(f"heldout: {exc}") from exc


def evaluate(groups: Mapping[str, Any], models: Mapping[str, str | Path], splits: Mapping[str, str | Path],
             out: str | Path, compare: str = "", lineage: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The main evaluation, as `dvc repro`'s evaluate stage runs it (`globe eval models`): every
    model (`models`, named as `globe.evaluate.suite.MODELS`) on the held-out splits of these params
    (`heldout_splits`; `splits` maps each to its dataset), the paired comparison `compare`
    (CANDIDATE:BASELINE), through the same `evaluate_suite`, so `out` has the layout of
    `results/evaluate/` (metrics.json, comparisons.json, summary.md, report.html, `<split>/<model>/`).
    A split the source does not have (an imported source's `shifted` marker artifact) is skipped
    with a note, as `globe eval models` skips it (`globe.evaluate.suite.select_splits`).
    Returns the suite's metrics.json."""
    from globe.evaluate.suite import Split, evaluate_suite, parse_pairs, select_splits
    from globe.lineage import report_rows

    p = params_of(groups)
    wanted = heldout_splits(p)
    missing = [name for name in wanted if name not in splits]
    if missing:
        raise StepError(f"evaluate: no dataset for the held-out split(s) {', '.join(missing)} (source.format is "
                        f"{p.source.format}, which is scored on {', '.join(wanted)})")
    given = [Split(name, Path(splits[name])) for name in wanted]
    given += [Split(name, Path(path)) for name, path in splits.items() if name not in wanted]
    try:
        pairs = parse_pairs([compare] if compare else [], list(models))
        scored, skipped = select_splits(p, given)
    except ValueError as exc:
        raise StepError(f"evaluate: {exc}") from exc
    for name, why in skipped.items():
        print(f"note: split {name} ({splits[name]}) not scored: {why}", flush=True)
    refs = {name: model_ref(path) for name, path in models.items()}
    return evaluate_suite(p, refs, scored, Path(out), pairs, progress=False, lineage=report_rows(lineage or {}),
                          skipped=skipped)


def evaluate_benchmark(groups: Mapping[str, Any], model: str | Path, dataset: str | Path, out: str | Path,
                       lineage: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The policy on the optional imported benchmark's test split (no gate, attached to the
    registered version): metrics.json, plots and report.html, which shows the lineage."""
    from globe.evaluate.benchmarks import load_geoscenes
    from globe.evaluate.runner import run_benchmark
    from globe.lineage import report_rows

    p = params_of(groups)
    samples = load_geoscenes(Path(dataset), limit=p.eval.limit)
    return run_benchmark(p, model_ref(model), samples, Path(out), benchmark=f"{p.benchmark.format} (benchmark)",
                         progress=False, lineage=report_rows(lineage or {}))


def _metrics_of(evaluation: str | Path) -> dict[str, Any]:
    path = Path(evaluation) / "metrics.json"
    if not path.is_file():
        raise StepError(f"{path}: the evaluation wrote no metrics.json")
    return json.loads(path.read_text(encoding="utf-8"))


def gated_run(evaluation: str | Path, gated: str) -> Path:
    """The run of the suite in `evaluation` that promotion gates on: `gated` is SPLIT/MODEL
    (`globe.evaluate.suite.GATED`, as dvc.yaml's register stage reads `results/evaluate/in_domain/grpo`)."""
    from globe.evaluate.suite import run_dir

    split, sep, model = gated.partition("/")
    if not sep or not split or not model or "/" in model:
        raise StepError(f"gated run {gated!r}: expected SPLIT/MODEL, e.g. in_domain/grpo")
    run = run_dir(evaluation, split, model)
    if not (run / "metrics.json").is_file():
        raise StepError(f"{run}: the evaluation has no run {gated} (no metrics.json) to gate promotion on")
    return run


def register(groups: Mapping[str, Any], model: str | Path, evaluation: str | Path,
             lineage: Mapping[str, str] | None = None, gated: str | None = None) -> dict[str, Any]:
    """Register the model with its evaluation and lineage as `challenger`, then gate-promote it to
    `champion`. As dvc.yaml's register stage: the metrics and report are those of the suite's
    `gated` run (`gated_run`; default `globe.evaluate.suite.GATED`), read by the same
    `read_gate_metrics` as `globe register`. Returns the registration, the promotion decision and
    the champion's storage location."""
    from dataclasses import asdict

    from globe.evaluate.suite import GATED

    from globe.mlflow_registry import promote, read_gate_metrics, storage_uri
    from globe.mlflow_registry import register as do_register

    p = params_of(groups)
    cfg = p.register
    lineage = dict(lineage or {})
    params = json.loads(lineage["params"]) if "params" in lineage else p.model_dump(mode="json", exclude={"presets"})
    run = gated_run(evaluation, gated or "/".join(GATED))
    report = run / "report.html"
    registered = do_register(model, cfg, metrics=read_gate_metrics(run / "metrics.json", cfg.metric), params=params,
                             report=report if report.is_file() else None, lineage=lineage)
    decision = promote(cfg)
    # no champion yet when the first model does not clear the gate (register.min_value): then there
    # is nothing to serve, and deploy says so instead of this step failing the run
    has_champion = decision.promoted or decision.champion_version is not None
    location = storage_uri(f"models:/{cfg.model_name}@{cfg.champion_alias}", cfg.tracking_uri) if has_champion else ""
    return {"registered": asdict(registered), "decision": asdict(decision), "champion_storage_uri": location}


def attach_benchmark(groups: Mapping[str, Any], version: str, evaluation: str | Path, dvc_file: str | Path) -> dict[str, Any]:
    """Add the benchmark evaluation and the benchmark dataset's DVC hash to the registered version."""
    from globe.data.versioning import read_dvc_file
    from globe.mlflow_registry import attach_evaluation

    p = params_of(groups)
    data = read_dvc_file(dvc_file)
    name = str(p.benchmark.format)
    tags = {"benchmark_data.md5": str(data["md5"]), "benchmark_data": f"{name} (imported, split=test)",
            "data.benchmark.md5": str(data["md5"]), "data.benchmark.nfiles": str(data.get("nfiles", ""))}
    return attach_evaluation(p.register.model_name, version, name, _metrics_of(evaluation), lineage=tags,
                             tracking_uri=p.register.tracking_uri)


# --- cluster-only steps --------------------------------------------------------------------------


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
    back into the step's model artifact. The pods run `globe train grpo` under torchrun, so this is the
    one step that writes a params.yaml: onto the PVC, for them.
    """
    from globe.k8s.trainjob import GpuSettings, launch_trainjob

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
    request = grpo_trainjob_request(
        groups, root, refs, image=image, num_nodes=num_nodes,
        gpu=GpuSettings(gpus_per_node=gpus_per_node, resource_name=gpu_resource, node_selector=dict(node_selector),
                        tolerations=list(tolerations), shm_size=settings.SHM_SIZE),
        env={"GLOBE_WORKSPACE": str(workspace)},
        secret_env={env: (settings.S3_SECRET, key) for key, env in settings.S3_SECRET_ENV.items()},
        active_deadline_s=timeout_s,
        name="grpo-" + run_id.replace("-", "")[:12].lower(),
    )
    outcome = launch_trainjob(request, namespace, timeout_s=timeout_s, poll_s=30)
    copy_tree(root / "out", out)
    metrics = Path(out) / "metrics.json"
    summary = json.loads(metrics.read_text()) if metrics.is_file() else {}
    return {"trainjob": outcome.name, "trainjob_seconds": round(outcome.seconds, 1), "num_nodes": num_nodes, **summary}


def grpo_trainjob_request(
    groups: Mapping[str, Any],
    root: str | Path,
    inputs: Mapping[str, str],
    *,
    image: str,
    num_nodes: int,
    gpu: Any,
    cpu_per_node: str | None = None,
    env: Mapping[str, str] | None = None,
    secret_env: Mapping[str, tuple[str, str]] | None = None,
    active_deadline_s: int | None = None,
    name: str | None = None,
):
    """The GRPO TrainJob for inputs on the workspace PVC (`inputs`: data, model, reward_model) and
    its params.yaml, written to ROOT: the pods run `torchrun --no-python globe train grpo` with it.

    The world size is the launch's (nodes x processes per node); a `grpo.num_processes` in the groups
    that disagrees with nodes x GPUs per node is refused here, before a GPU is asked for (the pods
    would refuse it too, after scheduling).
    """
    from globe.k8s.trainjob import TrainJobRequest

    grpo = dict(groups.get("grpo") or {})
    planned = grpo.get("num_processes")
    if planned and gpu.gpus_per_node and planned != num_nodes * gpu.gpus_per_node:
        raise StepError(
            f"grpo.num_processes is {planned} but the TrainJob launches {num_nodes} node(s) x {gpu.gpus_per_node} "
            f"GPU(s) = {num_nodes * gpu.gpus_per_node} processes: the batch arithmetic was planned for {planned}; "
            f"set grpo_num_nodes or grpo.num_processes to agree"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    p = write_params({g: groups.get(g) or {} for g in settings.TRAINJOB_GROUPS}, root / "params.yaml")
    return TrainJobRequest(
        image=image,
        command=["torchrun", "--no-python", "globe", "train", "grpo"],
        args=["--data", inputs["data"], "--model", inputs["model"], "--reward-model", inputs["reward_model"],
              "--out", str(root / "out"), "--params", str(p), "--resume"],
        runtime=settings.TRAINING_RUNTIME,
        num_nodes=num_nodes,
        gpu=gpu,
        cpu_per_node=cpu_per_node,
        env=dict(env or {}),
        secret_env=dict(secret_env or {}),
        workspace_pvc=settings.WORKSPACE_PVC,
        workspace_path=settings.WORKSPACE_PATH,
        active_deadline_s=active_deadline_s,
        name=name,
    )


def deploy(storage_uri: str, namespace: str, name: str, wait_ready_s: float) -> dict[str, Any]:
    """Create or patch the InferenceService to serve the champion from its storage location."""
    from globe.k8s.deploy import deploy_inference_service, kserve_storage_uri

    if not storage_uri:
        raise StepError("deploy: there is no champion to serve (no model has cleared the promotion gate, "
                        "register.min_value / register.min_improvement); see the register step's summary")
    uri = kserve_storage_uri(storage_uri, os.environ.get("MLFLOW_ARTIFACTS_DESTINATION"))
    outcome = deploy_inference_service(namespace, uri, name=name, wait_ready_s=wait_ready_s)
    return {"action": outcome.action, "storage_uri": outcome.storage_uri, "ready": outcome.ready, "url": outcome.url}
