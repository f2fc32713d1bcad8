"""Multi-teacher distillation: every teacher judges, reasons about and locates every sample.

For each sample and each configured teacher (an Engine) we make two calls: the localizability
judge (`Engine.judge`, P(yes) from first-token probabilities) and the geolocation prompt
(`Engine.generate`). Teacher text is read with the shared parser `globe.answer.parse`, because a
teacher is any system and may ignore the format; the raw text is kept too.

Concurrency: one asyncio loop keeps at most `distill.concurrency` calls in flight across all
teachers and samples. Engines with async methods (`agenerate`/`ajudge`) are awaited directly;
synchronous ones run one request per call on a thread pool of the same size. A slow sample never
holds up the others, and each sample is written the moment its last call returns.

Crash safety: the output `records.jsonl` is appended one whole, fsynced line per finished sample
(`JsonlAppender`). A run killed at any moment (SIGKILL included) is restarted with the same
command: the torn tail, if any, is dropped, finished samples are skipped, and the rest are done,
so every sample ends up exactly once. When all are done the file is rewritten atomically in input
order, so the output is the same however often the run was interrupted.

Failures: engines retry with backoff themselves; a call that still fails is recorded on the
sample (`TeacherOutput.error`) and counted, never raised, so one dead endpoint does not stop a
50,000-sample job.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from globe.data.records import (
    IMAGES_DIR,
    RECORDS_FILE,
    JsonlAppender,
    Record,
    TeacherOutput,
    image_file,
    iter_records,
    link_or_copy,
    load_image,
    read_records,
    write_records,
)


class DistillError(ValueError):
    """A configuration or input problem that stops distillation before it starts."""


def build_teacher(cfg, data_dir: Path | None = None, concurrency: int = 16, timeout_s: float = 120.0, retries: int = 3):
    """An Engine for one `distill.teachers` entry, from the table of kinds (`globe.engines.kinds`).

    Scene readers get the dataset's own `world.json` when there is one, so they decode a dataset
    with the legend that drew it.
    """
    from globe.tiny.world import WORLD_FILE
    from globe.engines import make_engine

    defaults: dict[str, Any] = {"concurrency": concurrency, "timeout_s": timeout_s, "retries": retries}
    if cfg.kind == "scene-reader" and data_dir is not None and (data_dir / WORLD_FILE).exists():
        defaults["world"] = str(data_dir / WORLD_FILE)
    try:
        return make_engine(cfg, **defaults)
    except (ValueError, OSError) as exc:
        raise DistillError(f"teacher {cfg.name} ({cfg.kind}): {exc}") from exc


class _Caller:
    """Runs Engine calls under one global bound, async where the engine allows it."""

    def __init__(self, concurrency: int):
        self.sem = asyncio.Semaphore(concurrency)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher")
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, engine, method: str, *args):
        async with self.sem:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                amethod = getattr(engine, "a" + method, None)
                if amethod is not None and inspect.iscoroutinefunction(amethod):
                    return (await amethod(*args))[0]
                loop = asyncio.get_running_loop()
                return (await loop.run_in_executor(self.pool, getattr(engine, method), *args))[0]
            except Exception as exc:  # an engine that breaks its never-raise contract
                return exc
            finally:
                self.in_flight -= 1


def teacher_output(name: str, gen, judged) -> TeacherOutput:
    """Combine one teacher's generate and judge results for one sample."""
    from globe import geo
    from globe.answer import parse

    out = TeacherOutput(teacher=name)
    errors = []
    if isinstance(gen, Exception):
        errors.append(f"generate: {type(gen).__name__}: {gen}")
    elif not gen.ok:
        errors.append(f"generate: {gen.error}")
        out.attempts = gen.attempts
    else:
        ans = parse(gen.text)
        out.text, out.think, out.format_ok = gen.text, ans.think, ans.format_ok
        out.country, out.city, out.lat, out.lon = ans.country, ans.city, ans.lat, ans.lon
        out.country_code = geo.normalize_country(ans.country) if ans.country else None
        out.localizable = ans.localizable
        out.attempts, out.latency_s = gen.attempts, round(gen.latency_s, 4)
    if isinstance(judged, Exception):
        errors.append(f"judge: {type(judged).__name__}: {judged}")
    elif not judged.ok:
        errors.append(f"judge: {judged.error}")
    else:
        out.p_localizable = round(float(judged.p_yes), 6)
        out.localizable = judged.p_yes >= 0.5
    out.error = "; ".join(errors) or None
    return out


def _merge(record: Record, outputs: list[TeacherOutput]) -> Record:
    """Replace this run's teachers on the record, keep outputs of other teachers from earlier runs."""
    names = {o.teacher for o in outputs}
    kept = [t for t in record.teachers if t.teacher not in names]
    return record.model_copy(update={"teachers": kept + outputs})


async def _run(records, teachers, data_dir: Path, out: Path, app: JsonlAppender, cfg, progress: bool) -> Counter:
    from tqdm import tqdm

    from globe.engines.base import Request, Sampling
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM, localizability_prompt

    caller = _Caller(cfg.concurrency)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")

    def _write(record: Record, outputs: list[TeacherOutput]) -> None:
        if not record.image.startswith("s3://") and data_dir.resolve() != out.resolve():
            link_or_copy(image_file(data_dir, record), image_file(out, record))
        app.append(_merge(record, outputs))

    counts: Counter = Counter()
    bar = tqdm(total=len(records), desc="distill", unit="sample", disable=not progress)
    loop = asyncio.get_running_loop()
    # at most a few samples' images decoded ahead of the calls, not the whole dataset in memory
    feeder = asyncio.Semaphore(max(2, cfg.concurrency))

    async def one(record: Record) -> None:
        async with feeder:
            try:
                image = await loop.run_in_executor(caller.pool, load_image, data_dir, record)
            except Exception as exc:
                image, load_error = None, f"image: {type(exc).__name__}: {exc}"
            else:
                load_error = None
            outputs = []
            if load_error:
                outputs = [TeacherOutput(teacher=cfg_t.name, error=load_error) for cfg_t, _ in teachers]
            else:
                gen_req = Request(image=image, prompt=GEO_PROMPT, system=GEO_SYSTEM, id=record.id)
                judge_req = Request(image=image, prompt=localizability_prompt(), id=record.id)
                calls = []
                for cfg_t, engine in teachers:
                    sampling = Sampling(max_new_tokens=cfg_t.max_tokens, temperature=cfg_t.temperature)
                    calls.append(caller(engine, "generate", [gen_req], sampling))
                    calls.append(caller(engine, "judge", [judge_req]))
                results = await asyncio.gather(*calls)
                outputs = [
                    teacher_output(cfg_t.name, results[2 * k], results[2 * k + 1])
                    for k, (cfg_t, _) in enumerate(teachers)
                ]
            # one writer thread: fsync must not stall the event loop, and lines must not interleave
            await loop.run_in_executor(writer, _write, record, outputs)
            for o in outputs:
                counts["teacher_ok" if o.error is None else "teacher_failed"] += 1
                if o.error:
                    counts[f"failed:{o.teacher}"] += 1
            counts["distilled"] += 1
            bar.update(1)

    try:
        await asyncio.gather(*(one(r) for r in records))
    finally:
        bar.close()
        caller.pool.shutdown(wait=False, cancel_futures=True)
        writer.shutdown(wait=True)
    counts["max_in_flight"] = caller.max_in_flight
    return counts


def distill(
    data_dir: str | Path,
    out_dir: str | Path,
    cfg,
    limit: int | None = None,
    progress: bool = True,
    engines: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Distill `data_dir` into `out_dir` (resumable); returns the counts it also prints via the CLI.

    `cfg` is the `distill` params group. `engines` maps teacher names to ready Engines (tests and
    library callers); teachers not in it are built from their config.
    """
    data_dir, out = Path(data_dir), Path(out_dir)
    if not cfg.teachers:
        raise DistillError("no teachers configured: set distill.teachers in params.yaml or with --set")
    names = [t.name for t in cfg.teachers]
    if len(set(names)) != len(names):
        raise DistillError(f"distill.teachers: duplicate teacher names {names}")
    try:
        records = read_records(data_dir)
    except (ValueError, OSError) as exc:
        raise DistillError(str(exc)) from exc
    input_ids = [r.id for r in records]
    if len(set(input_ids)) != len(input_ids):
        raise DistillError(f"{data_dir}: duplicate record ids; ids must be unique to resume safely")
    teachers = [
        (t, (engines or {}).get(t.name) or build_teacher(t, data_dir, cfg.concurrency, cfg.timeout_s, cfg.retries))
        for t in cfg.teachers
    ]

    t0 = time.perf_counter()
    with JsonlAppender(out / RECORDS_FILE) as app:
        stale = app.done - set(input_ids)
        if stale:
            raise DistillError(
                f"{out / RECORDS_FILE} holds {len(stale)} samples that are not in {data_dir} "
                f"(e.g. {sorted(stale)[0]!r}): it belongs to another dataset; choose another --out"
            )
        selected = records[:limit] if limit is not None else records
        todo = [r for r in selected if r.id not in app.done]
        done_before = len(selected) - len(todo)
        counts = asyncio.run(_run(todo, teachers, data_dir, out, app, cfg, progress)) if todo else Counter()
        dropped = app.dropped_tail_bytes
    # all selected done: rewrite in input order (atomic) so reruns give identical files
    by_id = {r.id: r for r in iter_records(out / RECORDS_FILE)}
    write_records(out, [by_id[i] for i in input_ids if i in by_id])
    elapsed = time.perf_counter() - t0
    failed = {k.split(":", 1)[1]: v for k, v in sorted(counts.items()) if k.startswith("failed:")}
    return {
        "out": str(out),
        "samples": len(selected),
        "already_done": done_before,
        "distilled": counts.get("distilled", 0),
        "teachers": names,
        "teacher_outputs_ok": counts.get("teacher_ok", 0),
        "teacher_outputs_failed": counts.get("teacher_failed", 0),
        "failed_by_teacher": failed,
        "torn_tail_bytes_dropped": dropped,
        "max_calls_in_flight": counts.get("max_in_flight", 0),
        "seconds": round(elapsed, 2),
        "images_dir": str(out / IMAGES_DIR),
    }
