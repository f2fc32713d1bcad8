"""Split a dataset into shards and join shards back, for steps that fan out (distill, import).

A shard is a dataset directory of its own: every `num_shards`-th record from `shard` on, with its
images (hard links where possible) and the dataset's side files (e.g. GeoScenes' `world.json`).
Joining orders the records by id, so the result does not depend on which shard finished first,
and refuses an id that two shards both hold.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from globe.data.records import RECORDS_FILE, link_or_copy
from globe.io import atomic_write_bytes


class ShardError(ValueError):
    """A shard index out of range, a directory that is not a dataset, or an id in two shards."""


def shard_indices(num_shards: int) -> list[int]:
    if num_shards < 1:
        raise ShardError(f"num_shards must be >= 1, got {num_shards}")
    return list(range(num_shards))


def check_shard(shard: int, num_shards: int) -> None:
    if not 0 <= shard < num_shards:
        raise ShardError(f"shard {shard} is outside 0..{num_shards - 1}")


def _read_lines(dataset: Path) -> list[str]:
    path = dataset / RECORDS_FILE
    if not path.is_file():
        raise ShardError(f"{dataset}: no {RECORDS_FILE} (expected a dataset directory)")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _link_images(src: Path, dst: Path, lines: Iterable[str]) -> None:
    for line in lines:
        image = json.loads(line).get("image") or ""
        if image and "://" not in image and (src / image).is_file():
            link_or_copy(src / image, dst / image)


def _copy_side_files(src: Path, dst: Path) -> None:
    """Dataset-level files other than the records (e.g. GeoScenes' world.json legend)."""
    for item in src.iterdir():
        if item.is_file() and item.name != RECORDS_FILE:
            shutil.copy2(item, dst / item.name)


def shard_dataset(src: str | Path, dst: str | Path, shard: int, num_shards: int) -> int:
    """Write every `num_shards`-th record starting at `shard` (and its images) to `dst`."""
    check_shard(shard, num_shards)
    src, dst = Path(src), Path(dst)
    lines = _read_lines(src)[shard::num_shards]
    dst.mkdir(parents=True, exist_ok=True)
    _copy_side_files(src, dst)
    _link_images(src, dst, lines)
    atomic_write_bytes(dst / RECORDS_FILE, "".join(line + "\n" for line in lines).encode())
    return len(lines)


def merge_datasets(srcs: Iterable[str | Path], dst: str | Path) -> int:
    """Concatenate datasets (records sorted by id, so the order does not depend on shard timing)."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    by_id: dict[str, str] = {}
    for src in map(Path, srcs):
        lines = _read_lines(src)
        _copy_side_files(src, dst)
        _link_images(src, dst, lines)
        for line in lines:
            rid = json.loads(line)["id"]
            if rid in by_id:
                raise ShardError(f"record {rid!r} appears in more than one shard")
            by_id[rid] = line
    atomic_write_bytes(dst / RECORDS_FILE, "".join(by_id[k] + "\n" for k in sorted(by_id)).encode())
    return len(by_id)
