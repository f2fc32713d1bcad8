"""Turn untrusted request payloads into validated PIL images — or a 4xx error that names the problem.

Everything a client sends passes through here before any model code sees it, so the checks are
ordered from cheap to expensive: JSON shape and types first (including every V2 input's shape
against its data), then base64, then the image header (format and dimensions, which PIL reads
without decoding pixels), and only then the pixel data — one image at a time, straight to the
model's input size (`globe.images.open_image`), charged to the request's pixel budget. That order
is what makes decompression bombs and "many big images in one small request" harmless.

Errors are `BadInput` (a `kserve.errors.InvalidInput`, which the server answers with HTTP 400 and
`{"error": "..."}`) or `TooLarge` (HTTP 413); the message always says which field of which
instance was wrong and what was expected, because "bad request" alone sends users guessing.

Image URLs are an SSRF risk (a predictor inside a cluster can reach the cloud metadata endpoint
at 169.254.169.254 and internal services), so a URL is fetched only when it matches an operator
allowlist entry. Both are first normalised the same way (`normalise_url`: scheme and host
lowercased, default port dropped, unreserved characters percent-decoded, dot segments resolved)
and encodings that different parsers read differently (`%2e`, `%2f`, `%5c`, backslashes) are
refused; the normalised URL is the one compared and the one fetched. Redirects are not followed,
and the whole fetch has one deadline (`url_timeout_s`), not one per read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kserve.errors import InvalidInput

from globe.images import MAX_SIDE, Fit, ImageError, ImageLimits, PixelBudget, open_image

V1_FIELDS = ("image_b64", "image_url")
V2_INPUT = "image"
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")  # RFC 3986 pchar + "/"; everything else is %-encoded
_AMBIGUOUS = {"2E": ".", "2F": "/", "5C": "\\"}
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$|^\[[0-9a-f:.]+\]$")
MAX_ID_CHARS = 256  # a request's or an instance's `id`, echoed in the answer
MAX_URL_CHARS = 8192  # an image_url; httpx refuses anything over 65,536 with an exception of its own
_SIZE_CHECKED = ("BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64", "BYTES")


class BadInput(InvalidInput):
    """A client error: the server answers it with HTTP 400 and a JSON body naming the problem."""


class TooLarge(BadInput):
    """A request over one of the size limits: HTTP 413 with a message naming the limit."""


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what one request may ask of the server (from the `serve:` config group)."""

    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 20 * 1024 * 1024
    max_instances: int = 64
    max_request_pixels: int = 256_000_000
    max_side: int = MAX_SIDE
    url_allowlist: tuple[str, ...] = ()
    url_timeout_s: float = 10.0
    max_samples: int = 8

    def image_limits(self) -> ImageLimits:
        return ImageLimits(max_pixels=self.max_image_pixels, max_bytes=self.max_image_bytes, max_side=self.max_side)


@dataclass
class ImageRef:
    """One requested image before fetching: inline bytes, or a URL that passed the allowlist."""

    where: str  # e.g. "instances[2].image_b64", for error messages
    data: bytes | None = None
    url: str | None = None
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    samples: int = 1  # reasonings to sample and vote on (globe.consensus); 1 = one greedy answer


def decode_b64(text: Any, where: str) -> bytes:
    """Strict base64 (standard alphabet, optional `data:image/...;base64,` prefix, whitespace ok)."""
    if not isinstance(text, str):
        raise BadInput(f"{where}: expected a base64 string, got {_type_name(text)}")
    text = _DATA_URL.sub("", text, count=1)
    compact = "".join(text.split())
    if not compact:
        raise BadInput(f"{where}: empty string; expected base64-encoded image bytes")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(f"{where}: invalid base64 ({exc})") from None


# ----------------------------------------------------------------------------- URLs


def normalise_url(url: Any, where: str) -> str:
    """The one spelling of `url` that is compared with the allowlist and fetched, or BadInput.

    Scheme and host lowercased, the default port dropped, `%XX` of unreserved characters decoded
    and other escapes upper-cased, characters outside RFC 3986 percent-encoded, dot segments
    resolved, the fragment dropped. `%2e`, `%2f`, `%5c` and backslashes are refused: servers and
    proxies disagree on whether they separate or climb path segments.
    """
    if not isinstance(url, str) or not url:
        raise BadInput(f"{where}: expected a URL string, got {_type_name(url)}")
    if len(url) > MAX_URL_CHARS:
        raise BadInput(f"{where}: URL of {len(url)} characters, above the limit of {MAX_URL_CHARS}")
    if "\\" in url:
        raise BadInput(f"{where}: backslashes are not accepted in image URLs")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise BadInput(f"{where}: control characters or spaces are not accepted in image URLs")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"{where}: not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{where}: only http(s) URLs with a host are accepted, got {excerpt(url)!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadInput(f"{where}: URLs with user info are not accepted")
    host = parts.hostname.lower()
    if not _HOST.match(host if ":" not in host else f"[{host}]"):
        raise BadInput(f"{where}: host {host!r} is not a plain DNS name or IP address")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _default_port(scheme):
        netloc += f":{port}"
    path = _remove_dot_segments(_normalise_escapes(parts.path or "/", where, "path"))
    query = _normalise_escapes(parts.query, where, "query", safe=_PATH_SAFE | {"?"})
    normal = urlunsplit((scheme, netloc, path or "/", query, ""))
    if len(normal) > MAX_URL_CHARS:  # percent-encoding can lengthen it
        raise BadInput(f"{where}: URL of {len(normal)} characters once normalised, above the limit of {MAX_URL_CHARS}")
    return normal


def check_url(url: Any, allowlist: tuple[str, ...] | list[str], where: str) -> str:
    """The normalised `url` if an allowlist entry permits it, else BadInput. Opens no connection.

    An entry such as `https://images.example.com/geo/` permits URLs with the same scheme, the exact
    same host and port, and a path under `/geo/` (an entry without a trailing slash, `/geo`, permits
    `/geo` itself and paths under `/geo/`), both compared after `normalise_url`.
    """
    if not allowlist:
        if not isinstance(url, str) or not url:
            raise BadInput(f"{where}: expected a URL string, got {_type_name(url)}")
        raise BadInput(f"{where}: image URLs are disabled on this server (serve.url_allowlist is empty); send image_b64")
    normal = normalise_url(url, where)
    got = urlsplit(normal)
    for entry in allowlist:
        allowed = urlsplit(normalise_url(entry, "serve.url_allowlist"))
        prefix = allowed.path if allowed.path.endswith("/") else allowed.path + "/"
        if (allowed.scheme, allowed.netloc) == (got.scheme, got.netloc) and (got.path == allowed.path or got.path.startswith(prefix)):
            return normal
    raise BadInput(f"{where}: URL {excerpt(normal)!r} is not on this server's allowlist; send image_b64 instead")


async def fetch_url(url: str, where: str, limits: InputLimits) -> bytes:
    """GET an allowlisted URL: no redirects, at most `max_image_bytes`, one deadline for the whole fetch."""
    import httpx

    checked = check_url(url, limits.url_allowlist, where)  # defence in depth: never fetch an unchecked URL
    try:
        async with asyncio.timeout(limits.url_timeout_s):
            async with httpx.AsyncClient(follow_redirects=False, timeout=limits.url_timeout_s, trust_env=False) as client:
                request = client.build_request("GET", checked)
                if str(request.url) != checked:  # httpx must send exactly what was checked
                    raise BadInput(f"{where}: URL {excerpt(checked)!r} would be sent differently ({excerpt(str(request.url))!r})")
                resp = await client.send(request, stream=True)
                try:
                    if resp.status_code != 200:
                        raise BadInput(f"{where}: fetching {excerpt(checked)} returned HTTP {resp.status_code} (redirects are not followed)")
                    chunks, size = [], 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > limits.max_image_bytes:
                            raise TooLarge(f"{where}: {excerpt(checked)} is larger than {limits.max_image_bytes} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
                finally:
                    await resp.aclose()
    except TimeoutError:
        raise BadInput(f"{where}: fetching {excerpt(checked)} took longer than {limits.url_timeout_s:g} s (serve.url_timeout_s)") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is not an HTTPError
        raise BadInput(f"{where}: could not fetch {excerpt(checked)}: {type(exc).__name__}") from None


def _normalise_escapes(text: str, where: str, what: str, safe: frozenset = _PATH_SAFE) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "%":
            hex2 = text[i + 1 : i + 3].upper()
            if len(hex2) != 2 or any(h not in "0123456789ABCDEF" for h in hex2):
                raise BadInput(f"{where}: malformed percent-escape in the URL {what}")
            if hex2 in _AMBIGUOUS:
                raise BadInput(f"{where}: the URL {what} encodes {_AMBIGUOUS[hex2]!r} as %{hex2}; send it unencoded (ambiguous encodings are refused)")
            char = chr(int(hex2, 16))
            out.append(char if char in _UNRESERVED else f"%{hex2}")
            i += 3
            continue
        out.append(c if c in safe else "".join(f"%{b:02X}" for b in c.encode("utf-8")))
        i += 1
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on an absolute path."""
    out: list[str] = []
    segments = path.split("/")
    for k, seg in enumerate(segments[1:], 1):
        last = k == len(segments) - 1
        if seg == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif seg == ".":
            if last:
                out.append("")
        else:
            out.append(seg)
    return "/" + "/".join(out)


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# ----------------------------------------------------------------------------- V1 and V2


def parse_v1(body: Any, limits: InputLimits) -> list[ImageRef]:
    """`{"instances": [{"image_b64": "..."} | {"image_url": "..."}, ...]}` -> image refs."""
    if not isinstance(body, dict):
        raise BadInput(f"request body: expected a JSON object with 'instances', got {_type_name(body)}")
    if "instances" not in body:
        raise BadInput("request body: missing field 'instances' (a list of {\"image_b64\": ...} objects)")
    instances = body["instances"]
    if not isinstance(instances, list):
        raise BadInput(f"instances: expected a list, got {_type_name(instances)}")
    _check_count(len(instances), "instances", limits)
    refs = []
    for i, inst in enumerate(instances):
        where = f"instances[{i}]"
        if not isinstance(inst, dict):
            raise BadInput(f"{where}: expected an object like {{\"image_b64\": \"...\"}}, got {_type_name(inst)}")
        unknown = sorted(set(inst) - {*V1_FIELDS, "id", "samples"})
        if unknown:
            raise BadInput(f"{where}: unknown field(s) {[excerpt(k, 40) for k in unknown[:5]]}; expected one of {list(V1_FIELDS)} (and optional 'id', 'samples')")
        given = [k for k in V1_FIELDS if k in inst]
        if len(given) != 1:
            raise BadInput(f"{where}: expected exactly one of {list(V1_FIELDS)}, got {given or 'neither'}")
        inst_id = inst.get("id", "")
        if not isinstance(inst_id, (str, int)) or isinstance(inst_id, bool):
            raise BadInput(f"{where}.id: expected a string, got {_type_name(inst_id)}")
        inst_id = check_id(str(inst_id), f"{where}.id")
        n = check_samples(inst.get("samples", 1), f"{where}.samples", limits)
        if given[0] == "image_b64":
            refs.append(ImageRef(f"{where}.image_b64", data=decode_b64(inst["image_b64"], f"{where}.image_b64"), id=str(inst_id), samples=n))
        else:
            url = check_url(inst["image_url"], limits.url_allowlist, f"{where}.image_url")
            refs.append(ImageRef(f"{where}.image_url", url=url, id=str(inst_id), samples=n))
    return refs


def check_id(value: Any, where: str) -> str:
    """An `id` the answer echoes: a string of at most MAX_ID_CHARS characters that is valid
    Unicode (a lone surrogate such as "\\ud800" cannot be written back as UTF-8 JSON)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadInput(f"{where}: expected a string, got {_type_name(value)}")
    if len(value) > MAX_ID_CHARS:
        raise BadInput(f"{where}: {len(value)} characters, above the limit of {MAX_ID_CHARS}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{where}: not valid Unicode (a lone surrogate escape such as \\ud800)") from None
    return value


def check_samples(value: Any, where: str, limits: InputLimits) -> int:
    """A request's `samples`: an integer from 1 to the server's `serve.max_samples`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{where}: expected an integer number of samples (1 to {limits.max_samples}), got {_type_name(value)}")
    if not 1 <= value <= limits.max_samples:
        raise BadInput(f"{where}: {value} samples is outside 1..{limits.max_samples} "
                       f"(this server's serve.max_samples); ask for fewer")
    return value


def v2_samples(request: Any, limits: InputLimits) -> int:
    """`samples` from a V2 request's `parameters` (REST JSON or gRPC InferParameter), default 1."""
    params = getattr(request, "parameters", None) or {}
    if "samples" not in params:
        return 1
    value = params["samples"]
    if hasattr(value, "HasField"):  # gRPC: an InferParameter message
        from kserve.protocol.infer_type import to_http_parameters

        value = to_http_parameters({"samples": value}).get("samples")
    return check_samples(value, "parameters.samples", limits)


def parse_v2(request: Any, limits: InputLimits) -> list[ImageRef]:
    """An Open Inference Protocol request with a BYTES input `image` (base64 strings or raw bytes).

    Every input's shape must match its data (a `[5, 7]` shape for one element is an error, not a
    guess), and inputs other than `image` are refused by name rather than silently ignored.
    """
    inputs = getattr(request, "inputs", None) or []
    for inp in inputs:
        check_v2_shape(inp)
    matches = [inp for inp in inputs if inp.name == V2_INPUT]
    if not matches:
        names = [excerpt(str(inp.name), 40) for inp in inputs[:8]]
        raise BadInput(f"inputs: missing input named {V2_INPUT!r} (got {names}); send a BYTES tensor of images")
    if len(matches) > 1:
        raise BadInput(f"inputs: {len(matches)} inputs named {V2_INPUT!r}; send one BYTES tensor of images")
    for inp in inputs:
        if inp.name != V2_INPUT:
            raise BadInput(f"inputs[{excerpt(str(inp.name), 40)!r}]: unknown input; this model takes one BYTES input {V2_INPUT!r}")
    inp = matches[0]
    where = f"inputs[{V2_INPUT!r}]"
    if inp.datatype != "BYTES":
        raise BadInput(f"{where}: datatype {inp.datatype!r} is not supported; expected 'BYTES' (encoded image files)")
    data = inp.data
    if getattr(inp, "_raw_data", None) is not None:
        data = list(_raw_elements(inp))
    if not isinstance(data, list):
        raise BadInput(f"{where}.data: expected a list of images, got {_type_name(data)}")
    flat = _flatten(data)
    _check_count(len(flat), f"{where}.data", limits)
    n = v2_samples(request, limits)
    refs = []
    for i, item in enumerate(flat):
        item_where = f"{where}.data[{i}]"
        if isinstance(item, (bytes, bytearray)):
            refs.append(ImageRef(item_where, data=_raw_or_b64(bytes(item), item_where), samples=n))
        elif isinstance(item, str):
            refs.append(ImageRef(item_where, data=decode_b64(item, item_where), samples=n))
        else:
            raise BadInput(f"{item_where}: expected a base64 string or bytes, got {_type_name(item)}")
    return refs


def check_v2_shape(inp: Any) -> None:
    """BadInput unless `inp.shape` is a list of non-negative integers whose product is the element count."""
    name = excerpt(str(getattr(inp, "name", "?")), 40)
    shape = getattr(inp, "shape", None)
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadInput(f"inputs[{name!r}].shape: expected a list of non-negative integers, got {excerpt(repr(shape), 60)}")
    expected = math.prod(shape)
    if inp.datatype not in _SIZE_CHECKED:
        raise BadInput(f"inputs[{name!r}]: unknown datatype {excerpt(str(inp.datatype), 20)!r}")
    if getattr(inp, "_raw_data", None) is not None:  # gRPC raw contents / binary extension (data is then [])
        got = len(_raw_elements(inp))
    elif inp.data is not None:
        got = len(_flatten(inp.data)) if isinstance(inp.data, list) else None
    else:
        raise BadInput(f"inputs[{name!r}]: no data")
    if got is not None and got != expected:
        raise BadInput(f"inputs[{name!r}]: shape {list(shape)} holds {expected} element(s), but the data has {got}")


def _raw_elements(inp: Any) -> list:
    """The elements of a raw (gRPC / binary-extension) tensor, or BadInput when its bytes do not fit."""
    import numpy as np
    from kserve.protocol.infer_type import deserialize_bytes_tensor
    from kserve.utils.numpy_codec import to_np_dtype

    name = excerpt(str(inp.name), 40)
    raw = inp._raw_data
    if inp.datatype == "BYTES":
        try:
            return list(deserialize_bytes_tensor(raw))
        except (struct.error, ValueError, IndexError):
            raise BadInput(f"inputs[{name!r}]: malformed BYTES tensor (4-byte length prefixes expected)") from None
    itemsize = np.dtype(to_np_dtype(inp.datatype)).itemsize
    if len(raw) % itemsize:
        raise BadInput(f"inputs[{name!r}]: {len(raw)} bytes is not a whole number of {inp.datatype} elements ({itemsize} bytes each)")
    return list(np.frombuffer(raw, dtype=to_np_dtype(inp.datatype)))


def _raw_or_b64(item: bytes, where: str) -> bytes:
    """V2 BYTES elements may carry the image file itself or its base64 text; tell them apart."""
    from PIL import Image

    try:
        Image.open(io.BytesIO(item)).close()  # header only
        return item
    except Exception:
        pass
    try:
        return decode_b64(item.decode("ascii"), where)
    except UnicodeDecodeError:
        return item  # neither base64 nor a known image: load_image reports "not an image"


# ----------------------------------------------------------------------------- images


def load_image(data: bytes, where: str, limits: InputLimits, budget: PixelBudget | None = None, fit: Fit | None = None):
    """`globe.images.open_image` with the server's limits, its errors turned into 400 / 413.

    `fit` is the served engine's input size (`GeoPredictor.fit`), as the evaluation harness passes it."""
    try:
        return open_image(data, where, limits.image_limits(), budget, fit=fit)
    except ImageError as exc:
        raise (TooLarge if exc.category in ("over budget", "too large") else BadInput)(str(exc)) from None


def request_budget(limits: InputLimits) -> PixelBudget:
    return PixelBudget(limits.max_request_pixels, "serve.max_request_pixels")


def precheck_budget(refs: list[ImageRef], limits: InputLimits) -> None:
    """Refuse a request whose inline images' headers already exceed the budget — before decoding any."""
    from PIL import Image

    budget = request_budget(limits)
    for ref in refs:
        if ref.data is None:
            continue
        try:
            with Image.open(io.BytesIO(ref.data)) as img:
                width, height = img.size
        except Exception:  # noqa: BLE001 - not an image: load_image names the problem in order
            continue
        try:
            budget.spend(width * height, ref.where)
        except ImageError as exc:
            raise TooLarge(str(exc)) from None


# ----------------------------------------------------------------------------- helpers


def _flatten(data: list) -> list:
    out: list = []
    stack = [iter(data)]
    while stack:  # iterative: a deeply nested list must not hit the recursion limit
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _check_count(n: int, where: str, limits: InputLimits) -> None:
    if n == 0:
        raise BadInput(f"{where}: empty; send at least one image")
    if n > limits.max_instances:
        raise BadInput(f"{where}: {n} images in one request, above the limit of {limits.max_instances}")


def excerpt(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
