"""globe.evaluate.metrics and `globe eval score`: hand-computed distances, both name rules, bad files."""

from __future__ import annotations

import csv
import json
import math

import pytest
from typer.testing import CliRunner

from globe.cli import app
from globe.evaluate.metrics import (
    PredictionsError,
    bootstrap_ci,
    compute_metrics,
    read_predictions,
    score_rows,
    summarize,
)

KM_PER_DEGREE = 6371.0 * math.pi / 180  # along the equator


def equator_row(lon_deg, **extra):
    return {"lat": 0.0, "lon": 0.0, "pred_lat": 0.0, "pred_lon": lon_deg, **extra}


def test_distance_thresholds_hand_computed():
    # errors along the equator: 0.56, 22.2, 166.8, 667.2, 2223.9, 3335.8 km, then one unparsed row
    lons = [0.005, 0.2, 1.5, 6.0, 20.0, 30.0]
    rows = [equator_row(x) for x in lons] + [{"lat": 0.0, "lon": 0.0, "output": "I cannot tell."}]
    m = compute_metrics(rows)
    assert (m["n"], m["n_unparsed"]) == (7, 1)
    assert [m[f"acc_{t}km"] for t in (1, 25, 200, 750, 2500)] == pytest.approx([1 / 7, 2 / 7, 3 / 7, 4 / 7, 5 / 7])
    km = [x * KM_PER_DEGREE for x in lons]
    assert m["median_km"] == pytest.approx(km[3], rel=1e-9)  # of 7 rows, the unparsed one infinitely far
    assert m["mean_km"] == pytest.approx(sum(km) / 6, rel=1e-9)
    assert m["coords_source"] == {"given": 6, "none": 1}
    assert m["country_acc"] is None and m["n_country_labels"] == 0


def test_threshold_is_inclusive():
    exactly_25 = 25.0 / KM_PER_DEGREE
    rows = score_rows([equator_row(exactly_25)])
    assert rows[0]["distance_km"] == pytest.approx(25.0, abs=1e-9)
    assert summarize(rows)["acc_25km"] == float(rows[0]["distance_km"] <= 25.0)


def test_raw_outputs_are_parsed_and_geocoded():
    tokyo = (35.6895, 139.6917)
    rows = score_rows([
        {"id": "stated", "lat": 0.0, "lon": 0.0, "output": "<answer>country: X\ncity: Y\nlat: 0.0\nlon: 0.2</answer>"},
        {"id": "city", "lat": tokyo[0], "lon": tokyo[1], "country": "Japan", "city": "Tokyo",
         "output": "<think>kanji</think><answer>country: Japan\ncity: Tokyo</answer>"},
        {"id": "country", "lat": tokyo[0], "lon": tokyo[1], "country": "Japan", "city": "Osaka",
         "output": "<think>kanji</think><answer>country: Japan\ncity: Atlantis</answer>"},
        {"id": "free", "lat": tokyo[0], "lon": tokyo[1], "output": "It was most likely taken in Tokyo, Japan, Asia."},
        {"id": "none", "lat": tokyo[0], "lon": tokyo[1], "country": "Japan", "output": ""},
    ])
    by = {r["id"]: r for r in rows}
    # names that place nothing: the stated coordinates place the row under both protocols
    assert by["stated"]["coords_source"] == "stated" == by["stated"]["stated"]["coords_source"]
    assert by["stated"]["distance_km"] == pytest.approx(0.2 * KM_PER_DEGREE)
    assert by["city"]["coords_source"] == "geocoded" and by["city"]["distance_km"] < 25
    assert by["city"]["resolution"] == "city" and by["city"]["resolved_place"].startswith("Tokyo")
    assert (by["country"]["coords_source"], by["country"]["resolution"]) == ("geocoded", "capital-fallback")
    assert by["country"]["distance_km"] < 25
    assert all(r["protocol"] == "names" for r in rows)
    assert by["free"]["pred_city"] == "Tokyo" and by["free"]["distance_km"] < 25
    assert by["none"]["coords_source"] == "none" and by["none"]["distance_km"] == math.inf
    assert by["none"]["country_match_alias"] is False  # a label with no prediction is a miss, not skipped
    assert by["city"]["format_ok"] is True and by["free"]["format_ok"] is False


PARIS = (48.8566, 2.3522)


def test_the_headline_geocodes_the_named_place_and_stated_coordinates_are_their_own_protocol():
    # a GLOBE answer naming Paris, with coordinates in the Indian Ocean (what a tiny model writes)
    text = "<think>Haussmann facades.</think><answer>country: France\ncity: Paris\nlat: -40.0\nlon: 80.0</answer>"
    m = compute_metrics([{"id": "p", "lat": PARIS[0], "lon": PARIS[1], "output": text}])
    assert m["protocol"] == "names" and m["acc_25km"] == 1.0 and m["median_km"] < 25
    assert m["stated"]["acc_25km"] == 0.0 and m["stated"]["acc_2500km"] == 0.0
    assert m["coords_source"] == {"geocoded": 1} and m["stated"]["coords_source"] == {"stated": 1}
    row = score_rows([{"id": "p", "lat": PARIS[0], "lon": PARIS[1], "output": text}])[0]
    assert (row["protocol"], row["coords_source"], row["resolution"]) == ("names", "geocoded", "city")
    assert row["resolved_place"] == "Paris, Ile-de-France, France"
    assert (row["stated"]["coords_source"], row["stated"]["resolution"]) == ("stated", "coordinates")
    assert (row["stated"]["pred_lat"], row["stated"]["pred_lon"]) == (-40.0, 80.0)


def test_stated_protocol_falls_back_to_names_and_given_coordinates_count_as_stated():
    rows = [
        {"id": "names only", "lat": PARIS[0], "lon": PARIS[1], "output": "country: France\ncity: Paris"},
        {"id": "file coords", "lat": 0.0, "lon": 0.0, "pred_lat": 0.0, "pred_lon": 0.1, "output": "Paris, France"},
        {"id": "coords only", "lat": 0.0, "lon": 0.0, "pred_lat": 0.0, "pred_lon": 0.1},
    ]
    by = {r["id"]: r for r in score_rows(rows)}
    assert by["names only"]["stated"]["coords_source"] == "geocoded" and by["names only"]["stated"]["distance_km"] < 25
    assert by["file coords"]["coords_source"] == "geocoded" and by["file coords"]["distance_km"] > 5000
    assert by["file coords"]["stated"]["coords_source"] == "given" and by["file coords"]["stated"]["distance_km"] < 25
    assert by["coords only"]["coords_source"] == "given" and by["coords only"]["resolution"] == "coordinates"


def test_string_and_alias_rules_both_reported():
    rows = [
        equator_row(0, country="United States", city="New York", pred_country="USA", pred_city="New York City"),
        equator_row(0, country="Ukraine", city="Kyiv", pred_country="Ukraine", pred_city="Kiev"),
        equator_row(0, country="France", city="Paris", pred_country="France", pred_city="Paris"),
        equator_row(0, country="France", pred_country="Spain"),
    ]
    m = compute_metrics(rows)
    assert m["country_acc_string"] == pytest.approx(2 / 4) and m["country_acc_alias"] == pytest.approx(3 / 4)
    assert m["city_acc_string"] == pytest.approx(1 / 3) and m["city_acc_alias"] == pytest.approx(3 / 3)
    assert (m["country_acc"], m["city_acc"]) == (m["country_acc_alias"], m["city_acc_alias"])
    assert (m["n_country_labels"], m["n_city_labels"]) == (4, 3)


def test_bad_ground_truth_names_the_row():
    with pytest.raises(ValueError, match="row 1: ground truth lat/lon"):
        score_rows([equator_row(0), {"lat": "north", "lon": 0.0, "output": "x"}])


def test_bootstrap_ci_vectorised_equals_generic_and_brackets_the_estimate():
    rows = score_rows([equator_row(x) for x in (0.005, 0.2, 0.3, 1.5, 6.0, 20.0, 30.0, 40.0)] * 5)
    fast = bootstrap_ci(rows, "acc_25km", n=300, seed=3)
    slow = bootstrap_ci(rows, lambda sample: summarize(sample)["acc_25km"], n=300, seed=3)
    assert fast == pytest.approx(slow)
    assert fast[0] < summarize(rows)["acc_25km"] < fast[1]
    assert bootstrap_ci(rows, "median_km", n=50, seed=0)[0] > 0
    assert bootstrap_ci(rows, "country_acc", n=50) is None  # no labels: undefined, not 0
    assert bootstrap_ci([], "acc_1km") is None


# --- predictions files and the CLI


def write_csv(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("header", "rows", "message"),
    [
        (["id", "lat", "output"], [["a", "1", "x"]], r"header: missing column\(s\) 'lon'"),
        (["id", "lat", "lon", "pred_lat"], [["a", "1", "2", "3"]], "'pred_lat' and 'pred_lon' come together"),
        (["id", "lat", "lon"], [["a", "1", "2"]], "needs a prediction"),
        (["id", "lat", "lon", "output"], [["a", "1", "2", "x"], ["b", "91", "2", "x"]],
         r"row 2 \(line 3\): column 'lat' must be a number in \[-90, 90\], got '91'"),
        (["id", "lat", "lon", "pred_lat", "pred_lon"], [["a", "1", "2", "east", "3"]], "row 1 .*'pred_lat' must be a number"),
        (["id", "lat", "lon", "output"], [["a", "1", "2", "x"], ["a", "1", "2", "y"]], "duplicate id 'a'"),
    ],
)
def test_read_predictions_errors_name_file_row_column(tmp_path, header, rows, message):
    path = write_csv(tmp_path / "p.csv", header, rows)
    with pytest.raises(PredictionsError, match=message) as info:
        read_predictions(path)
    assert str(path) in str(info.value)


def test_read_predictions_jsonl_errors(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": 1, "lat": 1, "lon": 2, "output": "x"}\n\n{"id": 2, "lat": 1\n', encoding="utf-8")
    with pytest.raises(PredictionsError, match=r"p.jsonl: line 3: not valid JSON"):
        read_predictions(path)
    path.write_text('{"id": 1, "lat": 1, "output": "x"}\n', encoding="utf-8")
    with pytest.raises(PredictionsError, match=r"line 1: missing column\(s\) 'lon'"):
        read_predictions(path)


def test_cli_score_csv_and_jsonl_agree(tmp_path):
    rows = [
        {"id": "a", "lat": 48.8566, "lon": 2.3522, "country": "France", "city": "Paris",
         "output": "<think>Eiffel Tower</think>\n<answer>country: France\ncity: Paris</answer>"},
        {"id": "b", "lat": 40.7128, "lon": -74.006, "country": "United States", "city": "New York",
         "output": "**Country:** USA\n**City:** New York City"},
        {"id": "c", "lat": -33.87, "lon": 151.21, "country": "Australia", "city": "Sydney",
         "output": "Latitude: -33.86 / Longitude: 151.20"},
        {"id": "d", "lat": 35.68, "lon": 139.69, "country": "Japan", "city": "Tokyo", "output": "I cannot tell."},
    ]
    csv_path = write_csv(tmp_path / "pred.csv", list(rows[0]), [list(r.values()) for r in rows])
    jsonl_path = tmp_path / "pred.jsonl"
    jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    runner = CliRunner()
    results = []
    for source in (csv_path, jsonl_path):
        out = tmp_path / f"{source.suffix[1:]}" / "metrics.json"
        res = runner.invoke(app, ["eval", "score", "--predictions", str(source), "--out", str(out),
                                  "--rows-out", str(out.with_name("rows.jsonl"))])
        assert res.exit_code == 0, res.output
        said = " ".join(res.output.split())  # rich wraps the summary line at its width; the words stay
        assert "acc_25km" in said and "4 rows, 1 unparsed" in said
        results.append(json.loads(out.read_text()))
        assert len(out.with_name("rows.jsonl").read_text().splitlines()) == 4
    assert results[0] == results[1] == json.loads(json.dumps(compute_metrics(rows)))
    m = results[0]
    assert (m["n"], m["n_unparsed"], m["acc_25km"]) == (4, 1, 0.75)
    # only a and b name a country; "USA" passes the alias rule alone
    assert m["country_acc_string"] == 0.25 and m["country_acc_alias"] == 0.5


def test_cli_score_bad_file_keeps_previous_metrics(tmp_path):
    out = tmp_path / "metrics.json"
    out.write_text('{"n": 3}\n')
    bad = write_csv(tmp_path / "bad.csv", ["id", "lat", "lon", "output"], [["a", "1", "", "x"]])
    res = CliRunner().invoke(app, ["eval", "score", "--predictions", str(bad), "--out", str(out)])
    assert res.exit_code == 2
    assert "bad.csv: row 1 (line 2): column 'lon' is empty" in res.output
    assert out.read_text() == '{"n": 3}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "metrics.json"]


def test_real_im2gps3k_coordinates_round_trip_through_names(shared_data, tmp_path):
    """Real ground truth: answer each photo with the name of its nearest gazetteer city, score by name."""
    from globe.geo import reverse_batch

    source = shared_data / "im2gps3k_sample" / "im2gps3k_sample40.csv"
    with source.open(encoding="utf-8", newline="") as handle:
        truth = list(csv.DictReader(handle))
    places = reverse_batch([float(r["LAT"]) for r in truth], [float(r["LON"]) for r in truth])
    path = write_csv(tmp_path / "im2gps3k.csv", ["id", "LAT", "LON", "country", "output"], [
        [r["IMG_ID"], r["LAT"], r["LON"], p.country, f"<think>.</think><answer>country: {p.country}\ncity: {p.city}</answer>"]
        for r, p in zip(truth, places)])
    m = summarize(score_rows(read_predictions(path)))
    print(f"\nIM2GPS3K sample, nearest-city names geocoded back: {m}")
    assert m["n"] == 40 and m["n_unparsed"] == 0 and m["country_acc_alias"] == 1.0
    # measured: 38/40 within 25 km, 39/40 within 2500 km; the miss is "Fairview, United States", which the
    # gazetteer resolves to Costa Mesa, CA (alternate name "Fairview") instead of a 5,500-people Fairview, NY
    assert m["acc_25km"] >= 0.925 and m["acc_2500km"] >= 0.95


def test_docstring_examples():
    import doctest

    import globe.evaluate.metrics as metrics

    result = doctest.testmod(metrics)
    assert result.attempted > 0 and result.failed == 0
