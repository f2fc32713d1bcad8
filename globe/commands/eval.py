"""`globe eval score | run | models | compare | calibrate`: score predictions, run the harness over a
benchmark, evaluate every model on the held-out sets, compare two runs, fit a consensus run's
confidence. Thin: each calls one `globe.evaluate` function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from globe.commands.common import ParamsOpt, PresetOpt, SetOpt, fail, load_resolved, print_json

HEADLINE = ("n", "n_unparsed", "n_errors", "acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km",
            "median_km", "country_acc", "city_acc", "mean_confidence", "ece")

eval_app = typer.Typer(help="Evaluate: score predictions, run benchmarks, compare runs.", no_args_is_help=True)


@eval_app.command("score")
def score(
    predictions: Annotated[Path, typer.Option(
        "--predictions", "-p", help="CSV or JSONL: id, lat, lon [, country, city] and pred_lat,pred_lon or output")],
    out: Annotated[Path, typer.Option("--out", "-o", help="metrics.json to write (atomically)")] = Path("metrics.json"),
    rows_out: Annotated[Optional[Path], typer.Option(
        "--rows-out", help="also write the scored rows as JSON lines (parsed fields, coordinates, distance)")] = None,
) -> None:
    """Score predictions: accuracy within 1/25/200/750/2500 km, median/mean error, country and city accuracy.

    The headline geocodes the answered place names (the paper's protocol); the answers' own stated
    coordinates are a second protocol, under "stated" in metrics.json."""
    from globe.evaluate.metrics import (
        PredictionsError,
        read_predictions,
        score_rows,
        summarize,
        write_json_atomic,
        write_jsonl_atomic,
    )

    try:
        rows = read_predictions(predictions)
        scored = score_rows(rows)
    except (PredictionsError, ValueError) as exc:
        fail(str(exc))
    metrics = summarize(scored)
    write_json_atomic(out, metrics)
    if rows_out is not None:
        write_jsonl_atomic(rows_out, scored)
    _print_table(metrics, predictions, out)


def _shown(key: str, value) -> str:
    if value is None:
        return "-"
    if key.startswith(("acc_", "country_acc", "city_acc", "format_ok")):
        return f"{100 * value:.2f} %"
    if key.endswith("_km"):
        return f"{value:,.1f} km"
    return str(value)


def _print_table(metrics: dict, source: Path, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    stated = metrics.get("stated") or {}
    table = Table()
    table.add_column("metric")
    table.add_column("names (headline)", justify="right")
    table.add_column("stated coordinates", justify="right")
    for key, value in metrics.items():
        if key in ("n", "n_unparsed", "protocol") or isinstance(value, dict):
            continue
        table.add_row(key, _shown(key, value), _shown(key, stated[key]) if key in stated else "")
    console = Console(width=120)
    console.print(f"{source}: {metrics['n']} rows, {metrics['n_unparsed']} unparsed (misses at every distance; "
                  f"{stated.get('n_unparsed', '-')} under stated coordinates)")
    console.print(table)
    how = ", ".join(f"{k} {v}" for k, v in metrics["resolution"].items())
    sources = ", ".join(f"{k} {v}" for k, v in stated.get("coords_source", {}).items())
    console.print(f"headline: the answered places geocoded (resolved as: {how})\n"
                  f"stated: the answers' own coordinates, else their places (coordinates from: {sources})")
    console.print(resolution_table(metrics.get("by_resolution") or {}))
    console.print(f"wrote {out}")


def resolution_table(split: dict):
    """Rows within each threshold by how they were placed: a fallback's lucky hit shows here."""
    from rich.table import Table

    from globe.evaluate.metrics import THRESHOLDS_KM

    table = Table(title="headline hits by resolution (rows within d km / rows)")
    table.add_column("resolution")
    table.add_column("n", justify="right")
    for t in THRESHOLDS_KM:
        table.add_column(f"<= {t} km", justify="right")
    for name, m in split.items():
        table.add_row(name, str(m["n"]), *(f"{m[f'hits_{t}km']} ({100 * m[f'acc_{t}km']:.0f}%)" for t in THRESHOLDS_KM))
    return table


@eval_app.command("run")
def run(
    model: Annotated[str, typer.Option("--model", help="local model dir; or the served model name with --engine openai/globe-predictor")],
    out: Annotated[Path, typer.Option("--out", help="run directory (resumed if it exists)")],
    benchmark: Annotated[str | None, typer.Option("--benchmark", help="im2gps3k | yfcc4k | mp16 | osv5m | geoscenes")] = None,
    csv: Annotated[Path | None, typer.Option("--csv", help="benchmark CSV (im2gps3k, yfcc4k, osv5m)")] = None,
    images: Annotated[Path | None, typer.Option("--images", help="image folder (CSV benchmarks; optional for mp16)")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="MP16-Reason-style JSONL, or a GeoScenes dataset dir")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="evaluate the first N images only")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="local | openai | globe-predictor | scene-reader")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="endpoint for --engine openai/globe-predictor")] = None,
    samples: Annotated[int | None, typer.Option(
        "--samples", min=1, help="reasonings per image (default eval.samples, 1 = greedy); N > 1 answers "
        "with the great-circle consensus of N samples and a confidence (metrics.json: ece, selective_accuracy)")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run a model over a benchmark: predictions.jsonl, metrics.json, plots and report.html in --out."""
    resolved = load_resolved(params, preset, [*(set_ or []), *([f"eval.samples={samples}"] if samples is not None else [])])
    cfg = resolved.params
    from globe.config import write_resolved
    from globe.evaluate.benchmarks import BenchmarkError, load_benchmark
    from globe.evaluate.runner import RunError, run_benchmark

    name = benchmark or cfg.eval.benchmark
    try:
        samples = load_benchmark(name, csv_path=csv, images=images, path=data, limit=limit or cfg.eval.limit)
    except (BenchmarkError, ValueError, OSError) as exc:  # ValueError: e.g. a records.jsonl naming an outside image
        fail(str(exc))
    try:
        metrics = run_benchmark(cfg, model, samples, out, benchmark=name, engine=engine, base_url=base_url, progress=progress)
    except (RunError, ValueError, OSError) as exc:
        fail(str(exc))
    write_resolved(resolved, out, ("base.seed", "source.format", "eval"))  # the settings this evaluation used
    summary = {k: metrics.get(k) for k in HEADLINE if k in metrics}
    summary["timing"] = metrics.get("timing")  # predict_s and finalize_s: what the harness cost
    summary["out"] = str(out)
    summary["files"] = sorted(p.name for p in Path(out).iterdir() if not p.name.startswith("."))
    if metrics.get("mlflow_run_id"):
        summary["mlflow_run_id"] = metrics["mlflow_run_id"]
    print_json(summary)


def _named(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            fail(f"--{what} {item!r}: expected NAME=PATH, e.g. --{what} grpo=models/grpo")
        if name in out:
            fail(f"--{what}: {name!r} given twice")
        out[name] = value
    if not out:
        fail(f"give at least one --{what} NAME=PATH")
    return out


@eval_app.command("models")
def models(
    model: Annotated[list[str], typer.Option("--model", help="NAME=DIR, repeatable (e.g. sft=models/sft)")],
    split: Annotated[list[str], typer.Option("--split", help="NAME=DIR of a held-out set, repeatable (e.g. in_domain=data/heldout)")],
    out: Annotated[Path, typer.Option("--out", help="suite directory: OUT/<split>/<model>/ runs + metrics.json, report.html")],
    compare_: Annotated[list[str] | None, typer.Option("--compare", help="CANDIDATE:BASELINE, repeatable (e.g. grpo:sft)")] = None,
    benchmark: Annotated[str, typer.Option("--benchmark", help="benchmark of every split")] = "geoscenes",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    params: ParamsOpt = Path("params.yaml"),
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Every model on the same held-out sets, with paired-bootstrap deltas (the main job's evaluate stage).

    A split the source does not have (source.format's rule: an imported source has no `shifted`
    set) is skipped with a note, never scored."""
    from globe.evaluate.benchmarks import BenchmarkError
    from globe.evaluate.runner import RunError
    from globe.evaluate.suite import Split, evaluate_suite, parse_pairs, select_splits

    resolved = load_resolved(params, preset, set_)
    cfg = resolved.params
    named_models = _named(model, "model")
    splits = [Split(name, Path(path), benchmark) for name, path in _named(split, "split").items()]
    try:
        pairs = parse_pairs(compare_ or [], list(named_models))
        splits, skipped = select_splits(cfg, splits)  # the splits the source has (globe.data.heldout)
        for name, why in skipped.items():
            typer.secho(f"note: split {name} not scored: {why}", fg=typer.colors.YELLOW, err=True)
        if not splits:
            fail("no split left to score: " + "; ".join(f"{n}: {why}" for n, why in skipped.items()))
        metrics = evaluate_suite(cfg, named_models, splits, out, pairs, progress=progress, skipped=skipped)
    except (BenchmarkError, RunError, ValueError, OSError) as exc:
        fail(str(exc))
    from globe.config import write_resolved

    write_resolved(resolved, out, ("base.seed", "source.format", "eval"))  # the settings this evaluation used
    print_json(metrics)


@eval_app.command("compare")
def compare(
    run_a: Annotated[Path, typer.Argument(help="run directory A (baseline)")],
    run_b: Annotated[Path, typer.Argument(help="run directory B (candidate)")],
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="bootstrap resamples")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="also write compare.json, compare.md and a self-contained compare.html (with both accuracy curves) here")] = None,
) -> None:
    """Metric deltas B - A with paired bootstrap 95% intervals (over the images both runs answered)."""
    from globe.evaluate.compare import compare_runs, comparison_table, write_comparison
    from globe.evaluate.runner import RunError

    try:
        result = compare_runs(run_a, run_b, n_boot=bootstrap, seed=seed)
        written = write_comparison(result, out) if out is not None else []
    except (RunError, ValueError, OSError) as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
        return
    from rich.console import Console

    console = Console(width=140)
    console.print(comparison_table(result))
    if written:
        console.print("wrote " + ", ".join(str(p) for p in written))


@eval_app.command("calibrate")
def calibrate(
    run_dir: Annotated[Path, typer.Argument(help="a consensus run (--samples N) on a labelled dev split, not the test set")],
    out: Annotated[Path | None, typer.Option("--out", help="calibration file (default RUN_DIR/calibration.json)")] = None,
) -> None:
    """Fit the consensus confidence: agreement -> share within 25 km (isotonic), for eval/serve.calibration."""
    from globe.consensus import CalibrationError
    from globe.evaluate.calibrate import fit_run

    try:
        cal = fit_run(run_dir)
    except (CalibrationError, OSError, ValueError) as exc:
        fail(str(exc))
    path = out or run_dir / "calibration.json"
    cal.save(path)
    print_json({"out": str(path), "samples": cal.samples, "temperature": cal.temperature, "n": cal.n,
                "points": [list(p) for p in cal.points]})


def register(app: typer.Typer) -> None:
    """Add `globe eval ...` to the main app."""
    app.add_typer(eval_app, name="eval")
