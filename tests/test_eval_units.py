"""Evaluation harness parts without a model: loaders, breakdowns and intervals, plots, report, run log."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from globe.evaluate import breakdown, metrics
from globe.evaluate.benchmarks import BenchmarkError, Sample, load_benchmark
from globe.evaluate.plots import accuracy_curve, great_circle_paths, plot_accuracy_curve, plot_world_map
from globe.evaluate.metrics import by_resolution
from globe.evaluate.report import render_report, select_gallery
from globe.evaluate.runner import RunError, RunSpec


def _jpg(path: Path, color=(120, 80, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), color).save(path)
    return path


# ----------------------------------------------------------------------------- loaders


def test_im2gps3k_sample_loads_real_rows_with_derived_labels(shared_data):
    base = shared_data / "im2gps3k_sample"
    samples = load_benchmark("im2gps3k", csv_path=base / "im2gps3k_sample40.csv", images=base / "images")
    assert len(samples) == 40
    with open(base / "im2gps3k_sample40.csv", newline="") as fh:
        first = next(csv.DictReader(fh))
    s = samples[0]
    assert s.id == first["IMG_ID"] and (s.lat, s.lon) == (float(first["LAT"]), float(first["LON"]))
    assert Path(s.image).is_file() and s.label_source == "reverse-geocoded"
    # -33.86, 151.21 is Sydney: the derived labels come from offline reverse geocoding
    assert (s.country_code, s.country, s.city) == ("AU", "Australia", "Sydney")
    assert len(load_benchmark("IM2GPS3K", csv_path=base / "im2gps3k_sample40.csv", images=base / "images", limit=5)) == 5


def test_yfcc4k_reads_lat_lon_among_numbered_columns(shared_data, tmp_path):
    csv_path = shared_data / "benchmarks" / "yfcc4k_places365.csv"
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))[:3]
    for row in rows[:2]:  # only two of the photos are "downloaded": the third row is skipped
        _jpg(tmp_path / "img" / row["IMG_ID"])
    samples = load_benchmark("yfcc4k", csv_path=csv_path, images=tmp_path / "img")
    assert [s.id for s in samples] == [r["IMG_ID"] for r in rows[:2]]
    assert [(s.lat, s.lon) for s in samples] == [(float(r["LAT"]), float(r["LON"])) for r in rows[:2]]
    assert samples[0].country_code == "CA"  # 43.65, -79.37 is Toronto


def test_osv5m_csv_with_sharded_images(tmp_path):
    header = "id,latitude,longitude,thumb_original_url,country,sequence,captured_at,lon_bin,lat_bin,cell,region,sub-region,city\n"
    (tmp_path / "test.csv").write_text(
        header + "3859149887465501,-43.804769384023,-176.61409250805,,NZ,x,1,0,8,\"(0, 8)\",Chatham Islands,,Waitangi\n"
        "111,48.8566,2.3522,,FR,x,1,0,0,\"(0,0)\",IDF,,Paris\n"
    )
    _jpg(tmp_path / "images" / "00" / "3859149887465501.jpg")
    _jpg(tmp_path / "images" / "07" / "111.jpg")
    samples = load_benchmark("osv5m", csv_path=tmp_path / "test.csv", images=tmp_path / "images")
    assert [(s.id, s.country_code, s.country, s.city) for s in samples] == [
        ("3859149887465501", "NZ", "New Zealand", "Waitangi"), ("111", "FR", "France", "Paris")]
    assert samples[0].lon == pytest.approx(-176.61409250805)


def test_mp16_jsonl_key_variants_and_splits(tmp_path):
    _jpg(tmp_path / "imgs" / "a.jpg")
    _jpg(tmp_path / "imgs" / "b.jpg")
    lines = [
        {"image_path": "imgs/a.jpg", "latitude": 35.68, "longitude": 139.69, "country": "Japan", "city": "Tokyo",
         "reasoning": "<think>x</think>", "split": "test"},
        {"img": "b.jpg", "LAT": 40.4, "lng": -3.7, "id": "b1"},
        {"image": "imgs/a.jpg", "lat": 1, "lon": 2, "split": "train"},
    ]
    path = tmp_path / "mp16_test.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    samples = load_benchmark("mp16-reason", path=path)
    assert [(s.id, s.country_code, s.lat, s.lon) for s in samples] == [("a", "JP", 35.68, 139.69), ("b1", "ES", 40.4, -3.7)]
    assert samples[0].label_source == "benchmark" and samples[1].label_source == "reverse-geocoded"
    assert samples[0].reasoning == "<think>x</think>"


@pytest.mark.parametrize(
    "content, message",
    [
        ("IMG_ID,LAT,LON\na.jpg,91.5,0\n", r"data\.csv:2: field 'LAT' must lie in \[-90, 90\]"),
        ("IMG_ID,LAT,LON\na.jpg,north,0\n", r"data\.csv:2: field 'LAT' must be a plain decimal number, got 'north'"),
        ("IMG_ID,LATITUDE_X,LON\na.jpg,1,0\n", r"no column named any of \['lat', 'latitude', 'gps_lat'\]"),
        ("IMG_ID,LAT,LON\nmissing.jpg,1,0\n", r"none of the 1 rows has an image"),
        ("", r"empty CSV"),
    ],
)
def test_bad_benchmark_csv_names_file_row_and_field(tmp_path, content, message):
    _jpg(tmp_path / "img" / "a.jpg")
    (tmp_path / "data.csv").write_text(content)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmark("im2gps3k", csv_path=tmp_path / "data.csv", images=tmp_path / "img")


def test_bad_jsonl_and_unknown_benchmark(tmp_path):
    (tmp_path / "x.jsonl").write_text('{"image": "a.jpg", "lat": 1, "lon": 2}\n{oops\n')
    _jpg(tmp_path / "a.jpg")
    with pytest.raises(BenchmarkError, match=r"x\.jsonl:2: not valid JSON"):
        load_benchmark("mp16", path=tmp_path / "x.jsonl")
    with pytest.raises(BenchmarkError, match="unknown benchmark 'im2gps'"):
        load_benchmark("im2gps")
    with pytest.raises(BenchmarkError, match="needs --csv and --images"):
        load_benchmark("yfcc4k", csv_path=tmp_path / "x.csv")


# ----------------------------------------------------------------------------- breakdowns and intervals


def _row(i, d, country=True, city=False, code="FR"):
    return {"id": f"r{i}", "distance_km": d, "country_match_alias": country, "country_match_string": country,
            "city_match_alias": city, "city_match_string": city, "country_code": code, "format_ok": True,
            "coords_source": "stated"}


def test_point_metrics_and_breakdown_by_hand():
    rows = [_row(0, 0.5, city=True), _row(1, 10.0), _row(2, 300.0, country=False, code="JP"),
            _row(3, None, country=False, code="JP"), _row(4, 3000.0, country=None, city=None, code="BR")]
    m = metrics.summarize(breakdown.scored_view(rows))
    assert (m["acc_1km"], m["acc_25km"], m["acc_200km"], m["acc_750km"], m["acc_2500km"]) == (0.2, 0.4, 0.4, 0.6, 0.6)
    assert m["median_km"] == 300.0 and m["n_unparsed"] == 1  # the unlocated row counts as infinitely far
    assert m["country_acc"] == 0.5  # 2 of the 4 rows that carry a country label
    by = breakdown.breakdowns(rows, n_boot=0)
    assert list(by["continent"]) == ["Asia", "Europe", "South America"]  # largest first, ties by name
    assert by["continent"]["Europe"]["n"] == 2 and by["continent"]["Europe"]["acc_25km"] == 1.0
    assert by["continent"]["Asia"]["acc_750km"] == 0.5
    assert by["continent"]["Asia"]["median_km"] is None  # one of its two rows has no location
    assert by["country"]["JP"]["n_unparsed"] == 1


def test_bootstrap_matches_the_metric_modules_draws_and_brackets_the_point():
    rng = np.random.default_rng(3)
    rows = [_row(i, float(d), country=bool(rng.random() < 0.6)) for i, d in enumerate(rng.lognormal(5, 2, 150))]
    scored = breakdown.scored_view(rows)
    ours = breakdown.bootstrap_intervals(rows, n_boot=400, seed=7)
    for name in ("acc_25km", "acc_750km", "country_acc"):
        assert ours[name] == pytest.approx(list(metrics.bootstrap_ci(scored, name, n=400, seed=7)))
    point = metrics.summarize(scored)
    for name in breakdown.CI_KEYS:
        lo, hi = ours[name]
        if point[name] is not None:
            assert lo <= point[name] <= hi, name
    assert 0 < ours["acc_750km"][1] - ours["acc_750km"][0] < 0.25


def test_paired_delta_of_a_run_with_itself_is_exactly_zero_and_a_better_run_is_significant():
    rng = np.random.default_rng(0)
    d = rng.lognormal(6, 2, 200)
    a = [_row(i, float(x)) for i, x in enumerate(d)]
    same = breakdown.deltas(a, a, paired=True, n_boot=300)
    assert all(v["delta"] in (0.0, None) and v["ci"] in ([0.0, 0.0], [None, None]) for v in same.values())
    b = [_row(i, float(x) / 20) for i, x in enumerate(d)]  # every error 20x smaller
    better = breakdown.deltas(a, b, paired=True, n_boot=300)
    assert better["acc_25km"]["delta"] > 0 and better["acc_25km"]["ci"][0] > 0
    assert better["median_km"]["delta"] < 0 and better["median_km"]["ci"][1] < 0
    unpaired = breakdown.deltas(a, b, paired=False, n_boot=300)
    width = lambda r, k: r[k]["ci"][1] - r[k]["ci"][0]  # noqa: E731
    assert width(unpaired, "acc_25km") > width(better, "acc_25km")  # pairing removes shared image difficulty


def test_paired_interval_of_each_metric_is_its_own_when_median_and_mean_move_apart():
    # B halves most errors (the median falls) but misses a few rows by half the globe (the mean
    # rises). Under the old key-prefixing bug the median's interval was the mean's: positive.
    rng = np.random.default_rng(1)
    d = rng.uniform(100, 1000, 300)
    a = [_row(i, float(x)) for i, x in enumerate(d)]
    b = [_row(i, 20_000.0 if i % 10 == 0 else float(x) / 2) for i, x in enumerate(d)]
    out = breakdown.deltas(a, b, paired=True, n_boot=400)
    med, mean = out["median_km"], out["mean_km"]
    assert med["delta"] < 0 < mean["delta"]
    assert med["ci"][0] <= med["delta"] <= med["ci"][1] and med["ci"][1] < 0
    assert mean["ci"][0] <= mean["delta"] <= mean["ci"][1] and mean["ci"][0] > 0
    for name, entry in out.items():  # every interval holds its own point estimate
        if entry["delta"] is not None and entry["ci"][0] is not None:
            assert entry["ci"][0] - 1e-9 <= entry["delta"] <= entry["ci"][1] + 1e-9, name


def test_every_reported_metric_has_its_own_statistic_and_no_name_falls_back_to_a_mean():
    assert set(breakdown.STATISTICS) == set(breakdown.CI_KEYS)
    with pytest.raises(KeyError, match="no statistic defined for metric 'a:median_km'"):
        breakdown._stat("a:median_km", np.array([1.0, 2.0]))


def test_a_model_that_answers_less_does_not_get_a_better_median():
    located = [_row(i, 100.0 + i) for i in range(10)]
    silent = [_row(i, None if i >= 4 else 1.0) for i in range(10)]  # 4 close answers, 6 unparsed
    m = metrics.summarize(breakdown.scored_view(silent))
    assert m["median_km"] is None and m["n_unparsed"] == 6  # not 1.0: most rows have no answer
    out = breakdown.deltas(located, silent, paired=True, n_boot=200)
    assert out["median_km"]["b"] is None and out["median_km"]["delta"] is None
    fewer = [_row(i, None if i >= 7 else 1.0) for i in range(10)]  # 7 close answers, 3 unparsed
    assert metrics.summarize(breakdown.scored_view(fewer))["median_km"] == 1.0
    assert breakdown.deltas(located, fewer, paired=True, n_boot=200)["median_km"]["b"] == 1.0


# ----------------------------------------------------------------------------- plots


def test_accuracy_curve_by_hand():
    x, y = accuracy_curve([0.5, 10.0, 300.0, None, float("nan")])
    at = dict(zip(x.tolist(), y.tolist()))
    assert x[0] == 1.0 and x[-1] == 20_000.0
    assert (at[1.0], at[25.0], at[200.0], at[750.0], at[2500.0]) == (0.2, 0.4, 0.4, 0.6, 0.6)
    assert y[-1] == 0.6 and np.all(np.diff(y) >= 0)


def test_great_circle_arcs_end_on_the_points_and_break_at_the_antimeridian():
    xs, ys = great_circle_paths([10.0, 0.0], [170.0, 0.0], [-10.0, 0.0], [-170.0, 10.0], steps=11)
    first, second = xs[:12], xs[12:]
    assert first[0] == pytest.approx(170.0) and first[10] == pytest.approx(-170.0) and ys[10] == pytest.approx(-10.0)
    assert np.isnan(first).sum() == 2  # one break where it wraps, one separator
    assert np.isnan(second).sum() == 1 and np.nanmax(np.abs(np.diff(second[:-1]))) < 2  # short arc, no wrap


def test_plots_write_pngs(tmp_path):
    curve = plot_accuracy_curve({"run": [1.0, 50.0, None]}, tmp_path / "c.png", title="t")
    world = plot_world_map([48.85, -33.86], [2.35, 151.2], [40.7, None], [-74.0, None], tmp_path / "m.png")
    for path, size in ((curve, (825, 506)), (world, (1210, 649))):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size == size
            assert len(img.convert("RGB").getcolors(1 << 20)) > 50  # drawn, not blank
    assert not list(tmp_path.glob(".*"))  # no temp files left


# ----------------------------------------------------------------------------- report


def _report_rows(tmp_path, n=30):
    rows = []
    for i in range(n):
        img = _jpg(tmp_path / f"{i}.jpg", (i * 8, 100, 200 - i * 5))
        d = None if i == n - 1 else float(2 ** i)
        rows.append({**_row(i, d), "image": str(img), "lat": 1.0, "lon": 2.0, "country": "France", "city": "Paris",
                     "output": "x", "error": None, "pred_lat": None if d is None else 3.0, "pred_lon": 4.0,
                     "answer": {"think": f"<script>alert({i})</script> cue {i}", "country": "France", "city": "Lyon"},
                     "label_source": "reverse-geocoded", "coords_source": "stated"})
    return rows


def test_report_is_self_contained_escaped_and_spans_the_error_range(tmp_path):
    rows = _report_rows(tmp_path)
    picked = select_gallery(rows, k=6)
    assert picked[0]["id"] == "r0" and picked[-1]["id"] == "r29" and len(picked) == 6
    (tmp_path / "p.png").write_bytes(Path(plot_accuracy_curve({"a": [1.0]}, tmp_path / "p.png")).read_bytes())
    m = {"n": 30, "acc_25km": 0.1667, "ci95": {"acc_25km": [0.05, 0.3]}, "bootstrap": {"resamples": 10}}
    html = render_report(m, rows, {"curve": tmp_path / "p.png"}, title="T <b>", gallery_size=6)
    assert "<script>" not in html and "&lt;script&gt;alert(0)&lt;/script&gt;" in html
    assert "T &lt;b&gt;" in html and "16.7%" in html and "[5.0%, 30.0%]" in html
    srcs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(srcs) == 7 and all(s.startswith("data:image/") for s in srcs)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    assert "reverse geocoding" in html


def test_every_gallery_card_says_how_it_was_placed_and_a_fallback_is_not_called_stated(tmp_path):
    img = _jpg(tmp_path / "x.jpg", (10, 100, 200))
    long_id = "a" * 180 + ".jpg"
    rows = [
        {**_row(0, 0.86), "id": long_id, "image": str(img), "lat": 38.9, "lon": -77.0, "pred_lat": 38.9, "pred_lon": -77.03,
         "coords_source": "geocoded", "resolution": "capital-fallback", "resolved_place": "Washington, United States",
         "stated": {"pred_lat": 38.9, "pred_lon": -77.03, "coords_source": "geocoded", "resolution": "capital-fallback"},
         "answer": {"country": "United States", "city": "Calgary"}},
        {**_row(1, 5.0), "image": str(img), "lat": 1.0, "lon": 2.0, "pred_lat": 1.01, "pred_lon": 2.0,
         "coords_source": "stated", "resolution": "coordinates",
         "stated": {"pred_lat": 1.01, "pred_lon": 2.0, "coords_source": "stated", "resolution": "coordinates"},
         "answer": {}},
        {**_row(2, 9.0), "image": str(img), "lat": -25.6, "lon": -54.4, "pred_lat": -25.57, "pred_lon": -54.58,
         "coords_source": "geocoded", "resolution": "feature", "resolved_place": "Iguazu Falls, Parana, Brazil",
         "stated": {}, "answer": {"city": "Iguazu Falls"}},
    ]
    split = by_resolution(rows)
    m = {"n": 3, "acc_1km": 1 / 3, "by_resolution": split}
    html = render_report(m, rows, {}, title="t", gallery_size=3)
    cards = html.split('<div class="card">')[1:]
    assert 'class="how fallback">capital-fallback<' in cards[0] and "none stated (names placed as the headline)" in cards[0]
    assert 'class="how">stated<' in cards[1] and 'class="how">feature<' in cards[2]
    assert "(geocoded, capital-fallback)" not in html  # the old card put this under a "stated" heading
    assert 'id="by-resolution"' in html and "capital-fallback</td><td class=\"num\">1</td><td class=\"num\">1 (100.0%)" in html
    assert "overflow-wrap:anywhere" in html  # a long file name wraps inside its card
    assert split["capital-fallback"]["hits_1km"] == 1 and split["city" if "city" in split else "feature"]["n"] == 1


def test_consensus_rows_count_their_unplaced_samples_from_the_harness_and_from_a_served_predictor():
    from globe.engines.base import Result
    from globe.evaluate.scoring import Answer as Scored, vote_samples
    from globe.serve.client import Prediction

    say = "<think>x</think>\n<answer>country: France\ncity: Paris</answer>"
    own = vote_samples([Result(text=say), Result(text="no idea"), Result(text="<think>x</think>"), Result(error="t")])
    assert (own.consensus["agreement"], own.consensus["n_unplaced"]) == (0.25, 3)
    served = Scored.from_prediction(Prediction(document={"raw": say, "country": "France", "city": "Paris",
                                                          "samples": 4, "agreement": 0.25, "n_unplaced": 3}))
    assert served.consensus["n_unplaced"] == 3


# ----------------------------------------------------------------------------- run log and resume


def test_resume_into_a_directory_of_another_model_is_refused(tmp_path):
    spec = RunSpec(benchmark="geoscenes", model="m1", engine="local", prompt="p", system=None, max_new_tokens=8)
    spec.save(tmp_path / "run.json")
    spec.check_resume(tmp_path / "run.json")  # same run: fine
    other = RunSpec(benchmark="geoscenes", model="m2", engine="local", prompt="p", system=None, max_new_tokens=8)
    with pytest.raises(RunError, match="model: 'm1' -> 'm2'"):
        other.check_resume(tmp_path / "run.json")


def test_sample_is_plain_data():
    s = Sample(id="a", image="/x.jpg", lat=1.0, lon=2.0)
    assert s.to_dict()["label_source"] == "benchmark" and math.isfinite(s.lat)


def test_a_model_retrained_in_place_is_not_resumed(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"v1")
    spec = RunSpec(benchmark="b", model=str(model), engine="local", prompt="p", system=None, max_new_tokens=8)
    spec.save(tmp_path / "run.json")
    (model / "model.safetensors").write_bytes(b"v2 retrained")
    again = RunSpec(benchmark="b", model=str(model), engine="local", prompt="p", system=None, max_new_tokens=8)
    with pytest.raises(RunError, match="model_fingerprint"):
        again.check_resume(tmp_path / "run.json")


def test_the_importer_and_the_benchmark_loader_judge_a_coordinate_alike(tmp_path):
    from globe.data.columns import CoordinateError, coordinate
    from globe.data.ingest import read_csv_rows

    cells = ["48.85", " -0.5 ", "", "north", "91", "nan"]
    verdicts = []
    for raw in cells:
        try:
            verdicts.append(coordinate(raw, "LAT", 90.0))
        except CoordinateError as exc:
            verdicts.append(exc.category)
    assert verdicts == [48.85, -0.5, "missing coordinates", "invalid coordinates", "invalid coordinates",
                        "invalid coordinates"]
    (tmp_path / "img").mkdir()
    lines = ["IMG_ID,LAT,LON"] + [f"r{i}.jpg,{raw},2.0" for i, raw in enumerate(cells)]
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\n")
    imported = [r.error.category if r.error else "ok" for r in read_csv_rows(tmp_path / "b.csv", tmp_path / "img")]
    assert imported[2:] == verdicts[2:]  # the first two only miss their image
    for i, raw in enumerate(cells[2:], start=2):
        (tmp_path / "img" / f"r{i}.jpg").write_bytes(b"x")
        one = tmp_path / f"one{i}.csv"
        one.write_text(f"IMG_ID,LAT,LON\nr{i}.jpg,{raw},2.0\n")
        with pytest.raises(BenchmarkError, match="field 'LAT' must"):
            load_benchmark("im2gps3k", csv_path=one, images=tmp_path / "img")


def test_open_image_fits_an_exif_rotated_jpeg_upright_and_leaves_small_ones_alone(tmp_path, monkeypatch):
    """The harness's loader (`runner._load_batch`) opens through `globe.images.open_ref(fit=...)`."""
    from PIL import Image, JpegImagePlugin

    from globe.images import open_ref

    def open_image(ref, fit=None):
        return open_ref(ref, fit=fit)

    stored = Image.new("RGB", (400, 200), "navy")
    stored.paste((250, 200, 0), (0, 0, 200, 200))  # left half yellow in storage: top half once upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait (rotated 90 degrees clockwise)
    stored.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    seen = []
    upright = open_image(str(tmp_path / "turned.jpg"))
    fitted = open_image(str(tmp_path / "turned.jpg"), fit=lambda w, h: seen.append((w, h)) or (w // 4, h // 4))
    assert upright.size == (200, 400) and seen == [(200, 400)] and fitted.size == (50, 100)
    expect = np.asarray(upright.resize((50, 100)), dtype=float)
    assert np.abs(np.asarray(fitted, dtype=float) - expect).mean() < 4
    assert fitted.getpixel((25, 10))[2] < 100 < fitted.getpixel((25, 90))[2]  # yellow on top, navy below
    assert open_image(str(tmp_path / "turned.jpg"), fit=lambda w, h: (2 * w, 2 * h)).size == (200, 400)  # no upscaling here
    assert open_image(str(tmp_path / "turned.jpg"), fit=lambda w, h: None).size == (200, 400)
    # a large JPEG is decoded at reduced scale (1/4: at least twice the target), not in full and then shrunk
    big = Image.new("RGB", (1600, 800), "navy")
    big.paste((250, 200, 0), (0, 0, 800, 800))
    big.save(tmp_path / "big.jpg", exif=exif, quality=95)
    decoded, draft = [], JpegImagePlugin.JpegImageFile.draft

    def record(img, mode, size):
        out = draft(img, mode, size)
        decoded.append(img.size)
        return out

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", record)
    fitted = open_image(str(tmp_path / "big.jpg"), fit=lambda w, h: (w // 8, h // 8))
    assert fitted.size == (64, 128) and decoded == [(400, 200)]  # capped to 512 x 1024 upright, then fitted
    assert fitted.getpixel((32, 10))[2] < 100 < fitted.getpixel((32, 118))[2]
