"""Images per second through the evaluation harness against the bare engine on the same inputs.

Target: the harness adds at most 5% to the engine's time. Printed side by side, from one run:

- bare engine: `engine.generate` over the same requests in the same batches, images already
  decoded in memory (the engine's time alone, the most favourable baseline);
- harness loop: `globe.evaluate.runner.predict` into a fresh directory: reads and decodes the
  images from disk (prefetched in a thread), generates, parses, geocodes, scores and appends
  predictions.jsonl with an fsync per batch;
- finalize: metrics + bootstrap intervals + breakdowns + the two plots + report.html, a fixed cost
  per run that does not grow with the engine's time; shown separately and as end-to-end images/s.

Rounds alternate bare / harness so that a noisy shared machine slows both alike; the median of
the rounds is reported, as wall seconds and as CPU seconds of this process (all threads): on a
busy shared machine the wall clock mostly measures the neighbours, the CPU time what the work
cost. The prefetch thread's image decoding counts in the harness's CPU time even when it overlaps
generation in wall time. Default inputs: the real IM2GPS3K photos in ../shared/data (GeoScenes
when they are absent) and the tiny Qwen2.5-VL model built offline.

    python benchmarks/eval_throughput.py [--model DIR] [--n 32] [--batch-size 8] [--tokens 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "im2gps3k_sample"


def inputs(n: int, tmp: Path):
    from globe.evaluate.benchmarks import load_benchmark

    if (SHARED / "im2gps3k_sample40.csv").is_file():
        samples = load_benchmark("im2gps3k", csv_path=SHARED / "im2gps3k_sample40.csv", images=SHARED / "images", limit=n)
        return "im2gps3k sample (real photos)", samples
    from globe.data import synthesize

    synthesize(tmp / "gs", n=max(n * 5, 20), seed=0)
    return "GeoScenes (test split)", load_benchmark("geoscenes", path=tmp / "gs", limit=n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the tiny model)")
    ap.add_argument("--n", type=int, default=32, help="images")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from globe.engines import LocalEngine
    from globe.engines.base import Request, Sampling
    from globe.evaluate.runner import RunSpec, finalize, predict
    from globe.images import open_ref as open_image
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM

    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    model = args.model
    if model is None:
        from globe.model.tiny import build_tiny

        model = build_tiny(tmp / "tiny", seed=0)
    source, samples = inputs(args.n, tmp)
    engine = LocalEngine(model, batch_size=args.batch_size)
    sampling = Sampling(max_new_tokens=args.tokens, temperature=0.0)
    images = [open_image(s.image) for s in samples]
    requests = [Request(image=img, prompt=GEO_PROMPT, system=GEO_SYSTEM, id=s.id) for s, img in zip(samples, images)]
    engine.generate(requests[: args.batch_size], sampling)  # warm-up: first-call allocations, lazy imports

    def timed(fn) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - w0, time.process_time() - c0

    def bare() -> None:
        for i in range(0, len(requests), args.batch_size):
            engine.generate(requests[i:i + args.batch_size], sampling)

    spec = RunSpec(benchmark="bench", model=str(model), engine="local", prompt=GEO_PROMPT, system=GEO_SYSTEM,
                   max_new_tokens=args.tokens, batch_size=args.batch_size)
    rows: dict[str, list] = {}
    times: dict[str, list[tuple[float, float]]] = {"bare": [], "loop": [], "finalize": []}
    for k in range(args.rounds):
        out = tmp / f"run{k}"
        times["bare"].append(timed(bare))
        times["loop"].append(timed(lambda: rows.__setitem__(k, predict(engine, samples, out, spec, progress=False))))
        times["finalize"].append(timed(lambda: finalize(out, rows[k], title="bench", n_boot=1000, gallery_size=24)))

    n = len(samples)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    (bw, bc), (hw, hc), (fw, fc) = med["bare"], med["loop"], med["finalize"]
    print(f"inputs: {n} images from {source}; model {model}; batch {args.batch_size}; max_new_tokens {args.tokens}; "
          f"{args.rounds} alternating rounds, medians")
    print(f"{'':36}{'wall s':>8}{'img/s':>8}{'CPU s':>8}{'img/CPU-s':>11}")
    for label, w, c in (("bare engine (decoded in memory)", bw, bc), ("harness loop (disk -> scored jsonl)", hw, hc),
                        ("finalize (metrics, plots, report)", fw, fc), ("harness end to end", hw + fw, hc + fc)):
        fixed = label.startswith("finalize")
        print(f"{label:36}{w:8.2f}{'fixed' if fixed else f'{n / w:.2f}':>8}{c:8.2f}{'fixed' if fixed else f'{n / c:.2f}':>11}")
    wall_over, cpu_over = hw / bw - 1, hc / bc - 1
    verdict = "OK" if cpu_over <= 0.05 else "MISSED"
    print(f"harness loop overhead vs bare engine: wall {100 * wall_over:+.1f}%, CPU {100 * cpu_over:+.1f}% "
          f"(target <= +5%, judged on CPU) -> {verdict}")
    for key, v in times.items():
        print(f"  rounds {key:9} wall {[round(w, 2) for w, _ in v]}  CPU {[round(c, 2) for _, c in v]}")


if __name__ == "__main__":
    sys.exit(main())
