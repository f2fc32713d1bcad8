"""An OpenAI-compatible HTTP teacher for the tiny world: the scene reader behind `/v1/chat/completions`.

It lets `globe distill` run against a real HTTP endpoint offline (tests, benchmarks, demos), the
same way it would call vLLM or a hosted API:
- `POST /v1/chat/completions` decodes the base64 data-URL image of the last user message and
  answers with the scene reader's GLOBE-format text; with `logprobs`/`top_logprobs` and
  `max_tokens: 1` it answers a yes/no judgment with first-token log-probabilities.
- a fixed latency per request and an optional fault plan (HTTP 500, 429, hang, garbage) make it
  a realistic slow or flaky endpoint;
- `canned` skips decoding and returns a fixed text, to measure the client and not the server.

Run one by hand: `python -m globe.tiny.teacher_server --port 8011 --latency 0.5`.
"""

from __future__ import annotations

import base64
import io
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# fault plan: (request number, request body) -> None | "500" | "429" | "hang" | "garbage"
FaultPlan = Callable[[int, dict], str | None]


def _last_image_and_text(body: dict) -> tuple[bytes | None, str]:
    image, text = None, ""
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            text = content
            continue
        for part in content or []:
            if part.get("type") == "text":
                text = part.get("text", "")
            elif part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if url.startswith("data:") and "," in url:
                    image = base64.b64decode(url.split(",", 1)[1])
    return image, text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # listen() backlog: 64 clients connecting at once must not be reset


class TeacherServer:
    """A threaded HTTP server on 127.0.0.1; `base_url` ends in /v1. Use as a context manager."""

    def __init__(
        self,
        latency_s: float = 0.0,
        world=None,
        noise: float = 0.0,
        name: str = "http-reader",
        faults: FaultPlan | None = None,
        hang_s: float = 30.0,
        canned: str | None = None,
        port: int = 0,
        city_bias: float = 0.0,
        omit_landmark: float = 0.0,
        closer_look: float = 0.0,
    ):
        self.latency_s, self.faults, self.hang_s, self.canned = latency_s, faults, hang_s, canned
        self.reader = None
        if canned is None:  # the scene reader's traits, so an HTTP teacher can stand in for params.yaml's
            from globe.tiny.scene_reader import SceneReaderEngine

            self.reader = SceneReaderEngine(name=name, noise=noise, world=world, city_bias=city_bias,
                                            omit_landmark=omit_landmark, closer_look=closer_look)
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.statuses: Counter = Counter()
        self.httpd = _Server(("127.0.0.1", port), self._handler())
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> "TeacherServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "TeacherServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------------------

    def answer(self, body: dict) -> dict[str, Any]:
        from PIL import Image

        from globe.engines.base import Request

        model = body.get("model", "scene-reader")
        judging = bool(body.get("logprobs")) and int(body.get("max_tokens") or body.get("max_completion_tokens") or 0) <= 1
        image_bytes, _ = _last_image_and_text(body)
        if self.canned is not None:
            text, p_yes = self.canned, 0.9
        else:
            if image_bytes is None:
                raise ValueError("no image in the request")
            image = Image.open(io.BytesIO(image_bytes)).convert("RGB")
            if judging:
                p_yes, text = self.reader.judge([Request(image=image, prompt="")])[0].p_yes, ""
            else:
                p_yes, text = None, self.reader.answer(image)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if judging:
            token = "yes" if p_yes >= 0.5 else "no"
            top = [
                {"token": "yes", "logprob": math.log(p_yes), "bytes": list(b"yes")},
                {"token": "no", "logprob": math.log(1 - p_yes), "bytes": list(b"no")},
            ]
            top.sort(key=lambda t: -t["logprob"])
            choice["message"] = {"role": "assistant", "content": token}
            choice["logprobs"] = {"content": [{"token": token, "logprob": top[0]["logprob"], "top_logprobs": top}]}
        else:
            choice["message"] = {"role": "assistant", "content": text}
            choice["logprobs"] = None
        return {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": {"prompt_tokens": 100, "completion_tokens": max(1, len(text) // 4), "total_tokens": 100 + len(text) // 4},
        }

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: bytes, ctype: str = "application/json") -> None:
                with server.lock:
                    server.statuses[status] += 1
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "scene-reader", "object": "model"}]}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server.lock:
                    server.requests += 1
                    n = server.requests
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if not self.path.rstrip("/").endswith("/chat/completions"):
                        self._send(404, b'{"error": {"message": "not found"}}')
                        return
                    try:
                        body = json.loads(raw)
                    except json.JSONDecodeError:
                        self._send(400, b'{"error": {"message": "body is not JSON"}}')
                        return
                    fault = server.faults(n, body) if server.faults else None
                    if fault == "hang":
                        time.sleep(server.hang_s)
                    if server.latency_s:
                        time.sleep(server.latency_s)
                    if fault == "500":
                        self._send(500, b'{"error": {"message": "injected server error"}}')
                    elif fault == "429":
                        self._send(429, b'{"error": {"message": "injected rate limit"}}')
                    elif fault == "garbage":
                        self._send(200, b"<html>proxy error</html>", "text/html")
                    else:
                        try:
                            payload = json.dumps(server.answer(body)).encode()
                        except Exception as exc:
                            self._send(400, json.dumps({"error": {"message": str(exc)}}).encode())
                            return
                        self._send(200, payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): nothing to answer
                finally:
                    with server.lock:
                        server.in_flight -= 1

        return Handler


def main() -> None:  # pragma: no cover - manual use
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8011)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--name", default="http-reader", help="the teacher's name: it keys its noise")
    for trait in ("city-bias", "omit-landmark", "closer-look"):
        ap.add_argument(f"--{trait}", type=float, default=0.0, help="as distill.teachers[] of kind scene-reader")
    ap.add_argument("--world", default=None, help="world.json of the dataset (default: the built-in tiny world)")
    ap.add_argument("--canned", default=None, help="answer every request with this text (no image decoding)")
    args = ap.parse_args()
    server = TeacherServer(
        latency_s=args.latency, noise=args.noise, world=args.world, port=args.port, canned=args.canned,
        name=args.name, city_bias=args.city_bias, omit_landmark=args.omit_landmark, closer_look=args.closer_look,
    ).start()
    print(f"teacher at {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
