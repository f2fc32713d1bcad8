"""Turn untrusted request payloads into validated PIL images — or a 4xx error that names the problem.

Everything a client sends passes through here before any model code sees it, so the checks are
ordered from cheap to expensive: JSON shape and types first, then base64, then the image header
(format and dimensions, which PIL reads without decoding pixels), and only then the pixel data.
That order is what makes decompression bombs harmless: a 50k x 50k PNG is refused from its
header, before a single row is inflated.

Errors are `BadInput` (a `kserve.errors.InvalidInput`, which KServe answers with HTTP 400 and
`{"error": "..."}`); the message always says which field of which instance was wrong and what
was expected, because "bad request" alone sends users guessing.

Image URLs are an SSRF risk (a predictor inside a cluster can reach the cloud metadata endpoint
at 169.254.169.254 and internal services), so a URL is only fetched when it matches an operator
allowlist entry by scheme, exact host, port and path prefix — checked before any socket is opened.
Redirects are not followed, because a redirect could leave the allowlisted host.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from kserve.errors import InvalidInput
from PIL import Image, UnidentifiedImageError

V1_FIELDS = ("image_b64", "image_url")
V2_INPUT = "image"
MAX_ASPECT_RATIO = 200  # Qwen2.5-VL's smart_resize refuses more extreme shapes
MIN_SIDE = 28  # one vision patch-merge unit; smaller images are upscaled, not refused
_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


class BadInput(InvalidInput):
    """A client error: KServe turns it into HTTP 400 with a JSON body naming the problem."""


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what one request may ask of the server (from the `serve:` config group)."""

    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 20 * 1024 * 1024
    max_instances: int = 64
    url_allowlist: tuple[str, ...] = ()
    url_timeout_s: float = 10.0
    max_samples: int = 8


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


def check_url(url: Any, allowlist: tuple[str, ...] | list[str], where: str) -> str:
    """Return `url` if an allowlist entry permits it, else raise. Opens no connection.

    An entry such as `https://images.example.com/geo/` permits URLs with the same scheme, the exact
    same host and port, and a path under `/geo/`. Userinfo (`https://a@b/`) is refused because it is
    a classic way to make a URL look like one host while connecting to another.
    """
    if not isinstance(url, str) or not url:
        raise BadInput(f"{where}: expected a URL string, got {_type_name(url)}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BadInput(f"{where}: not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"{where}: only http(s) URLs with a host are accepted, got {url!r}")
    if parts.username is not None or parts.password is not None:
        raise BadInput(f"{where}: URLs with user info are not accepted")
    for entry in allowlist:
        allowed = urlsplit(entry)
        if (
            allowed.scheme == parts.scheme
            and (allowed.hostname or "").lower() == parts.hostname.lower()
            and _port(allowed.scheme, allowed.port) == _port(parts.scheme, port)
            and (parts.path or "/").startswith(allowed.path or "/")
        ):
            return url
    if not allowlist:
        raise BadInput(f"{where}: image URLs are disabled on this server (serve.url_allowlist is empty); send image_b64")
    raise BadInput(f"{where}: URL {url!r} is not on this server's allowlist; send image_b64 instead")


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
            raise BadInput(f"{where}: unknown field(s) {unknown}; expected one of {list(V1_FIELDS)} (and optional 'id', 'samples')")
        given = [k for k in V1_FIELDS if k in inst]
        if len(given) != 1:
            raise BadInput(f"{where}: expected exactly one of {list(V1_FIELDS)}, got {given or 'neither'}")
        inst_id = inst.get("id", "")
        if not isinstance(inst_id, (str, int)):
            raise BadInput(f"{where}.id: expected a string, got {_type_name(inst_id)}")
        n = check_samples(inst.get("samples", 1), f"{where}.samples", limits)
        if given[0] == "image_b64":
            refs.append(ImageRef(f"{where}.image_b64", data=decode_b64(inst["image_b64"], f"{where}.image_b64"), id=str(inst_id), samples=n))
        else:
            url = check_url(inst["image_url"], limits.url_allowlist, f"{where}.image_url")
            refs.append(ImageRef(f"{where}.image_url", url=url, id=str(inst_id), samples=n))
    return refs


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
    """An Open Inference Protocol request with a BYTES input `image` (base64 strings or raw bytes)."""
    inputs = getattr(request, "inputs", None) or []
    matches = [inp for inp in inputs if inp.name == V2_INPUT]
    if not matches:
        names = [inp.name for inp in inputs]
        raise BadInput(f"inputs: missing input named {V2_INPUT!r} (got {names}); send a BYTES tensor of images")
    inp = matches[0]
    where = f"inputs[{V2_INPUT!r}]"
    if inp.datatype != "BYTES":
        raise BadInput(f"{where}: datatype {inp.datatype!r} is not supported; expected 'BYTES' (encoded image files)")
    data = inp.data
    if data is None and getattr(inp, "_raw_data", None) is not None:
        data = list(inp.as_numpy().reshape(-1))
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


def load_image(data: bytes, where: str, limits: InputLimits) -> "Image.Image":
    """Decode image bytes to RGB, refusing non-images, truncated files and oversized dimensions."""
    if not data:
        raise BadInput(f"{where}: empty image")
    if len(data) > limits.max_image_bytes:
        raise BadInput(f"{where}: image is {len(data)} bytes, above the limit of {limits.max_image_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise BadInput(f"{where}: image has no pixels ({width}x{height})")
            if width * height > limits.max_image_pixels:
                raise BadInput(
                    f"{where}: image is {width}x{height} = {width * height} pixels, above the limit of "
                    f"{limits.max_image_pixels} (decompression-bomb guard)"
                )
            if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
                raise BadInput(f"{where}: aspect ratio of {width}x{height} exceeds {MAX_ASPECT_RATIO}:1")
            img.load()
            rgb = img.convert("RGB")
    except BadInput:
        raise
    except UnidentifiedImageError:
        raise BadInput(f"{where}: not an image (no known image format; first bytes {data[:8]!r})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadInput(f"{where}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadInput(f"{where}: truncated or corrupt image ({exc})") from None
    if min(rgb.size) < MIN_SIDE:
        scale = MIN_SIDE / min(rgb.size)
        rgb = rgb.resize((max(MIN_SIDE, round(rgb.width * scale)), max(MIN_SIDE, round(rgb.height * scale))))
    return rgb


async def fetch_url(url: str, where: str, limits: InputLimits) -> bytes:
    """GET an allowlisted URL without following redirects, reading at most `max_image_bytes`."""
    import httpx

    check_url(url, limits.url_allowlist, where)  # defence in depth: never fetch an unchecked URL
    try:
        async with httpx.AsyncClient(follow_redirects=False, timeout=limits.url_timeout_s, trust_env=False) as client:
            async with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise BadInput(f"{where}: fetching {url} returned HTTP {resp.status_code}")
                chunks, size = [], 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > limits.max_image_bytes:
                        raise BadInput(f"{where}: {url} is larger than {limits.max_image_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise BadInput(f"{where}: could not fetch {url}: {type(exc).__name__}: {exc}") from None


def _raw_or_b64(item: bytes, where: str) -> bytes:
    """V2 BYTES elements may carry the image file itself or its base64 text; tell them apart."""
    try:
        Image.open(io.BytesIO(item))
        return item
    except Exception:
        pass
    try:
        return decode_b64(item.decode("ascii"), where)
    except UnicodeDecodeError:
        return item  # neither base64 nor a known image: load_image reports "not an image"


def _flatten(data: list) -> list:
    out: list = []
    for item in data:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _check_count(n: int, where: str, limits: InputLimits) -> None:
    if n == 0:
        raise BadInput(f"{where}: empty; send at least one image")
    if n > limits.max_instances:
        raise BadInput(f"{where}: {n} images in one request, above the limit of {limits.max_instances}")


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
