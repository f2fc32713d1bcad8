"""import_data components: the local runner runs the real components (parameter inputs only, as
kfp.local allows), and the merge step is called as a function with artifacts on disk."""

from __future__ import annotations

import json

import pytest
from kfp import local
from kfp.dsl import Dataset, Markdown, Metrics

from globe.kfp.components.import_data.component import check_sources, import_shard, merge_imports


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"), raise_on_error=True)


def test_import_shard_synthesizes_geoscenes_in_the_local_runner(local_runner):
    task = import_shard(base={}, source={"format": "geoscenes"}, synth={"n": 5, "seed": 2}, shard=0, num_shards=4)
    lines = (task.outputs["dataset"].path + "/records.jsonl")
    assert len(open(lines).read().splitlines()) == 5


def test_check_sources_fails_the_run_on_a_bad_spec_and_plans_shards(local_runner, tmp_path, capfd):
    ok = check_sources(source={"format": "exif-folder", "images": str(tmp_path)}, benchmark={}, num_shards=3, dvc_remote="")
    assert ok.output == [0, 1, 2]
    with pytest.raises(RuntimeError, match="check-sources"):
        check_sources(source={"format": "im2gps3k", "csv": str(tmp_path / "gt.csv"), "images": str(tmp_path)},
                      benchmark={}, num_shards=2, dvc_remote="")
    assert f"source.csv: {tmp_path / 'gt.csv'}: no such file" in capfd.readouterr().out  # kfp.local logs the task to stdout


def test_merge_imports_joins_shards_and_writes_the_markdown_report(tmp_path):
    from globe.config import SourceGroup
    from globe.data.source import import_shard as import_part

    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for name in ("a", "b", "c"):
        Image.new("RGB", (40, 30), "red").save(photos / f"{name}.jpg")
    (tmp_path / "gt.csv").write_text("IMG_ID,LAT,LON\na.jpg,48.85,2.35\nb.jpg,95,2\nc.jpg,35.68,139.76\nd.jpg,1,1\n")
    spec = SourceGroup(format="im2gps3k", csv=str(tmp_path / "gt.csv"), images=str(photos), max_side=32)
    shards = [Dataset(uri=str(tmp_path / f"s{k}")) for k in range(2)]
    for k, shard in enumerate(shards):
        import_part(spec, shard.path, k, 2, test_share=0.5)
    out, metrics, report = Dataset(uri=str(tmp_path / "out")), Metrics(uri=str(tmp_path / "m")), Markdown(uri=str(tmp_path / "r.md"))
    merge_imports.python_func(shards=shards, dataset=out, metrics=metrics, report=report)
    assert [json.loads(line)["id"] for line in (tmp_path / "out" / "records.jsonl").read_text().splitlines()] == ["a.jpg", "c.jpg"]
    assert metrics.metadata["imported"] == 2.0 and metrics.metadata["skipped"] == 2.0
    text = (tmp_path / "r.md").read_text()
    assert "| 2 | `b.jpg` |" in text and "| 4 | `d.jpg` |" in text and "| missing image | 1 |" in text
