"""The demo page (issue 27): served by the predictor, off by setting, self-contained, and working in
a real browser (headless Debian chromium over the DevTools protocol) against a loopback predictor
with the tiny model and real IM2GPS3K photos, errors included."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from _serve_helpers import b64
from _servers import start_predictor, stop

CONSENSUS = {"samples", "agreement", "n_unplaced", "confidence", "calibrated", "candidates"}
MAX_BODY = 200_000  # the smallest sample photos fit, the largest (~320 KB, ~420 KB as base64) do not


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    """The tiny model loaded in-process, as `run_server` loads it."""
    from globe.config import ServeGroup
    from globe.serve.model import GlobeModel

    def make(**settings):
        model = GlobeModel(str(tiny_model_dir), ServeGroup(max_new_tokens=4, torch_threads=1, **settings))
        model.load()
        return model

    return make


def app_for(model):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from globe.serve.demo import install_demo

    app = FastAPI()
    installed = install_demo(app, model)
    return installed, TestClient(app)


def test_the_page_and_its_map_are_served_unless_switched_off(loaded):
    on, client = app_for(loaded())
    page = client.get("/demo")
    assert on and page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    svg = client.get("/demo/world.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert svg.text.startswith("<svg") and 'viewBox="0 0 360 180"' in svg.text
    off, client = app_for(loaded(demo=False))
    assert not off
    assert client.get("/demo").status_code == 404 and client.get("/demo/world.svg").status_code == 404
    assert client.get("/", headers={"accept": "text/html"}).status_code == 404  # no redirect to a page that is not there


def test_the_page_loads_nothing_from_elsewhere_and_its_scripts_are_pinned(loaded):
    from globe.serve.demo import render_page

    page, csp = render_page(loaded())
    assert not re.search(r"https?:|//[a-z0-9]", page, re.I), "the page must not name an external URL"
    for ref in re.findall(r'(?:src|href|action)="([^"]*)"', page):
        assert not re.match(r"[a-z][a-z0-9+.-]*:|//", ref, re.I), ref  # relative: this server only
    assert len(page) < 24_000  # small: one request, no libraries
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 1 and csp.count("'sha256-") == 2  # the inline script and style, by hash


def test_the_answer_document_carries_everything_the_page_reads(loaded):
    """Every field the page's script reads (`p.x`, `c.x`, `rp.x`) is in the predictor's document,
    and the cues a reasoning names come from the library's reader, in the document."""
    from globe.answer import format_answer
    from globe.data.grounding_check import named_cues
    from globe.serve.predictor import CANDIDATE_FIELDS, answer_to_prediction

    think = ("The top of the image shows a red-white-black flag band, the colours of Egypt. A tower landmark stands on "
             "the skyline; that silhouette belongs to Cairo. The subtropical sky and sandy ground fit subtropical latitudes.")
    doc = answer_to_prediction(format_answer(think, "Egypt", "Cairo", 30.0626, 31.2497))
    assert doc["named_cues"] == named_cues(think) == ["red-white-black flag band", "tower landmark", "subtropical sky",
                                                      "sandy ground"]
    assert doc["consistent"] is True and doc["reasoning_place"]["city"] == "Cairo"
    script = (Path(__import__("globe.serve", fromlist=["x"]).__file__).parent / "demo.html").read_text()
    read = set(re.findall(r"\bp\.([a-z_]+)", script))
    assert read and read <= set(doc) | CONSENSUS, read - set(doc) - CONSENSUS
    assert set(re.findall(r"\bc\.([a-z_]+)", script)) <= set(CANDIDATE_FIELDS)
    assert set(re.findall(r"\brp\.([a-z_]+)", script)) <= set(doc["reasoning_place"])


def test_the_page_says_when_the_model_is_the_tiny_demo_model(loaded):
    from globe.serve.demo import model_facts, render_page

    model = loaded()
    facts = model_facts(model)
    assert facts["tiny"] is True and 100_000 < facts["parameters"] < 1_000_000 and facts["engine"] == "local"
    page, _ = render_page(model)
    assert "This is the tiny demo model" in page and "synthetic world" in page
    assert "Image URLs are off on this server" in page and 'id="url"' not in page  # the allowlist is empty


# ----------------------------------------------------------------------------- in chromium, against the server

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium not installed (scripts/setup.sh installs it as root)")


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    overrides = {"serve.max_new_tokens": 24, "serve.max_samples": 4, "serve.torch_threads": 1,
                 "serve.max_body_bytes": MAX_BODY, "serve.max_latency_ms": 5}
    srv = start_predictor(str(tiny_model_dir), tmp_path_factory.mktemp("demo") / "server.log", overrides)
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def photos(shared_data):
    images = sorted((shared_data / "im2gps3k_sample" / "images").glob("*.jpg"), key=lambda p: p.stat().st_size)
    assert len(images) >= 2
    return images


def test_a_browser_at_root_is_sent_to_the_page_and_a_probe_is_not(server):
    probe = httpx.get(f"{server.url}/")
    assert probe.status_code == 200 and probe.json() == {"status": "alive"}  # KServe's liveness, unchanged
    browser = httpx.get(f"{server.url}/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert browser.status_code == 303 and browser.headers["location"] == "demo" and browser.headers["x-request-id"]


@pytest.mark.slow
@needs_chromium
def test_a_person_locates_a_real_photo_in_chromium(server, photos, tmp_path):
    from _cdp import Browser

    # the smallest photos the tiny model places somewhere (it is untrained: not every one parses)
    samples = 4
    for photo in photos[:8]:
        doc = httpx.post(f"{server.url}/v1/models/globe:predict", timeout=120,
                         json={"instances": [{"image_b64": b64(photo.read_bytes()), "samples": samples}]}).json()["predictions"][0]
        if doc["lat"] is not None:
            break
    assert doc["lat"] is not None, "the tiny model placed none of the photos; nothing to draw"

    with Browser(tmp_path / "profile") as page:
        page.goto(f"{server.url}/")  # a browser at / lands on the page
        assert page.js("location.pathname") == "/demo"
        assert "This is the tiny demo model" in page.js("document.querySelector('.notice').textContent")
        # keyboard: the controls are real ones, reached with Tab in order, focus visible
        order = []
        for _ in range(3):
            page.key("Tab", "Tab", 9)
            order.append(page.js("document.activeElement.id"))
        assert order == ["file", "samples", "go"], order
        assert page.js("getComputedStyle(document.activeElement).outlineStyle") == "solid"
        page.set_file("#file", photo)
        page.js(f"document.getElementById('samples').value = '{samples}'")
        page.js("document.getElementById('go').focus()")
        page.key("Enter", "Enter", 13)  # submits the form from the keyboard
        page.wait_for("!document.getElementById('result').hidden")
        assert page.js("document.getElementById('error').hidden")
        shown = page.js("""(() => { const t = id => document.getElementById(id).textContent; return {
            country: t('a-country'), city: t('a-city'), coords: t('a-coords'), conf: t('a-conf'), reasoning: t('reasoning'),
            raw: t('raw'), support: t('support'), caption: document.getElementById('map-list').innerText,
            desc: t('map-desc'), rows: document.querySelectorAll('#candidates tbody tr').length,
            markers: [...document.querySelectorAll('#markers > *')].map(m => ({cls: m.getAttribute('class'),
              cx: Number(m.getAttribute('cx')), cy: Number(m.getAttribute('cy')), title: m.textContent,
              box: m.getBoundingClientRect().width}))}; })()""")
        assert shown["country"].startswith(doc["country"]) and (doc["city"] or "none given") == shown["city"]
        assert f"{abs(doc['lat']):.4f}" in shown["coords"] and f"{abs(doc['lon']):.4f}" in shown["coords"]
        assert shown["conf"].startswith(f"{round(doc['confidence'] * 100)}%") and shown["rows"] == len(doc["candidates"])
        assert shown["raw"] == doc["raw"]  # the model's text, exactly
        assert (shown["reasoning"] == doc["reasoning"]) if doc["reasoning"] else "wrote no reasoning" in shown["reasoning"]
        assert ("does not support" in shown["support"]) if doc["consistent"] is False else True
        answer = [m for m in shown["markers"] if m["cls"] == "m-answer"]
        assert len(answer) == 1 and answer[0]["box"] > 0  # drawn, with a size on screen
        assert answer[0]["cx"] == pytest.approx(doc["lon"] + 180, abs=1e-3) and answer[0]["cy"] == pytest.approx(90 - doc["lat"], abs=1e-3)
        others = [c for c in doc["candidates"] if c["lat"] is not None and (c["lat"], c["lon"]) != (doc["lat"], doc["lon"])]
        assert sum(m["cls"] == "m-candidate" for m in shown["markers"]) == len(others)
        assert "The answer:" in shown["caption"] and shown["desc"].startswith("The answer:")  # the map in words
        assert page.js("document.querySelector('svg#map image').getBoundingClientRect().width") > 600  # the land drew
        shot = page.screenshot(tmp_path / "demo.png")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

        # a broken file: the server's own 400 message, shown plainly
        broken = tmp_path / "broken.jpg"
        broken.write_bytes(photo.read_bytes()[:1500])
        expected = httpx.post(f"{server.url}/v1/models/globe:predict", json={"instances": [{"image_b64": b64(broken.read_bytes())}]})
        assert expected.status_code == 400
        assert_error_shown(page, broken, 400, expected.json()["error"])

        # a photo above the server's body limit: its 413, shown plainly, and the page still works after
        big = photos[-1]
        assert big.stat().st_size * 4 / 3 > MAX_BODY
        assert_error_shown(page, big, 413, "request body is larger than the limit")


def assert_error_shown(page, path: Path, status: int, message: str) -> None:
    page.js("document.getElementById('error').hidden = true")
    page.set_file("#file", path)
    page.js("document.getElementById('go').click()")
    page.wait_for("!document.getElementById('error').hidden")
    text = page.js("document.getElementById('error').textContent")
    assert f"HTTP {status}" in text and message in text, text
    assert page.js("document.getElementById('error').getAttribute('role')") == "alert"  # read out at once
    assert not page.js("document.getElementById('go').disabled")


@pytest.mark.slow
@needs_chromium
def test_the_cues_and_the_concluded_place_are_marked_in_a_real_reasoning(geoscenes_data, tmp_path):
    """The untrained tiny model writes no reasoning to mark. The tiny world's GeoScenes reader does:
    behind `serve.engine=openai` it stands in for vLLM (docs/serve.md, "Requests and answers"), and
    the page marks exactly the cues the server listed and the place the reasoning concludes."""
    import json

    from _cdp import Browser

    from globe.tiny.teacher_server import TeacherServer

    record = next(r for r in map(json.loads, (geoscenes_data / "records.jsonl").read_text().splitlines()) if r["entities"])
    image = geoscenes_data / record["image"]
    with TeacherServer(world=geoscenes_data, name="scene-reader") as teacher:
        srv = start_predictor("scene-reader", tmp_path / "server.log", {"serve.engine": "openai", "serve.base_url": teacher.base_url})
        try:
            doc = httpx.post(f"{srv.url}/v1/models/globe:predict", timeout=60,
                             json={"instances": [{"image_b64": b64(image.read_bytes()), "samples": 1}]}).json()["predictions"][0]
            assert doc["named_cues"] and doc["reasoning_place"] and doc["consistent"] is True
            with Browser(tmp_path / "profile") as page:
                page.goto(f"{srv.url}/demo")
                assert page.js("document.querySelector('.notice')") is None  # the size behind an endpoint is unknown: no claim
                page.set_file("#file", image)
                page.js("document.getElementById('samples').value = '1'")
                page.js("document.getElementById('go').click()")
                page.wait_for("!document.getElementById('result').hidden")
                marks = page.js("[...document.querySelectorAll('#reasoning mark')].map(m => [m.className, m.textContent])")
                assert page.js("document.getElementById('reasoning').textContent") == doc["reasoning"]  # marked, not changed
                assert list(dict.fromkeys(t.lower() for k, t in marks if k == "cue")) == doc["named_cues"]
                assert doc["reasoning_place"]["city"] in [t for k, t in marks if k == "place"]
                assert page.js("document.getElementById('support').className") == "support yes"
                assert page.js("document.getElementById('a-conf').hidden") and page.js("document.getElementById('cand-box').hidden")
                kinds = page.js("[...document.querySelectorAll('#markers > *')].map(m => m.getAttribute('class'))")
                assert sorted(kinds) == ["m-answer", "m-reasoning"]
        finally:
            stop(srv)
