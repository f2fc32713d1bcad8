"""The source dataset: an import sharded over rows gives the dataset an unsharded import gives, from
local folders and from S3 (SeaweedFS), with skipped rows reported by their source row; EXIF folders
shard too; the split is a hash of the id; GeoScenes is one shard; `globe data source` on one machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from globe.cli import app
from globe.config import BenchmarkGroup, SourceGroup, SynthGroup
from globe.data import source
from globe.data.records import read_records


def _records(path: Path) -> dict[str, dict]:
    """Records by id, without what says where the copy came from."""
    out = {}
    for r in read_records(path):
        d = r.model_dump()
        d["meta"].pop("source_image")
        out[r.id] = d
    return out


def _sharded(spec, tmp_path: Path, n: int, test_share: float = 0.2) -> tuple[Path, dict]:
    dirs = [tmp_path / f"shard{k}" for k in range(n)]
    for k, d in enumerate(dirs):
        source.import_shard(spec, d, k, n, test_share=test_share)
    return tmp_path / "merged", source.merge_imports(dirs, tmp_path / "merged")


@pytest.fixture
def sample_with_bad_rows(shared_data, tmp_path) -> SourceGroup:
    """The 40 real IM2GPS3K rows plus two bad ones at known source rows (41: no photo, 42: bad lat)."""
    sample = shared_data / "im2gps3k_sample"
    text = (sample / "im2gps3k_sample40.csv").read_text(encoding="utf-8").rstrip("\r\n")
    text += "\r\nmissing_photo.jpg,me,10.0,10.0,,,,,,\r\n" + "104132709_97b998c989_41_19355699@N00.jpg,me,95.0,10.0,,,,,,\r\n"
    (tmp_path / "gt.csv").write_text(text, encoding="utf-8")
    return SourceGroup(format="im2gps3k", csv=str(tmp_path / "gt.csv"), images=str(sample / "images"), max_side=128)


def test_sharded_import_equals_one_import_and_reports_source_rows(sample_with_bad_rows, tmp_path):
    whole = source.import_shard(sample_with_bad_rows, tmp_path / "whole", test_share=0.2)
    merged, summary = _sharded(sample_with_bad_rows, tmp_path, 3)
    assert _records(merged) == _records(tmp_path / "whole")
    assert (summary["rows"], summary["imported"], summary["skipped"]) == (whole["rows"], whole["imported"], 2) == (42, 40, 2)
    assert summary["skipped_by_reason"] == {"invalid coordinates": 1, "missing image": 1}
    assert [(e["row"], e["id"]) for e in summary["examples"]] == [(41, "missing_photo.jpg"), (42, "104132709_97b998c989_41_19355699@N00.jpg")]
    report = json.loads((merged / "import_report.json").read_text())
    assert [e["row"] for e in report["examples"]] == [41, 42]
    assert sorted(r.meta["row"] for r in read_records(merged)) == list(range(1, 41))
    markdown = source.report_markdown(summary)
    assert "| invalid coordinates | 1 |" in markdown and "| 41 | `missing_photo.jpg` |" in markdown


def test_import_from_s3_downloads_only_each_shards_photos(s3_server, sample_with_bad_rows, tmp_path, monkeypatch):
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.make_bucket("sharded")
    client = s3_server.client()
    client.upload_file(sample_with_bad_rows.csv, bucket, "gt/gt.csv")
    for photo in sorted(Path(sample_with_bad_rows.images).iterdir()):
        client.upload_file(str(photo), bucket, f"gt/images/{photo.name}")
    spec = SourceGroup(format="im2gps3k", csv=f"s3://{bucket}/gt/gt.csv", images=f"s3://{bucket}/gt/images", max_side=128)
    assert source.check_spec(spec)["image_objects"] == 40
    local = source.import_shard(sample_with_bad_rows, tmp_path / "local", test_share=0.2)
    merged, summary = _sharded(spec, tmp_path, 2)
    assert _records(merged) == _records(tmp_path / "local") and summary["imported"] == local["imported"]
    assert [len(list((tmp_path / f"shard{k}" / "images").iterdir())) for k in (0, 1)] == [20, 20]
    uris = {r.meta["source_image"] for r in read_records(merged)}
    assert uris == {f"s3://{bucket}/gt/images/{p.name}" for p in Path(sample_with_bad_rows.images).iterdir()}


def test_s3_staging_finds_ids_without_an_extension_as_the_importer_does(s3_server, shared_data, tmp_path, monkeypatch):
    """OSV-5M ids carry no extension: the shard stager and the importer share one lookup rule
    (`globe.data.ingest.image_names`), so every photo the importer would find is downloaded."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket, client = s3_server.make_bucket("osv"), s3_server.client()
    photos = sorted((shared_data / "im2gps3k_sample" / "images").glob("*.jpg"))[:4]
    for k, photo in enumerate(photos):
        client.upload_file(str(photo), bucket, f"imgs/p{k}{'.jpg' if k % 2 else '.png'}")  # one suffix per id
    rows = ["id,latitude,longitude", *(f"p{k},{40 + k},{10 + k}" for k in range(4)), "gone,1,1"]
    client.put_object(Bucket=bucket, Key="gt.csv", Body=("\n".join(rows) + "\n").encode())
    spec = SourceGroup(format="osv5m", csv=f"s3://{bucket}/gt.csv", images=f"s3://{bucket}/imgs", max_side=64)
    merged, summary = _sharded(spec, tmp_path, 2)
    assert summary["imported"] == 4 and summary["skipped_by_reason"] == {"missing image": 1}
    assert sorted(r.meta["source_image"] for r in read_records(merged)) == sorted(
        f"s3://{bucket}/imgs/p{k}{'.jpg' if k % 2 else '.png'}" for k in range(4))


def _exif_photo(path: Path, lat: tuple, lon: tuple, refs=("N", "E")) -> None:
    exif = Image.Exif()
    exif[0x8825] = {1: refs[0], 2: lat, 3: refs[1], 4: lon}
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), "green").save(path, exif=exif)


def test_exif_folders_shard_too(tmp_path):
    photos = tmp_path / "photos"
    _exif_photo(photos / "paris.jpg", (48, 51, 24.0), (2, 21, 7.0))
    _exif_photo(photos / "trip" / "sydney.jpg", (33, 52, 4.0), (151, 12, 36.0), ("S", "E"))
    _exif_photo(photos / "trip" / "tokyo.jpg", (35, 41, 0.0), (139, 41, 0.0))
    Image.new("RGB", (40, 30)).save(photos / "no_gps.jpg")
    spec = SourceGroup(format="exif-folder", images=str(photos))
    whole = source.import_shard(spec, tmp_path / "whole", test_share=0.0)
    merged, summary = _sharded(spec, tmp_path, 2, test_share=0.0)
    assert _records(merged) == _records(tmp_path / "whole")
    assert {r.id: r.country_code for r in read_records(merged)} == {"paris": "FR", "trip/sydney": "AU", "trip/tokyo": "JP"}
    assert summary["skipped_by_reason"] == {"missing coordinates": 1}
    assert summary["examples"] == whole["examples"] and [e["id"] for e in summary["examples"]] == ["no_gps"]
    assert {r.meta["source_image"] for r in read_records(merged)} >= {str(photos / "trip" / "tokyo.jpg")}


def test_split_is_a_stable_hash_of_the_id():
    ids = [f"photo-{i}" for i in range(4000)]
    share = sum(source.is_test(i, 0.2) for i in ids) / len(ids)
    assert 0.18 < share < 0.22
    assert [source.is_test(i, 0.2) for i in ids[:50]] == [source.is_test(i, 0.2) for i in ids[:50]]
    assert all(source.is_test(i, 1.0) for i in ids[:50]) and not any(source.is_test(i, 0.0) for i in ids[:50])


def test_geoscenes_is_one_shard_and_benchmarks_are_all_test(sample_with_bad_rows, tmp_path):
    geo = SourceGroup()
    assert source.plan_shards(geo, 4) == [0] and source.plan_shards(sample_with_bad_rows, 4) == [0, 1, 2, 3]
    with pytest.raises(source.SourceError, match="one shard, not shard 1 of 2"):
        source.build_shard(geo, SynthGroup(n=4), tmp_path / "x", 1, 2)
    bench = BenchmarkGroup(format="im2gps3k", csv=sample_with_bad_rows.csv, images=sample_with_bad_rows.images, max_side=64)
    summary = source.import_benchmark(bench, tmp_path / "bench")
    assert summary["test"] == summary["imported"] == 40 and summary["train"] == 0
    with pytest.raises(source.SourceError, match="no benchmark"):
        source.import_benchmark(BenchmarkGroup(), tmp_path / "none")


def test_data_source_command_synthesizes_or_imports(sample_with_bad_rows, tmp_path):
    runner = CliRunner()
    geo = runner.invoke(app, ["data", "source", "--out", str(tmp_path / "geo"), "--params", "absent.yaml", "--set", "synth.n=12"])
    assert geo.exit_code == 0, geo.output
    assert json.loads(geo.stdout)["records"] == 12 and (tmp_path / "geo" / "world.json").is_file()
    spec = sample_with_bad_rows
    sets = ["source.format=im2gps3k", f"source.csv={spec.csv}", f"source.images={spec.images}", "source.max_side=64"]
    imported = runner.invoke(app, ["data", "source", "--out", str(tmp_path / "photos"), "--params", "absent.yaml",
                                   *[x for s in sets for x in ("--set", s)]])
    assert imported.exit_code == 0, imported.output
    out = json.loads(imported.stdout)
    assert (out["imported"], out["skipped"], out["train"] + out["test"]) == (40, 2, 40)
    missing = runner.invoke(app, ["data", "source", "--out", str(tmp_path / "bad"), "--params", "absent.yaml",
                                  "--set", "source.format=exif-folder", "--set", f"source.images={tmp_path / 'nope'}"])
    assert missing.exit_code == 2 and f"source.images: {tmp_path / 'nope'}: no such folder" in missing.output
