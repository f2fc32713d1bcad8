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

# -- one precedence: defaults < preset < params.yaml < --preset < --set -------------------------


def _shipped_copy(tmp_path, **groups) -> Path:
    """A copy of the shipped params.yaml with `groups` ({group: {key: value}}) written into it, as
    a user (or `dvc exp run -S`) would; the default preset stays active."""
    import yaml

    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    for group, values in groups.items():
        tree.setdefault(group, {}).update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def test_a_value_written_in_params_yaml_is_the_value_that_runs(tmp_path):
    from globe.config import resolve_params

    path = _shipped_copy(tmp_path, grpo={"max_steps": 800, "learning_rate": 3.0e-4}, sft={"torch_threads": 2})
    resolved = resolve_params(path)
    p = resolved.params
    assert p.base.preset == "tiny-cpu"
    assert (p.grpo.max_steps, p.grpo.learning_rate, p.sft.torch_threads) == (800, pytest.approx(3.0e-4), 2)
    assert resolved.source("grpo.max_steps") == "params.yaml" and resolved.source("sft.torch_threads") == "params.yaml"
    assert (p.grpo.torch_threads, resolved.source("grpo.torch_threads")) == (1, "preset tiny-cpu")  # left unset: the preset's
    assert resolved.source("grpo.max_grad_norm") == "default"
    assert load_params(path, overrides=["grpo.max_steps=5"]).grpo.max_steps == 5  # --set wins over the file


def test_the_precedence_layer_by_layer(tmp_path):
    from globe.config import resolve_params

    f = tmp_path / "p.yaml"
    f.write_text("base: {preset: small}\nsynth: {n: 6}\n"
                 "presets:\n  small: {synth: {n: 5, seed: 3}}\n  big: {synth: {n: 50, image_size: 56}}\n")
    r = resolve_params(f)
    assert (r.params.synth.n, r.source("synth.n")) == (6, "p.yaml")  # the file beats its own preset
    assert (r.params.synth.seed, r.source("synth.seed")) == (3, "preset small")  # the preset fills the rest
    assert r.source("synth.test_share") == "default"
    r = resolve_params(f, preset="big")  # a preset chosen on the command line beats the file, and replaces `small`
    assert (r.params.synth.n, r.params.synth.seed, r.params.synth.image_size) == (50, 0, 56)
    assert r.source("synth.n") == "--preset big" and r.params.base.preset == "big"
    assert resolve_params(f, overrides=["base.preset=big"]).params.synth.n == 50  # same as --preset
    r = resolve_params(f, preset="big", overrides=["synth.n=7"])
    assert (r.params.synth.n, r.source("synth.n")) == (7, "--set")
    with pytest.raises(ConfigError, match="unknown preset 'smal'"):  # a typo in base.preset is not ignored
        load_params(f, overrides=["base.preset=smal"])


def test_a_7b_preset_leaves_no_tiny_world_value_in_force():
    """Chosen with --preset, each GPU preset states every training, evaluation, serving, distillation
    and promotion value the shipped params.yaml changes from the built-in defaults."""
    from globe.config import resolve_params

    defaults = resolve_params(None)
    for name in ("qwen2.5-vl-7b-8gpu", "qwen2.5-vl-7b-8gpu-dapo"):
        r = resolve_params(ROOT / "params.yaml", preset=name)
        groups = ("sft", "reward_model", "grpo", "eval", "serve", "distill", "register", "rewards")
        leaking = [key for key, value, source in r.table(groups)
                   if source == "params.yaml" and value != dict(((k, v) for k, v, _ in defaults.table(groups)))[key]]
        assert not leaking, f"{name}: params.yaml's tiny-world values would run in a 7B job: {leaking}"
        p = r.params
        assert p.eval.max_new_tokens == p.serve.max_new_tokens == p.grpo.max_completion_length == 1024
        assert all(t.kind == "openai" and t.base_url for t in p.distill.teachers)
        assert p.grpo.max_steps == -1 and p.grpo.torch_threads is None


@pytest.mark.parametrize(("stage", "key", "instead"), [
    ("grpo", "learning_rate", "grpo.learning_rate"),
    ("sft", "num_train_epochs", "sft.epochs"),
    ("reward_model", "seed", "base.seed"),
])
def test_extra_cannot_shadow_a_modelled_field(stage, key, instead):
    with pytest.raises(ConfigError, match=f"{stage}.extra.{key} shadows.*set {instead} instead"):
        load_params(None, overrides=[f"{stage}.extra.{key}=0.1"])
    assert load_params(None, overrides=["grpo.extra.epsilon_high=0.28"]).grpo.extra == {"epsilon_high": 0.28}


def test_each_stage_file_changes_exactly_when_its_settings_do(tmp_path):
    """`globe config resolve` (dvc.yaml's `config` stage): an edit reruns the stages whose resolved
    settings it changes (the group, the active preset), and none for an inactive preset."""
    from typer.testing import CliRunner

    from globe.cli import app

    def resolved(path: Path, name: str) -> dict[str, str]:
        out = tmp_path / name
        result = CliRunner().invoke(app, ["config", "resolve", "--out", str(out), "--params", str(path)])
        assert result.exit_code == 0, result.output
        return {p.stem: p.read_text() for p in out.glob("*.yaml")}

    base = resolved(ROOT / "params.yaml", "base")

    def changed(name: str, **groups) -> set[str]:
        after = resolved(_shipped_copy(tmp_path / name, **groups) if groups else ROOT / "params.yaml", name)
        return {stage for stage in base if base[stage] != after[stage]}

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    assert changed("a", grpo={"max_steps": 800}) == {"grpo"}
    assert changed("b", register={"min_improvement": 0.5}) == {"register"}
    import yaml

    tree = yaml.safe_load((ROOT / "params.yaml").read_text())
    tree["presets"]["tiny-cpu"]["sft"]["torch_threads"] = 2  # the active preset
    tree["presets"]["qwen2.5-vl-7b-8gpu"]["grpo"]["learning_rate"] = 2e-6  # an inactive one
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(tree))
    after = resolved(tmp_path / "d.yaml", "d")
    assert {stage for stage in base if base[stage] != after[stage]} == {"sft"}


def test_dvc_stages_depend_on_exactly_their_resolved_settings():
    import yaml

    from globe.config import STAGE_SETTINGS

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    config = stages.pop("config")
    assert config["params"] == [{"params.yaml": None}] and "globe/config.py" in config["deps"]
    assert [next(iter(o)) for o in config["outs"]] == [f"results/config/{s}.yaml" for s in stages]
    for name, stage in stages.items():
        assert name in STAGE_SETTINGS, name
        assert f"results/config/{name}.yaml" in stage["deps"], name
        assert "params" not in stage, f"{name}: depends on its resolved settings, not on raw params groups"


def test_config_show_names_every_source(tmp_path):
    import json

    from typer.testing import CliRunner

    from globe.cli import app

    result = CliRunner().invoke(app, ["config", "show", "--stage", "grpo", "--json", "--params", str(ROOT / "params.yaml"),
                                      "--set", "grpo.beta=0.01"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["grpo.beta"] == {"value": 0.01, "source": "--set"}
    assert shown["grpo.max_steps"] == {"value": load_params(ROOT / "params.yaml").grpo.max_steps, "source": "params.yaml"}
    assert shown["grpo.torch_threads"]["source"] == "preset tiny-cpu"
    assert shown["grpo.max_grad_norm"]["source"] == "default"
    assert {key.split(".")[0] for key in shown} == {"base", "grpo", "rewards"}
    text = CliRunner().invoke(app, ["config", "show", "--params", str(ROOT / "params.yaml")])
    assert text.exit_code == 0 and "synth.n" in text.stdout and "# params.yaml" in text.stdout
    bad = CliRunner().invoke(app, ["config", "show", "--stage", "nope"])
    assert bad.exit_code == 2 and "unknown stage" in bad.stderr

