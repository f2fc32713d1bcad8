"""Turn a stage's params group into the exact TRL config + DeepSpeed JSON, and check them together.

Why a plan step: a mis-sized GRPO batch, a DeepSpeed JSON whose hard-coded values disagree with
the trainer flags, or vLLM settings that cannot work are otherwise found only after minutes of
model loading on a GPU node. `make_plan` resolves everything the way transformers/TRL will
(DeepSpeed "auto" values are filled by transformers' own `HfTrainerDeepSpeedConfig`), `problems`
lists what cannot work for the planned world size, and `dry_run` returns the whole thing as one
JSON-able document — all without loading a weight, so the 8-GPU preset is checked on a laptop.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from globe.config import GRPOGroup, Params, SFTGroup, TrainGroup

STAGES = ("sft", "reward_model", "grpo")
DEEPSPEED_PRESETS = ("zero2", "zero3", "zero3_offload")


class TrainConfigError(ValueError):
    """The resolved trainer / DeepSpeed configuration cannot work; the message lists every problem."""


@dataclass
class TrainPlan:
    """Everything a trainer is built from, before any weight is loaded."""

    stage: str
    model: str | None
    world_size: int  # the launch's WORLD_SIZE at run time; num_processes (or 1) for a dry run
    args: dict[str, Any]  # TRL config kwargs; `deepspeed` holds the raw JSON (with "auto" values)
    peft: dict[str, Any] | None = None
    rewards: dict[str, float] | None = None  # GRPO only: reward name -> weight (`planned_rewards`)
    reward_model: str | None = None  # GRPO only: the localizability judge checkpoint
    skip_flat_groups: str | None = None  # GRPO only: see globe.train.grpo.skip_flat_groups
    split_advantage: bool = False  # GRPO only: see globe.train.split_advantage
    counterfactual_traces: float = 0.0  # SFT only: see globe.train.counterfactual
    counterfactual_scope: str = "country"  # SFT only: the counterfactual city's country (globe.train.counterfactual)
    follows_gate: dict[str, Any] | None = None  # SFT only: target / every / min_steps / decay_steps (globe.train.follows)
    freeze_vision: bool = False
    torch_threads: int | None = None
    planned_world_size: int | None = None  # <stage>.num_processes: a launch that differs is an error
    launched: bool = False  # world_size was read from the launch (a run), not planned (a dry run)
    cpu: bool = True  # <stage>.use_cpu: with DeepSpeed, its CPU accelerator (gloo) instead of GPUs
    dist_timeout_s: int = 900
    warnings: list[str] = field(default_factory=list)

    @property
    def deepspeed_cpu(self) -> bool:
        """DeepSpeed on its CPU accelerator with gloo: a DeepSpeed config and use_cpu."""
        return bool(self.args.get("deepspeed")) and self.cpu

    @property
    def config_class(self) -> type:
        """trl.SFTConfig for sft/reward_model, trl.GRPOConfig for grpo (imports TRL)."""
        if self.stage == "grpo":
            from trl import GRPOConfig

            return GRPOConfig
        from trl import SFTConfig

        return SFTConfig


def stage_group(params: Params, stage: str) -> TrainGroup:
    if stage not in STAGES:
        raise TrainConfigError(f"unknown training stage {stage!r}; expected one of {', '.join(STAGES)}")
    return getattr(params, stage)


def load_deepspeed(spec: str | None) -> dict[str, Any] | None:
    """A shipped preset name (zero2, zero3, zero3_offload) or a path to a DeepSpeed JSON file."""
    if not spec:
        return None
    if spec in DEEPSPEED_PRESETS:
        text = resources.files("globe.train").joinpath("deepspeed", f"{spec}.json").read_text(encoding="utf-8")
        source = f"globe/train/deepspeed/{spec}.json"
    else:
        path = Path(spec)
        if not path.is_file():
            raise TrainConfigError(
                f"deepspeed: {spec!r} is neither a shipped config ({', '.join(DEEPSPEED_PRESETS)}) nor a JSON file"
            )
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainConfigError(f"deepspeed: {source} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise TrainConfigError(f"deepspeed: {source} must hold a JSON object")
    return config


def report_to() -> list[str] | str:
    """MLflow when MLFLOW_TRACKING_URI is set (transformers' MLflowCallback reads it), else nothing."""
    return ["mlflow"] if os.environ.get("MLFLOW_TRACKING_URI") else "none"


def make_plan(
    stage: str,
    params: Params,
    output_dir: str | Path,
    model: str | None = None,
    world_size: int | None = None,
    reward_model: str | None = None,
) -> TrainPlan:
    """Resolve `params.<stage>` (+ CLI overrides) into TRL kwargs, DeepSpeed JSON and PEFT settings.

    `world_size`: trainers pass the launch's `WORLD_SIZE` (`globe.train.run.world_size`), and the plan
    is checked for exactly that; a `<stage>.num_processes` that disagrees with it is an error
    (`problems`), never a silent override. Without it (a dry run) the plan is for `num_processes`, or 1.

    `use_cpu` with a DeepSpeed config means DeepSpeed's CPU accelerator (gloo): the trainer itself then
    gets `use_cpu=False`, because transformers/accelerate only hand a model to DeepSpeed that way.
    """
    group = stage_group(params, stage)
    seed = params.base.seed
    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "run_name": f"globe-{stage.replace('_', '-')}",
        "seed": seed,
        "data_seed": seed,
        "learning_rate": group.learning_rate,
        "num_train_epochs": group.epochs,
        "max_steps": group.max_steps,
        "per_device_train_batch_size": group.per_device_train_batch_size,
        "gradient_accumulation_steps": group.gradient_accumulation_steps,
        "warmup_steps": group.warmup_steps,
        "lr_scheduler_type": group.lr_scheduler_type,
        "max_grad_norm": group.max_grad_norm,
        "logging_steps": group.logging_steps,
        "save_strategy": "steps",
        "save_steps": group.save_steps,
        "save_total_limit": group.save_total_limit,
        "bf16": group.bf16,
        "use_cpu": group.use_cpu and not group.deepspeed,
        "ddp_timeout": group.dist_timeout_s,
        # transformers 5 renamed gradient_checkpointing; the old name is a deprecated alias
        "activation_checkpointing": group.gradient_checkpointing,
        "deepspeed": load_deepspeed(group.deepspeed),
        "report_to": report_to(),
        "dataloader_num_workers": 0,
    }
    if group.gradient_checkpointing:
        args["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    plan = TrainPlan(
        stage=stage,
        model=model or group.model,
        world_size=world_size or group.num_processes or 1,
        args=args,
        freeze_vision=group.freeze_vision,
        torch_threads=group.torch_threads,
        planned_world_size=group.num_processes,
        launched=world_size is not None,
        cpu=group.use_cpu,
        dist_timeout_s=group.dist_timeout_s,
    )
    if group.lora:
        plan.peft = {
            "r": group.lora_r,
            "lora_alpha": group.lora_alpha,
            "lora_dropout": group.lora_dropout,
            "target_modules": group.lora_target_modules,
            "task_type": "CAUSAL_LM",
        }
    if isinstance(group, GRPOGroup):
        args.update(
            num_generations=group.num_generations,
            temperature=group.temperature,
            beta=group.beta,
            max_completion_length=group.max_completion_length,
            use_vllm=group.use_vllm,
            vllm_mode=group.vllm_mode,
            vllm_gpu_memory_utilization=group.vllm_gpu_memory_utilization,
            vllm_tensor_parallel_size=group.vllm_tensor_parallel_size,
            vllm_max_model_length=group.vllm_max_model_length,
            vllm_enable_sleep_mode=group.vllm_enable_sleep_mode,
            vllm_server_base_url=group.vllm_server_base_url,
        )
        from globe.rewards.recipe import planned_rewards

        plan.reward_model = reward_model or group.reward_model
        plan.rewards = planned_rewards(params.rewards, judge=bool(plan.reward_model))
        plan.skip_flat_groups = group.skip_flat_groups
        plan.split_advantage = group.split_advantage
    else:
        args["max_length"] = group.max_length
    if isinstance(group, SFTGroup) and group.counterfactual_traces > 0:
        plan.counterfactual_traces = group.counterfactual_traces
        plan.counterfactual_scope = group.counterfactual_scope
        args["remove_unused_columns"] = False  # the rows' answer_only flag must reach the collator
    if isinstance(group, SFTGroup) and group.follows_target > 0:
        plan.follows_gate = {"target": group.follows_target, "every": group.follows_every,
                             "min_steps": group.follows_min_steps, "decay_steps": group.follows_decay_steps}
    args.update(copy.deepcopy(group.extra))
    return plan


def _field_defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def full_args(plan: TrainPlan) -> dict[str, Any]:
    """Every field of the TRL config class: its default, overlaid with the plan's values."""
    merged = _field_defaults(plan.config_class)
    merged.update(plan.args)
    for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                     ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
        if merged.get(new) is not None:  # what TrainingArguments.__post_init__ does with the alias
            merged[old] = merged[new]
    return merged


# TrainingArguments fields that transformers copies into DeepSpeed's "auto" values
_DS_ARG_KEYS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "max_grad_norm",
    "learning_rate",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "weight_decay",
    "save_on_each_node",
    "fp16",
    "fp16_full_eval",
    "bf16",
    "bf16_full_eval",
)


def resolve_deepspeed(plan: TrainPlan) -> tuple[dict[str, Any] | None, list[str]]:
    """Fill DeepSpeed "auto" values exactly as transformers will; return (config, mismatches).

    A mismatch is a value written in the JSON that disagrees with the trainer (e.g.
    `bf16.enabled: false` while the trainer runs bf16): DeepSpeed would silently win.
    Keys that depend on the model's hidden size stay "auto" (filled when the model is loaded).
    """
    if not plan.args.get("deepspeed"):
        return None, []
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig, unset_hf_deepspeed_config

    a = full_args(plan)
    ns = SimpleNamespace(world_size=plan.world_size, **{k: a.get(k) for k in _DS_ARG_KEYS})
    ds = HfTrainerDeepSpeedConfig(copy.deepcopy(plan.args["deepspeed"]))
    try:
        ds.trainer_config_process(ns)
        return ds.config, list(ds.mismatches)
    finally:
        # The config registers itself globally (it would make later from_pretrained calls ZeRO-3 aware).
        unset_hf_deepspeed_config()


def generation_batch(plan: TrainPlan) -> dict[str, int]:
    """GRPO's batch arithmetic, mirrored from GRPOConfig.__post_init__ for an arbitrary world size."""
    a = plan.args
    per_step = a["per_device_train_batch_size"] * plan.world_size
    gen = a.get("generation_batch_size")
    steps = a.get("steps_per_generation")
    if gen is None:
        steps = steps or a["gradient_accumulation_steps"]
        gen = per_step * steps
    else:
        steps = gen // per_step if gen % per_step == 0 else None
    return {
        "global_batch": per_step * a["gradient_accumulation_steps"],
        "generation_batch_size": gen,
        "steps_per_generation": steps or 0,
        "prompts_per_generation": gen // a["num_generations"],
    }


def problems(plan: TrainPlan) -> list[str]:
    """Everything that cannot work for this plan (empty when it is valid); adds warnings to the plan."""
    errors: list[str] = []
    a = plan.args
    stage = plan.stage
    if not plan.model:
        errors.append(f"no model: pass --model DIR or set {stage}.model")
    known = {f.name for f in dataclasses.fields(plan.config_class)}
    for key in sorted(set(a) - known):
        errors.append(f"{stage}.extra.{key}: not a field of trl.{plan.config_class.__name__}")
    if a.get("bf16") and a.get("fp16"):
        errors.append(f"{stage}: bf16 and fp16 are both on; pick one")
    if plan.launched and plan.planned_world_size and plan.planned_world_size != plan.world_size:
        errors.append(
            f"{stage}: this launch has {plan.world_size} process(es) (WORLD_SIZE) but {stage}.num_processes is "
            f"{plan.planned_world_size}: the batch arithmetic (global batch, GRPO groups, DeepSpeed's train_batch_size) "
            f"was planned for {plan.planned_world_size}. Launch {plan.planned_world_size} processes (torchrun "
            f"--nnodes x --nproc_per_node), or set {stage}.num_processes={plan.world_size}, or null to follow the launch"
        )
    if plan.counterfactual_traces > 0 and a.get("remove_unused_columns") is not False:
        errors.append(f"{stage}.extra.remove_unused_columns: counterfactual traces need it false (their rows' "
                      "answer_only flag must reach the collator); remove it or set sft.counterfactual_traces=0")
    errors += _follows_problems(plan)
    errors += _deepspeed_problems(plan)
    if stage == "grpo":
        errors += _grpo_problems(plan)
    plan.warnings = list(dict.fromkeys(plan.warnings))  # checks may run more than once per plan
    return errors


def _follows_problems(plan: TrainPlan) -> list[str]:
    """The follows gate must be able to probe before the run ends; without counterfactual traces
    it rarely has anything to find (answers that follow: 0.09-0.27 after the recipe's SFT)."""
    gate = plan.follows_gate
    if not gate:
        return []
    max_steps = plan.args.get("max_steps", -1)
    if max_steps is None or max_steps <= 0:
        return [f"{plan.stage}.follows_target: the gate needs {plan.stage}.max_steps as its ceiling (got "
                f"{max_steps}: epochs decide); set max_steps, or follows_target=0"]
    first = max(gate["min_steps"], 1)
    first = -(-first // gate["every"]) * gate["every"]  # the first multiple of `every` at or after min_steps
    if first > max_steps:
        return [f"{plan.stage}.follows_target: the first probe would come at step {first} (follows_every "
                f"{gate['every']}, follows_min_steps {gate['min_steps']}), after max_steps {max_steps}; "
                "lower them or raise max_steps"]
    if plan.counterfactual_traces <= 0:
        plan.warnings.append(f"{plan.stage}.follows_target without counterfactual traces: the recipe's SFT teaches "
                             "the answer to follow its reasoning rarely (0.09-0.27), so the gate will likely "
                             "run to max_steps; set sft.counterfactual_traces")
    return []


def _deepspeed_problems(plan: TrainPlan) -> list[str]:
    ds = plan.args.get("deepspeed")
    if not ds:
        return []
    stage = plan.stage
    errors = []
    if plan.cpu and (plan.args.get("bf16") or (ds.get("bf16") or {}).get("enabled") is True):
        errors.append(
            f"{stage}: bf16 with use_cpu and DeepSpeed: transformers refuses bf16 without a GPU once use_cpu is off, "
            f"which DeepSpeed's CPU accelerator needs; set {stage}.bf16=false (fp32), or use_cpu=false on GPUs"
        )
    zero = ds.get("zero_optimization") or {}
    zstage = zero.get("stage", 0)
    if zstage not in (0, 1, 2, 3):
        errors.append(f"{stage}.deepspeed: zero_optimization.stage must be 0-3, got {zstage!r}")
    param_off = (zero.get("offload_param") or {}).get("device", "none")
    optim_off = (zero.get("offload_optimizer") or {}).get("device", "none")
    if param_off not in ("none", None) and zstage != 3:
        errors.append(f"{stage}.deepspeed: offload_param ({param_off}) needs ZeRO stage 3, got stage {zstage}")
    if optim_off not in ("none", None) and zstage == 0:
        errors.append(f"{stage}.deepspeed: offload_optimizer ({optim_off}) needs ZeRO stage 1-3")
    if (ds.get("bf16") or {}).get("enabled") is True and (ds.get("fp16") or {}).get("enabled") is True:
        errors.append(f"{stage}.deepspeed: bf16.enabled and fp16.enabled are both true")
    if plan.peft and zstage == 3:
        errors.append(
            f"{stage}: a LoRA adapter is merged into a clean checkpoint at the end, which needs whole (not "
            "ZeRO-3-partitioned) weights; use deepspeed zero2 (the 8-GPU reward-model preset's choice)"
        )
    _, mismatches = resolve_deepspeed(plan)
    for m in mismatches:
        errors.append(f"{stage}.deepspeed disagrees with the trainer flags (use \"auto\" in the JSON): {m.lstrip('- ')}")
    return errors


def _grpo_problems(plan: TrainPlan) -> list[str]:
    a = plan.args
    errors = []
    g = a["num_generations"]
    per_step = a["per_device_train_batch_size"] * plan.world_size
    gen = a.get("generation_batch_size")
    if gen is not None and a.get("steps_per_generation") is not None:
        errors.append("grpo: set generation_batch_size or steps_per_generation, not both")
    elif gen is not None and gen % per_step:
        errors.append(
            f"grpo: generation_batch_size ({gen}) must be divisible by per_device_train_batch_size "
            f"({a['per_device_train_batch_size']}) x world size ({plan.world_size}) = {per_step}"
        )
    else:
        batch = generation_batch(plan)
        if batch["generation_batch_size"] % g:
            errors.append(
                f"grpo: the generation batch = per_device_train_batch_size ({a['per_device_train_batch_size']}) x "
                f"world size ({plan.world_size}) x steps_per_generation ({batch['steps_per_generation']}) = "
                f"{batch['generation_batch_size']} completions must be divisible by num_generations ({g}), so that "
                f"every prompt gets a full group; e.g. set grpo.per_device_train_batch_size or "
                f"grpo.gradient_accumulation_steps so the product is a multiple of {g}"
            )
    if a["temperature"] <= 0:
        errors.append("grpo: temperature must be > 0 (GRPO needs different completions per prompt)")
    if a.get("use_vllm"):
        errors += _vllm_problems(plan)
    if plan.rewards is not None and not any(plan.rewards.values()):
        errors.append("grpo: rewards.weights has no non-zero weight; nothing to optimise")
    if plan.skip_flat_groups and plan.rewards is not None and plan.skip_flat_groups not in plan.rewards:
        errors.append(f"grpo.skip_flat_groups: {plan.skip_flat_groups!r} is not one of the run's rewards "
                      f"({', '.join(plan.rewards)})")
    if plan.split_advantage and plan.rewards is not None:
        from globe.train.split_advantage import unpaid_sides

        errors += unpaid_sides(plan.rewards)
    if plan.rewards and plan.rewards.get("localizability") and not plan.reward_model:
        errors.append(
            f"grpo: rewards.weights.localizability is {plan.rewards['localizability']} but no reward model is "
            "given: pass --reward-model DIR (from `globe train reward-model`) or an engine spec, or train "
            "without it explicitly with --set rewards.weights.localizability=0"
        )
    return errors


def _vllm_problems(plan: TrainPlan) -> list[str]:
    a = plan.args
    errors = []
    if plan.cpu:
        errors.append("grpo: use_vllm needs GPUs (vLLM rollouts are GPU-only); set grpo.use_cpu=false")
    if a.get("ds3_gather_for_generation") is False:
        errors.append("grpo: ds3_gather_for_generation=false does not work with vLLM generation")
    if a["vllm_mode"] == "colocate":
        tp = a["vllm_tensor_parallel_size"]
        if plan.world_size % tp:
            errors.append(f"grpo: vllm_tensor_parallel_size ({tp}) must divide the world size ({plan.world_size})")
        if a["vllm_gpu_memory_utilization"] > 0.5:
            plan.warnings.append(
                f"grpo: vllm_gpu_memory_utilization {a['vllm_gpu_memory_utilization']} in colocate mode leaves "
                "little GPU memory for training on the same GPUs"
            )
    elif not a.get("vllm_server_base_url"):
        errors.append("grpo: vllm_mode=server needs grpo.vllm_server_base_url (no endpoint is hard-coded)")
    max_len = a.get("vllm_max_model_length")
    if max_len is not None and max_len <= a["max_completion_length"]:
        errors.append(
            f"grpo: vllm_max_model_length ({max_len}) must exceed max_completion_length "
            f"({a['max_completion_length']}) plus the prompt (image tokens included)"
        )
    if importlib.util.find_spec("vllm") is None:
        plan.warnings.append("grpo: vllm is not installed in this environment; the training image must provide it")
    return errors


def dry_run(plan: TrainPlan) -> dict[str, Any]:
    """The fully resolved trainer + DeepSpeed config as one document; raises TrainConfigError if invalid."""
    errors = problems(plan)
    if errors:
        raise TrainConfigError(f"{plan.stage}: the training configuration is invalid:\n  - " + "\n  - ".join(errors))
    ds, _ = resolve_deepspeed(plan)
    trainer_args = full_args(plan)
    trainer_args.pop("deepspeed", None)  # shown resolved below
    doc: dict[str, Any] = {
        "stage": plan.stage,
        "model": plan.model,
        "world_size": plan.world_size,
        "deepspeed_accelerator": ("cpu" if plan.deepspeed_cpu else "gpu") if plan.args.get("deepspeed") else None,
        "trainer": {"class": f"trl.{plan.config_class.__name__}", "args": trainer_args},
        "deepspeed": ds,
        "peft": plan.peft,
        "freeze_vision": plan.freeze_vision,
        "torch_threads": plan.torch_threads,
        "valid": True,
        "warnings": plan.warnings,
    }
    if plan.stage == "grpo":
        doc["derived"] = generation_batch(plan)
        doc["rewards"] = {"weights": plan.rewards, "reward_model": plan.reward_model,
                          "skip_flat_groups": plan.skip_flat_groups, "split_advantage": plan.split_advantage}
    else:
        if plan.stage == "sft":
            doc["counterfactual_traces"] = plan.counterfactual_traces
            doc["counterfactual_scope"] = plan.counterfactual_scope
            doc["follows_gate"] = plan.follows_gate
        doc["derived"] = {
            "global_batch": plan.args["per_device_train_batch_size"]
            * plan.args["gradient_accumulation_steps"]
            * plan.world_size
        }
    return doc


def check(plan: TrainPlan) -> None:
    """Raise TrainConfigError listing every problem of the plan (nothing is loaded before this)."""
    errors = problems(plan)
    if errors:
        raise TrainConfigError(f"{plan.stage}: the training configuration is invalid:\n  - " + "\n  - ".join(errors))


def build_config(plan: TrainPlan, **runtime: Any):
    """The real TRL config object for a run (raises TrainConfigError first if the plan cannot work)."""
    check(plan)
    kwargs = copy.deepcopy(plan.args)
    kwargs.update(runtime)
    return plan.config_class(**kwargs)
