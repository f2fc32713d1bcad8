"""`globe eval run` and `globe eval compare` (benchmark harness); `score` lives in eval.py."""

from __future__ import annotations

import typer


def add_commands(eval_app: typer.Typer) -> None:
    """Attach the harness commands to the `eval` group."""
