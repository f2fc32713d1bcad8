"""Start KServe's ModelServer with the globe predictor, bound where the operator says.

Two things KServe 0.21 does not offer are added here, without replacing any of its machinery:

- **A settable bind address.** `RESTServer` hard-codes `host="0.0.0.0"`, right inside a pod and
  wrong on a laptop or CI box. `GlobeModelServer` sets the uvicorn config's host just before the
  server coroutine starts. (KServe's gRPC server always binds `[::]`, so `globe serve` leaves gRPC
  off unless asked.)
- **A request guard** (pure ASGI middleware on KServe's FastAPI app):
  * bodies above `serve.max_body_bytes` get HTTP 413 with a JSON error before any parsing — uvicorn
    itself has no body limit;
  * V2 requests using the binary-data extension (`Inference-Header-Content-Length`) with BYTES
    inputs are rewritten to the JSON form with base64 strings. KServe's REST decoder turns binary
    BYTES elements into UTF-8 *text* and fails with a 500 on real image files; after the rewrite the
    same request takes KServe's JSON path, where malformed requests get a 4xx instead.

SIGTERM: uvicorn catches it, stops accepting connections and lets in-flight requests finish
(`grace_period`), then KServe's handler unloads the model and the process exits 0.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import orjson
from kserve import ModelServer
from kserve.protocol.infer_type import deserialize_bytes_tensor

from globe.serve.model import GlobeModel

BINARY_HEADER = b"inference-header-content-length"
DRAIN_FACTOR = 4  # read (and drop) up to this multiple of the limit so the client sees the 413


class RequestGuard:
    """ASGI middleware: body-size limit and V2 binary BYTES -> JSON base64 (see module docstring)."""

    def __init__(self, app: Any, max_body_bytes: int):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        body, too_big = bytearray(), False
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            await _json_error(send, 400, "Content-Length header is not an integer")
            return
        too_big = declared > self.max_body_bytes
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if too_big or len(body) + len(chunk) > self.max_body_bytes:
                too_big = True
                body.clear()
                declared = max(declared, self.max_body_bytes + 1)
                if declared > DRAIN_FACTOR * self.max_body_bytes:
                    break  # stop draining an abusive upload; the connection is closed after the reply
                continue
            body += chunk
        if too_big:
            await _json_error(send, 413, f"request body is larger than the limit of {self.max_body_bytes} bytes (serve.max_body_bytes)")
            return
        if BINARY_HEADER in headers and scope["path"].endswith("/infer"):
            try:
                body, scope = _binary_v2_to_json(bytes(body), headers[BINARY_HEADER], scope)
            except ValueError as exc:
                await _json_error(send, 400, str(exc))
                return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Any):
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client to disconnect

    return replay


def _binary_v2_to_json(body: bytes, json_length_raw: bytes, scope: dict) -> tuple[bytearray, dict]:
    """Rewrite an OIP binary-extension request whose binary inputs are all BYTES into plain JSON."""
    try:
        json_length = int(json_length_raw)
    except ValueError:
        raise ValueError("Inference-Header-Content-Length is not an integer") from None
    if not 0 < json_length <= len(body):
        raise ValueError(f"Inference-Header-Content-Length {json_length} does not fit a body of {len(body)} bytes")
    try:
        header = orjson.loads(body[:json_length])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"binary inference request: JSON header is not valid JSON ({exc})") from None
    inputs = header.get("inputs") if isinstance(header, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise ValueError("binary inference request: 'inputs' must be a list of objects")
    for k, inp in enumerate(inputs):  # KServe's binary decoder answers a missing key with a 500
        for key, kind in (("name", str), ("datatype", str), ("shape", list)):
            if not isinstance(inp.get(key), kind):
                raise ValueError(f"binary inference request: inputs[{k}].{key} is missing or not a {kind.__name__}")
    offset = json_length
    for inp in inputs:
        params = inp.get("parameters") if isinstance(inp.get("parameters"), dict) else {}
        if "binary_data_size" not in params:
            continue
        if inp.get("datatype") != "BYTES":  # numeric binary tensors: KServe decodes those itself
            return bytearray(body), scope
        size = params.pop("binary_data_size")
        if not isinstance(size, int) or size < 0 or offset + size > len(body):
            raise ValueError(f"input {inp.get('name')!r}: binary_data_size {size!r} does not fit the request body")
        try:
            elements = deserialize_bytes_tensor(body[offset : offset + size])
        except struct.error:
            raise ValueError(f"input {inp.get('name')!r}: malformed BYTES tensor (4-byte length prefixes expected)") from None
        inp["data"] = [base64.b64encode(e).decode("ascii") for e in elements]
        offset += size
    new_body = bytearray(orjson.dumps(header))
    new_headers = [(k, v) for k, v in scope["headers"] if k not in (BINARY_HEADER, b"content-length", b"content-type")]
    new_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(new_body)).encode())]
    return new_body, {**scope, "headers": new_headers}


async def _json_error(send: Any, status: int, message: str) -> None:
    payload = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class GlobeModelServer(ModelServer):
    """kserve.ModelServer whose REST server binds `host` instead of the hard-coded 0.0.0.0."""

    def __init__(self, host: str = "127.0.0.1", **kwargs: Any):
        super().__init__(**kwargs)
        self.host = host

    async def _serve(self) -> None:
        if self._rest_server is None or not hasattr(self._rest_server, "config"):
            raise RuntimeError("kserve internals changed: cannot set the REST bind address (see globe/serve/server.py)")
        self._rest_server.config.host = self.host
        await super()._serve()


def run_server(
    model: GlobeModel,
    *,
    host: str = "127.0.0.1",
    http_port: int = 8080,
    grpc_port: int = 8081,
    enable_grpc: bool = False,
    max_body_bytes: int | None = None,
    **server_kwargs: Any,
) -> None:
    """Load the model (ready only after the weights are in), then serve until SIGTERM/SIGINT."""
    from kserve.model_server import app

    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes or model.cfg.max_body_bytes)
    model.load()
    server = GlobeModelServer(host=host, http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1, **server_kwargs)
    server.start([model])
