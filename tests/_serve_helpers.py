"""Helpers shared by the serving and registry tests (the tiny model fixture is in conftest.py)."""

from __future__ import annotations

import base64
import io
import struct
import zlib


def png_bytes(w: int = 64, h: int = 48, color=(10, 120, 200)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def bomb_png(w: int, h: int) -> bytes:
    """A valid PNG header claiming w x h pixels: tiny on the wire, enormous once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (3 * w)
    idat = zlib.compress(row * 4)  # a few rows only; the header is what must be refused
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
