"""The geo-reasoning predictor: image in, reasoning + country + city + coordinates out.

This is the serving half of the KServe split (docs/architecture.md, "Real parts and how they start"): the engine produces tokens
(in-process, or a vLLM / KServe Hugging Face runtime behind `OpenAIEngine`), and the predictor does
everything around them — the shared prompt, the shared parser (`globe.answer.parse`), country
normalisation, and coordinates. Coordinates come from the model's own `lat:`/`lon:` lines when it
wrote valid ones (`coords_source: "stated"`), else from geocoding the place it names offline
(`"geocoded"`, with `resolution` saying how precisely); when neither works they are null rather
than invented. The scorer that decides this (`globe.scorer`) is the one evaluation uses.

`GeoPredictor` is used both by the KServe model (via the dynamic batcher) and by `globe predict`,
so a file predicted locally and the same file sent over HTTP give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from kserve.errors import InferenceError

from globe.engines.base import Engine, Request, Sampling
from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

if TYPE_CHECKING:
    from PIL.Image import Image

    from globe.images import Fit


class GenerationFailed(InferenceError):
    """The engine could not produce text for an image (timeout, upstream error): HTTP 500."""


@dataclass
class GeoPredictor:
    engine: Engine
    sampling: Sampling
    judge: Engine | None = None

    @property
    def fit(self) -> "Fit | None":
        """The size the engine's processor resizes an upright image to (`LocalEngine.input_size`), or
        None. Serving and `globe predict` decode straight to it, as the evaluation harness does, so
        the model gets identical pixels from all three (and the processor's resize is a no-op)."""
        return getattr(self.engine, "input_size", None)

    def predict(self, images: Sequence["Image"], ids: Sequence[str] | None = None) -> list[dict[str, Any] | Exception]:
        """One prediction dict (or the exception for that image) per image, in order."""
        ids = list(ids) if ids is not None else [""] * len(images)
        requests = [Request(image=img, prompt=GEO_PROMPT, system=GEO_SYSTEM, id=i) for img, i in zip(images, ids)]
        results = self.engine.generate(requests, self.sampling)
        out: list[dict[str, Any] | Exception] = []
        for req, res in zip(requests, results):
            if not res.ok:
                out.append(GenerationFailed(f"generation failed for image {req.id or '#'}: {res.error}"))
            else:
                out.append(answer_to_prediction(res.text or "", req.id))
        if self.judge is not None:
            self._add_localizability(images, out)
        return out

    def _add_localizability(self, images: Sequence["Image"], preds: list[dict[str, Any] | Exception]) -> None:
        todo = [(img, p) for img, p in zip(images, preds) if isinstance(p, dict)]
        if not todo:
            return
        assert self.judge is not None
        verdicts = self.judge.judge([Request(image=img, prompt=localizability_prompt(p["reasoning"])) for img, p in todo])
        for (_, pred), verdict in zip(todo, verdicts):
            pred["localizability"] = verdict.p_yes if verdict.ok else None
            if not verdict.ok:
                pred["localizability_error"] = verdict.error


def answer_to_prediction(text: str, request_id: str = "") -> dict[str, Any]:
    """Parse model text into the response document every client sees.

    Coordinates come from the one scorer (`globe.scorer.locate`, "stated" protocol): the model's
    own lat/lon when valid (`coords_source` "stated"), else its place names geocoded offline
    ("geocoded"), with `resolution` saying how precisely (city, landmark, admin1,
    capital-fallback, centroid-fallback; "coordinates" for stated ones); null when neither works.
    """
    from globe import geo
    from globe.answer import parse
    from globe.scorer import locate

    ans = parse(text)
    code = geo.normalize_country(ans.country) if ans.country else None
    country = geo.country_name(code) if code else ans.country
    where = locate(ans, "stated")
    if where.found and where.source == "geocoded":
        code = code or where.country_code
        country = country or (geo.country_name(code) if code else None)
    return {
        "id": request_id,
        "reasoning": ans.think,
        "country": country,
        "country_code": code,
        "city": ans.city,
        "lat": where.lat,
        "lon": where.lon,
        "coords_source": where.source if where.found else None,
        "resolution": where.resolution if where.found else None,
        "format_ok": ans.format_ok,
        "raw": text,
    }
