"""Dynamic batching: gather concurrent requests into one engine call, without making a lone one wait.

A VLM's `generate` costs nearly the same for 1 image as for 8 on the same hardware (the step is
dominated by weight reads and Python overhead, not by the batch), so the server's throughput under
load comes from running requests *together*. HTTP requests arrive one by one, though; the batcher
sits between them and the engine:

- every request puts its items on a queue and awaits one future per item;
- a single worker task takes the first waiting item and everything already queued behind it;
- if no other request is in flight, the batch starts **at once**: a request arriving at an idle
  predictor never waits (continuous batching: the window is for gathering company, and there is
  none to gather);
- otherwise it keeps collecting until it has `max_batch_size` items or `max_latency_ms` have
  passed since that first item, whichever is first;
- it runs the batch function on the batcher's one engine thread (the event loop keeps accepting
  requests meanwhile), and resolves each item's future with its own result or its own exception.

While one batch runs the next one fills up, so under load batches are full without waiting.

**The token protocol** tells the batcher who is in flight. A request calls `announce()` as soon as
it enters the server and gets a token; it passes the token to `submit_many(items, token)` once its
images are decoded, or to `withdraw(token)` if it fails before submitting. A token is in flight
from `announce` until `submit_many` has returned its results (or `withdraw`; an announcement that
never submits stops counting after `ANNOUNCE_TTL_S`). When a batch starts collecting, the window
applies while

- another request is in flight: announced and still decoding (these also extend a closing window,
  never beyond `EXTEND` x `max_latency_ms` in all), or submitted and not yet answered (at the
  moment a batch finishes, the requests it served are still being answered); or
- the batch holds fewer requests than were in flight at once recently (the peak over the last
  `CONCURRENCY_MEMORY` batch durations, at least `ANNOUNCE_TTL_S`): closed-loop clients come back
  a round trip after their answer, and the first one back must not find an "idle" predictor, or 8
  clients drift into batches of 1 and 7 for good. Such a batch waits for them up to the same
  `EXTEND` x `max_latency_ms`, but past its first `max_latency_ms` only while requests keep
  arriving: once none has entered for `max_latency_ms`, the rest are not coming (a client that
  left must not hold up the others for the whole extension).

A lone client never had company, so its requests start at once. Calls without a token (`submit`)
count only while queued.

One batch runs at a time on purpose: a single in-process model gains nothing from overlapping
generate calls on the same cores. And always on the *same* thread: torch's OpenMP runtime keeps a
thread team per calling thread, so spreading calls over a pool's threads multiplies spinning teams
on the same cores (measured: 5-10x slower generation on a busy 2-core machine).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")
EXTEND = 4  # a batch waits at most EXTEND x max_latency for announced requests
ANNOUNCE_TTL_S = 2.0  # an announcement that never submits (client gone) stops counting after this
CONCURRENCY_MEMORY = 3  # recent concurrency is remembered for this many batch durations (>= ANNOUNCE_TTL_S)


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    largest: int = 0

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class DynamicBatcher(Generic[T, R]):
    """Collect items from concurrent callers and run `fn(batch) -> results` on them together.

    `fn` returns one entry per item, in order; an entry that is an `Exception` is raised to that
    item's caller only. An exception raised by `fn` itself fails every item of that batch.
    """

    def __init__(self, fn: Callable[[list[T]], Sequence[R | BaseException]], max_batch_size: int = 8, max_latency_ms: float = 10.0):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_latency_ms < 0:
            raise ValueError(f"max_latency_ms must be >= 0, got {max_latency_ms}")
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.max_latency_s = max_latency_ms / 1000.0
        self.stats = BatchStats()
        self._queue: asyncio.Queue[tuple[T, asyncio.Future, object]] | None = None
        self._worker: asyncio.Task | None = None
        self._engine_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="globe-engine")
        self._announced: dict[object, float] = {}  # announced, not yet submitted (still decoding)
        self._waiting: set[object] = set()  # submitted, results not yet returned
        self._peaks: deque[tuple[float, int]] = deque()  # (when, requests in flight), counts decreasing (see _note_peak)
        self._last_batch_s = 0.0
        self._last_arrival = 0.0  # when a request last entered (announce or submit)
        self._wake: asyncio.Event | None = None

    def announce(self) -> object:
        """Say that a request will submit soon; pass the returned token to `submit_many`/`withdraw`."""
        token = object()
        now = time.monotonic()
        self._last_arrival = now
        self._announced[token] = now
        self._note_peak(now, len(self._announced) + len(self._waiting))
        return token

    def _note_peak(self, now: float, in_flight: int) -> None:
        """Remember `in_flight` for `_company_expected`'s sliding-window maximum: an earlier entry
        that is not larger can never be the maximum again, so it goes. The deque stays decreasing,
        at most as long as the largest concurrency, however many requests fail before a batch runs."""
        while self._peaks and self._peaks[-1][1] <= in_flight:
            self._peaks.pop()
        self._peaks.append((now, in_flight))

    def withdraw(self, token: object | None) -> None:
        self._announced.pop(token, None)
        if self._wake is not None:
            self._wake.set()

    def _incoming(self) -> int:
        """Requests announced and still decoding (expired announcements dropped)."""
        cutoff = time.monotonic() - ANNOUNCE_TTL_S
        for token in [t for t, at in self._announced.items() if at < cutoff]:
            del self._announced[token]
        return len(self._announced)

    def _others_in_flight(self, batch: list) -> bool:
        """Is another request announced, or submitted and not yet answered, besides `batch`'s?"""
        mine = {token for _, _, token in batch if token is not None}
        return self._incoming() > 0 or any(t not in mine for t in self._waiting)

    def _company_expected(self, batch: list) -> bool:
        """Does `batch` hold fewer requests than were in flight at once recently? (see the token protocol)"""
        cutoff = time.monotonic() - max(ANNOUNCE_TTL_S, CONCURRENCY_MEMORY * self._last_batch_s)
        while self._peaks and self._peaks[0][0] < cutoff:
            self._peaks.popleft()
        return (self._peaks[0][1] if self._peaks else 0) > _requests(batch)  # the deque is decreasing

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T], token: object | None = None) -> list[R]:
        """Queue `items` and wait for all their results (raises the first item error)."""
        self._announced.pop(token, None)
        self._last_arrival = time.monotonic()
        queue = self._ensure_worker()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        if token is not None:
            self._waiting.add(token)
        try:
            for item, fut in zip(items, futures):
                queue.put_nowait((item, fut, token))
            assert self._wake is not None
            self._wake.set()
            results = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            self._waiting.discard(token)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return list(results)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None
            self._queue = None
        self._engine_thread.shutdown(wait=False)

    def _ensure_worker(self) -> asyncio.Queue:
        # Created lazily inside the serving event loop: KServe calls load() before its loop starts.
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="globe-batcher")
        assert self._queue is not None
        return self._queue

    async def _collect(self, queue: asyncio.Queue) -> list[tuple[T, asyncio.Future, object]]:
        assert self._wake is not None
        batch = [await queue.get()]
        first = time.monotonic()
        deadline, hard_deadline = first + self.max_latency_s, first + EXTEND * self.max_latency_s
        while len(batch) < self.max_batch_size:
            try:
                batch.append(queue.get_nowait())  # already waiting: take without yielding
                continue
            except asyncio.QueueEmpty:
                pass
            expected = self._company_expected(batch)
            if not expected and not self._others_in_flight(batch):
                break  # nobody else is coming: start now
            now = time.monotonic()
            arriving = expected and now - self._last_arrival < self.max_latency_s
            if now >= deadline and now < hard_deadline and (arriving or self._incoming() > 0):
                deadline = min(hard_deadline, now + self.max_latency_s / EXTEND)  # on their way, or decoding
            remaining = deadline - now
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                continue  # the window closed: the check above decides whether to extend it
        return batch

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            await self._run_one(await self._collect(queue))  # nothing of a finished batch stays referenced here

    async def _run_one(self, batch: list[tuple[T, asyncio.Future, object]]) -> None:
        live = [(item, fut) for item, fut, _ in batch if not fut.done()]  # caller may have gone away
        if not live:
            return
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.largest = max(self.stats.largest, len(live))
        started = time.monotonic()
        try:
            results = await asyncio.get_running_loop().run_in_executor(self._engine_thread, self.fn, [item for item, _ in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(live)} items")
        except Exception as exc:  # noqa: BLE001 - every caller of this batch must hear about it
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self._last_batch_s = time.monotonic() - started
        for (_, fut), result in zip(live, results):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)


def _requests(batch: list) -> int:
    """Requests with items in `batch`: one per token, and one per tokenless item."""
    return len({token for _, _, token in batch if token is not None}) + sum(1 for _, _, token in batch if token is None)
