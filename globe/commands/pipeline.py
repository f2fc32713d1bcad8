"""`globe pipeline compile | run-local | submit`: the KFP pipeline (pipelines/globe_pipeline.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from globe.commands.common import ParamsOpt, PresetOpt, SetOpt, fail, load, print_json

pipeline_app = typer.Typer(help="KFP pipeline: compile it, run it locally (kfp.local), submit it to Kubeflow.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(pipeline_app, name="pipeline")


@pipeline_app.command("compile")
def compile_cmd(
    out: Annotated[Path, typer.Option("--out", help="pipeline YAML to write (KFP IR)")],
    single_node_grpo: Annotated[bool, typer.Option("--single-node-grpo", help="GRPO in a step pod instead of a TrainJob")] = False,
    registry: Annotated[str | None, typer.Option("--registry", help="image registry the steps pull globe-cpu and "
                                                 "globe-train from (default: ghcr.io/globe-platform)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Compile the pipeline with params.yaml's groups (preset applied) as parameter defaults."""
    cfg = load(params, preset, set_)
    from globe.kfp.build import PipelineError, compile_pipeline

    try:
        path = compile_pipeline(cfg, out, multi_node_grpo=not single_node_grpo, registry=registry)
    except PipelineError as exc:
        fail(str(exc))
    print_json({"out": str(path), "bytes": path.stat().st_size})


ArgOpt = Annotated[list[str] | None, typer.Option("--arg", help="pipeline argument NAME=VALUE (YAML value); repeatable")]


def _arguments(items: list[str] | None) -> dict:
    import yaml

    arguments = {}
    for item in items or []:
        if "=" not in item:
            fail(f"--arg {item!r}: expected NAME=VALUE, e.g. gpus_per_node=8")
        key, raw = item.split("=", 1)
        arguments[key.strip()] = yaml.safe_load(raw)
    return arguments


@pipeline_app.command("run-local")
def run_local_cmd(
    workdir: Annotated[Path, typer.Option("--workdir", help="where artifacts (kfp/), the MLflow store and the DVC remote go")] = Path("results/pipeline"),
    shards: Annotated[int, typer.Option("--shards", min=1, help="import and distillation shards (ParallelFor)")] = 2,
    arg: ArgOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run the whole pipeline here with kfp.local (no Kubernetes: no TrainJob, no deploy).

    The photos come from params' `source:` group (e.g. `--set source.format=im2gps3k --set
    source.csv=s3://b/x.csv --set source.images=s3://b/images/`); `--arg dvc_remote=s3://b/dvc`
    versions the datasets there instead of WORKDIR/dvc-remote."""
    cfg = load(params, preset, set_)
    from globe.kfp.build import PipelineError
    from globe.kfp.local import run_local

    try:
        print_json(run_local(cfg, workdir, num_shards=shards, arguments=_arguments(arg)))
    except PipelineError as exc:
        fail(str(exc))


@pipeline_app.command("submit")
def submit_cmd(
    host: Annotated[str, typer.Option("--host", help="KFP API endpoint, e.g. http://localhost:8080 (port-forwarded ml-pipeline-ui)")],
    arg: ArgOpt = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment")] = "globe",
    run_name: Annotated[str | None, typer.Option(help="run name (default: KFP's)")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow profile namespace (multi-user KFP)")] = None,
    service_account: Annotated[str, typer.Option(help="service account the run's pods use")] = "globe-pipeline",
    token_env: Annotated[str | None, typer.Option(help="environment variable holding a bearer token for the KFP API")] = None,
    registry: Annotated[str | None, typer.Option("--registry", help="image registry of globe-cpu and globe-train "
                                                 "(default: ghcr.io/globe-platform)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Compile with these params and start a run on a Kubeflow Pipelines backend."""
    import os

    cfg = load(params, preset, set_)
    from globe.kfp.build import PipelineError
    from globe.kfp.submit import submit

    arguments = _arguments(arg)
    token = None
    if token_env:
        token = os.environ.get(token_env) or fail(f"--token-env {token_env}: the variable is not set")
    try:
        print_json(submit(cfg, host, arguments=arguments, experiment=experiment, run_name=run_name,
                          namespace=namespace, service_account=service_account, existing_token=token,
                          registry=registry))
    except PipelineError as exc:
        fail(str(exc))


@pipeline_app.command("check-manifests")
def check_manifests_cmd(
    crds: Annotated[Path | None, typer.Option("--crds", envvar="GLOBE_SHARED_CRDS",
                                              help="directory of CRD YAMLs (KServe, Kubeflow Trainer); e.g. ../shared/k8s-crds")] = None,
    manifests: Annotated[Path, typer.Option("--manifests", help="the manifests/ directory")] = Path("manifests"),
) -> None:
    """Build every overlay with `kubectl kustomize` and validate it offline (strict core + CRD schemas)."""
    from globe.k8s.manifests import ManifestError, kustomize_build, load_yaml_documents, secret_leaks, validate_documents

    if crds is None:
        fail("--crds is required: the directory of the KServe and Kubeflow Trainer CRD YAMLs the manifests are "
             "validated against (or $GLOBE_SHARED_CRDS), e.g. --crds ../shared/k8s-crds")
    if not crds.is_dir():
        fail(f"--crds {crds}: not a directory of CRD YAML files")
    report = {}
    try:
        for overlay in sorted(p for p in (manifests / "overlays").iterdir() if p.is_dir()):
            docs = kustomize_build(overlay)
            leaks = secret_leaks(docs)
            if leaks:
                fail(f"{overlay}: credentials written down: {leaks}")
            report[overlay.name] = {"objects": len(docs), **validate_documents(docs, crds)}
        for template in sorted((manifests / "templates").glob("*.yaml")):
            report[f"templates/{template.name}"] = validate_documents(load_yaml_documents(template), crds)
    except (ManifestError, OSError) as exc:
        fail(str(exc))
    print_json(report)
