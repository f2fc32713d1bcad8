"""The paper's four filters, which turn distilled teacher outputs into a trustworthy dataset.

Applied in order; each sample is removed by the first filter it fails, and the report counts
removals per filter and per reason:

1. localizable: the ground truth says so (GeoScenes knows), and the teachers' judgments agree
   (mean P(yes) >= 0.5 over the teachers that judged);
2. ground truth: at least one teacher names the right country (alias-aware, via
   `globe.geo.normalize_country`) and places the sample within `verify.max_km` of the true
   coordinates (its lat/lon, else its geocoded city);
3. teacher agreement: the candidate teacher is backed by at least `min_teacher_agreement` of the
   *other* teachers that gave a usable answer (same country, within `max_km` of each other);
   with a single teacher there is nobody to disagree and the filter passes;
4. grounding: the visual entities the candidate's reasoning names are present in the image
   (share >= `grounding_min_share`), by exact cue match for GeoScenes or a judge Engine for real
   photos; with no judge configured, real photos pass unchecked and the report says so.

Candidates are the teachers that pass filter 2, best first (strict format, then nearest); the kept
record's reference reasoning is the first candidate that passes filters 3 and 4, rewritten in GLOBE
format with `globe.answer.format_answer`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from globe.data.records import (
    IMAGES_DIR,
    Record,
    TeacherOutput,
    image_file,
    atomic_write_bytes,
    dump,
    link_or_copy,
    load_image,
    read_records,
    write_records,
)

REPORT_FILE = "report.json"
FILTERS = ("localizable", "ground_truth", "teacher_agreement", "grounding")


class VerifyError(ValueError):
    """An input or configuration problem that stops verification."""


@dataclass
class Located:
    teacher: TeacherOutput
    code: str | None
    lat: float | None
    lon: float | None
    distance_km: float | None = None


def locate(t: TeacherOutput) -> Located:
    """A teacher's answer as (country code, coordinates): its stated lat/lon, else its city
    geocoded (`globe.scorer.locate`, the stated protocol). A region or country stand-in (a capital
    fallback) is no location: the distance filter needs the place the teacher named."""
    from globe import geo
    from globe.answer import Answer
    from globe.scorer import PLACE_RESOLUTIONS
    from globe.scorer import locate as scorer_locate

    code = t.country_code or (geo.normalize_country(t.country) if t.country else None)
    lat = lon = None
    if t.city or (t.lat is not None and t.lon is not None):
        where = scorer_locate(Answer(country=t.country or code, city=t.city, lat=t.lat, lon=t.lon), "stated")
        if where.found and where.resolution in PLACE_RESOLUTIONS:
            lat, lon = where.lat, where.lon
            code = code or where.country_code
    return Located(t, code, lat, lon)


def _agree(a: Located, b: Located, max_km: float) -> bool:
    from globe import geo

    if a.code is None or a.code != b.code:
        return False
    if None in (a.lat, a.lon, b.lat, b.lon):
        return True  # same country, and nothing to measure
    return float(geo.haversine_km(a.lat, a.lon, b.lat, b.lon)) <= max_km


def _grounding_check(cfg, data_dir: Path, records: list[Record]):
    """The check for this dataset: exact cues for GeoScenes, a judge engine for real photos."""
    from globe.data.grounding_check import JudgeGrounding, SceneCueGrounding

    if records and all(r.meta.get("generator") == "geoscenes" for r in records):
        return SceneCueGrounding(), "geoscenes cues"
    if cfg.grounding_judge is not None:
        from globe.data.distill import DistillError, build_teacher

        try:
            judge = build_teacher(cfg.grounding_judge, data_dir)
        except DistillError as exc:
            raise VerifyError(f"verify.grounding_judge: {exc}") from exc
        return JudgeGrounding(judge), f"judge {cfg.grounding_judge.name}"
    return None, "not checked (set verify.grounding_judge for real photos)"


def teachers_p_localizable(record: Record) -> float | None:
    """The teachers' mean P(localizable) (a yes/no judgment counts 1/0); None when none judged."""
    votes = [t.p_localizable if t.p_localizable is not None else float(t.localizable) for t in record.teachers
             if t.p_localizable is not None or t.localizable is not None]  # fmt: skip
    return sum(votes) / len(votes) if votes else None


def judge_sample(record: Record, cfg, grounding, image_loader) -> tuple[str | None, str, dict[str, Any]]:
    """(failed filter or None, reason, details); details carry the chosen teacher when kept."""
    from globe import geo

    # 1. localizable
    if record.localizable is False:
        return "localizable", "ground truth: not localizable", {}
    p_yes = teachers_p_localizable(record)
    if p_yes is not None and p_yes < 0.5:
        return "localizable", "teachers judged it not localizable", {"mean_p_yes": p_yes}

    # 2. agreement with the ground truth
    usable = [locate(t) for t in record.teachers if t.ok and (t.country or t.city or t.lat is not None)]
    if not usable:
        failed = [t for t in record.teachers if not t.ok]
        return "ground_truth", "no teacher answered" if failed or not record.teachers else "no usable answer", {}
    truth = record.country_code or geo.normalize_country(record.country or "")
    candidates, misses = [], Counter()
    for u in usable:
        if u.code is None:
            misses["no country"] += 1
        elif u.code != truth:
            misses["wrong country"] += 1
        elif u.lat is None or u.lon is None:
            misses["no location"] += 1
        else:
            u.distance_km = float(geo.haversine_km(record.lat, record.lon, u.lat, u.lon))
            if u.distance_km > cfg.max_km:
                misses[f"more than {cfg.max_km:g} km away"] += 1
            else:
                candidates.append(u)
    if not candidates:
        return "ground_truth", misses.most_common(1)[0][0], {}
    candidates.sort(key=lambda u: (not u.teacher.format_ok, u.distance_km))

    # 3 and 4, per candidate, best first
    first_fail: tuple[str, str, dict] | None = None
    for cand in candidates:
        others = [u for u in usable if u.teacher is not cand.teacher]
        agreement = sum(_agree(cand, o, cfg.max_km) for o in others) / len(others) if others else 1.0
        if agreement < cfg.min_teacher_agreement:
            first_fail = first_fail or ("teacher_agreement", "teachers disagree", {"agreement": agreement})
            continue
        details = {"teacher": cand.teacher.teacher, "distance_km": round(cand.distance_km, 3), "agreement": agreement}
        if grounding is None:
            return None, "kept", details | {"grounding": None}
        g = grounding.check(record, cand.teacher.think or cand.teacher.text or "", image_loader)
        details |= {"grounding": round(g.share, 4), "named": g.named, "present": g.present}
        if g.error:
            first_fail = first_fail or ("grounding", "grounding check failed", {"error": g.error})
        elif not g.named:
            first_fail = first_fail or ("grounding", "reasoning names no visual entity", {})
        elif g.share < cfg.grounding_min_share:
            first_fail = first_fail or ("grounding", "named entities not in the image", details)
        else:
            return None, "kept", details
    return first_fail


def kept_record(record: Record, details: dict[str, Any]) -> Record:
    """The verified sample: reference reasoning = the chosen teacher's trace, in GLOBE format."""
    from globe import geo
    from globe.answer import format_answer

    t = next(t for t in record.teachers if t.teacher == details["teacher"])
    located = locate(t)
    country = geo.country_name(located.code) if located.code else t.country
    reasoning = format_answer(t.think or "", country, t.city, located.lat, located.lon)
    is_scene = record.meta.get("generator") == "geoscenes"
    entities = record.entities if is_scene else details.get("present") or record.entities
    meta = record.meta | {"verify": {k: v for k, v in details.items() if k not in ("named", "present")}}
    return record.model_copy(update={"reasoning": reasoning, "entities": entities, "localizable": True, "meta": meta})


def report_counts(report: dict[str, Any]) -> dict[str, Any]:
    """The headline of a verify report: images in, kept (and per split), removed per filter."""
    return {"input": report["input"], "kept": report["kept"], "kept_by_split": report["kept_by_split"],
            "removed": report["removed"]}


def verify(data_dir: str | Path, out_dir: str | Path, cfg) -> dict[str, Any]:
    """Filter `data_dir` (a distilled dataset) into `out_dir`; returns the report (also report.json)."""
    data_dir, out = Path(data_dir), Path(out_dir)
    if out.resolve() == data_dir.resolve():
        raise VerifyError(f"--out {out} is the input dataset; write the verified dataset elsewhere")
    try:
        records = read_records(data_dir)
    except (ValueError, OSError) as exc:
        raise VerifyError(str(exc)) from exc
    if records and not any(r.teachers for r in records):
        raise VerifyError(f"{data_dir}: no record has teacher outputs; run `globe distill` first")
    grounding, grounding_mode = _grounding_check(cfg, data_dir, records)
    removed: dict[str, Counter] = {f: Counter() for f in FILTERS}
    examples: dict[str, list] = defaultdict(list)
    kept: list[Record] = []
    for record in records:
        failed, reason, details = judge_sample(record, cfg, grounding, lambda r: load_image(data_dir, r))
        if failed is None:
            kept.append(kept_record(record, details))
        else:
            removed[failed][reason] += 1
            if len(examples[failed]) < 5:
                examples[failed].append({"id": record.id, "reason": reason} | {k: v for k, v in details.items() if k in ("agreement", "mean_p_yes", "named", "present", "error")})
    for r in kept:
        if not r.image.startswith("s3://"):
            link_or_copy(image_file(data_dir, r), image_file(out, r))
    write_records(out, kept)
    keep_images = {r.image for r in kept}
    for p in sorted((out / IMAGES_DIR).rglob("*")):
        if p.is_file() and p.relative_to(out).as_posix() not in keep_images:
            p.unlink()  # left by an earlier run with other settings
    report = {
        "input": len(records),
        "kept": len(kept),
        "removed": {f: sum(removed[f].values()) for f in FILTERS},
        "removed_by_reason": {f: dict(removed[f].most_common()) for f in FILTERS},
        "examples": dict(examples),
        "kept_by_split": dict(Counter(r.split for r in kept)),
        "kept_by_teacher": dict(Counter(r.meta["verify"]["teacher"] for r in kept)),
        "grounding_check": grounding_mode,
        "config": cfg.model_dump(),
    }
    atomic_write_bytes(out / REPORT_FILE, dump(report).encode())
    return report
