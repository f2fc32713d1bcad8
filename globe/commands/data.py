"""`globe data import|synth|source|heldout` and the top-level `globe distill` / `globe verify` (thin: parse, call, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from globe.commands.common import ParamsOpt, PresetOpt, SetOpt, fail, load, print_json
from globe.images import MAX_SIDE

data_app = typer.Typer(help="Datasets: import geotagged photos, synthesize GeoScenes.", no_args_is_help=True)

OutOpt = Annotated[Path, typer.Option("--out", help="dataset directory to write (records.jsonl + images/)")]
DataOpt = Annotated[Path, typer.Option("--data", help="input dataset directory (records.jsonl + images/)")]


@data_app.command("synth")
def synth_cmd(
    out: OutOpt,
    n: Annotated[int | None, typer.Option("--n", help="number of images (default: synth.n)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="random seed (default: synth.seed)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a GeoScenes tiny-world dataset: real cities, learnable cues, entities and reasoning."""
    from globe.data.source import synthesize_source

    cfg = load(params, preset, set_).synth
    cfg = cfg.model_copy(update={k: v for k, v in (("n", n), ("seed", seed)) if v is not None})
    try:
        summary = synthesize_source(cfg, out)
    except ValueError as exc:
        fail(str(exc))
    print_json({"out": str(out), **summary})


@data_app.command("source")
def source_cmd(
    out: OutOpt,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Build the dataset params' `source:` names: GeoScenes synthesized, or geotagged photos imported
    from a CSV + images (local or s3://); checks the spec before any work (dvc.yaml's `data` stage)."""
    from globe.data.source import SourceError, build_source

    cfg = load(params, preset, set_)
    try:
        summary = build_source(cfg, out)
    except SourceError as exc:
        fail(str(exc))
    print_json({"out": str(out), **summary})


@data_app.command("heldout")
def heldout_cmd(
    out: OutOpt,
    shifted: Annotated[bool, typer.Option("--shifted", help="the shifted set: rendered with heldout.shifted in the tiny world; "
                                                          "a NO_SHIFTED_SET marker for an imported source")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="the imported source (records.jsonl + images/), whose test "
                                                              "split is the held-out set; not read for source.format geoscenes")] = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write a held-out test set (not verified): GeoScenes of heldout.seed in the tiny world, or an imported source's test split."""
    from globe.data.heldout import HeldoutError, write_heldout

    try:
        summary = write_heldout(load(params, preset, set_), out, data, shifted=shifted)
    except (HeldoutError, ValueError, OSError) as exc:
        fail(str(exc))
    print_json({"out": str(out), "records": summary["n"], "shifted": shifted, "test_set": summary["test_set"],
                "countries": summary["countries"], "cities": summary["cities"]})


@data_app.command("import")
def import_cmd(
    out: OutOpt,
    images: Annotated[Path, typer.Option("--images", help="folder of the photos")],
    csv: Annotated[
        Path | None, typer.Option("--csv", help="IM2GPS3K / YFCC4K / MP16 / OSV-5M csv; absent: read EXIF GPS")
    ] = None,
    max_side: Annotated[int, typer.Option("--max-side", help="cap the long side of stored images")] = MAX_SIDE,
    split: Annotated[str, typer.Option("--split", help="split of the imported records")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", help="import only the first N rows")] = None,
) -> None:
    """Import geotagged photos: normalise images once, reverse-geocode labels, skip bad rows with a reason."""
    from globe.data.ingest import IngestError, import_dataset

    if split not in ("train", "test"):
        fail(f"--split must be train or test, got {split!r}")
    try:
        report = import_dataset(out, images_dir=images, csv_path=csv, max_side=max_side, split=split, limit=limit)
    except IngestError as exc:
        fail(str(exc))
    print_json(report.summary())


def distill_cmd(
    data: DataOpt,
    out: OutOpt,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
    limit: Annotated[int | None, typer.Option("--limit", help="distill only the first N records")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Ask every configured teacher for a localizability judgment, a reasoning and a location (resumable)."""
    from globe.data.distill import DistillError, distill

    cfg = load(params, preset, set_).distill
    try:
        counts = distill(data, out, cfg, limit=limit, progress=progress)
    except DistillError as exc:
        fail(str(exc))
    print_json(counts)


def verify_cmd(
    data: DataOpt,
    out: OutOpt,
    metrics: Annotated[Path | None, typer.Option("--metrics", help="also write the counts alone here (dvc metrics)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Apply the four filters and write the kept dataset plus report.json."""
    from globe.data.verify import VerifyError, report_counts, verify
    from globe.io import atomic_write_bytes

    cfg = load(params, preset, set_).verify
    try:
        report = verify(data, out, cfg)
    except VerifyError as exc:
        fail(str(exc))
    if metrics is not None:
        atomic_write_bytes(metrics, (json.dumps(report_counts(report), indent=2) + "\n").encode("utf-8"))
    print_json(report)


def register(app: typer.Typer) -> None:
    """Add `globe data ...`, `globe distill` and `globe verify`."""
    app.add_typer(data_app, name="data")
    app.command("distill")(distill_cmd)
    app.command("verify")(verify_cmd)
