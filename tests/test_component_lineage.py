"""lineage: called as a function with the datasets' .dvc files on disk."""

from __future__ import annotations

import json

from kfp.dsl import Artifact, Markdown

from globe.kfp.components.lineage.component import lineage


def test_lineage_json_names_the_data_images_run_and_params(tmp_path):
    files = {}
    for name, md5 in (("source", "aa"), ("distilled", "bb"), ("verified", "cc"), ("heldout", "dd")):
        (tmp_path / name).write_text(f"outs:\n- md5: {md5}.dir\n  size: 9\n  nfiles: 3\n  hash: md5\n  path: {name}\nmeta:\n  remote: s3://globe/dvc\n")
        files[f"{name}_dvc"] = Artifact(uri=str(tmp_path / name))
    groups = dict.fromkeys(("base", "source", "synth", "heldout", "distill", "verify", "rewards", "sft", "reward_model",
                            "grpo", "eval", "benchmark", "register", "serve"), {})
    groups["sft"] = {"epochs": 3}
    out, summary = Artifact(uri=str(tmp_path / "lineage.json")), Markdown(uri=str(tmp_path / "s.md"))
    lineage.python_func(**groups, **files, run_id="run-9", data_image="cpu:1", train_image="train:1", grpo_image="train:2",
                        lineage=out, summary=summary)
    found = json.loads((tmp_path / "lineage.json").read_text())
    # training on the verified data; evaluation on the unverified held-out set, as dvc repro does
    assert (found["train_data.md5"], found["eval_data.md5"], found["data.source.md5"]) == ("cc.dir", "dd.dir", "aa.dir")
    assert (found["image.grpo"], found["pipeline_run_id"], found["dvc_remote"]) == ("train:2", "run-9", "s3://globe/dvc")
    params = json.loads(found["params"])
    assert params["sft"]["epochs"] == 3 and params["source"]["format"] == "geoscenes"  # defaults filled in, validated
    assert "dd.dir" in (tmp_path / "s.md").read_text() and '"params"' not in (tmp_path / "s.md").read_text()
