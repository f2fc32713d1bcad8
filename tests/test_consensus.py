"""Consensus voting on the globe (globe.consensus) and the calibration of its confidence
(globe.evaluate.calibration): clustering across the antimeridian and the poles, ties, unplaced
samples, the confidence's range, ECE and selective accuracy."""

from __future__ import annotations

import random

import pytest

from globe.consensus import consensus, vote
from globe.evaluate.calibration import calibration, expected_calibration_error, reliability, selective_accuracy
from globe.geo import haversine_km


def answer(city: str, country: str, lat: float | None = None, lon: float | None = None) -> str:
    coords = f"\nlat: {lat}\nlon: {lon}" if lat is not None else ""
    return f"<think>cues</think><answer>country: {country}\ncity: {city}{coords}</answer>"


# ----------------------------------------------------------------------------- clustering


def test_samples_either_side_of_the_antimeridian_are_one_cluster():
    # 0.1 degrees of longitude apart across 180 (about 11 km at the equator); raw differences say 359.9
    points = [(-17.0, 179.95), (-17.0, -179.95), (-17.02, 179.99), (-17.0, 10.0)]
    v = vote(points)
    assert v.winner.members == (0, 1, 2) and v.confidence == 0.75
    assert v.winner.radius_km < 25 and [c.members for c in v.clusters] == [(0, 1, 2), (3,)]


def test_samples_near_a_pole_at_any_longitude_are_one_cluster():
    north = [(89.95, 0.0), (89.95, 180.0), (89.95, -90.0), (89.95, 45.0)]  # all within ~11 km of the pole
    v = vote(north + [(-89.95, 0.0)])
    assert v.winner.members == (0, 1, 2, 3) and v.confidence == 0.8
    assert [c.members for c in v.clusters][1] == (4,)  # the south pole is 20,000 km away


def test_the_answer_is_a_real_sample_the_medoid_of_the_largest_cluster():
    paris = [(48.8566, 2.3522), (48.86, 2.34), (48.85, 2.36)]
    v = vote([(41.9, 12.5), *paris, (41.91, 12.49)])
    assert v.winner.members == (1, 2, 3) and v.winner.medoid == 1  # the middle of the three
    assert v.clusters[1].members == (0, 4) and v.clusters[1].share == 0.4


def test_balls_do_not_chain_along_a_line_of_samples():
    """Samples every 15 km along a meridian: single linkage would merge all ten into one 135 km
    'cluster'; a ball keeps every member within the radius of its centre."""
    points = [(40.0 + k * 15 / 111.2, 3.0) for k in range(10)]
    v = vote(points, radius_km=25)
    assert max(len(c.members) for c in v.clusters) == 3 and sum(len(c.members) for c in v.clusters) == 10
    for c in v.clusters:
        assert max(haversine_km(*points[a], *points[b]) for a in c.members for b in c.members) <= 50


def test_ties_go_to_the_tighter_cluster_then_to_the_earliest_sample():
    loose = [(10.0, 10.0), (10.15, 10.0)]  # ~17 km apart
    tight = [(20.0, 20.0), (20.01, 20.0)]  # ~1 km apart
    assert vote(loose + tight).winner.members == (2, 3)
    assert vote(tight + loose).winner.members == (0, 1)
    same_a, same_b = [(10.0, 10.0), (10.0, 10.0)], [(30.0, 30.0), (30.0, 30.0)]
    assert vote(same_a + same_b).winner.members == (0, 1)  # an exact tie: the cluster holding sample 0
    assert vote([same_b[0], same_a[0], same_b[1], same_a[1]]).winner.members == (0, 2)
    split = vote([(k * 10.0, 0.0) for k in range(8)])  # an 8-way split: each its own cluster, sample 0 wins
    assert split.winner.members == (0,) and split.confidence == 0.125 and len(split.clusters) == 8


def test_all_samples_unplaced_give_no_answer_and_zero_confidence():
    v = vote([None] * 5)
    assert v.winner is None and v.confidence == 0.0 and v.n_unplaced == 5 and v.clusters == ()
    assert vote([]).confidence == 0.0
    c = consensus([None, "I cannot tell where this is.", "", "<answer>country: Narnia</answer>"])
    assert c.winner is None and c.confidence == 0.0 and c.candidates == () and c.vote.n_unplaced == 4


def test_radius_must_be_positive():
    with pytest.raises(ValueError, match="radius_km must be > 0"):
        vote([(0.0, 0.0)], radius_km=0)


# ----------------------------------------------------------------------------- confidence


@pytest.mark.parametrize("seed", range(20))
def test_confidence_is_the_winners_share_of_all_samples_in_0_1(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 16)
    points = [None if rng.random() < 0.3 else (rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(n)]
    points += [points[0]] * rng.randint(0, 3)  # some agreement
    v = vote(points)
    assert 0.0 <= v.confidence <= 1.0
    assert v.confidence == (len(v.winner.members) / len(points) if v.winner else 0.0)
    assert sorted(i for c in v.clusters for i in c.members) == [i for i, p in enumerate(points) if p is not None]
    assert all(len(a.members) >= len(b.members) for a, b in zip(v.clusters, v.clusters[1:]))  # best first
    assert abs(sum(c.share for c in v.clusters) + v.n_unplaced / len(points) - 1.0) < 1e-9


def test_unplaced_samples_count_against_the_confidence():
    paris = answer("Paris", "France")
    assert consensus([paris] * 4).confidence == 1.0
    assert consensus([paris] * 3 + [None]).confidence == 0.75  # a failed generation
    assert consensus([paris] * 3 + ["no idea"] * 5).confidence == 3 / 8  # unparseable answers
    c = consensus([paris] * 3 + ["no idea"] * 5)
    assert c.winner == 0 and c.vote.n_unplaced == 5 and c.candidates[0]["share"] == 3 / 8


def test_consensus_describes_every_cluster_from_its_medoid():
    texts = [answer("Lyon", "France"), answer("Paris", "France"), answer("Paris", "FR"), "junk", answer("Rome", "Italy")]
    c = consensus(texts)
    assert [(x["city"], x["country"], x["country_code"], x["votes"]) for x in c.candidates] == [
        ("Paris", "France", "FR", 2), ("Lyon", "France", "FR", 1), ("Rome", "Italy", "IT", 1)]
    assert c.winner == 1 and c.candidates[0]["sample"] == 1 and c.candidates[0]["reasoning"] == "cues"
    assert haversine_km(c.candidates[0]["lat"], c.candidates[0]["lon"], 48.8566, 2.3522) < 25


def test_the_protocol_decides_where_a_sample_stands():
    """Names say Paris, stated coordinates say Rome: the headline (names) and the server's
    ("stated") protocols vote on different points, as each scores answers."""
    texts = [answer("Paris", "France", 41.9, 12.5)] * 2 + [answer("Rome", "Italy")] * 3
    names = consensus(texts)
    assert names.candidates[0]["city"] == "Rome" and names.confidence == 0.6  # 3 x Rome beat 2 x Paris
    stated = consensus(texts, protocol="stated")  # the two "Paris" samples stand in Rome
    assert stated.confidence == 1.0 and len(stated.candidates) == 1


# ----------------------------------------------------------------------------- calibration


def test_expected_calibration_error_and_reliability_bins():
    assert expected_calibration_error([0.75] * 4, [True, True, True, False]) == 0.0
    assert expected_calibration_error([1.0, 1.0, 0.5, 0.5], [True, False, True, False]) == pytest.approx(0.25)
    assert expected_calibration_error([0.95] * 10, [False] * 10) == pytest.approx(0.95)
    assert expected_calibration_error([], []) is None
    bins = reliability([0.0, 0.05, 1.0, 0.55], [False, True, True, False])
    assert len(bins) == 10 and [b["n"] for b in bins] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]  # 1.0 lands in the last bin
    assert bins[0]["accuracy"] == 0.5 and bins[1]["accuracy"] is None


def test_selective_accuracy_averages_ties_at_the_cut():
    conf = [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0]
    hit = [True, False, True, True, False, False, False, False]
    curve = {p["coverage"]: p for p in selective_accuracy(conf, hit, (0.25, 0.5, 0.75, 1.0))}
    assert curve[0.25]["accuracy"] == 0.5 and curve[0.5]["accuracy"] == pytest.approx((1 + 2 * 0.5) / 4)
    assert curve[0.75]["accuracy"] == pytest.approx(3 / 6) and curve[1.0]["accuracy"] == 3 / 8
    assert curve[0.5]["min_confidence"] == 0.5
    # the order of tied rows does not move the figure
    order = [2, 0, 5, 3, 1, 4, 7, 6]
    assert selective_accuracy([conf[i] for i in order], [hit[i] for i in order], (0.5,))[0]["accuracy"] == curve[0.5]["accuracy"]


def test_calibration_block_only_for_rows_with_a_confidence():
    assert calibration([{"distance_km": 3.0}, {"distance_km": None}]) is None
    rows = [{"confidence": 1.0, "distance_km": 3.0}, {"confidence": 0.5, "distance_km": 400.0},
            {"confidence": None, "distance_km": None, "error": "HTTP 503"}]  # an errored row: confidence 0
    block = calibration(rows)
    assert block["mean_confidence"] == 0.5 and block["ece"] == pytest.approx((0.0 + 0.5 + 0.0) / 3)
    assert [p["accuracy"] for p in block["selective_accuracy"] if p["coverage"] in (0.3, 1.0)] == [1.0, pytest.approx(1 / 3)]
