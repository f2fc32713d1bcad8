"""Options and helpers shared by every command: params file, preset, `--set` overrides, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

DEFAULT_PARAMS = Path("params.yaml")
ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml to read (defaults apply when absent)")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="named preset from params.yaml `presets:`")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="override KEY=VALUE (dotted key, YAML value); repeatable"),
]


def load(params: Path, preset: str | None, overrides: list[str] | None):
    """Load and validate params (see `load_resolved`)."""
    return load_resolved(params, preset, overrides).params


def note_default_params(params: Path) -> None:
    """Say so when `./params.yaml` is missing and the built-in defaults apply (see `load_resolved`)."""
    if params == DEFAULT_PARAMS and not params.exists():
        typer.secho(f"note: no {params} in {Path.cwd()}: the built-in defaults apply (--params FILE reads another)",
                    fg=typer.colors.YELLOW, err=True)  # fmt: skip


def load_resolved(params: Path, preset: str | None, overrides: list[str] | None):
    """Resolve and validate params (values and their sources), a config error as a clean CLI error.

    Run outside the project, a command finds no `./params.yaml` and runs on the built-in defaults
    (another preset, other step counts): it says so, so that the result is not mistaken for the
    project's. A path given explicitly that does not exist means "the defaults", silently.
    """
    from globe.config import ConfigError, resolve_params

    note_default_params(params)
    try:
        return resolve_params(params, preset=preset, overrides=overrides or [])
    except ConfigError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error to stderr and exit non-zero (no traceback for user errors).

    Credentials in URLs (`http://user:pass@host`) are redacted: library errors quote the URLs of
    `AWS_ENDPOINT_URL` and `MLFLOW_TRACKING_URI`, user info included.
    """
    from globe.redact import redact

    typer.secho(f"error: {redact(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


JsonOutOpt = Annotated[
    Path | None, typer.Option("--out", help="also write the printed JSON to this file (atomically; parents created)")
]


def print_json(obj: Any, out: Path | None = None) -> None:
    """Print `obj` as JSON; with `out`, write the same text there too, so a dvc stage names its
    output file instead of redirecting stdout into a directory it made with `mkdir -p`."""
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"
    if out is not None:
        from globe.io import atomic_write_text

        atomic_write_text(out, text)
    sys.stdout.write(text)
