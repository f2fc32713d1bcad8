"""The three trainers, run for real on the tiny world (tiny Qwen2.5-VL + GeoScenes, CPU, fp32).

One SFT run is shared: its final checkpoint is where GRPO and the DeepSpeed run start; GRPO is
judged by the reward model (tuned from the base model, as the dvc pipeline does). These tests check
the mechanics; whether GRPO *learns* is asserted on held-out images by tests/test_dvc_repro.py,
which runs the main job's full recipe. Everything uses the `tiny-cpu` preset of
params.yaml, i.e. the settings a user gets.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from globe.config import load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"

pytestmark = pytest.mark.slow


def tiny_params(*overrides: str):
    return load_params(PARAMS, preset="tiny-cpu", overrides=list(overrides))


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    from globe.data import read_records
    from globe.tiny.geoscenes import synthesize
    from globe.tiny.model import build_tiny

    root = tmp_path_factory.mktemp("train")
    model = build_tiny(root / "tiny", seed=0)
    synthesize(root / "geoscenes", n=480, seed=0)
    return SimpleNamespace(root=root, model=model, data=root / "geoscenes", records=read_records(root / "geoscenes"))


@pytest.fixture(scope="session")
def sft_run(world):
    """The tiny-cpu SFT, shortened to 400 steps (reading flags is learned by ~300; the landmarks,
    which need the preset's 1,200, are the main job's business)."""
    from globe.train.sft import train_sft

    out = world.root / "sft"
    summary = train_sft(tiny_params("sft.max_steps=400", "sft.save_steps=200"), world.data, out, model=str(world.model))
    return SimpleNamespace(out=out, summary=summary)


@pytest.fixture(scope="session")
def reward_model_run(world):
    """The judge, tuned from the base model (as the dvc pipeline does), logging to a real (sqlite) MLflow store."""
    from globe.train.reward_model import train_reward_model

    out = world.root / "reward_model"
    tracking = f"sqlite:///{world.root / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    try:
        summary = train_reward_model(tiny_params(), world.data, out, model=str(world.model))
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
    return SimpleNamespace(out=out, summary=summary, tracking=tracking)


def read_metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text(encoding="utf-8"))


def test_sft_learns_to_read_the_country_off_the_image(world, sft_run):
    from globe.answer import parse
    from globe.engines import LocalEngine, Request, Sampling
    from globe.data import load_image
    from globe.geo import normalize_country
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM

    metrics = read_metrics(sft_run.out)
    losses = [h["loss"] for h in metrics["log_history"] if "loss" in h]
    assert metrics["summary"]["global_step"] == sft_run.summary["global_step"] > 0
    assert losses[-1] < 0.5 * losses[0]

    # the clean checkpoint at OUT's root goes through the Auto classes (LocalEngine), on held-out images
    held_out = [r for r in world.records if r.split == "test" and r.localizable]
    engine = LocalEngine(sft_run.out, device="cpu", batch_size=16)
    requests = [Request(image=load_image(world.data, r), prompt=GEO_PROMPT, system=GEO_SYSTEM) for r in held_out]
    results = engine.generate(requests, Sampling(max_new_tokens=tiny_params().eval.max_new_tokens, temperature=0.0))
    assert all(r.ok for r in results)
    answers = [parse(r.text) for r in results]
    hits = [normalize_country(a.country or "") == rec.country_code for a, rec in zip(answers, held_out)]
    accuracy = sum(hits) / len(hits)
    assert len(held_out) >= 50 and accuracy >= 0.5, f"held-out country accuracy {accuracy:.2f}"
    assert sum(a.format_ok for a in answers) / len(answers) >= 0.9


def test_sft_refuses_to_overwrite_checkpoints_and_resumes(world, sft_run, tmp_path):
    from globe.train.plan import TrainConfigError
    from globe.train.sft import train_sft

    out = tmp_path / "sft"
    shutil.copytree(sft_run.out, out)
    before = read_metrics(out)
    with pytest.raises(TrainConfigError, match="already holds training checkpoints.*--resume"):
        train_sft(tiny_params(), world.data, out, model=str(world.model))
    assert read_metrics(out) == before  # nothing was touched

    steps = before["summary"]["global_step"]
    more = tiny_params().sft.logging_steps  # enough for one more logged loss
    summary = train_sft(tiny_params(f"sft.max_steps={steps + more}"), world.data, out, model=str(world.model), resume=True)
    assert summary["global_step"] == steps + more
    assert summary["resumed_from"].endswith(f"checkpoint-{steps}")
    logged = [h for h in read_metrics(out)["log_history"] if "loss" in h]
    assert logged[0]["step"] == tiny_params().sft.logging_steps and logged[-1]["step"] > steps  # history carried over
    assert logged[-1]["loss"] < 2 * logged[-2]["loss"]  # it went on from the trained weights, not from scratch


def test_reward_model_separates_localizable_from_non_localizable(world, reward_model_run):
    from globe.answer import parse
    from globe.data import load_image
    from globe.engines import LocalEngine, Request
    from globe.prompts import localizability_prompt

    held_out = [r for r in world.records if r.split == "test"]
    some_reasoning = parse(next(r.reasoning for r in held_out if r.reasoning)).think
    engine = LocalEngine(reward_model_run.out, device="cpu", batch_size=16)  # the merged/plain checkpoint
    requests = [
        Request(image=load_image(world.data, r), prompt=localizability_prompt(parse(r.reasoning).think if r.reasoning else some_reasoning))
        for r in held_out
    ]
    scores = engine.judge(requests)
    assert all(s.ok for s in scores)
    yes = [s.p_yes for s, r in zip(scores, held_out) if r.localizable]
    no = [s.p_yes for s, r in zip(scores, held_out) if not r.localizable]
    assert len(no) >= 5
    assert statistics.mean(yes) - statistics.mean(no) > 0.5, (statistics.mean(yes), statistics.mean(no))

    # logged to MLflow through TRL's report_to
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=reward_model_run.tracking)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and "loss" in runs[0].data.metrics
    assert runs[0].data.params["learning_rate"] == str(tiny_params().reward_model.learning_rate)


def test_lora_reward_model_is_merged_into_a_plain_checkpoint(world, tmp_path):
    """The 8-GPU preset's path (LoRA + merge), for a few steps: mechanics only."""
    import torch
    from safetensors.torch import load_file

    from globe.data import load_image
    from globe.engines import LocalEngine, Request
    from globe.prompts import localizability_prompt
    from globe.train.reward_model import train_reward_model

    out = tmp_path / "rm_lora"
    params = tiny_params("reward_model.lora=true", "reward_model.max_steps=3", "reward_model.learning_rate=0.05")
    train_reward_model(params, world.data, out, model=str(world.model))
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged, base = load_file(out / "model.safetensors"), load_file(Path(world.model) / "model.safetensors")
    assert not any("lora" in k for k in merged) and set(merged) == set(base)
    assert any(not torch.equal(merged[k], base[k]) for k in base)
    score = LocalEngine(out, device="cpu").judge([Request(image=load_image(world.data, world.records[0]), prompt=localizability_prompt())])
    assert score[0].ok and 0.0 < score[0].p_yes < 1.0


def test_sft_with_counterfactual_traces_runs_through_the_real_trainer(world, tmp_path):
    """`sft.counterfactual_traces`: the extra rows reach the collator with their flag (the plan keeps
    unused columns) and train; a trainer that would drop the flag is refused before any weight loads."""
    from globe.train.datasets import sft_dataset
    from globe.train.plan import TrainConfigError
    from globe.train.sft import train_sft

    plain = len(sft_dataset(world.data))
    params = tiny_params("sft.counterfactual_traces=0.5", "sft.max_steps=3", "sft.logging_steps=1")
    summary = train_sft(params, world.data, tmp_path / "sft_cf", model=str(world.model))
    assert summary["global_step"] == 3
    assert summary["examples"] == pytest.approx(1.5 * plain, abs=3)
    abroad = train_sft(tiny_params("sft.counterfactual_traces=0.5", "sft.counterfactual_scope=world", "sft.max_steps=2"),
                       world.data, tmp_path / "sft_cf_world", model=str(world.model))
    assert abroad["global_step"] == 2 and abroad["examples"] == pytest.approx(1.5 * plain, abs=3)
    assert abroad["counterfactual"] == {"traces": 0.5, "scope": "world"}  # what ran is recorded (metrics.json)
    with pytest.raises(TrainConfigError, match="remove_unused_columns"):
        train_sft(tiny_params("sft.counterfactual_traces=0.5", "sft.max_steps=1", "sft.extra.remove_unused_columns=true"),
                  world.data, tmp_path / "sft_cf_dropped", model=str(world.model))


def test_the_follows_gate_probes_inside_the_real_trainer_and_records_every_probe(world, sft_run, tmp_path):
    """`sft.follows_target`: the gate probes at the planned steps only, logs `follows/*` beside the
    loss, and a target the run never reaches leaves max_steps' model with `met_at` None."""
    from globe.train.sft import train_sft

    params = tiny_params("sft.counterfactual_traces=0.5", "sft.max_steps=4", "sft.logging_steps=1",
                         "sft.follows_target=1.0", "sft.follows_every=2", "sft.follows_min_steps=3")
    summary = train_sft(params, world.data, tmp_path / "gated", model=str(sft_run.out))
    gate = summary["follows_gate"]
    assert summary["global_step"] == 4 and gate["met_at"] is None
    assert [p["step"] for p in gate["probes"]] == [4] and gate["probes"][0]["tried"] == gate["cases"] > 0
    logged = [h for h in read_metrics(tmp_path / "gated")["log_history"] if "follows/follows" in h]
    assert [h["step"] for h in logged] == [4] and logged[0]["follows/follows"] == gate["probes"][0]["follows"]


def test_the_follows_gate_stops_training_once_the_answers_follow_often_enough(world, sft_run):
    """The gate's decision on a real model: a target at the measured share stops the run (at once
    without a decay), one just above it does not; steps off the schedule are not probed."""
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerControl, TrainerState

    from globe.train.follows import FollowsGate, answer_follows, dev_cases

    processor = AutoProcessor.from_pretrained(sft_run.out)
    model = AutoModelForImageTextToText.from_pretrained(sft_run.out)
    cases = dev_cases(world.data)[:24]
    share = answer_follows(model, processor, cases).follows

    def step(target: float, global_step: int) -> tuple[FollowsGate, TrainerControl]:
        gate, control = FollowsGate(processor, cases, target=target, every=5, decay_steps=0), TrainerControl()
        gate.on_step_end(None, TrainerState(global_step=global_step), control, model=model)
        return gate, control

    met, control = step(share, 10)
    assert control.should_training_stop and met.met_at == 10
    assert met.history[0]["follows"] == share
    short, control = step(share + 1e-6, 10)
    assert not control.should_training_stop and short.met_at is None and len(short.history) == 1
    off, control = step(share, 11)
    assert not control.should_training_stop and off.history == []


def test_freeze_vision_freezes_exactly_the_vision_tower(world):
    from globe.train.run import load_model

    model, _ = load_model(str(world.model), freeze_vision=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(".visual." in f".{n}" for n in frozen)
    assert any(p.requires_grad for n, p in model.named_parameters() if "visual" not in n)


GRPO_STEPS = 12


@pytest.fixture(scope="session")
def grpo_run(world, sft_run, reward_model_run):
    """A few GRPO steps from the SFT start with the tiny recipe's rewards (the paper's four and ours): mechanics only
    (learning is asserted on held-out images by tests/test_dvc_repro.py, with the full recipe)."""
    from globe.train.grpo import train_grpo

    out = world.root / "grpo"
    results = world.root / "results_grpo"
    summary = train_grpo(
        tiny_params(f"grpo.max_steps={GRPO_STEPS}", "grpo.logging_steps=4", "grpo.skip_flat_groups=accuracy"),
        world.data, out, model=str(sft_run.out), reward_model=str(reward_model_run.out), results=results,
    )
    return SimpleNamespace(out=out, summary=summary, results=results)


def test_grpo_split_advantage_runs_through_the_real_trainer(world, sft_run, reward_model_run, tmp_path):
    """`grpo.split_advantage`: the real GRPOTrainer takes the per-token advantages and logs where the
    completions were split; a run with no reward for one side is refused before any weight loads."""
    from globe.train.grpo import train_grpo
    from globe.train.plan import TrainConfigError

    train_grpo(tiny_params("grpo.max_steps=4", "grpo.logging_steps=2", "grpo.split_advantage=true"),
               world.data, tmp_path / "grpo_split", model=str(sft_run.out), reward_model=str(reward_model_run.out))
    logged = [h for h in read_metrics(tmp_path / "grpo_split")["log_history"] if "split/reasoning_token_frac" in h]
    assert len(logged) == 2
    for h in logged:  # the 400-step SFT start closes its reasoning: every completion is split, inside it
        assert h["split/unsplit_frac"] == 0.0 and 0.2 < h["split/reasoning_token_frac"] < 0.9
    with pytest.raises(TrainConfigError, match="reads the reasoning"):
        train_grpo(tiny_params("grpo.split_advantage=true", *(f"rewards.weights.{n}=0" for n in
                               ("reasoning_accuracy", "grounding", "localizability", "format", "consistency"))),
                   world.data, tmp_path / "grpo_split_refused", model=str(sft_run.out))


def test_grpo_logs_what_explains_the_run(grpo_run):
    summary = grpo_run.summary
    params = tiny_params()
    assert summary["global_step"] == GRPO_STEPS
    history = read_metrics(grpo_run.out)["log_history"]
    logged = [h for h in history if "reward" in h]
    assert logged
    for name in ("accuracy", "localizability", "grounding", "format", "reasoning_accuracy", "consistency"):
        for h in logged:  # each reward's mean on the sampled completions and its share of flat groups
            assert {f"rewards/{name}/mean", f"rewards/{name}/std", f"rewards/{name}/zero_std_frac"} <= set(h)
            assert 0.0 <= h[f"rewards/{name}/zero_std_frac"] <= 1.0
        assert set(summary["rewards"][name]) == {"weight", "mean", "zero_std_frac"}
    assert all(0.0 <= h["flat_groups_skipped"] <= 1.0 for h in logged)  # grpo.skip_flat_groups=accuracy
    for key in ("completions/mean_length", "completions/clipped_ratio", "kl"):
        assert summary["diagnostics"][key]["last"] is not None
    head = summary["headline"]
    assert head["completion_length_last"] > 0 and 0.0 <= head["clipped_share_last"] <= 1.0
    assert isinstance(summary["warnings"], list) and head["warnings"] == len(summary["warnings"])
    # the judge scored every completion; failures are counted, not hidden; duplicates judged once
    failures = summary["reward_failures"]
    per_step = params.grpo.per_device_train_batch_size
    assert failures["localizability"]["failures"] == 0
    assert failures["localizability"]["calls"] == failures["accuracy"]["calls"] == GRPO_STEPS * per_step
    assert 0 < failures["localizability"]["judge_forward_requests"] <= GRPO_STEPS * per_step
    assert summary["reward_weights"] == {"accuracy": 1.0, "localizability": 0.5, "grounding": 0.2, "format": 1.0,
                                         "reasoning_accuracy": 1.0, "consistency": 1.25}
    timing = summary["timing"]
    assert timing["steps_timed"] == GRPO_STEPS - 1 and 0 < timing["reward_s"] < timing["step_s"]  # step 1 is warm-up
    assert (grpo_run.out / "model.safetensors").is_file() and (grpo_run.out / "processor_config.json").is_file()
    # --results: the headline alone (what `dvc metrics show` prints) and the curves for `dvc plots`
    shown = json.loads((grpo_run.results / "metrics.json").read_text())
    assert shown["global_step"] == GRPO_STEPS and "accuracy_last" in shown and len(shown) <= 40
    curves = (grpo_run.results / "curves.csv").read_text().splitlines()
    assert curves[0].startswith("step,loss,reward,rewards/accuracy/mean") and len(curves) == 1 + len(logged)


def test_grpo_without_a_judge_stops_before_loading_anything(world, tmp_path):
    from globe.train.grpo import train_grpo
    from globe.train.plan import TrainConfigError

    with pytest.raises(TrainConfigError, match="no reward model is given"):
        train_grpo(tiny_params(), world.data, tmp_path / "grpo", model=str(world.model))
    assert not (tmp_path / "grpo").exists()


def test_deepspeed_zero2_grpo_runs_single_process_on_cpu(world, sft_run, tmp_path):
    """`python -m globe train grpo` (what torchrun runs on each rank) with DeepSpeed ZeRO-2 on CPU."""
    out = tmp_path / "grpo_ds"
    env = {
        **os.environ,
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
    }  # fmt: skip
    cmd = [
        sys.executable, "-m", "globe", "train", "grpo", "--params", str(PARAMS), "--preset", "tiny-cpu",
        "--model", str(sft_run.out), "--data", str(world.data), "--out", str(out),
        "--set", "grpo.deepspeed=zero2", "--set", "grpo.use_cpu=false", "--set", "grpo.max_steps=2",
        "--set", "grpo.logging_steps=1", "--set", "rewards.weights.localizability=0",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = read_metrics(out)["summary"]
    assert summary["global_step"] == 2 and "localizability" not in summary["reward_weights"]
    assert list(out.glob("checkpoint-2/global_step2")), "no DeepSpeed engine checkpoint: DeepSpeed was not used"
    assert (out / "model.safetensors").is_file()
    saved = yaml.safe_load((out / "resolved_config.yaml").read_text())  # the settings it ran with, and from where
    assert saved["values"]["grpo"]["max_steps"] == 2 and saved["sources"]["grpo.max_steps"] == "--set"
    assert saved["sources"]["grpo.torch_threads"] == "--preset tiny-cpu" and "sft" not in saved["values"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
