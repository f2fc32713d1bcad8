"""The dataset a run starts from: the GeoScenes tiny world, or geotagged photos imported from a spec.

`params.yaml`'s `source:` group (`globe.config.SourceGroup`) says which: `geoscenes` paints the
tiny world (the `synth` group); any other format imports a ground-truth CSV plus an image folder
(or EXIF-GPS photos), each local or `s3://`, through `globe.data.ingest.import_dataset`. The
`benchmark:` group is the same kind of spec, imported with every record in the test split.

The same functions serve one machine (`globe data source`, the `data` stage of dvc.yaml) and the
KFP pipeline, which fans the import out over shards of the rows, as distillation does:

- `check_spec` reads nothing but probes everything: the CSV exists, the images are there, the
  bucket exists and the credentials may read it. It runs before any work starts.
- `import_shard` stages one shard (every `num_shards`-th CSV row, or photo for an EXIF folder) in a
  scratch directory, downloading from S3 only that shard's photos, imports it, then writes back
  where each record came from (source row number, source image URI), which the scratch copy
  had hidden. The train/test split is a hash of the record id, so it does not depend on how the
  rows were sharded, and a test photo stays a test photo when the source grows.
- `merge_imports` joins the shards (records ordered by id) and their skipped-row reports.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from globe import s3
from globe.data.ingest import ID_COLUMNS, IMAGE_SUFFIXES, image_names
from globe.data.ingest import REPORT_FILE as IMPORT_REPORT
from globe.data.records import IMAGES_DIR, Record, dump, link_or_copy, read_records, write_records
from globe.io import atomic_write_bytes

MAX_EXAMPLES = 100  # skipped-row examples kept in the merged report


class SourceError(ValueError):
    """A source or benchmark spec that cannot be read; the message names the field and the cause."""


# ----------------------------------------------------------------------------- checks


def _check_local(group: str, name: str, path: str, want_dir: bool) -> None:
    p = Path(path)
    if want_dir and not p.is_dir():
        raise SourceError(f"{group}.{name}: {path}: no such folder")
    if not want_dir and not p.is_file():
        raise SourceError(f"{group}.{name}: {path}: no such file")


def check_spec(spec: Any, group: str = "source") -> dict[str, Any]:
    """Probe the spec's CSV and images (local or S3) before any work; SourceError says what is wrong.

    Returns what was found: the CSV's size and the number of objects under an S3 images prefix.
    """
    if spec.format in (None, "geoscenes"):
        return {"format": spec.format}
    found: dict[str, Any] = {"format": spec.format}
    if spec.csv:
        if s3.is_s3(spec.csv):
            try:
                found["csv_bytes"] = s3.check_object(spec.csv)
            except s3.S3Error as exc:
                raise SourceError(f"{group}.csv: {exc}") from exc
        else:
            _check_local(group, "csv", spec.csv, want_dir=False)
            found["csv_bytes"] = Path(spec.csv).stat().st_size
    if s3.is_s3(spec.images):
        try:
            keys = s3.list_keys(spec.images)
        except s3.S3Error as exc:
            raise SourceError(f"{group}.images: {exc}") from exc
        if not keys:
            raise SourceError(f"{group}.images: {spec.images}: no objects under this prefix")
        found["image_objects"] = len(keys)
    else:
        _check_local(group, "images", spec.images, want_dir=True)
    return found


def plan_shards(spec: Any, num_shards: int) -> list[int]:
    """Shard indices for the import: one for GeoScenes (synthesized whole), else 0..num_shards-1."""
    from globe.data.shards import shard_indices

    return [0] if spec.format == "geoscenes" else shard_indices(num_shards)


# ----------------------------------------------------------------------------- the split


def is_test(record_id: str, test_share: float) -> bool:
    """A stable split: the id's hash, so re-sharding or adding photos never moves a test photo."""
    if test_share >= 1.0:
        return True
    h = int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < test_share


def dataset_summary(records: Sequence[Record]) -> dict[str, Any]:
    return {
        "records": len(records),
        "train": sum(r.split == "train" for r in records),
        "test": sum(r.split == "test" for r in records),
        "non_localizable": sum(r.localizable is False for r in records),
        "countries": len({r.country_code for r in records if r.country_code}),
        "cities": len({(r.country_code, r.city) for r in records if r.city}),
    }


# ----------------------------------------------------------------------------- staging a shard


@dataclass
class _Staged:
    """A shard laid out for `import_dataset`, and how to map its rows back to the source."""

    images: Path
    csv: Path | None = None
    rows: list[int] = field(default_factory=list)  # shard row i (1-based) -> source row number
    origin: dict[str, str] = field(default_factory=dict)  # staged image path -> source path or URI


def _shard_csv(src: Path, dst: Path, shard: int, num_shards: int) -> tuple[list[str], list[int]]:
    """Write the header and every `num_shards`-th data row from `shard` on; return (header, row numbers).

    Row numbers count data rows from 1, blank lines included, as the importer does."""
    with open(src, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None) or []
        chosen = [(n, values) for n, values in enumerate(reader, 1) if (n - 1) % num_shards == shard]
    chosen = [(n, v) for n, v in chosen if v and any(x.strip() for x in v)]
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(v for _, v in chosen)
    return header, [n for n, _ in chosen]


def _id_column(header: list[str]) -> int | None:
    low = [h.strip().lower() for h in header]
    return next((low.index(name) for name in ID_COLUMNS if name in low), None)


def _fetch_csv_images(images_uri: str, csv_path: Path, header: list[str], dst: Path) -> dict[str, str]:
    """Download the photos the shard's rows name (same lookup as the importer: the id as a relative
    path, or with an image suffix added when it has none); return staged path -> s3 URI."""
    bucket, prefix = s3.split_uri(images_uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    c = s3.client()
    keys = {k[len(prefix):]: k for k in s3.list_keys(images_uri, c)}
    col = _id_column(header)
    origin: dict[str, str] = {}
    if col is None:
        return origin  # the importer names the missing column
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    for values in rows:
        ident = values[col].strip() if col < len(values) else ""
        rel = next((name for name in image_names(ident) if ident and name in keys), None)
        if rel is not None and str(dst / rel) not in origin:
            s3.download(f"s3://{bucket}/{keys[rel]}", dst / rel, c)
            origin[str(dst / rel)] = f"s3://{bucket}/{keys[rel]}"
    return origin


def _stage_exif(images: str, shard: int, num_shards: int, work: Path) -> _Staged:
    suffixes = IMAGE_SUFFIXES
    c = s3.client() if s3.is_s3(images) else None
    if c is not None:
        bucket, prefix = s3.split_uri(images)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        refs = [f"s3://{bucket}/{k}" for k in s3.list_keys(images, c) if Path(k).suffix.lower() in suffixes]
        rel_of = {ref: ref[len(f"s3://{bucket}/{prefix}"):] for ref in refs}
    else:
        root = Path(images)
        refs = [str(p) for p in sorted(root.rglob("*")) if p.is_file() and p.suffix.lower() in suffixes]
        rel_of = {ref: Path(ref).relative_to(root).as_posix() for ref in refs}
        if num_shards == 1:  # the folder as it is: nothing to stage
            return _Staged(images=root, rows=list(range(1, len(refs) + 1)))
    staged = _Staged(images=work / IMAGES_DIR)
    staged.images.mkdir(parents=True, exist_ok=True)
    number = {}
    for n, ref in enumerate(refs, 1):
        if (n - 1) % num_shards != shard:
            continue
        dst = staged.images / rel_of[ref]
        if c is not None:
            s3.download(ref, dst, c)
        else:
            link_or_copy(ref, dst)
        staged.origin[str(dst)] = ref
        number[str(dst)] = n
    # the importer numbers the photos it finds in sorted order: map that order back
    found = sorted(p for p in staged.images.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    staged.rows = [number[str(p)] for p in found]
    return staged


def _stage(spec: Any, shard: int, num_shards: int, work: Path) -> _Staged:
    if spec.format == "exif-folder":
        return _stage_exif(spec.images, shard, num_shards, work)
    source_csv = Path(spec.csv)
    if s3.is_s3(spec.csv):
        source_csv = s3.download(spec.csv, work / "source.csv")
    shard_csv = work / "shard.csv"
    header, rows = _shard_csv(source_csv, shard_csv, shard, num_shards)
    if s3.is_s3(spec.images):
        images = work / IMAGES_DIR
        images.mkdir(parents=True, exist_ok=True)
        return _Staged(images=images, csv=shard_csv, rows=rows, origin=_fetch_csv_images(spec.images, shard_csv, header, images))
    return _Staged(images=Path(spec.images), csv=shard_csv, rows=rows)


def _source_row(staged: _Staged, row: Any) -> Any:
    return staged.rows[row - 1] if isinstance(row, int) and 0 < row <= len(staged.rows) else row


def _restore_provenance(out: Path, staged: _Staged, test_share: float) -> list[Record]:
    """Split the records, and point their `meta` (and the report's examples) back at the source."""
    records = []
    for r in read_records(out):
        meta = dict(r.meta)
        meta["source_image"] = staged.origin.get(meta.get("source_image", ""), meta.get("source_image"))
        meta["row"] = _source_row(staged, meta.get("row"))
        records.append(r.model_copy(update={"split": "test" if is_test(r.id, test_share) else "train", "meta": meta}))
    write_records(out, records)
    report = json.loads((out / IMPORT_REPORT).read_text(encoding="utf-8"))
    report["examples"] = [e | {"row": _source_row(staged, e.get("row"))} for e in report.get("examples", [])]
    atomic_write_bytes(out / IMPORT_REPORT, dump(report).encode())
    return records


# ----------------------------------------------------------------------------- building


def synthesize_source(synth: Any, out: str | Path) -> dict[str, Any]:
    """The GeoScenes tiny world from the `synth` group; returns its summary."""
    from globe.tiny.geoscenes import synthesize

    records = synthesize(
        out, n=synth.n, seed=synth.seed, image_size=synth.image_size, non_localizable_share=synth.non_localizable_share,
        countries=synth.countries, test_share=synth.test_share, cities_per_country=synth.cities_per_country,
        look=synth.rendering.look(),
    )
    return {"format": "geoscenes", **dataset_summary(records)}


def import_shard(spec: Any, out: str | Path, shard: int = 0, num_shards: int = 1, *, test_share: float) -> dict[str, Any]:
    """Import shard `shard` of `num_shards` of a photo spec into `out`; returns the import report."""
    from globe.data.ingest import IngestError, import_dataset
    from globe.data.shards import check_shard

    check_shard(shard, num_shards)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="globe-import-") as tmp:
        try:
            staged = _stage(spec, shard, num_shards, Path(tmp))
            report = import_dataset(out, staged.images, staged.csv, max_side=spec.max_side, split="train", progress=False)
        except (IngestError, s3.S3Error) as exc:
            raise SourceError(str(exc)) from exc
        records = _restore_provenance(out, staged, test_share)
    summary = report.summary()
    summary["examples"] = [e | {"row": _source_row(staged, e.get("row"))} for e in summary["examples"]]
    return {"format": spec.format, "shard": shard, "num_shards": num_shards, **summary, **dataset_summary(records)}


def build_shard(source: Any, synth: Any, out: str | Path, shard: int = 0, num_shards: int = 1) -> dict[str, Any]:
    """One shard of the source dataset: an import shard, or GeoScenes, which is synthesized whole in
    shard 0 (`plan_shards` plans no other; the pipeline still passes its `num_shards`)."""
    if source.format == "geoscenes":
        if shard != 0:
            raise SourceError(f"geoscenes is synthesized in one shard, not shard {shard} of {num_shards}")
        return synthesize_source(synth, out)
    return import_shard(source, out, shard, num_shards, test_share=source.test_share)


def build_source(params: Any, out: str | Path) -> dict[str, Any]:
    """The whole source dataset on one machine (`globe data source`, dvc.yaml's `data` stage)."""
    check_spec(params.source, "source")
    return build_shard(params.source, params.synth, out)


def import_benchmark(benchmark: Any, out: str | Path) -> dict[str, Any]:
    """The `benchmark` spec imported with every record in the test split."""
    if benchmark.format is None:
        raise SourceError("benchmark.format is null: there is no benchmark to import")
    return import_shard(benchmark, out, test_share=1.0)


# ----------------------------------------------------------------------------- merging shards


def merge_reports(reports: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One skipped-row report from the shards' `import_report.json` files."""
    total: Counter = Counter()
    reasons: Counter = Counter()
    examples: list[dict] = []
    for rep in reports:
        total.update({k: int(rep.get(k, 0)) for k in ("rows", "imported", "skipped")})
        reasons.update(rep.get("skipped_by_reason", {}))
        examples += rep.get("examples", [])
    examples.sort(key=lambda e: (e.get("row") if isinstance(e.get("row"), int) else 0, str(e.get("id"))))
    return {**{k: total[k] for k in ("rows", "imported", "skipped")}, "skipped_by_reason": dict(sorted(reasons.items())),
            "examples": examples[:MAX_EXAMPLES]}


def merge_imports(shard_dirs: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Join the shard datasets into `out` and their import reports into one; returns the summary."""
    from globe.data.shards import merge_datasets

    out = Path(out)
    merge_datasets(shard_dirs, out)
    records = read_records(out)
    reports = [json.loads(p.read_text(encoding="utf-8")) for d in shard_dirs if (p := Path(d) / IMPORT_REPORT).is_file()]
    summary: dict[str, Any] = {"shards": len(shard_dirs), **dataset_summary(records)}
    if reports:
        merged = merge_reports(reports)
        atomic_write_bytes(out / IMPORT_REPORT, dump(merged).encode())
        summary |= {k: merged[k] for k in ("rows", "imported", "skipped", "skipped_by_reason")}
        summary["examples"] = merged["examples"]
    return summary


def report_markdown(summary: dict[str, Any], title: str = "Import") -> str:
    """The skipped-row report as Markdown (the KFP UI renders it on the import step)."""
    lines = [f"## {title}", ""]
    if "rows" not in summary:
        lines += [f"GeoScenes tiny world: {summary.get('records', 0)} images synthesized "
                  f"({summary.get('train', 0)} train, {summary.get('test', 0)} test), nothing skipped.", ""]
        return "\n".join(lines)
    lines += ["| rows read | imported | skipped | train | test | countries |", "|---:|---:|---:|---:|---:|---:|",
              f"| {summary['rows']} | {summary['imported']} | {summary['skipped']} | {summary.get('train', 0)} | "
              f"{summary.get('test', 0)} | {summary.get('countries', 0)} |", ""]
    reasons = summary.get("skipped_by_reason") or {}
    if reasons:
        lines += ["### Skipped rows by reason", "", "| reason | rows |", "|---|---:|"]
        lines += [f"| {reason} | {count} |" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])]
        lines += ["", "### Examples", "", "| source row | id | why |", "|---:|---|---|"]
        for e in summary.get("examples", [])[:25]:
            why = str(e.get("reason", "")).replace("|", "\\|")
            lines.append(f"| {e.get('row')} | `{e.get('id')}` | {why} |")
    else:
        lines.append("No row was skipped.")
    return "\n".join(lines) + "\n"
