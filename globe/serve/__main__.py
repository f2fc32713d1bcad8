"""KServe container entrypoint: `python -m globe.serve --model /mnt/models [--http_port 8080] ...`.

Takes KServe's own argparse parent parser (so `--http_port`, `--grpc_port`, `--enable_grpc`,
`--model_name`, ... behave as in every KServe runtime) and adds the globe options. Inside a pod
pass `--host 0.0.0.0`; the default is loopback so that a local run is not exposed by accident.
gRPC is off unless `--enable_grpc true` (KServe's default is on); when on it is guarded like REST
(see globe/serve/server.py). A model that cannot be resolved or loaded ends with one line, exit 2.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from kserve import model_server

    from globe.config import load_params
    from globe.serve.model import GlobeModel
    from globe.serve.server import run_server

    parser = argparse.ArgumentParser(
        prog="python -m globe.serve", parents=[model_server.parser], description="GLOBE geo-reasoning predictor (KServe)"
    )
    parser.add_argument("--model", default=None, help="checkpoint dir, s3:// URI or models:/NAME@ALIAS (default: serve.model)")
    parser.add_argument("--host", default="127.0.0.1", help="REST bind address; use 0.0.0.0 inside a pod")
    parser.add_argument("--params", default="params.yaml", help="params.yaml to read (defaults apply when absent)")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override KEY=VALUE, repeatable")
    parser.set_defaults(model_name="globe", enable_grpc=False)
    args = parser.parse_args(argv)

    params = load_params(args.params, preset=args.preset, overrides=args.overrides)
    from pathlib import Path

    from globe.serve.settings import explicit_serve

    source = f"{args.params} (serve group)" if Path(args.params).is_file() else "the built-in defaults (no params file)"
    model_uri = args.model or params.serve.model
    if not model_uri:
        parser.error("--model is required (or set serve.model in params.yaml)")
    from globe.redact import redact
    from globe.serve.model_source import ModelSourceError

    model = GlobeModel(model_uri, params.serve, name=args.model_name, explicit=explicit_serve(args.overrides),
                       settings_source=source)
    try:
        run_server(
            model,
            host=args.host,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            enable_grpc=args.enable_grpc,
            grace_period=30,
        )
    except (ModelSourceError, ValueError) as exc:
        parser.exit(2, f"error: {redact(str(exc))}\n")


if __name__ == "__main__":
    main()
