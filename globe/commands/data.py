"""`globe data import|synth` and the top-level `globe distill` / `globe verify` (thin: parse, call, print)."""

from __future__ import annotations

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
    from globe.data.geoscenes import synthesize

    cfg = load(params, preset, set_).synth
    try:
        records = synthesize(
            out,
            n=n if n is not None else cfg.n,
            seed=seed if seed is not None else cfg.seed,
            image_size=cfg.image_size,
            non_localizable_share=cfg.non_localizable_share,
            countries=cfg.countries,
            test_share=cfg.test_share,
            cities_per_country=cfg.cities_per_country,
        )
    except ValueError as exc:
        fail(str(exc))
    print_json(
        {
            "out": str(out),
            "records": len(records),
            "train": sum(r.split == "train" for r in records),
            "test": sum(r.split == "test" for r in records),
            "non_localizable": sum(not r.localizable for r in records),
            "countries": len({r.country_code for r in records}),
            "cities": len({(r.country_code, r.city) for r in records}),
        }
    )


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
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Apply the four filters and write the kept dataset plus report.json."""
    from globe.data.verify import VerifyError, verify

    cfg = load(params, preset, set_).verify
    try:
        report = verify(data, out, cfg)
    except VerifyError as exc:
        fail(str(exc))
    print_json(report)


def register(app: typer.Typer) -> None:
    """Add `globe data ...`, `globe distill` and `globe verify`."""
    app.add_typer(data_app, name="data")
    app.command("distill")(distill_cmd)
    app.command("verify")(verify_cmd)
