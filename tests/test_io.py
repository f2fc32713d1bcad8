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


def test_atomic_directory_replaces_a_directory_whole_or_not_at_all(tmp_path):
    from globe.io import atomic_directory

    target = tmp_path / "model"
    with atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("v1")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:  # a crash half-way: v1 stays
        (tmp / "config.json").write_text("half")
        raise RuntimeError("killed")
    assert (target / "config.json").read_text() == "v1"
    with atomic_directory(target) as tmp:
        (tmp / "weights.bin").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["weights.bin"]  # the new directory, not a merge
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or old copy left


def test_atomic_directory_without_replace_keeps_what_another_process_finished(tmp_path):
    from globe.io import atomic_directory

    target = tmp_path / "cache" / "abc"
    with atomic_directory(target, replace=False) as tmp:
        (tmp / "mine").write_text("mine")
        target.mkdir()  # another download finished first
        (target / "theirs").write_text("theirs")
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in target.parent.iterdir()] == ["abc"]
