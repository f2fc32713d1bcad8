"""version_dataset: called as a function with artifacts on disk and a local DVC remote."""

from __future__ import annotations

import yaml
from kfp.dsl import Artifact, Dataset, Markdown, Metrics

from globe.kfp.components.version_dataset.component import version_dataset


def test_the_dvc_file_is_the_output_and_the_md5_its_metric(tmp_path):
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "records.jsonl").write_text('{"id": "a"}\n')
    (data / "images" / "a.jpg").write_bytes(b"jpeg")
    dvc_file, metrics, summary = Artifact(uri=str(tmp_path / "dvc_file")), Metrics(uri=str(tmp_path / "m")), Markdown(uri=str(tmp_path / "s.md"))
    md5 = version_dataset.python_func(dataset=Dataset(uri=str(data)), name="verified", remote=str(tmp_path / "remote"),
                                      run_id="run-1", dvc_file=dvc_file, metrics=metrics, summary=summary)
    doc = yaml.safe_load((tmp_path / "dvc_file").read_text())
    assert doc["outs"][0]["md5"] == md5 and md5.endswith(".dir") and doc["outs"][0]["nfiles"] == 2
    assert doc["meta"] == {"remote": str(tmp_path / "remote"), "dataset": "verified", "pipeline_run_id": "run-1"}
    assert (tmp_path / "remote" / "files" / "md5" / md5[:2] / md5[2:]).is_file()  # DVC's cache layout
    assert dvc_file.metadata["md5"] == metrics.metadata["dvc_md5"] == md5 and metrics.metadata["nfiles"] == 2.0
    assert "dvc pull verified.dvc" in (tmp_path / "s.md").read_text()
