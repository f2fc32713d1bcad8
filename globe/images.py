"""One image opener for every path: serving, `globe predict`, import, distill, training and eval.

A photo must give the same pixels whichever door it comes through, or one photo gets different
answers from the server and from the evaluation. So there is one function, `open_image`, and it
always does the same steps, ordered from cheap to expensive:

1. size checks on the encoded bytes, then the header only (format, width x height, aspect ratio),
   which PIL reads without decoding a pixel — a decompression bomb is refused here, before a row
   is inflated, and a per-request `PixelBudget` is charged the source's width x height;
   a JPEG's scans are counted in its byte stream (SOS markers, which cannot occur inside
   entropy-coded data), because a progressive JPEG pays for every scan over the whole frame: 100 KB
   of empty scans over a 6000x6600 frame took 30 s of CPU. More than `MAX_JPEG_SCANS` scans, or
   scans x pixels above `MAX_DECODE_WORK`, is refused as a "scan bomb" before decoding;
2. decode at reduced scale where the format allows it (`draft`: JPEG decodes at 1/2, 1/4 or 1/8
   scale directly), then `reduce` + Lanczos straight to the target size: the long side at most
   `max_side` (1024 by default, the size `globe data import` stores), or the model's own input size
   when the caller passes `fit` (then decoded at no less than `DRAFT_MARGIN` times it, so the result
   stays within about a level in 255 of what the model's processor makes of the 1024-px image).
   Only one full-size image is ever decoded per call, and the caller keeps only the small result;
3. EXIF orientation applied (phone photos are often stored sideways with a rotate tag), RGB, and
   images smaller than one vision patch-merge unit (28 px) upscaled rather than refused.

Errors are `ImageError` with a `category` (what an import report counts) and a message that
starts with `where` (which field, file or record) and says what was expected.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Union

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "TIFF", "BMP", "GIF"})
Fit = Callable[[int, int], "tuple[int, int] | None"]
MAX_SIDE = 1024  # long side of every image a model sees (and of every image `globe data import` stores)
MAX_SOURCE_PIXELS = 64_000_000  # offline paths; real benchmark photos are at most ~50 MP
MAX_ASPECT_RATIO = 200  # Qwen2.5-VL's smart_resize refuses more extreme shapes
MIN_SIDE = 28  # one vision patch-merge unit
MAX_JPEG_SCANS = 100  # encoders write 1 (baseline) or about 10 (progressive); libjpeg-turbo's djpeg -maxscans guards the same
MAX_DECODE_WORK = 2_000_000_000  # scans x source pixels: 50 scans of a 40 MP photo, ~0.2 s of scan passes
DRAFT_MARGIN = 2  # fitting to a model's input: decode at least twice that size, so the resize still antialiases
_ORIENTATION = 0x0112
# EXIF orientation -> the PIL transpose that shows the image upright (as ImageOps.exif_transpose)
_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}

Source = Union[bytes, bytearray, str, Path]


class ImageError(ValueError):
    """An image that cannot be used; `category` groups it (e.g. "decompression bomb")."""

    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category


@dataclass(frozen=True)
class ImageLimits:
    """What one image may cost. `max_pixels` bounds the source (width x height, read from the header)."""

    max_pixels: int = MAX_SOURCE_PIXELS
    max_bytes: int | None = None
    max_side: int = MAX_SIDE


class PixelBudget:
    """Source pixels one request may decode in all; `spend` raises once the total would exceed it."""

    def __init__(self, limit: int, setting: str = "the pixel budget"):
        self.limit, self.setting, self.used = limit, setting, 0

    def spend(self, pixels: int, where: str) -> None:
        if self.used + pixels > self.limit:
            raise ImageError(
                "over budget",
                f"{where}: this request's images add up to more than {self.limit} pixels ({self.setting}); "
                "send fewer or smaller images per request",
            )
        self.used += pixels


def open_image(source: Source, where: str = "image", limits: ImageLimits = ImageLimits(), budget: PixelBudget | None = None,
               fit: Fit | None = None) -> "Image":
    """Decode `source` (encoded bytes or a file path) to the upright RGB image a model sees.

    `fit(width, height)`, when given, is the size the model's processor will resize an upright image
    to (`LocalEngine.input_size`); a larger image is then decoded (JPEG: at reduced scale) and
    resized to it here, so the processor has nothing left to do."""
    from PIL import Image, UnidentifiedImageError

    fp = _open_source(source, where, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                width, height = _check_header(img, where, limits)
                if img.format in ("JPEG", "MPO"):
                    _check_scans(fp, width, height, where)
                if budget is not None:
                    budget.spend(width * height, where)
                return _normalise(img, limits.max_side, fit)
    except ImageError:
        raise
    except UnidentifiedImageError:
        head = f"; first bytes {bytes(source[:8])!r}" if isinstance(source, (bytes, bytearray)) else ""
        raise ImageError("unreadable image", f"{where}: not an image (no known image format{head})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError("decompression bomb", f"{where}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated data, broken headers
        category = "truncated image" if "truncated" in str(exc).lower() else "unreadable image"
        raise ImageError(category, f"{where}: truncated or corrupt image ({exc})") from None
    finally:
        fp.close()


def read_source(ref: str | Path, where: str = "image", max_bytes: int | None = None) -> bytes:
    """The encoded bytes of a local file or an `s3://bucket/key` object (`globe.s3.client`)."""
    ref = str(ref)
    if not ref.startswith("s3://"):
        with _open_source(Path(ref), where, ImageLimits(max_bytes=max_bytes)) as fh:
            return fh.read()
    from globe import s3
    from globe.paths import OUTSIDE, OutsideFolder, check_s3_key

    bucket, _, key = ref[len("s3://") :].partition("/")
    try:
        check_s3_key(key, ref)
    except OutsideFolder as exc:
        raise ImageError(OUTSIDE, f"{where}: {exc}") from None
    try:
        body = s3.client().get_object(Bucket=bucket, Key=key)["Body"]
        data = body.read(max_bytes + 1 if max_bytes else None)
    except Exception as exc:  # botocore raises many types; all mean "cannot read this object"
        raise ImageError("missing image", f"{where}: cannot read {ref}: {type(exc).__name__}: {exc}") from None
    if max_bytes and len(data) > max_bytes:
        raise ImageError("too large", f"{where}: {ref} is larger than {max_bytes} bytes")
    return data


def open_ref(ref: str | Path, where: str | None = None, limits: ImageLimits = ImageLimits(),
             fit: Fit | None = None) -> "Image":
    """`open_image` for a local path or an `s3://` URI, as eval, distill and the report use it."""
    where = where or str(ref)
    source: Source = read_source(ref, where, limits.max_bytes) if str(ref).startswith("s3://") else Path(ref)
    return open_image(source, where, limits, fit=fit)


def _open_source(source: Source, where: str, limits: ImageLimits):
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError("unreadable image", f"{where}: empty image")
        if limits.max_bytes is not None and len(source) > limits.max_bytes:
            raise ImageError("too large", f"{where}: image is {len(source)} bytes, above the limit of {limits.max_bytes}")
        return io.BytesIO(source)
    path = Path(source)
    try:
        fh = open(path, "rb")
        size = os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        raise ImageError("missing image", f"{where}: {path} not found") from None
    except OSError as exc:
        raise ImageError("unreadable image", f"{where}: cannot open {path} ({exc.strerror or exc})") from None
    if limits.max_bytes is not None and size > limits.max_bytes:
        fh.close()
        raise ImageError("too large", f"{where}: image is {size} bytes, above the limit of {limits.max_bytes}")
    if size == 0:
        fh.close()
        raise ImageError("unreadable image", f"{where}: empty image")
    return fh


def _check_header(img, where: str, limits: ImageLimits) -> tuple[int, int]:
    if img.format not in IMAGE_FORMATS:
        raise ImageError("unsupported format", f"{where}: {img.format} images are not accepted; expected one of {sorted(IMAGE_FORMATS)}")
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageError("unreadable image", f"{where}: image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageError(
            "decompression bomb",
            f"{where}: image is {width}x{height} = {width * height} pixels, above the limit of {limits.max_pixels} "
            "(decompression-bomb guard)",
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ImageError("unsupported shape", f"{where}: aspect ratio of {width}x{height} exceeds {MAX_ASPECT_RATIO}:1")
    return width, height


def _check_scans(fp, width: int, height: int, where: str) -> None:
    """Refuse a JPEG whose scans would cost out of proportion to its size (see the module docstring)."""
    scans = count_jpeg_scans(fp, stop_after=MAX_JPEG_SCANS)
    if scans > MAX_JPEG_SCANS:
        raise ImageError("decompression bomb", f"{where}: JPEG with more than {MAX_JPEG_SCANS} scans; refused before decoding "
                         "(a progressive-JPEG scan bomb)")  # fmt: skip
    if scans * width * height > MAX_DECODE_WORK:
        raise ImageError("decompression bomb", f"{where}: JPEG of {width}x{height} pixels in {scans} scans is above the decode-work "
                         f"limit of {MAX_DECODE_WORK} scans x pixels; refused before decoding")  # fmt: skip


def count_jpeg_scans(fp, stop_after: int | None = None, chunk: int = 1 << 20) -> int:
    """Start-of-scan markers (FF DA) in the file `fp`, read in chunks; its position is restored.

    Entropy-coded data stuffs every FF byte with 00, so FF DA marks a scan (an embedded EXIF
    thumbnail's scan is counted too: a few at most). Stops counting past `stop_after`."""
    position = fp.tell()
    fp.seek(0)
    count, last = 0, b""
    try:
        while block := fp.read(chunk):
            count += (last + block[:1]).count(b"\xff\xda") + block.count(b"\xff\xda")
            last = block[-1:]
            if stop_after is not None and count > stop_after:
                break
    finally:
        fp.seek(position)
    return count


def target_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the long side at most `max_side`, aspect kept."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _normalise(img, max_side: int, fit: Fit | None = None) -> "Image":
    from PIL import Image

    orientation = img.getexif().get(_ORIENTATION)
    size = draft = target_size(*img.size, max_side)
    if fit is not None:  # the model's own input size, in stored (not upright) orientation
        turned = orientation in (5, 6, 7, 8)
        upright = size[::-1] if turned else size
        want = fit(*upright)
        if want and want[0] * want[1] < upright[0] * upright[1]:
            size = tuple(want[::-1]) if turned else tuple(want)
            draft = (DRAFT_MARGIN * size[0], DRAFT_MARGIN * size[1])
    if size != img.size:
        img.draft("RGB", draft)  # JPEG: decode at 1/2, 1/4 or 1/8 scale, still at least `draft`
    img.load()
    out = img if img.mode in ("RGB", "RGBA", "L") else img.convert("RGB")  # palettes must not resize as indices
    if out.size != size:
        out = out.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)  # reduce() first, then Lanczos
    if out.mode != "RGB":
        out = out.convert("RGB")
    if orientation in _TRANSPOSE:
        out = out.transpose(getattr(Image.Transpose, _TRANSPOSE[orientation]))
    if min(out.size) < MIN_SIDE:
        scale = MIN_SIDE / min(out.size)
        out = out.resize((max(MIN_SIDE, round(out.width * scale)), max(MIN_SIDE, round(out.height * scale))))
    return out  # (when it is `img` itself, closing its file later leaves the loaded pixels intact)


def release_memory() -> None:
    """Hand freed heap memory back to the OS (glibc only; a no-op elsewhere).

    Decoding a large image allocates tens of MB in PIL blocks from the calling thread's malloc
    arena; once freed, glibc keeps them mapped, so a server that decoded a burst of large images
    would keep its peak RSS for good. Called after a request that decoded many pixels.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            import ctypes
            import ctypes.util

            _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
