"""A dataset round-trips through DVC and a real S3 API (SeaweedFS): push, wipe, pull, same bytes.

DVC runs in-process through its Python API (`dvc.repo.Repo`), the same code `dvc push`/`dvc pull`
run, without paying an interpreter start per command.
"""

from __future__ import annotations

import hashlib
import shutil

import pytest

from globe.data.geoscenes import synthesize
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
