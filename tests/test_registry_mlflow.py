"""The registry against a real `mlflow server` (sqlite backend, artifacts in S3 on SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _servers import free_port, wait_until_ready

from globe.config import RegisterGroup



pytestmark = pytest.mark.slow
BUCKET = "mlflow"


@pytest.fixture(scope="module")
def mlflow_server(s3_server, tmp_path_factory, request):
    """`mlflow server` on loopback; clients write artifacts straight to S3 (no proxying), so the
    registered storage location is an s3:// URI that KServe's storage initializer can read."""
    root = tmp_path_factory.mktemp("mlflow")
    s3_server.make_bucket(BUCKET)
    port = free_port()
    env = {**os.environ, **s3_server.env()}
    log = open(root / "mlflow.log", "wb")
    cmd = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--default-artifact-root", f"s3://{BUCKET}/artifacts",
        "--no-serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    request.getfixturevalue("tiny_model_dir")  # build the model while the server boots (2 cores)
    wait_until_ready(f"{uri}/health", proc, root / "mlflow.log", timeout_s=120, what="mlflow server")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**s3_server.env(), "MLFLOW_TRACKING_URI": uri}.items():
            mp.setenv(key, value)
        yield uri
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:  # a test server holds nothing worth a slow shutdown
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model_dir):
    """The tiny model plus the clutter a trainer leaves next to it."""
    import shutil

    ckpt = tmp_path_factory.mktemp("ckpt") / "model"
    shutil.copytree(tiny_model_dir, ckpt)
    (ckpt / "optimizer.pt").write_bytes(b"\0" * 1024)
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / "training_args.bin").write_bytes(b"\0")
    (ckpt / "checkpoint-10").mkdir()
    (ckpt / "checkpoint-10" / "model.safetensors").write_bytes(b"stale")
    return ckpt


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cfg(**kw) -> RegisterGroup:
    return RegisterGroup(model_name="globe-test", **kw)


def test_register_logs_a_clean_checkpoint_with_evidence(mlflow_server, checkpoint, s3_server, tmp_path):
    from mlflow import MlflowClient

    from globe.mlflow_registry import register, storage_uri

    report = tmp_path / "report.md"
    report.write_text("# eval\nacc_25km 0.30\n")
    reg = register(
        checkpoint,
        cfg(),
        metrics={"n": 50, "acc_25km": 0.30, "median_km": 812.5, "country_acc": {"string": 0.5}},
        params={"grpo": {"learning_rate": 1e-4, "num_generations": 4}, "base": {"seed": 42}},
        report=report,
    )
    assert reg.version == "1" and reg.alias == "challenger"
    c = MlflowClient()
    mv = c.get_model_version_by_alias("globe-test", "challenger")
    assert mv.version == "1" and mv.tags["globe.model_id"] == reg.model_id
    # the storage location is the LoggedModel's artifact dir in S3 — not the models:/ source string
    assert mv.source == f"models:/{reg.model_id}"
    assert reg.storage_uri == c.get_logged_model(reg.model_id).artifact_location
    assert reg.storage_uri.startswith(f"s3://{BUCKET}/artifacts/")
    assert storage_uri("models:/globe-test@challenger") == reg.storage_uri == storage_uri("models:/globe-test/1")

    # exactly the Hugging Face files are in S3 under that prefix, byte for byte
    prefix = reg.storage_uri[len(f"s3://{BUCKET}/") :].rstrip("/") + "/"
    objects = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
    names = sorted(o["Key"][len(prefix) :] for o in objects)
    expected = sorted(p.name for p in checkpoint.iterdir() if p.is_file() and p.suffix not in (".pt", ".bin") and p.name != "trainer_state.json")
    assert names == expected == reg.files
    assert "config.json" in names and "model.safetensors" in names
    body = s3_server.client().get_object(Bucket=BUCKET, Key=prefix + "model.safetensors")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha(checkpoint / "model.safetensors")

    run = c.get_run(reg.run_id)
    assert run.data.metrics["acc_25km"] == pytest.approx(0.30)
    assert run.data.metrics["country_acc.string"] == pytest.approx(0.5)
    assert run.data.params["grpo.learning_rate"] == "0.0001" and run.data.params["base.seed"] == "42"
    artifacts = {f.path for f in c.list_artifacts(reg.run_id, "evaluation")}
    assert artifacts == {"evaluation/report.md", "evaluation/metrics.json"}


def test_promote_gates_on_the_metric_and_records_the_decision(mlflow_server, checkpoint):
    import json

    from mlflow import MlflowClient

    from globe.mlflow_registry import RegistryError, promote, register

    c = MlflowClient()
    name = "globe-gate"
    gate = cfg(metric="acc_25km").model_copy(update={"model_name": name})
    register(checkpoint, gate, metrics={"acc_25km": 0.30})
    first = promote(gate)
    assert first.promoted and first.champion_version is None and "first model" in first.reason
    assert c.get_model_version_by_alias(name, "champion").version == "1"

    register(checkpoint, gate, metrics={"acc_25km": 0.30})  # a tie is not an improvement
    tie = promote(gate)
    assert not tie.promoted and (tie.challenger_value, tie.champion_value) == (0.30, 0.30)
    assert c.get_model_version_by_alias(name, "champion").version == "1"
    tags = c.get_model_version(name, "2").tags
    record = json.loads(tags["globe.gate"])
    assert tags["globe.gate.decision"] == "rejected" == record["decision"]
    assert (record["metric"], record["challenger_value"], record["champion_value"], record["champion_version"]) == ("acc_25km", 0.30, 0.30, "1")
    assert c.get_model_version(name, "1").tags["globe.gate.last_challenger"] == "v2: rejected"
    gate_run = c.get_run(tie.run_id)
    assert gate_run.data.tags["decision"] == "rejected" and gate_run.data.metrics["champion_value"] == 0.30
    assert gate_run.data.params["gate"].startswith("acc_25km >")

    register(checkpoint, gate, metrics={"acc_25km": 0.42})
    better = promote(gate)
    assert better.promoted and (better.challenger_version, better.champion_version) == ("3", "1")
    assert c.get_model_version_by_alias(name, "champion").version == "3"
    assert c.get_model_version(name, "3").tags["globe.gate.decision"] == "promoted"
    again = promote(gate)
    assert not again.promoted and "already champion" in again.reason

    lower = gate.model_copy(update={"metric": "median_km", "higher_is_better": False})
    register(checkpoint, lower, metrics={"acc_25km": 0.9})  # no median_km: the gate cannot be evaluated
    with pytest.raises(RegistryError, match=r"v4 \(challenger\) has no metric 'median_km'"):
        promote(lower)
    assert c.get_model_version_by_alias(name, "champion").version == "3"


def test_cli_register_promote_then_serve_from_models_alias(mlflow_server, checkpoint, tmp_path):
    """The operator path: `globe register`, `globe promote`, `globe resolve`, then the predictor
    loads `models:/NAME@champion` — downloaded from S3 via the version's storage location."""
    import json

    from typer.testing import CliRunner

    from globe.cli import app
    from globe.serve.model import GlobeModel
    from globe.serve.model_source import resolve_model

    from _serve_helpers import b64, png_bytes

    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"n": 20, "acc_25km": 0.5}))
    common = ["--params", str(tmp_path / "none.yaml"), "--set", "register.model_name=globe-cli"]
    runner = CliRunner()
    reg = runner.invoke(app, ["register", "--model", str(checkpoint), "--metrics", str(metrics), *common,
                              "--set", "serve.max_new_tokens=4"])  # the model version carries its serve settings
    assert reg.exit_code == 0, reg.output
    registered = json.loads(reg.stdout)
    assert registered["version"] == "1" and registered["storage_uri"].startswith("s3://")
    promoted = runner.invoke(app, ["promote", *common])
    assert promoted.exit_code == 0 and json.loads(promoted.stdout)["promoted"] is True
    resolved = runner.invoke(app, ["resolve", "models:/globe-cli@champion"])
    assert resolved.exit_code == 0 and resolved.stdout.strip() == registered["storage_uri"]
    bad = runner.invoke(app, ["register", "--model", str(tmp_path), *common])
    assert bad.exit_code == 2 and "no config.json" in bad.output

    cache = tmp_path / "cache"
    local = resolve_model("models:/globe-cli@champion", cache)
    assert sorted(p.name for p in local.iterdir()) == registered["files"]
    assert all(sha(local / f) == sha(checkpoint / f) for f in registered["files"] if f != "globe_serve.yaml")
    assert resolve_model("models:/globe-cli@champion", cache) == local  # cached, not fetched again
    assert not any(p.name.startswith(".partial-") for p in cache.iterdir())

    from globe.config import ServeGroup

    model = GlobeModel("models:/globe-cli@champion", ServeGroup(), cache_dir=str(cache))
    assert not model.ready
    model.load()
    assert model.ready and model.decoding()["max_new_tokens"] == 4  # as registered, not the defaults' 120
    import asyncio

    response, _ = asyncio.run(model({"instances": [{"image_b64": b64(png_bytes())}]}))
    assert len(response["predictions"]) == 1 and isinstance(response["predictions"][0]["raw"], str)
