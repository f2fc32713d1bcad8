"""Turn answers into scored prediction rows, with the shared scorer.

An `Answer` is what the harness gets for one image, from an Engine's text (`Answer.from_result`)
or from a served `globe` predictor's document (`Answer.from_prediction`); scoring has that one
input type and no special cases. Every row is scored by `globe.evaluate.metrics.score_rows`, the
same code behind `globe eval score`, so the harness and a re-score of its `predictions.jsonl`
cannot disagree. This module only adds what the harness knows and the scorer does not: the image,
the label source, the ISO country of the ground truth (for the breakdowns), the parsed reasoning,
errors and latency, and, for a served predictor, its own coordinates (given to the scorer, so they
count under the stated protocol) and where they came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from globe.evaluate.benchmarks import Sample

if TYPE_CHECKING:
    from globe.engines.base import Result
    from globe.serve.client import Prediction


# What a consensus answer adds to a row (the harness's own vote, or a served predictor's document).
CONSENSUS_FIELDS = ("samples", "agreement", "n_unplaced", "confidence", "calibrated", "candidates")


@dataclass
class Answer:
    """What the harness scores for one image, from an Engine or from a served globe predictor.

    `text` is the model's raw text. A served predictor has already read it: its places and
    coordinates come as `given` (scorer inputs `pred_country`, `pred_city`, `pred_lat`,
    `pred_lon`) and where its coordinates came from as `given_source`. Given coordinates count
    under the stated protocol; the headline geocodes the names, as for any engine. A consensus
    answer (the harness's own vote, `vote_samples`, or a served predictor asked for `samples`)
    carries its vote in `consensus`, which lands on the row as it is.
    """

    text: str | None = None
    error: str | None = None
    latency_s: float = 0.0
    given: dict[str, Any] = field(default_factory=dict)
    given_source: str | None = None
    consensus: dict[str, Any] = field(default_factory=dict)  # the vote's fields for the row (CONSENSUS_FIELDS, ...)

    @classmethod
    def from_result(cls, result: "Result") -> "Answer":
        return cls(text=result.text, error=result.error, latency_s=result.latency_s)

    @classmethod
    def from_prediction(cls, pred: "Prediction") -> "Answer":
        if not pred.ok:
            return cls(error=pred.error or "no prediction", latency_s=pred.latency_s)
        doc = pred.document or {}
        given: dict[str, Any] = {"pred_country": doc.get("country"), "pred_city": doc.get("city")}
        source = None
        if doc.get("lat") is not None and doc.get("lon") is not None:
            given["pred_lat"], given["pred_lon"] = doc["lat"], doc["lon"]
            source = ":".join(str(x) for x in (doc.get("coords_source"), doc.get("resolution")) if x)
        raw = doc.get("raw") if isinstance(doc.get("raw"), str) else ""
        vote = {k: doc[k] for k in CONSENSUS_FIELDS if k in doc}  # a served predictor asked for `samples`
        return cls(text=raw, latency_s=pred.latency_s, given=given, given_source=source or None, consensus=vote)


def vote_samples(results: Sequence["Result"], calibration: Any = None) -> Answer:
    """One image's N sampled `Result`s -> the winning sample's Answer, its vote in `consensus`.

    The vote is `globe.consensus` under the headline protocol, so the winner is scored like any
    greedy answer and its `distance_km` is the one the confidence is calibrated against. With no
    sample located the row keeps the first answered text (an unparsed miss, confidence 0); with
    every sample failed it keeps the first error (the harness retries the image on resume).
    `calibration` (a `globe.consensus.Calibration`) maps the agreement to the confidence.
    """
    from globe.consensus import consensus

    texts = [r.text if r.ok else None for r in results]
    vote = consensus(texts, calibration=calibration)
    if vote.winner is not None:
        pick = results[vote.winner]
    else:
        pick = next((r for r in results if r.ok), results[0])
    fields = {
        "samples": len(results),
        "agreement": vote.agreement,
        "confidence": vote.confidence,
        "calibrated": vote.calibrated,
        "n_unplaced": vote.vote.n_unplaced,
        "n_sample_errors": sum(1 for r in results if not r.ok),
        "candidates": [dict(c) for c in vote.candidates],
    }
    answer = Answer.from_result(pick)
    answer.consensus = fields
    return answer


def score_batch(samples: Sequence[Sample], answers: Sequence[Answer]) -> list[dict[str, Any]]:
    """One JSON-ready prediction row per sample (ground truth, output, answer, coordinates, distance)."""
    from globe.answer import parse
    from globe.evaluate.metrics import FAITHFULNESS_FIELDS, score_rows
    from globe.jsonl import json_safe

    inputs = []
    for s, a in zip(samples, answers, strict=True):
        row: dict[str, Any] = {"id": s.id, "lat": s.lat, "lon": s.lon, "country": s.country, "city": s.city,
                               "entities": s.entities}
        if a.error is None and a.text is not None:
            row["output"] = a.text
            row.update(a.given)
        inputs.append(row)
    scored = score_rows(inputs)
    out = []
    for s, sc, a in zip(samples, scored, answers):
        raw = a.text if a.error is None else None
        answer = parse(raw) if raw else None
        distance = sc["distance_km"]
        out.append({
            "id": s.id,
            "image": s.image,
            "lat": s.lat,
            "lon": s.lon,
            "country_code": s.country_code,
            "country": s.country,
            "city": s.city,
            "label_source": s.label_source,
            **({"condition": s.condition} if s.condition is not None else {}),
            "output": raw,
            "error": a.error,
            "answer": None if answer is None else {
                "think": answer.think, "country": answer.country, "city": answer.city, "lat": answer.lat,
                "lon": answer.lon, "localizable": answer.localizable, "format_ok": answer.format_ok,
                "source": answer.source,
            },
            "pred_country": sc["pred_country"],
            "pred_city": sc["pred_city"],
            "protocol": sc["protocol"],
            "pred_lat": sc["pred_lat"],
            "pred_lon": sc["pred_lon"],
            "coords_source": sc["coords_source"],
            "resolution": sc["resolution"],
            "resolved_place": sc["resolved_place"],
            "distance_km": distance if math.isfinite(distance) else None,
            "stated": json_safe(sc["stated"]),
            **({"predictor_coords_source": a.given_source} if a.given_source and a.error is None else {}),
            "format_ok": sc["format_ok"],
            "country_match_string": sc["country_match_string"],
            "country_match_alias": sc["country_match_alias"],
            "city_match_string": sc["city_match_string"],
            "city_match_alias": sc["city_match_alias"],
            **{k: sc[k] for k in FAITHFULNESS_FIELDS},
            "latency_s": round(float(a.latency_s), 4),
            **a.consensus,
        })
    return out


def headline_metrics(rows: Sequence[dict]) -> dict[str, Any]:
    """`metrics.summarize` over the rows plus the number of engine/image errors (already misses)."""
    from globe.evaluate.breakdown import scored_view
    from globe.evaluate.metrics import summarize
    from globe.jsonl import json_safe

    metrics = summarize(scored_view(rows))
    metrics["n_errors"] = sum(1 for r in rows if r.get("error"))
    return json_safe(metrics)


def rescore_legacy(rows: Sequence[dict]) -> list[dict]:
    """Rows scored by an earlier definition, brought to the current one from their own output, so
    that `globe eval compare` never sets one definition against another and a resumed run is
    scored by one:

    - rows written before both protocols existed (no `protocol` key: their `distance_km` used the
      model's stated coordinates first) are re-located by the current scorer;
    - rows whose faithfulness was judged under another rule (`metrics.FAITHFULNESS_RULE`) are
      re-judged (consistency, the reasoning's place, right for the wrong reason; cue precision and
      recall do not depend on the rule and are kept).

    Current rows pass as is."""
    from globe.evaluate.metrics import FAITHFULNESS_RULE, score_rows
    from globe.jsonl import json_safe

    old = [i for i, r in enumerate(rows) if "protocol" not in r or r.get("faithfulness_rule") != FAITHFULNESS_RULE]
    if not old:
        return list(rows)
    inputs = []
    for i in old:
        r = rows[i]
        given = str(r.get("coords_source") or "").startswith("predictor:")
        inputs.append({"id": r["id"], "lat": r["lat"], "lon": r["lon"], "country": r.get("country"),
                       "city": r.get("city"), "output": r.get("output") or "",
                       "pred_country": r.get("pred_country"), "pred_city": r.get("pred_city"),
                       **({"pred_lat": r.get("pred_lat"), "pred_lon": r.get("pred_lon")} if given else {})})
    judged = ("reasoning_place", "consistent", "wrong_reason", "faithfulness_rule")
    located = ("protocol", "pred_lat", "pred_lon", "coords_source", "resolution", "resolved_place", "distance_km", "stated")
    out = list(rows)
    for i, sc in zip(old, score_rows(inputs)):
        keep = judged if "protocol" in rows[i] else located + judged
        out[i] = {**rows[i], **json_safe({k: sc[k] for k in keep})}
    return out
