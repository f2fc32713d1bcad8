"""A served model carries its settings: `globe register` saves the resolved `serve` group into the
checkpoint (globe_serve.yaml); the KServe pod, `globe serve` and `globe predict` serve with it,
only `--set serve.*` on top; a model without it is served with the params given (and says so)."""

from __future__ import annotations

import json
import logging
import shutil
import urllib.request

import pytest

from globe.config import ServeGroup
from globe.serve.settings import SETTINGS_FILE, explicit_serve, save_settings, settings_for


def test_registered_settings_win_over_params_and_lose_to_the_command_line(tmp_path):
    save_settings({"max_new_tokens": 33, "max_instances": 5, "model": "ignored"}, tmp_path)
    from_params = ServeGroup(max_new_tokens=120, max_instances=64, model="m")
    cfg, source = settings_for(tmp_path, from_params, {}, "params.yaml")
    assert (cfg.max_new_tokens, cfg.max_instances, cfg.model) == (33, 5, "m") and source.startswith("registered")
    cfg, source = settings_for(tmp_path, from_params, explicit_serve(["serve.max_instances=9", "eval.limit=3"]), "params.yaml")
    assert (cfg.max_new_tokens, cfg.max_instances) == (33, 9) and "--set max_instances" in source
    bare = tmp_path / "bare"
    bare.mkdir()
    assert settings_for(bare, from_params, {}, "params.yaml") == (from_params, "params.yaml")
    (tmp_path / SETTINGS_FILE).write_text("max_new_tokens: -1\n")
    with pytest.raises(ValueError, match="(?s)globe_serve.yaml.*max_new_tokens"):
        settings_for(tmp_path, from_params, {}, "params.yaml")


def test_the_predictor_serves_with_the_models_settings_and_reports_them(tiny_model_dir, tmp_path, caplog):
    from globe.serve.model import GlobeModel

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    save_settings({"max_new_tokens": 12, "max_samples": 3}, model_dir)
    model = GlobeModel(str(model_dir), ServeGroup(), explicit={"max_samples": 2}, settings_source="params.yaml")
    assert model.load()
    assert model.decoding()["max_new_tokens"] == 12 and model.limits.max_samples == 2
    reported = model.settings()
    assert reported["serve"]["max_new_tokens"] == 12 and reported["source"].startswith("registered with the model")

    caplog.set_level(logging.WARNING, logger="globe.serve")
    plain = GlobeModel(str(tiny_model_dir), ServeGroup(max_new_tokens=7), settings_source="the built-in defaults (no params file)")
    assert plain.load() and plain.decoding()["max_new_tokens"] == 7
    assert "the model carries none" in caplog.text and "built-in defaults" in caplog.text
    assert plain.settings()["source"] == "the built-in defaults (no params file)"


@pytest.mark.slow
def test_the_kserve_entrypoint_reports_the_registered_settings(tiny_model_dir, tmp_path):
    """`python -m globe.serve` (the pod's command, no params file): GET /v1/models/globe/settings."""
    from tests._servers import start_predictor, stop

    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    save_settings({"max_new_tokens": 21, "max_body_bytes": 4096}, model_dir)
    server = start_predictor(str(model_dir), tmp_path / "log.txt", {})
    try:
        with urllib.request.urlopen(f"{server.url}/v1/models/globe/settings", timeout=30) as resp:
            doc = json.loads(resp.read())
        assert doc["serve"]["max_new_tokens"] == 21 and doc["source"].startswith("registered")
        with urllib.request.urlopen(f"{server.url}/v1/models/globe/decoding", timeout=30) as resp:
            assert json.loads(resp.read())["max_new_tokens"] == 21
    finally:
        stop(server)
