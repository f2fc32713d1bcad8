"""A bad source spec fails `globe pipeline run-local` (and the pipeline's first step) with one clear
sentence before any work starts: unknown format, missing CSV, no such bucket, unreachable
endpoint, wrong credentials. Against a real S3 API (SeaweedFS on loopback)."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from globe.cli import app
from globe.config import load_params
from globe.data.source import SourceError
from globe.kfp import steps


@pytest.fixture(scope="module")
def photos(s3_server, shared_data):
    """The sample's CSV and two photos on SeaweedFS."""
    sample = shared_data / "im2gps3k_sample"
    bucket = s3_server.make_bucket("specs")
    client = s3_server.client()
    client.upload_file(str(sample / "im2gps3k_sample40.csv"), bucket, "im2gps3k/gt.csv")
    for photo in sorted((sample / "images").iterdir())[:2]:
        client.upload_file(str(photo), bucket, f"im2gps3k/images/{photo.name}")
    return {"csv": f"s3://{bucket}/im2gps3k/gt.csv", "images": f"s3://{bucket}/im2gps3k/images/"}


def _run_local(tmp_path, env, *sets: str, args: tuple[str, ...] = ()):
    argv = ["pipeline", "run-local", "--workdir", str(tmp_path / "work"), "--params", "absent.yaml"]
    for item in ("source.format=im2gps3k", *sets):
        argv += ["--set", item]
    for item in args:
        argv += ["--arg", item]
    result = CliRunner().invoke(app, argv, env=env)
    assert not (tmp_path / "work" / "kfp").exists(), "kfp.local started although the spec is bad"
    return result


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_bad_specs_fail_before_any_work(s3_server, photos, tmp_path):
    env = s3_server.env()
    good = [f"source.csv={photos['csv']}", f"source.images={photos['images']}"]

    unknown = _run_local(tmp_path, env, "source.format=flickr", *good)
    assert unknown.exit_code == 2 and "source.format" in unknown.output and "exif-folder" in unknown.output

    missing = _run_local(tmp_path, env, "source.csv=s3://specs/im2gps3k/nope.csv", f"source.images={photos['images']}")
    assert missing.exit_code == 2 and "source.csv: s3://specs/im2gps3k/nope.csv: no such object" in missing.output

    no_bucket = _run_local(tmp_path, env, "source.csv=s3://no-such-bucket/gt.csv", f"source.images={photos['images']}")
    assert no_bucket.exit_code == 2 and "bucket 'no-such-bucket' does not exist" in no_bucket.output

    empty = _run_local(tmp_path, env, f"source.csv={photos['csv']}", "source.images=s3://specs/nothing-here/")
    assert empty.exit_code == 2 and "source.images: s3://specs/nothing-here/: no objects under this prefix" in empty.output

    port = _closed_port()
    unreachable = _run_local(tmp_path, env | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}"}, *good)
    assert unreachable.exit_code == 2 and f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in unreachable.output

    wrong = _run_local(tmp_path, env | {"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, *good)
    assert wrong.exit_code == 2 and "refused the credentials" in wrong.output and "source.csv" in wrong.output

    remote = _run_local(tmp_path, env, *good, args=("dvc_remote=s3://no-dvc-bucket/dvc",))
    assert remote.exit_code == 2 and "dvc_remote:" in remote.output and "no-dvc-bucket" in remote.output

    local = _run_local(tmp_path, env, f"source.csv={tmp_path / 'absent.csv'}", f"source.images={tmp_path}")
    assert local.exit_code == 2 and f"source.csv: {tmp_path / 'absent.csv'}: no such file" in local.output


def test_the_pipelines_first_step_runs_the_same_checks(s3_server, photos, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    groups = {"source": {"format": "im2gps3k", **photos}, "benchmark": {"format": "yfcc4k", "csv": photos["csv"], "images": "s3://specs/none/"}}
    with pytest.raises(SourceError, match="benchmark.images: s3://specs/none/: no objects"):
        steps.check_sources(groups, 3, "")
    groups["benchmark"] = {}
    assert steps.check_sources(groups, 3, "")["shards"] == [0, 1, 2]
    assert steps.check_sources({"source": {"format": "geoscenes"}}, 3, "")["shards"] == [0]  # synthesized whole


def test_spec_fields_are_validated_with_the_params(tmp_path):
    from globe.config import ConfigError

    with pytest.raises(ConfigError, match="source.format im2gps3k needs source.csv"):
        load_params(tmp_path / "absent.yaml", overrides=["source.format=im2gps3k", "source.images=s3://b/i/"])
    with pytest.raises(ConfigError, match="exif-folder reads GPS from the photos' EXIF: remove source.csv"):
        load_params(tmp_path / "absent.yaml", overrides=["source.format=exif-folder", "source.images=x", "source.csv=y"])
    with pytest.raises(ConfigError, match="benchmark.format is unset: csv would be ignored"):
        load_params(tmp_path / "absent.yaml", overrides=["benchmark.csv=x.csv"])
