"""The tiny Qwen2.5-VL model through the harness on the real IM2GPS3K photos, the report rendered in
headless Debian chromium, and a served `globe` predictor evaluated over its KServe V1 endpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from _servers import free_port, start_predictor, stop
from PIL import Image
from typer.testing import CliRunner


from globe.cli import app

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
N_IMAGES = 6
TOKENS = 12


@pytest.fixture(scope="module")
def im2gps_run(tiny_model_dir, shared_data, tmp_path_factory):
    """`globe eval run` with the tiny model on the first real IM2GPS3K photos."""
    out = tmp_path_factory.mktemp("eval") / "im2gps"
    base = shared_data / "im2gps3k_sample"
    result = CliRunner().invoke(app, [
        "eval", "run", "--model", str(tiny_model_dir), "--benchmark", "im2gps3k", "--csv", str(base / "im2gps3k_sample40.csv"),
        "--images", str(base / "images"), "--out", str(out), "--limit", str(N_IMAGES), "--no-progress",
        "--params", str(out.parent / "none.yaml"), "--set", f"eval.max_new_tokens={TOKENS}", "--set", "eval.bootstrap=100",
        "--set", "eval.batch_size=3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_tiny_model_on_real_photos(im2gps_run):
    rows = [json.loads(x) for x in (im2gps_run / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == N_IMAGES and all(r["error"] is None and isinstance(r["output"], str) for r in rows)
    assert all(r["label_source"] == "reverse-geocoded" and r["country_code"] for r in rows)
    metrics = json.loads((im2gps_run / "metrics.json").read_text())
    assert metrics["n"] == N_IMAGES and metrics["n_unparsed"] == sum(r["distance_km"] is None for r in rows)
    # an untrained model places nothing: every threshold is a miss, and no row was dropped
    assert metrics["acc_2500km"] == sum(r["distance_km"] is not None and r["distance_km"] <= 2500 for r in rows) / N_IMAGES
    for name in ("accuracy_curve.png", "world_map.png"):
        with Image.open(im2gps_run / name) as img:
            assert img.format == "PNG" and min(img.size) > 400


# ----------------------------------------------------------------------------- the report in chromium

PROBE = """<script>
window.addEventListener('load', () => {
  // content box in CSS px (= screenshot px at scale factor 1), borders excluded
  const box = e => { const r = e.getBoundingClientRect(); return [r.left + e.clientLeft, r.top + e.clientTop, e.clientWidth, e.clientHeight]; };
  document.body.setAttribute('data-probe', JSON.stringify({
    images: [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0, natural: [i.naturalWidth, i.naturalHeight], box: box(i)})),
    tables: [...document.querySelectorAll('table')].map(t => ({id: t.id, rows: t.rows.length, box: box(t)})),
    scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight]}));
});
</script></body>"""
WINDOW = (1280, 4000)


def _short_tmp_base() -> str:
    """Chromium puts its singleton socket under $TMPDIR, and a Unix socket path has at most 107
    bytes: under a long temporary path chromium exits ("Socket path too long"). Its TMPDIR is a
    short system one when there is one; the profile and the page stay in the test's tmp_path."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if len(base) <= 40 and os.path.isdir(base) and os.access(base, os.W_OK):
            return base
    return tempfile.gettempdir()


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
           "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={WINDOW[0]},{WINDOW[1]}", *args]
    with tempfile.TemporaryDirectory(dir=_short_tmp_base(), prefix="chromium-") as short:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": short})


def render_problems(html: str, tmp: Path) -> list[str]:
    """What chromium did not render: images that did not decode or show where the layout put them,
    a metrics table with no rows or no size. Empty when the page really rendered."""
    tmp.mkdir(parents=True, exist_ok=True)
    page = tmp / "page.html"
    page.write_text(html.replace("</body>", PROBE, 1), encoding="utf-8")
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", page.as_uri(), tmp=tmp).stdout
    found = re.search(r'data-probe="([^"]*)"', dom)
    if not found:
        return ["the page did not load (no probe in the dumped DOM)"]
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    shot_path = tmp / "shot.png"
    chromium(f"--screenshot={shot_path}", page.as_uri(), tmp=tmp)
    shot = np.asarray(Image.open(shot_path).convert("RGB"), dtype=float)
    problems = []
    tables = {t["id"]: t for t in probe["tables"]}
    metrics = tables.get("metrics")
    if metrics is None or metrics["rows"] < 10 or metrics["box"][3] < 100:
        problems.append(f"metrics table not rendered: {metrics}")
    else:  # its header row is painted in the header colour (#1f3b5c) where the layout put it
        x, y, w, _ = (int(v) for v in metrics["box"])
        header = shot[y + 2:y + 12, x + 2:x + w - 2]
        if header.size == 0 or np.abs(header - (31, 59, 92)).max(axis=2).mean() > 40:
            problems.append("metrics table header is not painted")
    images = probe["images"]
    if len(images) < 3:
        problems.append(f"only {len(images)} images in the page")
    src = re.findall(r'<img alt="([^"]*)" src="data:image/[a-z]+;base64,([^"]+)"', html)
    for img, (_, b64) in zip(images, src):
        if not img["ok"]:
            problems.append(f"image {img['alt']!r} did not decode")
            continue
        x, y, w, h = (int(round(v)) for v in img["box"])
        if w < 20 or h < 20 or y + h > shot.shape[0]:
            problems.append(f"image {img['alt']!r} has no visible box {img['box']}")
            continue
        # the screenshot pixels in the image's box must look like the image (object-fit: contain)
        import base64
        import io

        original = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
        scale = min(w / original.width, h / original.height)
        fw, fh = max(1, int(original.width * scale)), max(1, int(original.height * scale))
        ox, oy = x + (w - fw) // 2, y + (h - fh) // 2
        crop = shot[oy + 2:oy + fh - 2, ox + 2:ox + fw - 2]
        expect = np.asarray(original.resize((fw, fh)), dtype=float)[2:fh - 2, 2:fw - 2]
        corr = np.corrcoef(crop.ravel(), expect.ravel())[0, 1] if crop.shape == expect.shape else -1.0
        if corr < 0.9:
            problems.append(f"image {img['alt']!r} is not what the screenshot shows there (correlation {corr:.2f})")
    return problems


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (scripts/setup.sh installs it as root)")
def test_report_renders_its_table_and_images_in_headless_chromium(im2gps_run, tmp_path):
    html = (im2gps_run / "report.html").read_text()
    assert render_problems(html, tmp_path) == []
    # the check can fail: corrupt every image and hide the table, and it says so
    broken = re.sub(r'(src="data:image/[a-z]+;base64,)[^"]{40}', r"\1AAAA", html)
    broken = broken.replace('<table id="metrics">', '<table id="metrics" style="display:none">')
    problems = render_problems(broken, tmp_path / "b")
    assert any("metrics table not rendered" in p for p in problems)
    assert sum("did not decode" in p for p in problems) == len(re.findall(r"<img ", html)) >= N_IMAGES + 2


# ----------------------------------------------------------------------------- a served predictor


@pytest.fixture(scope="module")
def predictor_url(tiny_model_dir, tmp_path_factory):
    """`python -m globe.serve` (the KServe container entrypoint) with the tiny model on loopback."""
    srv = start_predictor(str(tiny_model_dir), tmp_path_factory.mktemp("serve") / "server.log", {"serve.max_new_tokens": TOKENS})
    yield srv.url
    stop(srv)


def test_served_predictor_is_evaluated_through_its_v1_endpoint(predictor_url, tiny_model_dir, shared_data, tmp_path):
    from globe.engines import LocalEngine
    from globe.engines.base import Request, Sampling
    from globe.evaluate.benchmarks import load_benchmark
    from globe.evaluate.runner import RunError, RunSpec, build_engine, evaluate
    from globe.images import open_ref as open_image
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM

    base = shared_data / "im2gps3k_sample"
    samples = load_benchmark("im2gps3k", csv_path=base / "im2gps3k_sample40.csv", images=base / "images", limit=4)
    client = build_engine("globe-predictor", "globe", base_url=predictor_url, concurrency=4)
    # the harness's own decoding (eval.max_new_tokens 120) is not what the server decodes with
    spec = RunSpec(benchmark="im2gps3k", model="globe", engine="globe-predictor", prompt=GEO_PROMPT, system=GEO_SYSTEM,
                   max_new_tokens=120, temperature=0.0)
    m = evaluate(client, samples, tmp_path / "served", spec, n_boot=50, gallery_size=4, progress=False)
    rows = [json.loads(x) for x in (tmp_path / "served" / "predictions.jsonl").read_text().splitlines()]
    assert m["n"] == 4 and m["n_errors"] == 0 and [r["id"] for r in rows] == [s.id for s in samples]
    run = json.loads((tmp_path / "served" / "run.json").read_text())
    assert run["max_new_tokens"] == TOKENS and run["temperature"] == 0.0 and run["extra"]["decoding"] == "server"
    assert run["extra"]["server_decoding"] == client.decoding()
    assert {k: v for k, v in client.decoding().items() if k != "consensus"} == {"max_new_tokens": TOKENS, "temperature": 0.0,
                                                                                  "top_p": 1.0, "seed": 0}
    # the server's raw text is what the same model writes in-process on the same pixels (PNG, lossless)
    local = LocalEngine(tiny_model_dir).generate(
        [Request(image=open_image(s.image), prompt=GEO_PROMPT, system=GEO_SYSTEM) for s in samples],
        Sampling(max_new_tokens=TOKENS))
    assert [r["output"] for r in rows] == [x.text for x in local]
    # the predictor's own coordinates are given to the scorer: the stated protocol's; the headline
    # geocodes the names it returned, as for any engine
    for r in rows:
        assert r["stated"]["coords_source"] in ("none", "given", "geocoded")
        assert (r["stated"]["coords_source"] == "given") == ("predictor_coords_source" in r)
        assert r["coords_source"] in ("none", "geocoded", "given")
    voted = evaluate(build_engine("globe-predictor", "globe", base_url=predictor_url, concurrency=4, samples=2),
                     samples[:2], tmp_path / "voted", RunSpec(**{**spec.__dict__, "samples": 2}), n_boot=0, gallery_size=0,
                     progress=False)
    rows = [json.loads(x) for x in (tmp_path / "voted" / "predictions.jsonl").read_text().splitlines()]
    assert all(r["samples"] == 2 and 0 <= r["confidence"] <= 1 and isinstance(r["candidates"], list) for r in rows)
    served = client.decoding()["consensus"]  # the server's consensus decoding, not the spec's greedy one
    assert json.loads((tmp_path / "voted" / "run.json").read_text())["temperature"] == served["temperature"] > 0
    assert voted["ece"] is not None and (tmp_path / "voted" / "calibration.png").is_file()  # the server's vote, calibrated
    down = build_engine("globe-predictor", "globe", base_url=f"http://127.0.0.1:{free_port()}")
    down.retries, down.backoff_s = 1, 0.01
    result = down.predict([open_image(samples[0].image)], ["x"])[0]
    assert not result.ok and "ConnectError" in result.error and result.attempts == 2
    with pytest.raises(RunError, match="ConnectError"):  # nothing to record: refused before anything is written
        evaluate(down, samples, tmp_path / "down", spec, n_boot=0, progress=False)
    assert not (tmp_path / "down").exists()
