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


def scan_bomb_jpeg(w: int = 6000, h: int = 6600, scans: int = 10_000) -> bytes:
    """A progressive-JPEG "scan bomb" (issue 26): a real progressive JPEG's tables and an SOF2
    frame claiming w x h pixels, then `scans` start-of-scan headers with no entropy data. About
    14 bytes per scan on the wire; the decoder still walks the whole frame for every one."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (90, 120, 200)).save(buf, format="JPEG", progressive=True, quality=90)
    data, out, i = buf.getvalue(), bytearray(b"\xff\xd8"), 2
    while data[i + 1] != 0xDA:  # the segments before the first scan: tables and the frame header
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        segment = bytearray(data[i : i + 2 + length])
        if data[i + 1] == 0xC2:  # SOF2: precision, height, width
            segment[5:7], segment[7:9] = h.to_bytes(2, "big"), w.to_bytes(2, "big")
        out += segment
        i += 2 + length
    sos = data[i : i + 2 + int.from_bytes(data[i + 2 : i + 4], "big")]
    return bytes(out + sos * scans + b"\xff\xd9")
