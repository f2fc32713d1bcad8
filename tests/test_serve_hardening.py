"""The predictor under attack (issue 16), against a real `python -m globe.serve` on loopback with
REST and gRPC on: URL allowlist escapes, per-request pixel budget, V2 shapes and inputs, requested
outputs, bounded 422s, one-line client-error logs, stalled connections, the connection cap, the
guarded gRPC port, and upstream errors that must not reach the client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from kserve import InferenceGRPCClient
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from _serve_helpers import b64, png_bytes
from _servers import ImageHost, free_port, start_predictor, stop

pytestmark = pytest.mark.slow
MAX_BODY = 1_000_000
BIG = png_bytes(1500, 1500, (10, 120, 30))  # 2.25 MP: under max_image_pixels, three of them over the request budget
TRUNCATED = png_bytes(64, 48)[:-30]


@pytest.fixture(scope="module")
def host():
    h = ImageHost(big=BIG)
    yield h
    h.httpd.shutdown()


@pytest.fixture(scope="module")
def server(tiny_model_dir, host, tmp_path_factory):
    overrides = {
        "serve.max_body_bytes": MAX_BODY,
        "serve.max_new_tokens": 8,
        "serve.max_instances": 8,
        "serve.max_image_pixels": 4_000_000,
        "serve.max_request_pixels": 6_000_000,
        "serve.max_latency_ms": 20,
        "serve.torch_threads": 1,
        "serve.url_allowlist": f"[http://127.0.0.1:{host.port}/ok/]",
        "serve.url_timeout_s": 2,
        "serve.header_timeout_s": 4,
        "serve.body_timeout_s": 4,
        "serve.max_connections": 12,
        "serve.write_timeout_s": 2,
    }
    srv = start_predictor(str(tiny_model_dir), tmp_path_factory.mktemp("hard") / "server.log", overrides, grpc_port=free_port())
    yield srv
    stop(srv)


def post(server, path: str, **kw) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=60, **kw)


def v1(*images: bytes) -> dict:
    return {"json": {"instances": [{"image_b64": b64(i)} for i in images]}}


def v1_urls(host, *paths: str) -> dict:
    return {"json": {"instances": [{"image_url": f"http://127.0.0.1:{host.port}{p}"} for p in paths]}}


def binary_v2(header: dict, payload: bytes) -> dict:
    head = json.dumps(header).encode()
    return {"content": head + payload, "headers": {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}}


def bytes_tensor(*items: bytes) -> bytes:
    return b"".join(len(i).to_bytes(4, "little") + i for i in items)


def batch_calls(server) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("globe_batch_size_count"):
            return float(line.split()[1])
    return 0.0


def listening(pid: int) -> set[str]:
    """host:port of every listening TCP socket the process owns (from /proc; ::ffff:a.b.c.d shown as a.b.c.d)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:
                continue
            addr, port = cols[1].split(":")
            raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, len(addr), 8))  # 32-bit words, little-endian
            host = socket.inet_ntop(family, raw).removeprefix("::ffff:")
            out.add(f"{host}:{int(port, 16)}")
    return out


# ---------------------------------------------------------------------------- image URLs (section 2)


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("/ok/../notok/good.png", "not on this server's allowlist"),
        ("/ok/sub/../../notok/good.png", "not on this server's allowlist"),
        ("/ok/%2e%2e/notok/good.png", "ambiguous encodings are refused"),
        ("/ok/%2E%2E/notok/good.png", "ambiguous encodings are refused"),
        ("/ok%2f..%2fnotok/good.png", "ambiguous encodings are refused"),
        ("/ok/..%5cnotok/good.png", "ambiguous encodings are refused"),
        ("/ok/..\\notok/good.png", "backslashes"),
        ("/ok/%zz.png", "malformed percent-escape"),
    ],
)
def test_url_escapes_are_refused_before_any_fetch(server, host, path, fragment):
    host.paths.clear()
    resp = post(server, "/v1/models/globe:predict", **v1_urls(host, path))
    assert resp.status_code == 400 and fragment in resp.json()["error"], resp.text
    assert host.paths == []


def test_the_checked_url_is_exactly_the_fetched_one(server, host):
    host.paths.clear()
    for path in ("/ok/./a.png", "/ok/x/../a.png", "/ok/%61.png"):
        resp = post(server, "/v1/models/globe:predict", **v1_urls(host, path))
        assert resp.status_code == 200, resp.text
    assert host.paths == ["/ok/a.png"] * 3


def test_redirects_are_not_followed_and_the_deadline_is_for_the_whole_fetch(server, host):
    host.paths.clear()
    resp = post(server, "/v1/models/globe:predict", **v1_urls(host, "/ok/redirect"))
    assert resp.status_code == 400 and "returned HTTP 302" in resp.json()["error"]
    assert host.paths == ["/ok/redirect"]
    slow = post(server, "/v1/models/globe:predict", **v1_urls(host, "/ok/slow.png"))
    assert slow.status_code == 400 and "took longer than 2 s (serve.url_timeout_s)" in slow.json()["error"], slow.text


# ---------------------------------------------------------------------------- memory (section 1)


def test_a_request_over_its_pixel_budget_gets_413_naming_the_limit(server, host):
    calls = batch_calls(server)
    cases = {
        "v1": v1(BIG, BIG, BIG),
        "image_url": v1_urls(host, "/ok/big.png", "/ok/big.png", "/ok/big.png"),
        "v2 binary": binary_v2(
            {"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": 3 * (4 + len(BIG))}}]},
            bytes_tensor(BIG, BIG, BIG),
        ),
    }
    for name, kwargs in cases.items():
        path = "/v2/models/globe/infer" if name.startswith("v2") else "/v1/models/globe:predict"
        resp = post(server, path, **kwargs)
        assert resp.status_code == 413, (name, resp.text)
        assert "more than 6000000 pixels (serve.max_request_pixels)" in resp.json()["error"], name
    assert batch_calls(server) == calls  # refused before the model ran
    two = post(server, "/v1/models/globe:predict", **v1(BIG, BIG))  # within the budget: answered
    assert two.status_code == 200 and len(two.json()["predictions"]) == 2


# ---------------------------------------------------------------------------- V2 inputs (section 6)


def test_v2_inputs_that_used_to_give_500_get_400_naming_the_input(server):
    image = png_bytes(40, 40)
    image_part = {"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 4 + len(image)}}
    floats = np.arange(3, dtype=np.float32).tobytes()
    cases = [
        (binary_v2({"inputs": [image_part, {"name": "extra", "shape": [3], "datatype": "FP32", "parameters": {"binary_data_size": len(floats)}}]},
                   bytes_tensor(image) + floats), "inputs['extra']: unknown input"),
        (binary_v2({"inputs": [image_part, {"name": "extra", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": len(floats)}}]},
                   bytes_tensor(image) + floats), "inputs['extra']: shape [2, 2] holds 4 element(s), but the data has 3"),
        (binary_v2({"inputs": [{"name": "extra", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 6}}]}, b"\x00" * 6),
         "input 'extra': 6 bytes is not a whole number of FP32 elements"),
        ({"json": {"inputs": [{"name": "image", "shape": [5, 7], "datatype": "BYTES", "data": [b64(image)]}]}},
         "inputs['image']: shape [5, 7] holds 35 element(s), but the data has 1"),
        ({"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(image)]},
                              {"name": "x", "shape": [4], "datatype": "FP32", "data": [1.0]}]}},
         "inputs['x']: shape [4] holds 4 element(s), but the data has 1"),
    ]  # fmt: skip
    for kwargs, fragment in cases:
        resp = post(server, "/v2/models/globe/infer", **kwargs)
        assert resp.status_code == 400 and fragment in resp.json()["error"], resp.text
        assert len(resp.content) < 2000  # no raw image bytes echoed back


def test_unknown_requested_outputs_are_refused_before_the_model_runs(server):
    calls = batch_calls(server)
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(png_bytes())]}], "outputs": [{"name": "lat"}, {"name": "bogus"}]}
    resp = post(server, "/v2/models/globe/infer", json=body)
    assert resp.status_code == 400 and "outputs: unknown output 'bogus'" in resp.json()["error"]
    assert batch_calls(server) == calls
    body["outputs"] = [{"name": "lat"}]
    ok = post(server, "/v2/models/globe/infer", json=body)
    assert ok.status_code == 200 and [o["name"] for o in ok.json()["outputs"]] == ["lat"]


# ---------------------------------------------------------------------------- errors and logs (section 5)


def test_a_422_echoes_only_a_short_excerpt(server):
    resp = post(server, "/v2/models/globe/infer", json={"inputs": "x" * 900_000})
    assert resp.status_code == 422 and "inputs" in resp.json()["error"]
    assert len(resp.content) < 4000


def test_client_errors_log_one_warning_line_without_a_traceback(server):
    for k, kwargs in enumerate([v1(b"not an image"), {"json": {"instances": "x"}}, {"json": {"inputs": 5}}]):
        path = "/v2/models/globe/infer" if "inputs" in kwargs["json"] else "/v1/models/globe:predict"
        rid = f"probe-4xx-{k}"
        resp = post(server, path, headers={"x-request-id": rid}, **kwargs)
        assert 400 <= resp.status_code < 500 and resp.headers["x-request-id"] == rid
    deadline = time.monotonic() + 10
    while "probe-4xx-2" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = server.log.read_text(errors="replace").splitlines()
    for k in range(3):
        mine = [line for line in lines if f"probe-4xx-{k}" in line]
        assert len(mine) == 1 and "WARNING" in mine[0], mine
    assert not any("Traceback" in line for line in lines)


# ---------------------------------------------------------------------------- connections (section 7)


def test_stalled_headers_and_bodies_are_cut_off(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /v1/models/globe:predict HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408") and b"serve.header_timeout_s" in reply and b"x-request-id: " in reply
        assert s.recv(4096) == b""  # closed
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /v1/models/globe:predict HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{")
        reply = b""
        while b"}" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 408") and b"serve.body_timeout_s" in reply


def test_connections_beyond_the_cap_get_503(server):
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(12)]
    try:
        refused = httpx.get(f"{server.url}/v2/health/live", timeout=30)
        assert refused.status_code == 503 and refused.headers.get("x-request-id")
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/v2/health/live", timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover after the idle connections closed"
        time.sleep(0.2)


# ---------------------------------------------------------------------------- gRPC (section 4)


def test_grpc_listens_where_rest_does_and_answers_the_same(server):
    assert listening(server.proc.pid) == {f"127.0.0.1:{server.port}", f"127.0.0.1:{server.grpc_port}"}
    image = png_bytes(64, 48, (30, 160, 90))

    async def grpc_infer(data: bytes, shape=(1,), outputs=None):
        client = InferenceGRPCClient(f"127.0.0.1:{server.grpc_port}", timeout=60, retries=2)
        inp = InferInput("image", list(shape), "BYTES")
        inp._raw_data = bytes_tensor(data)  # raw_input_contents, as set_data_from_numpy makes it (without its shape check)
        try:
            return await client.infer(InferRequest("globe", [inp], request_outputs=outputs))
        finally:
            await client.close()

    response = asyncio.run(grpc_infer(image))
    first = next(o for o in response.outputs if o.name == "prediction").as_numpy().reshape(-1)[0]
    via_grpc = json.loads(first.decode() if isinstance(first, bytes) else first)
    rest = post(server, "/v2/models/globe/infer", json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(image)]}]})
    via_rest = json.loads(next(o for o in rest.json()["outputs"] if o["name"] == "prediction")["data"][0])
    assert via_grpc == via_rest

    rest_bad = post(server, "/v2/models/globe/infer", json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(TRUNCATED)]}]})
    cases = [
        (lambda: grpc_infer(TRUNCATED), grpc.StatusCode.INVALID_ARGUMENT, rest_bad.json()["error"]),
        (lambda: grpc_infer(image, shape=(5, 7)), grpc.StatusCode.INVALID_ARGUMENT, "shape [5, 7] holds 35 element(s)"),
        (lambda: grpc_infer(image, outputs=[RequestedOutput("bogus")]), grpc.StatusCode.INVALID_ARGUMENT, "unknown output 'bogus'"),
        (lambda: grpc_infer(b"\x00" * (MAX_BODY + 10)), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    ]
    for call, code, fragment in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            asyncio.run(call())
        assert err.value.code() == code and fragment in (err.value.details() or ""), err.value


# ---------------------------------------------------------------------------- upstream errors (section 5)


class FailingUpstream:
    """An OpenAI-compatible endpoint that refuses every call with a body full of internals."""

    SECRET = "db-7.corp.internal stack: Traceback ... Authorization: Bearer sk-live-123 http://admin:s3cret@vault.internal/"

    def __init__(self):
        secret = self.SECRET

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.dumps({"error": {"message": secret}}).encode()
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_upstream_errors_reach_the_log_not_the_client(tmp_path):
    upstream = FailingUpstream()
    overrides = {"serve.engine": "openai", "serve.base_url": f"http://admin:s3cret@127.0.0.1:{upstream.port}/v1", "serve.retries": 0,
                 "serve.max_new_tokens": 8}  # fmt: skip
    srv = start_predictor("some-model", tmp_path / "server.log", overrides)
    try:
        resp = post(srv, "/v1/models/globe:predict", headers={"x-request-id": "upstream-1"}, **v1(png_bytes()))
        assert resp.status_code == 500
        error = resp.json()["error"]
        assert "request id upstream-1" in error and "sk-live" not in error and "corp.internal" not in error and "s3cret" not in error
        deadline = time.monotonic() + 10  # the log line is written before the answer; poll, do not guess a delay
        while "HTTP 401" not in (log := srv.log.read_text(errors="replace")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "upstream-1" in log and "HTTP 401" in log and "db-7.corp.internal" in log  # the detail is for the operator
        assert "s3cret" not in log and "http://***@vault.internal/" in log  # ... with credentials redacted
    finally:
        stop(srv)
        upstream.httpd.shutdown()


# ---------------------------------------------------------------------------- issue 26: management, ids, URLs

MANAGEMENT_PATHS = ("/v2/repository/models/globe/unload", "/v2/repository/models/globe/load", "/v2/repository/index",
                    "//v2/repository/models/globe/unload", "/V2/Repository/models/globe/unload")  # fmt: skip


def grpc_unload(server, token: str | None = None):
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        metadata = [("authorization", f"Bearer {token}")] if token else None
        return GRPCInferenceServiceStub(channel).RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="globe"),
                                                                      metadata=metadata, timeout=30)  # fmt: skip


def test_model_management_is_off_by_default(server):
    """One unauthenticated POST used to unload the model for good (every predict then got 404)."""
    for path in MANAGEMENT_PATHS:
        resp = httpx.post(f"{server.url}{path}", timeout=30)
        assert resp.status_code == 404 and "model management is off" in resp.json()["error"], (path, resp.text)
        assert resp.headers["x-request-id"]
    with pytest.raises(grpc.RpcError) as err:
        grpc_unload(server, token="anything-at-all-0123456789")
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert httpx.get(f"{server.url}/v2/models/globe/ready", timeout=30).status_code == 200
    assert post(server, "/v1/models/globe:predict", **v1(png_bytes())).status_code == 200


def test_model_management_when_asked_for_needs_the_token_from_the_environment(tiny_model_dir, tmp_path):
    token = "t0ken-" + "x" * 20
    srv = start_predictor(str(tiny_model_dir), tmp_path / "server.log", {"serve.model_management": "true", "serve.max_new_tokens": 4},
                          grpc_port=free_port(), env={"GLOBE_MANAGEMENT_TOKEN": token})  # fmt: skip
    try:
        unload = f"{srv.url}/v2/repository/models/globe/unload"
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {token}"}, {"authorization": f"Bearer {token}x"}):
            resp = httpx.post(unload, headers=headers, timeout=30)
            assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer" and resp.headers["x-request-id"], resp.text
        with pytest.raises(grpc.RpcError) as err:
            grpc_unload(srv, token="wrong")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert httpx.get(f"{srv.url}/v2/models/globe/ready", timeout=30).status_code == 200
        assert token not in srv.log.read_text(errors="replace")
        resp = httpx.post(unload, headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert resp.status_code == 200, resp.text  # the operator may
    finally:
        stop(srv)


def test_ids_that_cannot_be_echoed_are_4xx_and_every_error_carries_a_request_id(server):
    image = b64(png_bytes())
    v2 = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [image]}]}
    surrogate = json.dumps({**v2, "id": "\ud800"})  # json.dumps writes the lone surrogate as the escape "\ud800"
    assert "\\ud800" in surrogate
    cases = [
        ("/v2/models/globe/infer", {"content": surrogate, "headers": {"content-type": "application/json"}}, "not valid Unicode"),
        ("/v2/models/globe/infer", {"json": {**v2, "id": "x" * 257}}, "above the limit of 256"),
        ("/v1/models/globe:predict", {"json": {"instances": [{"image_b64": image, "id": "y" * 5000}]}}, "above the limit of 256"),
        ("/v1/models/globe:predict", {"content": json.dumps({"instances": [{"image_b64": image, "id": "\udfff"}]}),
                                      "headers": {"content-type": "application/json"}}, "surrogate"),  # refused by KServe's parser
    ]  # fmt: skip
    for path, kwargs, fragment in cases:
        resp = post(server, path, **kwargs)
        assert 400 <= resp.status_code < 500 and fragment in resp.text, (path, resp.status_code, resp.text[:300])
        assert resp.headers.get("x-request-id"), resp.headers
        assert len(resp.content) < 2000
    for body in ({"inputs": [{"name": "im\ud800", "shape": [1], "datatype": "BYTES", "data": [image]}]},
                 {"inputs": [{"name": "image", "shape": [1], "datatype": "BY\udc80", "data": [image]}]},
                 {**v2, "outputs": [{"name": "lat\ud800"}]}):  # fmt: skip
        resp = post(server, "/v2/models/globe/infer", content=json.dumps(body), headers={"content-type": "application/json"})
        assert 400 <= resp.status_code < 500 and resp.headers.get("x-request-id"), (resp.status_code, resp.text[:300])
    ok = post(server, "/v2/models/globe/infer", json={**v2, "id": "z" * 256})
    assert ok.status_code == 200 and ok.json()["id"] == "z" * 256
    others = [httpx.get(f"{server.url}/no/such/route", timeout=30), httpx.delete(f"{server.url}/v1/models/globe:predict", timeout=30),
              post(server, "/v1/models/globe:predict", content=b"x" * (MAX_BODY + 1))]  # fmt: skip
    for resp in others:
        assert resp.status_code >= 400 and resp.headers.get("x-request-id"), (resp.status_code, resp.headers)
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_an_allowlisted_url_too_long_to_fetch_is_a_400(server, host):
    host.paths.clear()
    for length in (9_000, 70_000):
        resp = post(server, "/v1/models/globe:predict", **v1_urls(host, "/ok/" + "a" * length + ".png"))
        assert resp.status_code == 400 and "above the limit of 8192" in resp.json()["error"], resp.text[:300]
        assert resp.headers["x-request-id"]
    assert host.paths == []


def test_a_progressive_jpeg_scan_bomb_is_a_fast_400(server):
    """Two of these in flight used to hold a good 64-px photo for 34.8 s; now refused unread."""
    from _serve_helpers import scan_bomb_jpeg

    bomb = scan_bomb_jpeg(2000, 1900, 10_000)  # under this server's 4 MP image limit: only the scans give it away
    calls = batch_calls(server)
    started = time.monotonic()
    resp = post(server, "/v1/models/globe:predict", **v1(bomb))
    v2 = post(server, "/v2/models/globe/infer", **binary_v2(
        {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 4 + len(bomb)}}]}, bytes_tensor(bomb)))  # fmt: skip
    for r in (resp, v2):
        assert r.status_code == 400 and "more than 100 scans" in r.json()["error"] and r.headers["x-request-id"], r.text[:300]
    assert time.monotonic() - started < 10  # on a loaded 2-core box; the refusal itself is well under a millisecond
    assert batch_calls(server) == calls


def test_a_request_is_one_info_line_in_the_log(server):
    """It used to be two `kserve.trace` lines, a latency line, an access line and a two-line
    FastAPI deprecation warning per request (the probe's log reached 22 MB)."""
    size = len(server.log.read_bytes())
    for k in range(2):
        assert post(server, "/v1/models/globe:predict", headers={"x-request-id": f"one-line-{k}"}, **v1(png_bytes())).status_code == 200
    deadline = time.monotonic() + 10
    while "one-line-1" not in server.log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    new = server.log.read_bytes()[size:].decode(errors="replace").splitlines()
    for k in range(2):
        mine = [line for line in new if f"one-line-{k}" in line]
        assert len(mine) == 1 and " INFO " in mine[0] and "-> 200 in" in mine[0], new
    assert not [line for line in new if "kserve.trace" in line or "Deprecat" in line or "uvicorn.access" in line], new



def test_a_client_that_stops_reading_is_disconnected(server):
    """Issue 26: 16 clients that never read their replies held +959 MB for as long as they liked.
    Here one connection pipelines requests for /metrics and reads nothing: once the server's send
    buffer stays full for serve.write_timeout_s (2 s), the connection is dropped with its bytes."""
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.port))
        s.settimeout(5)
        try:
            for _ in range(3000):
                s.sendall(request)
        except (TimeoutError, OSError):
            pass  # the server stopped reading too: enough is queued
        deadline = time.monotonic() + 60
        while "has not read its response" not in server.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, "the slow reader was never disconnected"
            time.sleep(0.2)
        s.settimeout(10)
        with pytest.raises((ConnectionResetError, TimeoutError)):  # the rest was dropped, not kept for us
            while s.recv(1 << 20):
                pass
            raise ConnectionResetError  # a clean end after the buffered bytes is as good
    assert httpx.get(f"{server.url}/v2/health/live", timeout=30).status_code == 200


def test_large_bodies_of_hopeless_shape_are_refused_off_the_event_loop(server):
    """Issue 26: ~19 MB of 350k tiny V2 inputs blocked the event loop for 5.8 s while KServe built
    an object per input; a 19M-element UINT8 binary tensor was turned into a Python list (2.8 s).
    Bodies over 256 KiB are parsed on a worker thread and refused there by their shape."""
    tiny = [{"name": f"x{k}", "shape": [1], "datatype": "FP32", "data": [1.0]} for k in range(12_000)]
    many_inputs = post(server, "/v2/models/globe/infer", json={"inputs": tiny})
    assert many_inputs.status_code == 400 and "JSON values, above the limit of 20000" in many_inputs.json()["error"], many_inputs.text
    few_large = [{"name": f"x{k}", "shape": [1], "datatype": "BYTES", "data": ["y" * 20_000]} for k in range(20)]
    twenty = post(server, "/v2/models/globe/infer", json={"inputs": few_large})  # few values, but over 256 KiB: parsed on a thread
    assert twenty.status_code == 400 and "inputs: 20 inputs; this model takes one BYTES input" in twenty.json()["error"], twenty.text
    big = np.zeros(900_000, dtype=np.uint8).tobytes()
    tensor = post(server, "/v2/models/globe/infer", **binary_v2(
        {"inputs": [{"name": "extra", "shape": [900_000], "datatype": "UINT8", "parameters": {"binary_data_size": len(big)}}]}, big))  # fmt: skip
    assert tensor.status_code == 400 and "900000 UINT8 elements" in tensor.json()["error"], tensor.text[:300]
    images = post(server, "/v2/models/globe/infer", json={"inputs": [{"name": "image", "shape": [60_000], "datatype": "BYTES", "data": ["aGk="] * 60_000}]})
    assert images.status_code == 400 and "JSON values, above the limit" in images.json()["error"], images.text[:300]
    many = bytes_tensor(*[b"x"] * 60_000)
    binary_images = post(server, "/v2/models/globe/infer", **binary_v2(
        {"inputs": [{"name": "image", "shape": [60_000], "datatype": "BYTES", "parameters": {"binary_data_size": len(many)}}]}, many))  # fmt: skip
    assert binary_images.status_code == 400 and "more than 8 BYTES elements" in binary_images.json()["error"], binary_images.text[:300]
    for resp in (many_inputs, twenty, tensor, images, binary_images):
        assert resp.headers["x-request-id"] and len(resp.content) < 2000
