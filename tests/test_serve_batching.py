"""DynamicBatcher: concurrent callers share batches, bounded by size and wait, errors stay per item."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from globe.serve.batching import DynamicBatcher


async def until(condition, timeout_s: float = 20.0) -> None:
    """Poll `condition()` on the event loop until it holds (the test fails after `timeout_s`)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


class Recorder:
    """A batch function that records the batches it saw and takes `cost_s` per call."""

    def __init__(self, cost_s: float = 0.0):
        self.cost_s = cost_s
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> list:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.cost_s)
        return [ValueError(f"odd {i}") if i < 0 else i * 10 for i in items]


def test_concurrent_requests_are_gathered_up_to_max_batch_size():
    fn = Recorder(cost_s=0.05)

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=4, max_latency_ms=200)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await batcher.close()
        return results, batcher.stats

    results, stats = asyncio.run(main())
    assert results == [i * 10 for i in range(10)]
    assert [len(b) for b in fn.batches] == [4, 4, 2]
    assert sorted(i for b in fn.batches for i in b) == list(range(10))
    assert stats.batches == 3 and stats.largest == 4
    assert len(fn.threads) == 1 and threading.main_thread().name not in fn.threads  # one engine thread, off the loop


def test_lone_request_starts_at_once():
    """Nothing else in flight: the batch runs without waiting its window (a minute here, so a wait
    would hit the 20 s guard instead of passing)."""
    fn = Recorder()

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=8, max_latency_ms=60_000)
        token = batcher.announce()
        out = await asyncio.wait_for(batcher.submit_many([3], token), 20)
        again = await asyncio.wait_for(batcher.submit(4), 20)  # tokenless callers too
        await batcher.close()
        return out, again

    assert asyncio.run(main()) == ([30], 40)
    assert fn.batches == [[3], [4]]


def test_requests_being_answered_keep_the_window_open_for_their_next_call():
    """Steady state with 8 clients: while batch [B1..B7] is answered, client A (queued meanwhile)
    must not run alone; the Bs' next requests join it, so batches stay full instead of 1 + 7."""
    release = threading.Event()
    batches: list[list[str]] = []

    def fn(items):
        batches.append(list(items))
        if len(batches) == 1:
            release.wait(10)
        return [x.upper() for x in items]

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=8, max_latency_ms=60_000)

        async def client(name: str, rounds: int):
            out = []
            for k in range(rounds):
                out += await batcher.submit_many([f"{name}{k}"], batcher.announce())
            return out

        bs = [asyncio.create_task(client(f"b{i}", 2)) for i in range(7)]
        await until(lambda: batches)  # the first batch (the seven Bs, nobody else in flight) is running
        a = asyncio.create_task(client("a", 1))
        await until(lambda: batcher._queue.qsize() == 1)  # A is queued behind the running batch
        release.set()
        results = await asyncio.wait_for(asyncio.gather(*bs, a), 20)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert results[-1] == ["A0"] and results[0] == ["B00", "B01"]
    assert [len(b) for b in batches] == [7, 8]
    assert sorted(batches[1]) == sorted(["a0"] + [f"b{i}1" for i in range(7)])


def test_the_first_client_back_waits_for_the_others_answered_with_it():
    """8 clients answered together come back one by one (a round trip later): the first one back
    must not find an 'idle' predictor and run alone, or the clients split into 1 + 7 for good."""
    batches: list[list[str]] = []

    async def main():
        batcher = DynamicBatcher(lambda items: (batches.append(list(items)), items)[1], max_batch_size=8, max_latency_ms=60_000)
        back = asyncio.Event()

        async def client(name: str, first: bool):
            await batcher.submit_many([f"{name}0"], batcher.announce())
            if not first:
                await back.wait()  # still on its way back when the first client resubmits
            return await batcher.submit_many([f"{name}1"], batcher.announce())

        tasks = [asyncio.create_task(client(f"c{i}", i == 0)) for i in range(8)]
        await until(lambda: batches and len(batcher._waiting) == 1)  # the first batch answered, c0 back and submitted
        for _ in range(50):  # with nobody counted in flight the worker would start it alone within these turns
            await asyncio.sleep(0)
        back.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        await batcher.close()

    asyncio.run(main())
    assert [len(b) for b in batches] == [8, 8]


def test_a_client_that_left_does_not_hold_up_the_others_for_the_whole_extension():
    """8 clients answered together, 7 come back and the 8th has gone: the batch of 7 keeps its
    window (the 8th might still come) but not the EXTEND x window meant for arrivals in progress."""
    from globe.serve.batching import EXTEND

    batches: list[list[str]] = []
    started: list[float] = []
    latency_s = 0.5  # wide enough that a loaded box's scheduling delays stay well inside both bounds

    def run(items):
        started.append(time.perf_counter())
        batches.append(list(items))
        return items

    async def main():
        batcher = DynamicBatcher(run, max_batch_size=8, max_latency_ms=latency_s * 1000)

        async def client(name: str, stays: bool):
            await batcher.submit_many([f"{name}0"], batcher.announce())
            if stays:
                await batcher.submit_many([f"{name}1"], batcher.announce())
                return time.perf_counter()
            return None

        back = await asyncio.wait_for(asyncio.gather(*(client(f"c{i}", i < 7) for i in range(8))), 20)
        await batcher.close()
        return back

    asyncio.run(main())
    assert [len(b) for b in batches] == [8, 7]
    waited = started[1] - started[0]
    assert latency_s * 0.9 <= waited < (EXTEND - 1) * latency_s, f"the batch of 7 waited {waited:.3f} s"


def test_max_batch_size_one_disables_batching():
    fn = Recorder(cost_s=0.01)

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=1, max_latency_ms=100)
        await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        await batcher.close()

    asyncio.run(main())
    assert [len(b) for b in fn.batches] == [1] * 5


def test_item_errors_reach_only_their_caller_and_batch_errors_reach_all():
    fn = Recorder()

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=8, max_latency_ms=30)
        outcome = await asyncio.gather(batcher.submit(1), batcher.submit(-1), batcher.submit(2), return_exceptions=True)

        def broken(items):
            raise RuntimeError("engine died")

        broken_batcher = DynamicBatcher(broken, max_batch_size=8, max_latency_ms=30)
        failures = await asyncio.gather(broken_batcher.submit(1), broken_batcher.submit(2), return_exceptions=True)
        after = await batcher.submit(5)  # the worker survives a failing batch
        await batcher.close()
        await broken_batcher.close()
        return outcome, failures, after

    outcome, failures, after = asyncio.run(main())
    assert outcome[0] == 10 and outcome[2] == 20
    assert isinstance(outcome[1], ValueError) and "odd -1" in str(outcome[1])
    assert all(isinstance(f, RuntimeError) and "engine died" in str(f) for f in failures)
    assert after == 50


def test_submit_many_keeps_order_and_rejects_bad_settings():
    fn = Recorder()

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=3, max_latency_ms=5)
        out = await batcher.submit_many([5, 6, 7, 8])
        await batcher.close()
        return out

    assert asyncio.run(main()) == [50, 60, 70, 80]
    with pytest.raises(ValueError):
        DynamicBatcher(fn, max_batch_size=0)


def test_announced_requests_extend_the_window_but_only_up_to_the_cap():
    """A request still decoding when the window closes extends it, up to EXTEND x the window. The
    window is 200 ms (cap 800 ms) so that a loaded box's scheduling delays, which can reach a tenth
    of a second or more, stay well inside both margins."""
    from globe.serve.batching import EXTEND

    fn = Recorder()
    window_s = 0.2

    async def main():
        batcher = DynamicBatcher(fn, max_batch_size=8, max_latency_ms=window_s * 1000)

        async def late_submit(token):
            await asyncio.sleep(1.5 * window_s)  # still "decoding" when the window closes, long before the cap
            return await batcher.submit_many([2], token)

        token = batcher.announce()
        together = await asyncio.gather(batcher.submit(1), late_submit(token))
        await batcher.submit(3)  # nobody in flight: runs at once, alone
        dangling = batcher.announce()  # a client that never submits: the batch waits, but not forever
        t0 = time.perf_counter()
        await batcher.submit(4)
        waited = time.perf_counter() - t0
        batcher.withdraw(dangling)
        await batcher.close()
        return together, waited

    together, waited = asyncio.run(main())
    assert together == [10, [20]]
    assert fn.batches[0] == [1, 2] and fn.batches[1] == [3]
    assert 0.75 * EXTEND * window_s <= waited < EXTEND * window_s + 1.0, f"waited {waited:.3f} s"


def test_requests_that_fail_before_submitting_leave_no_bookkeeping_behind():
    """Issue 26: each request that failed while decoding (announce, then withdraw) kept ~88 bytes
    until a batch ran; bad-only traffic would have grown it without bound."""
    batcher = DynamicBatcher(lambda items: items, max_batch_size=8, max_latency_ms=10)
    tokens = [batcher.announce() for _ in range(5)]  # five in flight at once: a peak worth keeping
    for token in tokens:
        batcher.withdraw(token)
    for _ in range(50_000):
        batcher.withdraw(batcher.announce())
    assert len(batcher._announced) == 0 and len(batcher._peaks) <= 5
    assert batcher._company_expected([(None, None, object())])  # the recent peak of 5 is still remembered
