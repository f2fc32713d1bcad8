"""The one resumable JSON Lines log (`globe.jsonl`) in both its flavours, and the JSON-safe scrubber."""

from __future__ import annotations

import json
import math

import pytest

from globe.data.records import JsonlAppender, Record, RecordsError
from globe.evaluate.runner import PredictionLog, RunError
from globe.jsonl import JsonlError, ResumableJsonl, json_safe


def test_a_batch_is_whole_lines_the_torn_tail_is_cut_and_the_last_line_of_an_id_wins(tmp_path):
    path = tmp_path / "log.jsonl"
    log = ResumableJsonl(path)
    log.extend([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    log.append({"id": "a", "v": 3})
    with path.open("ab") as fh:
        fh.write(b'{"id": "c", "v"')  # SIGKILL in the middle of a write
    again = ResumableJsonl(path)
    assert again.dropped_tail_bytes == 15 and path.read_bytes().endswith(b"}\n")
    assert list(again.done) == ["a", "b"] and again.rows["a"]["v"] == 3
    assert [json.loads(x)["v"] for x in path.read_text().splitlines()] == [1, 2, 3]
    assert ResumableJsonl(path).dropped_tail_bytes == 0


def test_damage_in_the_middle_is_refused_with_the_file_and_byte_offset_and_left_untouched(tmp_path):
    path = tmp_path / "log.jsonl"
    good = '{"id": "a"}\n'
    path.write_text(good + "not json\n" + '{"id": "b"}\n')
    before = path.read_bytes()
    with pytest.raises(JsonlError, match=rf"{path}: line at byte {len(good)} is not a row and more data follows"):
        ResumableJsonl(path)
    assert path.read_bytes() == before  # nothing truncated
    path.write_text(good + '["no id"]\n' + good)
    with pytest.raises(JsonlError, match="byte 12"):
        ResumableJsonl(path)


def test_unique_ids_are_refused_twice_on_disk_and_on_append_and_keep_false_holds_only_ids(tmp_path):
    path = tmp_path / "log.jsonl"
    log = ResumableJsonl(path, unique=True, keep=False)
    log.extend([{"id": "a"}, {"id": "b"}])
    assert log.rows == {"a": None, "b": None}
    with pytest.raises(JsonlError, match="'a' already written"):
        log.append({"id": "a"})
    with pytest.raises(JsonlError, match="'c' already written"):
        log.extend([{"id": "c"}, {"id": "c"}])
    assert path.read_text().count("\n") == 2  # a refused batch writes nothing
    path.write_text('{"id": "a"}\n{"id": "a"}\n')
    with pytest.raises(JsonlError, match="duplicate id 'a' at byte 12"):
        ResumableJsonl(path, unique=True)


def test_prediction_log_retries_failed_rows_and_names_its_file_as_a_harness_error(tmp_path):
    path = tmp_path / "predictions.jsonl"
    log = PredictionLog(path)
    log.extend([{"id": "a", "error": None}, {"id": "b", "error": "timeout"}])
    with path.open("ab") as fh:
        fh.write(b'{"id": "c", "err')  # SIGKILL in the middle of a write
    again = PredictionLog(path)
    assert again.dropped_tail_bytes == 16 and again.answered() == {"a"}  # b failed: it is retried
    again.extend([{"id": "b", "error": None}])
    assert PredictionLog(path).answered() == {"a", "b"}
    path.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(RunError, match="not a prediction row and more data follows"):
        PredictionLog(path)


def test_records_flavour_validates_each_line_as_a_record(tmp_path):
    rec = Record(id="r0", image="images/r0.png", image_sha256="0" * 64, lat=1.0, lon=2.0)
    path = tmp_path / "records.jsonl"
    with JsonlAppender(tmp_path) as app:  # a dataset directory or the file itself
        app.append(rec)
    path.write_text(path.read_text() + '{"id": "r1"}\n' + path.read_text())  # a line that is no Record
    with pytest.raises(RecordsError, match="byte .* is not a valid record and more data follows"):
        JsonlAppender(path)


def test_json_safe_makes_strict_json_of_nan_and_infinity_at_any_depth():
    value = {"a": math.nan, 1: [math.inf, (-math.inf, 2.5)], "b": {"c": float("nan"), "d": "x"}, "e": None}
    safe = json_safe(value)
    assert safe == {"a": None, "1": [None, [None, 2.5]], "b": {"c": None, "d": "x"}, "e": None}
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe
    with pytest.raises(ValueError):
        json.dumps(value, allow_nan=False)
