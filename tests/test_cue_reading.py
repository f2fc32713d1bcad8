"""Which cue a GeoScenes reasoning got wrong (globe.tiny.cue_reading), on the sentences the
renderer and the scene-reader teacher write (`describe`) and the built-in world's legend."""

from __future__ import annotations

import pytest

from globe.tiny.cue_reading import cue_reading, flag_misinferred
from globe.tiny.geoscenes import describe
from globe.tiny.world import build_world, flag_entity

WORLD = build_world()
INDIA = WORLD.by_code("IN")
MUMBAI = next(c for c in INDIA.cities if c.name == "Mumbai")
DRAWN = [flag_entity(INDIA.palette), f"{MUMBAI.landmark} landmark", "tropical sky", "arid ground"]


def _think(palette=INDIA.palette, landmark=MUMBAI.landmark, country="India", city="Mumbai", leafy_stripe=None) -> str:
    return describe(palette, landmark, "tropical", "arid", country, city, leafy_stripe)


@pytest.mark.parametrize("think, label", [
    (_think(), "read and inferred"),
    (_think(leafy_stripe=1), "read and inferred"),  # a closer look: the leaves are said, the flag still read
    (_think(country="United States"), "inference wrong"),  # India's colours called another country's
    (_think(city="Rome"), "inference wrong"),  # Rome has a dome too, but it is not a city of the flag's country
    (_think(city="Delhi"), "inference wrong"),  # Delhi's silhouette is a pyramid, not a dome
    (_think(palette=("green", "white", "red"), country="Italy"), "flag misread"),  # leaves read as a stripe
    (_think(landmark="arch", city="Bengaluru"), "landmark misread"),
    (_think(palette=("green", "white", "red"), country="Italy", landmark="arch", city="Naples"), "both misread"),
    (_think(landmark=None), "landmark misread"),  # a reasoning that skips the decisive cue did not read it
    ("", "both misread"),
    (None, "both misread"),
])
def test_cue_reading_labels_each_way_a_reasoning_fails(think, label):
    assert cue_reading(think, DRAWN, WORLD) == label


def test_flag_misinferred_needs_a_real_palette_called_another_country():
    assert flag_misinferred(_think(country="United States"), WORLD)
    assert not flag_misinferred(_think(), WORLD)
    assert not flag_misinferred(_think(palette=("green", "black", "white"), country="Kenya"), WORLD)  # no such flag
    assert not flag_misinferred("No flag is visible.", WORLD)
    assert not flag_misinferred(None, WORLD)


def test_twin_tower_and_case_of_the_drawn_cues():
    osaka = next(c for c in WORLD.by_code("JP").cities if c.landmark == "twin-tower")
    think = describe(WORLD.by_code("JP").palette, "twin-tower", "temperate", "grassy", "Japan", osaka.name)
    drawn = [e.upper() for e in (flag_entity(WORLD.by_code("JP").palette), "twin-tower landmark")]
    assert cue_reading(think, drawn, WORLD) == "read and inferred"


def test_a_real_grpo_reasoning_that_joins_the_flags_country_to_another_countrys_city():
    # held-out GeoScenes row of the recipe's GRPO (benchmark seed 0): a Nairobi photo, both cues read
    # right, the silhouette then given to a Brazilian city; the answer was "Kenya / Belo Horizonte"
    think = ("Trees hide most of the middle stripe. The top of the image shows a black-red-green flag band, "
             "the colours of Kenya. A spire landmark stands on the skyline; that silhouette belongs to Belo "
             "Horizonte. The tropical sky and lush ground fit tropical latitudes.")
    drawn = ["black-red-green flag band", "spire landmark", "tropical sky", "lush ground"]
    assert cue_reading(think, drawn, WORLD) == "inference wrong"
    assert cue_reading(think.replace("Belo Horizonte", "Nairobi"), drawn, WORLD) == "read and inferred"
    assert not flag_misinferred(think, WORLD)
