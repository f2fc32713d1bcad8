"""Peak memory one request adds to a real `python -m globe.serve`, and whether it is given back.

The case from issue 16: a 6000x6000 single-colour PNG is 120 KB on the wire but 108 MB decoded;
32 copies in one V1 request used to add 7.4 GB of RSS for good. Now a request decodes its images
one at a time, straight to the model's input size (`serve.image_max_side`), on a shared pool of
`serve.decode_threads`, within `serve.max_request_pixels`.

Two servers on loopback (tiny model, 8 new tokens):
1. default settings: 32 copies exceed the default pixel budget (256 MP) and get a 413, cheaply;
2. the budget raised to 2.4 G pixels, so that 32 and 64 copies are decoded for real, sent as V1
   `image_b64`, as V1 `image_url` (a loopback image host), and as V2 binary BYTES.

For each request the server's peak RSS is reset (`/proc/PID/clear_refs`), then read back from
`VmHWM`; "after" is `VmRSS` two seconds later. Targets: every request adds <= 1 GiB at its peak
and keeps <= 256 MiB afterwards. Exits 1 on a missed target or an unexpected status.

    .venv/bin/python benchmarks/serve_memory.py [--copies 32 64]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _predictor import finish, load_line, model_or_tiny, rss, start_predictor, stop

PEAK_TARGET = 1 << 30
KEPT_TARGET = 256 << 20
MiB = 1 << 20


def big_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000), (10, 120, 30)).save(buf, format="PNG")
    return buf.getvalue()


def image_host(data: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "image/png")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def request(kind: str, copies: int, png: bytes, host_port: int) -> tuple[str, dict]:
    if kind == "V1 image_b64":
        return "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": base64.b64encode(png).decode()}] * copies}}
    if kind == "V1 image_url":
        url = f"http://127.0.0.1:{host_port}/ok/big.png"
        return "/v1/models/globe:predict", {"json": {"instances": [{"image_url": url}] * copies}}
    tensor = b"".join(len(png).to_bytes(4, "little") + png for _ in range(copies))
    head = json.dumps({"inputs": [{"name": "image", "shape": [copies], "datatype": "BYTES", "parameters": {"binary_data_size": len(tensor)}}]}).encode()
    headers = {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}
    return "/v2/models/globe/infer", {"content": head + tensor, "headers": headers}


def measure(proc, url: str, path: str, kwargs: dict) -> tuple[int, float, int, int, int]:
    import httpx

    time.sleep(1.0)
    before = rss(proc.pid)
    Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    t0 = time.perf_counter()
    resp = httpx.post(f"{url}{path}", timeout=900, **kwargs)
    seconds = time.perf_counter() - t0
    peak = rss(proc.pid, "VmHWM")
    time.sleep(2.0)
    after = rss(proc.pid)
    return resp.status_code, seconds, before, peak - before, after - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint dir (default: build the tiny model)")
    parser.add_argument("--copies", type=int, nargs="+", default=[32, 64])
    args = parser.parse_args()
    png = big_png()
    host = image_host(png)
    host_port = host.server_address[1]
    print(f"settings: 6000x6000 PNG of {len(png)} bytes, copies {args.copies}, tiny model, 8 new tokens, torch threads 1")
    print(f"machine: {load_line()}")
    print(f"\n{'server':<18}{'request':<16}{'copies':>7}{'status':>8}{'seconds':>9}{'RSS before':>12}{'peak added':>12}{'kept after':>12}")
    missed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model_or_tiny(args.model, tmp)
        base = {"max_new_tokens": 8, "torch_threads": 1, "url_allowlist": f"[http://127.0.0.1:{host_port}/ok/]"}
        servers = [
            ("defaults", base, [("V1 image_b64", args.copies[0], 413)]),
            ("budget 2.4 GP", {**base, "max_request_pixels": 2_400_000_000},
             [(kind, n, 200) for kind in ("V1 image_b64", "V1 image_url", "V2 binary") for n in args.copies]),
        ]  # fmt: skip
        for label, overrides, cases in servers:
            proc, url = start_predictor(model_dir, Path(tmp) / f"{label.split()[0]}.log", overrides)
            try:
                for kind, copies, expected in cases:
                    path, kwargs = request(kind, copies, png, host_port)
                    code, seconds, before, peak, kept = measure(proc, url, path, kwargs)
                    print(f"{label:<18}{kind:<16}{copies:>7}{code:>8}{seconds:>9.1f}{before / MiB:>10.0f}MB{peak / MiB:>10.0f}MB{kept / MiB:>10.0f}MB")
                    if code != expected:
                        missed.append(f"{label} {kind} x{copies}: HTTP {code}, expected {expected}")
                    if peak > PEAK_TARGET:
                        missed.append(f"{label} {kind} x{copies}: peak +{peak / MiB:.0f} MB > {PEAK_TARGET / MiB:.0f} MB")
                    if kept > KEPT_TARGET:
                        missed.append(f"{label} {kind} x{copies}: kept +{kept / MiB:.0f} MB > {KEPT_TARGET / MiB:.0f} MB")
            finally:
                stop(proc)
    host.shutdown()
    print(f"\ntargets: peak added <= {PEAK_TARGET / MiB:.0f} MB, kept after <= {KEPT_TARGET / MiB:.0f} MB per request")
    finish(missed, "all targets met")


if __name__ == "__main__":
    main()
