"""Images per second through the evaluation harness against the bare engine on the same inputs.

Target: the harness loop adds at most 5% to the engine's CPU time and at most 5% to its wall time,
for the in-process engine at the benchmark's settings (32 real photos, batch 8, 32 new tokens) and
at 160 new tokens, and for the OpenAI engine against the loopback teacher server. Printed side by
side, with the settings and the machine's load:

- bare engine: `engine.generate` over the same requests in the same batches, the images already
  decoded in memory at their own size (what a caller without the harness hands the engine);
- harness loop: `globe.evaluate.runner.predict` into a fresh directory: reads and decodes the
  images from disk, generates, parses, geocodes, scores and appends predictions.jsonl with an
  fsync per batch. Its own work runs on one background thread while the engine generates; for an
  engine that states its input size, images are decoded at reduced scale and resized there;
- for the local engine, a reference line: the bare engine on the images the harness's loader
  produced (the engine's time with the resize already done: the harness's own cost on top of it
  is the difference to the loop);
- finalize (metrics, bootstrap intervals, breakdowns, plots, report) over the loop's rows repeated
  to several row counts, with the exponent of its growth (target: below 1, sub-linear).

Rounds alternate bare / harness so that a noisy shared machine slows both alike; the median of the
rounds is reported, as wall seconds and as CPU seconds of this process (all threads). torch runs
one thread (`--torch-threads`), so the loader thread has the other core. The OpenAI teacher runs
in its own process: its CPU is not this process's, and its answers ignore max_tokens, so it runs
at one token setting. Exits 1 when a target is missed.

    python benchmarks/eval_throughput.py [--model DIR] [--n 32] [--batch-size 8] [--tokens 32 160]
        [--engines local openai] [--rounds 5] [--torch-threads 1] [--finalize-rows 32 320 3200]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "im2gps3k_sample"
TARGET = 0.05


def inputs(n: int, tmp: Path):
    from globe.evaluate.benchmarks import load_benchmark

    if (SHARED / "im2gps3k_sample40.csv").is_file():
        samples = load_benchmark("im2gps3k", csv_path=SHARED / "im2gps3k_sample40.csv", images=SHARED / "images", limit=n)
        return "im2gps3k sample (real photos)", samples
    from globe.tiny.geoscenes import synthesize

    synthesize(tmp / "gs", n=max(n * 5, 20), seed=0)
    return "GeoScenes (test split)", load_benchmark("geoscenes", path=tmp / "gs", limit=n)


def timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def start_teacher() -> tuple[subprocess.Popen, str]:
    """The loopback OpenAI-compatible teacher (scene reader) in its own process."""
    cmd = [sys.executable, "-m", "globe.tiny.teacher_server", "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    line = proc.stdout.readline().strip()  # "teacher at http://127.0.0.1:PORT/v1"
    if not line.startswith("teacher at "):
        proc.kill()
        raise RuntimeError(f"teacher server did not start: {line!r}")
    return proc, line.split()[-1]


def compare(label: str, engine, samples, tokens: int, args, tmp: Path, reference: bool) -> tuple[bool, list]:
    """Alternating rounds of bare engine and harness loop; prints the table, returns (met, rows)."""
    from globe.engines.base import Request, Sampling
    from globe.evaluate.runner import RunSpec, _load_batch, predict
    from globe.images import open_ref as open_image
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM

    sampling = Sampling(max_new_tokens=tokens, temperature=0.0)
    size = args.batch_size

    def requests(images):
        return [Request(image=img, prompt=GEO_PROMPT, system=GEO_SYSTEM, id=s.id) for s, img in zip(samples, images)]

    full = requests([open_image(s.image) for s in samples])
    fitted = requests([img for img, _ in _load_batch(samples, getattr(engine, "input_size", None))])

    def bare(reqs):
        return lambda: [engine.generate(reqs[i:i + size], sampling) for i in range(0, len(reqs), size)]

    engine.generate(full[:size], sampling)  # warm-up: first-call allocations, lazy imports
    spec = RunSpec(benchmark="bench", model=str(getattr(engine, "name", "engine")), engine=label, prompt=GEO_PROMPT,
                   system=GEO_SYSTEM, max_new_tokens=tokens, batch_size=size)
    predict(engine, samples, tmp / f"{label}-{tokens}-warm", spec, progress=False)  # geocoder caches, imports
    times: dict[str, list[tuple[float, float]]] = {"bare": [], "fitted": [], "loop": []}
    rows: list = []
    for k in range(args.rounds):
        times["bare"].append(timed(bare(full)))
        if reference:
            times["fitted"].append(timed(bare(fitted)))
        out = tmp / f"{label}-{tokens}-{k}"
        times["loop"].append(timed(lambda: rows.__setitem__(slice(None), predict(engine, samples, out, spec, progress=False))))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items() if v}
    n = len(samples)
    print(f"\n[{label}, max_new_tokens {tokens}] {args.rounds} alternating rounds, medians; {load()}")
    print(f"{'':46}{'wall s':>8}{'img/s':>8}{'CPU s':>8}{'img/CPU-s':>11}")
    names = {"bare": "bare engine (decoded in memory)", "fitted": "  reference: bare engine on the loader's images",
             "loop": "harness loop (disk -> scored jsonl)"}
    for key, (w, c) in med.items():
        print(f"{names[key]:46}{w:8.2f}{n / w:8.2f}{c:8.2f}{n / c:11.2f}")
    (bw, bc), (hw, hc) = med["bare"], med["loop"]
    wall_over, cpu_over = hw / bw - 1, hc / bc - 1
    met = wall_over <= TARGET and cpu_over <= TARGET
    print(f"harness loop vs bare engine: wall {100 * wall_over:+.1f}%, CPU {100 * cpu_over:+.1f}% "
          f"(targets <= +{100 * TARGET:.0f}% each) -> {'OK' if met else 'MISSED'}")
    if reference:
        fw, fc = med["fitted"]
        print(f"  the harness's own work over the reference: wall {100 * (hw / fw - 1):+.1f}%, CPU {100 * (hc / fc - 1):+.1f}%")
    for key, v in times.items():
        if v:
            print(f"  rounds {key:7} wall {[round(w, 2) for w, _ in v]}  CPU {[round(c, 2) for _, c in v]}")
    return met, rows


def finalize_scaling(rows: list, counts: list[int], tmp: Path) -> bool:
    """finalize over the rows repeated to each count; prints its cost and growth exponent."""
    from globe.evaluate.runner import finalize

    finalize(tmp / "fin-warm", rows, title="warm-up", n_boot=1000, gallery_size=24)  # matplotlib import, fonts
    cost = []
    print(f"\n[finalize: metrics, 1000 bootstrap resamples, breakdowns, 2 plots, report with 24 thumbnails] {load()}")
    print(f"{'rows':>8}{'wall s':>8}{'CPU s':>8}{'ms/row':>8}")
    for count in counts:
        many = [{**rows[i % len(rows)], "id": f"{rows[i % len(rows)]['id']}#{i}"} for i in range(count)]
        w, c = timed(lambda: finalize(tmp / f"fin-{count}", many, title="bench", n_boot=1000, gallery_size=24))
        cost.append(c)
        print(f"{count:8}{w:8.2f}{c:8.2f}{1000 * c / count:8.2f}")
    exponent = math.log(cost[-1] / cost[0]) / math.log(counts[-1] / counts[0]) if len(counts) > 1 else 0.0
    met = exponent < 1
    print(f"finalize CPU grows as rows^{exponent:.2f} from {counts[0]} to {counts[-1]} rows "
          f"(target: below 1, sub-linear) -> {'OK' if met else 'MISSED'}")
    return met


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the tiny model)")
    ap.add_argument("--n", type=int, default=32, help="images")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tokens", type=int, nargs="+", default=[32, 160], help="max new tokens (local engine)")
    ap.add_argument("--engines", nargs="+", choices=("local", "openai"), default=["local", "openai"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--finalize-rows", type=int, nargs="*", default=[32, 320, 3200])
    args = ap.parse_args()

    import torch

    from globe.engines import LocalEngine, OpenAIEngine

    torch.set_num_threads(args.torch_threads)
    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    model = args.model
    if model is None:
        from globe.tiny.model import build_tiny

        model = build_tiny(tmp / "tiny", seed=0)
    source, samples = inputs(args.n, tmp)
    print(f"settings: {len(samples)} images from {source}; batch {args.batch_size}; model {model}; "
          f"torch threads {torch.get_num_threads()}; engines {' '.join(args.engines)}; max_new_tokens {args.tokens}; "
          f"{args.rounds} rounds; target <= +{100 * TARGET:.0f}% CPU and wall")
    print(f"machine: {load()} at start")
    met, rows = [], []
    if "local" in args.engines:
        engine = LocalEngine(model, batch_size=args.batch_size)
        for tokens in args.tokens:
            ok, rows = compare("local", engine, samples, tokens, args, tmp, reference=True)
            met.append(ok)
    if "openai" in args.engines:
        proc, url = start_teacher()
        try:
            engine = OpenAIEngine(base_url=url, model="scene-reader", concurrency=args.batch_size, retries=0)
            ok, openai_rows = compare("openai", engine, samples, args.tokens[0], args, tmp, reference=False)
            met.append(ok)
            rows = rows or openai_rows
        finally:
            proc.kill()
            proc.wait(timeout=10)
    if args.finalize_rows and rows:
        met.append(finalize_scaling(rows, sorted(args.finalize_rows), tmp))
    print(f"\nmachine: {load()} at the end")
    print("all targets met" if all(met) else f"{met.count(False)} target(s) missed")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
