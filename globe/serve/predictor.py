"""The geo-reasoning predictor: image in, reasoning + country + city + coordinates out.

This is the serving half of the KServe split described in DESIGN.md: the engine produces tokens
(in-process, or a vLLM / KServe Hugging Face runtime behind `OpenAIEngine`), and the predictor does
everything around them — the shared prompt, the shared parser (`globe.answer.parse`), country
normalisation, and coordinates. Coordinates come from the model's own `lat:`/`lon:` lines when it
wrote valid ones (`coords_source: "model"`), else from geocoding its city and country offline
(`"geocoded"`); when neither works they are null rather than invented.

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


class GenerationFailed(InferenceError):
    """The engine could not produce text for an image (timeout, upstream error): HTTP 500."""


@dataclass
class GeoPredictor:
    engine: Engine
    sampling: Sampling
    judge: Engine | None = None

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
    """Parse model text into the response document every client sees."""
    from globe import geo
    from globe.answer import parse

    ans = parse(text)
    code = geo.normalize_country(ans.country) if ans.country else None
    country = geo.country_name(code) if code else ans.country
    lat, lon, source, fallback = None, None, None, None
    if _valid_coords(ans.lat, ans.lon):
        lat, lon, source = float(ans.lat), float(ans.lon), "model"
    elif ans.city or code:
        place = geo.geocode(ans.city, code or ans.country)
        if place is not None:
            lat, lon, source, fallback = place.lat, place.lon, "geocoded", place.approximate
            code = code or place.country_code
            country = country or place.country
    return {
        "id": request_id,
        "reasoning": ans.think,
        "country": country,
        "country_code": code,
        "city": ans.city,
        "lat": lat,
        "lon": lon,
        "coords_source": source,
        "geocode_fallback": fallback,
        "format_ok": ans.format_ok,
        "raw": text,
    }


def _valid_coords(lat: Any, lon: Any) -> bool:
    try:
        return lat is not None and lon is not None and -90 <= float(lat) <= 90 and -180 <= float(lon) <= 180
    except (TypeError, ValueError):
        return False
