"""The one-machine registry path (`dvc repro`): no server, a sqlite store in the working directory."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from globe.cli import app
from globe.mlflow_registry import RegistryError, clean_checkpoint


@pytest.fixture
def fake_checkpoint(tmp_path):
    """The files of a checkpoint; the registry copies them and never loads weights."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    (ckpt / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (ckpt / "tokenizer.json").write_text("{}")
    (ckpt / "optimizer.pt").write_bytes(b"\0" * 64)
    (ckpt / "rng_state.pth").write_bytes(b"\0")
    return ckpt


def test_clean_checkpoint_keeps_only_model_files(fake_checkpoint, tmp_path):
    assert clean_checkpoint(fake_checkpoint, tmp_path / "out") == ["config.json", "model.safetensors", "tokenizer.json"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    (fake_checkpoint / "model.safetensors").unlink()
    with pytest.raises(RegistryError, match="no \\*.safetensors weights"):
        clean_checkpoint(fake_checkpoint, tmp_path / "out2")


@pytest.mark.slow
def test_register_promote_resolve_with_the_local_store(fake_checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"acc_25km": 0.2, "n": 10}))
    common = ["--params", "none.yaml"]
    out = tmp_path / "results" / "register"  # not made beforehand: --out creates it, as dvc repro needs
    reg = runner.invoke(app, ["register", "--model", str(fake_checkpoint), "--metrics", str(metrics), *common,
                              "--set", "serve.max_new_tokens=77", "--out", str(out / "registered.json")])
    assert reg.exit_code == 0, reg.output
    registered = json.loads(reg.stdout)
    assert (tmp_path / "mlflow.db").is_file() and registered["version"] == "1"
    assert json.loads((out / "registered.json").read_text()) == registered
    decision = json.loads(runner.invoke(app, ["promote", *common, "--out", str(out / "promotion.json")]).stdout)
    assert decision["promoted"] is True and decision["challenger_value"] == 0.2
    assert json.loads((out / "promotion.json").read_text()) == decision
    resolved = runner.invoke(app, ["resolve", "models:/globe@champion"]).stdout.strip()
    assert resolved == registered["storage_uri"]
    files = sorted(p.name for p in __import__("pathlib").Path(resolved).iterdir())
    assert files == ["config.json", "globe_serve.yaml", "model.safetensors", "tokenizer.json"]
    from globe.serve.settings import saved_settings  # the model carries the serving settings it was registered with

    assert saved_settings(resolved)["max_new_tokens"] == 77 and "model" not in saved_settings(resolved)
    from mlflow import MlflowClient

    run_dir = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").download_artifacts(registered["run_id"], "resolved_config.yaml", str(tmp_path / "dl"))
    logged = __import__("yaml").safe_load(open(run_dir))  # the run records every value and where it came from
    assert logged["values"]["serve"]["max_new_tokens"] == 77 and logged["sources"]["serve.max_new_tokens"] == "--set"

    metrics.write_text("[1, 2]")
    bad = runner.invoke(app, ["register", "--model", str(fake_checkpoint), "--metrics", str(metrics), *common])
    assert bad.exit_code == 2 and "expected a JSON object of metrics" in bad.output
    missing = runner.invoke(app, ["resolve", "models:/globe@nope"])
    assert missing.exit_code == 2 and "error: MLflow:" in missing.output and "nope" in missing.output


@pytest.mark.slow
def test_the_promotion_floor_holds_for_the_first_model_and_for_a_challenger_that_wins(fake_checkpoint, tmp_path,
                                                                                      monkeypatch):
    from mlflow import MlflowClient

    from globe.config import RegisterGroup
    from globe.mlflow_registry import promote, register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # MLflow resolves the versions' models:/ sources through it
    monkeypatch.chdir(tmp_path)
    gate = RegisterGroup(min_value=0.3)
    c = MlflowClient(tracking_uri=uri, registry_uri=uri)

    register(fake_checkpoint, gate, metrics={"acc_25km": 0.0}, tracking_uri=uri)  # a broken first model
    first = promote(gate, tracking_uri=uri)
    assert not first.promoted and first.champion_version is None and first.min_value == 0.3
    assert "below the floor register.min_value 0.3" in first.reason
    tags = c.get_model_version("globe", "1").tags
    assert tags["globe.gate.decision"] == "rejected" and json.loads(tags["globe.gate"])["reason"] == first.reason
    assert json.loads(tags["globe.gate"])["min_value"] == 0.3
    assert "champion" not in c.get_registered_model("globe").aliases

    register(fake_checkpoint, gate, metrics={"acc_25km": 0.5}, tracking_uri=uri)  # the first working one
    working = promote(gate, tracking_uri=uri)
    assert working.promoted and "first model is promoted" in working.reason and "clears the floor" in working.reason
    assert str(c.get_model_version_by_alias("globe", "champion").version) == "2"

    stricter = gate.model_copy(update={"min_value": 0.7})
    register(fake_checkpoint, stricter, metrics={"acc_25km": 0.6}, tracking_uri=uri)  # beats v2, below 0.7
    held = promote(stricter, tracking_uri=uri)
    assert not held.promoted and held.champion_value == 0.5 and "below the floor" in held.reason
    assert str(c.get_model_version_by_alias("globe", "champion").version) == "2"
    assert c.get_model_version("globe", "3").tags["globe.gate.decision"] == "rejected"


def test_the_promotion_floor_is_validated():
    from globe.config import ConfigError, load_params

    with pytest.raises(ConfigError, match="outside \\[0, 1\\]"):
        load_params(None, overrides=["register.min_value=1.5"])
    with pytest.raises(ConfigError, match="min_value"):
        load_params(None, overrides=["register.min_value=.nan"])
    ok = load_params(None, overrides=["register.metric=median_km", "register.higher_is_better=false",
                                      "register.min_value=1500"])
    assert ok.register.min_value == 1500.0


def test_lineage_goes_onto_the_version_and_comes_back_from_resolve(fake_checkpoint, tmp_path, monkeypatch):
    from globe.config import RegisterGroup
    from globe.lineage import build_lineage
    from globe.mlflow_registry import attach_evaluation, lineage, register

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    datasets = {"source": {"md5": "aa.dir", "nfiles": 41, "remote": "s3://globe/dvc"},
                "distilled": {"md5": "dd.dir", "nfiles": 41, "remote": "s3://globe/dvc"},
                "verified": {"md5": "bb.dir", "nfiles": 30, "meta": {"remote": "s3://globe/dvc"}}}
    params = {"source": {"format": "im2gps3k", "csv": "s3://photos/gt.csv"}, "sft": {"epochs": 2}}
    found = build_lineage(datasets, params=params, images={"train": "ghcr.io/x/globe-train@sha256:abc"}, pipeline_run_id="run-7")
    registered = register(fake_checkpoint, RegisterGroup(), metrics={"acc_25km": 0.25, "n": 10}, params=params, lineage=found)
    attach_evaluation("globe", registered.version, "im2gps3k", {"acc_25km": 0.1, "n": 10, "ci95": {"acc_25km": [0, 0.2]}},
                      lineage={"benchmark_data.md5": "cc.dir"})

    back = lineage("models:/globe/1")
    assert back["version"] == "1" and back["storage_uri"] == registered.storage_uri
    got = back["lineage"]
    assert got["train_data.md5"] == got["eval_data.md5"] == "bb.dir" and got["data.source.md5"] == "aa.dir"
    assert got["grpo_data.md5"] == "dd.dir"  # GRPO learned from every labelled photo, SFT from the traces
    assert got["benchmark_data.md5"] == "cc.dir" and got["pipeline_run_id"] == "run-7"
    assert got["image.train"] == "ghcr.io/x/globe-train@sha256:abc" and got["dvc_remote"] == "s3://globe/dvc"
    assert got["params"] == params

    from mlflow import MlflowClient

    run = MlflowClient(uri).get_run(registered.run_id)
    assert run.data.metrics["im2gps3k.acc_25km"] == 0.1 and run.data.metrics["acc_25km"] == 0.25
    assert run.data.tags["globe.lineage.train_data.md5"] == "bb.dir"

    printed = CliRunner().invoke(app, ["resolve", "models:/globe@challenger", "--lineage"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout)["lineage"]["train_data.md5"] == "bb.dir"
    with pytest.raises(ValueError, match="no version of the train dataset 'verified'"):
        build_lineage({"source": datasets["source"]}, params={}, images={})


def test_register_refuses_metrics_promote_could_not_gate_on(fake_checkpoint, tmp_path, monkeypatch):
    """The suite's results/evaluate/metrics.json nests its figures (in_domain.grpo.acc_25km): registering
    it would leave `globe promote` nothing to gate on, so register says which file to pass."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    suite = tmp_path / "results" / "evaluate" / "metrics.json"
    suite.parent.mkdir(parents=True)
    suite.write_text(json.dumps({"in_domain": {"grpo": {"acc_25km": 0.6}, "sft": {"acc_25km": 0.3}}}))
    bad = CliRunner().invoke(app, ["register", "--model", str(fake_checkpoint), "--metrics", str(suite),
                                   "--params", "none.yaml"])
    assert bad.exit_code == 2 and "no top-level number 'acc_25km'" in bad.stderr
    assert "in_domain.grpo.acc_25km" in bad.stderr and str(suite.parent / "in_domain" / "grpo" / "metrics.json") in bad.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before anything was logged
