"""The serving settings a model carries: the `serve:` group it was registered with.

`globe register` saves the resolved `serve` group into the logged checkpoint as `globe_serve.yaml`,
so the model version in MLflow holds the limits, batching, decoding and calibration it was
evaluated and approved with. Whatever serves it (the KServe pod, `globe serve`, `globe predict`)
starts from those, and only what the command line sets explicitly (`--set serve.KEY=VALUE`)
overrides them:

    model without the file:  defaults < preset < params.yaml < --set   (globe.config)
    model with the file:     the registered settings < --set serve.*

A model with no file is served with the params it was started with; with no params file either,
that is the built-in `ServeGroup` defaults, and the predictor logs so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from globe.config import ServeGroup, _format_validation, deep_merge, parse_override

SETTINGS_FILE = "globe_serve.yaml"
NOT_SAVED = ("model",)  # where the weights are is the server's business, not the model's


def save_settings(serve: dict[str, Any], folder: str | Path) -> Path:
    """Write a model's serving settings (a resolved `serve` group) into its checkpoint folder."""
    doc = {key: value for key, value in ServeGroup.model_validate(serve).model_dump(mode="json").items()
           if key not in NOT_SAVED}
    path = Path(folder) / SETTINGS_FILE
    path.write_text(yaml.safe_dump(doc, sort_keys=True), encoding="utf-8")
    return path


def saved_settings(folder: str | Path | None) -> dict[str, Any] | None:
    """The settings saved with the checkpoint in `folder`, or None when it carries none."""
    path = Path(folder) / SETTINGS_FILE if folder else None
    if path is None or not path.is_file():
        return None
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected the serve settings as a mapping")
    return doc


def explicit_serve(overrides: list[str] | tuple[str, ...] | None) -> dict[str, Any]:
    """The `serve.*` values set explicitly on the command line (`--set serve.KEY=VALUE`)."""
    tree: dict[str, Any] = {}
    for item in overrides or ():
        tree = deep_merge(tree, parse_override(item))
    serve = tree.get("serve") or {}
    return serve if isinstance(serve, dict) else {}


def settings_for(model_dir: str | Path | None, cfg: ServeGroup, explicit: dict[str, Any],
                 source: str) -> tuple[ServeGroup, str]:
    """The settings to serve `model_dir` with, and where they come from: the model's own (with the
    explicit overrides on top) when it carries them, else `cfg` (described by `source`)."""
    saved = saved_settings(model_dir)
    if saved is None:
        return cfg, source
    tree = deep_merge({k: v for k, v in saved.items() if k not in NOT_SAVED}, explicit)
    tree["model"] = cfg.model
    try:
        settings = ServeGroup.model_validate(tree)
    except ValidationError as exc:
        raise ValueError(_format_validation(exc, f"{Path(model_dir) / SETTINGS_FILE} (the model's serving settings)")) from exc
    where = f"registered with the model ({SETTINGS_FILE})"
    return settings, where + (f" < --set {', '.join(sorted(explicit))}" if explicit else "")
