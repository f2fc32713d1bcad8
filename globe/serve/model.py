"""`GlobeModel`: the KServe predictor named "globe".

It follows the shape of kserve's own custom-model examples: `load()` builds the engine and sets
`ready` only once the weights are in memory (KServe's readiness probe and `/v2/models/globe/ready`
read that flag), one `preprocess` accepts both protocols, `predict` runs the engine, `postprocess`
shapes the protocol's response.

- V1 `POST /v1/models/globe:predict` with `{"instances": [{"image_b64": "..."} | {"image_url": "..."}]}`
  answers `{"predictions": [...]}`. A raw image body with an image content type also works.
- `GET /v1/models/globe/decoding` answers the decoding settings every prediction uses
  (`max_new_tokens`, `temperature`, `top_p`, `seed`, and under `consensus` the `temperature`,
  `top_p`, `max_samples` of answers asked for `samples`), so an evaluation can record them.
- V2 `POST /v2/models/globe/infer` with a BYTES input `image` (base64 strings, or raw file bytes via
  the binary-data extension or gRPC) answers BYTES output `prediction` (one JSON document per image)
  plus `country_code`, `city` (BYTES) and `lat`, `lon` (FP64, NaN when unknown).
- Either may ask for a consensus answer: `"samples": N` in a V1 instance, or in a V2 request's
  `parameters`, 1 <= N <= `serve.max_samples` (else HTTP 400). The prediction document then
  carries `samples`, `agreement`, `n_unplaced` (samples that gave no place), `confidence`,
  `calibrated` and `candidates`
  (`globe.serve.predictor.consensus_prediction`).

Images from every request go through one `DynamicBatcher`, so concurrent requests share engine calls.
Each request decodes its images one at a time, on a small shared decode pool (`serve.decode_threads`),
straight to the model's input size and within its pixel budget (`serve.max_request_pixels`), so a
request never holds more than one full-size image and the server never more than `decode_threads`.

A failed generation answers 500 with a short message and the request id (`x-request-id`, set by
the request guard when the client sent none); what the engine or an upstream endpoint said goes to
the server log under that id, never to the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import kserve
from kserve.errors import ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import Histogram

from globe.config import ServeGroup
from globe.engines.base import Engine, Sampling
from globe.serve.batching import DynamicBatcher
from globe.serve.inputs import (
    BadInput,
    ImageRef,
    InputLimits,
    check_id,
    excerpt,
    fetch_url,
    load_image,
    parse_v1,
    parse_v2,
    precheck_budget,
    request_budget,
)
from globe.serve.predictor import GenerationFailed, GeoPredictor

MODEL_NAME = "globe"
OUTPUTS = ("prediction", "country_code", "city", "lat", "lon")
RELEASE_AFTER_PIXELS = 16_000_000  # hand freed decode memory back to the OS after requests this large
log = logging.getLogger("globe.serve")
# Exposed on KServe's /metrics next to its own latency histograms: shows whether batching happens.
BATCH_SIZE = Histogram("globe_batch_size", "Images per engine call (dynamic batching)", buckets=(1, 2, 4, 8, 16, 32, 64))


@dataclass
class _Decoded:
    """What preprocess hands to predict: the images plus how to answer."""

    images: list[Any]
    ids: list[str]
    v2: InferRequest | None = None
    token: object | None = None
    samples: list[int] | None = None  # per image; None = one greedy answer each
    request_id: str = ""
    decoded_pixels: int = 0


def limits_from(cfg: ServeGroup) -> InputLimits:
    return InputLimits(
        max_image_pixels=cfg.max_image_pixels,
        max_image_bytes=cfg.max_body_bytes,
        max_instances=cfg.max_instances,
        max_request_pixels=cfg.max_request_pixels,
        max_side=cfg.image_max_side,
        url_allowlist=tuple(cfg.url_allowlist),
        url_timeout_s=cfg.url_timeout_s,
        max_samples=cfg.max_samples,
    )


def build_predictor(cfg: ServeGroup, engine: Engine, judge: Engine | None = None) -> GeoPredictor:
    """The one place the predictor is built, for the KServe model and `globe predict` alike, with
    the `serve` group's decoding: greedy answers (`serve.max_new_tokens`), and consensus samples at
    `serve.sample_temperature` / `sample_top_p` for requests that ask for `samples`, their
    confidence calibrated by `serve.calibration` (for the N it was fitted at) when one is set."""
    greedy = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=0.0, seed=cfg.seed)
    sampled = Sampling(max_new_tokens=cfg.max_new_tokens, temperature=cfg.sample_temperature, top_p=cfg.sample_top_p,
                       seed=cfg.seed)
    calibration = None
    if cfg.calibration:
        from globe.consensus import Calibration

        # any N may be asked for; the calibration applies to its own N only (`calibrated` says which)
        calibration = Calibration.load(cfg.calibration).check(f"serve.calibration {cfg.calibration}", cfg.sample_temperature)
    return GeoPredictor(engine, greedy, judge=judge, consensus_sampling=sampled, calibration=calibration)


def build_engines(cfg: ServeGroup, model: str, cache_dir: str | None = None) -> tuple[Engine, Engine | None]:
    """The generation engine and the optional localizability judge, as configured.

    `engine: local` loads `model` (a checkpoint dir, s3:// URI or models:/ URI) in-process;
    `engine: openai` treats `model` as the model name served at `serve.base_url` (vLLM, KServe's
    Hugging Face runtime), so this predictor only does prompting, parsing and geocoding.
    """
    from globe.engines import LocalEngine, OpenAIEngine
    from globe.serve.model_source import resolve_model

    if cfg.engine == "local":
        if cfg.torch_threads:
            import torch

            torch.set_num_threads(cfg.torch_threads)  # oversubscribed OpenMP teams spin: keep <= CPU limit
        engine: Engine = LocalEngine(str(resolve_model(model, cache_dir)), device=cfg.device, batch_size=cfg.max_batch_size, seed=cfg.seed)
    else:
        if not cfg.base_url:
            raise ValueError("serve.engine is 'openai' but serve.base_url is not set (e.g. http://vllm:8000/v1)")
        engine = OpenAIEngine(
            cfg.base_url,
            model,
            api_key=os.environ.get(cfg.api_key_env),
            concurrency=cfg.concurrency,
            timeout_s=cfg.timeout_s,
            retries=cfg.retries,
        )
    judge: Engine | None = None
    if cfg.judge == "self":
        judge = engine
    elif cfg.judge:
        judge = LocalEngine(str(resolve_model(cfg.judge, cache_dir)), device=cfg.device, batch_size=cfg.max_batch_size, seed=cfg.seed)
    return engine, judge


class GlobeModel(kserve.Model):
    """The geo-reasoning predictor. Pass `engine` (and `judge`) to skip building them from config."""

    def __init__(
        self,
        model: str,
        cfg: ServeGroup | None = None,
        *,
        name: str = MODEL_NAME,
        engine: Engine | None = None,
        judge: Engine | None = None,
        cache_dir: str | None = None,
        explicit: dict[str, Any] | None = None,
        settings_source: str | None = None,
    ):
        super().__init__(name)
        self.model_uri = model
        self.cfg = cfg or ServeGroup()
        # globe.serve.settings: a model that carries its serving settings is served with them, with
        # only `explicit` (the command line's serve.* values) on top; `settings_source` names cfg's origin
        self.explicit = explicit or {}
        self.settings_source = settings_source or ("params" if cfg is not None else "the built-in defaults")
        self.limits = limits_from(self.cfg)
        self.cache_dir = cache_dir
        self._engine, self._judge = engine, judge
        self.predictor: GeoPredictor | None = None
        self.batcher: DynamicBatcher | None = None
        self._decode_pool: ThreadPoolExecutor | None = None

    def load(self) -> bool:
        if self._engine is None:
            from globe.serve.model_source import resolve_model
            from globe.serve.settings import SETTINGS_FILE, settings_for

            local = resolve_model(self.model_uri, self.cache_dir) if self.cfg.engine == "local" else None
            self.cfg, self.settings_source = settings_for(local, self.cfg, self.explicit, self.settings_source)
            self.limits = limits_from(self.cfg)
            if self.settings_source.startswith("registered"):
                log.info("serving settings: %s", self.settings_source)
            elif local is not None:
                log.warning("serving settings: the model carries none (%s): %s apply", SETTINGS_FILE, self.settings_source)
            model = str(local) if local is not None and self.cfg.engine == "local" else self.model_uri
            self._engine, self._judge = build_engines(self.cfg, model, self.cache_dir)
        self.predictor = build_predictor(self.cfg, self._engine, self._judge)
        self.batcher = DynamicBatcher(self._run_batch, self.cfg.max_batch_size, self.cfg.max_latency_ms)
        self._decode_pool = ThreadPoolExecutor(max_workers=self.cfg.decode_threads, thread_name_prefix="globe-decode")
        self.ready = True
        return self.ready

    def stop(self) -> None:
        self.ready = False

    def decoding(self) -> dict[str, Any]:
        """The decoding settings of every answer (`GET /v1/models/globe/decoding`): a client that
        evaluates this server records these, not its own (`globe.serve.client.PredictorClient`)."""
        if self.predictor is None:
            raise ModelNotReady(self.name)
        doc: dict[str, Any] = {k: v for k, v in asdict(self.predictor.sampling).items() if k != "n"}
        sampled = self.predictor.consensus_sampling
        if sampled is not None:  # what an answer asked for `samples` is decoded with instead
            doc["consensus"] = {"temperature": sampled.temperature, "top_p": sampled.top_p,
                                "max_samples": self.limits.max_samples,
                                "calibrated_samples": self.predictor.calibration.samples if self.predictor.calibration else None}
        return doc

    def settings(self) -> dict[str, Any]:
        """The serving settings in force and their source (`GET /v1/models/globe/settings`);
        endpoints with credentials in them are redacted."""
        from globe.redact import redact

        serve = self.cfg.model_dump(mode="json")
        for key in ("base_url", "model", "judge"):
            if isinstance(serve.get(key), str):
                serve[key] = redact(serve[key])
        return {"source": self.settings_source, "serve": serve}

    def _run_batch(self, items: list[tuple[Any, str, int]]) -> list:
        assert self.predictor is not None
        BATCH_SIZE.observe(len(items))
        return self.predictor.predict([img for img, _, _ in items], [i for _, i, _ in items], [n for _, _, n in items])

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Decoded:
        assert self.batcher is not None
        token = self.batcher.announce()  # lets a batch being collected wait for this request
        try:
            decoded = await self._decode(payload, token)
        except BaseException:
            self.batcher.withdraw(token)
            raise
        decoded.request_id = (headers or {}).get("x-request-id") or uuid.uuid4().hex[:16]
        return decoded

    async def _decode(self, payload: Any, token: object) -> _Decoded:
        if isinstance(payload, InferRequest):
            check_requested_outputs(payload)  # before any image is decoded or the model runs
            check_id(payload.id, "id")  # echoed in the answer: bounded, and writable as UTF-8
            refs, v2 = parse_v2(payload, self.limits), payload
        elif isinstance(payload, (bytes, bytearray)):  # KServe passes non-JSON content types through raw
            refs, v2 = self._raw_body(bytes(payload)), None
        else:
            refs, v2 = parse_v1(payload, self.limits), None
        precheck_budget(refs, self.limits)
        budget = request_budget(self.limits)
        fit = self.predictor.fit if self.predictor is not None else None
        loop = asyncio.get_running_loop()
        images = []
        try:
            for ref in refs:  # one at a time: a request holds at most one full-size image
                data = ref.data if ref.url is None else await fetch_url(ref.url, ref.where, self.limits)
                ref.data = None  # drop the encoded bytes as soon as they are decoded
                images.append(await loop.run_in_executor(self._decode_pool, load_image, data or b"", ref.where, self.limits, budget, fit))
        except BaseException:
            images.clear()
            await self._release(budget.used)
            raise
        return _Decoded(images, [ref.id for ref in refs], v2, token, samples=[ref.samples for ref in refs], decoded_pixels=budget.used)

    async def _release(self, decoded_pixels: int) -> None:
        """After a request that decoded large images, give the freed memory back to the OS."""
        if decoded_pixels >= RELEASE_AFTER_PIXELS:
            from globe.images import release_memory

            await asyncio.get_running_loop().run_in_executor(self._decode_pool, release_memory)

    def _raw_body(self, body: bytes) -> list[ImageRef]:
        """An image file as the body, or JSON sent without `Content-Type: application/json`
        (what `curl -d` does) — accepted as JSON rather than reported as "not an image"."""
        if body.lstrip()[:1] == b"{":
            import orjson

            try:
                return parse_v1(orjson.loads(body), self.limits)
            except orjson.JSONDecodeError as exc:
                raise BadInput(f"request body looks like JSON but does not parse ({exc})") from None
        return [ImageRef("request body", data=body)]

    async def predict(self, payload: _Decoded, headers: dict[str, str] | None = None) -> tuple[_Decoded, list[dict]]:
        if not isinstance(payload, _Decoded):  # only reachable if a subclass skips preprocess
            raise TypeError(f"predict expects the output of preprocess, got {type(payload).__name__}")
        assert self.batcher is not None
        samples = payload.samples or [1] * len(payload.images)
        try:
            preds = await self.batcher.submit_many(list(zip(payload.images, payload.ids, samples)), payload.token)
        except GenerationFailed as exc:  # the engine's (or upstream's) words go to the log only
            log.error("request %s: %s", payload.request_id, exc)
            raise GenerationFailed(f"generation failed (request id {payload.request_id}); the details are in the server log") from None
        finally:
            payload.images.clear()  # the answer needs only the predictions
            await self._release(payload.decoded_pixels)
        for pred in preds:
            if pred.get("localizability_error"):
                log.warning("request %s: localizability judge: %s", payload.request_id, pred["localizability_error"])
                pred["localizability_error"] = f"judge call failed (request id {payload.request_id}; details in the server log)"
        return payload, preds

    async def postprocess(self, result: Any, headers: dict[str, str] | None = None, response_headers=None) -> dict | InferResponse:
        decoded, preds = result
        if decoded.v2 is None:
            return {"predictions": preds}
        return to_v2_response(decoded.v2, preds, self.name)

    def get_input_types(self) -> list[dict]:
        return [{"name": "image", "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        types = {"lat": "FP64", "lon": "FP64"}
        return [{"name": name, "datatype": types.get(name, "BYTES"), "shape": [-1]} for name in OUTPUTS]


def check_requested_outputs(request: InferRequest) -> None:
    """A V2 request may ask for a subset of OUTPUTS; an unknown name is a 400 before the model runs."""
    for out in request.request_outputs or []:
        if out.name not in OUTPUTS:
            raise BadInput(f"outputs: unknown output {excerpt(str(out.name), 40)!r}; this model returns {list(OUTPUTS)}")


def to_v2_response(request: InferRequest, preds: list[dict], model_name: str) -> InferResponse:
    n = len(preds)

    def num(value: Any) -> float:
        return float(value) if value is not None else math.nan

    outputs = [
        InferOutput("prediction", [n], "BYTES", [json.dumps(p, ensure_ascii=False) for p in preds]),
        InferOutput("country_code", [n], "BYTES", [p.get("country_code") or "" for p in preds]),
        InferOutput("city", [n], "BYTES", [p.get("city") or "" for p in preds]),
        InferOutput("lat", [n], "FP64", [num(p.get("lat")) for p in preds]),
        InferOutput("lon", [n], "FP64", [num(p.get("lon")) for p in preds]),
    ]
    return InferResponse(
        response_id=request.id or str(uuid.uuid4()),
        model_name=model_name,
        infer_outputs=outputs,
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )
