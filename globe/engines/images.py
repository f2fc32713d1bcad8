"""Image checks and encodings shared by the engines.

PIL opens files lazily, so a truncated or corrupt file only fails when its pixels are first read —
deep inside a batched `generate` or an HTTP request body, where one bad image would otherwise
take the whole batch down. `checked_image` forces the read up front so the failure belongs to
that one request.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from globe.images import MAX_ASPECT_RATIO  # one home: Qwen2.5-VL's smart_resize refuses more extreme shapes


def checked_image(image: Any):
    """Return `image` decoded and in RGB, or raise ValueError saying what is wrong with it."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise ValueError(f"image must be a PIL.Image.Image or None, got {type(image).__name__}")
    try:
        image.load()
        rgb = image.convert("RGB")
    except Exception as exc:  # PIL raises OSError, SyntaxError, struct.error... for bad files
        raise ValueError(f"image cannot be decoded: {type(exc).__name__}: {exc}") from exc
    width, height = rgb.size
    if width < 1 or height < 1:
        raise ValueError(f"image is empty ({width}x{height})")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ValueError(f"image aspect ratio {width}x{height} exceeds {MAX_ASPECT_RATIO}:1")
    return rgb


def image_data_url(image: Any, fmt: str = "PNG", quality: int = 90) -> str:
    """Encode an image as a `data:` URL for OpenAI-style chat content (PNG lossless, JPEG smaller)."""
    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in ("PNG", "JPEG"):
        raise ValueError(f"image format must be PNG or JPEG, got {fmt!r}")
    rgb = checked_image(image)
    buf = io.BytesIO()
    rgb.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
