"""Trainer-config resolution and `--dry-run`: the 8-GPU preset validates, broken configs fail clearly.

Nothing here loads a model: the point of the plan is to catch a bad cluster config on a laptop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from globe.cli import app
from globe.config import load_params
from globe.train.plan import TrainConfigError, dry_run, make_plan, problems

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
PRESET = "qwen2.5-vl-7b-8gpu"


def plan_for(stage: str, *overrides: str, preset: str | None = PRESET, **kw):
    params = load_params(PARAMS, preset=preset, overrides=list(overrides))
    return make_plan(stage, params, "out", **kw)


def test_8gpu_grpo_preset_resolves_to_the_papers_settings():
    doc = dry_run(plan_for("grpo", reward_model="results/reward_model"))
    args = doc["trainer"]["args"]
    assert doc["valid"] and doc["trainer"]["class"] == "trl.GRPOConfig" and doc["world_size"] == 8
    assert args["learning_rate"] == 1e-6 and args["beta"] == 0.001 and args["temperature"] == 1.0
    assert args["num_generations"] == 16 and args["max_completion_length"] == 1024
    assert args["bf16"] is True and args["use_cpu"] is False
    assert args["gradient_checkpointing"] is True and args["activation_checkpointing"] is True
    assert args["use_vllm"] is True and args["vllm_mode"] == "colocate"
    # DeepSpeed "auto" values filled exactly as transformers fills them, for 8 processes
    ds = doc["deepspeed"]
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    assert ds["train_micro_batch_size_per_gpu"] == 8 and ds["gradient_accumulation_steps"] == 2
    assert ds["train_batch_size"] == 8 * 8 * 2 == doc["derived"]["global_batch"]
    assert doc["derived"]["prompts_per_generation"] == 128 // 16
    weights = doc["rewards"]["weights"]  # the paper's four train; ours are logged at weight 0 and train nothing
    assert {k: w for k, w in weights.items() if w} == {"accuracy": 1.0, "localizability": 0.5, "grounding": 0.2, "format": 1.0}
    assert {k: w for k, w in weights.items() if not w} == {"reasoning_accuracy": 0.0, "consistency": 0.0}
    assert "torch_threads" in doc and doc["peft"] is None
    json.dumps(doc, default=str)  # one JSON document


def test_8gpu_sft_and_reward_model_presets_validate():
    sft = dry_run(plan_for("sft"))
    assert sft["trainer"]["class"] == "trl.SFTConfig" and sft["deepspeed"]["zero_optimization"]["stage"] == 3
    assert sft["freeze_vision"] is True and sft["derived"]["global_batch"] == 1 * 8 * 8
    rm = dry_run(plan_for("reward_model"))
    assert rm["peft"]["r"] == 16 and rm["peft"]["lora_alpha"] == 64
    assert rm["deepspeed"]["zero_optimization"]["stage"] == 2


def test_batch_not_divisible_by_num_generations_fails_with_the_arithmetic():
    plan = plan_for("grpo", "grpo.per_device_train_batch_size=5", "grpo.gradient_accumulation_steps=1",
                    reward_model="rm")
    with pytest.raises(TrainConfigError) as err:
        dry_run(plan)
    message = str(err.value)
    assert "per_device_train_batch_size (5) x world size (8)" in message and "= 40 completions" in message
    assert "divisible by num_generations (16)" in message


def test_deepspeed_json_that_contradicts_the_trainer_is_rejected(tmp_path):
    config = json.loads((ROOT / "globe/train/deepspeed/zero3.json").read_text())
    config["bf16"] = {"enabled": False}  # trainer runs bf16: DeepSpeed would silently win
    config["train_micro_batch_size_per_gpu"] = 4
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    errors = problems(plan_for("grpo", f"grpo.deepspeed={path}", reward_model="rm"))
    assert any("bf16.enabled=False vs hf bf16|bf16_full_eval=True" in e for e in errors), errors
    assert any("train_micro_batch_size_per_gpu=4 vs hf per_device_train_batch_size=8" in e for e in errors), errors


def test_zero_offload_and_lora_consistency(tmp_path):
    config = json.loads((ROOT / "globe/train/deepspeed/zero2.json").read_text())
    config["zero_optimization"]["offload_param"] = {"device": "cpu"}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    errors = problems(plan_for("sft", f"sft.deepspeed={path}"))
    assert any("offload_param (cpu) needs ZeRO stage 3, got stage 2" in e for e in errors), errors
    # a LoRA judge must be merged at the end: not possible from ZeRO-3 shards
    errors = problems(plan_for("reward_model", "reward_model.deepspeed=zero3"))
    assert any("LoRA adapter is merged" in e for e in errors), errors
    assert not problems(plan_for("reward_model", "reward_model.deepspeed=zero3_offload", "reward_model.lora=false"))


def test_deepspeed_cpu_and_vllm_settings_are_checked():
    errors = problems(plan_for("grpo", "grpo.use_cpu=true", reward_model="rm"))
    assert any("bf16 with use_cpu and DeepSpeed" in e for e in errors), errors
    assert any("vLLM rollouts are GPU-only" in e for e in errors), errors
    errors = problems(plan_for("grpo", "grpo.vllm_mode=server", reward_model="rm"))
    assert any("vllm_server_base_url" in e for e in errors), errors
    errors = problems(plan_for("grpo", "grpo.vllm_tensor_parallel_size=3", "grpo.vllm_max_model_length=512",
                               reward_model="rm"))
    assert any("vllm_tensor_parallel_size (3) must divide the world size (8)" in e for e in errors), errors
    assert any("vllm_max_model_length (512) must exceed max_completion_length (1024)" in e for e in errors), errors


def test_typos_and_a_missing_judge_are_errors_not_silence():
    errors = problems(plan_for("grpo", "grpo.extra={num_generation: 8}", reward_model="rm"))
    assert errors == ["grpo.extra.num_generation: not a field of trl.GRPOConfig"]
    errors = problems(plan_for("grpo"))
    assert any("no reward model is given" in e and "--reward-model" in e for e in errors), errors
    assert not problems(plan_for("grpo", "rewards.weights.localizability=0"))
    with pytest.raises(TrainConfigError, match="neither a shipped config"):
        plan_for("sft", "sft.deepspeed=zero9")
    errors = problems(plan_for("sft", "sft.model=null", preset=None))
    assert errors == ["no model: pass --model DIR or set sft.model"]


def test_tiny_cpu_deepspeed_means_deepspeeds_cpu_accelerator():
    """use_cpu + deepspeed: the trainer gets use_cpu=False (the only way transformers hands a model to
    DeepSpeed) and the run sets up DeepSpeed's CPU accelerator with gloo (globe.train.run.deepspeed_on_cpu)."""
    plan = plan_for("sft", "sft.deepspeed=zero3", preset="tiny-cpu", model="tiny", world_size=2)
    assert not problems(plan) and plan.deepspeed_cpu and plan.args["use_cpu"] is False
    doc = dry_run(plan_for("grpo", "grpo.deepspeed=zero3", "rewards.weights.localizability=0", preset="tiny-cpu", model="t"))
    assert doc["deepspeed_accelerator"] == "cpu" and doc["deepspeed"]["zero_optimization"]["stage"] == 3
    assert doc["trainer"]["args"]["ddp_timeout"] == load_params(PARAMS, preset="tiny-cpu").grpo.dist_timeout_s
    assert dry_run(plan_for("grpo", reward_model="rm"))["deepspeed_accelerator"] == "gpu"


def test_the_world_size_comes_from_the_launch_and_a_disagreeing_plan_is_an_error():
    # no num_processes: the plan follows the launch (trainers pass WORLD_SIZE)
    plan = plan_for("grpo", "rewards.weights.localizability=0", preset="tiny-cpu", model="t", world_size=2)
    assert plan.world_size == 2 and not problems(plan)
    assert dry_run(plan)["derived"]["generation_batch_size"] == 2 * plan.args["per_device_train_batch_size"]
    # the 8-GPU preset is planned for 8: a launch of 16 stops before anything loads, with the fix
    errors = problems(plan_for("grpo", reward_model="rm", world_size=16))
    assert any("this launch has 16 process(es) (WORLD_SIZE) but grpo.num_processes is 8" in e
               and "grpo.num_processes=16" in e for e in errors), errors
    assert not problems(plan_for("grpo", "grpo.num_processes=16", reward_model="rm", world_size=16))
    assert plan_for("sft", preset="tiny-cpu", model="t").world_size == 1  # a dry run without a plan: 1


def test_tiny_cpu_preset_plans_a_single_cpu_process():
    doc = dry_run(plan_for("grpo", "rewards.weights.localizability=0", preset="tiny-cpu", model="tiny"))
    assert doc["world_size"] == 1 and doc["deepspeed"] is None
    assert doc["trainer"]["args"]["use_cpu"] is True and doc["trainer"]["args"]["bf16"] is False
    assert doc["derived"]["generation_batch_size"] % doc["trainer"]["args"]["num_generations"] == 0


def test_the_tiny_recipes_unscaled_advantages_reach_the_trainer_and_no_7b_preset_inherits_them():
    """params.yaml's grpo.extra.scale_rewards (docs/train.md, "The recipe now") goes to TRL's config;
    the 7B presets state the paper's (TRL's default) so that the tiny world's never runs there."""
    tiny = dry_run(plan_for("grpo", preset="tiny-cpu", model="tiny", reward_model="judge"))
    assert tiny["trainer"]["args"]["scale_rewards"] == "none"
    assert tiny["rewards"]["weights"]["consistency"] == 1.25
    for name in ("qwen2.5-vl-7b-8gpu", "qwen2.5-vl-7b-8gpu-dapo", "qwen2.5-vl-7b-8gpu-faithful"):
        assert load_params(PARAMS, preset=name).grpo.extra["scale_rewards"] == "group", name


def test_cli_dry_run_prints_one_json_document_and_fails_with_exit_2():
    runner = CliRunner()
    ok = runner.invoke(app, ["train", "grpo", "--params", str(PARAMS), "--preset", PRESET,
                             "--reward-model", "results/reward_model", "--dry-run"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["deepspeed"]["train_batch_size"] == 128 and doc["trainer"]["args"]["output_dir"] == "results/grpo"
    bad = runner.invoke(app, ["train", "grpo", "--params", str(PARAMS), "--preset", PRESET, "--reward-model", "rm",
                              "--set", "grpo.num_generations=12", "--dry-run"])
    assert bad.exit_code == 2
    assert "divisible by num_generations (12)" in bad.stderr


def test_cli_bad_inputs_fail_with_clear_messages(geoscenes_data, tmp_path):
    runner = CliRunner()
    base = ["train", "sft", "--params", str(PARAMS), "--out", str(tmp_path / "out")]
    missing = runner.invoke(app, base + ["--model", str(tmp_path), "--data", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "nowhere/records.jsonl: no such records file" in missing.stderr
    (tmp_path / "not_a_model").mkdir()
    bad_model = runner.invoke(app, base + ["--model", str(tmp_path / "not_a_model"), "--data", str(geoscenes_data)])
    assert bad_model.exit_code == 2 and "not a model directory (no config.json)" in bad_model.stderr
    no_labels = tmp_path / "unlabelled"
    no_labels.mkdir()
    (no_labels / "records.jsonl").write_text(
        (geoscenes_data / "records.jsonl").read_text().replace('"localizable":false', '"localizable":true')
    )
    rm = runner.invoke(app, ["train", "reward-model", "--params", str(PARAMS), "--model", str(tmp_path),
                             "--data", str(no_labels), "--out", str(tmp_path / "rm")])
    assert rm.exit_code == 2 and "needs train records with localizable=true and with localizable=false" in rm.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "rm").exists()  # nothing half-written


def test_one_stage_runner_names_the_stages():
    """`globe.train.stages.train_stage` is what the CLI, the KFP steps and the ablation call."""
    from globe.train.stages import UnknownStage, stage_name, train_stage

    assert [stage_name(s) for s in ("sft", "reward-model", "reward_model", "grpo")] == ["sft", "reward_model", "reward_model", "grpo"]
    with pytest.raises(UnknownStage, match="expected sft, reward-model or grpo"):
        stage_name("dpo")
    with pytest.raises(ValueError, match="GRPO's"):
        train_stage("sft", load_params(None), "data", "out", reward_model="rm")
