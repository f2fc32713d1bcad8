"""Starting real servers on loopback from tests: a free port, and waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

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
