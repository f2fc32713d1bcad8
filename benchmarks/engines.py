"""Engine throughput, measured side by side in one run.

1. LocalEngine on the tiny model: requests/s for batch sizes 1, 4 and 8 (same requests, greedy,
   `--new-tokens` tokens each) — what left-padded batching buys over one-by-one generation.
2. OpenAIEngine against a local OpenAI-style server that answers after `--latency` seconds:
   requests/s at concurrency 1, 4 and 16 — the bound on a slow teacher endpoint is concurrency,
   not the client.

Each figure is the best of `--repeat` runs, because a shared CPU box is noisy.

    .venv/bin/python benchmarks/engines.py [--requests 32] [--new-tokens 24] [--latency 0.05] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import threading
import time
from pathlib import Path


def best_of(repeat: int, run) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_local(n: int, new_tokens: int, repeat: int) -> None:
    from PIL import Image

    from globe.engines import LocalEngine, Request, Sampling
    from globe.tiny.model import build_tiny
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny(Path(tmp) / "tiny", seed=0)
        reqs = [
            Request(image=Image.new("RGB", (112, 84), (i * 7 % 255, 90, 200)), prompt=GEO_PROMPT, system=GEO_SYSTEM)
            for i in range(n)
        ]
        sampling = Sampling(max_new_tokens=new_tokens, temperature=0.0)
        engine = LocalEngine(path, device="auto", batch_size=1)
        engine.generate(reqs[:2], sampling)  # warm-up
        print(f"LocalEngine, tiny model on {engine.device}, {n} requests x {new_tokens} new tokens")
        for batch_size in (1, 4, 8):
            engine.batch_size = batch_size
            elapsed = best_of(repeat, lambda: _check(engine.generate(reqs, sampling)))
            print(f"  batch_size {batch_size:>2}: {elapsed:6.2f} s  {n / elapsed:7.1f} requests/s")


def _check(results) -> None:
    bad = [r.error for r in results if not r.ok]
    assert not bad, bad[:3]


def bench_openai(n: int, latency: float, repeat: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from globe.engines import OpenAIEngine, Request

    async def chat(request):
        await request.json()
        await asyncio.sleep(latency)
        return JSONResponse({"choices": [{"message": {"role": "assistant", "content": "ok"}}]})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])]), log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        reqs = [Request(image=None, prompt=f"q{i}") for i in range(n)]
        print(f"OpenAIEngine, local server with {latency * 1000:.0f} ms latency, {n} requests")
        for concurrency in (1, 4, 16):
            engine = OpenAIEngine(url, "bench", concurrency=concurrency)
            elapsed = best_of(repeat, lambda: _check(engine.generate(reqs)))
            print(f"  concurrency {concurrency:>2}: {elapsed:6.2f} s  {n / elapsed:7.1f} requests/s")
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    import os

    print(f"settings: {args.requests} requests, {args.new_tokens} new tokens, upstream latency {args.latency} s, "
          f"best of {args.repeat}; machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
          " (no target: this prints figures for docs/model_engines.md)")
    bench_local(args.requests, args.new_tokens, args.repeat)
    bench_openai(args.requests * 2, args.latency, args.repeat)


if __name__ == "__main__":
    main()
