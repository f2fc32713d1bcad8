"""No import circles and no import up the layers between the project's modules (scripts/import_graph.py),
lazy imports included (docs/architecture.md, "Layers")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_graph.py"


def run(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--repo", str(repo)], capture_output=True, text=True, timeout=120)


def test_the_tree_has_no_import_circles_and_no_layer_breaches():
    proc = run(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 import circles, 0 layer breaches" in proc.stdout


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
    circle = next(line for line in proc.stdout.splitlines() if line.startswith("import circle"))
    assert "globe.other" not in circle  # TYPE_CHECKING imports do not run


def test_imports_up_the_layers_and_into_front_ends_are_found(tmp_path):
    """Issue 23: model/ and engines/ below data/ and the tiny world; the library never imports a front-end."""
    files = {
        "globe/__init__.py": "",
        "globe/engines/__init__.py": "",
        "globe/engines/local.py": "def load():\n    from globe.tiny import world\n",  # lazy: still counts
        "globe/tiny/__init__.py": "",
        "globe/tiny/world.py": "from globe.data.records import Record\n",  # allowed: the records sit below
        "globe/data/__init__.py": "",
        "globe/data/records.py": "Record = dict\n",
        "globe/kfp/__init__.py": "",
        "globe/kfp/build.py": "def build():\n    from pipelines.globe_pipeline import build_pipeline\n    import components.sft\n",
        "globe/newpkg/__init__.py": "",
        "pipelines/__init__.py": "",
        "pipelines/globe_pipeline.py": "from globe.kfp.build import build\n",  # a front-end may import the library
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    proc = run(tmp_path)
    assert proc.returncode == 1
    breaches = sorted(line.removeprefix("layer breach: ") for line in proc.stdout.splitlines() if line.startswith("layer breach"))
    assert breaches == [
        "globe.engines.local (layer 3) imports globe.tiny.world (layer 5)",
        "globe.kfp.build (layer 9) imports pipelines.globe_pipeline (layer 10)",
        "globe.kfp.build imports the front-end components.sft",
        "globe.kfp.build imports the front-end pipelines.globe_pipeline.build_pipeline",
        "globe.newpkg: in no layer (add its package to LAYERS in scripts/import_graph.py)",
    ], proc.stdout
