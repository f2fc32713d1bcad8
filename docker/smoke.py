"""Smoke tests that run *inside* a built image: `scripts/images.sh smoke NAME` mounts this directory
at /smoke and runs `python /smoke/smoke.py NAME` as UID 1000, with nothing but loopback.

The static checks (tests/test_docker.py) cannot tell whether the install works, whether `globe`
starts as the non-root user, whether that user can write its workspace, or whether the predictor
answers from inside the image. These do, with the image's own interpreter and entrypoints:

- every image: runs as UID 1000 with a writable HOME; `globe --help` where globe is installed;
- cpu: one tiny-world stage (`globe data synth`) writing into /workspace (the pipeline's PVC path);
- serve: `python -m globe.serve` (the ServingRuntime's command) on loopback with the tiny model
  answers one V1 request, and the training-only stacks are absent;
- mlflow: `mlflow server` answers /health;
- train: torch, trl and deepspeed import, and the 8-GPU GRPO preset passes `--dry-run`.

Standard library only (the mlflow image has no globe). Any failure exits non-zero with a message.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARAMS = HERE / "params.yaml"  # the repository's params.yaml, mounted next to this file
UID = 1000
STARTUP_TIMEOUT_S = 600  # a loaded 2-core CI box imports torch + kserve slowly


class SmokeFailure(Exception):
    pass


def check(ok: bool, message: str) -> None:
    if not ok:
        raise SmokeFailure(message)


def run(*cmd: str, cwd: str | Path | None = None) -> str:
    """Run a command, echo it, and return its stdout; a non-zero exit is a failure with its output."""
    print("$", " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SmokeFailure(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url: str, body: dict | None = None, timeout: float = 120) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@contextlib.contextmanager
def server(cmd: list[str], ready_url: str, what: str):
    """Start `cmd`, wait until `ready_url` answers 200, yield, then stop it; its log on failure."""
    log = tempfile.NamedTemporaryFile(prefix=f"{what}-", suffix=".log", delete=False)
    print("$", " ".join(cmd), "&", flush=True)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise SmokeFailure(f"{what} exited {proc.returncode} before it was ready:\n{Path(log.name).read_text()[-6000:]}")
            try:
                status, _ = http(ready_url, timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SmokeFailure(f"{what} not ready at {ready_url} after {STARTUP_TIMEOUT_S} s:\n{Path(log.name).read_text()[-6000:]}")
            time.sleep(1)
        print(f"{what} ready after {STARTUP_TIMEOUT_S - (deadline - time.monotonic()):.0f} s", flush=True)
        yield proc
    except SmokeFailure:
        raise
    except Exception as exc:
        raise SmokeFailure(f"{what}: {exc}\n{Path(log.name).read_text()[-6000:]}") from exc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def png_bytes(width: int = 64, height: int = 48, rgb: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    from PIL import Image  # in every image that ships globe (a core dependency)
    import io

    buf = io.BytesIO()
    Image.new("RGB", (width, height), rgb).save(buf, format="PNG")
    return buf.getvalue()


def check_user() -> None:
    check(os.getuid() == UID, f"running as UID {os.getuid()}, expected {UID} (the image's USER)")
    home = Path(os.environ.get("HOME", "/nonexistent"))
    probe = home / ".smoke-write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SmokeFailure(f"HOME={home} is not writable by UID {UID}: {exc}") from exc
    print(f"uid {os.getuid()}, HOME {home} writable, python {sys.version.split()[0]} at {sys.executable}")


def check_globe_cli() -> None:
    out = run("globe", "--help")
    check("Usage" in out and "data" in out, f"`globe --help` printed no usage:\n{out[:2000]}")


def smoke_cpu() -> None:
    check_globe_cli()
    workspace = Path("/workspace")
    out = workspace / "smoke" / "tiny-world"
    summary = json.loads(run("globe", "data", "synth", "--n", "8", "--out", str(out), cwd=workspace))
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines() if line.strip()]
    check(summary["records"] == 8 and len(records) == 8, f"synth wrote {len(records)} records, expected 8: {summary}")
    images = [p for p in (out / "images").iterdir() if p.is_file()]
    check(len(images) == 8, f"synth wrote {len(images)} images under {out / 'images'}, expected 8")
    check(all(p.stat().st_uid == UID for p in [out, *images]), "workspace files are not owned by UID 1000")
    print(f"synth: 8 records and images in {out}")
    print(run("dvc", "--version").strip(), "(dvc)")
    print(run(sys.executable, "-c", "import torch, trl, kfp, kserve; print('torch', torch.__version__, 'kfp', kfp.__version__)").strip())


def smoke_serve() -> None:
    check_globe_cli()
    for name in ("trl", "deepspeed", "datasets"):  # training-only stacks stay out of the predictor
        check(importlib.util.find_spec(name) is None, f"{name} is installed in the serving image")
    model = Path(tempfile.mkdtemp(prefix="tiny-")) / "tiny"
    run("globe", "model", "init-tiny", "--out", str(model))
    port = free_port()
    cmd = [sys.executable, "-m", "globe.serve", "--model", str(model), "--http_port", str(port), "--enable_grpc", "false",
           "--set", "serve.max_new_tokens=32"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with server(cmd, f"{url}/v1/models/globe", "predictor"):
        status, body = http(f"{url}/v1/models/globe")
        check(json.loads(body) == {"name": "globe", "ready": True}, f"/v1/models/globe answered {body!r}")
        request = {"instances": [{"image_b64": base64.b64encode(png_bytes()).decode(), "id": "smoke"}]}
        status, body = http(f"{url}/v1/models/globe:predict", request, timeout=300)
        check(status == 200, f"V1 predict answered HTTP {status}: {body[:2000]!r}")
        preds = json.loads(body)["predictions"]
        check(len(preds) == 1 and preds[0]["id"] == "smoke", f"unexpected predictions: {preds}")
        missing = {"reasoning", "country", "city", "lat", "lon", "raw"} - set(preds[0])
        check(not missing, f"prediction lacks {sorted(missing)}: {preds[0]}")
        print("V1 predict:", json.dumps({k: preds[0][k] for k in ("country", "city", "lat", "lon")}))


def smoke_mlflow() -> None:
    run(sys.executable, "-c", "import mlflow, psycopg2, boto3")
    print(run("mlflow", "--version").strip())
    store = Path(tempfile.mkdtemp(prefix="mlflow-"))
    port = free_port()
    cmd = ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{store}/mlflow.db", "--artifacts-destination", str(store / "artifacts")]  # fmt: skip
    with server(cmd, f"http://127.0.0.1:{port}/health", "mlflow server"):
        status, body = http(f"http://127.0.0.1:{port}/health")
        check(status == 200 and body.strip() == b"OK", f"/health answered {status} {body!r}")
        print("mlflow /health: OK")


def smoke_train() -> None:
    check_globe_cli()
    probe = "import torch, trl, deepspeed; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'trl', trl.__version__, 'deepspeed', deepspeed.__version__)"
    versions = run(sys.executable, "-c", probe).strip().splitlines()[-1]
    check("cuda None" not in versions, f"the training image has a CPU-only torch: {versions}")
    print(versions)
    check(PARAMS.is_file(), f"{PARAMS} is missing (scripts/images.sh mounts the repository's params.yaml there)")
    plan = json.loads(run("globe", "train", "grpo", "--dry-run", "--preset", "qwen2.5-vl-7b-8gpu", "--params", str(PARAMS),
                          "--reward-model", "/workspace/models/reward_model", cwd="/workspace"))  # fmt: skip
    check(plan["valid"] is True and plan["world_size"] == 8, f"dry-run plan is not a valid 8-GPU plan: {plan}")
    check(plan["rewards"]["reward_model"] == "/workspace/models/reward_model", f"dry-run plan ignored --reward-model: {plan['rewards']}")
    print("grpo --dry-run (qwen2.5-vl-7b-8gpu): valid, world size 8, deepspeed", bool(plan["deepspeed"]), "warnings", plan["warnings"])


SMOKES = {"cpu": smoke_cpu, "serve": smoke_serve, "mlflow": smoke_mlflow, "train": smoke_train}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in SMOKES:
        print(f"usage: python smoke.py {{{'|'.join(SMOKES)}}}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        check_user()
        SMOKES[argv[0]]()
    except SmokeFailure as exc:
        print(f"smoke {argv[0]}: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"smoke {argv[0]}: ok in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
