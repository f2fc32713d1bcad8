"""Multi-process training for real, on CPU: DeepSpeed ZeRO-3 over gloo (DeepSpeed's CPU accelerator).

- `torchrun --nproc_per_node 2 -m globe train sft|grpo ... --set <stage>.deepspeed=zero3` with the
  tiny-cpu preset and nothing else: exit 0, `world_size` 2 in metrics.json, a clean checkpoint the
  Auto classes load (16-bit weights gathered on save: every parameter whole), resume at the same step.
- Two "nodes" on loopback, launched with the command and environment of the TrainJob that
  `globe.kfp.steps.grpo_trainjob_request` builds and the SDK renders (`globe.k8s.trainjob.render_trainjob`,
  `node_launch`): so the manifest is what was tested. One rank is killed mid-run: both nodes exit
  non-zero within a bound, and the same command resumes from the last complete checkpoint.

The model is init-tiny (policy and judge alike) and 64 synthesized images: mechanics, not learning
(benchmarks/distributed_equivalence.py compares 1 and 2 processes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from globe.config import load_params

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"

pytestmark = pytest.mark.slow

FAIL_WITHIN_S = 90  # a killed rank: both nodes must have exited non-zero this long after the kill


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from globe.tiny.geoscenes import synthesize
    from globe.tiny.model import build_tiny

    root = tmp_path_factory.mktemp("dist")
    model = build_tiny(root / "tiny", seed=0)
    synthesize(root / "data", n=64, seed=0)
    return SimpleNamespace(root=root, model=Path(model), data=root / "data")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                             "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", **extra)
    return env


def torchrun(stage: str, *args: str, nproc: int = 2, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "globe", "train", stage, "--params", str(PARAMS), "--preset", "tiny-cpu", *args]  # fmt: skip
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def metrics(out: Path) -> dict:
    return json.loads((out / "metrics.json").read_text())


def assert_clean_checkpoint(out: Path, base: Path) -> None:
    """Loadable by the Auto classes, every tensor whole (not a ZeRO-3 placeholder), and trained."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoModelForImageTextToText.from_pretrained(out)
    AutoProcessor.from_pretrained(out)
    saved, start = load_file(out / "model.safetensors"), load_file(base / "model.safetensors")
    assert set(saved) == set(start)
    assert all(saved[k].shape == start[k].shape for k in start)
    assert any(not torch.equal(saved[k], start[k]) for k in start)


def test_zero3_sft_on_two_processes_writes_a_clean_checkpoint_and_resumes_at_the_same_step(world):
    out = world.root / "sft"
    common = ["--model", str(world.model), "--data", str(world.data), "--out", str(out),
              "--set", "sft.deepspeed=zero3", "--set", "sft.logging_steps=1", "--set", "sft.save_steps=2"]
    proc = torchrun("sft", *common, "--set", "sft.max_steps=2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = metrics(out)["summary"]
    assert summary["world_size"] == 2 and summary["global_step"] == 2
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").iterdir())
    assert [s for s in shards if "model_states" in s] == [f"zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in (0, 1)]
    assert_clean_checkpoint(out, world.model)
    assert json.loads(proc.stdout)["world_size"] == 2  # one JSON summary on stdout (rank 0's)

    proc = torchrun("sft", *common, "--set", "sft.max_steps=3", "--resume")
    assert proc.returncode == 0, proc.stderr[-4000:]
    doc = metrics(out)
    assert doc["summary"]["global_step"] == 3 and doc["summary"]["resumed_from"].endswith("checkpoint-2")
    assert [h["step"] for h in doc["log_history"] if "loss" in h] == [1, 2, 3]  # continued at step 3


def test_zero3_grpo_on_two_processes_with_a_local_judge_on_every_rank(world):
    out = world.root / "grpo"
    proc = torchrun("grpo", "--model", str(world.model), "--reward-model", str(world.model),
                    "--data", str(world.data), "--out", str(out),
                    "--set", "grpo.deepspeed=zero3", "--set", "grpo.max_steps=2", "--set", "grpo.logging_steps=1",
                    "--set", "grpo.max_completion_length=16", "--set", "grpo.split_advantage=true")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    # per-token advantages through ZeRO-3 on both ranks (each slices the gathered rewards to its rows)
    assert [h["split/unsplit_frac"] for h in metrics(out)["log_history"] if "reward" in h] != []
    summary = metrics(out)["summary"]
    assert summary["world_size"] == 2 and summary["global_step"] == 2
    assert (out / "checkpoint-2" / "global_step2").is_dir()
    # each rank scored its own 16 completions a step; the counts in metrics.json are over both ranks
    failures, completions = summary["reward_failures"], 2 * 2 * 16
    assert failures["accuracy"]["calls"] == failures["localizability"]["calls"] == completions
    assert failures["localizability"]["judge_calls"] == completions and failures["localizability"]["failure_share"] == 0
    assert_clean_checkpoint(out, world.model)


def test_a_launch_that_disagrees_with_num_processes_stops_before_loading_anything(world, tmp_path):
    out = tmp_path / "sft"
    cmd = [sys.executable, "-m", "globe", "train", "sft", "--params", str(PARAMS), "--preset", "tiny-cpu",
           "--model", str(world.model), "--data", str(world.data), "--out", str(out),
           "--set", "sft.num_processes=4", "--set", "sft.deepspeed=zero3"]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(RANK="0", LOCAL_RANK="0", WORLD_SIZE="2"), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "this launch has 2 process(es) (WORLD_SIZE) but sft.num_processes is 4" in proc.stderr
    assert not out.exists()


# --- two nodes, as the TrainJob launches them ----------------------------------------------------


def _trainjob_nodes(world, ws: Path, steps: int):
    """The pipeline's GRPO TrainJob for a CPU "cluster" of two 1-CPU nodes, rendered by the SDK, and
    each node's command/env as Kubeflow Trainer's torch plugin sets it (on 127.0.0.1)."""
    from globe.k8s.trainjob import GpuSettings, node_launch, render_trainjob
    from globe.kfp.steps import grpo_trainjob_request

    params = load_params(PARAMS, preset="tiny-cpu", overrides=[
        "grpo.deepspeed=zero3", f"grpo.max_steps={steps}", "grpo.save_steps=1", "grpo.logging_steps=1",
        "grpo.max_completion_length=16", "grpo.dist_timeout_s=60"])  # fmt: skip
    groups = params.model_dump(mode="json")
    root = ws / "runs" / "r1" / "grpo"
    refs = {"data": str(world.data), "model": str(world.model), "reward_model": str(world.model)}
    req = grpo_trainjob_request(groups, root, refs, image="globe-train", num_nodes=2,
                                gpu=GpuSettings(gpus_per_node=0), cpu_per_node="1", name="grpo-r1")
    runtime = yaml.safe_load((ROOT / "manifests/base/training-runtime.yaml").read_text())
    job = render_trainjob(req, runtime)
    assert job["spec"]["trainer"]["command"] == ["torchrun", "--no-python", "globe", "train", "grpo"]
    port = _free_port()
    nodes = [node_launch(job, runtime, rank, master_addr="127.0.0.1", master_port=port, mounts={"/workspace": str(ws)})
             for rank in (0, 1)]
    assert nodes[1].env["PET_NNODES"] == "2" and nodes[1].env["PET_NPROC_PER_NODE"] == "1"
    assert nodes[1].env["PET_NODE_RANK"] == "1" and "--resume" in nodes[1].argv
    return root / "out", nodes


def _start(node, log: Path) -> subprocess.Popen:
    Path(node.cwd).mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(node.argv, env=_env(**node.env), cwd=node.cwd, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _wait(procs: list[subprocess.Popen], timeout: float) -> list[int | None]:
    end = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    return [p.poll() for p in procs]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_two_node_grpo_from_the_trainjob_fails_fast_when_a_rank_dies_and_resumes(world, tmp_path):
    import psutil

    ws = tmp_path / "workspace"
    out, nodes = _trainjob_nodes(world, ws, steps=4)
    logs = [tmp_path / f"node{r}.log" for r in (0, 1)]
    procs = [_start(n, log) for n, log in zip(nodes, logs)]
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoint-1" / "trainer_state.json").is_file():
            assert all(p.poll() is None for p in procs), [log.read_text()[-3000:] for log in logs]
            assert time.monotonic() < deadline, "no checkpoint-1 within 300 s"
            time.sleep(0.2)
        worker = psutil.Process(procs[1].pid).children()[0]  # node 1's only rank (global rank 1)
        worker.kill()
        killed = time.monotonic()
        codes = _wait(procs, FAIL_WITHIN_S)
        took = time.monotonic() - killed
    finally:
        _stop(procs)
    print(f"rank 1 killed: nodes exited {codes}, {took:.1f} s later")  # docs/train.md quotes it (pytest -s)
    assert all(c not in (None, 0) for c in codes), (codes, [log.read_text()[-3000:] for log in logs])
    assert took < FAIL_WITHIN_S
    failed = logs[1].read_text()
    assert "rank      : 1 (local_rank: 0)" in failed and "Signal 9 (SIGKILL)" in failed, failed[-3000:]

    # the same rendered command again (it carries --resume): it continues from the last complete checkpoint
    logs = [tmp_path / f"node{r}-relaunch.log" for r in (0, 1)]
    procs = [_start(n, log) for n, log in zip(nodes, logs)]
    try:
        codes = _wait(procs, 300)
    finally:
        _stop(procs)
    assert codes == [0, 0], [log.read_text()[-3000:] for log in logs]
    summary = metrics(out)["summary"]
    assert summary["world_size"] == 2 and summary["global_step"] == 4
    assert "checkpoint-" in summary["resumed_from"]
    assert_clean_checkpoint(out, world.model)
