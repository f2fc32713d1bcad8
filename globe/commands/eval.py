"""`globe eval ...`: scoring predictions (`score`) and running/comparing benchmarks (`run`, `compare`)."""

from __future__ import annotations

import typer

eval_app = typer.Typer(help="Evaluate: score predictions, run benchmarks, compare runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    from globe.commands import eval_run

    eval_run.add_commands(eval_app)
    app.add_typer(eval_app, name="eval")
