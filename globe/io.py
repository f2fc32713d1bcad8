"""Atomic file writes, used by every stage that writes results.

A reader (or a resumed job) must see either the old file or the new one, never half of each: we
write a temporary file in the same folder, fsync it, and `os.replace` it over the target. The
result gets the mode a plain `open()` would give (0666 minus the umask) rather than mkstemp's
0600, so reports and checkpoints stay readable by a web server or a container running as
another user.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(directory: str | Path) -> None:
    """Make a rename inside `directory` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never a mix.

    `durable=False` skips the fsyncs: still atomic against a killed process (the page cache
    survives it), not against a power cut. Bulk image writes use it when a file written durably
    afterwards (records.jsonl) carries each image's SHA-256.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> None:
    """`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


MAX_LINE_BYTES = 1 << 20  # a prediction or record line is a few KB; 1 MiB is generous and bounded


class LineError(ValueError):
    """A text file line that is too long or not UTF-8; the message names the file and the line."""


def read_text_lines(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES):
    """Yield the lines of a UTF-8 text file (newlines kept, a leading BOM dropped), never reading
    more than `max_line_bytes` of one line into memory: a 1 GB line is an error, not 2 GB of RSS."""
    with open(path, "rb") as fh:
        line_no = 0
        while raw := fh.readline(max_line_bytes + 1):
            line_no += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise LineError(f"{path}: line {line_no} is longer than {max_line_bytes} bytes")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LineError(
                    f"{path}: line {line_no}: not valid UTF-8 (byte {exc.start} of the line: {raw[exc.start:exc.start + 4]!r})"
                ) from None
            yield text.removeprefix("\ufeff") if line_no == 1 else text
