"""Distillation throughput against a local OpenAI-compatible teacher with fixed latency L.

With C calls in flight and every call taking L seconds, no client can do better than C/L calls
per second; this prints what `globe distill` achieves as a fraction of that bound (target: >= 0.9
at C = 64), for several C side by side in one run. Each sample costs two calls per teacher (the
localizability judgment and the reasoning), so samples/s = calls/s / 2. The last column is this process's CPU time per call: when
CPU ms/call x C/L approaches the cores available, the client, not the teacher, is the bound.

The teacher runs in its own process (`python -m globe.tiny.teacher_server --canned ...`), so its
work does not share this interpreter's GIL; it answers every call with a fixed text after L s.

    .venv/bin/python benchmarks/distill_throughput.py [--latency 2.0] [--rounds 6] [--concurrency 4 16 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANNED = "<think>A blue-white-red flag band.</think>\n<answer>country: France\ncity: Paris</answer>"


def start_teacher(latency: float) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "globe.tiny.teacher_server", "--port", "0", "--latency", str(latency), "--canned", CANNED]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()  # "teacher at http://127.0.0.1:PORT/v1"
    if not line.startswith("teacher at "):
        proc.kill()
        raise RuntimeError(f"teacher server did not start: {line!r}")
    return proc, line.split()[-1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=2.0, help="seconds per teacher call (L)")
    ap.add_argument("--rounds", type=int, default=6, help="samples = rounds * C / 2, i.e. `rounds` waves of C calls")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--image-size", type=int, default=112, help="GeoScenes side in px (the engine PNG-encodes each)")
    args = ap.parse_args()

    from globe.config import DistillGroup, TeacherConfig
    from globe.data.distill import distill
    from globe.tiny.geoscenes import synthesize

    proc, url = start_teacher(args.latency)
    fractions: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            synthesize(data, n=max(args.concurrency) * args.rounds // 2, seed=0, image_size=args.image_size)
            print(f"teacher latency L = {args.latency:.2f} s, 1 teacher, 2 calls per sample, {args.rounds} waves of C calls")
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (figures assume an otherwise idle box)")
            print(f"settings: concurrency {args.concurrency}, image size {args.image_size}")
            print(f"{'C':>4} {'samples':>8} {'seconds':>8} {'calls/s':>9} {'bound C/L':>10} {'fraction':>9} {'CPU ms/call':>12} {'teacher CPU ms/call':>20}")
            for c in args.concurrency:
                n = c * args.rounds // 2
                cfg = DistillGroup(
                    teachers=[TeacherConfig(name="t", kind="openai", base_url=url, model="bench")],
                    concurrency=c, timeout_s=60, retries=0,
                )  # fmt: skip
                start, cpu, srv = time.perf_counter(), time.process_time(), cpu_seconds(proc.pid)
                counts = distill(data, Path(tmp) / f"out{c}", cfg, limit=n, progress=False)
                elapsed, cpu, srv = time.perf_counter() - start, time.process_time() - cpu, cpu_seconds(proc.pid) - srv
                if counts["teacher_outputs_failed"]:
                    from globe.data.records import read_records

                    errors = {t.error for r in read_records(Path(tmp) / f"out{c}") for t in r.teachers if t.error}
                    raise SystemExit(f"C={c}: {counts['teacher_outputs_failed']} failed calls, e.g. {sorted(errors)[:3]}")
                calls = 2 * n
                bound = c / args.latency
                fractions[c] = calls / elapsed / bound
                print(
                    f"{c:>4} {n:>8} {elapsed:>8.2f} {calls / elapsed:>9.1f} {bound:>10.1f} "
                    f"{calls / elapsed / bound:>9.2f} {1000 * cpu / calls:>12.1f} {1000 * srv / calls:>20.1f}"
                )
            # reference: the engine alone, one batched call with one HTTP client (keep-alive), no distill
            from PIL import Image

            from globe.engines import OpenAIEngine, Request, Sampling

            c = max(args.concurrency)
            images = sorted((data / "images").glob("*.png"))[: c * args.rounds // 2]
            reqs = [Request(image=Image.open(p).convert("RGB"), prompt="where?") for p in images] * 2
            engine = OpenAIEngine(url, "bench", concurrency=c, timeout_s=60, retries=0)
            start, cpu, srv = time.perf_counter(), time.process_time(), cpu_seconds(proc.pid)
            results = engine.generate(reqs, Sampling(max_new_tokens=64))
            elapsed, cpu, srv = time.perf_counter() - start, time.process_time() - cpu, cpu_seconds(proc.pid) - srv
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
            bound = c / args.latency
            print(
                f"{c:>4} {'engine':>8} {elapsed:>8.2f} {len(reqs) / elapsed:>9.1f} {bound:>10.1f} "
                f"{len(reqs) / elapsed / bound:>9.2f} {1000 * cpu / len(reqs):>12.1f} {1000 * srv / len(reqs):>20.1f}"
                "   <- OpenAIEngine.generate alone"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    top = max(fractions)
    met = fractions[top] >= 0.9
    print(f"target: >= 0.9 of C/L at C={top}: {fractions[top]:.2f}, {'met' if met else 'MISSED'} "
          f"(load average now {os.getloadavg()[0]:.1f})")
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
