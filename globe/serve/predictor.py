"""The geo-reasoning predictor: image in, reasoning + country + city + coordinates out.

This is the serving half of the KServe split (docs/architecture.md, "Real parts and how they start"): the engine produces tokens
(in-process, or a vLLM / KServe Hugging Face runtime behind `OpenAIEngine`), and the predictor does
everything around them — the shared prompt, the shared parser (`globe.answer.parse`), country
normalisation, and coordinates. Coordinates come from the model's own `lat:`/`lon:` lines when it
wrote valid ones (`coords_source: "stated"`), else from geocoding the place it names offline
(`"geocoded"`, with `resolution` saying how precisely); when neither works they are null rather
than invented. The scorer that decides this (`globe.scorer`) is the one evaluation uses. Every
answer says whether its reasoning supports it (`consistent`, with the `reasoning_place` the
reasoning concludes): the same `globe.faithfulness.judge` as evaluation's `consistency` metric;
and lists the visual cues its reasoning names (`named_cues`, `globe.data.grounding_check.named_cues`,
the reader of the grounding filter and the faithfulness metric), so a client can show them.

Asked for `samples` N > 1 (per V1 instance, or a V2 request parameter), the predictor samples N
reasonings and answers with their great-circle consensus (`globe.consensus`): the winning
sample's document plus `agreement` (its cluster's share of the N), `confidence` (the agreement
through `serve.calibration` when one is set for that N) and `candidates` (every cluster:
coordinates, country, city, share, votes, one reasoning).

`GeoPredictor` is used both by the KServe model (via the dynamic batcher) and by `globe predict`,
so a file predicted locally and the same file sent over HTTP give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Sequence

from kserve.errors import InferenceError

from globe.engines.base import Engine, Request, Result, Sampling, generate_samples
from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

if TYPE_CHECKING:
    from PIL.Image import Image

    from globe.consensus import Calibration
    from globe.images import Fit


class GenerationFailed(InferenceError):
    """The engine could not produce text for an image (timeout, upstream error): HTTP 500."""


@dataclass
class GeoPredictor:
    engine: Engine
    sampling: Sampling
    judge: Engine | None = None
    # decoding of consensus answers (serve.sample_temperature / sample_top_p); None = consensus off
    consensus_sampling: Sampling | None = None
    calibration: "Calibration | None" = None  # serve.calibration: agreement -> confidence, for its N

    @property
    def fit(self) -> "Fit | None":
        """The size the engine's processor resizes an upright image to (`LocalEngine.input_size`), or
        None. Serving and `globe predict` decode straight to it, as the evaluation harness does, so
        the model gets identical pixels from all three (and the processor's resize is a no-op)."""
        return getattr(self.engine, "input_size", None)

    def predict(self, images: Sequence["Image"], ids: Sequence[str] | None = None,
                samples: Sequence[int] | None = None) -> list[dict[str, Any] | Exception]:
        """One prediction dict (or the exception for that image) per image, in order.

        `samples[i]` > 1 answers image i with the consensus of that many sampled reasonings
        (`consensus_prediction`); images asking for the same N share one engine call.
        """
        ids = list(ids) if ids is not None else [""] * len(images)
        wanted = list(samples) if samples is not None else [1] * len(images)
        out: list[dict[str, Any] | Exception | None] = [None] * len(images)
        for n in sorted(set(wanted)):
            idx = [i for i, k in enumerate(wanted) if k == n]
            requests = [Request(image=images[i], prompt=GEO_PROMPT, system=GEO_SYSTEM, id=ids[i]) for i in idx]
            if n == 1:
                for i, req, res in zip(idx, requests, self.engine.generate(requests, self.sampling)):
                    out[i] = (answer_to_prediction(res.text or "", req.id) if res.ok else
                              GenerationFailed(f"generation failed for image {req.id or '#'}: {res.error}"))
                continue
            if self.consensus_sampling is None:
                raise ValueError("this predictor has no consensus_sampling; it cannot answer samples > 1")
            groups = generate_samples(self.engine, requests, replace(self.consensus_sampling, n=n))
            for i, req, group in zip(idx, requests, groups):
                out[i] = consensus_prediction(group, req.id, self.calibration)
        assert all(p is not None for p in out)  # every N group answered its images
        done: list[dict[str, Any] | Exception] = out  # type: ignore[assignment]
        if self.judge is not None:
            self._add_localizability(images, done)
        return done

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


def consensus_prediction(results: Sequence[Result], request_id: str = "",
                         calibration: "Calibration | None" = None) -> dict[str, Any] | Exception:
    """The answer document of the winning sample, plus `samples`, `agreement`, `n_unplaced`,
    `confidence`, `calibrated` and `candidates`.

    The vote (`globe.consensus`) places each sample as this server places any answer (the
    "stated" protocol of `answer_to_prediction`), so the winner's `lat`/`lon` are its candidate's.
    `agreement` is the winner's share of the samples and `n_unplaced` how many samples did not
    parse into a place (or failed), so `votes: 1, agreement: 0.25` with `n_unplaced: 3` says that
    three of four samples gave no place rather than three other places; `confidence` is the agreement mapped through
    `calibration` when that was fitted for this many samples (`calibrated: true`), else the
    agreement itself. They say whether the model agrees with itself; the judge's `localizability`
    (when configured) says whether the photo can be placed at all: separate questions, separate
    fields. Failed samples count against the agreement; when all fail the image fails (HTTP 500).
    """
    from globe.consensus import consensus

    texts = [r.text if r.ok else None for r in results]
    if all(t is None for t in texts):
        return GenerationFailed(f"generation failed for image {request_id or '#'}: {results[0].error}")
    vote = consensus(texts, protocol="stated", calibration=calibration)
    pick = vote.winner if vote.winner is not None else next(i for i, t in enumerate(texts) if t is not None)
    doc = answer_to_prediction(texts[pick] or "", request_id)
    doc["samples"] = len(results)
    doc["agreement"] = vote.agreement
    doc["n_unplaced"] = vote.vote.n_unplaced  # samples that failed or did not parse into a place
    doc["confidence"] = vote.confidence
    doc["calibrated"] = vote.calibrated
    doc["candidates"] = [{k: c[k] for k in CANDIDATE_FIELDS} for c in vote.candidates]
    return doc


CANDIDATE_FIELDS = ("lat", "lon", "country", "country_code", "city", "share", "votes", "reasoning")


def answer_to_prediction(text: str, request_id: str = "") -> dict[str, Any]:
    """Parse model text into the response document every client sees.

    Coordinates come from the one scorer (`globe.scorer.locate`, "stated" protocol): the model's
    own lat/lon when valid (`coords_source` "stated"), else its place names geocoded offline
    ("geocoded"), with `resolution` saying how precisely (city, landmark, feature, admin1,
    capital-fallback, centroid-fallback; "coordinates" for stated ones); null when neither works.
    `refused` names the fields the parser refused (a tag, a bare number, a country as the city:
    `globe.answer.refuse`); they are null and `format_ok` is false.
    """
    from globe import geo
    from globe.answer import parse
    from globe.data.grounding_check import named_cues
    from globe.faithfulness import judge
    from globe.scorer import locate

    ans = parse(text)
    support = judge(ans)
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
        "refused": list(ans.refused),  # fields whose value was not a name ("city": "</think>"), now null
        # does the reasoning support the answer (globe.faithfulness; null: it concludes no place)
        "consistent": support.consistent,
        "reasoning_place": None if support.conclusion is None else support.conclusion.to_dict(),
        # the visual cues the reasoning names (the grounding filter's reader), for clients that show them
        "named_cues": named_cues(ans.think),
        "raw": text,
    }
