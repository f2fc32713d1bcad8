"""`globe eval models`: several models on the same held-out sets, paired deltas, readable results."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner


def _numbers(doc) -> int:
    if isinstance(doc, dict):
        return sum(_numbers(v) for v in doc.values())
    return int(isinstance(doc, (int, float)) and not isinstance(doc, bool))


@pytest.fixture(scope="module")
def suite(tmp_path_factory, tiny_model_dir):
    from globe.cli import app
    from globe.tiny.geoscenes import synthesize
    from globe.tiny.model import build_tiny

    root = tmp_path_factory.mktemp("suite")
    other = build_tiny(root / "other", seed=1)
    synthesize(root / "in", n=10, seed=1000, non_localizable_share=0.0, test_share=1.0)
    synthesize(root / "shifted", n=6, seed=1001, non_localizable_share=0.0, test_share=1.0)
    args = ["eval", "models", "--model", f"a={tiny_model_dir}", "--model", f"b={other}",
            "--split", f"in_domain={root / 'in'}", "--split", f"shifted={root / 'shifted'}",
            "--compare", "b:a", "--out", str(root / "out"), "--no-progress", "--params", str(root / "none.yaml"),
            "--set", "eval.max_new_tokens=8", "--set", "eval.bootstrap=50", "--set", "eval.gallery_size=2"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return root, args


def test_every_model_on_every_split_with_the_paired_delta(suite):
    root, _ = suite
    out = root / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"in_domain", "shifted"}
    for split, n in (("in_domain", 10), ("shifted", 6)):
        assert set(metrics[split]["a"]) == set(metrics[split]["b"]) == {"country_acc", "acc_25km", "consistency",
                                                                          "wrong_reason"}
        assert set(metrics[split]["b_vs_a"]) == {"country_acc", "acc_25km", "consistency"}
        d = metrics[split]["b_vs_a"]["acc_25km"]
        assert d["lo"] <= d["delta"] <= d["hi"]
        assert json.loads((out / split / "a" / "metrics.json").read_text())["n"] == n
        for model in ("a", "b"):  # each a full, resumable run of the one harness
            assert (out / split / model / "predictions.jsonl").is_file() and (out / split / model / "report.html").is_file()
    assert _numbers(metrics) <= 40  # `dvc metrics show` stays readable
    saved = yaml.safe_load((out / "resolved_config.yaml").read_text())  # the settings this evaluation used
    assert saved["values"]["eval"]["max_new_tokens"] == 8 and saved["sources"]["eval.max_new_tokens"] == "--set"
    full = json.loads((out / "comparisons.json").read_text())
    assert full["in_domain"]["b_vs_a"]["paired"] is True and full["in_domain"]["b_vs_a"]["n_compared"] == 10
    summary = (out / "summary.md").read_text()
    assert "| b − a |" in summary and "**shifted** (6 images)" in summary
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "http://" not in html and "https://" not in html


def test_a_rerun_resumes_every_run_and_bad_arguments_are_clear(suite):
    from globe.cli import app

    root, args = suite
    before = {p: p.stat().st_mtime_ns for p in (root / "out").rglob("predictions.jsonl")}
    assert CliRunner().invoke(app, args).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "out").rglob("predictions.jsonl")} == before
    bad = CliRunner().invoke(app, [("b:c" if a == "b:a" else a) for a in args])
    assert bad.exit_code == 2 and "CANDIDATE:BASELINE" in bad.output
    named = CliRunner().invoke(app, ["eval", "models", "--model", "a", "--split", "x=y", "--out", str(root / "z")])
    assert named.exit_code == 2 and "NAME=PATH" in named.output
