"""Atomic writes: old-or-new content only, normal file modes, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from globe.io import atomic_write_bytes, atomic_write_text


def test_replaces_content_with_plain_file_mode(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    atomic_write_text(target, "old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_failure_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "records.jsonl"
    atomic_write_text(target, "kept\n")


    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["records.jsonl"]
