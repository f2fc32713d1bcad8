"""Consensus geolocation (globe/consensus.py): what N samples cost, and what they buy, in one run.

1. Cost, side by side for N = 1, 4 and 8 on the tiny model (or --model), through the serving
   predictor (`GeoPredictor`: prompt, generate, parse, geocode, vote): the latency of one image,
   and the throughput of batches of --batch images. Target: one image's N samples take clearly
   less than N greedy calls (at most half), because they are one batched generate.
2. Temperature and calibration, with --dev (a second labelled held-out dir, never the test
   set): the consensus at each --sweep temperature next to greedy, to choose
   `sample_temperature` on data that is not reported; then `globe eval calibrate` on the dev
   consensus at --temperature, the calibration the test run uses.
3. Accuracy, with --data (the held-out test set, >= 400 GeoScenes): a greedy run and a consensus
   run of --samples through the evaluation harness (`globe eval run`, with the dev calibration
   when --dev is given), then their paired comparison. Targets: consensus acc_25km above greedy
   with the 95% paired-bootstrap interval above 0; ECE <= 0.10; the 50% most confident answers
   >= 10 points more accurate than all. Diagnostics say why when they miss: unanimous votes
   (identical samples), clusters per image, oracle@N (a cluster within 25 km), one sample's
   accuracy (temperature too high), greedy misses the vote repeats (systematic errors), discordant
   pairs.

Exits 1 when a measured target is missed.

    .venv/bin/python benchmarks/consensus.py --model M [--data HELDOUT] [--dev DEV] [--samples 8]
        [--temperature T (default eval.sample_temperature)] [--sweep 0.3,0.5,0.7,1.0] [--out DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_KM = 25.0


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_cost(model: Path, images, batch: int, temperature: float, new_tokens: int, repeat: int) -> bool:
    from globe.config import ServeGroup
    from globe.engines import LocalEngine
    from globe.serve.model import build_predictor

    cfg = ServeGroup(max_new_tokens=new_tokens, sample_temperature=temperature, max_batch_size=batch)
    engine = LocalEngine(model, device="auto", batch_size=batch, seed=cfg.seed)
    predictor = build_predictor(cfg, engine)
    one, many = images[:1], images[:batch]
    predictor.predict(one, ["warm"], [4])  # warm-up
    ids = [str(i) for i in range(len(many))]
    best: dict[int, list[float]] = {n: [float("inf"), float("inf")] for n in (1, 4, 8)}
    for _ in range(repeat):  # rounds interleave the N, so a noisy neighbour hits them alike; best of the rounds
        for n in best:
            best[n][0] = min(best[n][0], best_of(1, lambda: predictor.predict(one, ["x"], [n])))
            best[n][1] = min(best[n][1], best_of(1, lambda: predictor.predict(many, ids, [n] * len(many))))
    rows = {n: (lat, len(many) / thr) for n, (lat, thr) in best.items()}
    load = os.getloadavg()[0]
    print(f"\n1. cost through the serving predictor ({model.name}, {engine.device}, {new_tokens} new tokens, "
          f"T={temperature}, best of {repeat} interleaved rounds, load average {load:.1f})")
    print(f"   {'N':>2}  {'latency 1 image':>16}  {'N greedy calls':>15}  {'ratio':>6}  {'images/s @ batch ' + str(batch):>19}  {'greedy images/s / N':>20}")
    for n, (lat, ips) in rows.items():
        ratio = lat / (n * rows[1][0])
        print(f"   {n:>2}  {1000 * lat:13.0f} ms  {1000 * n * rows[1][0]:12.0f} ms  {ratio:6.2f}  {ips:19.2f}  {rows[1][1] / n:20.2f}")
    ok = rows[8][0] <= 0.5 * 8 * rows[1][0]
    print(f"   target: 8 samples of one image <= half of 8 greedy calls: {'met' if ok else 'MISSED'} "
          f"({1000 * rows[8][0]:.0f} ms vs {1000 * 8 * rows[1][0]:.0f} ms)")
    return ok


def run_eval(cfg_overrides: list[str], model: Path, data: Path, out: Path, limit: int | None) -> tuple[dict, list[dict]]:
    from globe.config import load_params
    from globe.evaluate.benchmarks import load_benchmark
    from globe.evaluate.runner import PREDICTIONS, run_benchmark

    cfg = load_params(None, overrides=["eval.bootstrap=0", "eval.gallery_size=8", *cfg_overrides])
    samples = load_benchmark("geoscenes", path=data, limit=limit)
    resumed = (out / PREDICTIONS).exists()  # an earlier run's answers are kept, so its wall time means nothing
    start = time.perf_counter()
    metrics = run_benchmark(cfg, str(model), samples, out, benchmark="geoscenes", engine="local", progress=False)
    metrics["wall_s"] = None if resumed else time.perf_counter() - start
    rows = [json.loads(x) for x in (out / PREDICTIONS).read_text().splitlines()]
    return metrics, rows


def diagnose(greedy: list[dict], voted: list[dict]) -> dict:
    """Why a consensus does (not) beat greedy: how often the samples agree, how good one sample is,
    whether greedy's misses are systematic (the vote lands on the same wrong city), discordant pairs."""
    from globe.geo import haversine_km

    by_id = {r["id"]: r for r in greedy}

    def hit(r):
        return r.get("distance_km") is not None and r["distance_km"] <= TARGET_KM

    def near(c, r):
        return haversine_km(c["lat"], c["lon"], r["lat"], r["lon"]) <= TARGET_KM

    n = len(voted)
    misses = [r for r in voted if not hit(by_id[r["id"]])]
    return {
        "unanimous": sum(r.get("agreement", r["confidence"]) == 1.0 for r in voted) / n,  # raw agreement, not calibrated
        "clusters": sum(len(r["candidates"]) for r in voted) / n,
        "oracle": sum(any(near(c, r) for c in r.get("candidates") or []) for r in voted) / n,
        # one sample's acc_25km: the share of samples in clusters whose medoid is within 25 km of the truth
        "sample_acc": sum(sum(c["share"] for c in r.get("candidates") or [] if near(c, r)) for r in voted) / n,
        # greedy's misses the vote repeats (same wrong city): systematic errors no vote can undo
        "misses_repeated": sum(not hit(r) and (r.get("pred_country"), r.get("pred_city")) ==
                               (by_id[r["id"]].get("pred_country"), by_id[r["id"]].get("pred_city")) for r in misses)
                           / max(len(misses), 1),
        "greedy_wrong_voted_right": sum(hit(r) and not hit(by_id[r["id"]]) for r in voted),
        "greedy_right_voted_wrong": sum(not hit(r) and hit(by_id[r["id"]]) for r in voted),
    }


def bench_accuracy(model: Path, data: Path, out: Path, samples: int, temperature: float, limit: int | None,
                   n_boot: int, calibration: Path | None) -> bool:
    from globe.evaluate.compare import compare_runs

    g, g_rows = run_eval([], model, data, out / "greedy", limit)
    extra = [f"eval.calibration={calibration}"] if calibration else []
    name = f"consensus{samples}-T{temperature:g}" + ("-calibrated" if calibration else "")  # a run.json per calibration
    c, c_rows = run_eval([f"eval.samples={samples}", f"eval.sample_temperature={temperature}", *extra], model, data,
                         out / name, limit)
    cmp = compare_runs(out / "greedy", out / name, n_boot=n_boot, seed=0)
    acc = cmp["metrics"]["acc_25km"]
    conf = cmp["confidence"]["b"]
    why = diagnose(g_rows, c_rows)
    lift = conf["acc_25km_top50"] - conf["acc_25km_all"]
    how = f"confidence calibrated on the dev split ({calibration})" if calibration else "confidence = raw agreement (no --dev)"
    print(f"\n3. accuracy on {data} ({len(c_rows)} images), greedy vs consensus of {samples} at T={temperature}; {how}")
    print(f"   {'':28}{'greedy':>10}{'consensus':>11}")
    for key in ("acc_25km", "acc_750km", "country_acc", "city_acc", "median_km"):
        a, b = cmp["metrics"][key]["a"], cmp["metrics"][key]["b"]
        fmt = (lambda v: f"{v:9.1f} ") if key == "median_km" else (lambda v: f"{100 * v:8.1f}% ")
        print(f"   {key:28}{fmt(a)}{fmt(b):>11}")
    wall = lambda m: "resumed" if m["wall_s"] is None else f"{m['wall_s']:.0f} s"  # noqa: E731
    print(f"   {'wall time':28}{wall(g):>10}{wall(c):>11}")
    lo, hi = acc["ci"]
    targets = {
        "consensus beats greedy on acc_25km (95% paired CI above 0)": lo is not None and lo > 0,
        "ECE <= 0.10": conf["ece"] <= 0.10,
        "most confident 50% >= 10 pt above all answers": lift >= 0.10,
    }
    print(f"   acc_25km delta {100 * acc['delta']:+.1f} pt, 95% paired CI [{100 * lo:+.1f}, {100 * hi:+.1f}] ({n_boot} resamples)")
    raw = f" (raw agreement: {c['ece_agreement']:.3f})" if "ece_agreement" in c else ""
    print(f"   ECE {conf['ece']:.3f}{raw}, mean confidence {conf['mean_confidence']:.3f}; acc_25km of the most confident 50% "
          f"{100 * conf['acc_25km_top50']:.1f}% vs {100 * conf['acc_25km_all']:.1f}% for all ({100 * lift:+.1f} pt)")
    print(f"   why: unanimous votes {100 * why['unanimous']:.0f}%, {why['clusters']:.2f} clusters per image, "
          f"oracle@{samples} {100 * why['oracle']:.1f}% (a cluster within 25 km), one sample's acc_25km "
          f"{100 * why['sample_acc']:.1f}%, greedy misses the vote repeats {100 * why['misses_repeated']:.0f}%; "
          f"discordant pairs: greedy wrong & consensus right {why['greedy_wrong_voted_right']}, greedy right & "
          f"consensus wrong {why['greedy_right_voted_wrong']}")
    for name, ok in targets.items():
        print(f"   target: {name}: {'met' if ok else 'MISSED'}")
    return all(targets.values())


def bench_sweep(model: Path, dev: Path, out: Path, samples: int, temps: list[float], limit: int | None,
                temperature: float) -> Path:
    """The dev sweep; returns the calibration fitted on the dev consensus at `temperature`."""
    from globe.evaluate.calibrate import fit_run
    from globe.evaluate.compare import compare_runs

    g, g_rows = run_eval([], model, dev, out / "dev-greedy", limit)
    print(f"\n2. temperature on the dev split {dev} ({len(g_rows)} images), consensus of {samples}; greedy acc_25km "
          f"{100 * g['acc_25km']:.1f}%")
    print(f"   {'T':>4}  {'acc_25km':>8}  {'delta':>7}  {'95% CI':>16}  {'ECE raw':>7}  {'top50':>6}  {'unanimous':>9}  "
          f"{'clusters':>8}  {'oracle':>6}  {'1 sample':>8}  {'misses kept':>11}")
    for t in sorted({*temps, temperature}):
        name = f"dev-consensus{samples}-T{t:g}"
        c, c_rows = run_eval([f"eval.samples={samples}", f"eval.sample_temperature={t}"], model, dev, out / name, limit)
        cmp = compare_runs(out / "dev-greedy", out / name, n_boot=1000, seed=0)
        acc, conf, why = cmp["metrics"]["acc_25km"], cmp["confidence"]["b"], diagnose(g_rows, c_rows)
        lo, hi = acc["ci"]
        print(f"   {t:4.2f}  {100 * acc['b']:7.1f}%  {100 * acc['delta']:+6.1f}  [{100 * lo:+5.1f}, {100 * hi:+5.1f}] pt  "
              f"{conf['ece']:7.3f}  {100 * (conf['acc_25km_top50'] - conf['acc_25km_all']):+5.1f}  "
              f"{100 * why['unanimous']:8.0f}%  {why['clusters']:8.2f}  {100 * why['oracle']:5.1f}%  "
              f"{100 * why['sample_acc']:7.1f}%  {100 * why['misses_repeated']:10.0f}%"
              + ("   <- sample_temperature" if t == temperature else ""))
    cal = fit_run(out / f"dev-consensus{samples}-T{temperature:g}")
    path = out / f"dev-calibration-{samples}-T{temperature:g}.json"
    cal.save(path)
    print(f"   calibration fitted on the dev consensus at T={temperature:g} ({cal.n} images): agreement -> confidence "
          + ", ".join(f"{a:.3g}->{b:.2f}" for a, b in cal.points) + f"; wrote {path}")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model directory (default: build the untrained tiny model; cost only)")
    ap.add_argument("--data", type=Path, help="held-out GeoScenes dataset dir for the accuracy targets (>= 400 images)")
    ap.add_argument("--dev", type=Path, help="a second held-out dir for the temperature sweep (not the test set)")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--temperature", type=float, help="consensus temperature (default: eval.sample_temperature)")
    ap.add_argument("--sweep", default="0.3,0.5,0.7,1.0", help="temperatures for --dev")
    ap.add_argument("--limit", type=int, help="first N images of --data / --dev only")
    ap.add_argument("--out", type=Path, help="keep the run directories here (default: a temporary dir)")
    ap.add_argument("--batch", type=int, default=8, help="images per batch in the cost part")
    ap.add_argument("--new-tokens", type=int, default=160)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the tiny model gains nothing from more)")
    ap.add_argument("--skip-cost", action="store_true")
    args = ap.parse_args()

    import torch
    from PIL import Image

    from globe.config import SAMPLE_TEMPERATURE

    torch.set_num_threads(args.threads)
    temperature = args.temperature if args.temperature is not None else SAMPLE_TEMPERATURE
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from globe.tiny.model import build_tiny

            model = build_tiny(Path(tmp) / "tiny", seed=0)
        out = args.out or Path(tmp) / "runs"
        if not args.skip_cost:
            source = args.data or args.dev
            if source is not None:
                from globe.evaluate.benchmarks import load_benchmark
                from globe.evaluate.runner import open_image

                images = [open_image(s.image) for s in load_benchmark("geoscenes", path=source, limit=args.batch)]
            else:
                images = [Image.new("RGB", (112, 112), (i * 37 % 255, 90, 200)) for i in range(args.batch)]
            ok &= bench_cost(model, images, args.batch, temperature, args.new_tokens, args.repeat)
        calibration = None
        if args.dev is not None:
            calibration = bench_sweep(model, args.dev, out, args.samples, [float(t) for t in args.sweep.split(",")],
                                      args.limit, temperature)
        if args.data is not None:
            ok &= bench_accuracy(model, args.data, out, args.samples, temperature, args.limit, args.bootstrap, calibration)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
