"""Atomic writes of files and directories, used by every stage that writes results.

A reader (or a resumed job) must see either the old file or the new one, never half of each: we
write a temporary file in the same folder, fsync it, and `os.replace` it over the target. The
result gets the mode a plain `open()` would give (0666 minus the umask) rather than mkstemp's
0600, so reports and checkpoints stay readable by a web server or a container running as
another user. A directory (a model checkpoint, a downloaded model) is built the same way: in a
temporary directory beside the target, renamed into place when complete (`atomic_directory`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask_mask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _umask_mode() -> int:
    return 0o666 & ~_umask_mask()


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


@contextmanager
def atomic_directory(target: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Build a directory in the yielded empty folder beside `target`; on success it becomes `target`.

    Nothing is left at `target` by a failure (the folder is removed and the exception goes on), so
    a crash never leaves a half-written checkpoint where a later stage would load it. When
    `target` exists at the end: `replace=True` swaps the new directory in (the old one is renamed
    aside, then deleted; put back if the swap fails); `replace=False` keeps the existing one and
    drops the new one, which is right for caches where another process may have finished the same
    download first. The folder gets mode 0777 minus the umask (0755 usually), not mkdtemp's 0700,
    so a serving container running as another user can read it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        os.chmod(staging, 0o777 & ~_umask_mask())
        yield staging
        if replace and target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
            os.replace(target, aside / target.name)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(aside / target.name, target)  # put the old one back
                raise
            finally:
                shutil.rmtree(aside, ignore_errors=True)
        elif not target.exists():
            try:
                os.replace(staging, target)
            except OSError:
                if not target.exists():
                    raise  # another process did not win the race: a real error
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # already gone when it was renamed into place
    fsync_dir(target.parent)


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
