"""Build an engine from config: `make_engine({"kind": "openai", ...})` or a `TeacherConfig`.

Kinds are a registry, not an if-chain, so other parts of the project add their own engines
(e.g. the data area's "scene-reader" teacher) with `@register_engine("scene-reader")` without
touching this file. A factory receives the spec as a plain dict with `defaults` merged under it.
"""

from __future__ import annotations

from typing import Any, Callable

from globe.engines.base import Engine

EngineFactory = Callable[[dict[str, Any]], Engine]
_FACTORIES: dict[str, EngineFactory] = {}


def register_engine(kind: str) -> Callable[[EngineFactory], EngineFactory]:
    """Decorator: make `make_engine` build `kind` specs with this factory."""

    def decorate(factory: EngineFactory) -> EngineFactory:
        _FACTORIES[kind] = factory
        return factory

    return decorate


def engine_kinds() -> list[str]:
    return sorted(_FACTORIES)


def make_engine(spec: Any, **defaults: Any) -> Engine:
    """An engine for `spec` (a dict or a pydantic model such as `TeacherConfig`).

    `defaults` fill keys the spec leaves out or sets to None, e.g. the distill group's
    `concurrency`, `timeout_s` and `retries`.
    """
    raw = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec)
    merged = {**defaults, **{k: v for k, v in raw.items() if v is not None}}
    kind = merged.get("kind")
    if kind not in _FACTORIES:
        known = ", ".join(engine_kinds())
        raise ValueError(f"engine spec {merged.get('name', '')!r}: unknown kind {kind!r} (known: {known})")
    return _FACTORIES[kind](merged)


def _pick(spec: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: spec[k] for k in keys if k in spec}


@register_engine("local")
def _local(spec: dict[str, Any]) -> Engine:
    from globe.engines.local import LocalEngine

    path = spec.get("model") or spec.get("model_path")
    if not path:
        raise ValueError(f"engine spec {spec.get('name', '')!r}: kind 'local' needs `model` (a model directory)")
    return LocalEngine(path, **_pick(spec, "device", "batch_size", "seed", "dtype", "name"))


@register_engine("openai")
def _openai(spec: dict[str, Any]) -> Engine:
    from globe.engines.openai_compat import OpenAIEngine

    keys = ("base_url", "model", "api_key", "api_key_env", "concurrency", "timeout_s", "retries", "backoff_s")
    return OpenAIEngine(**_pick(spec, *keys, "max_backoff_s", "image_format", "headers", "name"))
