"""Shared by the serving benchmarks: the model to serve, a real `python -m globe.serve`, the machine's load."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def model_or_tiny(model: Path | None, tmp: str | Path) -> Path:
    """`model`, or the tiny offline model built into `tmp`."""
    if model is not None:
        return model
    from globe.tiny.model import build_tiny

    return build_tiny(Path(tmp) / "tiny", seed=0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_predictor(model_dir: Path, log: Path, settings: dict[str, object]) -> tuple[subprocess.Popen, str]:
    """`python -m globe.serve` on a free loopback port with `--set serve.KEY=VALUE` each; waits until ready."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "globe.serve", "--model", str(model_dir), "--http_port", str(port),
           "--enable_latency_logging", "false", "--params", "no-such-params.yaml"]  # fmt: skip
    for key, value in settings.items():
        cmd += ["--set", f"serve.{key}={value}"]
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/models/globe/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server not ready in time:\n{log.read_text(errors='replace')[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def load_line() -> str:
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min), {five:.2f} (5 min)"


def rss(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of process `pid` in bytes, from /proc/PID/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def finish(missed: list[str], met: str = "all targets met") -> None:
    """Print the verdict; exit 1 when a target was missed (the benchmarks' contract)."""
    if missed:
        print("MISSED: " + "; ".join(missed))
        sys.exit(1)
    print(met)
