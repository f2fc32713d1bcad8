"""The MLflow model registry: register a trained checkpoint, promote it only on evidence.

`register()` logs the model the MLflow 3 way — a *LoggedModel* whose artifacts are exactly a clean
Hugging Face checkpoint directory (config, safetensors, tokenizer and processor files; no optimizer
state, no trainer logs, no MLflow wrapper files) — next to a run holding the params, the evaluation
metrics and the evaluation report. It then registers a model version from that LoggedModel and
points the alias `challenger` at it. Because the artifact directory *is* the checkpoint, its
storage location (an `s3://...` prefix when the server's artifact root is S3) can be given to
KServe or vLLM as `storageUri` as it is.

`promote()` is the gate: it moves `champion` to the challenger only when the challenger's metric
(e.g. `acc_25km`) reaches the floor `min_value` (when set) and beats the champion's by more than
`min_improvement`. The floor applies to every challenger: a first model below it is not promoted
just because there is nothing to beat, and a challenger that beats a weak champion but stays below
the floor is not either. The metric, both numbers, the floor and the decision are tagged on the
versions and logged as a promotion run, so anyone can later see *why* a version is champion.

`storage_uri()` answers "where are the bytes of models:/NAME@ALIAS" from the registry's record of
the version (its storage location, which MLflow 3 sets from the LoggedModel's artifact location),
never by pattern-matching the `models:/` source string.

Lineage (`globe.lineage`: the DVC hashes of the training and evaluation data, the images the steps
ran in, the pipeline run, the resolved params) is written as `globe.lineage.*` tags with the version
itself and as `lineage.json` on its run; `lineage()` reads it back, and `attach_evaluation()` adds a
second evaluation (a benchmark) to an existing version.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from globe.config import RegisterGroup

# What a Hugging Face checkpoint needs to load with Auto classes, in transformers and vLLM alike.
CHECKPOINT_FILES = (
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
    "processor_config.json",
    "chat_template.json",
    "chat_template.jinja",
)
GATE_TAG = "globe.gate"


class RegistryError(RuntimeError):
    """A registry operation cannot proceed; the message says what is missing or wrong."""


def read_gate_metrics(path: str | Path, metric: str) -> dict[str, Any]:
    """The metrics.json of one evaluation run, refused unless it holds `metric` (register.metric) as
    a top-level number: `promote` gates on that number, so a nested document (the suite's
    `results/evaluate/metrics.json`, `in_domain.grpo.acc_25km`) registered as is would leave nothing
    to gate on. The error names the run's own file to pass instead. `globe register` (dvc's register
    stage) and the KFP register step both read the gate's metrics here."""
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"{path}: cannot read metrics JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise RegistryError(f"{path}: expected a JSON object of metrics, got {type(values).__name__}")
    if not _is_number(values.get(metric)):
        from globe.evaluate.suite import GATED

        nested = [key for key in flatten(values) if key.endswith(f".{metric}")]
        gated = ".".join((*GATED, metric))  # a suite's headline: point at the run the main job gates on
        example = gated if gated in nested else (nested[0] if nested else "")
        hint = (f"; it holds {', '.join(nested[:4])}: pass one run's metrics.json, e.g. "
                f"{path.parent / example.rsplit('.', 1)[0].replace('.', '/') / path.name}") if nested else ""
        raise RegistryError(f"{path}: no top-level number {metric!r} (register.metric, what `globe promote` gates on){hint}")
    return values


@dataclass
class Registered:
    name: str
    version: str
    model_id: str
    run_id: str
    alias: str
    storage_uri: str
    files: list[str]


@dataclass
class Decision:
    name: str
    metric: str
    higher_is_better: bool
    min_improvement: float
    min_value: float | None
    challenger_version: str
    challenger_value: float
    champion_version: str | None
    champion_value: float | None
    promoted: bool
    reason: str
    run_id: str = ""


LOCAL_TRACKING_URI = "sqlite:///mlflow.db"  # the one-machine path (`dvc repro`): a store in the working dir


def tracking_uri_of(tracking_uri: str | None = None) -> str:
    """Explicit URI, else $MLFLOW_TRACKING_URI, else a local sqlite store in the working directory."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_TRACKING_URI


def client(tracking_uri: str | None = None) -> "MlflowClient":
    from mlflow import MlflowClient

    uri = tracking_uri_of(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _mlflow_errors_as_registry_errors(fn):
    """MLflow's own failures (unknown alias, server unreachable) become one clear RegistryError."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except MlflowException as exc:
            raise RegistryError(f"MLflow: {exc.message}") from exc

    return wrapper


def clean_checkpoint(src: str | Path, dst: str | Path) -> list[str]:
    """Copy only the files a Hugging Face checkpoint consists of from `src` into `dst`."""
    src, dst = Path(src), Path(dst)
    if not (src / "config.json").is_file():
        raise RegistryError(f"{src}: not a Hugging Face checkpoint (no config.json)")
    files = sorted(p.name for p in src.iterdir() if p.is_file() and any(fnmatch(p.name, pat) for pat in CHECKPOINT_FILES))
    if not any(f.endswith(".safetensors") for f in files):
        raise RegistryError(f"{src}: no *.safetensors weights (save with save_pretrained(safe_serialization=True))")
    dst.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy2(src / name, dst / name)
    return files


@_mlflow_errors_as_registry_errors
def register(
    model_dir: str | Path,
    cfg: "RegisterGroup",
    *,
    metrics: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    report: str | Path | None = None,
    tracking_uri: str | None = None,
    tags: dict[str, str] | None = None,
    lineage: dict[str, str] | None = None,
    resolved_config: dict[str, Any] | None = None,
) -> Registered:
    """Log `model_dir` as a LoggedModel with its evidence, register a version, alias it challenger.

    `resolved_config` (values and their sources, `globe.config.write_resolved`'s document) is logged
    on the run as `resolved_config.yaml`; `params["serve"]` goes into the model as its serving settings.

    `lineage` (see `globe.lineage`) becomes the version's `globe.lineage.*` tags and `lineage.json`
    on the run; its dataset hashes are also run tags, so the experiment view shows them."""
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, RunTag

    from globe.lineage import to_tags

    c = client(tracking_uri or cfg.tracking_uri)
    exp = c.get_experiment_by_name(cfg.experiment)
    exp_id = exp.experiment_id if exp else c.create_experiment(cfg.experiment)
    flat_params = flatten(params or {})
    numeric = {k: float(v) for k, v in flatten_numbers(metrics or {}).items()}
    run = c.create_run(exp_id, run_name=f"register-{cfg.model_name}", tags={"globe.stage": "register", **(tags or {})})
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory(prefix="globe-ckpt-") as tmp:
            files = clean_checkpoint(model_dir, tmp)
            if (params or {}).get("serve"):  # the model carries the serving settings it was registered with
                from globe.serve.settings import save_settings

                files = sorted([*files, save_settings(params["serve"], tmp).name])
            logged = c.create_logged_model(
                exp_id,
                name=cfg.model_name,
                source_run_id=run_id,
                params={k: v[:1000] for k, v in flat_params.items()},
                model_type="huggingface-checkpoint",
                tags={"globe.format": "huggingface", "globe.source_dir": str(Path(model_dir).resolve())[:500]},
            )
            c.log_model_artifacts(logged.model_id, tmp)
        now = int(time.time() * 1000)
        lineage_tags = to_tags(lineage or {})
        run_tags = [RunTag(k, v) for k, v in lineage_tags.items() if k.endswith((".md5", "pipeline_run_id"))]
        _log_batch(c, run_id, [Metric(k, v, now, 0, model_id=logged.model_id) for k, v in numeric.items()],
                   [Param(k, v) for k, v in flat_params.items()], [RunTag("globe.model_id", logged.model_id), *run_tags])
        if lineage:
            c.log_dict(run_id, lineage, "lineage.json")
        if resolved_config:
            c.log_dict(run_id, resolved_config, "resolved_config.yaml")
        if metrics is not None:
            c.log_dict(run_id, metrics, "evaluation/metrics.json")
        if report is not None:
            _log_report(c, run_id, Path(report))
        c.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        c.log_outputs(run_id, [LoggedModelOutput(logged.model_id, 0)])
        _ensure_registered_model(c, cfg.model_name)
        version = c.create_model_version(
            cfg.model_name,
            source=f"models:/{logged.model_id}",
            run_id=run_id,
            model_id=logged.model_id,
            tags={"globe.model_id": logged.model_id, **{f"metric.{k}": repr(v) for k, v in numeric.items()}, **lineage_tags},
        )
        c.set_registered_model_alias(cfg.model_name, cfg.challenger_alias, version.version)
        _end_run(c, run_id, "FINISHED")
    except Exception:
        _end_run(c, run_id, "FAILED")
        raise
    return Registered(
        name=cfg.model_name,
        version=str(version.version),
        model_id=logged.model_id,
        run_id=run_id,
        alias=cfg.challenger_alias,
        storage_uri=c.get_model_version_download_uri(cfg.model_name, version.version),
        files=files,
    )


@_mlflow_errors_as_registry_errors
def promote(cfg: "RegisterGroup", *, tracking_uri: str | None = None) -> Decision:
    """Move the champion alias to the challenger iff it beats the champion on `cfg.metric`."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(tracking_uri or cfg.tracking_uri)
    challenger = _by_alias(c, cfg.model_name, cfg.challenger_alias)
    if challenger is None:
        raise RegistryError(f"model {cfg.model_name!r} has no {cfg.challenger_alias!r} alias; run `globe register` first")
    champion = _by_alias(c, cfg.model_name, cfg.champion_alias)
    ch_value = _metric_of(c, challenger, cfg.metric)
    if ch_value is None:
        raise RegistryError(f"{cfg.model_name} v{challenger.version} ({cfg.challenger_alias}) has no metric {cfg.metric!r}; cannot gate")
    champ_value = _metric_of(c, champion, cfg.metric) if champion is not None else None
    sign = "higher" if cfg.higher_is_better else "lower"
    below = _below_floor(ch_value, cfg)
    if below:
        promoted, reason = False, below
    elif champion is None:
        promoted, reason = True, f"no {cfg.champion_alias} yet: first model is promoted" + _floor_note(ch_value, cfg)
    elif champion.version == challenger.version:
        promoted, reason = False, f"v{challenger.version} is already {cfg.champion_alias}"
    elif champ_value is None:
        promoted, reason = False, f"{cfg.champion_alias} v{champion.version} has no metric {cfg.metric!r}; not replacing it blindly"
    else:
        gain = (ch_value - champ_value) if cfg.higher_is_better else (champ_value - ch_value)
        promoted = gain > cfg.min_improvement
        verdict = "beats" if promoted else "does not beat"
        reason = f"{cfg.metric} {ch_value:.6g} vs {champ_value:.6g} ({sign} is better): challenger {verdict} champion by more than {cfg.min_improvement:g}"
    decision = Decision(
        name=cfg.model_name,
        metric=cfg.metric,
        higher_is_better=cfg.higher_is_better,
        min_improvement=cfg.min_improvement,
        min_value=cfg.min_value,
        challenger_version=str(challenger.version),
        challenger_value=ch_value,
        champion_version=str(champion.version) if champion is not None else None,
        champion_value=champ_value,
        promoted=promoted,
        reason=reason,
    )
    exp = c.get_experiment_by_name(cfg.experiment)
    exp_id = exp.experiment_id if exp else c.create_experiment(cfg.experiment)
    run = c.create_run(exp_id, run_name=f"promote-{cfg.model_name}-v{challenger.version}", tags={"globe.stage": "promote"})
    decision.run_id = run.info.run_id
    now = int(time.time() * 1000)
    gate = f"{cfg.metric} {'>' if cfg.higher_is_better else '<'} champion (min_improvement {cfg.min_improvement:g})"
    if cfg.min_value is not None:
        gate += f" and {cfg.metric} {'>=' if cfg.higher_is_better else '<='} {cfg.min_value:g} (min_value)"
    values = [Metric("challenger_value", ch_value, now, 0)] + ([Metric("champion_value", champ_value, now, 0)] if champ_value is not None else [])
    c.log_batch(
        run.info.run_id,
        metrics=values,
        params=[Param("gate", gate), Param("challenger_version", decision.challenger_version), Param("champion_version", str(decision.champion_version))],
        tags=[RunTag("decision", "promoted" if promoted else "rejected"), RunTag("reason", reason[:5000])],
    )
    _end_run(c, run.info.run_id, "FINISHED")
    # Few tags on purpose: each is one registry round trip. `globe.gate` holds the whole record.
    verdict = "promoted" if promoted else "rejected"
    record = {
        "metric": cfg.metric,
        "rule": gate,
        "challenger_version": decision.challenger_version,
        "challenger_value": ch_value,
        "champion_version": decision.champion_version,
        "champion_value": champ_value,
        "min_value": cfg.min_value,
        "decision": verdict,
        "reason": reason,
        "run_id": run.info.run_id,
    }
    c.set_model_version_tag(cfg.model_name, challenger.version, GATE_TAG, json.dumps(record))
    c.set_model_version_tag(cfg.model_name, challenger.version, f"{GATE_TAG}.decision", verdict)
    if champion is not None and champion.version != challenger.version:
        c.set_model_version_tag(cfg.model_name, champion.version, f"{GATE_TAG}.last_challenger", f"v{challenger.version}: {verdict}")
    if promoted:
        c.set_registered_model_alias(cfg.model_name, cfg.champion_alias, challenger.version)
    return decision


def _below_floor(value: float, cfg: "RegisterGroup") -> str | None:
    """Why `value` fails the floor `cfg.min_value`, or None when there is no floor or it passes."""
    if cfg.min_value is None:
        return None
    ok = value >= cfg.min_value if cfg.higher_is_better else value <= cfg.min_value
    if ok:
        return None
    side = "below" if cfg.higher_is_better else "above"
    return (f"{cfg.metric} {value:.6g} is {side} the floor register.min_value {cfg.min_value:g}: "
            "not promoted, whatever the champion")


def _floor_note(value: float, cfg: "RegisterGroup") -> str:
    return "" if cfg.min_value is None else f" ({cfg.metric} {value:.6g} clears the floor {cfg.min_value:g})"


@_mlflow_errors_as_registry_errors
def storage_uri(model_uri: str, tracking_uri: str | None = None) -> str:
    """`models:/NAME@ALIAS`, `models:/NAME/VERSION` or `models:/<model_id>` -> the artifacts' real location."""
    from mlflow.store.artifact.utils.models import _parse_model_uri

    c = client(tracking_uri)
    try:
        parsed = _parse_model_uri(model_uri)
    except Exception as exc:
        raise RegistryError(f"{model_uri!r}: not a models:/ URI ({exc})") from exc
    if parsed.model_id is not None:
        return c.get_logged_model(parsed.model_id).artifact_location
    if parsed.alias is not None:
        version = c.get_model_version_by_alias(parsed.name, parsed.alias).version
    elif parsed.version is not None:
        version = parsed.version
    else:
        raise RegistryError(f"{model_uri!r}: give an alias (models:/NAME@champion) or a version (models:/NAME/3)")
    return c.get_model_version_download_uri(parsed.name, version)


def _version_of(c: "MlflowClient", model_uri: str):
    """The model version a `models:/NAME@ALIAS` or `models:/NAME/VERSION` URI names."""
    from mlflow.store.artifact.utils.models import _parse_model_uri

    try:
        parsed = _parse_model_uri(model_uri)
    except Exception as exc:
        raise RegistryError(f"{model_uri!r}: not a models:/ URI ({exc})") from exc
    if parsed.alias is not None:
        return c.get_model_version_by_alias(parsed.name, parsed.alias)
    if parsed.version is not None:
        return c.get_model_version(parsed.name, parsed.version)
    raise RegistryError(f"{model_uri!r}: give an alias (models:/NAME@champion) or a version (models:/NAME/3)")


@_mlflow_errors_as_registry_errors
def lineage(model_uri: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Name, version, storage location and lineage (`globe.lineage.*` tags) of a model version."""
    from globe.lineage import from_tags

    c = client(tracking_uri)
    version = _version_of(c, model_uri)
    found = from_tags(version.tags or {})
    return {"model": model_uri, "name": version.name, "version": str(version.version), "run_id": version.run_id,
            "storage_uri": c.get_model_version_download_uri(version.name, version.version), "lineage": found}


@_mlflow_errors_as_registry_errors
def attach_evaluation(
    name: str,
    version: str,
    benchmark: str,
    metrics: dict[str, Any],
    *,
    lineage: dict[str, str] | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Add a second evaluation (e.g. on a benchmark) to a registered version: its numbers as
    `<benchmark>.<metric>` on the version's run and as tags, plus its lineage tags."""
    from mlflow.entities import Metric

    from globe.lineage import to_tags

    c = client(tracking_uri)
    mv = c.get_model_version(name, version)
    now = int(time.time() * 1000)
    numeric = {f"{benchmark}.{k}": float(v) for k, v in flatten_numbers(metrics).items() if "." not in k}
    if mv.run_id:
        _log_batch(c, mv.run_id, [Metric(k, v, now, 0) for k, v in numeric.items()], [], [])
        c.log_dict(mv.run_id, metrics, f"evaluation-{benchmark}/metrics.json")
    tags = {f"metric.{k}": repr(v) for k, v in numeric.items() if k.split(".", 1)[1] in HEADLINE_TAGS}
    tags |= to_tags(lineage or {})
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)
    return {"name": name, "version": str(version), "benchmark": benchmark, "metrics": len(numeric), "tags": sorted(tags)}


HEADLINE_TAGS = ("n", "acc_1km", "acc_25km", "acc_200km", "acc_750km", "acc_2500km", "median_km", "country_acc", "city_acc")


def _log_batch(c: "MlflowClient", run_id: str, metrics: list, params: list, tags: list) -> None:
    """`log_batch` in chunks: MLflow takes at most 1000 metrics and 100 params + tags per call."""
    for i in range(0, len(metrics), 1000):
        c.log_batch(run_id, metrics=metrics[i:i + 1000])
    rest = [("p", p) for p in params] + [("t", t) for t in tags]
    for i in range(0, len(rest), 100):
        chunk = rest[i:i + 100]
        c.log_batch(run_id, params=[x for k, x in chunk if k == "p"], tags=[x for k, x in chunk if k == "t"])


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"grpo": {"lr": 1e-6}} -> {"grpo.lr": "1e-06"}; lists become JSON; MLflow's 6000-char cap applies."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            out[name] = text[:6000]
    return out


def decision_dict(decision: Decision) -> dict[str, Any]:
    return asdict(decision)


def _end_run(c: "MlflowClient", run_id: str, status: str) -> None:
    # MLflow prints "View run at <url>" to stdout here; keep stdout for the command's JSON.
    with contextlib.redirect_stdout(sys.stderr):
        c.set_terminated(run_id, status)


def _log_report(c: "MlflowClient", run_id: str, report: Path) -> None:
    if report.is_dir():
        c.log_artifacts(run_id, str(report), "evaluation")
    elif report.is_file():
        c.log_artifact(run_id, str(report), "evaluation")
    else:
        raise RegistryError(f"evaluation report {report} does not exist")


def _ensure_registered_model(c: "MlflowClient", name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        c.get_registered_model(name)
    except MlflowException:
        c.create_registered_model(name, description="GLOBE geo-reasoning VLM (Hugging Face checkpoint)")


def _by_alias(c: "MlflowClient", name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return c.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _metric_of(c: "MlflowClient", version: Any, metric: str) -> float | None:
    if version is None or not version.run_id:
        return None
    value = c.get_run(version.run_id).data.metrics.get(metric)
    return float(value) if value is not None else None


def flatten_numbers(tree: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"in_domain": {"grpo": {"acc_25km": 0.6}}} -> {"in_domain.grpo.acc_25km": 0.6}: the numbers of a
    nested metrics document under dotted names (MLflow metrics; the KFP evaluate step's Metrics)."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten_numbers(value, f"{prefix}{key}."))
        elif _is_number(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(float(value))
