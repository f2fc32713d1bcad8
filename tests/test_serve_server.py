"""A real KServe ModelServer with the globe predictor on loopback, driven by kserve's own
InferenceRESTClient (V1, V2 JSON, V2 binary) and raw HTTP, including the bad-input suite."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest

from _serve_helpers import b64, bomb_png, png_bytes
from _servers import ImageHost, start_predictor, stop

pytestmark = pytest.mark.slow
MAX_BODY = 1_000_000
FIELDS = {"id", "reasoning", "country", "country_code", "city", "lat", "lon", "coords_source", "resolution", "format_ok",
          "refused", "consistent", "reasoning_place", "named_cues", "raw"}


@pytest.fixture(scope="module")
def image_host():
    host = ImageHost()
    yield host
    host.httpd.shutdown()


@pytest.fixture(scope="module")
def server(tiny_model_dir, image_host, tmp_path_factory):
    """`python -m globe.serve` (the container entrypoint) with small limits, on a free port."""
    overrides = {
        "serve.max_body_bytes": MAX_BODY,
        "serve.max_new_tokens": 8,
        "serve.max_instances": 8,
        "serve.max_image_pixels": 1_000_000,
        "serve.max_latency_ms": 20,
        "serve.max_samples": 3,
        "serve.torch_threads": 1,  # a shared CI box: 2 OpenMP threads spin against other processes
        "serve.url_allowlist": f"[http://127.0.0.1:{image_host.port}/ok/]",
    }
    srv = start_predictor(str(tiny_model_dir), tmp_path_factory.mktemp("serve") / "server.log", overrides)
    yield srv
    stop(srv)


def post(server, path: str, **kw) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", timeout=60, **kw)


def test_health_metrics_and_loopback_bind(server):
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v1/models/globe").json() == {"name": "globe", "ready": True}
    meta = httpx.get(f"{server.url}/v2/models/globe").json()
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:] if line.split()[3] == "0A"]
    assert f"0100007F:{server.port:04X}" in listening  # 127.0.0.1, not 0.0.0.0
    assert f"00000000:{server.port:04X}" not in listening


def test_v1_and_v2_clients_get_the_same_prediction(server):
    image = png_bytes(64, 48, (10, 120, 200))

    async def run():
        v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=60))
        v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=60))
        r1 = await v1.infer(server.url, {"instances": [{"image_b64": b64(image), "id": "a"}]}, model_name="globe")
        text = InferInput("image", [1], "BYTES", [b64(image)])
        r2 = await v2.infer(server.url, InferRequest("globe", [text], request_id="r2"), model_name="globe")
        raw = InferInput("image", [1], "BYTES")
        raw.set_data_from_numpy(np.array([image], dtype=np.object_), binary_data=True)  # binary-data extension
        r3 = await v2.infer(server.url, InferRequest("globe", [raw], request_id="r3"), model_name="globe")
        return r1, r2, r3

    r1, r2, r3 = asyncio.run(run())
    pred = r1["predictions"][0]
    assert set(pred) == FIELDS and pred["id"] == "a" and isinstance(pred["raw"], str)
    assert pred["coords_source"] in (None, "stated", "geocoded")
    for resp in (r2, r3):
        outputs = {o.name: o for o in resp.outputs}
        assert set(outputs) == {"prediction", "country_code", "city", "lat", "lon"}
        v2_pred = json.loads(outputs["prediction"].data[0])
        assert {**v2_pred, "id": "a"} == pred  # identical answer whichever protocol carried the image
        assert outputs["lat"].datatype == "FP64"
    raw_body = post(server, "/v1/models/globe:predict", content=image, headers={"content-type": "image/png"})
    assert raw_body.status_code == 200 and {**raw_body.json()["predictions"][0], "id": "a"} == pred


def test_predict_command_matches_the_server(server, tiny_model_dir, tmp_path):
    from globe.config import load_params
    from globe.serve.files import predict_files

    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(64, 48, (90, 160, 40)))
    cfg = load_params(None, overrides=["serve.max_new_tokens=8"]).serve
    local = predict_files([path], str(tiny_model_dir), cfg)[0]
    remote = post(server, "/v1/models/globe:predict", json={"instances": [{"image_b64": b64(path.read_bytes())}]}).json()
    assert {**remote["predictions"][0], "id": str(path)} == local


def test_served_images_are_decoded_to_the_engine_input_size_as_the_harness_loads_them(tiny_model_dir, tmp_path):
    """Serving and the evaluation harness feed the model identical pixels: both decode straight to
    the engine's input size (`GeoPredictor.fit`, `LocalEngine.input_size`)."""
    from PIL import Image

    from globe.config import ServeGroup
    from globe.evaluate.benchmarks import Sample
    from globe.evaluate.runner import _load_batch
    from globe.serve.model import GlobeModel

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (900, 600), (30, 90, 200)).save(path, quality=90)
    model = GlobeModel(str(tiny_model_dir), ServeGroup(max_new_tokens=4))
    model.load()
    try:
        decoded = asyncio.run(model.preprocess({"instances": [{"image_b64": b64(path.read_bytes())}]}))
        model.batcher.withdraw(decoded.token)
    finally:
        model.stop()
    engine = model.predictor.engine
    harness = _load_batch([Sample(id="p", image=str(path), lat=1, lon=1)], engine.input_size)[0][0]
    served = decoded.images[0]
    assert served.size == engine.input_size(900, 600) and served.width < 900 / 4
    assert (served.size, served.tobytes()) == (harness.size, harness.tobytes())


def _binary_v2(header: dict, payload: bytes) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + payload, {"inference-header-content-length": str(len(head)), "content-type": "application/octet-stream"}


BAD_INPUTS = [
    ("v1 invalid base64", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": "%%%not-base64"}]}}, 400, "invalid base64"),
    ("v1 not an image", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(b"hello world, no pixels")}]}}, 400, "not an image"),
    ("v1 truncated", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(png_bytes()[:-40])}]}}, 400, "truncated or corrupt"),
    ("v1 bomb", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(bomb_png(30_000, 30_000))}]}}, 400, "decompression bomb"),
    ("v1 huge dims", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(bomb_png(2000, 2000))}]}}, 400, "above the limit of 1000000"),
    ("v1 not json", "/v1/models/globe:predict", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "Unrecognized request format"),
    ("v1 instances type", "/v1/models/globe:predict", {"json": {"instances": {"image_b64": "x"}}}, 400, "instances: expected a list"),
    ("v1 missing instances", "/v1/models/globe:predict", {"json": {"inputs": []}}, 400, "missing field 'instances'"),
    ("v1 missing image", "/v1/models/globe:predict", {"json": {"instances": [{"id": "x"}]}}, 400, "expected exactly one of"),
    ("v1 too many", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(png_bytes())}] * 9}}, 400, "above the limit of 8"),
    ("v2 wrong datatype", "/v2/models/globe/infer", {"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [1.0]}]}}, 400, "expected 'BYTES'"),
    ("v2 wrong input name", "/v2/models/globe/infer", {"json": {"inputs": [{"name": "img", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 400, "missing input named 'image'"),
    ("v2 missing data", "/v2/models/globe/infer", {"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES"}]}}, 422, "data"),
    ("v2 wrong types", "/v2/models/globe/infer", {"json": {"inputs": "image"}}, 422, "inputs"),
    ("v2 binary size lies", "/v2/models/globe/infer", dict(zip(("content", "headers"), _binary_v2({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 999}}]}, b"\x03\x00\x00\x00abc"))), 400, "does not fit"),
    ("v2 binary header lacks name", "/v2/models/globe/infer", dict(zip(("content", "headers"), _binary_v2({"inputs": [{"shape": [3], "datatype": "UINT8", "parameters": {"binary_data_size": 3}}]}, b"abc"))), 400, "inputs[0].name is missing"),
    ("oversized body", "/v1/models/globe:predict", {"content": b"x" * (MAX_BODY + 500_000), "headers": {"content-type": "application/json"}}, 413, "larger than the limit"),
    ("oversized chunked body", "/v1/models/globe:predict", {"content": iter([b"x" * 400_000] * 4), "headers": {"content-type": "application/json"}}, 413, "larger than the limit"),
    ("v1 too many samples", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(png_bytes()), "samples": 4}]}}, 400, "instances[0].samples: 4 samples is outside 1..3"),
    ("v1 zero samples", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(png_bytes()), "samples": 0}]}}, 400, "outside 1..3"),
    ("v1 samples as text", "/v1/models/globe:predict", {"json": {"instances": [{"image_b64": b64(png_bytes()), "samples": "2"}]}}, 400, "expected an integer number of samples"),
    ("v2 too many samples", "/v2/models/globe/infer", {"json": {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(png_bytes())]}], "parameters": {"samples": 9}}}, 400, "parameters.samples: 9 samples is outside 1..3"),
    ("url not allowlisted", "/v1/models/globe:predict", {"json": {"instances": [{"image_url": "http://169.254.169.254/latest/meta-data/"}]}}, 400, "not on this server's allowlist"),
]


@pytest.mark.parametrize("path, kwargs, status, fragment", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(server, path, kwargs, status, fragment):
    resp = post(server, path, **kwargs)
    assert resp.status_code == status, resp.text
    body = resp.json()
    message = body.get("error") or json.dumps(body.get("detail"))
    assert fragment in message, message
    assert httpx.get(f"{server.url}/v2/models/globe/ready").status_code == 200  # still serving


def test_urls_are_fetched_only_when_allowlisted(server, image_host):
    image_host.paths.clear()
    refused = [f"http://127.0.0.1:{image_host.port}/secret/x.png", f"http://localhost:{image_host.port}/ok/x.png", "http://169.254.169.254/ok/x.png"]
    for url in refused:
        resp = post(server, "/v1/models/globe:predict", json={"instances": [{"image_url": url}]})
        assert resp.status_code == 400 and "allowlist" in resp.json()["error"]
    assert image_host.paths == []  # refused without a single request leaving the server
    ok = post(server, "/v1/models/globe:predict", json={"instances": [{"image_url": f"http://127.0.0.1:{image_host.port}/ok/a.png"}]})
    assert ok.status_code == 200 and set(ok.json()["predictions"][0]) == FIELDS
    assert image_host.paths == ["/ok/a.png"]


def test_concurrent_requests_are_batched(server):
    def batch_counts() -> tuple[float, float]:
        text = httpx.get(f"{server.url}/metrics").text
        values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line.startswith("globe_batch_size_")}
        return values["globe_batch_size_count"], values["globe_batch_size_sum"]

    count0, sum0 = batch_counts()

    async def burst():
        async with httpx.AsyncClient(timeout=60) as client:
            bodies = [{"instances": [{"image_b64": b64(png_bytes(40, 40, (i * 30, 50, 90)))}]} for i in range(8)]
            return await asyncio.gather(*(client.post(f"{server.url}/v1/models/globe:predict", json=b) for b in bodies))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 8
    count1, sum1 = batch_counts()
    assert sum1 - sum0 == 8  # eight images went through the engine ...
    assert count1 - count0 < 8  # ... in fewer engine calls than requests


def test_samples_ask_for_a_consensus_over_v1_and_v2(server):
    """`samples` in a V1 instance or a V2 request parameter: the answer gains `samples`,
    `confidence` and `candidates`; instances without it stay greedy; images go through the batcher."""
    image = png_bytes(64, 48, (10, 120, 200))
    v1 = post(server, "/v1/models/globe:predict", json={"instances": [
        {"image_b64": b64(image), "id": "a", "samples": 3}, {"image_b64": b64(image), "id": "b"}]})
    assert v1.status_code == 200, v1.text
    voted, greedy = v1.json()["predictions"]
    assert set(voted) == FIELDS | {"samples", "agreement", "n_unplaced", "confidence", "calibrated", "candidates"}
    assert set(greedy) == FIELDS
    assert voted["samples"] == 3 and 0.0 <= voted["confidence"] <= 1.0 and voted["calibrated"] is False
    assert voted["confidence"] == voted["agreement"] == (voted["candidates"][0]["share"] if voted["candidates"] else 0.0)
    for cand in voted["candidates"]:
        assert set(cand) == {"lat", "lon", "country", "country_code", "city", "share", "votes", "reasoning"}
    body = {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64(image)]}], "parameters": {"samples": 2}}
    v2 = post(server, "/v2/models/globe/infer", json=body)
    assert v2.status_code == 200, v2.text
    pred = json.loads(next(o for o in v2.json()["outputs"] if o["name"] == "prediction")["data"][0])
    assert pred["samples"] == 2 and 0.0 <= pred["confidence"] <= 1.0 and isinstance(pred["candidates"], list)


def test_sigterm_finishes_in_flight_work_and_exits_cleanly(server):
    result: dict = {}

    def call():
        result["resp"] = post(server, "/v1/models/globe:predict", json={"instances": [{"image_b64": b64(png_bytes())}] * 8})

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    worker.join(timeout=60)
    assert server.proc.wait(timeout=60) == 0
    assert result["resp"].status_code == 200 and len(result["resp"].json()["predictions"]) == 8
