"""`globe eval compare RUN_A RUN_B`: metric deltas between two runs, with bootstrap intervals.

When the runs answered the same images (same benchmark, matched by sample id), the comparison is
paired over the images they share: one set of resampled images feeds both runs, so the interval is
for the difference on the same photos. Runs on disjoint images fall back to independent
resampling of each run. A delta whose interval excludes 0 is flagged as significant at 95%.
Distances are the headline protocol's (the answered places geocoded); rows of runs written before
that protocol existed are re-located from their own output first (`scoring.rescore_legacy`).

`write_comparison(result, out)` (`globe eval compare --out DIR`) writes `compare.json` (what
`--json` prints), `compare.md` (the table) and `compare.html`: the table and both runs' accuracy
curves over the compared images, one self-contained page (the plot inlined as a data: URI, as in
the run report).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from globe.evaluate.breakdown import CI_KEYS, deltas
from globe.evaluate.report import COMPARISON_CSS
from globe.evaluate.runner import PREDICTIONS, RUN_INFO, PredictionLog, RunError
from globe.evaluate.scoring import rescore_legacy

LOWER_IS_BETTER = {"median_km", "mean_km", "wrong_reason"}
CONDITION_KEYS = ("acc_25km", "country_acc", "consistency", "wrong_reason")  # per condition (`by_condition`)


@dataclass
class Run:
    path: Path
    rows: list[dict]
    info: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.info.get('model') or self.path.name} [{self.path}]"


def load_run(path: str | Path) -> Run:
    """A finished or partial run directory (its predictions.jsonl, and run.json when present)."""
    path = Path(path)
    pred = path / PREDICTIONS
    if not pred.is_file():
        raise RunError(f"{path}: not an evaluation run (no {PREDICTIONS}); pass the --out directory of `globe eval run`")
    rows = rescore_legacy(list(PredictionLog(pred).rows.values()))
    if not rows:
        raise RunError(f"{pred}: no prediction rows")
    info_path = path / RUN_INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    return Run(path, rows, info)


def compared_rows(run_a: Run, run_b: Run) -> tuple[list[dict], list[dict], bool]:
    """(rows of A, rows of B, paired): the images both answered, in A's order, else all of each."""
    by_id_b = {str(r["id"]): r for r in run_b.rows}
    common = [str(r["id"]) for r in run_a.rows if str(r["id"]) in by_id_b]
    if not common:
        return run_a.rows, run_b.rows, False
    by_id_a = {str(r["id"]): r for r in run_a.rows}
    return [by_id_a[i] for i in common], [by_id_b[i] for i in common], True


def compare_runs(a: str | Path, b: str | Path, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Deltas B - A for every metric, paired over shared images when there are any."""
    run_a, run_b = load_run(a), load_run(b)
    rows_a, rows_b, paired = compared_rows(run_a, run_b)
    result = _judged(deltas(rows_a, rows_b, paired=paired, n_boot=n_boot, seed=seed))
    by_condition = {}
    for condition in sorted({r["condition"] for r in rows_a if r.get("condition")}) if paired else ():
        keep = [i for i, r in enumerate(rows_a) if r.get("condition") == condition]
        per = deltas([rows_a[i] for i in keep], [rows_b[i] for i in keep], paired=True, n_boot=n_boot, seed=seed)
        by_condition[condition] = {"n": len(keep), **_judged({k: per[k] for k in CONDITION_KEYS})}
    return {
        "a": {"path": str(run_a.path), "model": run_a.info.get("model"), "benchmark": run_a.info.get("benchmark"),
              "n": len(run_a.rows), "samples": run_a.info.get("samples", 1)},
        "b": {"path": str(run_b.path), "model": run_b.info.get("model"), "benchmark": run_b.info.get("benchmark"),
              "n": len(run_b.rows), "samples": run_b.info.get("samples", 1)},
        "confidence": {"a": confidence_summary(rows_a), "b": confidence_summary(rows_b)},
        "paired": paired,
        "n_compared": len(rows_a) if paired else None,
        "bootstrap": {"resamples": n_boot, "seed": seed, "level": 0.95},
        "metrics": {k: result[k] for k in CI_KEYS},
        **({"by_condition": by_condition} if by_condition else {}),
    }


def _judged(entries: dict[str, dict]) -> dict[str, dict]:
    """Each delta marked `significant` (its interval excludes 0) and `better` (in the metric's direction)."""
    for name, entry in entries.items():
        lo, hi = entry["ci"]
        entry["significant"] = lo is not None and hi is not None and (lo > 0 or hi < 0)
        entry["better"] = None if entry["delta"] in (None, 0) else (entry["delta"] < 0) == (name in LOWER_IS_BETTER)
    return entries


def confidence_summary(rows: list[dict]) -> dict[str, Any] | None:
    """A consensus run's confidence over the compared rows (None for a greedy run): ECE, mean
    confidence, and acc_25km of its most confident half next to all its answers."""
    from globe.evaluate.calibration import calibration

    block = calibration(rows)
    if block is None:
        return None
    by_cov = {p["coverage"]: p["accuracy"] for p in block["selective_accuracy"]}
    return {"ece": block["ece"], "mean_confidence": block["mean_confidence"],
            "acc_25km_top50": by_cov.get(0.5), "acc_25km_all": by_cov.get(1.0)}


def _fmt(name: str, v: float | None, signed: bool = False) -> str:
    if v is None:
        return "–"
    sign = "+" if signed else ""
    if name.endswith("_km") and not name.startswith("acc_"):
        return f"{v:{sign},.1f} km"
    return f"{100 * v:{sign}.1f} pt" if signed else f"{100 * v:.1f}%"


def comparison_table(result: dict[str, Any]):
    """A rich Table of the comparison (A, B, delta, its 95% interval, significance)."""
    from rich.table import Table

    how = f"paired over {result['n_compared']} shared images" if result["paired"] else "unpaired (no shared images)"
    table = Table(title=f"B - A, {how}; 95% bootstrap CI ({result['bootstrap']['resamples']} resamples)")
    for col, justify in (("metric", "left"), ("A", "right"), ("B", "right"), ("delta", "right"), ("95% CI", "right"), ("", "left")):
        table.add_column(col, justify=justify)
    for name, m in result["metrics"].items():
        ci = _ci_text(name, m)
        if m["delta"] is None:
            flag = "undefined in a run"
        elif m["significant"]:
            flag = "[green]B better[/]" if m["better"] else "[red]B worse[/]"
        else:
            flag = "not significant"
        table.add_row(name, _fmt(name, m["a"]), _fmt(name, m["b"]), _fmt(name, m["delta"], True), ci, flag)
    conf = result.get("confidence") or {}
    if conf.get("a") or conf.get("b"):  # a consensus run: how far its confidence can be trusted
        for key, label in (("ece", "confidence ECE"), ("acc_25km_top50", "acc_25km, most confident 50%")):
            a, b = ((conf.get(side) or {}).get(key) for side in ("a", "b"))
            show = (lambda v: "–" if v is None else f"{v:.3f}") if key == "ece" else (lambda v: _fmt("acc", v))
            table.add_row(label, show(a), show(b), "", "", "greedy runs have none" if None in (a, b) else "")
    samples = {side: result[side].get("samples", 1) for side in ("a", "b")}
    if samples != {"a": 1, "b": 1}:
        table.title += f"; samples per image A {samples['a']}, B {samples['b']}"
    table.caption = f"A: {result['a']['path']} ({result['a']['model']})   B: {result['b']['path']} ({result['b']['model']})"
    return table


def _verdict(m: dict[str, Any]) -> str:
    if m["delta"] is None:
        return "undefined in a run"
    if m["significant"]:
        return "B better" if m["better"] else "B worse"
    return "not significant"


def _how(result: dict[str, Any]) -> str:
    if result["paired"]:
        return f"paired over {result['n_compared']} shared images"
    return "unpaired (no shared images)"


def comparison_md(result: dict[str, Any]) -> str:
    """The comparison as a Markdown table (PR comments, KFP Markdown artifacts)."""
    a, b = result["a"], result["b"]
    lines = [f"### B − A: {b.get('model') or b['path']} vs {a.get('model') or a['path']}", "",
             f"{_how(result)}; 95% bootstrap CI ({result['bootstrap']['resamples']} resamples). "
             f"A: `{a['path']}` ({a['n']} rows), B: `{b['path']}` ({b['n']} rows).", "",
             "| metric | A | B | delta | 95% CI | |", "|---|---:|---:|---:|---:|---|"]
    for name, m in result["metrics"].items():
        lines.append(f"| {name} | {_md_cells(name, m)} |")
    if result.get("by_condition"):
        lines += ["", "By condition (paired over the images of each):", "",
                  "| condition | n | metric | A | B | delta | 95% CI | |", "|---|---:|---|---:|---:|---:|---:|---|"]
        for condition, block in result["by_condition"].items():
            lines += [f"| {condition} | {block['n']} | {name} | {_md_cells(name, block[name])} |" for name in CONDITION_KEYS]
    return "\n".join(lines) + "\n"


def _ci_text(name: str, m: dict[str, Any]) -> str:
    """A delta's 95% interval as the tables print it ("–" when it is undefined)."""
    lo, hi = m["ci"]
    return "–" if lo is None else f"[{_fmt(name, lo, True)}, {_fmt(name, hi, True)}]"


def _md_cells(name: str, m: dict[str, Any]) -> str:
    """A, B, delta, interval and verdict of one metric, as Markdown cells."""
    return f"{_fmt(name, m['a'])} | {_fmt(name, m['b'])} | {_fmt(name, m['delta'], True)} | {_ci_text(name, m)} | {_verdict(m)}"


COMPARE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
""" + COMPARISON_CSS + """.meta{color:#555;font-size:13px;overflow-wrap:anywhere}
</style></head><body>
<h1>{{ title }}</h1>
<p class="meta">{{ how }}; 95% bootstrap intervals ({{ n_boot }} resamples, seed {{ seed }}). Distances geocode the
answered place names (the headline protocol).<br><b>A</b> {{ a_label }}<br><b>B</b> {{ b_label }}</p>
<h2>Metrics</h2>
<table id="compare"><thead><tr><th>metric</th><th>A</th><th>B</th><th>delta B − A</th><th>95% CI</th><th></th></tr></thead><tbody>
{% for name, va, vb, d, ci, verdict, cls in rows %}<tr><td>{{ name }}</td><td class="num">{{ va }}</td><td class="num">{{ vb }}</td><td class="num {{ cls }}">{{ d }}</td><td class="num">{{ ci }}</td><td class="{{ cls }}">{{ verdict }}</td></tr>
{% endfor %}</tbody></table>
<h2>Accuracy against distance</h2>
<p><img alt="accuracy curves of A and B" src="{{ plot }}"></p>
</body></html>
"""


def comparison_html(result: dict[str, Any], plot_png: bytes) -> str:
    """One self-contained page: the table and the accuracy-curve plot (inlined)."""
    import jinja2

    from globe.evaluate.report import data_uri

    rows = []
    for name, m in result["metrics"].items():
        ci = _ci_text(name, m)
        cls = "" if not m["significant"] else ("up" if m["better"] else "down")
        rows.append((name, _fmt(name, m["a"]), _fmt(name, m["b"]), _fmt(name, m["delta"], True), ci, _verdict(m), cls))
    a, b = result["a"], result["b"]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(COMPARE_HTML).render(
        title=f"Comparison: {b.get('model') or b['path']} − {a.get('model') or a['path']}", how=_how(result),
        n_boot=result["bootstrap"]["resamples"], seed=result["bootstrap"]["seed"], rows=rows,
        a_label=f"{a.get('model')} [{a['path']}], {a['n']} rows", b_label=f"{b.get('model')} [{b['path']}], {b['n']} rows",
        plot=data_uri(plot_png, "image/png"))


def write_comparison(result: dict[str, Any], out: str | Path) -> list[Path]:
    """compare.json, compare.md, compare.html (and the plot, compare_curves.png) into `out`; each
    written atomically. The curves are over the compared rows (the shared images when paired)."""
    from globe.evaluate.metrics import write_json_atomic
    from globe.evaluate.plots import plot_accuracy_curve
    from globe.io import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_a, run_b = load_run(result["a"]["path"]), load_run(result["b"]["path"])
    rows_a, rows_b, _ = compared_rows(run_a, run_b)
    label_a = f"A: {result['a'].get('model') or run_a.path.name}"
    label_b = f"B: {result['b'].get('model') or run_b.path.name}"
    png = plot_accuracy_curve({label_a: [r.get("distance_km") for r in rows_a],
                               label_b: [r.get("distance_km") for r in rows_b]},
                              out / "compare_curves.png", title="accuracy against distance (compared images)")
    write_json_atomic(out / "compare.json", result)
    atomic_write_bytes(out / "compare.md", comparison_md(result).encode("utf-8"))
    atomic_write_bytes(out / "compare.html", comparison_html(result, Path(png).read_bytes()).encode("utf-8"))
    return [out / "compare.json", out / "compare.md", out / "compare.html", Path(png)]
