"""Datasets: records and their JSONL IO, import, distillation, verification (GeoScenes: globe.tiny).

A dataset directory is `records.jsonl` (one `Record` per line) next to `images/`. The heavier
entry points (`import_dataset`, `distill`, `verify`) load lazily so that importing the
record model stays cheap.
"""

from __future__ import annotations

from typing import Any

from globe.data.records import (
    IMAGES_DIR,
    RECORDS_FILE,
    JsonlAppender,
    Record,
    RecordsError,
    TeacherOutput,
    append_record,
    iter_records,
    load_image,
    read_records,
    write_records,
)

_LAZY = {
    "import_dataset": "globe.data.ingest",
    "distill": "globe.data.distill",
    "verify": "globe.data.verify",
}

__all__ = [
    "IMAGES_DIR",
    "RECORDS_FILE",
    "JsonlAppender",
    "Record",
    "RecordsError",
    "TeacherOutput",
    "append_record",
    "iter_records",
    "load_image",
    "read_records",
    "write_records",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'globe.data' has no attribute {name!r}")
