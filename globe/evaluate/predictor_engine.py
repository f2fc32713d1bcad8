"""Engine kind "globe-predictor": evaluate a served `globe` predictor through its KServe V1 endpoint.

The predictor (globe.serve) does the prompting, parsing and geocoding itself and answers with a
JSON document per image (`reasoning`, `country`, `country_code`, `city`, `lat`, `lon`,
`coords_source`, `raw`, ...). Evaluating it over HTTP therefore measures exactly what clients get,
including the server's own geocoding. This engine returns that document, JSON-encoded, as the
`Result.text`; the harness recognises `kind == "globe-predictor"` and scores the predictor's
coordinates instead of re-deriving them (see `globe.evaluate.scoring`).

Images travel as PNG (lossless), so the served model sees exactly the pixels a local run sees.
One image per HTTP request, `concurrency` requests in flight: the server batches concurrent
requests itself (dynamic batching), and a failure then costs one image, not a whole batch.
Connection errors, timeouts and 5xx/429 answers are retried with exponential backoff.
"""

from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx

from globe.engines.base import JudgeResult, Request, Result, Sampling
from globe.engines.kinds import register_engine

KIND = "globe-predictor"


class GlobePredictorEngine:
    """Client of `POST {base_url}/v1/models/{model}:predict` with `{"instances": [{"image_b64": ...}]}`."""

    kind = KIND

    def __init__(
        self,
        base_url: str,
        model: str = "globe",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        name: str | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("engine 'globe-predictor' needs base_url, e.g. http://127.0.0.1:8080")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.url = f"{self.base_url}/v1/models/{model}:predict"
        self.concurrency = max(1, int(concurrency))
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.name = name or f"{KIND}:{model}"

    def __repr__(self) -> str:
        return f"GlobePredictorEngine(url={self.url!r}, concurrency={self.concurrency})"

    def generate(self, requests: Sequence[Request], sampling: Sampling | None = None) -> list[Result]:
        """One predictor document per request (as JSON text); decoding settings are the server's."""
        if not requests:
            return []
        with httpx.Client(timeout=self.timeout_s) as client, ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda r: self._one(client, r), requests))

    def judge(self, requests: Sequence[Request], choices: tuple[str, str] = ("yes", "no")) -> list[JudgeResult]:
        return [JudgeResult(error="the globe predictor has no judge endpoint; use its `localizability` field") for _ in requests]

    def _one(self, client: httpx.Client, req: Request) -> Result:
        if req.image is None:
            return Result(error="globe-predictor needs an image")
        buf = io.BytesIO()
        req.image.convert("RGB").save(buf, format="PNG", compress_level=1)  # lossless: the same pixels as in-process
        payload = {"instances": [{"image_b64": base64.b64encode(buf.getvalue()).decode("ascii"), "id": req.id}]}
        start, error = time.perf_counter(), "no attempt"
        for attempt in range(1, self.retries + 2):
            try:
                resp = client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    return self._parse(resp, start, attempt)
                error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                if resp.status_code < 500 and resp.status_code != 429:
                    return Result(error=error, latency_s=time.perf_counter() - start, attempts=attempt)
            if attempt <= self.retries:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        return Result(error=error, latency_s=time.perf_counter() - start, attempts=self.retries + 1)

    def _parse(self, resp: httpx.Response, start: float, attempt: int) -> Result:
        latency = time.perf_counter() - start
        try:
            preds = resp.json()["predictions"]
            pred = preds[0]
            if not isinstance(pred, dict):
                raise TypeError(f"prediction is {type(pred).__name__}, not an object")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Result(error=f"malformed predictor response ({exc}): {resp.text[:300]}", latency_s=latency, attempts=attempt)
        return Result(text=json.dumps(pred, ensure_ascii=False), latency_s=latency, attempts=attempt)


@register_engine(KIND)
def _factory(spec: dict[str, Any]) -> GlobePredictorEngine:
    keys = ("base_url", "model", "concurrency", "timeout_s", "retries", "backoff_s", "name")
    return GlobePredictorEngine(**{k: spec[k] for k in keys if k in spec})
