"""Free-text geocoding vs a system's own coordinates, on the same rows (the paper's protocol).

G3 (gemini-2.0-flash, retrieval-augmented) answered IM2GPS3K with a free-text place ("Chelsea
Market, New York City, USA", "CN Tower, Toronto, Canada", "Unknown") *and* its own coordinates.
The paper geocoded answered place names with a maps API; we geocode them offline. This scores the
same rows twice, through `globe eval score`'s own code (`globe.evaluate.metrics`), against the
ground truth:

- "geocoded string": `output` = the location string, the headline protocol (names geocoded);
- "system coordinates": `pred_lat`/`pred_lon` = the system's own coordinates.

Target: the geocoded string reaches >= 0.9x the system's accuracy at 25, 200, 750 and 2500 km. The
rows are also split in two by a hash of their id, and both halves are printed: the geocoder was
developed looking at misses of the first half only, so the second half says how it generalises.
Timing: the whole file scored cold (a fresh process, caches empty) and warm.

Rows won and lost at each threshold against the previous geocoder: by default the same code with
the natural-feature step switched off (`globe.geo.geocoding.USE_FEATURES`); with `--against FILE`,
the per-row distances an older checkout wrote with `--save FILE`. Target: 0 rows lost.

    python benchmarks/geocode_freetext.py [--csv ../shared/data/reasoning_outputs/g3_gemini_im2gps3k_dev900.csv]
                                          [--save rows.json] [--against rows.json]

Exits 1 when a target is missed, 2 when the file is absent.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_CSV = ROOT.parent / "shared" / "data" / "reasoning_outputs" / "g3_gemini_im2gps3k_dev900.csv"
TARGET_RATIO = 0.9
TARGET_KM = (25, 200, 750, 2500)
MAX_SECONDS_PER_3000 = 10.0


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def half(image_id: str) -> int:
    return int(hashlib.sha1(image_id.encode()).hexdigest(), 16) % 2


def previous_geocoder(text_rows: list[dict]) -> dict[str, float | None]:
    """Per-row error with the natural-feature step off (then caches cleared, the step back on)."""
    from globe.evaluate.metrics import score_rows
    from globe.geo import geocoding
    from globe.scorer import clear_caches

    geocoding.USE_FEATURES = False
    clear_caches()
    try:
        return {r["id"]: s["distance_km"] for r, s in zip(text_rows, score_rows(text_rows))}
    finally:
        geocoding.USE_FEATURES = True
        clear_caches()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--save", type=Path, help="write each row's geocoded error (km) to this JSON file")
    ap.add_argument("--against", type=Path, help="a --save file of the previous geocoder to count rows won/lost")
    args = ap.parse_args()
    if not args.csv.is_file():
        print(f"{args.csv}: not found (see ../shared/data/SOURCE.md)")
        return 2
    raw = load(args.csv)

    from globe.evaluate.metrics import THRESHOLDS_KM, score_rows, summarize

    truth = [{"id": r["IMG_ID"], "lat": r["LAT"], "lon": r["LON"]} for r in raw]
    raw_by_id = {r["IMG_ID"]: r["location"] for r in raw}
    text_rows = [{**t, "output": r["location"]} for t, r in zip(truth, raw)]
    coord_rows = [{**t, "pred_lat": r["LAT_pred"], "pred_lon": r["LON_pred"]} for t, r in zip(truth, raw)]
    t0 = time.perf_counter()
    text_scored = score_rows(text_rows)  # cold: the gazetteer loads, every cache is empty
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_rows(text_rows)
    warm = time.perf_counter() - t0
    coord_scored = score_rows(coord_rows)
    now = {r["id"]: s["distance_km"] for r, s in zip(text_rows, text_scored)}
    if args.save:
        args.save.write_text(json.dumps({k: (None if v is None or v == float("inf") else v) for k, v in now.items()}))
    if args.against:
        before, previous = json.loads(args.against.read_text()), f"{args.against.name}"
    else:
        before, previous = previous_geocoder(text_rows), "the same code without the feature step"

    print(f"settings: {args.csv.name}, {len(raw)} rows; headline protocol (answered names geocoded offline, "
          f"GeoNames); target >= {TARGET_RATIO}x the system's coordinates at {', '.join(map(str, TARGET_KM))} km")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    halves = {"all rows": range(len(raw)),
              "half A (looked at)": [i for i, r in enumerate(raw) if half(r["IMG_ID"]) == 0],
              "half B (held out)": [i for i, r in enumerate(raw) if half(r["IMG_ID"]) == 1]}
    missed = []
    for name, idx in halves.items():
        geo = summarize([text_scored[i] for i in idx])
        sys_ = summarize([coord_scored[i] for i in idx])
        print(f"\n{name} ({len(idx)} rows)")
        print(f"{'':28}" + "".join(f"{f'{t} km':>9}" for t in THRESHOLDS_KM) + f"{'median':>11}")
        for label, m in (("geocoded string (ours)", geo), ("system coordinates", sys_)):
            med = "-" if m["median_km"] is None else f"{m['median_km']:,.0f} km"
            print(f"{label:28}" + "".join(f"{100 * m[f'acc_{t}km']:>8.1f}%" for t in THRESHOLDS_KM) + f"{med:>11}")
        ratios = {t: geo[f"acc_{t}km"] / sys_[f"acc_{t}km"] if sys_[f"acc_{t}km"] else float("nan") for t in THRESHOLDS_KM}
        print(f"{'ratio':28}" + "".join(f"{ratios[t]:>8.3f}x" for t in THRESHOLDS_KM))
        if name == "all rows":
            missed = [t for t in TARGET_KM if not ratios[t] >= TARGET_RATIO]
            how = Counter(r["resolution"] for r in text_scored)
            print("resolved as: " + ", ".join(f"{k} {v}" for k, v in how.most_common()))
    print(f"\nrows won / lost against the previous geocoder ({previous}):")
    lost_any = 0
    for t in THRESHOLDS_KM:
        hit_now = {k for k, v in now.items() if v is not None and v <= t}
        hit_then = {k for k, v in before.items() if v is not None and v <= t}
        won, lost = hit_now - hit_then, hit_then - hit_now
        lost_any += len(lost)
        print(f"  {t:>5} km: won {len(won):>3}, lost {len(lost):>3}"
              + (f"  (lost: {', '.join(sorted(raw_by_id[k] for k in lost)[:5])})" if lost else ""))
    per_3000 = cold * 3000 / len(raw)
    print(f"\nscoring time: {cold:.2f} s cold ({len(raw) / cold:,.0f} rows/s, {per_3000:.1f} s per 3,000 rows; "
          f"target <= {MAX_SECONDS_PER_3000:g} s), {warm:.3f} s warm (cached)")
    ok = not missed and per_3000 <= MAX_SECONDS_PER_3000 and not lost_any
    if lost_any:
        print(f"MISSED: {lost_any} rows lost against the previous geocoder")
    for t in missed:
        print(f"MISSED: ratio at {t} km below {TARGET_RATIO}x")
    if per_3000 > MAX_SECONDS_PER_3000:
        print("MISSED: scoring speed")
    print("all targets met" if ok else "targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
