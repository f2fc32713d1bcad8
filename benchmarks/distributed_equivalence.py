"""Does sharding change anything but speed? 1 process against 2 (DeepSpeed ZeRO-3, gloo, CPU).

Same data, same seed, same global batch; every run is the `globe train` command a user types:

- SFT, from init-tiny: 1 process (per-device batch 8, no DeepSpeed), 1 process under ZeRO-3, and
  `torchrun --nproc_per_node 2` under ZeRO-3 (per-device batch 4): the loss of every step.
  Accelerate hands rank r the r-th of every 2 consecutive batches of 4, so a global step sees the
  same 8 examples as the 1-process step.
- GRPO, from an SFT warm start (the 1-process SFT continued to `--sft-steps`): 1 process
  (16 completions a step = 2 prompts x 8) against 2 processes x 8, both ZeRO-3 / plain: the same
  prompts each step, but the completions are *sampled*, on one RNG stream in one case and two in
  the other, so the per-step rewards are compared as paired differences with a 95% interval.

    python benchmarks/distributed_equivalence.py --out /tmp/globe-dist [--sft-steps 200 --grpo-steps 40]

Prints a table and writes OUT/equivalence.json. Takes ~6-10 minutes on 2 idle cores.
"""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(stage: str, out: Path, nproc: int, sets: list[str], *args: str) -> tuple[dict, float]:
    """One `globe train` run (under torchrun when nproc > 1); (metrics.json, wall seconds).
    A finished run in `out` is reused (its wall time is then unknown: nan)."""
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text()), float("nan")
    launch = [sys.executable, "-m", "globe"]
    if nproc > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                  "--master_addr", "127.0.0.1", "--master_port", str(_port()), "-m", "globe"]
    cmd = [*launch, "train", stage, "--params", str(ROOT / "params.yaml"), "--preset", "tiny-cpu", "--out", str(out),
           *args, *(x for s in sets for x in ("--set", s))]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)}\nfailed:\n{proc.stderr[-4000:]}")
    return json.loads((out / "metrics.json").read_text()), time.monotonic() - started


def per_step(doc: dict, key: str) -> dict[int, float]:
    return {h["step"]: h[key] for h in doc["log_history"] if key in h}


def interval(diffs: list[float]) -> tuple[float, float, float]:
    mean = statistics.fmean(diffs)
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return mean, mean - half, mean + half


def main(
    out: Path = typer.Option(..., help="work directory (the tiny world, the runs, equivalence.json)"),
    steps: int = typer.Option(40, help="SFT steps compared"),
    sft_steps: int = typer.Option(200, help="SFT warm start for GRPO (1 process)"),
    grpo_steps: int = typer.Option(40, help="GRPO steps compared"),
    images: int = typer.Option(400, help="synthesized images"),
) -> None:
    from globe.tiny.geoscenes import synthesize
    from globe.tiny.model import build_tiny

    out.mkdir(parents=True, exist_ok=True)
    model, data = out / "tiny", out / "data"
    if not (model / "config.json").is_file():
        build_tiny(model, seed=0)
    if not (data / "records.jsonl").is_file():
        synthesize(data, n=images, seed=0)
    report: dict = {"load_average_before": os.getloadavg()}

    # --- SFT: the loss of every step -------------------------------------------------------------
    base = [f"sft.max_steps={steps}", "sft.logging_steps=1", f"sft.save_steps={10 * steps}"]
    runs = {
        "1 process": (1, ["sft.per_device_train_batch_size=8"]),
        "1 process, ZeRO-3": (1, ["sft.per_device_train_batch_size=8", "sft.deepspeed=zero3"]),
        "2 processes, ZeRO-3": (2, ["sft.per_device_train_batch_size=4", "sft.deepspeed=zero3"]),
    }
    sft: dict[str, dict] = {}
    for name, (nproc, sets) in runs.items():
        doc, wall = train("sft", out / f"sft-{nproc}-{len(sets)}", nproc, base + sets, "--model", str(model), "--data", str(data))
        sft[name] = {"loss": per_step(doc, "loss"), "wall_s": round(wall, 1), "world_size": doc["summary"]["world_size"]}
    ref = sft["1 process"]["loss"]
    for name, run in sft.items():
        diffs = [abs(run["loss"][s] - ref[s]) for s in ref]
        rel = [abs(run["loss"][s] - ref[s]) / abs(ref[s]) for s in ref]
        run.update(max_abs_diff=max(diffs), max_rel_diff=max(rel), first_loss=ref[1], last_loss=run["loss"][steps])
    report["sft"] = sft

    # --- GRPO: per-step rewards from one warm start ----------------------------------------------
    warm = out / f"sft-warm-{sft_steps}"
    if not (warm / "model.safetensors").is_file():
        train("sft", warm, 1, [f"sft.max_steps={sft_steps}", f"sft.save_steps={10 * sft_steps}"],
              "--model", str(model), "--data", str(data))
    gbase = [f"grpo.max_steps={grpo_steps}", "grpo.logging_steps=1", f"grpo.save_steps={10 * grpo_steps}",
             "rewards.weights.localizability=0"]
    gruns = {
        "1 process": (1, ["grpo.per_device_train_batch_size=16"]),
        "2 processes, ZeRO-3": (2, ["grpo.per_device_train_batch_size=8", "grpo.deepspeed=zero3"]),
    }
    grpo: dict[str, dict] = {}
    for name, (nproc, sets) in gruns.items():
        doc, wall = train("grpo", out / f"grpo-{nproc}-{sft_steps}-{grpo_steps}", nproc, gbase + sets, "--model", str(warm), "--data", str(data))
        grpo[name] = {"reward": per_step(doc, "reward"), "accuracy": per_step(doc, "rewards/accuracy/mean"),
                      "wall_s": round(wall, 1), "world_size": doc["summary"]["world_size"]}
    one, two = grpo["1 process"], grpo["2 processes, ZeRO-3"]
    for key in ("reward", "accuracy"):
        diffs = [two[key][s] - one[key][s] for s in one[key]]
        mean, low, high = interval(diffs)
        a, b = list(one[key].values()), list(two[key].values())
        half = 1.96 * math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
        grpo[f"{key}_diff"] = {"mean": mean, "ci95": [low, high], "steps": len(diffs),
                               "ci95_unpaired": [mean - half, mean + half],
                               "mean_1": statistics.fmean(a), "mean_2": statistics.fmean(b)}
    report["grpo"] = grpo
    report["load_average_after"] = os.getloadavg()
    (out / "equivalence.json").write_text(json.dumps(report, indent=2))

    print(f"SFT, {steps} steps of 8 from init-tiny (loss per step against 1 process):")
    print(f"{'run':22} {'world':>5} {'wall s':>7} {'first':>7} {'last':>7} {'max |d|':>9} {'max rel':>8}")
    for name, r in sft.items():
        print(f"{name:22} {r['world_size']:>5} {r['wall_s']:>7} {r['first_loss']:>7.4f} {r['last_loss']:>7.4f} "
              f"{r['max_abs_diff']:>9.2e} {r['max_rel_diff']:>8.2e}")
    print(f"\nGRPO, {grpo_steps} steps of 16 completions (2 prompts x 8) from a {sft_steps}-step SFT; "
          "2 processes - 1 process, per step:")
    for key in ("reward", "accuracy"):
        d = grpo[f"{key}_diff"]
        print(f"{key:9} mean 1 process {d['mean_1']:.3f}, 2 processes {d['mean_2']:.3f}, "
              f"difference {d['mean']:+.3f}, 95% interval paired by step [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}], "
              f"unpaired [{d['ci95_unpaired'][0]:+.3f}, {d['ci95_unpaired'][1]:+.3f}]")
    print(f"wall: 1 process {one['wall_s']} s, 2 processes {two['wall_s']} s; load average "
          f"{report['load_average_before'][0]:.1f} -> {report['load_average_after'][0]:.1f}")


if __name__ == "__main__":
    typer.run(main)
