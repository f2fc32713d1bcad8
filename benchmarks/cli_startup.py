"""Cold start of `globe --help` (target < 1 s), and which imports cost the most.

Each run is a fresh interpreter, as a user's shell would start it. Printed: min / median / max
wall seconds over the runs and, for reference, a bare `python -c pass`; then the slowest
top-level imports of one `globe --help` run (PYTHONPROFILEIMPORTTIME), so a regression points at
its cause.

    python benchmarks/cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    exe = shutil.which("globe", path=str(Path(sys.executable).parent)) or shutil.which("globe")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "globe.cli", "--help"]
    def wall(command: list[str]) -> list[float]:
        out = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            out.append(time.perf_counter() - t0)
        return out

    bare = wall([sys.executable, "-c", "pass"])
    load1, load5, _ = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load1:.1f} (1 min) / {load5:.1f} (5 min) during the run")
    times = wall(cmd)
    print(f"`python -c pass` x{args.runs}: median {statistics.median(bare):.3f} s (interpreter start alone)")
    print(f"`{' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))}` x{args.runs}: "
          f"min {min(times):.3f} s, median {statistics.median(times):.3f} s, max {max(times):.3f} s "
          f"(target < 1 s: {'OK' if statistics.median(times) < 1 else 'SLOW'})")

    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    prof = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stderr
    rows = []
    for line in prof.splitlines()[1:]:
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if len(name) - len(name.lstrip()) <= 1:  # top-level imports only (one leading space)
                rows.append((int(parts[1]), name.strip()))
    print("slowest top-level imports during `globe --help` (cumulative, one run; -X importtime):")
    for us, name in sorted(rows, reverse=True)[: args.top]:
        print(f"  {us / 1e6:7.3f} s  {name}")
    raise SystemExit(0 if statistics.median(times) < 1 else 1)  # the target decides the exit status


if __name__ == "__main__":
    main()
