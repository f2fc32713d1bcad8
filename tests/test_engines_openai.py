"""OpenAIEngine against a real OpenAI-style HTTP server on 127.0.0.1 with injected faults.

The server (starlette under uvicorn, in a thread) reads a directive from the prompt text:
`ok`, `sleep:<s>`, `fail500:<n>` / `rate429:<n>` (fail the first n attempts of that prompt),
`hang`, `bad400`, `judge:<p>` (first-token logprobs with P(yes)=p), `judge-text:<word>` (no
logprobs), `size` (decode the data-URL image and answer its size), `auth` (echo the header).
It counts requests in flight and attempts per prompt, so tests assert on what really happened.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import socket
import threading
import time
from collections import Counter

import pytest
import uvicorn
from _model_helpers import solid
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from globe.engines import OpenAIEngine, Request, Sampling, make_engine
from globe.engines.openai_compat import judge_from_response, retry_after_s


class FaultyServer:
    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts: Counter[str] = Counter()
        self.hits: dict[str, list[float]] = {}
        app = Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", timeout_graceful_shutdown=0.1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.max_in_flight = 0
        self.attempts.clear()
        self.hits.clear()

    async def chat(self, request: HTTPRequest):
        body = await request.json()
        content = body["messages"][-1]["content"]
        prompt = next(p["text"] for p in content if p["type"] == "text")
        self.attempts[prompt] += 1
        self.hits.setdefault(prompt, []).append(time.monotonic())
        n = self.attempts[prompt]
        if prompt == "hang":  # abandoned by the client, still asleep here: not "in flight" for later tests
            return await self._answer(prompt, n, body, content, request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(prompt, n, body, content, request)
        finally:
            self.in_flight -= 1

    async def _answer(self, prompt, n, body, content, request):
        kind, _, arg = prompt.partition(":")
        if kind == "sleep":
            await asyncio.sleep(float(arg.split()[0]))
        elif kind == "fail500" and n <= int(arg):
            return JSONResponse({"error": "overloaded"}, status_code=500)
        elif kind == "rate429" and n <= int(arg):
            return JSONResponse({"error": "slow down"}, status_code=429, headers={"Retry-After": "0.05"})
        elif kind == "hang":
            await asyncio.sleep(3)
        elif kind == "bad400":
            return JSONResponse({"error": "bad request"}, status_code=400)
        elif kind == "judge":
            p = float(arg)
            top = [{"token": " yes", "logprob": math.log(0.9 * p)}, {"token": "No", "logprob": math.log(0.9 * (1 - p))},
                   {"token": "maybe", "logprob": math.log(0.1)}]
            return _reply("yes", logprobs={"content": [{"token": " yes", "logprob": top[0]["logprob"], "top_logprobs": top}]})
        elif kind == "judge-text":
            return _reply(arg)
        elif kind == "size":
            from PIL import Image

            url = next(p["image_url"]["url"] for p in content if p["type"] == "image_url")
            header, data = url.split(",", 1)
            img = Image.open(io.BytesIO(base64.b64decode(data)))
            return _reply(f"{header} {img.format} {img.size[0]}x{img.size[1]}")
        elif kind == "auth":
            return _reply(request.headers.get("authorization", "none"))
        return _reply(f"echo {prompt} max_tokens={body['max_tokens']} seed={body.get('seed')}")

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self._sock.close()


def _reply(text: str, logprobs=None):
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = logprobs
    return JSONResponse({"choices": [choice], "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}})


@pytest.fixture(scope="module")
def server():
    with FaultyServer() as srv:
        yield srv


@pytest.fixture()
def srv(server):
    server.reset()
    return server


def _engine(srv, **kw) -> OpenAIEngine:
    kw.setdefault("backoff_s", 0.01)
    return OpenAIEngine(srv.base_url, "tiny", api_key="k", **kw)


def test_concurrency_bound_and_order(srv):
    reqs = [Request(image=None, prompt=f"sleep:0.03 #{i}") for i in range(24)]
    results = _engine(srv, concurrency=4).generate(reqs, Sampling(max_new_tokens=5, seed=3))
    assert [r.text for r in results] == [f"echo sleep:0.03 #{i} max_tokens=5 seed=3" for i in range(24)]
    assert srv.max_in_flight == 4  # reached, never exceeded
    assert all(r.attempts == 1 and r.usage["total_tokens"] == 9 for r in results)


def test_n_samples_are_concurrent_requests_seeded_apart(srv):
    """Sampling.n sends every request n times at once; copy j carries seed + j (the same seed
    would make a seeded server return the same sample n times)."""
    from globe.engines import generate_samples

    reqs = [Request(image=None, prompt=f"sleep:0.3 #{i}") for i in range(2)]
    groups = generate_samples(_engine(srv, concurrency=8), reqs, Sampling(max_new_tokens=5, temperature=0.8, seed=3, n=3))
    assert [[r.text for r in g] for g in groups] == [
        [f"echo sleep:0.3 #{i} max_tokens=5 seed={3 + j}" for j in range(3)] for i in range(2)]
    assert srv.max_in_flight == 6 and sum(srv.attempts.values()) == 6
    srv.reset()
    greedy = _engine(srv).generate(reqs, Sampling(max_new_tokens=5, seed=3, n=3))  # greedy: one request each, copied
    assert [r.text for r in greedy] == [f"echo sleep:0.3 #{i} max_tokens=5 seed=3" for i in range(2) for _ in range(3)]
    assert sum(srv.attempts.values()) == 2


def test_5xx_and_429_are_retried_until_success(srv):
    eng = _engine(srv, retries=3, backoff_s=5.0)  # a 5 s backoff would show: Retry-After must win for 429
    start = time.monotonic()
    rate = eng.generate([Request(image=None, prompt="rate429:2")])[0]
    assert rate.ok and rate.attempts == 3 and time.monotonic() - start < 2.0
    gaps = [b - a for a, b in zip(srv.hits["rate429:2"], srv.hits["rate429:2"][1:])]
    assert all(g >= 0.045 for g in gaps)  # waited the server's Retry-After (0.05 s)
    fail = _engine(srv, retries=3).generate([Request(image=None, prompt="fail500:2")])[0]
    assert fail.ok and fail.attempts == 3 and srv.attempts["fail500:2"] == 3


def test_retries_exhausted_and_4xx_not_retried(srv):
    results = _engine(srv, retries=2).generate(
        [Request(image=None, prompt="fail500:99"), Request(image=None, prompt="bad400"), Request(image=None, prompt="ok")]
    )
    assert not results[0].ok and "HTTP 500" in results[0].error and "after 3 attempts" in results[0].error
    assert srv.attempts["fail500:99"] == 3
    assert not results[1].ok and "HTTP 400" in results[1].error and results[1].attempts == 1
    assert srv.attempts["bad400"] == 1
    assert results[2].ok  # the others in the batch are unaffected


def test_a_hang_times_out_and_is_recorded(srv):
    start = time.monotonic()
    results = _engine(srv, timeout_s=0.2, retries=1).generate(
        [Request(image=None, prompt="hang"), Request(image=None, prompt="ok")]
    )
    elapsed = time.monotonic() - start
    assert not results[0].ok and "timed out after 0.2 s" in results[0].error and results[0].attempts == 2
    assert results[1].ok
    assert 0.4 <= elapsed < 2.0


def test_connection_refused_is_retried_then_recorded():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    eng = OpenAIEngine(f"http://127.0.0.1:{port}/v1", "tiny", retries=1, backoff_s=0.01)
    result = eng.generate([Request(image=None, prompt="ok")])[0]
    assert not result.ok and "connection error" in result.error and result.attempts == 2


def test_image_goes_as_a_data_url_and_bad_images_never_leave(srv):
    png = _engine(srv).generate([Request(image=solid((1, 2, 3), (33, 21)), prompt="size")])[0]
    jpeg = _engine(srv, image_format="jpeg").generate([Request(image=solid((1, 2, 3), (33, 21)), prompt="size")])[0]
    assert png.text == "data:image/png;base64 PNG 33x21"
    assert jpeg.text == "data:image/jpeg;base64 JPEG 33x21"
    bad = _engine(srv).generate([Request(image="nope", prompt="size", id="x7")])[0]
    assert not bad.ok and "x7" in bad.error and bad.attempts == 0
    assert srv.attempts["size"] == 2


def test_stream_callbacks_and_sync_call_inside_a_running_loop(srv):
    eng = _engine(srv, concurrency=8)
    reqs = [Request(image=None, prompt="sleep:0.3"), Request(image=None, prompt="sleep:0.01")]

    async def main():
        order = [i async for i, _ in eng.astream(reqs)]
        seen: list[int] = []

        async def on_result(i, result):
            seen.append(i)

        results = await eng.agenerate(reqs, on_result=on_result)
        blocking = eng.generate(reqs[1:])  # sync API while this loop runs
        return order, seen, results, blocking

    order, seen, results, blocking = asyncio.run(main())
    assert order == [1, 0] and seen == [1, 0]  # completion order
    assert [r.text.split()[1] for r in results] == ["sleep:0.3", "sleep:0.01"]  # request order
    assert blocking[0].ok


def test_judge_from_logprobs_and_text_fallback(srv, caplog):
    eng = _engine(srv)
    out = eng.judge(
        [Request(image=None, prompt="judge:0.8"), Request(image=None, prompt="judge-text:No."),
         Request(image=None, prompt="judge-text:perhaps"), Request(image=None, prompt="bad400")]
    )
    assert out[0].source == "logprobs" and out[0].p_yes == pytest.approx(0.8)
    assert out[1].source == "text" and out[1].p_yes == 0.0
    assert not out[2].ok and "neither" in out[2].error
    assert not out[3].ok and "HTTP 400" in out[3].error
    assert "no logprobs" in caplog.text


def test_key_and_endpoint_from_environment(srv, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_MODEL", "tiny")
    monkeypatch.setenv("MY_TEACHER_KEY", "s3cret")
    eng = make_engine({"kind": "openai", "name": "t", "api_key_env": "MY_TEACHER_KEY"}, retries=0)
    assert eng.generate([Request(image=None, prompt="auth")])[0].text == "Bearer s3cret"
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ValueError, match="OPENAI_BASE_URL"):
        OpenAIEngine(model="tiny")


def test_kinds_are_one_table_that_the_config_validates_against():
    """Every kind builds with nothing imported first (no registration by import side effect), and
    the config's kinds are the table's: a teacher can be any engine, `eval.engine` also the served
    predictor, which is not an engine."""
    import subprocess
    import sys
    import typing

    from globe.config import EvalGroup, TeacherConfig
    from globe.engines.kinds import ENGINE_KINDS, SERVED_PREDICTOR

    code = ("from globe.engines import make_engine; import sys; "
            "e = make_engine({'kind': 'scene-reader', 'name': 'r'}); "
            "print(type(e).__name__, 'globe.engines.local' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["SceneReaderEngine", "False"], proc.stderr[-2000:]
    assert set(typing.get_args(TeacherConfig.model_fields["kind"].annotation)) == set(ENGINE_KINDS)
    assert set(typing.get_args(EvalGroup.model_fields["engine"].annotation)) == {*ENGINE_KINDS, SERVED_PREDICTOR}
    with pytest.raises(ValueError, match="unknown kind 'nope' \\(known: local, openai, scene-reader\\)"):
        make_engine({"kind": "nope"})
    with pytest.raises(ValueError, match="not an engine"):
        make_engine({"kind": SERVED_PREDICTOR})


def test_retry_after_and_judge_parsing_units():
    assert retry_after_s("1.5") == 1.5 and retry_after_s(None) is None and retry_after_s("soon") is None
    assert 5 < retry_after_s(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 10))) <= 10
    only_yes = {"choices": [{"message": {"content": "yes"}, "logprobs": {"content": [{"token": "yes", "logprob": -0.01, "top_logprobs": [{"token": "yes", "logprob": -0.01}, {"token": "maybe", "logprob": -5}]}]}}]}
    assert judge_from_response(only_yes).p_yes == 1.0
