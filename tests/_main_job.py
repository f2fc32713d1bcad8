"""The README's main job, `dvc repro` of the tiny world in a scratch copy of the project, started in
the background when the session starts (tests/conftest.py) and checked by tests/test_dvc_repro.py,
which runs last.

Why in the background: the job is about 20 minutes of one torch thread (the tiny-cpu preset), more
than half of the suite, while the rest of the suite keeps about one core busy. Started first and
collected last, the two overlap on 2 cores instead of running one after the other; run alone, the
test simply waits for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_dvc_repro.py::test_dvc_repro_learns_then_nothing_then_an_experiment"
TIMEOUT_S = 3000


def run(args: list[str], cwd: Path, env: dict) -> str:
    """A command that must succeed; its stdout and stderr together."""
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


@dataclass
class MainJob:
    """A running `dvc repro` in `proj` (a git + dvc project), its output going to `log`."""

    proj: Path
    env: dict
    dvc: list[str]
    proc: subprocess.Popen
    log: Path
    started: float

    def wait(self) -> tuple[str, float]:
        """(its output, seconds from start to finish); the job must have succeeded."""
        left = max(1.0, TIMEOUT_S - (time.monotonic() - self.started))
        try:
            code = self.proc.wait(timeout=left)
        finally:
            elapsed = time.monotonic() - self.started
        out = self.log.read_text(encoding="utf-8", errors="replace")
        assert code == 0, f"dvc repro exited {code}\n{out[-6000:]}"
        return out, elapsed

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(tmp: Path) -> MainJob:
    """Copy the project's pipeline, params and code into `tmp/proj`, commit it, start `dvc repro`."""
    proj = tmp / "proj"
    proj.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "globe", proj / "globe", ignore=shutil.ignore_patterns("__pycache__"))  # code deps
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # the `globe` CLI
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], proj, env)
    run([*dvc, "init", "-q"], proj, env)
    run(["git", "add", "-A"], proj, env)
    run(["git", "commit", "-qm", "tiny world"], proj, env)
    log = tmp / "dvc-repro.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*dvc, "repro"], cwd=proj, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return MainJob(proj, env, dvc, proc, log, time.monotonic())
