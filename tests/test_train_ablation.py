"""`globe train ablate`: every variant from the same SFT start, paired deltas, a resumable run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from globe.train.ablation import VARIANTS, ablation_table


def _row(variant, seed, acc, delta=None):
    metrics = {"n": 400, "country_acc": 0.9, "acc_25km": acc, "median_km": 2.0}
    if delta is not None:
        metrics["vs_sft"] = {k: {"delta": delta, "ci": [delta - 0.03, delta + 0.03]} for k in ("country_acc", "acc_25km")}
    return {"variant": variant, "seed": seed, "metrics": metrics}


def test_the_table_gives_means_ranges_every_seeds_interval_and_the_verdict():
    rows = [_row("sft", 0, 0.5), _row("sft", 1, 0.6), _row("globe", 0, 0.8, 0.3), _row("globe", 1, 0.62, 0.02),
            _row("sft-longer", 0, 0.55, 0.05), _row("sft-longer", 1, 0.61, 0.01)]
    table = ablation_table(rows, list(VARIANTS))
    line = {cells.split("|")[1].strip(): cells for cells in table.splitlines() if cells.startswith("| ")}
    assert "55.0% [50.0, 60.0]" in line["sft"] and line["sft"].rstrip().endswith("| – |")
    assert "+30.0 [+27.0, +33.0]; +2.0 [-1.0, +5.0]" in line["globe"]
    assert line["globe"].rstrip().endswith("| no |")  # seed 1's interval reaches below 0
    assert "grpo-accuracy" not in line  # variants that were not run are left out


def test_the_faithfulness_table_gives_each_seeds_delta_against_accuracy_only_grpo():
    from globe.train.ablation import faithfulness_table

    rows = []
    for seed, (acc_only, mine) in enumerate(((0.70, 0.96), (0.72, 0.95))):
        rows.append({"variant": "grpo-accuracy", "seed": seed, "metrics": {"consistency": acc_only, "wrong_reason": 0.2}})
        rows.append({"variant": "globe-faithful", "seed": seed, "metrics": {
            "consistency": mine, "wrong_reason": 0.01,
            "vs_grpo-accuracy": {"consistency": {"delta": mine - acc_only, "ci": [mine - acc_only - 0.05, mine - acc_only + 0.05]}}}})
    table = faithfulness_table(rows, list(VARIANTS))
    line = {cells.split("|")[1].strip(): cells for cells in table.splitlines() if cells.startswith("| ")}
    assert "| 71.0% | 20.0% |" in line["grpo-accuracy"]
    assert "+26.0 [+21.0, +31.0]; +23.0 [+18.0, +28.0]" in line["globe-faithful"]


@pytest.mark.slow
def test_a_small_ablation_runs_resumes_and_writes_its_table(tmp_path):
    from globe.cli import app

    params = tmp_path / "params.yaml"
    params.write_text(
        "synth: {n: 80}\nheldout: {n: 12, shifted_n: 4}\nsft: {max_steps: 30, logging_steps: 10, learning_rate: 5.0e-3}\n"
        "grpo: {max_steps: 3, per_device_train_batch_size: 8, num_generations: 4, max_completion_length: 24,"
        " logging_steps: 1, learning_rate: 1.0e-4}\n"
        "eval: {max_new_tokens: 24, bootstrap: 20, gallery_size: 2, batch_size: 16}\n"
        "distill: {teachers: [{name: r, kind: scene-reader, noise: 0.1}]}\n"
    )
    args = ["train", "ablate", "--out", str(tmp_path / "abl"), "--seeds", "2", "--params", str(params),
            "--variant", "sft", "--variant", "sft-longer", "--variant", "grpo-accuracy"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    rows = json.loads((tmp_path / "abl" / "ablation.json").read_text())
    assert sorted((r["variant"], r["seed"]) for r in rows) == sorted(
        (v, s) for v in ("sft", "sft-longer", "grpo-accuracy") for s in (0, 1))
    for r in rows:
        assert r["metrics"]["n"] == 12 and 0.0 <= r["metrics"]["acc_25km"] <= 1.0
        assert ("vs_sft" in r["metrics"]) == (r["variant"] != "sft")
    longer = json.loads((tmp_path / "abl" / "seed-0" / "sft-longer" / "metrics.json").read_text())["summary"]
    assert longer["global_step"] == 3  # the GRPO budget, in optimizer steps
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| sft-longer |" in table and "| grpo-accuracy |" in table and (tmp_path / "abl" / "ablation.png").is_file()

    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "abl").glob("seed-*/*/model.safetensors")}
    assert CliRunner().invoke(app, args).exit_code == 0  # resumed: nothing is trained again
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "abl").glob("seed-*/*/model.safetensors")} == stamp
    bad = CliRunner().invoke(app, [*args, "--variant", "nope"])
    assert bad.exit_code == 2 and "unknown variant" in bad.output
    # run with other settings (another params.yaml, or none): the runs there are refused, not reused
    other = CliRunner().invoke(app, [*args, "--set", "grpo.learning_rate=3e-4"])
    assert other.exit_code == 2, other.output
    assert "runs trained with other settings" in other.output
    assert "seed-0/grpo-accuracy: learning_rate 0.0001, not 0.0003" in other.output and "seed-1/grpo-accuracy" in other.output
    assert "sft-longer" not in other.output  # its settings did not change
    # settings that are not TrainingArguments: SFT's counterfactual traces, recorded in metrics.json
    from globe.config import Params, load_params
    from globe.train.ablation import seed_params, settings_mismatch

    recipe = seed_params(load_params(params), 0)
    world = Params.model_validate({**recipe.model_dump(), "sft": {**recipe.sft.model_dump(), "counterfactual_traces": 0.25,
                                                                  "counterfactual_scope": "world"}})
    sft = tmp_path / "abl" / "seed-0" / "sft"
    assert settings_mismatch("sft", recipe, sft, "m") == []
    assert any("counterfactual traces None, not {'traces': 0.25, 'scope': 'world'}" in d
               for d in settings_mismatch("sft", world, sft, "m"))
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "abl").glob("seed-*/*/model.safetensors")} == stamp


def test_globe_faithful_is_the_shipped_recipes_rewards():
    """docs/train.md reads the ablation's `globe-faithful` as the main job's GRPO: its weights must
    be params.yaml's, so that changing the recipe's weights without the variant's fails here."""
    from pathlib import Path

    from globe.config import load_params

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    assert dict(VARIANTS["globe-faithful"].weights) == dict(params.rewards.weights)
