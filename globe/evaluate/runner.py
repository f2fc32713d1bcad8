"""The evaluation harness: run an Engine over a benchmark, score every answer, write the run.

Besides an Engine (text from a model) the harness evaluates a served `globe` predictor through
its client (`globe.serve.client.PredictorClient`: documents from the server); `ask` is the one
place that tells them apart, and both become the same `Answer`s for scoring.

A run directory holds:
- `run.json`: what was evaluated (model, engine, benchmark, prompt, decoding: for a served
  predictor the decoding the server reports). A restart with a different model or decoding into
  the same directory is refused instead of mixing two runs' answers.
- `predictions.jsonl`: one scored row per image, appended one batch at a time (one write, fsync).
  A killed run leaves at most a torn last line, which is cut off on restart; images already
  answered are skipped, and rows whose engine call failed are tried again.
- `metrics.json`, `accuracy_curve.png`, `world_map.png`, `accuracy_curve.csv`, `report.html`,
  `summary.md`: written at the end from the rows alone (see `finalize`), so they can be rebuilt
  from `predictions.jsonl` at any time.

While the engine generates one batch, one background thread decodes the next batch's images
(resized to the engine's input size when it tells it, see `globe.images.open_image`) and scores and appends
the previous one, so the harness's own work stays off the engine's critical path.

Each row keeps the ground truth flat (`id, lat, lon, country_code, country, city`), the raw
`output`, the parsed `answer`, and where the one scorer (`globe.scorer.locate`) puts it under both
protocols: the headline ("names": the answered places geocoded) as `protocol`, `pred_lat`,
`pred_lon`, `coords_source` (geocoded, stated, given, none), `resolution` (city, landmark, admin1,
capital-fallback, centroid-fallback, coordinates, none), `resolved_place` and `distance_km`; the
stated-coordinates protocol under `stated` with the same names. `globe eval score` can re-score
the file without the harness.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from globe.evaluate.benchmarks import Sample
from globe.io import atomic_write_bytes
from globe.jsonl import ResumableJsonl, json_line

PREDICTIONS = "predictions.jsonl"
RUN_INFO = "run.json"
RUN_KEY = "run"  # every prediction row carries its run's fingerprint (RunSpec.fingerprint)
ROW_FIELDS = ("id", "lat", "lon", "output", "error", "pred_lat", "pred_lon", "distance_km", "format_ok")
log = logging.getLogger("globe.evaluate")


class RunError(RuntimeError):
    """A run directory that cannot be resumed or written; the message says which file and why."""


class PredictionLog(ResumableJsonl):
    """predictions.jsonl (`globe.jsonl.ResumableJsonl`): one scored row per image, appended a batch
    at a time; the last line for an id wins, so a retried row supersedes its failed one."""

    def __init__(self, path: Path):
        super().__init__(path, what="prediction row", error=RunError)

    def answered(self) -> set[str]:
        """Ids answered without an engine error (rows with an error are asked again)."""
        return {i for i, r in self.rows.items() if not r.get("error")}


def model_fingerprint(model: str) -> str | None:
    """Names, sizes and mtimes of a local model directory's files, hashed: a model retrained in
    place gets a new fingerprint, so its old predictions are not resumed. None for remote models."""
    import hashlib

    root = Path(model)
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class RunSpec:
    """What identifies a run; stored as run.json and checked on resume."""

    benchmark: str
    model: str
    engine: str
    prompt: str
    system: str | None
    max_new_tokens: int
    temperature: float = 0.0
    batch_size: int = 8
    extra: dict[str, Any] = field(default_factory=dict)
    model_fingerprint: str | None = None
    samples: int = 1  # > 1: consensus of that many sampled reasonings per image (globe.consensus)
    top_p: float = 1.0
    calibration: dict[str, Any] | None = None  # globe.consensus.Calibration.to_dict() behind `confidence`

    IDENTITY = ("benchmark", "model", "engine", "prompt", "system", "max_new_tokens", "temperature", "model_fingerprint",
                "samples", "top_p", "calibration")
    BEFORE = {"samples": 1, "top_p": 1.0, "calibration": None}  # what a run.json written before these fields meant

    def __post_init__(self) -> None:
        if self.model_fingerprint is None:
            self.model_fingerprint = model_fingerprint(self.model)

    def check_resume(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: unreadable run description ({exc}); use another --out") from None
        changed = [k for k in self.IDENTITY if old.get(k, self.BEFORE.get(k)) != getattr(self, k)]
        if changed:
            diffs = ", ".join(f"{k}: {old.get(k)!r} -> {getattr(self, k)!r}" for k in changed)
            raise RunError(
                f"{path.parent} holds predictions of a different run ({diffs}); "
                "resuming would mix two runs' answers: use another --out or delete that directory"
            )

    def fingerprint(self) -> str:
        """A short hash of what identifies the run, written into each of its prediction rows."""
        import hashlib

        blob = json.dumps({k: getattr(self, k) for k in self.IDENTITY}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def save(self, path: Path) -> None:
        data = {k: getattr(self, k) for k in (*self.IDENTITY, "batch_size", "extra")}
        atomic_write_bytes(path, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


def check_rows(path: Path, run: str, samples: Sequence[Sample]) -> None:
    """Before resuming from `path`: every whole line must be a prediction row of this run (its
    `run` fingerprint) with the ground truth of its sample; else RunError naming file and line.
    (A torn last line, which a kill leaves, is not checked: PredictionLog drops it.)"""
    if not path.exists():
        return
    truth = {s.id: (s.lat, s.lon) for s in samples}
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                break
            where = f"{path}:{n}"
            try:
                row = json.loads(raw)
            except ValueError:
                raise RunError(f"{where}: not a JSON prediction row; move the file away or use another --out") from None
            if not isinstance(row, dict):
                raise RunError(f"{where}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in ROW_FIELDS if k not in row]
            if missing:
                raise RunError(f"{where}: prediction row lacks {', '.join(missing)}; it was not written by `globe eval run`")
            if row.get(RUN_KEY) != run:
                raise RunError(f"{where}: row {str(row['id'])[:80]!r} belongs to another run (fingerprint {str(row.get(RUN_KEY))[:20]!r}, "
                               f"this run's is {run!r}); resuming would mix two runs' answers: use another --out")  # fmt: skip
            want = truth.get(str(row["id"]))
            if want is not None and (row["lat"], row["lon"]) != want:
                raise RunError(f"{where}: row {str(row['id'])[:80]!r} has ground truth {row['lat']!r}, {row['lon']!r}, "
                               f"but the benchmark says {want[0]!r}, {want[1]!r}: not this benchmark's row")  # fmt: skip


def _batches(items: Sequence[Sample], size: int) -> Iterator[list[Sample]]:
    for i in range(0, len(items), size):
        yield list(items[i:i + size])


def _load_batch(batch: list[Sample], fit=None) -> list[tuple[Any, str | None]]:
    from globe.images import open_ref  # the one image opener (globe/images.py): same pixels as serving

    out = []
    for s in batch:
        try:
            out.append((open_ref(s.image, fit=fit), None))
        except Exception as exc:  # unreadable image: recorded on the row, the run goes on
            out.append((None, f"image {s.image}: {type(exc).__name__}: {exc}"))
    return out


def served_decoding(answerer, spec: RunSpec) -> RunSpec:
    """`spec` with the decoding the answers are really made with. An engine decodes with the
    spec's settings; a served globe predictor with its own (`serve.max_new_tokens`, greedy, or its
    consensus temperature and top_p when the client asks for `samples`), which it reports, so
    run.json records those and a restart against a server that changed them is refused like any
    other change of run."""
    from globe.serve.client import PredictorClient, PredictorError

    if not isinstance(answerer, PredictorClient) or spec.extra.get("decoding") == "server":
        return spec  # an engine, or already asked (evaluate asks before predict)
    try:
        used = answerer.decoding()
    except PredictorError as exc:
        raise RunError(str(exc)) from None
    voted = answerer.samples > 1 and isinstance(used.get("consensus"), dict)
    dec = used["consensus"] if voted else used
    temperature, top_p = float(dec.get("temperature", 0.0)), float(dec.get("top_p", 1.0))
    if (used["max_new_tokens"], temperature) != (spec.max_new_tokens, spec.temperature):
        log.warning("the served predictor decodes with max_new_tokens=%s, temperature=%s (its serve group); "
                    "recording those, not the eval group's %s, %s", used["max_new_tokens"], temperature,
                    spec.max_new_tokens, spec.temperature)
    return replace(spec, max_new_tokens=used["max_new_tokens"], temperature=temperature,
                   top_p=top_p if answerer.samples > 1 else spec.top_p,
                   extra={**spec.extra, "seed": used.get("seed"), "decoding": "server", "server_decoding": used})


def ask(answerer, images: Sequence[Any], ids: Sequence[str], spec: RunSpec, sampling, calibration=None) -> list:
    """One `Answer` per image: an Engine generates text from the spec's prompt; a served globe
    predictor (`globe.serve.client.PredictorClient`) answers with its documents (its own consensus
    when the client asks for `samples`). With `spec.samples` N > 1 an Engine samples N per image in
    one call (`sampling.n`) and the harness votes them (`globe.evaluate.scoring.vote_samples`,
    headline protocol; `calibration` maps the agreement to the confidence)."""
    from globe.engines.base import Request, generate_samples
    from globe.evaluate.scoring import Answer, vote_samples
    from globe.serve.client import PredictorClient

    if not images:
        return []
    if isinstance(answerer, PredictorClient):
        return [Answer.from_prediction(p) for p in answerer.predict(images, ids)]
    requests = [Request(image=img, prompt=spec.prompt, system=spec.system, id=i) for img, i in zip(images, ids)]
    if spec.samples > 1:
        results: list = generate_samples(answerer, requests, replace(sampling, n=spec.samples))
    else:
        results = answerer.generate(requests, sampling)
    if len(results) != len(requests):
        raise RunError(f"engine {getattr(answerer, 'name', answerer)!r} returned {len(results)} results "
                       f"for {len(requests)} requests; an Engine must answer every request, in order")
    if spec.samples > 1:
        return [vote_samples(group, calibration) for group in results]
    return [Answer.from_result(r) for r in results]


def predict(
    answerer,
    samples: Sequence[Sample],
    out_dir: Path,
    spec: RunSpec,
    *,
    progress: bool = True,
    grounding=None,
) -> list[dict]:
    """Answer and score every sample not yet in `out_dir/predictions.jsonl`; return all rows in sample order.

    `answerer` is an Engine or a served predictor's client (see `ask`). The harness's own work
    runs on one background thread, in order, while the answerer works: decoding (and, for an
    engine with `input_size`, resizing) the next batch's images, then scoring the batch just
    answered and appending it to the log. At most one answered batch waits there, so a kill loses
    at most the batch being answered and the one being written.

    `grounding` (a `globe.data.grounding_check.JudgeGrounding`, from `eval.grounding_judge`) scores
    the cue precision of rows whose image's cues are not known (real photos): the judge lists the
    entities the reasoning names and says, looking at the image, which are there.
    """
    from globe.engines.base import Sampling
    from globe.evaluate.scoring import Answer, score_batch

    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise RunError(f"benchmark {spec.benchmark!r}: duplicate sample id {dup!r}; ids must be unique to resume")
    spec = served_decoding(answerer, spec)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.check_resume(out_dir / RUN_INFO)
    spec.save(out_dir / RUN_INFO)
    run = spec.fingerprint()
    check_rows(out_dir / PREDICTIONS, run, samples)
    log_file = PredictionLog(out_dir / PREDICTIONS)
    have = log_file.answered()
    todo = [s for s in samples if s.id not in have]
    sampling = Sampling(max_new_tokens=spec.max_new_tokens, temperature=spec.temperature, top_p=spec.top_p,
                        seed=spec.extra.get("seed"))
    calibration = None
    if spec.calibration is not None:
        from globe.consensus import Calibration

        calibration = Calibration.from_dict(spec.calibration, f"{out_dir / RUN_INFO}: calibration")
    fit = getattr(answerer, "input_size", None)  # optional: engines that know their model's image size

    from tqdm.auto import tqdm

    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), unit="img", desc=f"eval {spec.benchmark}",
               disable=not progress, dynamic_ncols=True)

    def write(batch: list[Sample], answers: list) -> None:
        rows = score_batch(batch, answers)
        if grounding is not None:
            judge_cues(grounding, batch, rows)
        log_file.extend([{**row, RUN_KEY: run} for row in rows])
        bar.update(len(batch))

    batches = list(_batches(todo, max(1, spec.batch_size)))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-harness") as worker:
        pending: Future | None = worker.submit(_load_batch, batches[0], fit) if batches else None
        writes: list[Future] = []
        for i, batch in enumerate(batches):
            loaded = pending.result()
            if len(writes) >= 2:  # queued before this load, so finished: raise what it raised
                writes[-2].result()
            pending = worker.submit(_load_batch, batches[i + 1], fit) if i + 1 < len(batches) else None
            live = [(s, img) for s, (img, err) in zip(batch, loaded) if err is None]
            answered = iter(ask(answerer, [img for _, img in live], [s.id for s, _ in live], spec, sampling, calibration))
            answers = [next(answered) if err is None else Answer(error=err) for _, err in loaded]
            writes.append(worker.submit(write, batch, answers))
        for w in writes[-2:]:
            w.result()
    bar.close()
    from globe.evaluate.scoring import rescore_legacy

    return rescore_legacy([log_file.rows[i] for i in ids])  # resumed rows of an older rule: re-judged


def judge_cues(grounding, batch: Sequence[Sample], rows: list[dict]) -> None:
    """Cue precision by a judge Engine for rows whose image's cues are not known (see `predict`):
    `cue_precision` is the share of the entities the reasoning names that the judge sees; a failed
    judgment leaves it None and says why in `cue_grounding_error`. Recall needs every cue in the
    image, which no judge lists, so it stays None."""
    from globe.images import open_ref

    for sample, row in zip(batch, rows):
        think = (row.get("answer") or {}).get("think")
        if sample.entities is not None or not think:
            continue
        g = grounding.check(sample, think, lambda s: open_ref(s.image))
        row["cue_precision"] = g.share if g.named and not g.error else None
        if g.error:
            row["cue_grounding_error"] = g.error


def finalize(
    out_dir: Path,
    rows: Sequence[dict],
    *,
    title: str,
    meta: Sequence[tuple[str, Any]] = (),
    lineage: Sequence[tuple[str, str]] = (),
    n_boot: int = 1000,
    seed: int = 0,
    gallery_size: int = 24,
) -> dict:
    """metrics.json (+ breakdowns and CIs), the plots, accuracy_curve.csv, report.html, summary.md."""
    from globe.evaluate.breakdown import bootstrap_intervals, breakdowns
    from globe.evaluate.calibration import calibration, plot_calibration
    from globe.evaluate.plots import accuracy_curve, plot_accuracy_curve, plot_world_map
    from globe.evaluate.report import render_report, render_summary_md
    from globe.evaluate.scoring import headline_metrics

    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    metrics = headline_metrics(rows)
    metrics["ci95"] = bootstrap_intervals(rows, n_boot=n_boot, seed=seed)
    per_continent = min(n_boot, 200)  # 11 metrics x ~7 continents: fewer resamples keep finalize fast
    metrics["bootstrap"] = {"resamples": n_boot, "resamples_by_continent": per_continent, "seed": seed,
                            "level": 0.95, "method": "percentile"}
    parts = breakdowns(rows, n_boot=per_continent, seed=seed)
    metrics["by_continent"], metrics["by_country"] = parts["continent"], parts["country"]
    if "condition" in parts:
        metrics["by_condition"] = parts["condition"]

    distances = [r.get("distance_km") for r in rows]
    plots = {
        "accuracy vs distance": plot_accuracy_curve({title: distances}, out_dir / "accuracy_curve.png", title=title),
        "world map": plot_world_map(
            [r["lat"] for r in rows], [r["lon"] for r in rows],
            [r.get("pred_lat") for r in rows], [r.get("pred_lon") for r in rows],
            out_dir / "world_map.png", title=f"{title}: ground truth vs prediction",
        ),
    }
    calib = calibration(rows)  # a consensus run's confidence: ECE, reliability, selective accuracy
    if calib is not None:
        metrics.update(calib)
        plots["calibration"] = plot_calibration(calib, out_dir / "calibration.png", title=f"{title}: confidence")
    x, y = accuracy_curve(distances, points=64)
    csv_text = "threshold_km,accuracy\n" + "".join(f"{a:.6g},{b:.6f}\n" for a, b in zip(x, y))
    atomic_write_bytes(out_dir / "accuracy_curve.csv", csv_text.encode())
    atomic_write_bytes(out_dir / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False).encode())
    html = render_report(metrics, rows, plots, title=title, meta=meta, lineage=lineage, gallery_size=gallery_size)
    atomic_write_bytes(out_dir / "report.html", html.encode("utf-8"))
    atomic_write_bytes(out_dir / "summary.md", render_summary_md(metrics, title).encode("utf-8"))
    metrics.setdefault("timing", {})["finalize_s"] = round(time.perf_counter() - t0, 3)
    return metrics


def log_to_mlflow(out_dir: Path, metrics: dict, params: dict[str, Any]) -> str | None:
    """Log headline metrics, params and the run's files to MLflow when MLFLOW_TRACKING_URI is set.

    Nested under an active run if there is one (a training or pipeline step); returns the run id.
    """
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    import mlflow

    out_dir = Path(out_dir)
    numeric = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    flat = {k: float(v) for k, v in metrics.items() if numeric(v)}
    flat.update({f"stated.{k}": float(v) for k, v in (metrics.get("stated") or {}).items() if numeric(v)})
    for name, (lo, hi) in metrics.get("ci95", {}).items():
        if lo is not None and hi is not None:
            flat[f"{name}_ci_lo"], flat[f"{name}_ci_hi"] = float(lo), float(hi)
    with mlflow.start_run(run_name=f"eval-{params.get('benchmark')}", nested=mlflow.active_run() is not None) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(flat)
        for name in ("metrics.json", "report.html", "summary.md", "accuracy_curve.png", "world_map.png",
                     "calibration.png", "accuracy_curve.csv", RUN_INFO, PREDICTIONS):
            if (out_dir / name).exists():
                mlflow.log_artifact(str(out_dir / name), artifact_path="eval")
        return run.info.run_id


def build_engine(kind: str, model: str, *, base_url: str | None = None, batch_size: int = 8,
                 concurrency: int = 8, seed: int = 0, samples: int = 1):
    """What `globe eval run --engine KIND` evaluates: an engine from the table of kinds
    (`globe.engines.kinds`: a local model directory, an OpenAI-compatible endpoint where `model`
    is the served model's name, the tiny world's scene reader named `model`), or the client of a
    served globe predictor (`model` its KServe name; `samples` > 1 asks it for its consensus)."""
    from globe.engines.kinds import SERVED_PREDICTOR, make_engine

    if kind == SERVED_PREDICTOR:
        from globe.serve.client import PredictorClient

        if not base_url:
            raise RunError(f"engine {kind!r} needs --base-url (e.g. http://127.0.0.1:8080)")
        return PredictorClient(base_url, model, concurrency=concurrency, samples=samples)
    if kind == "openai" and not base_url:
        raise RunError("engine 'openai' needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    spec = {"kind": kind, "model": model, "base_url": base_url, "batch_size": batch_size, "concurrency": concurrency,
            "seed": seed}
    try:
        return make_engine(spec)
    except ValueError as exc:
        raise RunError(str(exc)) from None


def compact(out_dir: Path, rows: Sequence[dict]) -> None:
    """Rewrite predictions.jsonl atomically to exactly `rows` (drops superseded retries and rows
    of a previous, larger --limit), so the file and metrics.json describe the same images."""
    path = Path(out_dir) / PREDICTIONS
    blob = "".join(json_line(r) + "\n" for r in rows).encode("utf-8")
    if not path.exists() or path.read_bytes() != blob:
        atomic_write_bytes(path, blob)


def evaluate(
    engine,
    samples: Sequence[Sample],
    out_dir: Path,
    spec: RunSpec,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    gallery_size: int = 24,
    progress: bool = True,
    lineage: Sequence[tuple[str, str]] = (),
    grounding=None,
) -> dict:
    """The whole run: predict (resumable), compact, finalize the reports, log to MLflow if configured."""
    t0 = time.perf_counter()
    spec = served_decoding(engine, spec)
    rows = predict(engine, samples, out_dir, spec, progress=progress, grounding=grounding)
    predict_s = time.perf_counter() - t0
    compact(out_dir, rows)
    title = f"{Path(spec.model).name or spec.model} on {spec.benchmark}"
    decoding = f"max_new_tokens={spec.max_new_tokens}, temperature={spec.temperature}"
    if spec.samples > 1:
        title += f", consensus of {spec.samples}"
        decoding += f", top_p={spec.top_p}, samples={spec.samples} (great-circle vote)"
    meta = [("model", spec.model), ("engine", spec.engine), ("benchmark", spec.benchmark), ("images", len(rows)),
            ("decoding", decoding),
            ("written", time.strftime("%Y-%m-%d %H:%M:%S %Z"))]
    metrics = finalize(out_dir, rows, title=title, meta=meta, lineage=lineage, n_boot=n_boot, seed=seed,
                       gallery_size=gallery_size)
    metrics["timing"]["predict_s"] = round(predict_s, 3)
    run_id = log_to_mlflow(out_dir, metrics, {"model": spec.model, "engine": spec.engine, "benchmark": spec.benchmark,
                                              "n": len(rows), "max_new_tokens": spec.max_new_tokens,
                                              "temperature": spec.temperature, "samples": spec.samples})
    if run_id:
        metrics["mlflow_run_id"] = run_id
    return metrics


def consensus_calibration(path: str | None, samples: int, temperature: float) -> dict[str, Any] | None:
    """`eval.calibration` loaded and checked against the run's N and temperature (None: raw agreement)."""
    if path is None or samples < 2:
        return None
    from globe.consensus import Calibration, CalibrationError

    try:
        return Calibration.load(path).check(f"eval.calibration {path}", temperature, samples).to_dict()
    except CalibrationError as exc:
        raise RunError(str(exc)) from None


def run_benchmark(params, model: str, samples: Sequence[Sample], out_dir: Path, *, benchmark: str,
                  engine: str | None = None, base_url: str | None = None, progress: bool = True,
                  lineage: Sequence[tuple[str, str]] = ()) -> dict:
    """`globe eval run` and the pipeline's evaluate step: the `eval` group's engine and decoding
    over `samples`, written to `out_dir`; returns the metrics. `eval.samples` > 1 answers each
    image by the consensus of that many reasonings at `eval.sample_temperature`/`sample_top_p`."""
    from globe.prompts import GEO_PROMPT, GEO_SYSTEM

    ev = params.eval
    kind = engine or ev.engine
    n = ev.samples
    spec = RunSpec(benchmark=benchmark, model=model, engine=kind, prompt=GEO_PROMPT, system=GEO_SYSTEM,
                   max_new_tokens=ev.max_new_tokens, temperature=ev.sample_temperature if n > 1 else ev.temperature,
                   top_p=ev.sample_top_p if n > 1 else 1.0, samples=n, batch_size=ev.batch_size,
                   calibration=None if kind == "globe-predictor" else consensus_calibration(ev.calibration, n, ev.sample_temperature),
                   extra={"seed": params.base.seed})
    grounding = None
    if ev.grounding_judge is not None:
        from globe.data.distill import build_teacher
        from globe.data.grounding_check import JudgeGrounding

        grounding = JudgeGrounding(build_teacher(ev.grounding_judge, concurrency=ev.concurrency))
        spec.extra["grounding_judge"] = ev.grounding_judge.name
    eng = build_engine(kind, model, base_url=base_url or ev.base_url, batch_size=ev.batch_size,
                       concurrency=ev.concurrency, seed=params.base.seed, samples=n)
    return evaluate(eng, samples, Path(out_dir), spec, n_boot=ev.bootstrap, seed=params.base.seed,
                    gallery_size=ev.gallery_size, progress=progress, lineage=lineage, grounding=grounding)
