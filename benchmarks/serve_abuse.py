"""32 concurrent clients against a real `python -m globe.serve`, one request in ten hostile.

The concurrency check of issue 16: good requests (distinct small photos, V1 and V2) are mixed with
bad ones — invalid base64, truncated and non-image files, a decompression-bomb header, a body over
the limit, unknown fields, a URL off the allowlist and one escaping it with `..`, V2 shapes that
do not match their data, an unknown requested output. Every good answer is compared with the
answer the same server gave for the same image when it was alone (greedy decoding: batching must
not change it).

Targets: 0 errors on good requests, 0 changed answers, every bad request a 4xx, the server alive
and its RSS back near where it started. Exits 1 on a miss.

Then the attacks of issue 26, each against a fresh server with the default limits:
- progressive-JPEG scan bombs (6000x6600, 10,000 empty scans) sent back to back by 2 clients
  beside one client of good photos: its p99 latency must stay within 2x its p99 alone;
- 16 slow readers (connections that pipeline requests and never read): RSS growth <= 256 MB;
- 4 large V2 bodies at once (~19 MB, 280k tiny inputs each): health checks answer within 1 s.

    .venv/bin/python benchmarks/serve_abuse.py [--clients 32] [--requests-per-client 12] [--no-attacks]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _predictor import finish, load_line, model_or_tiny, rss, start_predictor, stop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _serve_helpers import bomb_png, scan_bomb_jpeg  # noqa: E402


def photo(i: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (96, 72), (i * 37 % 255, (i * 91) % 255, 200 - i % 100))
    img.paste(((i * 53) % 255, 30, 60), (i % 40, 10, i % 40 + 30, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def good_request(i: int) -> tuple[str, dict, str]:
    if i % 2:
        return "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(photo(i))}]}}, "v1"
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(photo(i))]}]}
    return "/v2/models/globe/infer", {"json": body}, "v2"


def bad_requests(max_body: int) -> list[tuple[str, str, dict]]:
    truncated = photo(1)[:-40]
    v1 = "/v1/models/globe:predict"
    v2 = "/v2/models/globe/infer"
    return [
        ("invalid base64", v1, {"json": {"instances": [{"image_b64": "%%%not-base64"}]}}),
        ("not an image", v1, {"json": {"instances": [{"image_b64": b64(b"hello, no pixels here")}]}}),
        ("truncated", v1, {"json": {"instances": [{"image_b64": b64(truncated)}]}}),
        ("bomb header", v1, {"json": {"instances": [{"image_b64": b64(bomb_png(30_000, 30_000))}]}}),
        ("body over limit", v1, {"content": b"x" * (max_body + 1000), "headers": {"content-type": "application/json"}}),
        ("unknown field", v1, {"json": {"instances": [{"image": "x"}]}}),
        ("url off allowlist", v1, {"json": {"instances": [{"image_url": "http://169.254.169.254/latest/meta-data/"}]}}),
        ("url dot segments", v1, {"json": {"instances": [{"image_url": "http://127.0.0.1:9/ok/../secret.png"}]}}),
        ("v2 shape mismatch", v2, {"json": {"inputs": [{"name": "image", "shape": [5, 7], "datatype": "BYTES", "data": [b64(photo(2))]}]}}),
        ("v2 unknown output", v2, {"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(photo(3))]}],
                                            "outputs": [{"name": "bogus"}]}}),
        ("v2 schema", v2, {"json": {"inputs": "image"}}),
    ]  # fmt: skip


def answer(resp_json: dict, kind: str) -> dict:
    if kind == "v1":
        pred = dict(resp_json["predictions"][0])
    else:
        pred = json.loads(next(o for o in resp_json["outputs"] if o["name"] == "prediction")["data"][0])
    pred.pop("id", None)
    return pred


async def run(url: str, clients: int, per_client: int, bad_share: float, max_body: int, seed: int):
    import httpx

    rng = random.Random(seed)
    bad = bad_requests(max_body)
    plan = [[("bad", rng.choice(bad)) if rng.random() < bad_share else ("good", k * per_client + j) for j in range(per_client)]
            for k in range(clients)]  # fmt: skip
    goods = sorted({i for row in plan for kind, i in row if kind == "good"})
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        reference = {}
        for i in goods:  # alone first: the answer each image gets without company
            path, kwargs, kind = good_request(i)
            resp = await http.post(f"{url}{path}", **kwargs)
            resp.raise_for_status()
            reference[i] = answer(resp.json(), kind)
        stats: Counter = Counter()
        bad_status: Counter = Counter()
        problems: list[str] = []

        async def client(row):
            for kind, item in row:
                if kind == "good":
                    path, kwargs, proto = good_request(item)
                    try:
                        resp = await http.post(f"{url}{path}", **kwargs)
                    except httpx.HTTPError as exc:
                        stats["good_errors"] += 1
                        problems.append(f"good {item}: {type(exc).__name__}")
                        continue
                    stats["good"] += 1
                    if resp.status_code != 200:
                        stats["good_errors"] += 1
                        problems.append(f"good {item}: HTTP {resp.status_code} {resp.text[:200]}")
                    elif answer(resp.json(), proto) != reference[item]:
                        stats["changed"] += 1
                        problems.append(f"good {item}: answer changed under load")
                else:
                    name, path, kwargs = item
                    try:
                        resp = await http.post(f"{url}{path}", **kwargs)
                        code = resp.status_code
                    except httpx.HTTPError:  # an over-limit upload may be cut off after the 413
                        code = "closed"
                    stats["bad"] += 1
                    bad_status[(name, code)] += 1
                    if code == "closed" and name != "body over limit" or code != "closed" and not 400 <= code < 500:
                        problems.append(f"bad {name}: HTTP {code}")

        t0 = time.perf_counter()
        await asyncio.gather(*(client(row) for row in plan))
        wall = time.perf_counter() - t0
        alive = (await http.get(f"{url}/v2/models/globe/ready")).status_code == 200
    return stats, bad_status, problems, wall, alive


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def good_latencies(http, url: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        path, kwargs, _ = good_request(i)
        t0 = time.perf_counter()
        (await http.post(f"{url}{path}", **kwargs)).raise_for_status()
        out.append(time.perf_counter() - t0)
    return out


async def beside(url: str, n: int, body: bytes, rate: float | None) -> tuple[float, Counter]:
    """p99 of n good requests while 2 clients send `body` (V1 image_b64) at `rate` per second each
    (None: back to back)."""
    import httpx

    payload = {"json": {"instances": [{"image_b64": b64(body)}]}}
    codes: Counter = Counter()
    async with httpx.AsyncClient(timeout=600) as http:
        done = asyncio.Event()

        async def sender():
            while not done.is_set():
                t0 = time.perf_counter()
                codes[(await http.post(f"{url}/v1/models/globe:predict", **payload)).status_code] += 1
                if rate:
                    await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - t0)))

        senders = [asyncio.create_task(sender()) for _ in range(2)]
        await asyncio.sleep(0.5)
        loaded = p99(await good_latencies(http, url, n))
        done.set()
        await asyncio.gather(*senders)
    return loaded, codes


async def scan_bombs_beside_good_traffic(url: str, n: int) -> list[tuple[str, float, Counter]]:
    """p99 of n good requests alone, beside 2 clients sending scan bombs (paced at 5/s each, then back
    to back), and beside 2 clients sending junk of the same size back to back (what a flood of any
    cheap-to-refuse request costs on the same cores)."""
    import httpx

    bomb = scan_bomb_jpeg(6000, 6600, 10_000)
    async with httpx.AsyncClient(timeout=600) as http:
        await good_latencies(http, url, 3)  # warm
        idle = p99(await good_latencies(http, url, n))
    rows = [("alone", idle, Counter())]
    for name, body, rate in (("2 scan-bomb clients, 5/s each", bomb, 5.0), ("2 scan-bomb clients, back to back", bomb, None),
                             ("2 junk clients (same size), back to back", b"\x00" * len(bomb), None)):  # fmt: skip
        loaded, codes = await beside(url, n, body, rate)
        rows.append((name, loaded, codes))
    return rows


def slow_readers(url: str, pid: int, log: Path, clients: int = 16, hold_s: float = 40.0) -> tuple[int, int, int]:
    """Connections that pipeline requests for large answers and never read: (peak RSS growth,
    growth at the end, connections the server dropped for not reading)."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    big_id = "x" * 256  # the longest id the server echoes
    body = json.dumps({"instances": [{"image_b64": b64(photo(1)), "id": big_id}] * 8}).encode()
    request = (b"POST /v1/models/globe:predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    metrics = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    rss0, peak, socks = rss(pid), 0, []
    for _ in range(clients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((host, int(port)))
        s.setblocking(False)
        socks.append(s)
    t_end = time.monotonic() + hold_s
    while time.monotonic() < t_end:
        for s in socks:
            try:
                s.sendall(request + metrics * 50)
            except (BlockingIOError, OSError):
                pass
        peak = max(peak, rss(pid) - rss0)
        time.sleep(0.5)
    for s in socks:
        s.close()
    return peak, rss(pid) - rss0, log.read_text(errors="replace").count("has not read its response")


async def large_bodies_and_health(url: str, bodies: int = 4, inputs: int = 280_000) -> tuple[float, Counter, float]:
    """`bodies` V2 requests of `inputs` tiny inputs at once; (slowest health check meanwhile, codes, body MB)."""
    import httpx

    tiny = [{"name": f"x{k}", "shape": [1], "datatype": "FP32", "data": [1.0]} for k in range(inputs)]
    blob = json.dumps({"inputs": tiny}).encode()
    codes: Counter = Counter()
    async with httpx.AsyncClient(timeout=600) as http:
        done, worst = asyncio.Event(), 0.0

        async def big():
            codes[(await http.post(f"{url}/v2/models/globe/infer", content=blob, headers={"content-type": "application/json"})).status_code] += 1

        async def health():
            nonlocal worst
            while not done.is_set():
                t0 = time.perf_counter()
                await http.get(f"{url}/v2/health/live")
                worst = max(worst, time.perf_counter() - t0)
                await asyncio.sleep(0.05)

        probe = asyncio.create_task(health())
        await asyncio.gather(*(big() for _ in range(bodies)))
        done.set()
        await probe
    return worst, codes, len(blob) / 2**20


def attacks(model: Path | None, new_tokens: int, missed: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        proc, url = start_predictor(model_or_tiny(model, tmp), log, {"max_new_tokens": new_tokens, "torch_threads": 1})
        try:
            rows = asyncio.run(scan_bombs_beside_good_traffic(url, 40))
            idle = rows[0][1]
            print("\ngood photos, one client, p99 latency:")
            for name, loaded, codes in rows:
                print(f"   {name:<42} {loaded * 1000:6.0f} ms  {loaded / idle:5.2f}x alone   others answered {dict(codes)}")
            if rows[1][1] > 2 * idle:
                missed.append(f"good p99 beside paced scan bombs {rows[1][1] / idle:.2f}x alone (target <= 2x)")
            peak, kept, dropped = slow_readers(url, proc.pid, log)
            print(f"slow readers: 16 connections for 40 s, RSS growth peak {peak / 2**20:.0f} MB, at the end {kept / 2**20:.0f} MB, "
                  f"{dropped} dropped by the server")  # fmt: skip
            if peak > 256 * 2**20:
                missed.append(f"slow readers grew RSS by {peak / 2**20:.0f} MB (target <= 256 MB)")
            worst, codes, mb = asyncio.run(large_bodies_and_health(url))
            print(f"large V2 bodies: 4 x {mb:.1f} MB at once, answered {dict(codes)}; slowest health check {worst * 1000:.0f} ms")
            if worst > 1.0:
                missed.append(f"health check took {worst:.2f} s beside large bodies (target <= 1 s)")
            if log.read_text(errors="replace").count("Traceback"):
                missed.append("tracebacks in the attack server's log")
        finally:
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=12)
    parser.add_argument("--bad-share", type=float, default=0.1)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attacks", action=argparse.BooleanOptionalAction, default=True, help="also run the issue-26 attacks")
    args = parser.parse_args()
    max_body = 2_000_000
    print(f"settings: {args.clients} clients x {args.requests_per_client} requests, {100 * args.bad_share:.0f}% bad, "
          f"{args.new_tokens} new tokens, serve.max_body_bytes {max_body}, seed {args.seed}")  # fmt: skip
    print(f"machine: {load_line()}")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        settings = {"max_new_tokens": args.new_tokens, "torch_threads": 1, "max_body_bytes": max_body,
                    "url_allowlist": "[http://127.0.0.1:9/ok/]"}  # fmt: skip
        proc, url = start_predictor(model_or_tiny(args.model, tmp), log, settings)
        try:
            rss0 = rss(proc.pid)
            stats, bad_status, problems, wall, alive = asyncio.run(
                run(url, args.clients, args.requests_per_client, args.bad_share, max_body, args.seed)
            )
            time.sleep(2)
            rss1 = rss(proc.pid)
            tracebacks = log.read_text(errors="replace").count("Traceback")
        finally:
            stop(proc)
    print(f"\ngood requests {stats['good']}: errors {stats['good_errors']}, changed answers {stats['changed']}")
    print(f"bad requests {stats['bad']}:")
    for (name, code), n in sorted(bad_status.items(), key=lambda kv: str(kv[0])):
        print(f"   {name:<20} HTTP {code}  x{n}")
    print(f"wall {wall:.1f} s, server alive afterwards: {alive}, RSS {rss0 / 2**20:.0f} MB -> {rss1 / 2**20:.0f} MB, "
          f"tracebacks in the server log: {tracebacks}")  # fmt: skip
    missed = problems[:10]
    if not alive:
        missed.append("server not ready afterwards")
    if tracebacks:
        missed.append(f"{tracebacks} tracebacks in the log (client errors must be one line)")
    if args.attacks:
        attacks(args.model, args.new_tokens, missed)
    finish(missed, "all targets met: 0 errors and 0 changed answers on good requests, every bad request a 4xx")


if __name__ == "__main__":
    main()
