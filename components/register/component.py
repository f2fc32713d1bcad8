"""KFP component: register in MLflow as `challenger`, then gate-promote to `champion`.

Side-effecting (the registry changes), so the pipeline never caches it.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from globe.pipeline.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def register(base: dict, register: dict, model: Input[Model], evaluation: Input[Artifact],
             summary: Output[Markdown]) -> NamedTuple("Registered", [("version", str), ("promoted", bool), ("champion_storage_uri", str)]):
    """`globe register` + `globe promote`; returns the champion's storage location for deployment."""
    from collections import namedtuple

    from globe.pipeline import steps

    result = steps.register({"base": base, "register": register}, model.path, evaluation.path)
    decision = result["decision"]
    steps.publish({"version": result["registered"].get("version"), "promoted": decision.get("promoted"),
                   "reason": decision.get("reason"), "champion_storage_uri": result["champion_storage_uri"]},
                  None, summary, "Registry")
    out = namedtuple("Registered", ["version", "promoted", "champion_storage_uri"])
    return out(str(result["registered"].get("version")), bool(decision.get("promoted")), str(result["champion_storage_uri"]))
