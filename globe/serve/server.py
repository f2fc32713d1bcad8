"""Start KServe's ModelServer with the globe predictor, bound where the operator says, guarded.

KServe 0.21 lacks a few things a public endpoint needs; they are added here around its machinery,
not instead of it (every limit is in docs/serve.md, "Limits and security"):

- **A settable bind address.** `RESTServer` hard-codes `host="0.0.0.0"` (kserve/kserve#4558) and
  `GRPCServer` binds `[::]`: right inside a pod, wrong on a laptop or CI box. `GlobeModelServer` sets the uvicorn
  config's host and starts its own `GuardedGRPCServer` on the same host.
- **A request guard** (`RequestGuard`, pure ASGI middleware on KServe's FastAPI app):
  * every request carries an `x-request-id` (the client's, if it is a short token, else a new
    one), echoed in the response and used in the server's log lines; an unexpected exception is
    answered here with a 500 that has it (Starlette's own last-resort handler runs outside every
    middleware), and so are uvicorn's 503 beyond the connection cap and the header-timeout 408;
  * KServe's V2 repository API (`/v2/repository/…`: load and unload a model, unauthenticated in
    0.21) answers 404 unless `serve.model_management` is on, and then 401 without the bearer
    token from `$serve.management_token_env` (gRPC: UNIMPLEMENTED / UNAUTHENTICATED);
  * bodies above `serve.max_body_bytes` get HTTP 413 before any parsing (uvicorn has no body
    limit), and the whole body must arrive within `serve.body_timeout_s` (else 408);
  * V2 requests using the binary-data extension (`Inference-Header-Content-Length`) are rewritten
    to the JSON form: BYTES as base64 strings, numeric tensors as numbers, each checked against
    its `binary_data_size`. KServe's own binary decoder (`InferRequest.from_bytes` in 0.21) turns
    BYTES into UTF-8 *text* (a 500 on any real image file, logging the raw bytes) and answers a
    size that does not fit its shape with a 500 "cannot reshape" (`as_numpy().reshape`); after the
    rewrite every request takes the JSON path, where the input checks (globe/serve/inputs.py)
    name the input in a 400.
- **Connection limits** (`guarded_protocol`, uvicorn's HTTP protocol with one timer): a
  connection that has not sent its request headers within `serve.header_timeout_s` gets 408 and
  is closed (uvicorn only times out idle keep-alive connections, so a stalled client would hold a
  socket for ever), and at most `serve.max_connections` are open at once (uvicorn's
  `limit_concurrency`: 503 beyond).
- **Error answers and logs** (`install_error_handlers`): KServe's handlers log every 4xx with a
  full traceback at ERROR and FastAPI's 422 echoes the whole request body back. Here a client
  error is one WARNING line and a JSON `{"error": ...}` with at most a short excerpt of the input;
  a 5xx logs its traceback, and an unexpected one answers only "internal server error" with the
  request id. Every log line goes through `globe.redact` (no `user:pass@` in logs).
- **gRPC: off unless asked** (`--enable_grpc true`, `globe serve --grpc`). When on, it is guarded
  like REST: bound to the same host, messages capped at `serve.max_body_bytes`, at most
  `serve.max_connections` concurrent calls, the same input checks (they live in the model's
  preprocess, which both protocols call), the same messages (INVALID_ARGUMENT for 400,
  RESOURCE_EXHAUSTED for 413) and the same one-line logs for client errors.

SIGTERM: uvicorn catches it, stops accepting connections and lets in-flight requests finish
(`grace_period`), then KServe's handler unloads the model and the process exits 0.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import struct
import time
import uuid
import warnings
from typing import Any

import orjson
from kserve import ModelServer
from kserve.protocol.grpc.server import GRPCServer

from globe.redact import install_log_redaction, short
from globe.serve.demo import install_demo
from globe.serve.model import GlobeModel

BINARY_HEADER = b"inference-header-content-length"
REQUEST_ID = b"x-request-id"
OFF_LOOP_BYTES = 256 * 1024  # request bodies above this are parsed and converted on a worker thread
MAX_JSON_VALUES = 20_000  # values in one large JSON body (see count_json_values)
MAX_V2_INPUTS = 16  # this model takes one input; a few stray ones still get their own 400 by name
MAX_OTHER_ELEMENTS = 65_536  # elements of a V2 input other than `image` (which is refused anyway, by name)
DRAIN_FACTOR = 4  # read (and drop) up to this multiple of the limit so the client sees the 413
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
log = logging.getLogger("globe.serve")


_PROBE = re.compile(r"^/$|^/metrics$|^/v2/health/|^/v2/models/[^/]+/ready$|^/v1/models/[^/:]+$")  # logged at DEBUG
_MANAGEMENT = re.compile(r"^/+v2/+repository(?:/|$)", re.IGNORECASE)  # KServe's V2 model repository API (load/unload)


class RequestGuard:
    """ASGI middleware: request ids, the model-management gate, body limit and deadline, V2 binary
    -> JSON, and a 500 with the request id for anything unexpected (see module docstring)."""

    def __init__(self, app: Any, max_body_bytes: int, body_timeout_s: float = 30.0, management_token: str | None = None,
                 max_instances: int = 64):  # fmt: skip
        self.app = app
        self.max_instances = max_instances
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.management_token = management_token  # None: the repository API is off

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, request_id = _with_request_id(scope)
        send, status, began = _echo_request_id(send, request_id), [0], time.perf_counter()

        async def tracked(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, tracked, request_id)
        except Exception as exc:  # Starlette's last-resort handler sits outside this middleware: answer here
            log.error("request %s: %s %s -> 500 (unexpected)", request_id, scope["method"], scope["path"][:200], exc_info=exc)
            if not status[0]:
                await _json_error(send, 500, f"internal server error (request id {request_id})")
            return
        if 0 < status[0] < 400:  # errors are logged where they are decided: 4xx WARNING, 5xx ERROR with the traceback
            level = logging.DEBUG if _PROBE.match(scope["path"]) else logging.INFO
            log.log(level, "request %s: %s %s -> %d in %.3f s", request_id, scope["method"], scope["path"][:200], status[0],
                    time.perf_counter() - began)  # fmt: skip

    async def _guarded(self, scope: dict, receive: Any, send: Any, request_id: str) -> None:
        if _MANAGEMENT.match(scope["path"]) and not self._may_manage(scope, request_id):
            if self.management_token is None:
                await _json_error(send, 404, "model management is off on this server (serve.model_management)")
            else:
                await _json_error(send, 401, "model management needs 'Authorization: Bearer <token>' (serve.management_token_env)",
                                  extra=[(b"www-authenticate", b"Bearer")])  # fmt: skip
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            await _json_error(send, 400, "Content-Length header is not an integer")
            return
        body, too_big = bytearray(), declared > self.max_body_bytes
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except asyncio.TimeoutError:
                log.warning("request %s: body not received within %g s (serve.body_timeout_s)", request_id, self.body_timeout_s)
                await _json_error(send, 408, f"request body not received within {self.body_timeout_s:g} s (serve.body_timeout_s)")
                return
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
            log.warning("request %s: 413 body above serve.max_body_bytes", request_id)
            await _json_error(send, 413, f"request body is larger than the limit of {self.max_body_bytes} bytes (serve.max_body_bytes)")
            return
        large = len(body) > OFF_LOOP_BYTES  # parsed on a worker thread, and refused there when its shape is hopeless
        try:
            if BINARY_HEADER in headers and scope["path"].endswith("/infer"):
                convert = _binary_v2_to_json
                if large:
                    body, scope = await asyncio.to_thread(convert, bytes(body), headers[BINARY_HEADER], scope, self.max_instances)
                else:
                    body, scope = convert(bytes(body), headers[BINARY_HEADER], scope, self.max_instances)
            elif large and scope["path"].endswith(("/infer", ":predict")) and body.lstrip()[:1] == b"{":
                count_json_values(body, self.max_instances)  # bytes.count: milliseconds, before any parse
                await asyncio.to_thread(precheck_json, bytes(body), self.max_instances)
        except ValueError as exc:
            log.warning("request %s: %s %s -> 400 %s", request_id, scope["method"], scope["path"][:200], short(str(exc)))
            await _json_error(send, 400, str(exc))
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _may_manage(self, scope: dict, request_id: str) -> bool:
        if self.management_token is None:
            log.warning("request %s: %s %s -> 404 model management is off", request_id, scope["method"], scope["path"][:200])
            return False
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        if bearer_matches(given, self.management_token):
            log.warning("request %s: %s %s: model management by token", request_id, scope["method"], scope["path"][:200])
            return True
        log.warning("request %s: %s %s -> 401 no valid management token", request_id, scope["method"], scope["path"][:200])
        return False


def bearer_matches(header: bytes | str, token: str) -> bool:
    """`Authorization: Bearer <token>` with exactly `token`, compared in constant time."""
    import hmac

    raw = header.encode("latin-1", "replace") if isinstance(header, str) else header
    scheme, _, given = raw.strip().partition(b" ")
    return scheme.lower() == b"bearer" and bool(token) and hmac.compare_digest(given.strip(), token.encode())


def management_token(cfg: Any) -> str | None:
    """The bearer token model management needs, or None when it is off (the default).

    On (`serve.model_management: true`) it is read from the environment variable
    `serve.management_token_env`; an empty or missing token is a start-up error, never "open"."""
    import os

    if not cfg.model_management:
        return None
    token = os.environ.get(cfg.management_token_env, "").strip()
    if len(token) < 16:
        raise ValueError(f"serve.model_management is on but ${cfg.management_token_env} does not hold a token of "
                         "at least 16 characters; set it, or turn model management off")  # fmt: skip
    return token


def count_json_values(body: bytes | bytearray, max_instances: int) -> None:
    """ValueError when a JSON body holds more than MAX_JSON_VALUES values (counted by their
    separators: commas, brackets and braces, which base64 never contains). A valid request is a
    few dozen values plus up to `max_instances` base64 strings; parsing 280k tiny V2 inputs holds
    the GIL for about a second even on a worker thread, so such a body is refused unparsed."""
    values = body.count(b",") + body.count(b"[") + body.count(b"{")
    if values > MAX_JSON_VALUES:
        raise ValueError(f"request body holds about {values} JSON values, above the limit of {MAX_JSON_VALUES}; this model takes "
                         f"at most {max_instances} images, as V1 instances or one V2 BYTES input 'image'")  # fmt: skip


def precheck_json(body: bytes, max_instances: int) -> None:
    """ValueError (a 400) for a large V1/V2 JSON body whose shape no valid request has: more V1
    instances or V2 images than `max_instances`, more than MAX_V2_INPUTS V2 inputs, or another
    input of more than MAX_OTHER_ELEMENTS elements. Run on a worker thread, before KServe builds a
    Python object per input on the event loop (350k tiny inputs blocked it for 5.8 s). Bodies that
    do not parse, or pass, go on to KServe and the input checks as before."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict):
        return
    instances = doc.get("instances")
    if isinstance(instances, list) and len(instances) > max_instances:
        raise ValueError(f"instances: {len(instances)} images in one request, above the limit of {max_instances}")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list):
        return
    if len(inputs) > MAX_V2_INPUTS:
        raise ValueError(f"inputs: {len(inputs)} inputs; this model takes one BYTES input 'image'")
    for inp in inputs:
        if not isinstance(inp, dict):
            continue
        name = str(inp.get("name"))[:40]
        limit = max_instances if name == "image" else MAX_OTHER_ELEMENTS
        n = _count_elements(inp.get("data"), limit)
        if n > limit:
            if name == "image":
                raise ValueError(f"inputs['image'].data: more than {max_instances} images in one request, above the limit of {max_instances}")
            raise ValueError(f"inputs[{name!r}]: more than {MAX_OTHER_ELEMENTS} elements; this model takes one BYTES input 'image'")


def _count_elements(data: Any, stop_after: int) -> int:
    """Leaves of a nested list, counted up to just past `stop_after`."""
    count, stack = 0, [data]
    while stack and count <= stop_after:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
    return count


def _with_request_id(scope: dict) -> tuple[dict, str]:
    """The client's `x-request-id` if it is a short plain token, else a fresh one, set in the scope."""
    headers = [(k, v) for k, v in scope.get("headers") or [] if k != REQUEST_ID]
    given = dict(scope.get("headers") or []).get(REQUEST_ID, b"")
    request_id = given.decode("ascii") if _CLIENT_ID.match(given) else uuid.uuid4().hex[:16]
    return {**scope, "headers": [*headers, (REQUEST_ID, request_id.encode("ascii"))]}, request_id


def _echo_request_id(send: Any, request_id: str):
    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers") or [] if k.lower() != REQUEST_ID]
            message = {**message, "headers": [*headers, (REQUEST_ID, request_id.encode("ascii"))]}
        await send(message)

    return wrapped


def _replay(body: bytes, receive: Any):
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client to disconnect

    return replay


def _bytes_elements(raw: bytes, name: str, limit: int) -> list[bytes]:
    """The elements of a binary BYTES tensor (each a 4-byte little-endian length, then the bytes),
    read only up to `limit` of them: a tensor of millions of tiny elements is refused unread."""
    out, offset = [], 0
    while offset < len(raw):
        if len(out) >= limit:
            raise ValueError(f"input {name!r}: more than {limit} BYTES elements in one request, above the limit of {limit}")
        if offset + 4 > len(raw):
            raise ValueError(f"input {name!r}: malformed BYTES tensor (4-byte length prefixes expected)")
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + size > len(raw):
            raise ValueError(f"input {name!r}: malformed BYTES tensor (4-byte length prefixes expected)")
        out.append(raw[offset : offset + size])
        offset += size
    return out


def _binary_v2_to_json(body: bytes, json_length_raw: bytes, scope: dict, max_instances: int = 64) -> tuple[bytearray, dict]:
    """Rewrite an OIP binary-extension request into plain JSON (BYTES as base64, numbers as numbers)."""
    import numpy as np
    from kserve.utils.numpy_codec import to_np_dtype

    try:
        json_length = int(json_length_raw)
    except ValueError:
        raise ValueError("Inference-Header-Content-Length is not an integer") from None
    if not 0 < json_length <= len(body):
        raise ValueError(f"Inference-Header-Content-Length {json_length} does not fit a body of {len(body)} bytes")
    if json_length > OFF_LOOP_BYTES:
        count_json_values(body[:json_length], max_instances)
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
        name, datatype = inp["name"][:40], inp["datatype"].upper()
        size = params.pop("binary_data_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(body):
            raise ValueError(f"input {name!r}: binary_data_size {str(size)[:20]!r} does not fit the request body")
        raw = body[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            elements = _bytes_elements(raw, name, max_instances if name == "image" else MAX_OTHER_ELEMENTS)
            inp["data"] = [base64.b64encode(e).decode("ascii") for e in elements]
            continue
        dtype = to_np_dtype(datatype)
        if dtype is None:
            raise ValueError(f"input {name!r}: unknown datatype {datatype[:20]!r}")
        itemsize = np.dtype(dtype).itemsize
        if size % itemsize:
            raise ValueError(f"input {name!r}: {size} bytes is not a whole number of {datatype} elements ({itemsize} bytes each)")
        if size // itemsize > MAX_OTHER_ELEMENTS:  # never turned into a Python list: refused by name below anyway
            raise ValueError(f"input {name!r}: {size // itemsize} {datatype} elements; this model takes one BYTES input 'image'")
        inp["data"] = np.frombuffer(raw, dtype=dtype).tolist()  # the shape is checked with the other inputs
    if offset != len(body):
        raise ValueError(f"binary inference request: {len(body) - offset} bytes after the last binary input")
    new_body = bytearray(orjson.dumps(header))
    new_headers = [(k, v) for k, v in scope["headers"] if k not in (BINARY_HEADER, b"content-length", b"content-type")]
    new_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(new_body)).encode())]
    return new_body, {**scope, "headers": new_headers}


async def _json_error(send: Any, status: int, message: str, extra: list | None = None) -> None:
    payload = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), (b"connection", b"close"),
                        *(extra or [])],
        }
    )
    await send({"type": "http.response.body", "body": payload})


# ----------------------------------------------------------------------------- connections


def guarded_protocol(header_timeout_s: float, write_timeout_s: float = 30.0) -> type:
    """uvicorn's HTTP protocol class, plus: request headers must arrive within `header_timeout_s`,
    and a client that stops reading (the send buffer stays above its high-water mark) for
    `write_timeout_s` is disconnected, which frees the response it was holding."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    body = json.dumps({"error": f"request headers not received within {header_timeout_s:g} s (serve.header_timeout_s)"}).encode()
    reply = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n"
             b"x-request-id: %%s\r\n\r\n%s") % (len(body), body)  # fmt: skip
    _answer_overload_with_request_ids()

    class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _write_timer: asyncio.TimerHandle | None = None

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(write_timeout_s, self._write_timed_out)

        def resume_writing(self) -> None:
            if self._write_timer is not None:
                self._write_timer.cancel()
                self._write_timer = None
            super().resume_writing()

        def _write_timed_out(self) -> None:
            self._write_timer = None
            if not self.transport.is_closing():
                log.warning("connection %s: the client has not read its response for %g s (serve.write_timeout_s); closed",
                            self.client, write_timeout_s)  # fmt: skip
                self.transport.abort()  # drops the unsent bytes at once

        def connection_made(self, transport):  # noqa: ANN001
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:  # between requests: a new one starts
                if self._header_timer is None or self._armed_for is not self.cycle:
                    self._arm()
            super().data_received(data)

        def connection_lost(self, exc):  # noqa: ANN001
            for timer in (self._header_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._write_timer = None
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._armed_for = self.cycle
            self._header_timer = self.loop.call_later(header_timeout_s, self._timed_out, self.cycle)

        def _timed_out(self, armed) -> None:  # noqa: ANN001
            self._header_timer = None
            idle = armed is None or armed.response_complete
            if self.cycle is armed and idle and not self.transport.is_closing():
                log.warning("connection %s: request headers not received within %g s; closed", self.client, header_timeout_s)
                self.transport.write(reply % uuid.uuid4().hex[:16].encode())
                self.transport.close()

    return GuardedHTTPProtocol


async def _service_unavailable(scope: dict, receive: Any, send: Any) -> None:
    """uvicorn's 503 beyond `limit_concurrency` (it bypasses every middleware), with a request id."""
    _, request_id = _with_request_id(scope)
    await _json_error(_echo_request_id(send, request_id), 503, "too many open connections (serve.max_connections); retry later")


def _answer_overload_with_request_ids() -> None:
    from uvicorn.protocols.http import h11_impl, httptools_impl

    for module in (h11_impl, httptools_impl):
        module.service_unavailable = _service_unavailable  # looked up at call time by the protocol


class GuardedGRPCServer(GRPCServer):
    """KServe's gRPC server bound to `host`, with the REST limits (see the module docstring)."""

    def __init__(self, host: str, port: int, data_plane: Any, model_repository_extension: Any, *, max_message_bytes: int,
                 max_calls: int, handshake_timeout_s: float, grace_period: int = 30,
                 management_token: str | None = None):  # fmt: skip
        super().__init__(port, data_plane, model_repository_extension, kwargs={}, grace_period=grace_period)
        self._host = host
        self._management_token = management_token
        self._options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max(max_message_bytes, 4 * 1024 * 1024)),
            ("grpc.server_handshake_timeout_ms", int(handshake_timeout_s * 1000)),
        ]
        self._max_calls = max_calls

    async def start(self, max_workers: int) -> None:
        from concurrent import futures

        from grpc import aio
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
        from kserve.protocol.grpc.servicer import InferenceServicer

        servicer = _guarded_servicer(InferenceServicer, self._management_token)(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(_grpc_error_interceptor(),),
            options=self._options,
            maximum_concurrent_rpcs=self._max_calls,
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
        if not self._server.add_insecure_port(address):
            raise RuntimeError(f"gRPC: cannot bind {address}")
        log.info("gRPC server on %s (guarded: max message %s bytes)", address, self._options[0][1])
        await self._server.start()
        await self._server.wait_for_termination()


def _guarded_servicer(base: type, token: str | None) -> type:
    """KServe's servicer with RepositoryModelLoad/Unload off (UNIMPLEMENTED), or behind the bearer
    token in the call's `authorization` metadata (UNAUTHENTICATED without it), as over REST."""
    from grpc import StatusCode

    class GuardedServicer(base):  # type: ignore[misc, valid-type]
        async def _check(self, context: Any, what: str) -> None:
            if token is None:
                log.warning("grpc %s: UNIMPLEMENTED model management is off", what)
                await context.abort(StatusCode.UNIMPLEMENTED, "model management is off on this server (serve.model_management)")
            given = dict(context.invocation_metadata() or ()).get("authorization", "")
            if not bearer_matches(given, token):
                log.warning("grpc %s: UNAUTHENTICATED no valid management token", what)
                await context.abort(StatusCode.UNAUTHENTICATED, "model management needs 'authorization: Bearer <token>' metadata")
            log.warning("grpc %s: model management by token", what)

        async def RepositoryModelLoad(self, request, context):  # noqa: ANN001, N802
            await self._check(context, "RepositoryModelLoad")
            return await super().RepositoryModelLoad(request, context)

        async def RepositoryModelUnload(self, request, context):  # noqa: ANN001, N802
            await self._check(context, "RepositoryModelUnload")
            return await super().RepositoryModelUnload(request, context)

    return GuardedServicer


def _grpc_error_interceptor():
    """KServe's exception-to-status interceptor with the REST answers: 4xx one line, 5xx a traceback."""
    from grpc import StatusCode
    from grpc.aio import AbortError
    from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor

    from globe.serve.inputs import TooLarge

    class GlobeGRPCErrors(ExceptionToStatusInterceptor):
        async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str):
            if isinstance(ex, AbortError):  # a deliberate context.abort (model management): already logged and answered
                raise ex
            if isinstance(ex, InvalidInput):
                code = StatusCode.RESOURCE_EXHAUSTED if isinstance(ex, TooLarge) else StatusCode.INVALID_ARGUMENT
                log.warning("grpc %s: %s %s", method_name, code.name, short(str(ex)))
                await context.abort(code, str(ex)[:2000])
            elif isinstance(ex, (ModelNotFound, ModelNotReady)):
                log.warning("grpc %s: %s", method_name, short(str(ex)))
                await context.abort(StatusCode.NOT_FOUND if isinstance(ex, ModelNotFound) else StatusCode.UNAVAILABLE, str(ex))
            elif isinstance(ex, InferenceError):
                log.error("grpc %s: %s", method_name, ex, exc_info=ex)
                await context.abort(StatusCode.INTERNAL, str(ex)[:2000])
            else:
                await super().handle_exception(ex, request_or_iterator, context, method_name)

    return GlobeGRPCErrors()


# ----------------------------------------------------------------------------- error answers


def install_error_handlers(app: Any) -> None:
    """Replace KServe's exception handlers on `app` (see the module docstring)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from kserve.errors import (
        InferenceError,
        InvalidInput,
        ModelNotFound,
        ModelNotReady,
        ServerNotLive,
        ServerNotReady,
        UnsupportedProtocol,
    )

    from globe.serve.inputs import TooLarge

    def rid(request: Any) -> str:
        return request.headers.get("x-request-id", "-")

    def client_error(status: int):
        async def handler(request: Any, exc: Exception):
            code = 413 if isinstance(exc, TooLarge) else status
            log.warning("request %s: %s %s -> %d %s", rid(request), request.method, request.url.path, code, short(str(exc)))
            return JSONResponse({"error": str(exc)[:2000]}, status_code=code)

        return handler

    async def schema_error(request: Any, exc: Exception):
        errors = exc.errors() if hasattr(exc, "errors") else []
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', '')}" for e in errors[:5]]
        message = "request does not match the expected schema: " + "; ".join(parts)
        log.warning("request %s: %s %s -> 422 %s", rid(request), request.method, request.url.path, short(message))
        detail = [{"loc": e.get("loc"), "msg": str(e.get("msg", ""))[:200], "type": e.get("type")} for e in errors[:5]]
        return JSONResponse({"error": message[:2000], "detail": detail}, status_code=422)

    async def server_error(request: Any, exc: Exception):
        log.error("request %s: %s %s -> 500", rid(request), request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": str(exc)[:2000]}, status_code=500)

    async def unexpected(request: Any, exc: Exception):
        log.error("request %s: %s %s -> 500 (unexpected)", rid(request), request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal server error (request id {rid(request)})"}, status_code=500)

    for exc_type, handler in (
        (InvalidInput, client_error(400)),
        (RequestValidationError, schema_error),
        (ModelNotFound, client_error(404)),
        (ModelNotReady, client_error(503)),
        (ServerNotReady, client_error(503)),
        (ServerNotLive, client_error(503)),
        (UnsupportedProtocol, client_error(501)),
        (NotImplementedError, client_error(501)),
        (InferenceError, server_error),
        (Exception, unexpected),
    ):
        app.add_exception_handler(exc_type, handler)


class GlobeModelServer(ModelServer):
    """kserve.ModelServer bound to `host`, with the guards of this module on REST and gRPC."""

    def __init__(self, host: str = "127.0.0.1", *, cfg: Any, enable_grpc: bool = False, **kwargs: Any):
        super().__init__(enable_grpc=False, **kwargs)  # KServe's own gRPC server would bind [::] unguarded
        self.host = host
        self.cfg = cfg
        self.management_token = management_token(cfg)
        self.grpc_requested = enable_grpc
        _log_like_kserve("globe")
        install_log_redaction("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access", "globe")

    async def _serve(self) -> None:
        rest = self._rest_server
        if rest is None or not hasattr(rest, "config") or not hasattr(rest, "_add_exception_handlers"):
            raise RuntimeError("kserve internals changed: cannot guard the REST server (see globe/serve/server.py)")
        rest.config.host = self.host
        quiet_request_logs()
        rest.config.http = guarded_protocol(self.cfg.header_timeout_s, self.cfg.write_timeout_s)
        rest.config.limit_concurrency = self.cfg.max_connections
        kserve_handlers = rest._add_exception_handlers

        def add_handlers(app: Any) -> None:  # KServe registers its handlers when the server starts
            kserve_handlers(app)
            install_error_handlers(app)

        rest._add_exception_handlers = add_handlers
        if self.grpc_requested:
            self._grpc_server = GuardedGRPCServer(
                self.host, self.grpc_port, self.dataplane, self.model_repository_extension,
                max_message_bytes=self.cfg.max_body_bytes, max_calls=self.cfg.max_connections,
                handshake_timeout_s=self.cfg.header_timeout_s, grace_period=self.grace_period,
                management_token=self.management_token,
            )  # fmt: skip
            self.servers.append(self._grpc_server.start(self.max_threads))
        await super()._serve()


def quiet_request_logs() -> None:
    """One line per request (RequestGuard's, at INFO) instead of uvicorn's access line, KServe's two
    `kserve.trace` timing lines and latency line, and FastAPI's ORJSONResponse deprecation warning
    (printed with two lines of source on every request by KServe 0.21 on FastAPI 0.12x)."""
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r"ORJSONResponse is deprecated")


def _log_like_kserve(name: str) -> None:
    """Send logger `name` to KServe's handlers (same format, same stream), once."""
    from kserve.logging import logger as kserve_logger

    ours = logging.getLogger(name)
    if not ours.handlers and kserve_logger.handlers:
        for handler in kserve_logger.handlers:
            ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False


def check_port_free(host: str, port: int, what: str = "") -> None:
    """ValueError (one line, exit 2 from the CLI) when `host:port` cannot be bound, before the
    model is loaded: finding out after minutes of loading weights helps no one."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not "in use"
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ValueError(f"cannot listen on {what}{host}:{port}: {exc.strerror or exc}") from None


def run_server(
    model: GlobeModel,
    *,
    host: str,
    http_port: int,
    grpc_port: int,
    enable_grpc: bool = False,
    max_body_bytes: int | None = None,
    **server_kwargs: Any,
) -> None:
    """Load the model (ready only after the weights are in), then serve until SIGTERM/SIGINT.
    Called by the one launcher (globe.serve.launch), which holds the defaults."""
    from kserve.model_server import app

    check_port_free(host, http_port)  # before anything loads: finding out after the weights helps no one
    if enable_grpc:
        check_port_free(host, grpc_port, "gRPC ")
    management_token(model.cfg)  # a missing token is a start-up error, before the weights load too
    model.load()  # a model that carries its serving settings sets the limits below (globe.serve.settings)
    cfg = model.cfg
    token = management_token(cfg)  # the settings in force after load (a registered model's may differ)
    install_demo(app, model)  # /demo (serve.demo), before the guard so that the guard wraps it (globe/serve/demo.py)
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes or cfg.max_body_bytes, body_timeout_s=cfg.body_timeout_s,
                       management_token=token, max_instances=cfg.max_instances)  # fmt: skip
    app.add_api_route(f"/v1/models/{model.name}/decoding", model.decoding, methods=["GET"])  # see GlobeModel.decoding
    if hasattr(model, "settings"):  # the serving settings in force and their source (GlobeModel.settings)
        app.add_api_route(f"/v1/models/{model.name}/settings", model.settings, methods=["GET"])
    server = GlobeModelServer(host=host, cfg=cfg, http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1, **server_kwargs)
    server.start([model])
