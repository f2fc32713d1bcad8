"""Consensus voting on the globe (globe.consensus) and the calibration of its confidence
(globe.evaluate.calibration): clustering across the antimeridian and the poles, ties, unplaced
samples, the agreement's and the confidence's range, the fitted calibration, ECE and selective
accuracy."""

from __future__ import annotations

import doctest
import importlib
import json
import random

import pytest

from globe.consensus import Calibration, CalibrationError, consensus, vote
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
    assert v.winner.members == (0, 1, 2) and v.agreement == 0.75
    assert v.winner.radius_km < 25 and [c.members for c in v.clusters] == [(0, 1, 2), (3,)]


def test_samples_near_a_pole_at_any_longitude_are_one_cluster():
    north = [(89.95, 0.0), (89.95, 180.0), (89.95, -90.0), (89.95, 45.0)]  # all within ~11 km of the pole
    v = vote(north + [(-89.95, 0.0)])
    assert v.winner.members == (0, 1, 2, 3) and v.agreement == 0.8
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
    assert split.winner.members == (0,) and split.agreement == 0.125 and len(split.clusters) == 8


def test_all_samples_unplaced_give_no_answer_and_zero_confidence():
    v = vote([None] * 5)
    assert v.winner is None and v.agreement == 0.0 and v.n_unplaced == 5 and v.clusters == ()
    assert vote([]).agreement == 0.0
    c = consensus([None, "I cannot tell where this is.", "", "<answer>country: Narnia</answer>"])
    assert c.winner is None and c.confidence == 0.0 and c.candidates == () and c.vote.n_unplaced == 4


def test_radius_must_be_positive():
    with pytest.raises(ValueError, match="radius_km must be > 0"):
        vote([(0.0, 0.0)], radius_km=0)


# ----------------------------------------------------------------------------- confidence


@pytest.mark.parametrize("seed", range(20))
def test_agreement_is_the_winners_share_of_all_samples_in_0_1(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 16)
    points = [None if rng.random() < 0.3 else (rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(n)]
    points += [points[0]] * rng.randint(0, 3)  # some agreement
    v = vote(points)
    assert 0.0 <= v.agreement <= 1.0
    assert v.agreement == (len(v.winner.members) / len(points) if v.winner else 0.0)
    assert sorted(i for c in v.clusters for i in c.members) == [i for i, p in enumerate(points) if p is not None]
    assert all(len(a.members) >= len(b.members) for a, b in zip(v.clusters, v.clusters[1:]))  # best first
    assert abs(sum(c.share for c in v.clusters) + v.n_unplaced / len(points) - 1.0) < 1e-9


def test_unplaced_samples_count_against_the_agreement_and_so_the_confidence():
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


# ----------------------------------------------------------------------------- fitted calibration


def test_a_fitted_calibration_maps_agreement_to_the_share_within_25_km_monotonically():
    # dev rows: unanimous answers right 3 times in 4, split ones right 1 in 4 ... and a violator
    agreement = [1.0] * 4 + [0.5] * 4 + [0.75] * 2
    correct = [1, 1, 1, 0] + [1, 0, 0, 0] + [0, 0]
    cal = Calibration.fit(agreement, correct, samples=4, temperature=0.5, source="dev")
    assert cal.points == ((0.5, round(1 / 6, 6)), (0.75, round(1 / 6, 6)), (1.0, 0.75))  # 0.75 pooled with 0.5
    assert cal(1.0) == 0.75 and cal(0.0) == 0.0 and cal(0.25) == pytest.approx(1 / 6, abs=1e-6)
    assert cal(0.875) == pytest.approx((1 / 6 + 0.75) / 2, abs=1e-6)  # interpolated between fitted agreements
    rng = random.Random(0)
    xs = [rng.choice([0.125 * k for k in range(9)]) for _ in range(300)]
    big = Calibration.fit(xs, [rng.random() < x * 0.6 for x in xs], samples=8, temperature=0.5)
    ys = [big(x / 100) for x in range(101)]
    assert all(0 <= y <= 1 for y in ys) and ys == sorted(ys)  # in [0, 1] and never falling


def test_calibration_is_applied_only_to_the_n_it_was_fitted_for(tmp_path):
    cal = Calibration(((0.5, 0.2), (1.0, 0.6)), samples=4, temperature=0.5)
    paris = answer("Paris", "France")
    c = consensus([paris] * 4, calibration=cal)
    assert (c.agreement, c.confidence, c.calibrated) == (1.0, 0.6, True)
    other = consensus([paris] * 3, calibration=cal)  # three samples: agreement means something else
    assert (other.confidence, other.calibrated) == (1.0, False)
    assert consensus(["no idea"] * 4, calibration=cal).confidence == 0.0
    cal.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == cal


@pytest.mark.parametrize("doc, fragment", [
    ([], "expected a JSON object"),
    ({"points": [[0.5, 0.2]], "samples": 4}, "needs points"),
    ({"points": [], "samples": 4, "temperature": 0.5}, "non-empty"),
    ({"points": [[0.5, 1.2]], "samples": 4, "temperature": 0.5}, "pairs in [0, 1]"),
    ({"points": [[0.5, 0.6], [1.0, 0.2]], "samples": 4, "temperature": 0.5}, "must rise"),
    ({"points": [[0.5, 0.6]], "samples": 1, "temperature": 0.5}, "samples must be >= 2"),
])
def test_a_bad_calibration_file_is_refused_naming_the_file(tmp_path, doc, fragment):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError) as err:
        Calibration.load(path)
    assert str(path) in str(err.value) and fragment in str(err.value)
    with pytest.raises(CalibrationError, match="cannot read"):
        Calibration.load(tmp_path / "missing.json")


@pytest.mark.parametrize("module", ["globe.consensus", "globe.evaluate.calibration"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
