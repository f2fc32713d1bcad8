"""The one server launcher: `globe serve` and `python -m globe.serve` (the KServe pod) both call `launch`.

Both front-ends only parse their arguments (typer; KServe's argparse parent parser) and call
`launch`, so they read the config, resolve the model, check the ports, load and serve the same
way, stop with the same grace period and fail with the same one line: everything that can go wrong
before the server is up (a params file or `--set` that does not validate, no model, a model that
cannot be resolved or loaded, a port in use, model management without its token) is raised as one
`StartupError` whose message is redacted (one line, except a config error's list of fields); each
front-end prints it as `error: ...` and exits 2.
"""

from __future__ import annotations

from pathlib import Path

HTTP_PORT = 8080  # KServe's defaults, the ServingRuntime's containerPort and the serve image's EXPOSE
GRPC_PORT = 8081
GRACE_PERIOD_S = 30  # SIGTERM: in-flight requests get this long to finish (REST and gRPC)
HOST = "127.0.0.1"  # loopback unless asked: a local run is not exposed by accident; a pod passes 0.0.0.0


class StartupError(Exception):
    """The server did not start; the message is one redacted line."""


def settings_source(params: str | Path) -> str:
    """What the serve settings come from when the model carries none (globe.serve.settings)."""
    return f"{params} (serve group)" if Path(params).is_file() else "the built-in defaults (no params file)"


def launch(
    model: str | None = None,
    *,
    params: str | Path = "params.yaml",
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] | None = None,
    host: str = HOST,
    http_port: int = HTTP_PORT,
    grpc_port: int = GRPC_PORT,
    enable_grpc: bool = False,
    name: str | None = None,
) -> None:
    """Serve the geo-reasoning predictor until SIGTERM/SIGINT; `StartupError` when it cannot start.

    `model` is a checkpoint dir, an s3:// URI or models:/NAME@ALIAS (default: serve.model);
    `overrides` are the `--set KEY=VALUE` strings (their serve.* values win over a registered
    model's own serving settings, globe.serve.settings).
    """
    from globe.config import ConfigError, load_params
    from globe.redact import redact, short
    from globe.serve import import_kserve

    overrides = list(overrides or [])
    try:
        cfg = load_params(params, preset=preset, overrides=overrides).serve
    except ConfigError as exc:  # names the file and the field, as every command's config error does
        raise StartupError(redact(str(exc))) from None
    uri = model or cfg.model
    if not uri:
        raise StartupError("--model is required (or set serve.model)")
    import_kserve()
    from globe.serve.model import MODEL_NAME, GlobeModel
    from globe.serve.model_source import ModelSourceError
    from globe.serve.server import run_server
    from globe.serve.settings import explicit_serve

    try:
        served = GlobeModel(uri, cfg, name=name or MODEL_NAME, explicit=explicit_serve(overrides),
                            settings_source=settings_source(params))  # fmt: skip
        run_server(served, host=host, http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc,
                   grace_period=GRACE_PERIOD_S)  # fmt: skip
    except (ModelSourceError, ValueError) as exc:  # short() redacts credentials in URLs too
        raise StartupError(short(str(exc), 500)) from None
