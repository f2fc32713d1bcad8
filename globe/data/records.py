"""One record per sample, stored as JSON Lines next to an `images/` folder.

A dataset directory is `records.jsonl` + `images/`. Records reference their image by a path relative
to the dataset directory (or an `s3://` URI) plus the image's SHA-256, so a moved or re-encoded
image is detectable.

Two ways to write, for two kinds of jobs:
- `write_records` replaces the whole file atomically (temp file in the same directory, fsync,
  `os.replace`), so a reader never sees a half-written dataset and a crash keeps the old one.
- `append_record` / `JsonlAppender` serve long jobs (distill, import) that must survive SIGKILL: each
  record is one whole line written with a single `write` and fsynced. A kill can only tear the
  *last* line; `JsonlAppender` (the records flavour of `globe.jsonl.ResumableJsonl`) cuts the torn
  tail on open and reports the ids already done, so a restarted job does every sample exactly once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from globe.io import atomic_write_bytes
from globe.jsonl import ResumableJsonl, append_lines
from globe.paths import OutsideFolder, check_s3_key, inside

RECORDS_FILE = "records.jsonl"
IMAGES_DIR = "images"


class TeacherOutput(BaseModel):
    """What one teacher said about one sample: judgment, reasoning, location, or why it failed."""

    model_config = ConfigDict(extra="forbid")

    teacher: str
    text: str | None = Field(None, description="the teacher's raw completion, unparsed")
    p_localizable: float | None = Field(None, description="P(yes) of the localizability judgment")
    localizable: bool | None = None
    think: str | None = None
    country: str | None = Field(None, description="country as the teacher wrote it")
    country_code: str | None = Field(None, description="ISO alpha-2, normalised through the alias table")
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    format_ok: bool = False
    error: str | None = Field(None, description="why the call failed after retries; None on success")
    attempts: int = 1
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class Record(BaseModel):
    """One geotagged sample. `country`/`city` are labels; `label_source` says where they came from."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    image: str = Field(min_length=1, description="path relative to the dataset dir, or an s3:// URI")
    image_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    country_code: str | None = None
    country: str | None = None
    city: str | None = None
    label_source: str = Field("provided", description="synthetic | reverse-geocoded | provided")
    split: Literal["train", "test"] = "train"
    entities: list[str] = Field(default_factory=list)
    reasoning: str | None = Field(None, description="reference reasoning in GLOBE format, tags included")
    localizable: bool | None = None
    teachers: list[TeacherOutput] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class RecordsError(ValueError):
    """A records file that cannot be read; the message names the file and the line."""


def records_path(path: str | Path) -> Path:
    """Accept a dataset directory or the JSONL file itself."""
    p = Path(path)
    return p / RECORDS_FILE if p.is_dir() or p.suffix != ".jsonl" else p


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json(record: Record) -> str:
    return record.model_dump_json(exclude_none=False)


def write_records(path: str | Path, records: Iterable[Record]) -> Path:
    """Atomically replace the records file (a dataset dir or a .jsonl path) with `records`."""
    target = records_path(path)
    atomic_write_bytes(target, "".join(_json(r) + "\n" for r in records).encode("utf-8"))
    return target


def iter_records(path: str | Path) -> Iterator[Record]:
    """Yield records one by one; a bad line raises `RecordsError` naming file, line and field."""
    target = records_path(path)
    if not target.exists():
        raise RecordsError(f"{target}: no such records file (a dataset dir holds {RECORDS_FILE} + {IMAGES_DIR}/)")
    with open(target, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = Record.model_validate_json(line)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '<line>'}: {e['msg']}" for e in exc.errors()[:5]
                )
                raise RecordsError(f"{target}:{lineno}: invalid record: {problems}") from exc
            try:  # every reader (distill, verify, train, eval) gets only images inside the dataset
                check_image_name(target.parent, record)
            except OutsideFolder as exc:
                raise RecordsError(f"{target}:{lineno}: {exc}") from None
            yield record


def read_records(path: str | Path) -> list[Record]:
    """All records of a dataset dir or .jsonl file."""
    return list(iter_records(path))


class JsonlAppender(ResumableJsonl):
    """Crash-safe, resumable appends of records to one JSONL file (`globe.jsonl.ResumableJsonl`).

    On open, every complete, valid record counts as done and a torn tail is cut off; `done` holds
    the ids already written, so the caller skips them. Each record is written exactly once: an id
    seen twice on disk, or appended again, is an error. Opening creates the file: a job that wrote
    no record (every row skipped, every teacher failed) still leaves a readable, empty records file
    for the step that reads it back.
    """

    def __init__(self, path: str | Path):
        super().__init__(records_path(path), parse=Record.model_validate_json, key=lambda r: r.id,
                         dump=_json, unique=True, keep=False,
                         what="valid record", error=RecordsError)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)


def append_record(path: str | Path, record: Record) -> None:
    """Append one record as one whole fsynced line (see `JsonlAppender` for resuming)."""
    append_lines(records_path(path), [_json(record)])


def check_image_name(dataset_dir: str | Path, record: Record) -> None:
    """A local image must resolve inside the dataset dir; an S3 key must be unambiguous (globe/paths.py)."""
    if record.image.startswith("s3://"):
        check_s3_key(record.image[len("s3://") :].partition("/")[2], record.image)
    else:
        inside(dataset_dir, record.image, what=f"record {record.id}: image")


def image_file(dataset_dir: str | Path, record: Record) -> Path:
    """Local path of a record's image, which must resolve inside the dataset dir (`globe.paths.inside`)."""
    if record.image.startswith("s3://"):
        raise ValueError(f"record {record.id}: image {record.image} is remote; use load_image()")
    try:
        return inside(dataset_dir, record.image, what=f"record {record.id}: image")
    except OutsideFolder as exc:
        raise RecordsError(f"{records_path(dataset_dir)}: {exc}") from None


def image_ref(dataset_dir: str | Path, record: Record) -> str:
    """What to open for a record: its checked local path (absolute), or its `s3://` URI."""
    return record.image if record.image.startswith("s3://") else str(image_file(dataset_dir, record).resolve())


def load_image(dataset_dir: str | Path, record: Record):
    """A record's image as the model sees it (`globe.images.open_ref`), from disk or S3."""
    from globe.images import open_ref

    return open_ref(image_ref(dataset_dir, record), where=f"record {record.id}: image {record.image}")


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Place `src` at `dst` by hard link (no extra disk), falling back to an atomic copy."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        atomic_write_bytes(dst, src.read_bytes())
        return
    os.replace(tmp, dst)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True)
