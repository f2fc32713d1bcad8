"""`globe predict`: the server's answer for local files, with no server in between.

It uses the same input checks (`load_image`), the same engine construction and the same
predictor (`build_predictor`) as the KServe model, so `globe predict photo.jpg` and a V1 request
with the same photo return the same JSON document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from globe.config import ServeGroup


def predict_files(paths: Sequence[str | Path], model: str, cfg: ServeGroup, samples: int = 1,
                  explicit: dict[str, Any] | None = None, settings_source: str = "params") -> list[dict[str, Any]]:
    """The server's answer documents for local image files; `samples` > 1 asks for consensus
    answers, bounded by `serve.max_samples` like a request. A model that carries its serving
    settings is run with them, `explicit` on top, as the server would (globe.serve.settings)."""
    import logging

    from globe.serve.inputs import check_samples, load_image
    from globe.serve.model import build_engines, build_predictor, limits_from
    from globe.serve.model_source import resolve_model
    from globe.serve.settings import SETTINGS_FILE, settings_for

    for attempt in range(2):  # checked before the weights load, so a bad file fails in a second; again under the model's settings
        limits = limits_from(cfg)
        check_samples(samples, "--samples", limits)
        for path in map(Path, paths):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file")
            load_image(path.read_bytes(), str(path), limits)
        if attempt or cfg.engine != "local":
            break
        model = str(resolve_model(model))
        cfg, settings_source = settings_for(model, cfg, explicit or {}, settings_source)
        if not settings_source.startswith("registered"):
            break  # the same settings: checked already
    if cfg.engine == "local" and not settings_source.startswith("registered"):
        logging.getLogger("globe.serve").warning("serving settings: the model carries none (%s): %s apply",
                                                 SETTINGS_FILE, settings_source)
    engine, judge = build_engines(cfg, model)
    predictor = build_predictor(cfg, engine, judge)
    images = [load_image(Path(p).read_bytes(), str(p), limits, fit=predictor.fit) for p in paths]  # as the server decodes
    out: list[dict[str, Any]] = []
    for start in range(0, len(images), cfg.max_batch_size):
        chunk = list(map(Path, paths))[start : start + cfg.max_batch_size]
        preds = predictor.predict(images[start : start + cfg.max_batch_size], [str(p) for p in chunk], [samples] * len(chunk))
        for pred in preds:
            if isinstance(pred, Exception):
                raise pred
            out.append(pred)
    return out
