"""What every training stage shares: model loading, resume, the clean checkpoint, metrics.json.

A stage's OUT directory ends up holding a clean Hugging Face checkpoint at its root (model +
processor, loadable by `AutoModelForImageTextToText` / `AutoProcessor` and so by `LocalEngine` and
vLLM), TRL's `checkpoint-*` folders for `--resume`, and `metrics.json` (TRL's `log_history` plus a
summary). An OUT that already holds checkpoints is only continued with `--resume`: a plain rerun
would silently overwrite hours of training.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from globe.io import atomic_write_bytes
from globe.jsonl import json_safe
from globe.train.lm_head import labelled_positions_only
from globe.train.plan import TrainConfigError, TrainPlan

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
VISION_TOWERS = ("visual", "vision_tower", "vision_model")


def world_size() -> int:
    """The number of processes of this run (torchrun/accelerate set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextmanager
def runtime(plan: TrainPlan) -> Iterator[None]:
    """Check what only the machine we run on can reveal (a plan can be valid for a cluster), and
    apply the process-wide settings (torch threads; DeepSpeed's CPU process group; TRL's LM head
    scoring only labelled positions on CPU) for the run only.

    Build the trainer config inside it: with DeepSpeed on CPU the process group must exist first.
    """
    import torch

    if plan.args.get("bf16") and not torch.cuda.is_available() and not plan.cpu:
        raise TrainConfigError(
            f"{plan.stage}: bf16 is on but there is no GPU here; use --preset tiny-cpu or --set {plan.stage}.bf16=false"
        )
    if plan.args.get("use_vllm") and not torch.cuda.is_available():
        raise TrainConfigError("grpo: use_vllm needs GPUs; set grpo.use_vllm=false on this machine")
    threads = torch.get_num_threads()
    if plan.torch_threads:
        torch.set_num_threads(plan.torch_threads)
    try:
        with labelled_positions_only():  # on CPU, TRL's LM head would score the prompt too (globe.train.lm_head)
            if plan.deepspeed_cpu:
                with deepspeed_on_cpu(plan):
                    yield
            else:
                yield
    finally:
        torch.set_num_threads(threads)


# what a launcher (torchrun, accelerate, a Trainer pod) sets; a plain `globe train` sets them itself
LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@contextmanager
def deepspeed_on_cpu(plan: TrainPlan) -> Iterator[None]:
    """DeepSpeed on its CPU accelerator with gloo, for any number of processes.

    Why this is needed: transformers hands a model to DeepSpeed only with `use_cpu=False`, and then
    accelerate's `PartialState` looks for a GPU backend; finding none, it lets DeepSpeed initialise
    the process group (gloo, through DeepSpeed's CPU accelerator) but records *no* backend and so
    `num_processes = 1`. `TrainingArguments.world_size` is then 1 while DeepSpeed counts every rank,
    and DeepSpeed stops at its batch check (`train_batch_size ... 8 != 8 * 1 * 2`). Creating the
    state here with `backend="gloo"` (and DeepSpeed on) gives the real world size, and the trainer
    reuses it (`accelerator_config.use_configured_state`), with the group's collective timeout.
    A plain single-process `globe train` gets the launcher's variables (rank 0 of 1, loopback).
    """
    import torch

    if torch.cuda.is_available():
        raise TrainConfigError(
            f"{plan.stage}: use_cpu with deepspeed runs DeepSpeed's CPU accelerator, which a machine with GPUs would "
            f"not use for the model; set {plan.stage}.use_cpu=false to train on the GPUs"
        )
    saved = {k: os.environ.get(k) for k in (*LAUNCH_ENV, "DS_ACCELERATOR", "ACCELERATE_USE_DEEPSPEED")}
    if os.environ.get("DS_ACCELERATOR", "cpu") != "cpu":
        raise TrainConfigError(f"{plan.stage}: use_cpu with deepspeed needs DS_ACCELERATOR=cpu, not {os.environ['DS_ACCELERATOR']}")
    standalone = "LOCAL_RANK" not in os.environ
    if standalone:
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    os.environ["DS_ACCELERATOR"] = "cpu"
    from datetime import timedelta

    from accelerate.state import AcceleratorState, PartialState
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != "cpu":
        raise TrainConfigError(f"{plan.stage}: DeepSpeed already chose the {get_accelerator().device_name()} accelerator")
    AcceleratorState._reset_state(reset_partial_state=True)
    os.environ["ACCELERATE_USE_DEEPSPEED"] = "true"
    try:
        state = PartialState(backend="gloo", timeout=timedelta(seconds=plan.dist_timeout_s))
    finally:
        os.environ.pop("ACCELERATE_USE_DEEPSPEED")
    if state.num_processes != plan.world_size:
        raise TrainConfigError(f"{plan.stage}: the process group has {state.num_processes} ranks, WORLD_SIZE says {plan.world_size}")
    atexit.unregister(_destroy_process_group)  # registered once, however many runs this process makes
    atexit.register(_destroy_process_group)
    accelerator_config = dict(plan.args.get("accelerator_config") or {})
    plan.args["accelerator_config"] = {**accelerator_config, "use_configured_state": True}
    try:
        yield
    finally:
        # The state and the process group stay (the trainer's summary and metrics still ask it which
        # rank this is); the next run's TrainingArguments, or this function, resets the state.
        if accelerator_config:
            plan.args["accelerator_config"] = accelerator_config
        else:
            plan.args.pop("accelerator_config")
        if standalone:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _destroy_process_group() -> None:
    """At exit, shut the gloo group down before the interpreter does. Left to interpreter shutdown, a
    rank's gloo threads can be destroyed while still joinable: `terminate called without an active
    exception` and SIGABRT after a run that finished and saved (seen on a loaded 2-core machine in
    tests/test_train_distributed.py, rank 1 of a resumed ZeRO-3 SFT)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_complete_checkpoint(out: str | Path) -> str | None:
    """The newest `checkpoint-N` in OUT that was written to the end (it has `trainer_state.json`,
    which the Trainer writes last, after every rank's model and optimizer shards), or None.

    transformers' `get_last_checkpoint` takes the highest N, even one a killed rank left half-written
    (DeepSpeed shards missing): resuming from it would fail; the one before it is intact.
    """
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    out = Path(out)
    if not out.is_dir():
        return None
    found = []
    for path in out.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.rsplit("-", 1)[-1]
        if path.is_dir() and step.isdigit():
            found.append((int(step), path))
    for step, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").is_file():
            return str(path)
        log.warning("skipping %s: incomplete (no trainer_state.json; a rank died while saving it)", path)
    return None


def resume_checkpoint(out: Path, resume: bool) -> str | None:
    """The checkpoint to resume from, or None; refuses to overwrite checkpoints without --resume."""
    from transformers.trainer_utils import get_last_checkpoint

    any_checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    if any_checkpoint and not resume:
        raise TrainConfigError(
            f"{out} already holds training checkpoints ({Path(any_checkpoint).name}); pass --resume to continue, "
            "or choose another --out"
        )
    last = last_complete_checkpoint(out) if resume else None
    if resume and not last:
        log.warning("--resume: no checkpoint in %s, starting from scratch", out)
    return last


def weights_source(plan: TrainPlan, last_checkpoint: str | None) -> str:
    """Where the policy's weights come from: the checkpoint being resumed, or the plan's model.

    Why not let the Trainer restore them: transformers 5 saves Qwen2.5-VL checkpoints under the
    original key names (`visual.*`, `model.layers.*`) and converts them back only in
    `from_pretrained`; `Trainer._load_from_checkpoint` loads the raw file with strict=False, so every
    key is "missing" and a resumed run would silently continue from the *base* weights with the
    trained optimizer state. A LoRA run is different: its checkpoint holds only the adapter, which
    the Trainer restores itself, over the base model.
    """
    if last_checkpoint and not plan.peft:
        return last_checkpoint
    return plan.model  # type: ignore[return-value]


def check_model_path(path: str | None) -> None:
    """A local directory given as --model must be a model (a hub id is left to from_pretrained)."""
    if not path:
        raise TrainConfigError("no model: pass --model DIR")
    if Path(path).is_dir() and not (Path(path) / "config.json").is_file():
        raise TrainConfigError(f"--model {path}: not a model directory (no config.json)")


def load_model(path: str, bf16: bool = False, freeze_vision: bool = False):
    """(model, processor) through the Auto classes; the processor must be a real multimodal one.

    Not `globe.model.loading.load_model_and_processor`: that one prepares a model for inference
    (moved to a device, eval mode, adapters merged); a trainer must get the model where it is, so
    that the Trainer or DeepSpeed (ZeRO-3: partitioned while loading) places it.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, ProcessorMixin

    check_model_path(path)
    try:
        processor = AutoProcessor.from_pretrained(path)
    except OSError as exc:
        raise TrainConfigError(f"--model {path}: neither a local model directory nor loadable from the hub: {exc}")
    if not isinstance(processor, ProcessorMixin):
        raise TrainConfigError(
            f"{path}: AutoProcessor returned {type(processor).__name__}, not an image+text processor "
            "(for Qwen2.5-VL, torchvision must be installed)"
        )
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16 if bf16 else torch.float32)
    _keep_original_key_names(model)
    if freeze_vision:
        tower = next((t for name in VISION_TOWERS for t in _find(model, name)), None)
        if tower is None:
            raise TrainConfigError(f"{path}: freeze_vision is on but no vision tower ({', '.join(VISION_TOWERS)})")
        tower.requires_grad_(False)
    return model, processor


def _keep_original_key_names(model) -> None:
    """Make a ZeRO-3-loaded model save under the checkpoint's original key names, as any other does.

    transformers 5.23 loads weights into a ZeRO-3-partitioned model through
    `_load_state_dict_into_zero3_model`, which keeps the *whole* conversion mapping on the model
    (legacy renamings included) where the ordinary path keeps only the renamings it used; reverting
    all of them on save turns Qwen2.5-VL's `model.layers.*` into `model.model.layers.*`. Such a file
    still loads through the Auto classes, but not in vLLM. Without a kept mapping, `save_pretrained`
    reverts the model's default one (no legacy renamings), which gives the original names.
    """
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled():
        model.__dict__.pop("_weight_conversions", None)


def _find(model, name: str):
    for owner in (model, getattr(model, "model", None)):
        tower = getattr(owner, name, None) if owner is not None else None
        if tower is not None:
            yield tower


def save_clean(trainer, processor, out: Path) -> None:
    """The final model + processor at OUT's root (only the main process writes).

    A LoRA run keeps its adapter in OUT/adapter and writes the *merged* model at the root, so that
    every consumer (LocalEngine, vLLM, KServe) loads a plain checkpoint without peft.
    """
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        trainer.save_model(str(out / "adapter"))
        if trainer.is_world_process_zero():
            merged = model.merge_and_unload()
            merged.save_pretrained(str(out))
            processor.save_pretrained(str(out))
        return
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out))


def window_means(history: list[dict[str, Any]], key: str) -> tuple[float | None, float | None]:
    """(first, last) logged values of `key` — each log entry is already a mean over one logging window."""
    values = [h[key] for h in history if key in h and isinstance(h[key], (int, float)) and math.isfinite(h[key])]
    return (values[0], values[-1]) if values else (None, None)


def phase_means(history: list[dict[str, Any]], key: str, share: float = 0.2) -> dict[str, float | None]:
    """Mean of `key` over the first and the last `share` of its logging windows (at least one each).

    One logging window is a handful of steps, so its mean moves by chance; a fifth of the run is
    what "early" and "late" mean in the summary and the warnings.

    >>> phase_means([{"r": 1.0}, {"r": 2.0}, {"r": 3.0}, {"r": 5.0}, {"r": 9.0}], "r")
    {'first': 1.0, 'last': 9.0, 'windows': 5}
    """
    values = [h[key] for h in history if key in h and isinstance(h[key], (int, float)) and math.isfinite(h[key])]
    if not values:
        return {"first": None, "last": None, "windows": 0}
    k = max(1, int(len(values) * share))
    return {"first": sum(values[:k]) / k, "last": sum(values[-k:]) / k, "windows": len(values)}


def write_metrics(
    out: Path, plan: TrainPlan, trainer, train_output, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """OUT/metrics.json, atomically: TRL's log_history plus a summary for dvc/KFP/MLflow; returns the summary."""
    history = list(trainer.state.log_history)
    first_loss, last_loss = window_means(history, "loss")
    summary: dict[str, Any] = {
        "stage": plan.stage,
        "model": plan.model,
        "world_size": plan.world_size,
        "global_step": trainer.state.global_step,
        "epoch": trainer.state.epoch,
        "first_loss": first_loss,
        "last_loss": last_loss,
        **{k: v for k, v in (train_output.metrics if train_output else {}).items()},
        **(extra or {}),
    }
    doc = {"summary": summary, "log_history": history, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = out / METRICS_FILE
    if trainer.is_world_process_zero():
        text = json.dumps(json_safe(doc), indent=2, default=str, allow_nan=False)
        atomic_write_bytes(path, (text + "\n").encode("utf-8"))
    return json_safe(summary)


HEADLINE_KEYS = ("stage", "global_step", "examples", "train_runtime", "first_loss", "last_loss")


def write_results(results: str | Path, summary: dict[str, Any], history: list[dict[str, Any]],
                  curves: tuple[str, ...] = ("loss",)) -> None:
    """`results/metrics.json` (the headline figures `dvc metrics show` prints) and `results/curves.csv`
    (one row per logging window: `step` and each of `curves` TRL logged, for `dvc plots`).

    The full summary and TRL's whole history stay in OUT/metrics.json next to the checkpoint.
    """
    results = Path(results)
    head = {k: summary.get(k) for k in HEADLINE_KEYS if summary.get(k) is not None}
    head.update(summary.get("headline") or {})
    text = json.dumps(json_safe(head), indent=2, allow_nan=False)
    atomic_write_bytes(results / METRICS_FILE, (text + "\n").encode("utf-8"))
    rows = [h for h in history if "step" in h and any(k in h for k in curves)]
    lines = ["step," + ",".join(curves)]
    for h in rows:
        cells = [f"{h[k]:.6g}" if isinstance(h.get(k), (int, float)) and math.isfinite(h[k]) else "" for k in curves]
        lines.append(f"{h['step']}," + ",".join(cells))
    atomic_write_bytes(results / "curves.csv", ("\n".join(lines) + "\n").encode("utf-8"))
