"""A dataset round-trips through DVC and a real S3 API (SeaweedFS): push, wipe, pull, same bytes.

DVC runs in-process through its Python API (`dvc.repo.Repo`), the same code `dvc push`/`dvc pull`
run, without paying an interpreter start per command.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from globe.tiny.geoscenes import synthesize
from globe.data.records import read_records


def _digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}  # fmt: skip


@pytest.mark.slow
def test_dvc_push_wipe_pull(s3_server, tmp_path, monkeypatch):
    from dvc.repo import Repo

    for key, value in s3_server.env().items():  # credentials only in the environment
        monkeypatch.setenv(key, value)
    bucket = s3_server.make_bucket("globe-dvc")
    proj = tmp_path / "proj"
    proj.mkdir()
    monkeypatch.chdir(proj)
    repo = Repo.init(str(proj), no_scm=True)
    dataset = proj / "data" / "geoscenes"
    synthesize(dataset, n=10, seed=11)
    before = _digests(dataset)
    repo.add("data/geoscenes")
    with repo.config.edit() as conf:  # = dvc remote add -d store s3://... && dvc remote modify store endpointurl ...
        conf["remote"]["store"] = {"url": f"s3://{bucket}/dvc", "endpointurl": s3_server.endpoint_url}
        conf["core"]["remote"] = "store"
    config = (proj / ".dvc" / "config").read_text()
    assert "endpointurl" in config and s3_server.secret_key not in config and s3_server.access_key not in config
    assert repo.push() == len(before) + 1  # every file plus the directory manifest
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket, Prefix="dvc/")["Contents"]]
    assert len(keys) == len(before) + 1
    repo.close()

    shutil.rmtree(dataset)
    shutil.rmtree(proj / ".dvc" / "cache")
    repo = Repo(str(proj))
    result = repo.pull()
    repo.close()
    assert result["stats"]["fetched"] == len(before) + 1
    assert _digests(dataset) == before
    for r in read_records(dataset):  # and the records still vouch for their images
        assert hashlib.sha256((dataset / r.image).read_bytes()).hexdigest() == r.image_sha256


@pytest.mark.slow
def test_a_pipeline_step_versions_a_dataset_and_a_fresh_directory_pulls_it_back(s3_server, tmp_path, monkeypatch):
    """What the pipeline's `dvc: <name>` steps do (no git checkout), and what a user does later
    with the `.dvc` file: ordinary `dvc` commands in an empty directory, the same bytes back."""
    import subprocess
    import sys

    import yaml

    from globe.data.versioning import VersioningError, version_dataset

    env = {**__import__("os").environ, **s3_server.env(), "DVC_NO_ANALYTICS": "1"}
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.make_bucket("globe-dvc-steps")
    dataset = tmp_path / "artifact"
    synthesize(dataset, n=6, seed=3)
    remote = f"s3://{bucket}/dvc"
    first = version_dataset(dataset, "verified", remote, tmp_path / "out" / "verified.dvc", meta={"pipeline_run_id": "run-1"})
    assert first.md5.endswith(".dir") and first.nfiles == len(_digests(dataset)) and first.pushed == first.nfiles + 1
    doc = yaml.safe_load((tmp_path / "out" / "verified.dvc").read_text())
    assert doc["outs"][0]["md5"] == first.md5 and doc["outs"][0]["path"] == "verified"
    assert doc["meta"] == {"remote": remote, "pipeline_run_id": "run-1"}
    assert s3_server.secret_key not in (tmp_path / "out" / "verified.dvc").read_text()
    again = version_dataset(dataset, "verified", remote, tmp_path / "again.dvc")
    assert (again.md5, again.pushed) == (first.md5, 0)  # content-addressed: nothing new to upload

    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    (fresh / "verified.dvc").write_text((tmp_path / "out" / "verified.dvc").read_text())
    for cmd in (["init", "--no-scm", "-q"], ["remote", "add", "-d", "storage", remote],
                ["remote", "modify", "storage", "endpointurl", s3_server.endpoint_url], ["pull", "verified.dvc"]):
        proc = subprocess.run([sys.executable, "-m", "dvc", *cmd], cwd=fresh, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"dvc {' '.join(cmd)}: {proc.stderr}"
    assert _digests(fresh / "verified") == _digests(dataset)

    (tmp_path / "empty").mkdir()
    with pytest.raises(VersioningError, match="missing or empty"):
        version_dataset(tmp_path / "empty", "x", remote, tmp_path / "x.dvc")
    with pytest.raises(VersioningError, match="dvc push of source to s3://no-such-dvc-bucket/dvc failed"):
        version_dataset(dataset, "source", "s3://no-such-dvc-bucket/dvc", tmp_path / "y.dvc")
    assert not (tmp_path / "y.dvc").exists()
