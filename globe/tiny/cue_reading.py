"""Which cue a GeoScenes reasoning got wrong: the reading (a cue that was not drawn) or the inference.

Consistency says *that* a reasoning stopped supporting its answer; on GeoScenes the renderer knows
why. Each reasoning names a flag ("a black-red-yellow flag band, the colours of Germany") and a
landmark ("a dome landmark …; that silhouette belongs to Berlin"), the sentences `describe` writes.
Against the cues the image really shows (`record.entities`) and the world's legend (`world.json`
beside the dataset), a reasoning has

- **read** a cue when the cue it names was drawn (a hidden flag read from the leaves is a misread);
- **inferred** from its read cues when the places it names are the legend's: the palette's country,
  and a city of that country whose silhouette that is (six shapes are shared by 36 cities; only the
  flag's country makes the silhouette one city). "An orange-white-green flag band, the colours of
  United States" is read and misinferred; so is India's flag with a dome "that belongs to Rome".

On GeoScenes a reasoning that reads both cues and infers both concludes the true city, so "read
and inferred" is the tiny world's "right for the right reason", cue by cue. `benchmarks/
reasoning_failures.py` counts a benchmark's held-out rows, all and unsupported, by this label
(docs/train.md, "What each unsupported reasoning got wrong").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from globe.tiny.world import Country, World

# the two cue sentences of globe.tiny.geoscenes.describe, as the models learned to write them
FLAG_SENTENCE = re.compile(r"\b([a-z]+(?:-[a-z]+)+) flag band, the colours of ([^.]+?)\.")
LANDMARK_SENTENCE = re.compile(r"\b([a-z]+(?:-[a-z]+)*) landmark stands on the skyline; that silhouette belongs to ([^.]+?)\.")

LABELS = ("read and inferred", "inference wrong", "flag misread", "landmark misread", "both misread")


def cue_reading(think: str | None, entities: Sequence[str], world: World) -> str:
    """One of `LABELS` for a reasoning about a GeoScenes image with `entities` drawn.

    A cue the reasoning does not name at all counts as misread: it did not read what was there.

    >>> from globe.tiny.world import build_world
    >>> w = build_world(["DE", "FR"])
    >>> drawn = ["black-red-yellow flag band", "dome landmark", "temperate sky", "grassy ground"]
    >>> berlin = next(c.name for c in w.by_code("DE").cities if c.landmark == "dome")
    >>> cue_reading(f"A black-red-yellow flag band, the colours of Germany. A dome landmark stands "
    ...             f"on the skyline; that silhouette belongs to {berlin}.", drawn, w)
    'read and inferred'
    >>> cue_reading(f"A black-red-yellow flag band, the colours of France. A dome landmark stands "
    ...             f"on the skyline; that silhouette belongs to {berlin}.", drawn, w)
    'inference wrong'
    """
    text = think or ""
    drawn = {e.casefold().strip() for e in entities}
    flag, landmark = FLAG_SENTENCE.search(text), LANDMARK_SENTENCE.search(text)
    flag_read = flag is not None and f"{flag.group(1)} flag band" in drawn
    landmark_read = landmark is not None and f"{landmark.group(1)} landmark" in drawn
    if not (flag_read or landmark_read):
        return "both misread"
    if not flag_read:
        return "flag misread"
    if not landmark_read:
        return "landmark misread"
    return "read and inferred" if flag and landmark and _inferred(world, flag, landmark) else "inference wrong"


def _inferred(world: World, flag: re.Match[str], landmark: re.Match[str]) -> bool:
    """The palette's country is the one named, and the city named is that country's city with the
    silhouette named."""
    country = _owner(world, flag)
    if country is None or country.name != flag.group(2).strip():
        return False
    shape, city = landmark.group(1), landmark.group(2).strip()
    return any(c.name == city and c.landmark == shape for c in country.cities)


def flag_misinferred(think: str | None, world: World) -> bool:
    """The reasoning names a real palette of the world and then another country than its owner
    ("an orange-white-green flag band, the colours of United States"), whatever the image showed."""
    flag = FLAG_SENTENCE.search(think or "")
    if flag is None:
        return False
    owner = _owner(world, flag)
    return owner is not None and owner.name != flag.group(2).strip()


def _owner(world: World, flag: re.Match[str]) -> Country | None:
    """The country whose palette the flag sentence names (None: a palette no country has)."""
    return world.by_palette(tuple(flag.group(1).split("-")))
