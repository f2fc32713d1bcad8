"""Engines: one way to get text (or a yes/no probability) from (image, prompt) for every stage.

Importing this package is cheap: each name below is imported on first use (PEP 562), so
`globe.config` can read the table of kinds (`globe.engines.kinds`) without loading httpx, and
torch and transformers load only when a LocalEngine is built.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Engine": "globe.engines.base",
    "JudgeResult": "globe.engines.base",
    "Request": "globe.engines.base",
    "Result": "globe.engines.base",
    "Sampling": "globe.engines.base",
    "generate_samples": "globe.engines.base",
    "LocalEngine": "globe.engines.local",
    "OpenAIEngine": "globe.engines.openai_compat",
    "ENGINE_KINDS": "globe.engines.kinds",
    "engine_kinds": "globe.engines.kinds",
    "make_engine": "globe.engines.kinds",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from globe.engines.base import Engine, JudgeResult, Request, Result, Sampling, generate_samples
    from globe.engines.kinds import ENGINE_KINDS, engine_kinds, make_engine
    from globe.engines.local import LocalEngine
    from globe.engines.openai_compat import OpenAIEngine


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'globe.engines' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
