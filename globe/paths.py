"""Names that come from data (CSV rows, records.jsonl, S3 listings) stay inside their folder.

A CSV's `IMG_ID` or a record's `image` is data, not a trusted path: `../outside/s.jpg`,
`/etc/shadow` or a symlink out of the folder must not be read, copied into a dataset or written
to. Every such name goes through `inside()`: it resolves the name under its folder, following
symlinks (a dataset may link its images from elsewhere *inside* the folder), and refuses anything
that lands outside — without opening it, so the answer never depends on whether the outside file
exists. S3 has no symlinks, but some S3-compatible servers resolve `..` in a key, so keys are
checked by their segments and against their prefix (`check_s3_key`).
"""

from __future__ import annotations

from pathlib import Path

OUTSIDE = "outside the images folder"


class OutsideFolder(ValueError):
    """A name that resolves outside the folder it must stay in."""


def inside(base: str | Path, name: str | Path, what: str = "image") -> Path:
    """`base / name`, if it resolves (symlinks followed) inside `base`; else `OutsideFolder`."""
    root = Path(base).resolve()
    joined = Path(base) / name  # an absolute `name` replaces `base`: checked like any other
    resolved = joined.resolve()
    if resolved != root and root not in resolved.parents:
        raise OutsideFolder(f"{what} {str(name)!r} is {OUTSIDE} {base} (resolved paths must stay inside it)")
    return joined


def check_s3_key(key: str, ref: str, prefix: str = "") -> str:
    """Refuse an S3 key that is empty, has `.`/`..`/empty segments or backslashes, or leaves `prefix`."""
    parts = key.split("/")
    if not key or "\\" in key or any(p in (".", "..") for p in parts) or "" in parts[:-1]:
        raise OutsideFolder(f"{ref}: S3 key {key!r} has '.', '..', empty segments or backslashes; refusing an ambiguous key")
    if prefix and not key.startswith(prefix):
        raise OutsideFolder(f"{ref}: S3 key {key!r} is outside the prefix {prefix!r}")
    return key
