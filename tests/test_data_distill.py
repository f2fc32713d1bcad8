"""`globe distill`: parsed teacher outputs, exactly-once after SIGKILL, flaky teachers recorded per sample."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from globe.config import DistillGroup, TeacherConfig
from globe.data.distill import DistillError, distill
from globe.data.records import read_records, write_records
from globe.tiny.scene_reader import SceneReaderEngine
from globe.tiny.teacher_server import TeacherServer

ROOT = Path(__file__).resolve().parents[1]


def expected_texts(data: Path, name: str, noise: float, ids) -> dict[str, str]:
    """What a scene reader with this name and noise answers for each image (it is deterministic)."""
    reader = SceneReaderEngine(name, noise=noise, world=data)
    by_id = {r.id: r for r in read_records(data)}
    return {i: reader.answer(Image.open(data / by_id[i].image)) for i in ids}


def test_in_process_teachers_and_rerun(geoscenes_data, tmp_path):
    cfg = DistillGroup(teachers=[TeacherConfig(name="clean", kind="scene-reader"),
                                 TeacherConfig(name="noisy", kind="scene-reader", noise=0.5)])  # fmt: skip
    counts = distill(geoscenes_data, tmp_path / "o", cfg, limit=40, progress=False)
    assert (counts["distilled"], counts["teacher_outputs_ok"], counts["teacher_outputs_failed"]) == (40, 80, 0)
    source = read_records(geoscenes_data)[:40]
    out = read_records(tmp_path / "o")
    assert [r.id for r in out] == [r.id for r in source]
    for src, r in zip(source, out):
        clean, noisy = r.teachers
        assert (clean.teacher, noisy.teacher) == ("clean", "noisy")
        assert clean.localizable == src.localizable and clean.p_localizable in (0.05, 0.95)
        if src.localizable:
            assert (clean.country_code, clean.city, clean.format_ok) == (src.country_code, src.city, True)
        assert (tmp_path / "o" / r.image).read_bytes() == (geoscenes_data / src.image).read_bytes()
    assert sum(r.teachers[1].text != r.teachers[0].text for r in out) > 10  # noise 0.5 misreads often
    before = (tmp_path / "o" / "records.jsonl").read_bytes()
    again = distill(geoscenes_data, tmp_path / "o", cfg, limit=40, progress=False)
    assert (again["already_done"], again["distilled"]) == (40, 0)
    assert (tmp_path / "o" / "records.jsonl").read_bytes() == before
    with pytest.raises(DistillError, match="no teachers configured"):
        distill(geoscenes_data, tmp_path / "p", DistillGroup(), progress=False)


def test_output_of_another_dataset_is_refused(geoscenes_data, tmp_path):
    other = tmp_path / "other"
    write_records(other, [read_records(geoscenes_data)[0].model_copy(update={"id": "foreign"})])
    (other / "records.jsonl").replace(tmp_path / "records.jsonl")
    (tmp_path / "o").mkdir()
    (tmp_path / "records.jsonl").replace(tmp_path / "o" / "records.jsonl")
    cfg = DistillGroup(teachers=[TeacherConfig(name="r", kind="scene-reader")])
    with pytest.raises(DistillError, match="not in .* belongs to another dataset"):
        distill(geoscenes_data, tmp_path / "o", cfg, progress=False)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_and_resume_exactly_once(geoscenes_data, tmp_path):
    limit = 20
    with TeacherServer(latency_s=0.15, world=geoscenes_data, noise=0.2, name="http-reader") as server:
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump({"distill": {
            "teachers": [{"name": "http", "kind": "openai", "base_url": server.base_url, "model": "reader"}],
            "concurrency": 4, "timeout_s": 20, "retries": 2}}))  # fmt: skip
        out = tmp_path / "out"
        cmd = [sys.executable, "-m", "globe.cli", "distill", "--data", str(geoscenes_data), "--out", str(out),
               "--params", str(params), "--limit", str(limit), "--no-progress"]  # fmt: skip
        env = os.environ | {"PYTHONPATH": str(ROOT)}
        kills = 0
        for target in (2, 7, 13):
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 120
            while proc.poll() is None and _lines(out / "records.jsonl") < target and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
        assert kills >= 2, "the run finished before it could be killed: make the teacher slower"
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        counts = json.loads(done.stdout)
        assert counts["samples"] == limit and counts["already_done"] + counts["distilled"] == limit
    raw = (out / "records.jsonl").read_text().splitlines()
    ids = [json.loads(line)["id"] for line in raw]  # every line is whole JSON
    source_ids = [r.id for r in read_records(geoscenes_data)][:limit]
    assert ids == source_ids  # each sample exactly once, in input order
    want = expected_texts(geoscenes_data, "http-reader", 0.2, source_ids)
    for r in read_records(out):
        (t,) = r.teachers
        assert t.error is None and t.text == want[r.id] and t.p_localizable in (0.05, 0.95)


def _pixels_key(body: dict) -> tuple[str, str]:
    """(hash of the request's image pixels, hash of pixels + call type) for a chat request body."""
    content = body["messages"][-1]["content"]
    url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
    pixels = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB").tobytes()
    image_key = hashlib.sha256(pixels).hexdigest()
    return image_key, hashlib.sha256((image_key + json.dumps(body.get("logprobs"))).encode()).hexdigest()


@pytest.mark.slow
def test_flaky_teacher(geoscenes_data, tmp_path):
    """HTTP 500s, 429s and hangs once per request are retried away; a dead sample is recorded, not raised."""
    records = read_records(geoscenes_data)[:12]
    dead = {records[3].id, records[7].id}
    dead_pixels = {
        hashlib.sha256(Image.open(geoscenes_data / r.image).convert("RGB").tobytes()).hexdigest()
        for r in records if r.id in dead
    }  # fmt: skip
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def faults(n: int, body: dict) -> str | None:
        image_key, call_key = _pixels_key(body)
        with lock:
            attempts[call_key] = attempts.get(call_key, 0) + 1
            attempt = attempts[call_key]
        if image_key in dead_pixels:
            return "500"
        if attempt == 1:  # every call fails once: an error, a rate limit or a hang past the timeout
            return ("500", "429", "hang")[int(call_key, 16) % 3]
        return None

    with TeacherServer(world=geoscenes_data, faults=faults, hang_s=4.0, name="flaky") as server:
        cfg = DistillGroup(
            teachers=[TeacherConfig(name="flaky", kind="openai", base_url=server.base_url, model="reader")],
            concurrency=6, timeout_s=1.5, retries=3,
        )  # fmt: skip
        counts = distill(geoscenes_data, tmp_path / "o", cfg, limit=12, progress=False)
        statuses = dict(server.statuses)
    assert statuses.get(500, 0) >= 2 * 2 * 2 and statuses.get(429, 0) >= 1  # dead calls: 4 attempts each
    assert len([k for k, v in attempts.items() if v == 1]) == 0  # every call was retried at least once
    assert counts["distilled"] == 12 and counts["teacher_outputs_failed"] == 2
    assert counts["failed_by_teacher"] == {"flaky": 2}
    want = expected_texts(geoscenes_data, "flaky", 0.0, [r.id for r in records])
    for r in read_records(tmp_path / "o"):
        (t,) = r.teachers
        if r.id in dead:
            assert t.text is None and "gave up after 4 attempts" in t.error and "generate" in t.error
        else:
            assert t.error is None and t.text == want[r.id] and t.attempts >= 2 and t.p_localizable is not None


def test_an_http_teacher_carries_the_scene_readers_traits(geoscenes_data, tmp_path):
    """`TeacherServer` (and `python -m globe.tiny.teacher_server --city-bias ...`) stands in for
    params.yaml's scene-reader teachers over HTTP: the same traits give the same texts."""
    traits = {"noise": 0.1, "city_bias": 0.6, "omit_landmark": 0.2, "closer_look": 0.5}
    in_process = DistillGroup(teachers=[TeacherConfig(name="reader-a", kind="scene-reader", **traits)])
    counts = distill(geoscenes_data, tmp_path / "local", in_process, limit=24, progress=False)
    assert counts["distilled"] == 24
    with TeacherServer(world=geoscenes_data, name="reader-a", **traits) as server:
        over_http = DistillGroup(teachers=[TeacherConfig(name="reader-a", kind="openai", base_url=server.base_url,
                                                         model="reader")])  # fmt: skip
        distill(geoscenes_data, tmp_path / "http", over_http, limit=24, progress=False)
    local = {r.id: r.teachers[0].text for r in read_records(tmp_path / "local")}
    remote = {r.id: r.teachers[0].text for r in read_records(tmp_path / "http")}
    assert remote == local
    plain = expected_texts(geoscenes_data, "reader-a", 0.1, list(local))
    assert sum(plain[i] != local[i] for i in local) >= 4  # the traits changed what the teacher says


def test_scene_reader_answers_real_non_square_photos(shared_data):
    """A real photo is no GeoScenes frame, but the teacher must still answer, not error."""
    from PIL import Image

    from globe.engines import make_engine
    from globe.engines.base import Request, Sampling

    reader = make_engine({"kind": "scene-reader", "name": "reader"})
    photos = sorted((shared_data / "im2gps3k_sample" / "images").glob("*.jpg"))[:3]
    images = [Image.open(p) for p in photos]
    assert any(im.width != im.height for im in images)
    results = reader.generate([Request(image=im, prompt="where?") for im in images], Sampling())
    assert all(r.ok for r in results), [r.error for r in results]
    judged = reader.judge([Request(image=im, prompt="localizable?") for im in images])
    assert all(j.ok and 0.0 <= j.p_yes <= 1.0 for j in judged)
