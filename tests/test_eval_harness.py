"""The harness end to end on GeoScenes with the tiny world's real cue-reading engine (no torch):
files, metrics against the shared scorer, resume after a kill, engine failures, compare, CLI, MLflow."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from globe.cli import app
from globe.config import SAMPLE_TEMPERATURE
from globe.tiny.scene_reader import SceneReaderEngine
from globe.engines.base import Result
from globe.evaluate.benchmarks import load_benchmark
from globe.evaluate.compare import compare_runs
from globe.evaluate.metrics import compute_metrics, read_predictions
from globe.evaluate.runner import PREDICTIONS, RunError, RunSpec, evaluate
from globe.prompts import GEO_PROMPT, GEO_SYSTEM

FILES = {"predictions.jsonl", "metrics.json", "accuracy_curve.png", "world_map.png", "accuracy_curve.csv",
         "report.html", "summary.md", "run.json"}


class Counting:
    """Wraps a real engine; counts the requests it sees and fails the ids in `fail` once each."""

    def __init__(self, engine, fail=()):
        self.engine, self.name, self.fail, self.seen = engine, engine.name, set(fail), []

    def generate(self, requests, sampling):
        self.seen += [r.id for r in requests]
        results = self.engine.generate(requests, sampling)
        out = []
        for req, res in zip(requests, results):
            if req.id in self.fail:
                self.fail.discard(req.id)
                res = Result(error="HTTP 503: upstream restarting")
            out.append(res)
        return out


@pytest.fixture(scope="module")
def geoscenes(tmp_path_factory):
    from globe.tiny.geoscenes import synthesize

    out = tmp_path_factory.mktemp("gs") / "geoscenes"
    synthesize(out, n=120, seed=3)
    return out


def spec(model="reader", batch_size=8, samples=1):
    return RunSpec(benchmark="geoscenes", model=model, engine="scene-reader", prompt=GEO_PROMPT, system=GEO_SYSTEM,
                   max_new_tokens=96, batch_size=batch_size, samples=samples, temperature=0.7 if samples > 1 else 0.0)


def run(geoscenes, out, engine, **kw):
    samples = load_benchmark("geoscenes", path=geoscenes)
    return samples, evaluate(engine, samples, out, spec(**kw), n_boot=200, gallery_size=6, progress=False)


def test_geoscenes_metrics_break_down_by_whether_a_flag_is_hidden(tmp_path):
    """The renderer records which photos have a flag stripe behind foliage; evaluation reports every
    metric on those and on the clear ones (metrics.json `by_condition`, summary.md), where the
    scene reader, which takes each stripe's median colour, reads the leaves."""
    from globe.tiny.geoscenes import Rendering, synthesize

    records = synthesize(tmp_path / "gs", n=40, seed=4, non_localizable_share=0.0, look=Rendering(flag_occlusion=0.5))
    hidden = sum(r.meta["flag_hidden"] for r in records)
    assert 0 < hidden < len(records)
    samples = load_benchmark("geoscenes", path=tmp_path / "gs")
    assert sorted(s.condition for s in samples) == sorted(
        "flag hidden" if r.meta["flag_hidden"] else "clear" for r in records if r.split == "test")
    evaluate(SceneReaderEngine("reader"), samples, tmp_path / "run", spec(), n_boot=50, gallery_size=2, progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    by = saved["by_condition"]
    assert set(by) == {"clear", "flag hidden"} and by["clear"]["n"] + by["flag hidden"]["n"] == saved["n"]
    assert by["flag hidden"]["country_acc"] < by["clear"]["country_acc"] == 1.0
    assert "ci95" in by["clear"]
    assert "| flag hidden |" in (tmp_path / "run" / "summary.md").read_text()
    # a comparison pairs the images of each condition too
    evaluate(SceneReaderEngine("noisy", noise=0.5), samples, tmp_path / "noisy", spec(), n_boot=50, gallery_size=2,
             progress=False)
    result = compare_runs(tmp_path / "run", tmp_path / "noisy", n_boot=50)
    per = result["by_condition"]
    assert {c: per[c]["n"] for c in per} == {c: by[c]["n"] for c in by}
    assert per["clear"]["acc_25km"]["a"] == by["clear"]["acc_25km"] and per["clear"]["acc_25km"]["delta"] < 0


def test_run_writes_every_output_and_agrees_with_the_shared_scorer(geoscenes, tmp_path):
    samples, m = run(geoscenes, tmp_path / "run", SceneReaderEngine("reader"))
    out = tmp_path / "run"
    assert {p.name for p in out.iterdir()} == FILES
    rows = [json.loads(line) for line in (out / PREDICTIONS).read_text().splitlines()]
    assert [r["id"] for r in rows] == [s.id for s in samples] and m["n"] == len(samples) >= 15
    # the reader decodes the drawn cues: nearly every localizable scene lands in its city
    assert m["acc_25km"] >= 0.8 and m["country_acc"] >= 0.8 and m["n_errors"] == 0
    row = next(r for r in rows if r["distance_km"] is not None and r["distance_km"] < 25)
    assert row["coords_source"] == "geocoded" and row["resolution"] == "city" and row["protocol"] == "names"
    assert row["stated"]["coords_source"] == "stated" and row["answer"]["format_ok"] and row["output"].startswith("<think>")
    # metrics.json is what `globe eval score` computes from predictions.jsonl alone
    saved = json.loads((out / "metrics.json").read_text())
    rescored = compute_metrics(read_predictions(out / PREDICTIONS))
    for key in ("n", "n_unparsed", "acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "country_acc", "city_acc"):
        assert saved[key] == rescored[key], key
    assert saved["median_km"] == pytest.approx(rescored["median_km"])
    assert saved["stated"]["acc_25km"] == rescored["stated"]["acc_25km"]
    html = (out / "report.html").read_text()
    assert "stated coordinates" in html and "value (headline: names geocoded)" in html
    assert f"{100 * saved['stated']['acc_25km']:.1f}%" in html
    lo, hi = saved["ci95"]["acc_25km"]
    assert lo <= saved["acc_25km"] <= hi and hi - lo > 0
    assert sum(v["n"] for v in saved["by_continent"].values()) == saved["n"]
    assert sum(v["n"] for v in saved["by_country"].values()) == saved["n"]
    assert saved["by_condition"] == {"clear": saved["by_condition"]["clear"]}  # nothing hidden in this world
    with open(out / "accuracy_curve.csv") as fh:
        curve = {float(r["threshold_km"]): float(r["accuracy"]) for r in csv.DictReader(fh)}
    assert curve[25.0] == pytest.approx(saved["acc_25km"], abs=1e-6) and curve[2500.0] == pytest.approx(saved["acc_2500km"], abs=1e-6)
    assert "| within 25 km (city) |" in (out / "summary.md").read_text()


def test_killed_run_resumes_without_repeating_or_duplicating(geoscenes, tmp_path):
    out = tmp_path / "run"
    _, first = run(geoscenes, out, SceneReaderEngine("reader"))
    lines = (out / PREDICTIONS).read_bytes().splitlines(keepends=True)
    (out / PREDICTIONS).write_bytes(b"".join(lines[:9]) + lines[9][:40])  # killed mid-write of row 10
    engine = Counting(SceneReaderEngine("reader"))
    _, second = run(geoscenes, out, engine)
    assert len(engine.seen) == len(lines) - 9 and not set(engine.seen) & {json.loads(x)["id"] for x in lines[:9]}
    ids = [json.loads(x)["id"] for x in (out / PREDICTIONS).read_text().splitlines()]
    assert len(ids) == len(set(ids)) == len(lines)
    assert {k: second[k] for k in ("acc_25km", "median_km", "ci95")} == {k: first[k] for k in ("acc_25km", "median_km", "ci95")}


@pytest.mark.slow
def test_sigkill_loses_at_most_the_batches_in_flight_and_the_restart_asks_only_for_the_rest(geoscenes, tmp_path):
    """A real SIGKILL of `globe eval run` against an HTTP engine: what was answered but not yet on
    disk is at most the batch being generated and the one being scored; the restart asks for every
    image that has no whole line, and only for those."""
    from globe.tiny.teacher_server import TeacherServer

    batch, out = 3, tmp_path / "run"
    n = len(load_benchmark("geoscenes", path=geoscenes))
    with TeacherServer(name="reader", latency_s=0.25) as server:
        cmd = [sys.executable, "-m", "globe.cli", "eval", "run", "--model", "scene-reader", "--engine", "openai",
               "--base-url", server.base_url, "--data", str(geoscenes), "--out", str(out), "--no-progress",
               "--params", str(tmp_path / "none.yaml"), "--set", f"eval.batch_size={batch}",
               "--set", f"eval.concurrency={batch}", "--set", "eval.bootstrap=50"]  # fmt: skip
        env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "NO_PROXY": "127.0.0.1"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and _whole_lines(out / PREDICTIONS) < 2 * batch and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed: make the teacher slower"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        settled, seen = time.monotonic() + 30, -1  # let the server finish the requests the dead client had sent
        while (server.in_flight or server.requests != seen) and time.monotonic() < settled:
            seen = server.requests
            time.sleep(0.05)
        asked, kept = server.requests, _whole_lines(out / PREDICTIONS)
        assert 2 * batch <= kept < n and asked - kept <= 2 * batch
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert server.requests - asked == n - kept
    ids = [json.loads(x)["id"] for x in (out / PREDICTIONS).read_text().splitlines()]
    assert sorted(ids) == sorted(s.id for s in load_benchmark("geoscenes", path=geoscenes))


def _whole_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_engine_failures_count_as_misses_and_are_retried_on_restart(geoscenes, tmp_path):
    samples = load_benchmark("geoscenes", path=geoscenes)
    flaky = Counting(SceneReaderEngine("reader"), fail=[samples[0].id, samples[5].id])
    _, m = run(geoscenes, tmp_path / "run", flaky)
    assert m["n_errors"] == 2 and m["n"] == len(samples)
    rows = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "run" / PREDICTIONS).read_text().splitlines()}
    assert rows[samples[0].id]["error"] == "HTTP 503: upstream restarting" and rows[samples[0].id]["distance_km"] is None
    again = Counting(SceneReaderEngine("reader"))
    _, m2 = run(geoscenes, tmp_path / "run", again)
    assert sorted(again.seen) == sorted([samples[0].id, samples[5].id]) and m2["n_errors"] == 0
    assert m2["acc_25km"] >= m["acc_25km"]


def test_compare_runs_finds_the_noisy_reader_worse(geoscenes, tmp_path):
    run(geoscenes, tmp_path / "clean", SceneReaderEngine("reader"))
    run(geoscenes, tmp_path / "noisy", SceneReaderEngine("noisy", noise=0.5), model="noisy")
    result = compare_runs(tmp_path / "clean", tmp_path / "noisy", n_boot=300)
    assert result["paired"] and result["n_compared"] == result["a"]["n"]
    acc = result["metrics"]["acc_25km"]
    assert acc["delta"] == pytest.approx(acc["b"] - acc["a"]) and acc["delta"] < 0
    assert acc["ci"][1] < 0 and acc["significant"] and acc["better"] is False
    table = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "clean"), str(tmp_path / "noisy"), "--bootstrap", "200"])
    assert table.exit_code == 0, table.output
    assert "paired over" in table.output and "acc_25km" in table.output and "B worse" in table.output
    as_json = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "clean"), str(tmp_path / "clean"), "--json"])
    assert json.loads(as_json.output)["metrics"]["acc_25km"]["delta"] == 0.0
    out = tmp_path / "cmp"
    written = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "clean"), str(tmp_path / "noisy"),
                                       "--bootstrap", "200", "--out", str(out)])
    assert written.exit_code == 0, written.output
    doc = json.loads((out / "compare.json").read_text())
    assert doc["paired"] and doc["metrics"]["acc_25km"]["significant"] and doc["metrics"]["acc_25km"]["ci"][1] < 0
    md = (out / "compare.md").read_text()
    assert "| acc_25km |" in md and "B worse" in md and "paired over" in md
    html = (out / "compare.html").read_text()
    srcs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")  # both curves, inlined
    assert "http://" not in html and "https://" not in html and 'id="compare"' in html and "B worse" in html


def test_resume_refuses_rows_of_another_run_and_malformed_rows_with_file_and_line(geoscenes, tmp_path):
    """Issue 26: rows of another run with the same ids used to be resumed (acc_25km 0 -> 100%), and
    a row holding only an id crashed the run with a KeyError."""
    runner = CliRunner()

    def eval_run(model: str, out, limit: int):
        return runner.invoke(app, ["eval", "run", "--model", model, "--engine", "scene-reader", "--data", str(geoscenes),
                                   "--out", str(out), "--limit", str(limit), "--no-progress",
                                   "--params", str(tmp_path / "none.yaml"), "--set", "eval.bootstrap=20"])  # fmt: skip

    assert eval_run("reader", tmp_path / "a", 5).exit_code == 0
    assert eval_run("reader-b", tmp_path / "b", 3).exit_code == 0
    theirs = (tmp_path / "a" / PREDICTIONS).read_text().splitlines()
    ours = (tmp_path / "b" / PREDICTIONS).read_text().splitlines()
    assert len(ours) == 3 and all(json.loads(x)["run"] != json.loads(theirs[0])["run"] for x in ours)
    tampered_truth = json.loads(ours[0]) | {"lat": 1.0}
    cases = [
        ("\n".join(ours + theirs[3:]), f"{PREDICTIONS}:4: row {json.loads(theirs[3])['id']!r} belongs to another run"),
        ("\n".join(ours + [json.dumps({"id": json.loads(theirs[3])["id"]})]), f"{PREDICTIONS}:4: prediction row lacks lat, lon"),
        ("\n".join([json.dumps(tampered_truth)] + ours[1:]), f"{PREDICTIONS}:1: row {tampered_truth['id']!r} has ground truth 1.0"),
        ("\n".join(ours[:1] + ["[1, 2]"] + ours[1:]), f"{PREDICTIONS}:2: expected a JSON object"),
    ]
    for text, fragment in cases:
        (tmp_path / "b" / PREDICTIONS).write_text(text + "\n")
        resumed = eval_run("reader-b", tmp_path / "b", 5)
        assert resumed.exit_code == 2 and fragment in " ".join(resumed.output.split()), resumed.output[-2000:]
        assert "Traceback" not in resumed.output
    (tmp_path / "b" / PREDICTIONS).write_text("\n".join(ours) + "\n")
    assert eval_run("reader-b", tmp_path / "b", 5).exit_code == 0  # its own rows resume as before
    assert len((tmp_path / "b" / PREDICTIONS).read_text().splitlines()) == 5


def test_a_run_written_before_the_two_protocols_is_compared_under_the_headline(geoscenes, tmp_path):
    run(geoscenes, tmp_path / "new", SceneReaderEngine("reader"))
    old = tmp_path / "old"
    old.mkdir()
    legacy = []  # what the earlier scorer wrote: stated coordinates first, no protocol, no `stated`
    for line in (tmp_path / "new" / PREDICTIONS).read_text().splitlines():
        r = json.loads(line)
        for key in ("protocol", "resolution", "resolved_place", "stated"):
            r.pop(key)
        r.update(pred_lat=-40.0, pred_lon=80.0, coords_source="stated", distance_km=12_000.0)
        legacy.append(json.dumps(r))
    (old / PREDICTIONS).write_text("\n".join(legacy) + "\n")
    result = compare_runs(old, tmp_path / "new", n_boot=50)
    assert result["metrics"]["acc_25km"]["delta"] == 0.0  # the same answers, re-located by their names


def test_cli_run_and_its_errors(geoscenes, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["eval", "run", "--model", "reader", "--engine", "scene-reader", "--benchmark", "geoscenes",
                             "--data", str(geoscenes), "--out", str(tmp_path / "run"), "--limit", "5", "--no-progress",
                             "--params", str(tmp_path / "none.yaml"), "--set", "eval.bootstrap=50"])
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.output[ok.output.index("{"):])
    assert summary["n"] == 5 and set(summary["files"]) == FILES | {"resolved_config.yaml"}
    saved = yaml.safe_load((tmp_path / "run" / "resolved_config.yaml").read_text())  # the settings this run used
    assert saved["values"]["eval"]["bootstrap"] == 50 and saved["sources"]["eval.bootstrap"] == "--set"
    other = runner.invoke(app, ["eval", "run", "--model", "other", "--engine", "scene-reader", "--data", str(geoscenes),
                                "--out", str(tmp_path / "run"), "--params", str(tmp_path / "none.yaml")])
    assert other.exit_code == 2 and "holds predictions of a different run" in other.output
    missing = runner.invoke(app, ["eval", "run", "--model", "m", "--benchmark", "im2gps3k", "--out", str(tmp_path / "x"),
                                  "--params", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "needs --csv and --images" in missing.output
    no_url = runner.invoke(app, ["eval", "run", "--model", "m", "--engine", "openai", "--data", str(geoscenes),
                                 "--out", str(tmp_path / "y"), "--params", str(tmp_path / "none.yaml")])
    assert no_url.exit_code == 2 and "needs --base-url" in no_url.output
    not_a_run = runner.invoke(app, ["eval", "compare", str(tmp_path), str(tmp_path / "run")])
    assert not_a_run.exit_code == 2 and "not an evaluation run" in not_a_run.output


class Unsure:
    """The cue reader sampled N times: copy j of an image names the true city unless the image's
    hash says this copy misreads it as Tokyo (a quarter to a half of the copies, varying by image),
    so the vote has something to count. An Engine without `samples_per_request`: the harness
    repeats each request N times for it."""

    name = "unsure"

    def __init__(self):
        self.reader, self.calls = SceneReaderEngine("reader"), []

    def generate(self, requests, sampling):
        import hashlib

        self.calls.append(len(requests))
        seen: dict[str, int] = {}
        out = []
        for req, res in zip(requests, self.reader.generate(requests, sampling)):
            j = seen[req.id] = seen.get(req.id, -1) + 1
            h = hashlib.sha256(f"{req.id}/{j}".encode()).digest()
            if res.ok and h[0] % 8 < 1 + int(hashlib.sha256(req.id.encode()).digest()[0] % 3):
                res = Result(text="<think>a tower</think><answer>country: Japan\ncity: Tokyo</answer>")
            out.append(res)
        return out


def test_a_consensus_run_votes_reports_its_confidence_and_compares_with_greedy(geoscenes, tmp_path):
    engine = Unsure()
    samples, m = run(geoscenes, tmp_path / "voted", engine, samples=4)
    rows = [json.loads(x) for x in (tmp_path / "voted" / PREDICTIONS).read_text().splitlines()]
    assert engine.calls == [4 * 8] * (len(samples) // 8) + ([4 * (len(samples) % 8)] if len(samples) % 8 else [])
    for r in rows:
        assert r["samples"] == 4 and 0 <= r["confidence"] <= 1 and r["confidence"] * 4 == round(r["confidence"] * 4)
        assert r["agreement"] == r["confidence"] and r["calibrated"] is False  # no calibration given
        if r["candidates"]:  # the row is scored from the winning sample, the first candidate
            assert (r["pred_city"], r["confidence"]) == (r["candidates"][0]["city"], r["candidates"][0]["share"])
            assert sum(c["votes"] for c in r["candidates"]) + r["n_unplaced"] == 4
    assert {r["confidence"] for r in rows} >= {0.5, 0.75, 1.0}
    assert 0 <= m["ece"] <= 1 and 0 < m["mean_confidence"] < 1
    curve = {p["coverage"]: p["accuracy"] for p in m["selective_accuracy"]}
    assert curve[1.0] == pytest.approx(m["acc_25km"]) and len(m["reliability"]) == 10
    assert (tmp_path / "voted" / "calibration.png").is_file()
    html = (tmp_path / "voted" / "report.html").read_text()
    assert 'alt="calibration"' in html and "calibration error of the confidence" in html and "confidence 0." in html
    # a majority of correct copies beats the unsure single sample
    _, single = run(geoscenes, tmp_path / "single", Unsure())
    assert m["acc_25km"] > single["acc_25km"]
    result = compare_runs(tmp_path / "single", tmp_path / "voted", n_boot=200)
    assert result["paired"] and result["confidence"]["a"] is None and result["confidence"]["b"]["ece"] == pytest.approx(m["ece"])
    assert result["metrics"]["acc_25km"]["delta"] > 0 and (result["a"]["samples"], result["b"]["samples"]) == (1, 4)
    table = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "single"), str(tmp_path / "voted"), "--bootstrap", "50"])
    assert table.exit_code == 0 and "confidence ECE" in table.output and "most confident 50%" in table.output
    with pytest.raises(RunError, match="samples: 4 -> 1"):  # a greedy run is never resumed into a consensus one
        run(geoscenes, tmp_path / "voted", Unsure())


def test_a_calibration_fitted_on_one_run_gives_the_confidence_of_the_next(geoscenes, tmp_path):
    from globe.consensus import Calibration
    from globe.evaluate.runner import consensus_calibration

    run(geoscenes, tmp_path / "dev", Unsure(), samples=4)
    fitted = CliRunner().invoke(app, ["eval", "calibrate", str(tmp_path / "dev")])
    assert fitted.exit_code == 0, fitted.output
    cal = Calibration.load(tmp_path / "dev" / "calibration.json")
    assert (cal.samples, cal.temperature) == (4, 0.7) and cal.n > 0 and str(tmp_path / "dev") in cal.source
    samples = load_benchmark("geoscenes", path=geoscenes)
    m = evaluate(Unsure(), samples, tmp_path / "calibrated", RunSpec(**{**spec(samples=4).__dict__, "calibration": cal.to_dict()}),
                 n_boot=0, gallery_size=0, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "calibrated" / PREDICTIONS).read_text().splitlines()]
    assert all(r["calibrated"] and r["confidence"] == pytest.approx(cal(r["agreement"])) for r in rows)
    assert m["ece"] <= m["ece_agreement"] + 1e-9  # fitted on these very images: in-sample, at least as good
    assert json.loads((tmp_path / "calibrated" / "run.json").read_text())["calibration"] == cal.to_dict()
    with pytest.raises(RunError, match="calibration"):  # another calibration never resumes these rows
        evaluate(Unsure(), samples, tmp_path / "calibrated", spec(samples=4), n_boot=0, gallery_size=0, progress=False)
    with pytest.raises(RunError, match="fitted for samples=4, temperature=0.7; these settings sample at temperature 0.7 with samples=8"):
        consensus_calibration(str(tmp_path / "dev" / "calibration.json"), 8, 0.7)
    greedy = CliRunner().invoke(app, ["eval", "calibrate", str(tmp_path / "calibrated" / "..")])
    assert greedy.exit_code == 2 and "not an evaluation run" in greedy.output


def test_cli_samples_over_an_openai_endpoint_are_concurrent_requests(geoscenes, tmp_path):
    from globe.tiny.teacher_server import TeacherServer

    with TeacherServer(name="reader") as server:
        res = CliRunner().invoke(app, ["eval", "run", "--model", "scene-reader", "--engine", "openai", "--base-url",
                                       server.base_url, "--data", str(geoscenes), "--out", str(tmp_path / "run"), "--limit", "4",
                                       "--samples", "3", "--no-progress", "--params", str(tmp_path / "none.yaml"),
                                       "--set", "eval.bootstrap=0"])
        assert res.exit_code == 0, res.output
        assert server.requests == 12
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (info["samples"], info["temperature"]) == (3, SAMPLE_TEMPERATURE)  # eval.sample_temperature's default
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["mean_confidence"] == 1.0 and "ece" in summary  # a deterministic reader agrees with itself
    bad = CliRunner().invoke(app, ["eval", "run", "--model", "m", "--data", str(geoscenes), "--out", str(tmp_path / "x"),
                                   "--samples", "65", "--params", str(tmp_path / "none.yaml")])
    assert bad.exit_code == 2 and "eval.samples" in bad.output and "64" in bad.output


def test_an_openai_compatible_endpoint_with_5xx_answers_gives_the_in_process_results(geoscenes, tmp_path):
    from globe.tiny.teacher_server import TeacherServer

    with TeacherServer(name="reader", faults=lambda i, body: "500" if i in (2, 3) else None) as server:
        res = CliRunner().invoke(app, ["eval", "run", "--model", "scene-reader", "--engine", "openai", "--base-url",
                                       server.base_url, "--data", str(geoscenes), "--out", str(tmp_path / "http"),
                                       "--no-progress", "--params", str(tmp_path / "none.yaml"), "--set", "eval.bootstrap=50"])
        assert res.exit_code == 0, res.output
        assert server.statuses[500] == 2  # failed twice, retried by the engine, answered
    _, local = run(geoscenes, tmp_path / "local", SceneReaderEngine("reader"))
    over_http = [json.loads(x) for x in (tmp_path / "http" / PREDICTIONS).read_text().splitlines()]
    in_process = [json.loads(x) for x in (tmp_path / "local" / PREDICTIONS).read_text().splitlines()]
    assert [(r["id"], r["output"], r["distance_km"]) for r in over_http] == [(r["id"], r["output"], r["distance_km"]) for r in in_process]
    assert json.loads((tmp_path / "http" / "metrics.json").read_text())["acc_25km"] == local["acc_25km"]


@pytest.mark.slow
def test_mlflow_gets_metrics_and_artifacts_when_a_tracking_uri_is_set(geoscenes, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact root is ./mlruns
    _, m = run(geoscenes, tmp_path / "run", SceneReaderEngine("reader"))
    from mlflow.tracking import MlflowClient

    got = MlflowClient(tracking_uri=uri).get_run(m["mlflow_run_id"])
    assert got.data.metrics["acc_25km"] == pytest.approx(m["acc_25km"])
    assert got.data.metrics["acc_25km_ci_lo"] == pytest.approx(m["ci95"]["acc_25km"][0])
    assert got.data.params["benchmark"] == "geoscenes"
    names = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(m["mlflow_run_id"], "eval")}
    assert {"eval/metrics.json", "eval/report.html", "eval/world_map.png", "eval/predictions.jsonl"} <= names
