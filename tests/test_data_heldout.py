"""The held-out rule both DAGs share (globe.data.heldout): `globe data heldout` and `globe eval models`
on an imported real-photo source (the test split only; the shifted output is a marker that the
evaluation skips with a note) and on the tiny world (both renderings)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"): output.rindex("}") + 1])


@pytest.fixture(scope="module")
def photos(shared_data, tmp_path_factory):
    """40 real IM2GPS3K photos imported as dvc's data stage does (`globe data source`), then the
    heldout stage's two commands, as dvc.yaml spells them, on that source."""
    from globe.cli import app

    sample = shared_data / "im2gps3k_sample"
    root = tmp_path_factory.mktemp("heldout")
    spec = ["--params", str(root / "none.yaml"), "--set", "source.format=im2gps3k",
            "--set", f"source.csv={sample / 'im2gps3k_sample40.csv'}", "--set", f"source.images={sample / 'images'}",
            "--set", "source.max_side=64"]
    res = CliRunner().invoke(app, ["data", "source", "--out", str(root / "source"), *spec])
    assert res.exit_code == 0, res.output
    made = {}
    for name, extra in (("heldout", []), ("shifted", ["--shifted"])):
        res = CliRunner().invoke(app, ["data", "heldout", "--data", str(root / "source"), *extra,
                                       "--out", str(root / name), *spec])
        assert res.exit_code == 0, res.output
        made[name] = _json(res.output)
    return root, spec, made


def test_an_imported_source_keeps_its_test_split_and_marks_the_missing_shifted_set(photos):
    from globe.data.heldout import NO_SHIFTED_SET
    from globe.data.records import read_records

    root, _, made = photos
    test = [r for r in read_records(root / "source") if r.split == "test"]
    kept = read_records(root / "heldout")
    assert made["heldout"]["records"] == len(kept) == len(test) > 0
    assert [r.id for r in kept] == [r.id for r in test] and {r.split for r in kept} == {"test"}
    assert all((root / "heldout" / r.image).read_bytes() == (root / "source" / r.image).read_bytes() for r in kept)
    assert made["shifted"]["records"] == 0 and made["shifted"]["shifted"] is True
    assert sorted(p.name for p in (root / "shifted").iterdir()) == [NO_SHIFTED_SET]
    assert "source.format is im2gps3k" in (root / "shifted" / NO_SHIFTED_SET).read_text()


def test_the_cli_and_the_kfp_step_write_the_same_sets(photos, tmp_path):
    """One rule, one home: the KFP heldout step writes what `globe data heldout` wrote."""
    from globe.data.records import read_records
    from globe.kfp import steps

    root, _, _ = photos
    sample_groups = {"source": {"format": "im2gps3k", "csv": "s3://b/gt.csv", "images": "s3://b/images/"}}
    made = steps.heldout_sets(sample_groups, root / "source", tmp_path / "in", tmp_path / "shifted")
    assert set(made) == {"in_domain"}
    assert (tmp_path / "in" / "records.jsonl").read_bytes() == (root / "heldout" / "records.jsonl").read_bytes()
    assert [p.name for p in (tmp_path / "shifted").iterdir()] == [steps.NO_SHIFTED_SET]
    assert len(read_records(tmp_path / "in")) == made["in_domain"]["n"]


def test_heldout_without_the_source_or_with_an_empty_test_split_says_what_is_missing(photos, tmp_path):
    from globe.cli import app
    from globe.data.records import read_records, write_records

    root, spec, _ = photos
    res = CliRunner().invoke(app, ["data", "heldout", "--out", str(tmp_path / "h"), *spec])
    assert res.exit_code == 2 and "--data data/source" in res.output
    train_only = tmp_path / "train_only"
    write_records(train_only, [r for r in read_records(root / "source") if r.split == "train"])
    res = CliRunner().invoke(app, ["data", "heldout", "--data", str(train_only), "--out", str(tmp_path / "h"), *spec])
    assert res.exit_code == 2 and f"{train_only / 'records.jsonl'}: no records in the test split" in res.output.replace("\n", "")


def test_a_directory_is_a_set_or_a_marker_never_both(photos, tmp_path):
    """Written again for the other kind of source, the directory holds only what the params say."""
    from globe.config import load_params
    from globe.data.heldout import NO_SHIFTED_SET, write_heldout

    root, _, _ = photos
    out = tmp_path / "shifted"
    tiny = load_params(None, overrides=["heldout.shifted_n=3", "synth.image_size=56"])
    write_heldout(tiny, out, shifted=True)
    photo = load_params(None, overrides=["source.format=exif-folder", "source.images=s3://b/photos/"])
    write_heldout(photo, out, root / "source", shifted=True)
    assert [p.name for p in out.iterdir()] == [NO_SHIFTED_SET]
    made = write_heldout(tiny, out, shifted=True)
    assert made["n"] == 3 and not (out / NO_SHIFTED_SET).exists()


def test_eval_models_skips_the_split_the_source_does_not_have(photos, tiny_model_dir):
    """dvc's evaluate command on an imported source: in_domain is scored, the shifted marker is
    skipped with a note (not scored, not an error), and results/evaluate/shifted says why."""
    from globe.cli import app
    from globe.evaluate.suite import NOT_SCORED

    root, spec, made = photos
    out = root / "evaluate"
    cheap = ["--set", "eval.max_new_tokens=8", "--set", "eval.bootstrap=20", "--set", "eval.gallery_size=2"]
    res = CliRunner().invoke(app, ["eval", "models", "--model", f"sft={tiny_model_dir}", "--model", f"grpo={tiny_model_dir}",
                                   "--split", f"in_domain={root / 'heldout'}", "--split", f"shifted={root / 'shifted'}",
                                   "--compare", "grpo:sft", "--out", str(out), "--no-progress", *spec, *cheap])
    assert res.exit_code == 0, res.output
    assert "note: split shifted not scored: source.format is im2gps3k" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"in_domain"} and set(metrics["in_domain"]) == {"sft", "grpo", "grpo_vs_sft"}
    assert json.loads((out / "in_domain" / "grpo" / "metrics.json").read_text())["n"] == made["heldout"]["records"]
    assert [p.name for p in (out / "shifted").iterdir()] == [NOT_SCORED]
    assert "**shifted**: not scored (source.format is im2gps3k" in (out / "summary.md").read_text()


def test_eval_models_refuses_a_marker_where_the_params_want_a_set_and_names_a_missing_split(photos, tiny_model_dir, tmp_path):
    """The tiny world has a shifted set: a marker there is stale data, and a missing split is an
    error naming its path before any model runs."""
    from globe.cli import app

    root, _, _ = photos
    base = ["eval", "models", "--model", f"a={tiny_model_dir}", "--out", str(tmp_path / "out"), "--no-progress",
            "--params", str(tmp_path / "none.yaml"), "--set", "eval.max_new_tokens=8"]
    res = CliRunner().invoke(app, [*base, "--split", f"in_domain={root / 'heldout'}", "--split", f"shifted={root / 'shifted'}"])
    assert res.exit_code == 2, res.output
    assert f"split shifted: {root / 'shifted'} holds no held-out set" in res.output.replace("\n", "")
    res = CliRunner().invoke(app, [*base, "--split", f"in_domain={root / 'heldout'}", "--split", f"shifted={tmp_path / 'nope'}"])
    assert res.exit_code == 2 and f"{tmp_path / 'nope'}: not a dataset directory" in res.output.replace("\n", "")
    assert not (tmp_path / "out" / "in_domain").exists()  # nothing ran before the bad split was found
