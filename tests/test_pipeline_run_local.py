"""`globe pipeline run-local`: the whole KFP pipeline with kfp.local's SubprocessRunner (the real
components, this Python environment, no Kubernetes), on the tiny world and on real photos imported
from S3 (SeaweedFS on loopback), with DVC-versioned datasets and lineage on the registered model."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _photo_teacher import photo_teacher

ROOT = Path(__file__).resolve().parents[1]
# A smaller tiny world than params.yaml's, so the chain fits the CI budget on 2 cores.
SMALL = ["synth.n=96", "heldout.n=16", "heldout.shifted_n=16", "sft.max_steps=40", "reward_model.max_steps=10",
         "grpo.max_steps=4", "eval.bootstrap=50", "eval.gallery_size=4",
         "register.min_value=0"]  # a 40-step model is not the floor's business (tests/test_registry_local.py is)


def _run_local(workdir: Path, env: dict, overrides: list[str], arguments: list[str] = ()) -> dict:
    args = [sys.executable, "-m", "globe.cli", "pipeline", "run-local", "--workdir", str(workdir), "--shards", "2"]
    for item in overrides:
        args += ["--set", item]
    for item in arguments:
        args += ["--arg", item]
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    causes = [line for line in proc.stderr.splitlines() if "Error:" in line]  # a failed step's exception
    assert proc.returncode == 0, "\n".join(causes[-5:]) + "\n" + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.slow
def test_run_local_runs_every_stage_of_the_tiny_world(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    summary = _run_local(tmp_path / "run", env, SMALL)
    run_dir = Path(summary["run_dir"])

    tasks = set(summary["tasks"])
    for task in ("check-sources", "merge-imports", "shard-plan", "merge-shards", "verify", "base-model", "sft",
                 "reward-model", "grpo", "lineage", "evaluate", "register"):
        assert task in tasks, f"{task} did not run: {sorted(tasks)}"
    assert not any("deploy" in t or "benchmark" in t and t != "benchmark-given" for t in tasks)
    imported = sorted(run_dir.glob("for-loop-*-iteration-*/import-shard/dataset/records.jsonl"))
    assert len(imported) == 1  # GeoScenes: synthesized in one shard
    shards = sorted(run_dir.glob("for-loop-*-iteration-*/distill-shard/distilled/records.jsonl"))
    assert len(shards) == 2
    merged = (run_dir / "merge-shards" / "dataset" / "records.jsonl").read_text().splitlines()
    assert len(merged) == sum(len(s.read_text().splitlines()) for s in shards) == 96
    assert set(summary["datasets"]) == {"source", "distilled", "verified", "heldout"}

    # the evaluation of dvc's evaluate stage: base, SFT and GRPO on both held-out sets, GRPO - SFT paired
    metrics = summary["metrics"]
    assert set(metrics) == {"in_domain", "shifted"}
    for split in metrics.values():
        assert set(split) == {"base", "sft", "grpo", "grpo_vs_sft"}
        assert all(0.0 <= split[m]["acc_25km"] <= 1.0 for m in ("base", "sft", "grpo"))
        assert set(split["grpo_vs_sft"]["acc_25km"]) == {"delta", "lo", "hi"}
    evaluation = run_dir / "evaluate" / "evaluation"
    assert json.loads((evaluation / "in_domain" / "grpo" / "metrics.json").read_text())["n"] == 16  # the gate's run
    assert (run_dir / "evaluate" / "report").stat().st_size > 0  # the HTML report artifact
    assert "grpo − sft" in (run_dir / "evaluate" / "summary").read_text()  # the Markdown artifact: the paired delta
    outputs = json.loads((run_dir / "evaluate" / "executor_output.json").read_text())
    assert "in_domain.grpo.acc_25km" in json.dumps(outputs)  # KFP Metrics
    assert summary["registered"]["version"] == "1" and summary["registered"]["promoted"] is True
    assert summary["registered"]["champion_storage_uri"]

    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("globe", "champion").version) == "1"
    assert summary["registered"]["champion_storage_uri"].startswith(str(tmp_path / "run"))  # MLflow's files stay in the workdir


def _upload_photos(s3_server, sample: Path, n_train: int) -> dict[str, str]:
    """The sample's CSV split in two (source rows, benchmark rows) and its photos, on SeaweedFS."""
    bucket = s3_server.make_bucket("photos")
    client = s3_server.client()
    with open(sample / "im2gps3k_sample40.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    for name, part in (("train.csv", rows[1 : n_train + 1]), ("bench.csv", rows[n_train + 1 :])):
        text = "\r\n".join(",".join(r) for r in [rows[0], *part]) + "\r\n"  # IM2GPS3K's CRLF line ends
        client.put_object(Bucket=bucket, Key=f"im2gps3k/{name}", Body=text.encode())
    for photo in sorted((sample / "images").iterdir()):
        client.upload_file(str(photo), bucket, f"im2gps3k/images/{photo.name}")
    base = f"s3://{bucket}/im2gps3k"
    return {"train": f"{base}/train.csv", "bench": f"{base}/bench.csv", "images": f"{base}/images/"}


@pytest.mark.slow
def test_run_local_on_real_photos_from_s3_with_dvc_versions_and_lineage(s3_server, shared_data, tmp_path):
    sample = shared_data / "im2gps3k_sample"
    uris = _upload_photos(s3_server, sample, n_train=30)
    dvc_bucket = s3_server.make_bucket("globe-dvc")
    env = {**os.environ, **s3_server.env(), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "DVC_NO_ANALYTICS": "1"}
    with photo_teacher(sample / "im2gps3k_sample40.csv", sample / "images") as teacher:
        teachers = [{"name": f"teacher-{k}", "kind": "openai", "base_url": teacher.base_url, "model": "oracle"} for k in "ab"]
        overrides = [*SMALL, "source.format=im2gps3k", f"source.csv={uris['train']}", f"source.images={uris['images']}",
                     "source.max_side=256", f"distill.teachers={json.dumps(teachers)}",
                     "benchmark.format=im2gps3k", f"benchmark.csv={uris['bench']}", f"benchmark.images={uris['images']}",
                     "benchmark.max_side=256"]
        summary = _run_local(tmp_path / "run", env, overrides, [f"dvc_remote=s3://{dvc_bucket}/dvc"])
    print("run-local summary:\n" + json.dumps(summary, indent=2))
    run_dir = Path(summary["run_dir"])
    tasks = set(summary["tasks"])
    for task in ("check-sources", "merge-imports", "verify", "sft", "grpo", "lineage", "evaluate", "register"):
        assert task in tasks, f"{task} did not run: {sorted(tasks)}"

    # the import: 30 rows in two shards, each downloading only its own photos; the report is Markdown
    assert (summary["import"]["rows"], summary["import"]["imported"]) == (30, 30)
    shard_images = [len(list(p.iterdir())) for p in sorted(run_dir.glob("for-loop-*-iteration-*/import-shard/dataset/images"))]
    assert shard_images == [15, 15]
    assert "| 30 | 30 | 0 |" in (run_dir / "merge-imports" / "report").read_text()
    records = [json.loads(line) for line in (run_dir / "merge-imports" / "dataset" / "records.jsonl").read_text().splitlines()]
    assert {r["meta"]["source_image"] for r in records} <= {f"{uris['images']}{p.name}" for p in (sample / "images").iterdir()}
    assert {r["split"] for r in records} == {"train", "test"}

    # DVC: five datasets versioned on the SeaweedFS remote, in DVC's content-addressed layout
    datasets = summary["datasets"]
    assert set(datasets) == {"source", "distilled", "verified", "heldout", "benchmark"}
    keys = [o["Key"] for page in s3_server.client().get_paginator("list_objects_v2").paginate(Bucket=dvc_bucket)
            for o in page.get("Contents", [])]
    for version in datasets.values():
        md5 = version["md5"]
        assert f"dvc/files/md5/{md5[:2]}/{md5[2:]}" in keys
    # ... and a fresh directory gets exactly the verified dataset back by its .dvc file, with DVC's commands
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    dvc = [sys.executable, "-m", "dvc"]
    for cmd in (["init", "--no-scm", "-q"], ["remote", "add", "-d", "storage", f"s3://{dvc_bucket}/dvc"],
                ["remote", "modify", "storage", "endpointurl", s3_server.endpoint_url]):
        subprocess.run([*dvc, *cmd], cwd=fresh, env=env, check=True, capture_output=True)
    shutil.copy(datasets["verified"]["dvc_file"], fresh / "verified.dvc")
    pulled = subprocess.run([*dvc, "pull", "verified.dvc"], cwd=fresh, env=env, capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    assert _digests(fresh / "verified") == _digests(run_dir / "verify" / "verified")

    # lineage: on the registered version (tags), in `globe resolve --lineage`, in report.html
    resolved = subprocess.run([sys.executable, "-m", "globe.cli", "resolve", "models:/globe@champion", "--lineage"],
                              cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    print("globe resolve models:/globe@champion --lineage:\n" + resolved.stdout)
    found = json.loads(resolved.stdout)
    lineage = found["lineage"]
    assert found["version"] == "1"
    assert lineage["train_data.md5"] == datasets["verified"]["md5"]
    assert lineage["eval_data.md5"] == datasets["heldout"]["md5"]  # gated on the unverified held-out set, as dvc repro
    assert lineage["data.source.md5"] == datasets["source"]["md5"]
    assert lineage["benchmark_data.md5"] == datasets["benchmark"]["md5"]
    assert lineage["pipeline_run_id"] and lineage["image.train"].startswith("none (local process")
    assert lineage["params"]["source"]["csv"] == uris["train"] and lineage["params"]["sft"]["max_steps"] == 40  # SMALL
    assert lineage["dvc_remote"] == f"s3://{dvc_bucket}/dvc"
    report = (run_dir / "evaluate" / "report").read_text()
    assert "<h2>Lineage</h2>" in report and datasets["verified"]["md5"] in report
    # imported photos: every model on the source's test split only (no shifted rendering of a photo)
    assert set(summary["metrics"]) == {"in_domain"} and set(summary["metrics"]["in_domain"]) == {"base", "sft", "grpo", "grpo_vs_sft"}

    # the benchmark (the other 10 photos) was evaluated too; both evaluations are in MLflow
    assert summary["benchmark_metrics"]["n"] == 10
    from mlflow import MlflowClient

    run = MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(found["run_id"])
    assert "acc_25km" in run.data.metrics and "im2gps3k.acc_25km" in run.data.metrics
    assert run.data.tags["globe.lineage.train_data.md5"] == datasets["verified"]["md5"]
    dvc_file = yaml.safe_load(Path(datasets["verified"]["dvc_file"]).read_text())
    assert dvc_file["meta"]["pipeline_run_id"] == lineage["pipeline_run_id"]
