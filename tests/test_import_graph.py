"""No import circles between the project's modules (scripts/import_cycles.py), lazy imports included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_cycles.py"


def run(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--repo", str(repo)], capture_output=True, text=True, timeout=120)


def test_the_tree_has_no_import_circles():
    proc = run(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_circle_through_a_lazy_import_is_found(tmp_path):
    pkg = tmp_path / "globe"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("def main():\n    from globe.train import grpo\n")
    (pkg / "train" / "grpo.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from globe import other\n"
        "if __name__ == '__main__':\n    from globe.cli import main\n")
    (pkg / "other.py").write_text("import globe.train.grpo\n")
    proc = run(tmp_path)
    assert proc.returncode == 1
    assert "import circle: globe.cli -> globe.train.grpo; globe.train.grpo -> globe.cli" in proc.stdout
    assert "globe.other" not in proc.stdout.split("\n")[0]  # TYPE_CHECKING imports do not run
