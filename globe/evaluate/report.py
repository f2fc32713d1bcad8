"""report.html (one self-contained page) and summary.md for an evaluation run.

The page must render where there is no network and no file server: the KFP UI shows HTML artifacts
in a sandboxed iframe and MLflow serves artifacts one file at a time. So everything is inlined: the
plots and the gallery thumbnails are `data:` URIs, the CSS is in a `<style>` block, and there is no
script, font or stylesheet from anywhere else. Model output is untrusted text; Jinja2's autoescape
keeps a `<script>` in a reasoning trace from becoming markup.

The gallery spans the whole error range (best, median, worst and evenly in between, by distance)
instead of the first N images, so a reader sees both what the model gets right and how it fails.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from globe.evaluate.plots import THRESHOLD_NAMES, THRESHOLDS_KM

# The tables and deltas of the pages that compare models (suite's report.html, compare.html); each
# page adds its own rules after these.
COMPARISON_CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1b1b1b}
h1{font-size:22px} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px} th{background:#1f3b5c;color:#fff;text-align:left;padding:5px 10px}
td{padding:4px 10px;border-bottom:1px solid #e3e3e3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#1a7f37;font-weight:600} .down{color:#b00020;font-weight:600} img{max-width:100%;border:1px solid #ddd}
"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px} .note{color:#7a4b00;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th{background:#1f3b5c;color:#fff;text-align:left;padding:5px 10px;font-weight:600}
td{padding:4px 10px;border-bottom:1px solid #e3e3e3} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#f6f8fa}
.plots img{max-width:100%;border:1px solid #ddd;margin:6px 12px 6px 0;vertical-align:top}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px;font-size:12.5px;background:#fff;min-width:0;overflow:hidden}
.card code,.kv span{overflow-wrap:anywhere;word-break:break-word;min-width:0}
.how{display:inline-block;padding:0 6px;border-radius:4px;background:#e8eef5;color:#1f3b5c;font-weight:600}
.how.fallback{background:#fde8d8;color:#8a3b00}
.card img{width:100%;max-height:220px;object-fit:contain;background:#eee;border-radius:4px}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.b0{background:#1a9850}.b1{background:#66bd63}.b2{background:#a6a600}.b3{background:#f46d43}.b4{background:#d73027}.b5{background:#7f7f7f}
.kv{display:grid;grid-template-columns:84px 1fr;gap:1px 6px;margin:6px 0} .kv b{color:#555;font-weight:600}
.think{white-space:pre-wrap;background:#f6f8fa;border-radius:4px;padding:6px;max-height:170px;overflow:auto;font-size:12px}
.err{color:#b00020}
.card.contradicts{border:2px solid #b00020} .flag{color:#b00020;font-weight:600}
</style></head>
<body>
<h1>{{ title }}</h1>
<div class="meta">{% for k, v in meta %}<b>{{ k }}</b>: {{ v }}{% if not loop.last %} &middot; {% endif %}{% endfor %}</div>
{% if label_note %}<p class="note">{{ label_note }}</p>{% endif %}

<h2>Metrics</h2>
<p class="meta">Headline: the place each answer names is geocoded offline (GeoNames), as the paper did with a
maps API. Stated coordinates: the coordinates the answer states, else its names; a second protocol.</p>
<table id="metrics">
<thead><tr><th>metric</th><th>value (headline: names geocoded)</th><th>95% CI (bootstrap, {{ n_boot }} resamples)</th><th>stated coordinates</th></tr></thead>
<tbody>
{% for name, value, ci, stated in metric_rows %}<tr><td>{{ name }}</td><td class="num">{{ value }}</td><td class="num">{{ ci }}</td><td class="num">{{ stated }}</td></tr>
{% endfor %}</tbody></table>
{% if resolutions %}<p class="meta">Headline places resolved as: {{ resolutions }}</p>{% endif %}
{% if resolution_rows %}<table id="by-resolution"><thead><tr><th>placed by (headline)</th><th>n</th>{% for t in thresholds %}<th>&le; {{ t }} km</th>{% endfor %}</tr></thead>
<tbody>{% for row in resolution_rows %}<tr>{% for cell in row %}<td{% if not loop.first %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<p class="meta">Rows within each distance by how the headline placed them (share of that resolution's rows): a
capital or centroid fallback that lands near the truth is luck, not a located answer.</p>{% endif %}

{% if continent_rows %}<h2>By continent (ground truth)</h2>
<table id="continents"><thead><tr><th>continent</th><th>n</th>{% for t in thresholds %}<th>&le; {{ t }} km</th>{% endfor %}<th>median km</th><th>country</th></tr></thead>
<tbody>{% for row in continent_rows %}<tr>{% for cell in row %}<td{% if not loop.first %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>{% endif %}

{% if lineage %}<h2>Lineage</h2>
<table id="lineage"><thead><tr><th>what</th><th>value</th></tr></thead>
<tbody>{% for k, v in lineage %}<tr><td>{{ k }}</td><td><code>{{ v }}</code></td></tr>
{% endfor %}</tbody></table>{% endif %}

<h2>Plots</h2>
<div class="plots">{% for alt, uri in plots %}<img alt="{{ alt }}" src="{{ uri }}">{% endfor %}</div>

{% if contradicting %}<h2>Reasoning that does not support its answer ({{ contradicting|length }} shown)</h2>
<p class="meta">The place the reasoning concludes (read from the reasoning alone) is not the place the answer names
(same city, or within 25 km): right answers among them are right for the wrong reason.</p>
<div class="gallery">{% for g in contradicting %}<div class="card contradicts">
<div><span class="badge b{{ g.bucket }}">{{ g.distance }}</span> <code>{{ g.id }}</code></div>
<div class="kv"><b>answer</b><span>{{ g.pred }}</span><b>reasoning</b><span class="flag">{{ g.support }}</span></div>
{% if g.think.strip() %}<div class="think">{{ g.think }}</div>{% endif %}
</div>{% endfor %}</div>{% endif %}

<h2>Gallery ({{ gallery|length }} of {{ n }} images, across the error range)</h2>
<div class="gallery">
{% for g in gallery %}<div class="card{% if g.contradicts %} contradicts{% endif %}">
{% if g.thumb %}<img alt="{{ g.id }}" src="{{ g.thumb }}">{% else %}<div class="err">image unavailable: {{ g.image_error }}</div>{% endif %}
<div><span class="badge b{{ g.bucket }}">{{ g.distance }}</span> <code>{{ g.id }}</code></div>
<div class="kv"><b>truth</b><span>{{ g.truth }}</span><b>prediction</b><span>{{ g.pred }}</span><b>placed by</b><span><span class="how{% if 'fallback' in g.how %} fallback{% endif %}">{{ g.how }}</span></span><b>headline</b><span>{{ g.coords }}</span><b>stated coords</b><span>{{ g.stated }}</span>{% if g.consensus %}<b>consensus</b><span>{{ g.consensus }}</span>{% endif %}<b>reasoning</b><span{% if g.contradicts %} class="flag"{% endif %}>{{ g.support }}</span></div>
{% if g.error %}<div class="err">engine error: {{ g.error }}</div>{% endif %}
{% if g.think.strip() %}<div class="think">{{ g.think }}</div>{% endif %}
</div>
{% endfor %}</div>
</body></html>
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(image_ref: str, size: int = 320) -> str:
    """A small JPEG of the image as a data: URI (local path or s3:// URI)."""
    from globe.images import open_ref

    img = open_ref(image_ref)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return data_uri(buf.getvalue(), "image/jpeg")


def select_gallery(rows: Sequence[Mapping], k: int = 24) -> list[Mapping]:
    """k rows evenly spread over the error ranking: best, worst and in between; unanswered last."""
    ranked = sorted(rows, key=lambda r: (r.get("distance_km") is None, r.get("distance_km") or 0.0, str(r.get("id"))))
    if len(ranked) <= k:
        return ranked
    picks = sorted({round(i * (len(ranked) - 1) / (k - 1)) for i in range(k)})
    return [ranked[i] for i in picks]


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _km(v: Any) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):,.0f} km" if float(v) >= 10 else f"{float(v):.2f} km"


def _ci(ci: Any, fmt) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "–"
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _bucket(d: float | None) -> int:
    if d is None:
        return 5
    return next((i for i, t in enumerate(THRESHOLDS_KM) if d <= t), 4)


def _place(city: Any, country: Any, lat: Any = None, lon: Any = None) -> str:
    name = ", ".join(str(x) for x in (city, country) if x) or "–"
    if lat is not None and lon is not None:
        name += f"  ({float(lat):.3f}, {float(lon):.3f})"
    return name


METRIC_ROWS = (
    *((f"acc_{t}km", f"within {t:g} km ({THRESHOLD_NAMES[t]})", "pct") for t in THRESHOLDS_KM),
    ("median_km", "median error", "km"),
    ("mean_km", "mean error", "km"),
    ("country_acc", "country accuracy (alias-aware)", "pct"),
    ("city_acc", "city accuracy (alias-aware)", "pct"),
    ("country_acc_string", "country accuracy (released string rule)", "pct"),
    ("city_acc_string", "city accuracy (released string rule)", "pct"),
    ("consistency", "reasoning supports the answer (consistency)", "pct"),
    ("wrong_reason", "right for the wrong reason (right, reasoning concludes elsewhere)", "pct"),
    ("no_conclusion", "reasoning concludes no place (not in consistency)", "pct"),
    ("cue_precision", "cue precision (named cues really in the image)", "pct"),
    ("cue_recall", "cue recall (image cues the reasoning names)", "pct"),
    ("n", "images", "int"),
    ("n_unparsed", "unparsed answers (counted as misses)", "int"),
    ("n_errors", "engine errors (counted as misses)", "int"),
    ("mean_confidence", "mean consensus confidence", "num"),
    ("ece", "calibration error of the confidence (ECE, 10 bins, within 25 km)", "num"),
)


def _metric_rows(metrics: Mapping, ci95: Mapping) -> list[tuple[str, str, str, str]]:
    """(label, headline value, its interval, the stated-coordinates protocol's value)."""
    stated = metrics.get("stated") or {}
    out = []
    for key, label, kind in METRIC_ROWS:
        if key not in metrics:
            continue
        value, other = metrics[key], stated.get(key)
        if kind == "pct":
            out.append((label, _pct(value), _ci(ci95.get(key), _pct), _pct(other) if key in stated else ""))
        elif kind == "km":
            out.append((label, _km(value), _ci(ci95.get(key), _km), _km(other) if key in stated else ""))
        elif kind == "num":
            out.append((label, "–" if value is None else f"{float(value):.3f}", "", ""))
        else:
            out.append((label, str(value), "", str(other) if key in stated else ""))
    return out


def _continent_rows(continents: Mapping[str, Mapping]) -> list[list[str]]:
    return [
        [name, str(m["n"]), *(_pct(m.get(f"acc_{t}km")) for t in THRESHOLDS_KM), _km(m.get("median_km")), _pct(m.get("country_acc"))]
        for name, m in continents.items()
    ]


# How a row was placed, as the gallery says it (metrics.json's `resolution`, "coordinates" read as "stated").
PLACED_BY = {"coordinates": "stated", "none": "not placed"}


def placed_by(where: Mapping) -> str:
    """city / landmark / feature / admin1 / capital-fallback / centroid-fallback / stated / not placed."""
    if where.get("pred_lat") is None:
        return "not placed"
    resolution = where.get("resolution") or "none"
    return PLACED_BY.get(resolution, resolution)


def _coords(where: Mapping) -> str:
    if where.get("pred_lat") is None:
        return "–"
    text = f"{where['pred_lat']:.3f}, {where['pred_lon']:.3f} ({placed_by(where)})"
    return text + (f" = {where['resolved_place']}" if where.get("resolved_place") else "")


def _stated(where: Mapping) -> str:
    """The stated-coordinates protocol: the coordinates the answer stated, if any. Where it fell
    back to the names, say so instead of repeating a geocoded place under a "stated" heading."""
    if where.get("coords_source") in ("stated", "given") and where.get("pred_lat") is not None:
        return f"{where['pred_lat']:.3f}, {where['pred_lon']:.3f}"
    return "none stated (names placed as the headline)" if where.get("pred_lat") is not None else "none stated"


def _resolution_rows(split: Mapping[str, Mapping]) -> list[list[str]]:
    return [[PLACED_BY.get(name, name), str(m["n"]),
             *(f"{m[f'hits_{t}km']} ({_pct(m[f'acc_{t}km'])})" for t in THRESHOLDS_KM)] for name, m in split.items()]


def _gallery_card(row: Mapping, thumb_size: int) -> dict:
    answer = row.get("answer") or {}
    try:
        thumb, image_error = (thumbnail_uri(row["image"], thumb_size) if thumb_size else None), None
    except Exception as exc:  # a missing image must not cost the whole report
        thumb, image_error = None, f"{type(exc).__name__}: {exc}"
    think = answer.get("think") or row.get("output") or ""
    return {
        "id": row.get("id"),
        "thumb": thumb,
        "image_error": image_error,
        "bucket": _bucket(row.get("distance_km")),
        "distance": "no answer" if row.get("distance_km") is None else _km(row["distance_km"]),
        "truth": _place(row.get("city"), row.get("country"), row.get("lat"), row.get("lon")),
        "pred": _place(answer.get("city"), answer.get("country")),
        "how": placed_by(row),
        "coords": _coords(row),
        "stated": _stated(row.get("stated") or {}),
        "error": row.get("error"),
        "think": think if len(think) <= 1200 else think[:1200] + " …",
        "consensus": _consensus_line(row),
        "contradicts": row.get("consistent") is False,
        "support": _support_line(row),
    }


def _support_line(row: Mapping) -> str:
    """What the reasoning concludes and whether it supports the answer (globe.faithfulness)."""
    where = row.get("reasoning_place") or {}
    place = _place(where.get("city"), where.get("country") or where.get("country_code")) if where else "no place"
    if row.get("consistent") is None:
        return f"concludes {place}: not comparable" if where else "concludes no place"
    return f"concludes {place}: " + ("supports the answer" if row["consistent"] else "does NOT support the answer")


def _consensus_line(row: Mapping) -> str:
    """'confidence 0.62 of 8, 1 unplaced: Paris, France 62% · Lyon, France 25%' for a consensus row, else ''."""
    if row.get("confidence") is None:
        return ""
    shown = " · ".join(f"{_place(c.get('city'), c.get('country'))} {100 * c['share']:.0f}%" for c in (row.get("candidates") or [])[:4])
    unplaced = f", {row['n_unplaced']} unplaced" if row.get("n_unplaced") else ""
    return f"confidence {row['confidence']:.2f} of {row.get('samples', '?')}{unplaced}" + (f": {shown}" if shown else ": no sample placed")


def render_report(
    metrics: Mapping,
    rows: Sequence[Mapping],
    plots: Mapping[str, Path],
    *,
    title: str,
    meta: Sequence[tuple[str, Any]] = (),
    lineage: Sequence[tuple[str, str]] = (),
    gallery_size: int = 24,
    thumb_size: int = 320,
) -> str:
    """The report page as one HTML string with every resource inlined; `lineage` rows (dataset
    versions, images, pipeline run: `globe.lineage.report_rows`) get a table of their own."""
    import jinja2

    sources = {r.get("label_source") for r in rows}
    label_note = (
        "Country and city labels of this benchmark were derived by offline reverse geocoding of the "
        "ground-truth coordinates (the benchmark gives coordinates only)."
        if "reverse-geocoded" in sources
        else ""
    )
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        title=title,
        meta=list(meta),
        lineage=list(lineage),
        label_note=label_note,
        n=len(rows),
        n_boot=metrics.get("bootstrap", {}).get("resamples", 0),
        metric_rows=_metric_rows(metrics, metrics.get("ci95", {})),
        resolutions=", ".join(f"{k} {v}" for k, v in (metrics.get("resolution") or {}).items()),
        thresholds=THRESHOLDS_KM,
        resolution_rows=_resolution_rows(metrics.get("by_resolution") or {}),
        continent_rows=_continent_rows(metrics.get("by_continent", {})),
        plots=[(name, data_uri(Path(p).read_bytes(), "image/png")) for name, p in plots.items()],
        gallery=[_gallery_card(r, thumb_size) for r in select_gallery(rows, gallery_size)],
        contradicting=[_gallery_card(r, 0) for r in [r for r in rows if r.get("consistent") is False][:6]],
    )


def render_summary_md(metrics: Mapping, title: str) -> str:
    """A short Markdown table of the headline metrics (KFP Markdown artifact, PR comments)."""
    ci95 = metrics.get("ci95", {})
    lines = [f"### {title}", "", "| metric | value (names geocoded) | 95% CI | stated coordinates |", "|---|---:|---:|---:|"]
    for label, value, ci, stated in _metric_rows(metrics, ci95):
        lines.append(f"| {label} | {value} | {ci} | {stated} |")
    if metrics.get("by_condition"):
        lines += ["", "| condition | n | acc_25km | country | consistency (95% CI) | right for the wrong reason |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, m in metrics["by_condition"].items():
            ci = (m.get("ci95") or {}).get("consistency")
            cons = _pct(m.get("consistency")) + (f" {_ci(ci, _pct)}" if ci else "")
            lines.append(f"| {name} | {m['n']} | {_pct(m.get('acc_25km'))} | {_pct(m.get('country_acc'))} | {cons} "
                         f"| {_pct(m.get('wrong_reason'))} |")
    return "\n".join(lines) + "\n"
