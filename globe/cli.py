"""The `globe` command line: a thin Typer front-end over the library.

Each area registers its commands from `globe.commands.<area>`; those modules import heavy
packages (torch, transformers, mlflow, kfp) inside the command functions only, so that
`globe --help` starts in well under a second.
"""

from __future__ import annotations

import typer

from globe.commands import config, data, eval as eval_cmds, geo, model, pipeline, serve, train

app = typer.Typer(
    name="globe",
    help="GLOBE: reasoning-based image geolocation — data, GRPO training, evaluation, registry, serving.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

for area in (config, geo, eval_cmds, data, model, train, serve, pipeline):
    area.register(app)


@app.command()
def version() -> None:
    """Print the globe version."""
    from globe import __version__

    typer.echo(__version__)


if __name__ == "__main__":  # pragma: no cover
    app()
