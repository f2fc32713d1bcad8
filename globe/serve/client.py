"""`PredictorClient`: the client of a served `globe` predictor's KServe V1 endpoint.

The predictor (globe.serve) does the prompting, decoding, parsing and geocoding itself and answers
each image with a JSON document (`reasoning`, `country`, `country_code`, `city`, `lat`, `lon`,
`coords_source`, `resolution`, `raw`, ...). So this is not an Engine: it sends images, not
prompts, and gets documents back, not model text. The evaluation harness takes it beside the
engines (`globe.evaluate.scoring.Answer.from_prediction`), which measures exactly what clients
get, including the server's own geocoding; the server's decoding settings
(`GET /v1/models/{model}/decoding`) are what `run.json` records for such a run.

Images travel as PNG (lossless), so the served model sees exactly the pixels a local run sees.
With `samples` > 1 every instance asks the server for its consensus answer (`"samples": N`); the
document's `confidence` and `candidates` then land on the row like a local consensus run's.
One image per HTTP request, `concurrency` requests in flight: the server batches concurrent
requests itself (dynamic batching), and a failure then costs one image, not a whole batch.
Connection errors, timeouts and 5xx/429 answers are retried with exponential backoff.
"""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import httpx

if TYPE_CHECKING:
    from PIL.Image import Image


class PredictorError(RuntimeError):
    """The predictor cannot be asked at all (unreachable, not a globe predictor); says which URL and why."""


@dataclass
class Prediction:
    """What came back for one image. Exactly one of `document` / `error` is set."""

    document: dict[str, Any] | None = None
    error: str | None = None
    latency_s: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None and self.document is not None


class PredictorClient:
    """`POST {base_url}/v1/models/{model}:predict` with `{"instances": [{"image_b64": ..., "id": ...}]}`."""

    def __init__(
        self,
        base_url: str,
        model: str = "globe",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        name: str | None = None,
        samples: int = 1,
    ) -> None:
        if not base_url:
            raise ValueError("a served globe predictor needs base_url, e.g. http://127.0.0.1:8080")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.url = f"{self.base_url}/v1/models/{model}:predict"
        self.concurrency = max(1, int(concurrency))
        self.timeout_s = timeout_s
        self.retries = max(0, int(retries))
        self.backoff_s = backoff_s
        self.name = name or f"globe-predictor:{model}"
        self.samples = max(1, int(samples))  # > 1: the server answers with its consensus of that many

    def __repr__(self) -> str:
        return f"PredictorClient(url={self.url!r}, concurrency={self.concurrency})"

    def decoding(self) -> dict[str, Any]:
        """The settings the server decodes with (`serve.max_new_tokens`, temperature, top_p, seed)."""
        url = f"{self.base_url}/v1/models/{self.model}/decoding"
        try:
            resp = httpx.get(url, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise PredictorError(f"{url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code != 200:
            raise PredictorError(f"{url}: HTTP {resp.status_code}: {resp.text[:300]} (is this a globe predictor?)")
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("max_new_tokens"), int):
            raise PredictorError(f"{url}: expected the decoding settings as JSON, got {resp.text[:300]!r}")
        return doc

    def predict(self, images: Sequence["Image"], ids: Sequence[str]) -> list[Prediction]:
        """One prediction per image, in order. Never raises for a single failed image."""
        if not images:
            return []
        with httpx.Client(timeout=self.timeout_s) as client, ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda pair: self._one(client, *pair), zip(images, ids, strict=True)))

    def _one(self, client: httpx.Client, image: "Image", image_id: str) -> Prediction:
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="PNG", compress_level=1)  # lossless: the same pixels as in-process
        instance: dict[str, Any] = {"image_b64": base64.b64encode(buf.getvalue()).decode("ascii"), "id": image_id}
        if self.samples > 1:
            instance["samples"] = self.samples
        payload = {"instances": [instance]}
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
                    return Prediction(error=error, latency_s=time.perf_counter() - start, attempts=attempt)
            if attempt <= self.retries:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        return Prediction(error=error, latency_s=time.perf_counter() - start, attempts=self.retries + 1)

    def _parse(self, resp: httpx.Response, start: float, attempt: int) -> Prediction:
        latency = time.perf_counter() - start
        try:
            pred = resp.json()["predictions"][0]
            if not isinstance(pred, dict):
                raise TypeError(f"prediction is {type(pred).__name__}, not an object")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Prediction(error=f"malformed predictor response ({exc}): {resp.text[:300]}", latency_s=latency, attempts=attempt)
        return Prediction(document=pred, latency_s=latency, attempts=attempt)
