"""The predictor's answer document, readiness, and the KServe split over a real OpenAI-compatible endpoint."""

from __future__ import annotations

import asyncio
import base64

import pytest

from globe.config import ServeGroup
from globe.geo import haversine_km
from globe.serve.predictor import answer_to_prediction


def test_coordinates_stated_by_the_model_are_used_as_is():
    pred = answer_to_prediction("<think>Tricolour flags, Haussmann facades.</think>\n<answer>country: France\ncity: Paris\nlat: 48.85\nlon: 2.35</answer>")
    assert (pred["country"], pred["country_code"], pred["city"]) == ("France", "FR", "Paris")
    assert (pred["lat"], pred["lon"], pred["coords_source"], pred["resolution"]) == (48.85, 2.35, "stated", "coordinates")
    assert pred["reasoning"] == "Tricolour flags, Haussmann facades." and pred["format_ok"] is True


def test_missing_or_impossible_coordinates_are_geocoded_from_the_place():
    for text in (
        "<think>Canals.</think>\n<answer>country: Netherlands\ncity: Amsterdam</answer>",
        "<think>Canals.</think>\n<answer>country: Netherlands\ncity: Amsterdam\nlat: 123.0\nlon: 4.9</answer>",
    ):
        pred = answer_to_prediction(text)
        assert pred["coords_source"] == "geocoded" and pred["country_code"] == "NL" and pred["resolution"] == "city"
        assert haversine_km(pred["lat"], pred["lon"], 52.37, 4.89) < 25


def test_serving_and_evaluation_place_the_same_answer_at_the_same_point():
    from globe.answer import parse
    from globe.evaluate.metrics import score_rows

    for text in ("<think>.</think><answer>country: USA\ncity: Charleston, SC</answer>",
                 "Chelsea Market, New York City, USA", "<answer>country: France\ncity: Paris\nlat: 1.0\nlon: 2.0</answer>"):
        pred = answer_to_prediction(text)
        row = score_rows([{"lat": 0.0, "lon": 0.0, "output": text}])[0]["stated"]  # serving states first too
        assert (pred["lat"], pred["lon"], pred["coords_source"], pred["resolution"]) == (
            row["pred_lat"], row["pred_lon"], row["coords_source"], row["resolution"]), text
        assert parse(text).raw == pred["raw"]


def test_country_only_falls_back_to_an_approximate_point_and_garbage_to_nulls():
    pred = answer_to_prediction("<think>Hard to say.</think>\n<answer>country: Japan\ncity: </answer>")
    assert pred["country_code"] == "JP" and pred["coords_source"] == "geocoded" and pred["resolution"] == "capital-fallback"
    junk = answer_to_prediction("\n\n\n")
    assert {k: junk[k] for k in ("country", "country_code", "city", "lat", "lon", "coords_source")} == dict.fromkeys(
        ("country", "country_code", "city", "lat", "lon", "coords_source")
    )
    assert junk["raw"] == "\n\n\n" and junk["format_ok"] is False


def test_ready_only_after_a_successful_load(tmp_path):
    from globe.serve.model import GlobeModel
    from globe.serve.model_source import ModelSourceError

    model = GlobeModel(str(tmp_path / "missing"), ServeGroup())
    assert model.ready is False
    with pytest.raises(ModelSourceError, match="no such directory"):
        model.load()
    assert model.ready is False
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        GlobeModel(str(tmp_path / "empty"), ServeGroup()).load()


def test_openai_engine_split_with_judge(tmp_path):
    """Generation on an OpenAI-compatible endpoint (the tiny world's teacher server, standing in for
    vLLM); the predictor does prompt, parse, coordinates and the localizability judgment."""
    from globe.tiny.geoscenes import synthesize
    from globe.tiny.teacher_server import TeacherServer
    from globe.serve.model import GlobeModel

    records = [r for r in synthesize(tmp_path / "gs", n=6, seed=3, non_localizable_share=0.0)][:4]
    with TeacherServer() as teacher:
        cfg = ServeGroup(engine="openai", base_url=teacher.base_url, judge="self", max_latency_ms=5)
        model = GlobeModel("scene-reader", cfg)
        model.load()
        assert model.ready
        body = {"instances": [{"image_b64": base64.b64encode((tmp_path / "gs" / r.image).read_bytes()).decode(), "id": r.id} for r in records]}
        response, _ = asyncio.run(model(body))
        assert teacher.requests == 2 * len(records)  # one generation and one judgment per image
    for rec, pred in zip(records, response["predictions"]):
        assert pred["id"] == rec.id and pred["country_code"] == rec.country_code and pred["city"] == rec.city
        assert pred["coords_source"] == "stated" and haversine_km(pred["lat"], pred["lon"], rec.lat, rec.lon) < 25
        assert 0.5 < pred["localizability"] <= 1.0


def test_globe_serve_flags_are_not_taken_for_kserve_flags(tmp_path):
    """kserve parses sys.argv on import; `--grpc` alone is an ambiguous KServe flag. The CLI must
    reach its own error (a missing model) instead of dying in KServe's argument parser."""
    import subprocess
    import sys
    from pathlib import Path

    globe = Path(sys.executable).with_name("globe")
    out = subprocess.run(
        [str(globe), "serve", "--model", str(tmp_path / "missing"), "--grpc", "--params", str(tmp_path / "none.yaml")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2 and "no such directory" in out.stderr, out.stderr


def test_predict_command_reports_a_broken_file_cleanly(tmp_path):
    from typer.testing import CliRunner

    from _serve_helpers import png_bytes
    from globe.cli import app

    broken = tmp_path / "broken.png"
    broken.write_bytes(png_bytes()[:-30])
    result = CliRunner().invoke(app, ["predict", str(broken), "--model", str(tmp_path), "--params", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and f"{broken}: truncated or corrupt image" in result.output
    missing = CliRunner().invoke(app, ["predict", str(tmp_path / "nope.png"), "--model", str(tmp_path), "--params", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    opts = ["--params", str(tmp_path / "none.yaml"), "--set", "serve.max_samples=2"]
    many = CliRunner().invoke(app, ["predict", str(broken), "--model", str(tmp_path), "--samples", "3", *opts])
    assert many.exit_code == 2 and "--samples: 3 samples is outside 1..2 (this server's serve.max_samples)" in many.output


class Scripted:
    """An Engine whose answers come from `answer(request, copy)`; records every generate call."""

    name = "scripted"
    samples_per_request = True

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def generate(self, requests, sampling):
        from globe.engines.base import Result

        self.calls.append((len(requests), sampling.n, sampling.temperature))
        out = []
        for req in requests:
            for j in range(sampling.n):
                text = self.answer(req, j)
                out.append(Result(text=text) if text is not None else Result(error="upstream timeout"))
        return out

    def judge(self, requests, choices=("yes", "no")):
        from globe.engines.base import JudgeResult

        return [JudgeResult(p_yes=0.9, source="logits") for _ in requests]


def _say(city: str, country: str) -> str:
    return f"<think>I see {city}.</think>\n<answer>country: {country}\ncity: {city}</answer>"


def test_samples_answer_with_the_consensus_its_confidence_and_the_candidates():
    from _serve_helpers import png_bytes

    from globe.serve.model import GlobeModel

    def answer(req, j):
        if req.id == "greedy":
            return _say("Lyon", "France")
        return _say("Rome", "Italy") if j == 3 else _say("Paris", "France")

    engine = Scripted(answer)
    model = GlobeModel("scripted", ServeGroup(max_samples=4, max_latency_ms=5), engine=engine, judge=engine)
    model.load()
    image = base64.b64encode(png_bytes()).decode()
    body = {"instances": [{"image_b64": image, "id": "voted", "samples": 4}, {"image_b64": image, "id": "greedy"}]}
    response, _ = asyncio.run(model(body))
    voted, greedy = response["predictions"]
    assert (voted["city"], voted["country_code"], voted["samples"], voted["confidence"]) == ("Paris", "FR", 4, 0.75)
    assert voted["agreement"] == 0.75 and voted["calibrated"] is False  # no serve.calibration: the raw agreement
    assert voted["n_unplaced"] == 0
    assert [(c["city"], c["share"], c["votes"], c["reasoning"]) for c in voted["candidates"]] == [
        ("Paris", 0.75, 3, "I see Paris."), ("Rome", 0.25, 1, "I see Rome.")]
    assert haversine_km(voted["lat"], voted["lon"], voted["candidates"][0]["lat"], voted["candidates"][0]["lon"]) == 0
    assert greedy["city"] == "Lyon" and "confidence" not in greedy and "candidates" not in greedy
    # the judge's localizability and the vote's confidence are two fields, two questions
    assert voted["localizability"] == 0.9 and greedy["localizability"] == 0.9
    # one engine call per N in the batch: greedy for one image, 4 sampled for the other
    assert sorted(engine.calls) == [(1, 1, 0.0), (1, 4, ServeGroup().sample_temperature)]


def test_failed_samples_count_against_the_confidence_and_all_failed_is_an_error():
    from globe.engines.base import Result
    from globe.serve.predictor import GenerationFailed, consensus_prediction

    paris = Result(text=_say("Paris", "France"))
    half = consensus_prediction([paris, paris, Result(error="timeout"), Result(text="no idea")], "x")
    assert half["confidence"] == 0.5 and half["city"] == "Paris" and len(half["candidates"]) == 1
    assert half["n_unplaced"] == 2  # the timeout and "no idea" gave no place
    lost = consensus_prediction([Result(text="no idea"), Result(error="timeout")], "y")
    assert lost["confidence"] == 0.0 and lost["candidates"] == [] and lost["lat"] is None and lost["raw"] == "no idea"
    assert lost["n_unplaced"] == 2
    failed = consensus_prediction([Result(error="timeout")] * 3, "z")
    assert isinstance(failed, GenerationFailed) and "timeout" in str(failed)


def test_a_consensus_of_garbage_samples_says_how_many_gave_no_place():
    """`globe predict --samples 4` on a real photo: one sample placed, three garbage (issue 25)."""
    from globe.engines.base import Result
    from globe.serve.predictor import answer_to_prediction, consensus_prediction

    garbage = ["<think>x</think>\n<answer>country: </think>\ncity: </think></answer>",
               "<think>x</think>\n<answer>country: 55.5525\ncity: 55.5525</answer>", "<think>x</think>"]
    doc = consensus_prediction([Result(text=_say("Paris", "France"))] + [Result(text=t) for t in garbage], "x")
    assert (doc["city"], doc["agreement"], doc["n_unplaced"]) == ("Paris", 0.25, 3)
    assert [c["votes"] for c in doc["candidates"]] == [1]
    one = answer_to_prediction("<think>x</think>\n<answer>country: Brazil\ncity: </think></answer>", "y")
    assert one["city"] is None and one["format_ok"] is False and one["refused"] == ["city"]


def test_serve_calibration_maps_the_agreement_for_its_n_and_must_match_the_temperature(tmp_path):
    from globe.consensus import Calibration, CalibrationError
    from globe.serve.model import build_predictor

    Calibration(((0.25, 0.1), (1.0, 0.55)), samples=4, temperature=0.5).save(tmp_path / "cal.json")
    cfg = ServeGroup(calibration=str(tmp_path / "cal.json"), sample_temperature=0.5)
    engine = Scripted(lambda req, j: _say("Paris", "France"))
    predictor = build_predictor(cfg, engine)
    four, three = predictor.predict([None, None], ["a", "b"], [4, 3])
    assert (four["agreement"], four["confidence"], four["calibrated"]) == (1.0, 0.55, True)
    assert (three["agreement"], three["confidence"], three["calibrated"]) == (1.0, 1.0, False)  # fitted for N = 4 only
    with pytest.raises(CalibrationError, match="fitted for samples=4, temperature=0.5; these settings sample at temperature 0.9:"):
        build_predictor(ServeGroup(calibration=str(tmp_path / "cal.json"), sample_temperature=0.9), engine)
