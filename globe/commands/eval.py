"""`globe eval ...`: scoring predictions (`score`) and running/comparing benchmarks (`run`, `compare`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from globe.commands.common import fail

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
                  f"stated: the answers' own coordinates, else their places (coordinates from: {sources})\nwrote {out}")


def register(app: typer.Typer) -> None:
    from globe.commands import eval_run

    eval_run.add_commands(eval_app)
    app.add_typer(eval_app, name="eval")
