"""KFP components: register in MLflow as `challenger` with the run's lineage, gate-promote to
`champion`; and attach a benchmark evaluation to the registered version.

Side-effecting (the registry changes), so the pipeline never caches them.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def register(base: dict, register: dict, gated: str, model: Input[Model], evaluation: Input[Artifact],
             lineage: Input[Artifact], summary: Output[Markdown]) -> NamedTuple("Registered", [("version", str), ("promoted", bool), ("champion_storage_uri", str)]):
    """Register with the metrics and report of the evaluation's `gated` run (SPLIT/MODEL, as dvc's
    register stage) and the lineage tags, then promote; returns the champion's location."""
    import json
    from collections import namedtuple
    from pathlib import Path

    from globe.kfp import steps

    found = json.loads(Path(lineage.path).read_text(encoding="utf-8"))
    result = steps.register({"base": base, "register": register}, model.path, evaluation.path, lineage=found,
                            gated=gated)
    version, decision = result["registered"]["version"], result["decision"]
    steps.publish({"version": version, "gated_on": gated, "promoted": decision["promoted"], "reason": decision["reason"],
                   "champion_storage_uri": result["champion_storage_uri"],
                   "train_data.md5": found.get("train_data.md5"), "pipeline_run_id": found.get("pipeline_run_id")},
                  None, summary, "Registry")
    out = namedtuple("Registered", ["version", "promoted", "champion_storage_uri"])
    return out(str(version), bool(decision["promoted"]), str(result["champion_storage_uri"]))


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def attach_benchmark(base: dict, benchmark: dict, register: dict, version: str, evaluation: Input[Artifact],
                     dvc_file: Input[Artifact], summary: Output[Markdown]):
    """The benchmark's metrics and its dataset's DVC hash onto the registered version."""
    from globe.kfp import steps

    result = steps.attach_benchmark({"base": base, "benchmark": benchmark, "register": register}, version,
                                    evaluation.path, dvc_file.path)
    steps.publish(result, None, summary, "Benchmark on the registered version")
