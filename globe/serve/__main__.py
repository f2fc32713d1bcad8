"""KServe container entrypoint: `python -m globe.serve --model /mnt/models [--http_port 8080] ...`.

Takes KServe's own argparse parent parser (so `--http_port`, `--grpc_port`, `--enable_grpc`,
`--model_name`, ... behave as in every KServe runtime), adds the globe options and calls the one
launcher, `globe.serve.launch.launch` (the one `globe serve` calls). Inside a pod pass
`--host 0.0.0.0`; the default is loopback so that a local run is not exposed by accident. gRPC is
off unless `--enable_grpc true` (KServe's default is on); when on it is guarded like REST (see
globe/serve/server.py). A server that cannot start ends with one line, exit 2.
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from kserve import model_server

    from globe.serve import launch

    parser = argparse.ArgumentParser(
        prog="python -m globe.serve", parents=[model_server.parser], description="GLOBE geo-reasoning predictor (KServe)"
    )
    parser.add_argument("--model", default=None, help="checkpoint dir, s3:// URI or models:/NAME@ALIAS (default: serve.model)")
    parser.add_argument("--host", default=launch.HOST, help="REST bind address; use 0.0.0.0 inside a pod")
    parser.add_argument("--params", default="params.yaml", help="params.yaml to read (defaults apply when absent)")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="override KEY=VALUE, repeatable")
    parser.set_defaults(model_name=None, enable_grpc=False, http_port=launch.HTTP_PORT, grpc_port=launch.GRPC_PORT)
    args = parser.parse_args(argv)
    try:
        launch.launch(args.model, params=args.params, preset=args.preset, overrides=args.overrides, host=args.host,
                      http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=args.enable_grpc, name=args.model_name)  # fmt: skip
    except launch.StartupError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
