"""`globe verify`: each of the four filters removes what it should, and the kept data is SFT-ready."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from globe.answer import parse
from globe.cli import app
from globe.config import DistillGroup, TeacherConfig, VerifyGroup
from globe.data.distill import distill
from globe.data.grounding_check import JudgeGrounding, parse_entity_list
from globe.data.records import Record, TeacherOutput, read_records, write_records
from globe.data.verify import judge_sample, verify
from globe.engines.base import JudgeResult, Result

PARIS = dict(lat=48.8566, lon=2.3522, country_code="FR", country="France", city="Paris")
ENTITIES = ["blue-white-red flag band", "tower landmark", "temperate sky", "grassy ground"]
GOOD_THINK = "I see a blue-white-red flag band and a tower landmark under a temperate sky on grassy ground."


def teacher(name, country="France", city="Paris", lat=48.86, lon=2.35, p=0.9, think=GOOD_THINK, **kw):
    text = kw.pop("text", f"<think>{think}</think><answer>country: {country}</answer>")
    return TeacherOutput(teacher=name, text=text, think=think, country=country, city=city, lat=lat, lon=lon,
                         p_localizable=p, format_ok=kw.pop("format_ok", True), **kw)  # fmt: skip


def sample(*teachers, **kw):
    base = dict(id="s", image="images/s.png", image_sha256="a" * 64, entities=ENTITIES, localizable=True,
                meta={"generator": "geoscenes"}, teachers=list(teachers)) | PARIS  # fmt: skip
    return Record(**(base | kw))


@pytest.mark.parametrize(
    "rec, failed, reason",
    [
        (sample(teacher("a"), localizable=False), "localizable", "ground truth: not localizable"),
        (sample(teacher("a", p=0.2), teacher("b", p=0.3)), "localizable", "teachers judged it not localizable"),
        (sample(teacher("a", country="Germany", lat=52.5, lon=13.4)), "ground_truth", "wrong country"),
        (sample(teacher("a", city="Marseille", lat=43.3, lon=5.37)), None, "kept"),  # 660 km: inside 750
        (sample(teacher("a", city="Ajaccio", lat=41.93, lon=8.74)), "ground_truth", "more than 750 km away"),  # 930 km
        (sample(TeacherOutput(teacher="a", error="generate: HTTP 500")), "ground_truth", "no teacher answered"),
        (sample(teacher("a"), teacher("b", country="Deutschland", lat=52.5, lon=13.4)), "teacher_agreement", "teachers disagree"),
        (sample(teacher("a"), teacher("b", country="République française", city=None, lat=None, lon=None)), None, "kept"),
        (sample(teacher("a"), teacher("b"), teacher("c", country="Spain", lat=40.4, lon=-3.7)), None, "kept"),  # 1 of 2 others
        (sample(teacher("a", think=GOOD_THINK.replace("temperate sky", "polar sky"))), "grounding", "named entities not in the image"),
        (sample(teacher("a", think="Looks like France.")), "grounding", "reasoning names no visual entity"),
    ],
)  # fmt: skip
def test_each_filter(rec, failed, reason):
    from globe.data.grounding_check import SceneCueGrounding

    got_failed, got_reason, _ = judge_sample(rec, VerifyGroup(), SceneCueGrounding(), None)
    assert (got_failed, got_reason) == (failed, reason)


def test_grounded_candidate_is_preferred_and_reformatted(tmp_path):
    sloppy = teacher("a", think=GOOD_THINK.replace("tower", "dome"))  # nearest, but names a wrong cue
    good = teacher("b", lat=48.80, lon=2.30, text="Paris, France", format_ok=False)  # free-form text: format is rewritten
    (tmp_path / "d" / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "images" / "s.png")
    write_records(tmp_path / "d", [sample(sloppy, good)])
    report = verify(tmp_path / "d", tmp_path / "o", VerifyGroup())
    (kept,) = read_records(tmp_path / "o")
    assert report["kept"] == 1 and kept.meta["verify"]["teacher"] == "b"
    ans = parse(kept.reasoning)
    assert ans.format_ok and (ans.country, ans.city, ans.lat) == ("France", "Paris", 48.80)
    assert kept.entities == ENTITIES and (tmp_path / "o" / "images" / "s.png").exists()
    with pytest.raises(ValueError, match="is the input dataset"):
        verify(tmp_path / "d", tmp_path / "d", VerifyGroup())


class RuleJudge:
    """A deterministic Engine for the judge role: lists comma phrases, sees only what it is told."""

    name = "rule-judge"

    def __init__(self, visible):
        self.visible = visible
        self.asked = []

    def generate(self, requests, sampling=None):
        return [Result(text="- palm trees\n- a red double-decker bus, minaret") for _ in requests]

    def judge(self, requests, choices=("yes", "no")):
        self.asked += [r.prompt for r in requests]
        return [JudgeResult(p_yes=0.9 if any(v in r.prompt for v in self.visible) else 0.1) for r in requests]


def test_judge_grounding_for_real_photos():
    assert parse_entity_list("1. Palm trees\n2. the red bus; and a minaret.") == ["palm trees", "red bus", "minaret"]
    rec = sample(entities=[], meta={})
    g = JudgeGrounding(RuleJudge({"palm trees", "minaret"})).check(rec, "whatever", lambda r: None)
    assert g.named == ["palm trees", "red double-decker bus", "minaret"] and g.present == ["palm trees", "minaret"]
    assert g.share == pytest.approx(2 / 3)


def test_geoscenes_end_to_end(geoscenes_data, tmp_path):
    cfg = DistillGroup(teachers=[TeacherConfig(name="ra", kind="scene-reader", noise=0.1),
                                 TeacherConfig(name="rb", kind="scene-reader", noise=0.25)])  # fmt: skip
    distill(geoscenes_data, tmp_path / "distilled", cfg, progress=False)
    res = CliRunner().invoke(
        app,
        ["verify", "--data", str(tmp_path / "distilled"), "--out", str(tmp_path / "verified"),
         "--params", str(tmp_path / "none.yaml")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "verified" / "report.json").read_text())
    source = read_records(geoscenes_data)
    kept = read_records(tmp_path / "verified")
    assert report["input"] == len(source) == report["kept"] + sum(report["removed"].values())
    assert report["removed"]["localizable"] >= sum(not r.localizable for r in source)
    assert all(report["removed"][f] > 0 for f in ("ground_truth", "teacher_agreement", "grounding"))
    assert 0.3 * len(source) < len(kept) < 0.9 * len(source)
    truth = {r.id: r for r in source}
    for r in kept:
        ans = parse(r.reasoning)
        assert ans.format_ok and ans.country == truth[r.id].country and r.localizable
        named = [e for e in r.entities if e in ans.think]
        assert named == truth[r.id].entities  # every drawn cue named, nothing misread survives
        assert (tmp_path / "verified" / r.image).exists()
