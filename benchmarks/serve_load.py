"""Serving load test, side by side in one run, on the tiny model (or --model).

1. Predictor overhead: the full in-process KServe path for one V1 request (JSON -> base64 -> image
   checks -> batcher -> engine -> parser -> geocoder -> response) against a bare
   `LocalEngine.generate` of the same image with the same prompt and sampling. Target <= 10%.
2. HTTP load against a real `python -m globe.serve` on loopback, with dynamic batching
   (max_batch_size 8, max_latency_ms 10) and without (max_batch_size 1): throughput and p50/p99
   latency at 1, 8 and 32 concurrent clients. Target: batching >= 3x throughput at 8 clients.

    .venv/bin/python benchmarks/serve_load.py [--requests-per-client 3] [--new-tokens 96]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def png_b64(i: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (112, 84), (i * 37 % 255, 90, 200 - i % 100)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def bench_overhead(model_dir: Path, new_tokens: int, repeats: int, torch_threads: int) -> None:
    from PIL import Image

    from globe.config import ServeGroup
    from globe.engines import LocalEngine, Request, Sampling
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM
    from globe.serve.model import GlobeModel

    cfg = ServeGroup(max_new_tokens=new_tokens, torch_threads=torch_threads)
    import torch

    torch.set_num_threads(torch_threads)
    engine = LocalEngine(model_dir, batch_size=cfg.max_batch_size, seed=cfg.seed)
    sampling = Sampling(max_new_tokens=new_tokens, temperature=0.0, seed=cfg.seed)
    model = GlobeModel(str(model_dir), cfg, engine=engine)
    model.load()
    bodies = [{"instances": [{"image_b64": png_b64(i)}]} for i in range(repeats)]
    images = [Image.open(io.BytesIO(base64.b64decode(b["instances"][0]["image_b64"]))).convert("RGB") for b in bodies]

    def bare_call(img) -> float:
        t0 = time.perf_counter()
        engine.generate([Request(image=img, prompt=GEO_PROMPT, system=GEO_SYSTEM)], sampling)
        return time.perf_counter() - t0

    async def measure() -> tuple[list[float], list[float]]:
        await model(bodies[0])  # warm-up (starts the batcher)
        bare_call(images[0])
        bare, full = [], []
        # interleaved, so that load from other processes hits both measurements alike
        for img, body in zip(images, bodies):
            bare.append(bare_call(img))
            t0 = time.perf_counter()
            await model(body)
            full.append(time.perf_counter() - t0)
        return bare, full

    bare, full = asyncio.run(measure())
    bare_p50, full_p50 = statistics.median(bare), statistics.median(full)
    paired = statistics.median(f - b for f, b in zip(full, bare))  # pairs cancel most load drift
    print(f"\n1) predictor overhead, 1 request at a time, {repeats} interleaved pairs, {new_tokens} new tokens")
    print(f"   bare LocalEngine.generate   p50 {bare_p50 * 1000:8.1f} ms")
    print(f"   GlobeModel V1 (in-process)  p50 {full_p50 * 1000:8.1f} ms  (includes the max_latency_ms={cfg.max_latency_ms:g} batch wait)")
    print(f"   overhead: median of paired differences {paired * 1000:+.1f} ms = {100 * paired / bare_p50:+.1f}%   (target <= 10%)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, new_tokens: int, max_batch_size: int, torch_threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "globe.serve", "--model", str(model_dir), "--http_port", str(port), "--enable_grpc", "false",
           "--enable_latency_logging", "false", "--params", "no-such-params.yaml",
           "--set", f"serve.max_new_tokens={new_tokens}", "--set", f"serve.max_batch_size={max_batch_size}",
           "--set", "serve.max_latency_ms=10", "--set", f"serve.torch_threads={torch_threads}"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, "NO_PROXY": "127.0.0.1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/models/globe/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server not ready in time")


def batch_totals(url: str) -> tuple[float, float]:
    """(engine calls, images) so far, from the predictor's globe_batch_size histogram on /metrics."""
    import httpx

    values = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(("globe_batch_size_count", "globe_batch_size_sum")):
            values[line.split()[0]] = float(line.split()[1])
    return values["globe_batch_size_count"], values["globe_batch_size_sum"]


async def load(url: str, clients: int, per_client: int) -> tuple[float, list[float]]:
    import httpx

    latencies: list[float] = []

    async def client(k: int, http: httpx.AsyncClient) -> None:
        for j in range(per_client):
            body = {"instances": [{"image_b64": png_b64(k * per_client + j)}]}
            t0 = time.perf_counter()
            resp = await http.post(f"{url}/v1/models/globe:predict", json=body)
            resp.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        await http.post(f"{url}/v1/models/globe:predict", json={"instances": [{"image_b64": png_b64(999)}]})  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(k, http) for k in range(clients)))
        wall = time.perf_counter() - t0
    return clients * per_client / wall, latencies


def bench_http(model_dir: Path, new_tokens: int, per_client: int, torch_threads: int, tmp: Path) -> None:
    print(f"\n2) HTTP load, V1 one image per request, {per_client} requests per client, {new_tokens} new tokens")
    print(f"   {'mode':<24}{'clients':>8}{'req/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'mean batch':>12}")
    results: dict[tuple[str, int], float] = {}
    for mode, size in (("no batching (size 1)", 1), ("batching (size 8, 10ms)", 8)):
        proc, url = start_server(model_dir, new_tokens, size, torch_threads, tmp / f"server-{size}.log")
        try:
            for clients in (1, 8, 32):
                calls0, images0 = batch_totals(url)
                rps, lat = asyncio.run(load(url, clients, per_client))
                calls1, images1 = batch_totals(url)
                mean_batch = (images1 - images0 - 1) / max(1.0, calls1 - calls0 - 1)  # minus the warm-up call
                results[(mode, clients)] = rps
                print(
                    f"   {mode:<24}{clients:>8}{rps:>9.2f}{percentile(lat, 50) * 1000:>10.0f}"
                    f"{percentile(lat, 99) * 1000:>10.0f}{mean_batch:>12.1f}"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    for clients in (8, 32):
        gain = results[("batching (size 8, 10ms)", clients)] / results[("no batching (size 1)", clients)]
        target = "   (target >= 3x)" if clients == 8 else ""
        print(f"   batching speed-up at {clients} clients: {gain:.1f}x{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint dir (default: build the tiny model)")
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--requests-per-client", type=int, default=3)
    parser.add_argument("--overhead-repeats", type=int, default=40)
    parser.add_argument("--skip-http", action="store_true", help="only the in-process overhead measurement")
    parser.add_argument(
        "--torch-threads", type=int, default=1,
        help="intra-op threads (serve.torch_threads); the tiny model has nothing to parallelise, and on a shared "
        "machine 2 OpenMP threads spin against each other (5-10x slower)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from globe.model.tiny import build_tiny

            model_dir = build_tiny(Path(tmp) / "tiny", seed=0)
        print(f"model {model_dir}, {os.cpu_count()} CPUs, torch threads {args.torch_threads}, load average {os.getloadavg()[0]:.1f}")
        bench_overhead(model_dir, args.new_tokens, args.overhead_repeats, args.torch_threads)
        if not args.skip_http:
            bench_http(model_dir, args.new_tokens, args.requests_per_client, args.torch_threads, Path(tmp))


if __name__ == "__main__":
    main()
