"""The held-out test sets every model is scored and gated on: which splits a source has, and writing them.

One rule for both DAGs: dvc.yaml's `heldout` stage (`globe data heldout`, into `data/heldout` and
`data/shifted`) and the KFP `heldout` step (`globe.kfp.steps.heldout_sets`) call these functions,
and the evaluation (`globe eval models`, the KFP `evaluate` step) scores the splits
`heldout_splits` names, so the two never disagree on what a model was measured on.

- The tiny world (`source.format: geoscenes`) has two: GeoScenes drawn from `heldout.seed`, a seed
  training never sees, in the training rendering (`in_domain`) and in the shifted one (`shifted`,
  `heldout.shifted` over `synth.rendering`).
- An imported real-photo source (`im2gps3k`, `exif-folder`, ...) has one: its own test split as
  imported (`in_domain`), records and images. There is no second rendering of a photo, so its
  `shifted` output is a directory holding only the `NO_SHIFTED_SET` marker, which says why. The
  directory exists because both front-ends have fixed outputs (dvc's `outs`, a KFP step's output
  artifacts; kfp.local cannot merge two `dsl.If` branches), and the marker makes it impossible to
  mistake for an empty test set: the evaluation skips it with a note, never scores it.

Held-out sets are never verified: the filters clean training data, not the test set.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from globe.data.records import IMAGES_DIR, RECORDS_FILE, Record, image_file, read_records, write_records
from globe.io import atomic_write_bytes, atomic_write_text

SPLITS = ("in_domain", "shifted")  # every held-out split name the main job knows, as dvc.yaml's evaluate stage names them
NO_SHIFTED_SET = "NO_SHIFTED_SET"  # the marker file of an imported source's shifted output (no records, by design)


class HeldoutError(ValueError):
    """A held-out set cannot be written or read as the params say; the message names the path and why."""


def heldout_splits(params: Any) -> tuple[str, ...]:
    """The held-out splits the main evaluation scores for these params: the tiny world has an
    in-domain and a shifted rendering; an imported source has its test split only (there is no
    second rendering of a real photo)."""
    return SPLITS if params.source.format == "geoscenes" else ("in_domain",)


def no_split_reason(path: str | Path) -> str | None:
    """Why `path` holds no held-out set (the marker's text, stripped), or None when it has no marker."""
    marker = Path(path) / NO_SHIFTED_SET
    return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None


def write_heldout(params: Any, out: str | Path, source: str | Path | None = None, shifted: bool = False) -> dict[str, Any]:
    """Write one held-out set of `params` into `out` and return its summary (`test_set`, `n`,
    `countries`, `cities`).

    The tiny world renders GeoScenes (`globe.tiny.geoscenes.synthesize_heldout`; `source` is not
    read). An imported source copies the test split of the imported dataset `source` (records and
    local images; `s3://` images stay references), or, `shifted`, writes the `NO_SHIFTED_SET`
    marker (`n` 0). A directory is a set or a marker, never both: writing one removes the other
    left in `out` by an earlier run with other params (dvc removes a stage's outputs anyway; this
    is for runs by hand)."""
    out = Path(out)
    fmt = params.source.format
    if fmt == "geoscenes":
        from globe.tiny.geoscenes import synthesize_heldout

        (out / NO_SHIFTED_SET).unlink(missing_ok=True)
        records = synthesize_heldout(out, params, shifted=shifted)
        return _summary("geoscenes held-out" + (" (shifted)" if shifted else ""), records)
    if shifted:
        return write_no_shifted_set(out, fmt)
    if source is None:
        raise HeldoutError(f"source.format is {fmt}: the held-out set is the imported source's test split; "
                           "give the imported dataset directory (globe data heldout --data data/source)")
    return _copy_test_split(Path(source), out, fmt)


def write_no_shifted_set(out: str | Path, fmt: str) -> dict[str, Any]:
    """The shifted output of an imported source: `out` with only the `NO_SHIFTED_SET` marker."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from globe.tiny.world import WORLD_FILE

    for name in (RECORDS_FILE, WORLD_FILE):  # a stale set must not be read beside the marker
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / IMAGES_DIR, ignore_errors=True)
    reason = f"source.format is {fmt}: a shifted set is rendered from the tiny world only"
    atomic_write_text(out / NO_SHIFTED_SET, reason + "\n")
    return {"test_set": f"none ({reason})", "n": 0, "countries": 0, "cities": 0}


def write_heldout_sets(params: Any, source: str | Path | None, in_domain: str | Path, shifted: str | Path) -> dict[str, dict[str, Any]]:
    """Both outputs of the heldout stage/step: {split: summary} for each split the source has
    (`heldout_splits`); an imported source's `shifted` directory gets the marker and no entry."""
    made = {"in_domain": write_heldout(params, in_domain, source)}
    if "shifted" in heldout_splits(params):
        made["shifted"] = write_heldout(params, shifted, source, shifted=True)
    else:
        write_no_shifted_set(shifted, params.source.format)
    return made


def _copy_test_split(source: Path, out: Path, fmt: str) -> dict[str, Any]:
    try:
        records = [r for r in read_records(source) if r.split == "test"]
    except (OSError, ValueError) as exc:
        raise HeldoutError(f"source.format is {fmt}: cannot read the imported source {source}: {exc}") from exc
    if not records:
        raise HeldoutError(f"{source / RECORDS_FILE}: no records in the test split, so the imported source has no "
                           "held-out photos (the import puts source.test_share of them there: import more photos)")
    out.mkdir(parents=True, exist_ok=True)
    (out / NO_SHIFTED_SET).unlink(missing_ok=True)
    keep = set()
    for r in records:
        if r.image.startswith("s3://"):
            continue
        src = image_file(source, r)  # checked: stays inside the source dataset
        if not src.is_file():
            raise HeldoutError(f"{src}: image of test record {r.id!r} is missing from the imported source")
        atomic_write_bytes(out / r.image, src.read_bytes())
        keep.add((out / r.image).resolve())
    images = out / IMAGES_DIR
    if images.is_dir():  # a re-run with another source must not leave photos no record references
        for p in images.rglob("*"):
            if p.is_file() and p.resolve() not in keep:
                p.unlink()
    write_records(out, records)  # last: the set is readable only once every image is in place
    return _summary(f"{fmt} test split (unverified)", records)


def _summary(test_set: str, records: list[Record]) -> dict[str, Any]:
    return {"test_set": test_set, "n": len(records), "countries": len({r.country_code for r in records}),
            "cities": len({(r.country_code, r.city) for r in records})}
