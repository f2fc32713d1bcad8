"""Does the reasoning support the answer? The one definition, for evaluation, rewards and serving.

GLOBE's promise is recognition *through* reasoning: the `<think>` text reads cues and argues for a
place, and the answer names that place. A right answer whose reasoning argues for another city is
right for the wrong reason. Outcome-only GRPO is known to decouple the two (DESIGN.md §9), so the
platform measures it on every evaluation, can pay for it in training (`globe.rewards.consistency`)
and flags it on every served answer.

Per answer (`judge`):

- **conclusion**: the place the reasoning concludes, read from `<think>` alone
  (`globe.answer.conclusion`): a city with its coordinates, only a country, or none.
- **consistent** (True/False; None when the reasoning concludes no place or the answer names
  none): the answer names the place the reasoning concludes. A city conclusion is supported when
  the answer names no other country and either the answered city is the same city (the scorer's
  alias- and gazetteer-aware `city_match`) or the answer is located (`globe.scorer.locate`, the
  headline protocol) within `RADIUS_KM` of the reasoning's city; an answer naming no city is compared at the country level. A
  country-only conclusion is supported when the answered country is that country.
- **wrong reason** (`right_for_wrong_reason`): the answer is right (within 25 km of the truth)
  and the reasoning concludes another place (consistent is False). A reasoning that concludes
  nothing is counted apart (`no_conclusion`), never as support.

Per row with known cues (`cue_grounding`): of the cue phrases the reasoning names, the share that
are really in the image (precision), and of the cues in the image, the share the reasoning names
(recall). For GeoScenes both are exact: the renderer recorded what it drew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from globe.answer import Answer
from globe.answer.conclusion import Conclusion, reasoning_conclusion
from globe.scorer import Location, city_match, country_match, locate

RADIUS_KM = 25.0  # the paper's "city" threshold: the answer and the reasoning name the same city


@dataclass(frozen=True, slots=True)
class Support:
    """Whether one answer's reasoning supports it (see the module doc)."""

    conclusion: Conclusion | None
    consistent: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {"consistent": self.consistent,
                "reasoning_place": None if self.conclusion is None else self.conclusion.to_dict()}


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from globe.geo import haversine_km

    return float(haversine_km(lat1, lon1, lat2, lon2))


def _other_country(answered: str | None, concluded_code: str | None) -> bool:
    """The answer names a country, known to the gazetteer, other than the one the reasoning
    concludes. An unknown country name decides nothing (the city and the distance still do)."""
    from globe.geo import normalize_country

    code = normalize_country(answered) if answered else None
    return code is not None and concluded_code is not None and code != concluded_code


def supports(conclusion: Conclusion | None, answer: Answer, where: Location | None = None) -> bool | None:
    """True when `answer` names the place `conclusion` argues for (module doc); None when either
    names no place. `where` is the answer's location when the caller has it already."""
    if conclusion is None or not (answer.city or answer.country or answer.has_coordinates):
        return None
    if conclusion.level == "city" and answer.city:
        if _other_country(answer.country, conclusion.country_code):
            return False  # "Saint Petersburg, Kenya" is not the reasoning's Saint Petersburg, Russia
        if city_match(answer.city, conclusion.city, conclusion.country, True, True):
            return True
        where = where if where is not None else locate(answer)
        if conclusion.lat is not None and where.found and where.resolution in ("coordinates", "city", "landmark"):
            return _km(conclusion.lat, conclusion.lon, where.lat, where.lon) <= RADIUS_KM
        return False
    if not answer.country:  # coordinates alone: where they fall
        where = where if where is not None else locate(answer)
        return bool(where.country_code) and where.country_code == conclusion.country_code
    if conclusion.country and country_match(answer.country, conclusion.country):
        return True
    return conclusion.country_code is not None and country_match(answer.country, conclusion.country_code)


def judge(answer: Answer, where: Location | None = None) -> Support:
    """The reasoning's conclusion and whether it supports the answer (module doc)."""
    conclusion = reasoning_conclusion(answer.think)
    return Support(conclusion, supports(conclusion, answer, where))


def wrong_reason(consistent: bool | None, distance_km: float | None) -> bool:
    """Right (within 25 km of the truth) while the reasoning concludes elsewhere."""
    return consistent is False and distance_km is not None and math.isfinite(distance_km) and distance_km <= 25.0


def cue_grounding(think: str | None, entities: Sequence[str] | None) -> tuple[float | None, float | None]:
    """(precision, recall) of the cues `think` names against the cues in the image, `entities`.

    Precision is None when the reasoning names no cue; recall is None when the image has none.

    >>> cue_grounding("A red-white flag band and a dome landmark.", ["red-white flag band", "arch landmark"])
    (0.5, 0.5)
    """
    from globe.data.grounding_check import named_cues

    if entities is None:
        return None, None
    named = named_cues(think)
    drawn = {e.lower().strip() for e in entities}
    hits = sum(1 for cue in named if cue in drawn)
    return (hits / len(named) if named else None), (hits / len(drawn) if drawn else None)
