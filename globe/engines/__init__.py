"""Engines: one way to get text (or a yes/no probability) from (image, prompt) for every stage.

Importing this package is cheap: torch and transformers load only when a LocalEngine is built.
"""

from globe.engines.base import Engine, JudgeResult, Request, Result, Sampling
from globe.engines.local import LocalEngine
from globe.engines.openai_compat import OpenAIEngine
from globe.engines.kinds import engine_kinds, make_engine, register_engine

__all__ = [
    "Engine",
    "JudgeResult",
    "LocalEngine",
    "OpenAIEngine",
    "Request",
    "Result",
    "Sampling",
    "engine_kinds",
    "make_engine",
    "register_engine",
]
