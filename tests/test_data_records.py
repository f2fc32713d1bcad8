"""Records: validation with clear errors, atomic rewrites, crash-safe resumable appends."""

from __future__ import annotations

import json

import pytest

from globe.data.records import JsonlAppender, Record, RecordsError, append_record, read_records, write_records


def rec(i: int, **kw) -> Record:
    return Record(id=f"r{i}", image=f"images/{i}.jpg", image_sha256="0" * 64, lat=10.0 + i, lon=20.0, **kw)


def test_roundtrip_dir_and_file(tmp_path):
    records = [rec(i, entities=["dome landmark"], localizable=True) for i in range(3)]
    target = write_records(tmp_path / "ds", records)
    assert target == tmp_path / "ds" / "records.jsonl"
    assert read_records(tmp_path / "ds") == records
    assert read_records(target) == records


def test_invalid_line_names_file_line_and_field(tmp_path):
    write_records(tmp_path, [rec(0)])
    bad = json.loads(rec(1).model_dump_json())
    bad["lat"] = 123.0
    with open(tmp_path / "records.jsonl", "a") as fh:
        fh.write(json.dumps(bad) + "\n")
    with pytest.raises(RecordsError, match=r"records\.jsonl:2: invalid record: lat"):
        read_records(tmp_path)


def test_failed_rewrite_keeps_the_old_file(tmp_path):
    write_records(tmp_path, [rec(0), rec(1)])
    before = (tmp_path / "records.jsonl").read_bytes()

    def exploding():
        yield rec(5)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_records(tmp_path, exploding())
    assert (tmp_path / "records.jsonl").read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_appender_drops_torn_tail_and_resumes(tmp_path):
    path = tmp_path / "records.jsonl"
    for i in range(3):
        append_record(path, rec(i))
    whole = path.read_bytes()
    path.write_bytes(whole + rec(3).model_dump_json().encode()[:40])  # what SIGKILL mid-write leaves
    with JsonlAppender(path) as app:
        assert app.done == {"r0", "r1", "r2"}
        assert app.dropped_tail_bytes == 40
        app.append(rec(3))
        with pytest.raises(RecordsError, match="already written"):
            app.append(rec(3))
    assert [r.id for r in read_records(path)] == ["r0", "r1", "r2", "r3"]


def test_an_appender_that_writes_nothing_leaves_an_empty_readable_records_file(tmp_path):
    """Every row skipped (import) or every teacher failed (distill): the reader still finds a file."""
    path = tmp_path / "new" / "records.jsonl"
    with JsonlAppender(path) as app:
        assert not app.done
    assert path.read_bytes() == b"" and read_records(path) == []


def test_appender_refuses_to_truncate_damage_in_the_middle(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(rec(0).model_dump_json() + "\n{broken\n" + rec(1).model_dump_json() + "\n")
    with pytest.raises(RecordsError, match="refusing to truncate"):
        JsonlAppender(path)
    assert path.read_text().count("\n") == 3  # untouched


def test_records_naming_images_outside_the_dataset_are_refused_by_every_reader(tmp_path):
    """distill, verify, train and eval all read records through iter_records: one rule for all."""
    from PIL import Image

    from globe.config import DistillGroup, TeacherConfig, VerifyGroup
    from globe.data.distill import DistillError, distill
    from globe.data.verify import VerifyError, verify
    from globe.evaluate.benchmarks import load_benchmark
    from globe.train.datasets import TrainDataError, load_split

    (tmp_path / "outside.png").write_bytes(b"secret")
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(ds / "images" / "ok.png")
    (ds / "images" / "link.png").symlink_to(tmp_path / "outside.png")
    for bad in ("../outside.png", str(tmp_path / "outside.png"), "images/link.png", "images/../../outside.png"):
        write_records(ds, [Record(id="a", image="images/ok.png", image_sha256="0" * 64, lat=1, lon=1, split="test"),
                           Record(id="b", image=bad, image_sha256="0" * 64, lat=1, lon=1, split="test")])  # fmt: skip
        with pytest.raises(RecordsError, match=r"records\.jsonl:2: record b: image .* is outside the images folder"):
            read_records(ds)
        with pytest.raises(DistillError, match="outside the images folder"):
            distill(ds, tmp_path / "distilled", DistillGroup(teachers=[TeacherConfig(name="t", kind="scene-reader")]), progress=False)
        with pytest.raises(VerifyError, match="outside the images folder"):
            verify(ds, tmp_path / "verified", VerifyGroup())
        with pytest.raises(TrainDataError, match="outside the images folder"):
            load_split(ds)
        with pytest.raises(ValueError, match="outside the images folder"):
            load_benchmark("geoscenes", path=ds)
    for key in ("imgs/../secret.png", "/abs.png", "imgs//x.png", "imgs\\..\\x.png"):
        write_records(ds, [Record(id="s", image=f"s3://bucket/{key}", image_sha256="0" * 64, lat=1, lon=1)])
        with pytest.raises(RecordsError, match="refusing an ambiguous key"):
            read_records(ds)
    write_records(ds, [Record(id="s", image="s3://bucket/imgs/x.png", image_sha256="0" * 64, lat=1, lon=1)])
    assert read_records(ds)[0].image == "s3://bucket/imgs/x.png"
