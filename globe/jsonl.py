"""JSON Lines that survive a kill, and values made safe for strict JSON.

Long jobs (distillation, the data importer, the evaluation harness) append one JSON object per line
to a file and must survive SIGKILL at any moment. `ResumableJsonl` is the one implementation:

- every append is one `write` of whole lines followed by `fsync`, so a kill can only tear the
  *last* line;
- opening the file reads what is there: each whole, valid line counts as done; a torn or invalid
  tail (what a kill mid-write leaves) is cut off; an invalid line with more data after it is not
  damage a kill can cause, so the file is refused, with its name and the line's byte offset,
  instead of truncated;
- the caller says how a line is parsed and keyed, whether an id may repeat (a retried evaluation
  row supersedes its failed one; a distilled record is written exactly once) and whether the
  parsed rows are kept in memory or only their ids.

`json_safe` replaces NaN and infinity (which strict JSON does not have) by null, recursively: the
one scrubber for metrics files and logged rows.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, KeysView, Sequence
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A JSON Lines file that cannot be resumed; the message names the file and the byte offset."""


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, tuples as lists and keys as strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def json_line(obj: Any) -> str:
    """One strict-JSON line (no NaN, UTF-8 kept), without the newline."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def append_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Append whole lines to `path` as one write, then fsync: a kill tears at most the last line."""
    blob = "".join(line + "\n" for line in lines).encode("utf-8")
    if not blob:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())


def _json_row(raw: bytes) -> dict:
    row = json.loads(raw)
    if not isinstance(row, dict) or "id" not in row:
        raise ValueError("not a JSON object with an id")
    return row


class ResumableJsonl:
    """An append-only JSON Lines file that a restarted job resumes (see the module docstring).

    `parse(line_bytes)` returns an item or raises ValueError; `key(item)` is its id; `dump(item)` is
    its line. The defaults read and write JSON objects with an `"id"`. `unique=True` refuses an id
    seen twice (on disk or appended again); otherwise the last line of an id wins. `keep=False`
    remembers only the ids, for files too large to hold. `what` names an item in errors, and
    `error` is the exception type raised (a subclass of the caller's own error family).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        parse: Callable[[bytes], Any] = _json_row,
        key: Callable[[Any], str] = lambda row: str(row["id"]),
        dump: Callable[[Any], str] = json_line,
        unique: bool = False,
        keep: bool = True,
        what: str = "row",
        error: type[Exception] = JsonlError,
    ):
        self.path = Path(path)
        self.parse, self.key, self.dump = parse, key, dump
        self.unique, self.keep, self.what, self.error = unique, keep, what, error
        self.rows: dict[str, Any] = {}  # id -> last item (None when keep=False), in file order
        self.dropped_tail_bytes = 0
        if self.path.exists():
            self._load()

    @property
    def done(self) -> KeysView[str]:
        """The ids that have a whole line in the file."""
        return self.rows.keys()

    def _load(self) -> None:
        good_end = 0
        with self.path.open("rb") as fh:
            offset = 0
            for raw in fh:
                end = offset + len(raw)
                try:
                    if not raw.endswith(b"\n"):
                        raise ValueError("torn last line")
                    item = self.parse(raw)
                except ValueError:
                    if fh.read().strip():  # only the tail can be torn by a kill
                        raise self.error(
                            f"{self.path}: line at byte {offset} is not a {self.what} and more data follows; "
                            "refusing to truncate a file that this job did not write (move it away or write elsewhere)"
                        ) from None
                    break
                k = self.key(item)
                if self.unique and k in self.rows:
                    raise self.error(f"{self.path}: duplicate id {k!r} at byte {offset}")
                self.rows[k] = item if self.keep else None
                offset = good_end = end
            size = os.fstat(fh.fileno()).st_size
        if good_end < size:
            self.dropped_tail_bytes = size - good_end
            with self.path.open("r+b") as fh:
                fh.truncate(good_end)
                fh.flush()
                os.fsync(fh.fileno())

    def extend(self, items: Sequence[Any]) -> None:
        """Append a batch as one write + fsync, so a kill loses at most this batch."""
        keys = [self.key(item) for item in items]
        if self.unique:
            fresh: set[str] = set()
            for k in keys:
                if k in self.rows or k in fresh:
                    raise self.error(f"{self.path}: id {k!r} already written")
                fresh.add(k)
        append_lines(self.path, (self.dump(item) for item in items))
        for k, item in zip(keys, items):
            self.rows[k] = item if self.keep else None

    def append(self, item: Any) -> None:
        """Append one item (one line, one fsync)."""
        self.extend([item])

    def close(self) -> None:
        """Nothing stays open between appends; here so the log can be used as a context manager."""

    def __enter__(self) -> "ResumableJsonl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
