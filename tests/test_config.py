"""params.yaml loading: presets, --set overrides, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from globe.config import ConfigError, Params, load_params, parse_override

ROOT = Path(__file__).resolve().parents[1]


def test_repo_params_validate_with_every_preset():
    raw = load_params(ROOT / "params.yaml")
    assert isinstance(raw, Params)
    for name in raw.presets:
        params = load_params(ROOT / "params.yaml", preset=name)
        assert params.base.preset == name


def test_paper_preset_holds_paper_grpo_settings():
    p = load_params(ROOT / "params.yaml", preset="qwen2.5-vl-7b-8gpu")
    assert p.grpo.num_generations == 16
    assert p.grpo.learning_rate == pytest.approx(1e-6)
    assert p.grpo.beta == pytest.approx(0.001)
    assert p.grpo.max_completion_length == 1024
    assert p.grpo.bf16 and p.grpo.use_vllm


def test_missing_file_gives_defaults(tmp_path):
    p = load_params(tmp_path / "absent.yaml")
    assert p.rewards.weights == {"accuracy": 1.0, "localizability": 0.5, "grounding": 0.2, "format": 1.0}


def test_override_values_are_yaml(tmp_path):
    p = load_params(
        tmp_path / "absent.yaml",
        overrides=["grpo.learning_rate=1e-5", "synth.n=12", "distill.teachers=[{name: t1, kind: openai, base_url: 'http://127.0.0.1:1/v1'}]"],
    )
    assert p.grpo.learning_rate == pytest.approx(1e-5)
    assert p.synth.n == 12
    assert p.distill.teachers[0].name == "t1"


def test_override_beats_preset(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("base: {preset: small}\npresets:\n  small: {synth: {n: 5}}\n")
    assert load_params(f).synth.n == 5
    assert load_params(f, overrides=["synth.n=7"]).synth.n == 7


def test_unknown_field_names_file_and_field(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("grpo:\n  learnin_rate: 0.1\n")
    with pytest.raises(ConfigError) as exc:
        load_params(f)
    assert str(f) in str(exc.value) and "grpo.learnin_rate" in str(exc.value)


def test_wrong_type_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="synth.n"):
        load_params(tmp_path / "absent.yaml", overrides=["synth.n=lots"])


def test_unknown_preset_lists_known_ones():
    with pytest.raises(ConfigError, match="tiny-cpu"):
        load_params(ROOT / "params.yaml", preset="nope")


@pytest.mark.parametrize("bad", ["noequals", "=3"])
def test_bad_override_syntax(bad):
    with pytest.raises(ConfigError):
        parse_override(bad)


def test_non_mapping_file(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_params(f)


def test_a_command_run_outside_the_project_says_the_defaults_apply(tmp_path, monkeypatch):
    """Run where there is no ./params.yaml, a command notes on stderr that the built-in defaults
    apply (a run from the wrong directory must not pass for the project's); stdout stays JSON."""
    import json

    from typer.testing import CliRunner

    from globe.cli import app

    project = Path(__file__).resolve().parents[1]
    plan = ["train", "sft", "--dry-run", "--model", "some/model"]
    monkeypatch.chdir(tmp_path)
    outside = CliRunner().invoke(app, plan)
    assert outside.exit_code == 0, outside.output
    assert "built-in defaults apply" in outside.stderr and str(tmp_path) in outside.stderr
    assert json.loads(outside.stdout)
    monkeypatch.chdir(project)
    inside = CliRunner().invoke(app, plan)
    assert inside.exit_code == 0 and "defaults apply" not in inside.stderr, inside.output
    chosen = CliRunner().invoke(app, [*plan, "--params", str(tmp_path / "empty.yaml")])  # an explicit path: no note
    assert chosen.exit_code == 0 and "defaults apply" not in chosen.stderr, chosen.output


# ---------------------------------------------------------------------------- YAML bombs (issue 26)

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 9)}]\n" for k in range(8)
)  # 9 levels of 9 aliases each: 9**9 = 387 million strings from ~400 bytes


def test_a_billion_laughs_params_file_is_refused_fast_by_the_cli(tmp_path):
    """Through the real `globe` executable: one line, exit 2, in well under a second of work
    (it used to run 43 s and die with MemoryError under a 2 GB cap)."""
    import os
    import subprocess
    import sys
    import time

    bomb = tmp_path / "params.yaml"
    bomb.write_text("grpo:\n  learning_rate: 1e-5\n" + "".join("  " + line + "\n" for line in LAUGHS.splitlines()))
    assert len(bomb.read_bytes()) < 600
    started = time.monotonic()
    out = subprocess.run([str(Path(sys.executable).with_name("globe")), "train", "sft", "--dry-run", "--model", "m", "--params", str(bomb)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert time.monotonic() - started < 30  # mostly interpreter start-up on a loaded box; the bomb itself never expands
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert "beyond 100000 nodes" in lines[0] and str(bomb) in lines[0] and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "text, fragment",
    [
        (LAUGHS, "beyond 100000 nodes"),
        ("a: &a [x]\n" + "".join(f"c{k}: *a\n" for k in range(1001)), "more than 1000 aliases"),
        ("a: &a [1, *a]\n", "refers to a node that contains it"),
        ("base: &b {seed: 1, <<: [*b]}\n", "refers to a node that contains it"),
        ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
        ("base: {seed: 2001-13-45}\n", "month must be in 1..12"),
    ],
)
def test_alias_expansion_is_bounded_before_anything_is_built(tmp_path, text, fragment):
    f = tmp_path / "params.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        load_params(f)


def test_shared_blocks_within_the_bound_still_load(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("base: &b {seed: 7}\npresets:\n  x: {base: *b}\n")
    assert load_params(f, preset="x").base.seed == 7


def test_validation_errors_quote_a_short_excerpt_of_the_value(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("synth:\n  n: " + "9" * 5 + "x" * 50_000 + "\n  bogus_" + "k" * 1000 + ": [" + ", ".join(["1"] * 20_000) + "]\n")
    with pytest.raises(ConfigError) as exc:
        load_params(f)
    message = str(exc.value)
    assert "synth.n" in message and "(50007 characters)" in message and "bogus_kkk" in message
    assert len(message) < 1500, message[:3000]
