"""Grounding checks: are the visual entities a reasoning names really in the image?

The fourth GLOBE filter. A check takes a record and a reasoning and returns which entities the
reasoning names and which of those are present. Two implementations:

- `SceneCueGrounding` for GeoScenes: the generator recorded the cues it drew (`record.entities`),
  so naming is a phrase match against the cue vocabulary and presence is exact.
- `JudgeGrounding` for real photos: a judge Engine (any VLM behind the Engine protocol) first lists
  the visual entities the reasoning relies on, then answers yes/no per entity while looking at the
  image; an entity is present when P(yes) >= 0.5. This is the paper's check with a swappable judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from globe.data.records import Record

# "<colours> flag band", "<shape> landmark", "<band> sky", "<ground> ground"
CUE_RE = re.compile(r"\b([a-z]+(?:-[a-z]+)*) (flag band|landmark|sky|ground)\b")


@dataclass
class Grounding:
    named: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def share(self) -> float:
        return len(self.present) / len(self.named) if self.named else 0.0


class GroundingCheck(Protocol):
    def check(self, record: Record, reasoning: str, image_loader) -> Grounding: ...


def named_cues(reasoning: str | None) -> list[str]:
    """The GeoScenes cue phrases a reasoning names, once each, in order ("red-white flag band", …)."""
    return list(dict.fromkeys(m.group(0) for m in CUE_RE.finditer((reasoning or "").lower())))


class SceneCueGrounding:
    """Exact check for GeoScenes: named cue phrases vs. the cues the generator drew."""

    def check(self, record: Record, reasoning: str, image_loader=None) -> Grounding:
        named = named_cues(reasoning)
        drawn = {e.lower() for e in record.entities}
        return Grounding(named=named, present=[e for e in named if e in drawn])


ENTITY_PROMPT = (
    "Here is a reasoning about where a photo was taken:\n\n{reasoning}\n\n"
    "List the concrete visual entities this reasoning says are visible in the photo (objects, "
    "signs, buildings, vegetation, landscape features), as a comma-separated list of short "
    "phrases. Write only the list."
)
ENTITY_LIST_TOKENS = 96  # a short comma-separated list of entities, not a GLOBE answer (MAX_NEW_TOKENS)
PRESENCE_PROMPT = "Does this image show {entity}? Answer with a single word: yes or no."


def parse_entity_list(text: str, limit: int = 12) -> list[str]:
    """'palm trees, a red bus\\n- minaret' -> ['palm trees', 'red bus', 'minaret']."""
    parts = re.split(r"[,;\n]|\band\b", text or "")
    out: list[str] = []
    for p in parts:
        p = re.sub(r"^\s*(?:[-*•\d.)]+\s*)?(?:an?|the)\s+", "", p.strip(), flags=re.I)
        p = re.sub(r"^[-*•\d.)\s]+", "", p).strip(" .:\"'").lower()
        if p and len(p) <= 60 and p not in out:
            out.append(p)
    return out[:limit]


class JudgeGrounding:
    """Extract entities with `engine.generate`, verify each with `engine.judge` on the image."""

    def __init__(self, engine, max_entities: int = 8):
        self.engine = engine
        self.max_entities = max_entities

    def check(self, record: Record, reasoning: str, image_loader) -> Grounding:
        from globe.engines.base import Request, Sampling

        listed = self.engine.generate([Request(image=None, prompt=ENTITY_PROMPT.format(reasoning=reasoning))], Sampling(max_new_tokens=ENTITY_LIST_TOKENS))[0]
        if not listed.ok:
            return Grounding(error=f"entity extraction failed: {listed.error}")
        named = parse_entity_list(listed.text, self.max_entities)
        if not named:
            return Grounding()
        image = image_loader(record)
        verdicts = self.engine.judge([Request(image=image, prompt=PRESENCE_PROMPT.format(entity=e)) for e in named])
        failed = [v.error for v in verdicts if not v.ok]
        if failed:
            return Grounding(named=named, error=f"presence judgment failed: {failed[0]}")
        return Grounding(named=named, present=[e for e, v in zip(named, verdicts) if v.p_yes >= 0.5])
