"""Start KServe's ModelServer with the globe predictor, bound where the operator says, guarded.

KServe 0.21 lacks a few things a public endpoint needs; they are added here around its machinery,
not instead of it (every limit is in docs/serve.md, "Limits and security"):

- **A settable bind address.** `RESTServer` hard-codes `host="0.0.0.0"` (kserve/kserve#4558) and
  `GRPCServer` binds `[::]`: right inside a pod, wrong on a laptop or CI box. `GlobeModelServer` sets the uvicorn
  config's host and starts its own `GuardedGRPCServer` on the same host.
- **A request guard** (`RequestGuard`, pure ASGI middleware on KServe's FastAPI app):
  * every request carries an `x-request-id` (the client's, if it is a short token, else a new
    one), echoed in the response and used in the server's log lines;
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
import uuid
from typing import Any

import orjson
from kserve import ModelServer
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.infer_type import deserialize_bytes_tensor

from globe.redact import install_log_redaction, short
from globe.serve.model import GlobeModel

BINARY_HEADER = b"inference-header-content-length"
REQUEST_ID = b"x-request-id"
DRAIN_FACTOR = 4  # read (and drop) up to this multiple of the limit so the client sees the 413
_CLIENT_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
log = logging.getLogger("globe.serve")


class RequestGuard:
    """ASGI middleware: request ids, body limit and deadline, V2 binary -> JSON (see module docstring)."""

    def __init__(self, app: Any, max_body_bytes: int, body_timeout_s: float = 30.0):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope, request_id = _with_request_id(scope)
        send = _echo_request_id(send, request_id)
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
        if BINARY_HEADER in headers and scope["path"].endswith("/infer"):
            try:
                body, scope = _binary_v2_to_json(bytes(body), headers[BINARY_HEADER], scope)
            except ValueError as exc:
                log.warning("request %s: 400 %s", request_id, short(str(exc)))
                await _json_error(send, 400, str(exc))
                return
        await self.app(scope, _replay(bytes(body), receive), send)


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


def _binary_v2_to_json(body: bytes, json_length_raw: bytes, scope: dict) -> tuple[bytearray, dict]:
    """Rewrite an OIP binary-extension request into plain JSON (BYTES as base64, numbers as numbers)."""
    import numpy as np
    from kserve.utils.numpy_codec import to_np_dtype

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
        name, datatype = inp["name"][:40], inp["datatype"].upper()
        size = params.pop("binary_data_size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(body):
            raise ValueError(f"input {name!r}: binary_data_size {str(size)[:20]!r} does not fit the request body")
        raw = body[offset : offset + size]
        offset += size
        if datatype == "BYTES":
            try:
                elements = deserialize_bytes_tensor(raw)
            except (struct.error, ValueError, IndexError):
                raise ValueError(f"input {name!r}: malformed BYTES tensor (4-byte length prefixes expected)") from None
            inp["data"] = [base64.b64encode(e).decode("ascii") for e in elements]
            continue
        dtype = to_np_dtype(datatype)
        if dtype is None:
            raise ValueError(f"input {name!r}: unknown datatype {datatype[:20]!r}")
        itemsize = np.dtype(dtype).itemsize
        if size % itemsize:
            raise ValueError(f"input {name!r}: {size} bytes is not a whole number of {datatype} elements ({itemsize} bytes each)")
        inp["data"] = np.frombuffer(raw, dtype=dtype).tolist()  # the shape is checked with the other inputs
    if offset != len(body):
        raise ValueError(f"binary inference request: {len(body) - offset} bytes after the last binary input")
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


# ----------------------------------------------------------------------------- connections


def guarded_protocol(header_timeout_s: float) -> type:
    """uvicorn's HTTP protocol class, plus: request headers must arrive within `header_timeout_s`."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    body = json.dumps({"error": f"request headers not received within {header_timeout_s:g} s (serve.header_timeout_s)"}).encode()
    reply = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport):  # noqa: ANN001
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self.cycle is None or self.cycle.response_complete:  # between requests: a new one starts
                if self._header_timer is None or self._armed_for is not self.cycle:
                    self._arm()
            super().data_received(data)

        def connection_lost(self, exc):  # noqa: ANN001
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
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
                self.transport.write(reply)
                self.transport.close()

    return GuardedHTTPProtocol


class GuardedGRPCServer(GRPCServer):
    """KServe's gRPC server bound to `host`, with the REST limits (see the module docstring)."""

    def __init__(self, host: str, port: int, data_plane: Any, model_repository_extension: Any, *, max_message_bytes: int,
                 max_calls: int, handshake_timeout_s: float, grace_period: int = 30):  # fmt: skip
        super().__init__(port, data_plane, model_repository_extension, kwargs={}, grace_period=grace_period)
        self._host = host
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

        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
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


def _grpc_error_interceptor():
    """KServe's exception-to-status interceptor with the REST answers: 4xx one line, 5xx a traceback."""
    from grpc import StatusCode
    from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor

    from globe.serve.inputs import TooLarge

    class GlobeGRPCErrors(ExceptionToStatusInterceptor):
        async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str):
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
        self.grpc_requested = enable_grpc
        _log_like_kserve("globe")
        install_log_redaction("kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access", "globe")

    async def _serve(self) -> None:
        rest = self._rest_server
        if rest is None or not hasattr(rest, "config") or not hasattr(rest, "_add_exception_handlers"):
            raise RuntimeError("kserve internals changed: cannot guard the REST server (see globe/serve/server.py)")
        rest.config.host = self.host
        rest.config.http = guarded_protocol(self.cfg.header_timeout_s)
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
            )  # fmt: skip
            self.servers.append(self._grpc_server.start(self.max_threads))
        await super()._serve()


def _log_like_kserve(name: str) -> None:
    """Send logger `name` to KServe's handlers (same format, same stream), once."""
    from kserve.logging import logger as kserve_logger

    ours = logging.getLogger(name)
    if not ours.handlers and kserve_logger.handlers:
        for handler in kserve_logger.handlers:
            ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False


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

    model.load()  # first: a model that carries its serving settings sets the limits below (globe.serve.settings)
    cfg = model.cfg
    app.add_middleware(RequestGuard, max_body_bytes=max_body_bytes or cfg.max_body_bytes, body_timeout_s=cfg.body_timeout_s)
    app.add_api_route(f"/v1/models/{model.name}/decoding", model.decoding, methods=["GET"])  # see GlobeModel.decoding
    if hasattr(model, "settings"):  # the serving settings in force and their source (GlobeModel.settings)
        app.add_api_route(f"/v1/models/{model.name}/settings", model.settings, methods=["GET"])
    server = GlobeModelServer(host=host, cfg=cfg, http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1, **server_kwargs)
    server.start([model])
