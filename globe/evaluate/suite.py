"""Score several models on the same held-out sets and say, with paired intervals, which is better.

A training claim is a comparison: "GRPO beats the SFT checkpoint it started from" means both were
scored on the same images and the difference is larger than chance. So the main job's evaluate
stage runs every model (base, SFT, GRPO) over every split (in-domain, shifted) with the one
harness (`runner.run_benchmark`, each run resumable in `OUT/<split>/<model>/`), then compares the
pairs it is asked about with the paired bootstrap of `globe eval compare` (`compare.compare_runs`).

What it writes next to the runs:
- `metrics.json`: the headline only (country_acc and acc_25km per model and split, and each asked-for
  delta with its 95% interval), so `dvc metrics show` stays readable;
- `comparisons.json`: every metric of every comparison, as `globe eval compare --json` prints it;
- `summary.md` and `report.html` (self-contained): the same tables and the accuracy curves of all
  models on one plot per split.

Both front-ends of the main job run it with the same meaning (tests/test_pipeline.py compares them):
`dvc repro`'s evaluate stage (`globe eval models`) and the KFP pipeline's evaluate step
(`globe.kfp.steps.evaluate`) score `MODELS` on the held-out splits, compare `COMPARISON`, and
promotion gates on the flat metrics.json of one run, `GATED` (`run_dir`), never on the nested
headline: `globe promote` needs a top-level number. Which held-out splits a run has is the params'
rule (`globe.data.heldout.heldout_splits`): both front-ends pass their splits through
`select_splits`, which drops a split the source does not have (an imported source's `shifted`
marker directory) with a note instead of scoring an empty set, and refuses one that should be there
but holds only the marker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from globe.evaluate.report import COMPARISON_CSS
from globe.io import atomic_write_bytes

# metrics.json: what `dvc metrics show` prints, per model and split (consistency and wrong_reason:
# does the reasoning support the answer, globe.faithfulness)
HEADLINE = ("country_acc", "acc_25km", "consistency", "wrong_reason")
TABLE = ("country_acc", "city_acc", "acc_25km", "acc_2500km", "consistency", "wrong_reason")  # summary.md, report.html
DELTA_KEYS = ("country_acc", "acc_25km", "consistency")

# The main job's evaluation, as dvc.yaml's evaluate and register stages spell it: the models in the
# order they are trained, the paired comparison the training claim rests on (candidate:baseline),
# and the run promotion gates on (split, model): GRPO on the in-domain held-out set.
MODELS = ("base", "sft", "grpo")
COMPARISON = "grpo:sft"
GATED = ("in_domain", "grpo")


@dataclass(frozen=True)
class Split:
    """A named held-out set: a benchmark name and where it lies (a GeoScenes dataset dir, a JSONL...)."""

    name: str
    path: Path
    benchmark: str = "geoscenes"


def parse_pairs(specs: Sequence[str], known: Sequence[str]) -> list[tuple[str, str]]:
    """`["grpo:sft"]` -> `[("grpo", "sft")]` (candidate, baseline); both names must be models of the suite.

    >>> parse_pairs(["grpo:sft"], ["base", "sft", "grpo"])
    [('grpo', 'sft')]
    """
    pairs = []
    for spec in specs:
        b, sep, a = spec.partition(":")
        if not sep or b not in known or a not in known or a == b:
            raise ValueError(f"comparison {spec!r}: expected CANDIDATE:BASELINE with two of the models {', '.join(known)}")
        pairs.append((b, a))
    return pairs


NOT_SCORED = "NOT_SCORED"  # OUT/<split>/NOT_SCORED: why a split given to the suite was skipped


def select_splits(params, splits: Sequence[Split]) -> tuple[list[Split], dict[str, str]]:
    """The splits of `splits` to score under `params`, and {name: why} for those to skip.

    A split the source does not have is skipped, never scored: a held-out split name
    (`globe.data.heldout.SPLITS`) that `heldout_splits(params)` leaves out (an imported source has
    no `shifted`), or any other name whose directory is a `NO_SHIFTED_SET` marker. A split the
    params call for whose directory holds only the marker (made for another source) raises
    ValueError naming the path: scoring it would mean scoring nothing. A missing or empty split is
    the loader's error (`load_benchmark`), which also names the path."""
    from globe.data.heldout import SPLITS, heldout_splits, no_split_reason

    wanted = heldout_splits(params)
    kept: list[Split] = []
    skipped: dict[str, str] = {}
    for split in splits:
        reason = no_split_reason(split.path)
        if split.name in wanted and reason is not None:
            raise ValueError(f"split {split.name}: {split.path} holds no held-out set ({reason}), but source.format is "
                             f"{params.source.format}, which is scored on {', '.join(wanted)}: write it again "
                             "(globe data heldout, or dvc repro heldout)")
        if split.name not in wanted and (split.name in SPLITS or reason is not None):
            skipped[split.name] = reason or (f"source.format is {params.source.format}, which has the held-out "
                                             f"split(s) {', '.join(wanted)} only")
            continue
        kept.append(split)
    return kept, skipped


def run_dir(out: str | Path, split: str, model: str) -> Path:
    """Where `evaluate_suite` writes one model's run on one split: `OUT/<split>/<model>/`, a
    `globe eval run` directory whose metrics.json is flat (what `globe register` records and
    `globe promote` gates on; dvc.yaml's register stage names `results/evaluate/in_domain/grpo`)."""
    return Path(out) / split / model


def evaluate_suite(
    params,
    models: Mapping[str, str],
    splits: Sequence[Split],
    out: str | Path,
    comparisons: Sequence[tuple[str, str]] = (),
    progress: bool = True,
    lineage: Sequence[tuple[str, str]] = (),
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Evaluate every model on every split into `out/<split>/<model>/`, compare the pairs; returns metrics.json.

    `lineage` rows (`globe.lineage.report_rows`: dataset versions, images, the pipeline run) go into
    every run's report.html and the overview's, so the page a registered model carries says which
    data it was measured on. `skipped` ({split: why}, from `select_splits`) are not scored: each
    gets `out/<split>/NOT_SCORED` saying why (the directory a dvc output names still exists) and a
    line in summary.md; metrics.json has the scored splits only. Every split is loaded before any
    model runs, so a missing or empty one fails at once, naming its path."""
    from globe.evaluate.benchmarks import load_benchmark
    from globe.evaluate.compare import compare_runs
    from globe.evaluate.runner import run_benchmark

    out = Path(out)
    loaded = {split.name: load_benchmark(split.benchmark, path=split.path, limit=params.eval.limit) for split in splits}
    results: dict[str, dict[str, dict]] = {}
    for split in splits:
        samples = loaded[split.name]
        results[split.name] = {
            name: run_benchmark(params, model, samples, run_dir(out, split.name, name), benchmark=split.benchmark,
                                progress=progress, lineage=lineage)
            for name, model in models.items()
        }
    compared: dict[str, dict[str, dict]] = {}
    for split in splits:
        for b, a in comparisons:
            compared.setdefault(split.name, {})[f"{b}_vs_{a}"] = compare_runs(
                run_dir(out, split.name, a), run_dir(out, split.name, b), n_boot=params.eval.bootstrap, seed=params.base.seed
            )
    for name, why in (skipped or {}).items():
        atomic_write_bytes(out / name / NOT_SCORED, f"not scored: {why}\n".encode("utf-8"))
    metrics = headline(results, compared)
    _write_json(out / "metrics.json", metrics)
    _write_json(out / "comparisons.json", compared)
    atomic_write_bytes(out / "summary.md", summary_md(results, compared, models, skipped).encode("utf-8"))
    atomic_write_bytes(out / "report.html", report_html(results, compared, out, models, lineage).encode("utf-8"))
    return metrics


def headline(results: Mapping[str, Mapping[str, Mapping]], compared: Mapping[str, Mapping[str, Mapping]]) -> dict:
    """{split: {model: {HEADLINE...}, "B_vs_A": {metric: {delta, lo, hi}}}} (DELTA_KEYS only): the
    figures a reader compares, a few per split, so `dvc metrics show` stays one readable row."""
    doc: dict[str, dict] = {}
    for split, runs in results.items():
        doc[split] = {name: {k: m.get(k) for k in HEADLINE} for name, m in runs.items()}
        for pair, result in compared.get(split, {}).items():
            doc[split][pair] = {
                k: {"delta": result["metrics"][k]["delta"], "lo": result["metrics"][k]["ci"][0],
                    "hi": result["metrics"][k]["ci"][1]}
                for k in DELTA_KEYS
            }
    return doc


def _pct(v: Any, signed: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}%"


def _delta(result: Mapping, key: str) -> Mapping:
    m = result["metrics"][key]
    return {"delta": m["delta"], "lo": m["ci"][0], "hi": m["ci"][1], "significant": m["significant"]}


def _delta_text(d: Mapping) -> str:
    if d.get("delta") is None:
        return "–"
    mark = "significant" if d.get("significant") else "not significant"
    return f"{_pct(d['delta'], True)} pt [{_pct(d['lo'], True)}, {_pct(d['hi'], True)}] ({mark})"


def summary_md(results: Mapping, compared: Mapping, models: Mapping[str, str], skipped: Mapping[str, str] | None = None) -> str:
    """One table per split: each model's figures, then each comparison with its interval; then one
    line per skipped split saying why it was not scored."""
    lines = ["### Held-out evaluation", ""]
    for split, runs in results.items():
        names = [n for n in models if n in runs]
        n = runs[names[0]].get("n") if names else 0
        lines += [f"**{split}** ({n} images)", "",
                  "| model | " + " | ".join(TABLE) + " |", "|---|" + "---:|" * len(TABLE)]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(_pct(runs[name].get(k)) for k in TABLE) + " |")
        pairs = compared.get(split, {})
        if pairs:
            lines += ["", "| paired delta (95% bootstrap CI) | " + " | ".join(DELTA_KEYS) + " |",
                      "|---|" + "---|" * len(DELTA_KEYS)]
            for pair, result in pairs.items():
                cells = " | ".join(_delta_text(_delta(result, k)) for k in DELTA_KEYS)
                lines.append(f"| {pair.replace('_vs_', ' − ')} | {cells} |")
        lines.append("")
    for split, why in (skipped or {}).items():
        lines += [f"**{split}**: not scored ({why})", ""]
    return "\n".join(lines)


REPORT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
""" + COMPARISON_CSS + """.meta{color:#555;font-size:13px}
</style></head><body>
<h1>{{ title }}</h1>
<p class="meta">Every model answered the same images; a delta's interval is a paired bootstrap over them
({{ n_boot }} resamples). Headline distances geocode the answered place names. Models: {% for n, p in models %}<b>{{ n }}</b> {{ p }}{% if not loop.last %} &middot; {% endif %}{% endfor %}</p>
{% for split in splits %}<h2>{{ split.name }} ({{ split.n }} images)</h2>
<table><thead><tr><th>model</th>{% for k in table %}<th>{{ k }}</th>{% endfor %}</tr></thead><tbody>
{% for row in split.rows %}<tr><td>{{ row[0] }}</td>{% for v in row[1:] %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>
{% if split.deltas %}<p></p><table><thead><tr><th>paired delta</th>{% for k in delta_keys %}<th>{{ k }} (95% CI)</th>{% endfor %}</tr></thead><tbody>
{% for name, cells in split.deltas %}<tr><td>{{ name }}</td>{% for text, cls in cells %}<td class="num {{ cls }}">{{ text }}</td>{% endfor %}</tr>{% endfor %}
</tbody></table>{% endif %}
<p><img alt="accuracy against distance, {{ split.name }}" src="{{ split.plot }}"></p>
{% endfor %}
{% if lineage %}<h2>Lineage</h2>
<table id="lineage"><thead><tr><th>what</th><th>value</th></tr></thead>
<tbody>{% for k, v in lineage %}<tr><td>{{ k }}</td><td><code>{{ v }}</code></td></tr>{% endfor %}</tbody></table>{% endif %}
</body></html>
"""


def report_html(results: Mapping, compared: Mapping, out: Path, models: Mapping[str, str],
                lineage: Sequence[tuple[str, str]] = ()) -> str:
    """The overview page: tables and one accuracy-curve plot per split (all models), inlined, and
    the lineage rows when there are any."""
    import jinja2

    from globe.evaluate.compare import load_run
    from globe.evaluate.plots import plot_accuracy_curve
    from globe.evaluate.report import data_uri

    splits = []
    n_boot = 0
    for split, runs in results.items():
        names = [n for n in models if n in runs]
        curves = {n: [r.get("distance_km") for r in load_run(run_dir(out, split, n)).rows] for n in names}
        png = plot_accuracy_curve(curves, out / split / "accuracy_curves.png", title=f"{split}: accuracy against distance")
        deltas = []
        for pair, result in compared.get(split, {}).items():
            cells = []
            for k in DELTA_KEYS:
                d = _delta(result, k)
                cls = "" if not d["significant"] else ("up" if (d["delta"] or 0) > 0 else "down")
                cells.append((_delta_text(d), cls))
            deltas.append((pair.replace("_vs_", " − "), cells))
        n_boot = max(n_boot, *(runs[n].get("bootstrap", {}).get("resamples", 0) for n in names))
        splits.append({
            "name": split, "n": runs[names[0]].get("n") if names else 0,
            "plot": data_uri(Path(png).read_bytes(), "image/png"),
            "rows": [[n, *(_pct(runs[n].get(k)) for k in TABLE)] for n in names], "deltas": deltas,
        })
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(REPORT).render(
        title="Held-out evaluation: every model on the same images", splits=splits, table=TABLE,
        delta_keys=DELTA_KEYS, models=list(models.items()), n_boot=n_boot, lineage=list(lineage),
    )


def _write_json(path: Path, doc: Any) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8"))
