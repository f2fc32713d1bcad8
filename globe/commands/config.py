"""`globe config show | resolve`: the resolved configuration and where each value came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from globe.commands.common import DEFAULT_PARAMS, ParamsOpt, PresetOpt, SetOpt, fail, load_resolved, print_json

config_app = typer.Typer(help="The resolved configuration: defaults < preset < params.yaml < --preset < --set.",
                         no_args_is_help=True)

StageOpt = Annotated[str | None, typer.Option("--stage", help="only the settings this stage resolves (a dvc.yaml stage name)")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(config_app, name="config")


def _keys(stage: str | None) -> tuple[str, ...] | None:
    from globe.config import STAGE_SETTINGS

    if stage is None:
        return None
    if stage not in STAGE_SETTINGS:
        fail(f"unknown stage {stage!r} (known: {', '.join(STAGE_SETTINGS)})")
    return STAGE_SETTINGS[stage]


@config_app.command("show")
def show_cmd(
    stage: StageOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {key: {value, source}} as JSON")] = False,
    params: ParamsOpt = DEFAULT_PARAMS,
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Every resolved value with its source: default, preset NAME, params.yaml, --preset NAME or --set."""
    import json

    resolved = load_resolved(params, preset, set_)
    rows = resolved.table(_keys(stage))
    if as_json:
        print_json({key: {"value": value, "source": source} for key, value, source in rows})
        return
    width = max((len(key) for key, _, _ in rows), default=0)
    for key, value, source in rows:
        typer.echo(f"{key:<{width}}  {json.dumps(value, ensure_ascii=False)}  # {source}")


@config_app.command("resolve")
def resolve_cmd(
    out: Annotated[Path, typer.Option("--out", help="folder for one <stage>.yaml per stage")] = Path("results/config"),
    params: ParamsOpt = DEFAULT_PARAMS,
    preset: PresetOpt = None,
    set_: SetOpt = None,
) -> None:
    """Write each stage's resolved settings to OUT/<stage>.yaml (values only: a file changes exactly
    when what its stage runs with changes; dvc.yaml's stages depend on their file)."""
    import yaml

    from globe.config import STAGE_SETTINGS
    from globe.io import atomic_write_text

    resolved = load_resolved(params, preset, set_)
    written = {}
    for stage, keys in STAGE_SETTINGS.items():
        path = out / f"{stage}.yaml"
        atomic_write_text(path, yaml.safe_dump(resolved.values(keys), sort_keys=True, allow_unicode=True))
        written[stage] = str(path)
    print_json(written)
