"""OpenAIEngine: any OpenAI-compatible chat endpoint (vLLM, KServe's Hugging Face runtime, hosted APIs).

Distillation sends tens of thousands of requests to teacher endpoints that rate-limit, restart and
occasionally hang, so the client is built around failure:

- bounded concurrency (an `asyncio.Semaphore`: never more than `concurrency` requests on the wire);
- a per-attempt deadline (`timeout_s`) that also catches servers that accept and never answer;
- retries with exponential backoff and jitter on 429, 5xx, connection errors and timeouts,
  honouring `Retry-After`; other 4xx (a bad request stays bad) are not retried;
- every request ends as a `Result`: errors are recorded per request, never raised mid-batch.

Images travel inline as base64 `data:` URLs. Endpoint, model and key come from arguments or the
environment (`OPENAI_BASE_URL`, `OPENAI_MODEL`, `api_key_env`), never from code.

The judge asks for one token with `logprobs`/`top_logprobs` and scores P(yes)/(P(yes)+P(no)). A
server that returns no logprobs gets a parsed yes/no answer scored 1.0/0.0 instead, marked
`source="text"` and logged once, so a caller can tell a probability from a hard label.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import inspect
import logging
import math
import os
import random
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Sequence, TypeVar

import httpx

from globe.engines.base import JudgeResult, Request, Result, Sampling
from globe.engines.images import image_data_url

log = logging.getLogger(__name__)
T = TypeVar("T")
OnResult = Callable[[int, Result], "None | Awaitable[None]"]


class _Fatal(Exception):
    """A response that retrying cannot fix (4xx other than 429, malformed body)."""


class OpenAIEngine:
    """Chat-completions client with bounded concurrency, timeouts and retries."""

    samples_per_request = True  # Sampling.n: n concurrent requests per request (see `astream`)

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        api_key_env: str = "OPENAI_API_KEY",
        image_format: str = "PNG",
        headers: dict[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        model = model or os.environ.get("OPENAI_MODEL")
        if not base_url:
            raise ValueError(
                "OpenAIEngine: no endpoint; pass base_url (e.g. http://host:8000/v1) or set OPENAI_BASE_URL"
            )
        if not model:
            raise ValueError("OpenAIEngine: no model name; pass model or set OPENAI_MODEL")
        if concurrency < 1 or retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError(
                f"OpenAIEngine: need concurrency >= 1, retries >= 0, timeout_s > 0, backoff_s >= 0; got "
                f"concurrency={concurrency}, retries={retries}, timeout_s={timeout_s}, backoff_s={backoff_s}"
            )
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.image_format = image_format
        self.headers = dict(headers or {})
        self.name = name or model
        self._warned_text_judge = False
        self._ssl_context = None  # built once: callers may open a client per request

    def __repr__(self) -> str:
        return f"OpenAIEngine(name={self.name!r}, url={self.url!r}, concurrency={self.concurrency})"

    # ---- public API: sync ------------------------------------------------------------------

    def generate(
        self, requests: Sequence[Request], sampling: Sampling | None = None, on_result: OnResult | None = None
    ) -> list[Result]:
        """Blocking `agenerate`; works with or without an event loop already running in this thread."""
        return run_sync(lambda: self.agenerate(requests, sampling, on_result))

    def judge(self, requests: Sequence[Request], choices: tuple[str, str] = ("yes", "no")) -> list[JudgeResult]:
        """Blocking `ajudge`."""
        return run_sync(lambda: self.ajudge(requests, choices))

    # ---- public API: async -----------------------------------------------------------------

    async def agenerate(
        self, requests: Sequence[Request], sampling: Sampling | None = None, on_result: OnResult | None = None
    ) -> list[Result]:
        """All completions, in request order (`sampling.n` per request); `on_result(index, result)`
        (sync or async) as each finishes."""
        results: list[Result] = [Result(error="not run")] * (len(requests) * max(1, (sampling or Sampling()).n))
        async for i, result in self.astream(requests, sampling):
            results[i] = result
            if on_result is not None:
                maybe = on_result(i, result)
                if inspect.isawaitable(maybe):
                    await maybe
        return results

    async def astream(
        self, requests: Sequence[Request], sampling: Sampling | None = None
    ) -> AsyncIterator[tuple[int, Result]]:
        """Yield `(index, Result)` in completion order — for writing results to disk as they arrive.

        With `sampling.n` > 1 every request is sent n times, concurrently (not the API's `n`
        parameter, which KServe's Hugging Face runtime and some hosted APIs refuse); result
        `i * n + j` is copy j of request i."""
        sampling = sampling or Sampling()
        n = max(1, sampling.n)
        draws = n if sampling.temperature > 0 else 1  # greedy n times is one request, copied
        async with self._client() as client:
            sem = asyncio.Semaphore(self.concurrency)
            tasks = [asyncio.create_task(self._one(client, sem, i * n + j, r, sampling, copy=j))
                     for i, r in enumerate(requests) for j in range(draws)]
            try:
                for next_done in asyncio.as_completed(tasks):
                    k, result = await next_done
                    for j in range(n // draws):
                        yield k + j, result
            finally:
                for task in tasks:  # the consumer stopped early: do not leak requests
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def ajudge(self, requests: Sequence[Request], choices: tuple[str, str] = ("yes", "no")) -> list[JudgeResult]:
        """First-token P(yes)/(P(yes)+P(no)) per request, in order."""
        async with self._client() as client:
            sem = asyncio.Semaphore(self.concurrency)
            calls = (self._judge_one(client, sem, i, r, choices) for i, r in enumerate(requests))
            return list(await asyncio.gather(*calls))

    # ---- one request -----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        headers = {"Content-Type": "application/json", **self.headers}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        if self._ssl_context is None:
            # httpx builds this (certifi bundle, ~0.1 s) for every client, even for http:// URLs;
            # callers that open a client per request would pay it each time.
            self._ssl_context = httpx.create_ssl_context()
        return httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(self.timeout_s), limits=limits, verify=self._ssl_context
        )

    def _messages(self, req: Request) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if req.image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(req.image, self.image_format)}})
        content.append({"type": "text", "text": req.prompt})
        messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
        if req.system:
            messages.insert(0, {"role": "system", "content": req.system})
        return messages

    async def _one(self, client, sem, i: int, req: Request, sampling: Sampling, copy: int = 0) -> tuple[int, Result]:
        """Result `i` of the call; `copy` j of a request with Sampling.n > 1 is seeded seed + j."""
        label = f"request {i} ({req.id or 'no id'})"
        start = time.perf_counter()
        try:
            payload = {
                "model": self.model,
                "messages": self._messages(req),
                "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
            }
            if sampling.seed is not None:
                payload["seed"] = sampling.seed + copy  # the same seed would make the n copies one sample
        except Exception as exc:
            return i, Result(error=f"{label}: {exc}", attempts=0)
        body, attempts, error = await self._post(client, sem, payload)
        latency = time.perf_counter() - start
        if error is not None:
            return i, Result(error=f"{label}: {error}", attempts=attempts, latency_s=latency)
        try:
            text = body["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError(f"message content is {type(text).__name__}")
        except (KeyError, IndexError, TypeError) as exc:
            error = f"{label}: malformed response ({exc}): {str(body)[:200]}"
            return i, Result(error=error, attempts=attempts, latency_s=latency)
        usage = {k: int(v) for k, v in (body.get("usage") or {}).items() if isinstance(v, int)}
        return i, Result(text=text, attempts=attempts, latency_s=latency, usage=usage)

    async def _judge_one(self, client, sem, i: int, req: Request, choices: tuple[str, str]) -> JudgeResult:
        label = f"request {i} ({req.id or 'no id'})"
        try:
            payload = {
                "model": self.model,
                "messages": self._messages(req),
                "max_tokens": 1,
                "temperature": 0.0,
                "logprobs": True,
                "top_logprobs": 5,
            }
        except Exception as exc:
            return JudgeResult(error=f"{label}: {exc}")
        body, _, error = await self._post(client, sem, payload)
        if error is not None:
            return JudgeResult(error=f"{label}: {error}")
        try:
            result = judge_from_response(body, choices)
        except ValueError as exc:
            return JudgeResult(error=f"{label}: {exc}")
        if result.source == "text" and not self._warned_text_judge:
            self._warned_text_judge = True
            log.warning("%s returned no logprobs; judging from the answer text (p_yes is 1.0 or 0.0)", self.url)
        return result

    async def _post(self, client, sem, payload) -> tuple[dict | None, int, str | None]:
        """POST with retries; returns (body, attempts, error)."""
        error = "not attempted"
        for attempt in range(self.retries + 1):
            delay: float | None = None
            try:
                async with sem:
                    async with asyncio.timeout(self.timeout_s):
                        response = await client.post(self.url, json=payload)
                if response.status_code == 200:
                    try:
                        return response.json(), attempt + 1, None
                    except ValueError as exc:
                        raise _Fatal(f"HTTP 200 with a body that is not JSON: {response.text[:200]!r}") from exc
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    raise _Fatal(error)
                delay = retry_after_s(response.headers.get("retry-after"))
            except _Fatal as exc:
                return None, attempt + 1, str(exc)
            except (TimeoutError, httpx.TimeoutException):
                error = f"timed out after {self.timeout_s:g} s"
            except httpx.TransportError as exc:
                error = f"connection error: {type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(self._backoff(attempt) if delay is None else min(delay, self.max_backoff_s))
        return None, self.retries + 1, f"{error} (gave up after {self.retries + 1} attempts)"

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random, so clients desynchronise."""
        cap = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return cap / 2 + random.uniform(0, cap / 2)


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/invalid."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def judge_from_response(body: dict, choices: tuple[str, str] = ("yes", "no")) -> JudgeResult:
    """P(yes)/(P(yes)+P(no)) from a chat response's first-token top_logprobs (text fallback: 1/0)."""
    yes, no = (c.strip().lower() for c in choices)
    try:
        choice = body["choices"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"malformed response ({exc}): {str(body)[:200]}") from exc
    content = ((choice.get("logprobs") or {}).get("content")) or []
    if content:
        first = content[0]
        p = {yes: 0.0, no: 0.0}
        seen = first.get("top_logprobs") or [first]
        for entry in seen:
            token = str(entry.get("token", "")).strip().lower()
            if token in p:
                p[token] += math.exp(float(entry["logprob"]))
        if p[yes] + p[no] > 0:
            return JudgeResult(p_yes=p[yes] / (p[yes] + p[no]), source="logprobs")
    text = str((choice.get("message") or {}).get("content") or "").strip().lower()
    word = text.split()[0].strip(".,!:;\"'") if text.split() else ""
    if word in (yes, no):
        return JudgeResult(p_yes=1.0 if word == yes else 0.0, source="text")
    raise ValueError(f"answer is neither {yes!r} nor {no!r} (top logprobs or text): {text[:80]!r}")


def run_sync(make_coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop (Jupyter, servers).

    Inside a running loop we cannot block it with `asyncio.run`, so the coroutine gets its own
    loop in a worker thread; the caller's thread waits for it.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coro())).result()
