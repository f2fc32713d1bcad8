"""`globe serve`, `globe predict`, `globe register`, `globe promote`, `globe resolve`.

Thin wrappers: the predictor lives in globe.serve, the registry in globe.mlflow_registry. kserve, torch
and mlflow are imported inside the commands so that `globe --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from globe.commands.common import JsonOutOpt, ParamsOpt, PresetOpt, SetOpt, fail, load, load_resolved, note_default_params, print_json
from globe.serve import launch

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="checkpoint dir, s3:// URI or models:/NAME@ALIAS (default: serve.model)"),
]
TrackingOpt = Annotated[str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default: register.tracking_uri or $MLFLOW_TRACKING_URI)")]


def registry_unreachable(exc: Exception) -> None:
    """An MLflow or connection error as one redacted line (exit 2); anything else is re-raised."""
    from globe.redact import short

    if type(exc).__module__.split(".")[0] in ("mlflow", "requests", "urllib3", "botocore", "boto3"):
        fail(f"MLflow registry: {short(getattr(exc, 'message', None) or str(exc), 500)}")
    raise exc


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("serve")(serve)
    app.command("predict")(predict)
    app.command("register")(register_model)
    app.command("promote")(promote)
    app.command("resolve")(resolve)


def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="bind address; 0.0.0.0 exposes the server on every interface")] = launch.HOST,
    port: Annotated[int, typer.Option(help="HTTP port")] = launch.HTTP_PORT,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (only with --grpc)")] = launch.GRPC_PORT,
    grpc: Annotated[bool, typer.Option("--grpc/--no-grpc", help="also serve V2 over gRPC (same host and guards as REST)")] = False,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Serve the geo-reasoning predictor with KServe (V1 + V2 REST, /metrics, health)."""
    note_default_params(params)
    try:  # the one launcher, shared with `python -m globe.serve` (the KServe pod)
        launch.launch(model, params=params, preset=preset, overrides=set_, host=host, http_port=port, grpc_port=grpc_port, enable_grpc=grpc)
    except launch.StartupError as exc:
        fail(str(exc))


def predict(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    model: ModelOpt = None,
    samples: Annotated[int, typer.Option("--samples", help="reasonings per image; N > 1 answers with their consensus, "
                                         "a confidence and the candidates (at most serve.max_samples)")] = 1,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Predict local image files without a server; prints the same JSON the server returns."""
    cfg = load(params, preset, set_).serve
    uri = model or cfg.model
    if not uri:
        fail("--model is required (or set serve.model)")
    from globe.serve import import_kserve

    import_kserve()
    from globe.serve.files import predict_files
    from globe.serve.settings import explicit_serve

    try:
        print_json(predict_files(images, uri, cfg, samples=samples, explicit=explicit_serve(set_),
                                 settings_source=launch.settings_source(params)))
    except Exception as exc:  # bad files, bad model URIs, an unreachable engine: one line, exit 2
        from globe.consensus import CalibrationError
        from globe.redact import short
        from globe.serve.inputs import BadInput
        from globe.serve.model_source import ModelSourceError
        from globe.serve.predictor import GenerationFailed

        if isinstance(exc, (BadInput, ModelSourceError, FileNotFoundError, GenerationFailed, CalibrationError)):
            fail(short(str(exc), 500))
        raise


def register_model(
    model: Annotated[Path, typer.Option("--model", help="Hugging Face checkpoint directory to register")],
    metrics: Annotated[Path | None, typer.Option(help="evaluation metrics.json (from globe eval)")] = None,
    report: Annotated[Path | None, typer.Option(help="evaluation report file or directory, logged as artifacts")] = None,
    tracking_uri: TrackingOpt = None,
    out: JsonOutOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Log the checkpoint to MLflow with params, metrics and report; register it as `challenger`."""
    resolved = load_resolved(params, preset, set_)
    all_params = resolved.params
    from globe.config import resolved_document
    from globe.mlflow_registry import RegistryError
    from globe.mlflow_registry import register as do_register

    metric_values = None
    if metrics is not None:
        from globe.mlflow_registry import read_gate_metrics

        try:
            metric_values = read_gate_metrics(metrics, all_params.register.metric)
        except RegistryError as exc:
            fail(str(exc))
    try:
        result = do_register(
            model,
            all_params.register,
            metrics=metric_values,
            params=all_params.model_dump(exclude={"presets"}),
            resolved_config=resolved_document(resolved),
            report=report,
            tracking_uri=tracking_uri,
        )
    except RegistryError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - mlflow/requests: the registry is unreachable or refused
        registry_unreachable(exc)
    from dataclasses import asdict

    print_json(asdict(result), out)


def promote(
    tracking_uri: TrackingOpt = None,
    out: JsonOutOpt = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Move `champion` to the challenger only if it beats the champion on register.metric."""
    cfg = load(params, preset, set_).register
    from globe.mlflow_registry import RegistryError, decision_dict
    from globe.mlflow_registry import promote as do_promote

    try:
        print_json(decision_dict(do_promote(cfg, tracking_uri=tracking_uri)), out)
    except RegistryError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - mlflow/requests: the registry is unreachable or refused
        registry_unreachable(exc)


def resolve(
    uri: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION or models:/<model_id>")],
    tracking_uri: TrackingOpt = None,
    lineage: Annotated[bool, typer.Option("--lineage", help="print the version's lineage as JSON: dataset DVC hashes, images, pipeline run, params")] = False,
) -> None:
    """Print where a registered model's files are (use it as a KServe/vLLM storageUri)."""
    from globe.mlflow_registry import RegistryError, storage_uri
    from globe.mlflow_registry import lineage as lineage_of

    try:
        if lineage:
            print_json(lineage_of(uri, tracking_uri))
        else:
            typer.echo(storage_uri(uri, tracking_uri))
    except RegistryError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - mlflow/requests: the registry is unreachable or refused
        registry_unreachable(exc)
