"""Starting real servers on loopback from tests: a free port, waiting until one answers, the globe
predictor (`python -m globe.serve`, the container entrypoint) and an image host for `image_url`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float = 180, what: str = "server") -> None:
    """Poll `url` until it answers 200; fail the test with the server's log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not become ready at {url}:\n{Path(log_path).read_text(errors='replace')[-4000:]}")
        time.sleep(0.3)


def start_predictor(model: str, log_path: Path, overrides: dict[str, Any], grpc_port: int | None = None,
                    env: dict[str, str] | None = None) -> Any:
    """`python -m globe.serve` on a free loopback port with `--set KEY=VALUE` each (gRPC only when a
    port is given), the built-in defaults otherwise; returns once it is ready. `stop()` it."""
    port = free_port()
    cmd = [sys.executable, "-m", "globe.serve", "--model", model, "--http_port", str(port), "--params", "no-such-params.yaml"]
    if grpc_port is not None:
        cmd += ["--enable_grpc", "true", "--grpc_port", str(grpc_port)]
    for key, value in overrides.items():
        cmd += ["--set", f"{key}={value}"]
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", **(env or {})})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{url}/v2/models/globe/ready", proc, log_path, what="globe predictor")
    return type("Server", (), {"url": url, "port": port, "grpc_port": grpc_port, "proc": proc, "log": log_path, "_log": log})


def stop(server: Any) -> None:
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait(timeout=10)
    server._log.close()


class ImageHost:
    """A loopback HTTP server for `image_url` tests that records every raw request path it receives.

    Every path serves a small PNG, except `/ok/redirect` (a 302 to `/notok/good.png`), `/ok/slow.png`
    (one byte every 0.3 s: each read is quick, the whole is not) and `/ok/big.png` (`big`, if given).
    """

    def __init__(self, big: bytes | None = None):
        from _serve_helpers import png_bytes

        self.paths: list[str] = []
        host, small = self, png_bytes(50, 40, (200, 30, 30))

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                host.paths.append(self.path)
                if self.path == "/ok/redirect":
                    self.send_response(302)
                    self.send_header("location", "/notok/good.png")
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                if self.path == "/ok/slow.png":
                    self.send_response(200)
                    self.send_header("content-length", "100000")
                    self.end_headers()
                    try:
                        for _ in range(200):
                            self.wfile.write(b"\x89")
                            self.wfile.flush()
                            time.sleep(0.3)
                    except OSError:
                        pass
                    return
                body = big if big is not None and self.path == "/ok/big.png" else small
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
