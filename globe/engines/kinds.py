"""The engine kinds, in one table, and `make_engine` to build one from config.

`make_engine({"kind": "openai", ...})` or `make_engine(TeacherConfig(...))`. Each kind names the
factory that builds it as "module:function", imported only when that kind is built: an OpenAI
engine loads neither torch nor the tiny world's scene reader, and no kind exists merely because
some module happened to be imported first. `globe.config` validates every `kind` against this
table (`EngineKind`), so a new kind is one line here plus its factory. A factory receives the
spec as a plain dict with `defaults` merged under it.

`SERVED_PREDICTOR` is not an engine: a served `globe` predictor answers with documents (the
model's text plus the places and coordinates the server derived), not with text, and does its own
decoding. Its client is `globe.serve.client.PredictorClient`; the evaluation harness takes it
beside the engines (`globe.evaluate.answers`), so `eval.engine` may name it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from globe.engines.base import Engine

ENGINE_KINDS: dict[str, str] = {
    "local": "globe.engines.kinds:local_engine",  # a model directory, in-process (transformers)
    "openai": "globe.engines.kinds:openai_engine",  # any OpenAI-compatible chat endpoint
    "scene-reader": "globe.tiny.scene_reader:scene_reader_engine",  # the tiny world's cue reader
}
SERVED_PREDICTOR = "globe-predictor"
EVAL_KINDS = (*ENGINE_KINDS, SERVED_PREDICTOR)  # what `globe eval run --engine` can evaluate


def engine_kinds() -> list[str]:
    return sorted(ENGINE_KINDS)


def make_engine(spec: Any, **defaults: Any) -> Engine:
    """An engine for `spec` (a dict or a pydantic model such as `TeacherConfig`).

    `defaults` fill keys the spec leaves out or sets to None, e.g. the distill group's
    `concurrency`, `timeout_s` and `retries`.
    """
    raw = spec.model_dump() if hasattr(spec, "model_dump") else dict(spec)
    merged = {**defaults, **{k: v for k, v in raw.items() if v is not None}}
    kind = merged.get("kind")
    if kind not in ENGINE_KINDS:
        hint = f"; {SERVED_PREDICTOR!r} is evaluated with `globe eval run`, it is not an engine" if kind == SERVED_PREDICTOR else ""
        raise ValueError(f"engine spec {merged.get('name', '')!r}: unknown kind {kind!r} "
                         f"(known: {', '.join(engine_kinds())}){hint}")
    module, _, factory = ENGINE_KINDS[kind].partition(":")
    return getattr(import_module(module), factory)(merged)


def _pick(spec: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: spec[k] for k in keys if k in spec}


def local_engine(spec: dict[str, Any]) -> Engine:
    from globe.engines.local import LocalEngine

    path = spec.get("model") or spec.get("model_path")
    if not path:
        raise ValueError(f"engine spec {spec.get('name', '')!r}: kind 'local' needs `model` (a model directory)")
    return LocalEngine(path, **_pick(spec, "device", "batch_size", "seed", "dtype", "name"))


def openai_engine(spec: dict[str, Any]) -> Engine:
    from globe.engines.openai_compat import OpenAIEngine

    keys = ("base_url", "model", "api_key", "api_key_env", "concurrency", "timeout_s", "retries", "backoff_s")
    return OpenAIEngine(**_pick(spec, *keys, "max_backoff_s", "image_format", "headers", "name"))
