"""Build the pipeline (globe/kfp/pipeline.py) with params as its defaults and compile it to KFP IR YAML.

The DAG and its components (globe/kfp/components/<name>/, laid out as kubeflow/pipelines-components
does) are part of the library; the front-ends (`globe pipeline ...`, pipelines/globe_pipeline.py) call
this module, and nothing in globe/ imports them.
"""

from __future__ import annotations

import ast
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from globe.io import atomic_write_text
from globe.kfp.steps import resolved_groups


class PipelineError(RuntimeError):
    """The pipeline cannot be built, compiled, run or submitted; the message says why."""


def build(params: Any, multi_node_grpo: bool = True, runtime: str | None = None):
    """The pipeline function (globe.kfp.pipeline) with the resolved params groups as its defaults."""
    from globe.kfp.pipeline import build_pipeline  # kfp and the components load only when a pipeline is built

    return build_pipeline(resolved_groups(params), multi_node_grpo=multi_node_grpo, runtime=runtime)


_DEFAULT_LINE = re.compile(r"^(#\s+\w+: (?:dict|list) \[Default: )(.*)(\])$")


def stable_header(text: str) -> str:
    """KFP's header comment prints dict defaults in protobuf map order, which changes from run to
    run; rewrite them as key-sorted JSON so the checked-in YAML only changes when the pipeline does."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            break
        match = _DEFAULT_LINE.match(line)
        if match:
            value = ast.literal_eval(match.group(2))
            lines[i] = match.group(1) + json.dumps(value, sort_keys=True) + match.group(3)
    return "\n".join(lines)


def with_registry(text: str, registry: str | None) -> str:
    """The compiled pipeline with its images pulled from `registry` (e.g. registry.example.com/ml)
    instead of the default one (globe.kfp.settings.REGISTRY): a compile option, not a source edit."""
    from globe.kfp.settings import REGISTRY

    if not registry or registry.rstrip("/") == REGISTRY:
        return text
    if any(c.isspace() for c in registry) or "'" in registry or '"' in registry:
        raise PipelineError(f"--registry {registry!r}: expected an image registry such as registry.example.com/ml")
    return text.replace(f"{REGISTRY}/", f"{registry.rstrip('/')}/")


def compile_pipeline(params: Any, out: str | Path, multi_node_grpo: bool = True, registry: str | None = None) -> Path:
    """Compile to `out` atomically (a half-written pipeline file never replaces a good one); images
    from `registry` when given."""
    from kfp import compiler

    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="globe-compile-") as scratch:  # KFP's compiler writes a file
        compiled = Path(scratch) / out.name
        compiler.Compiler().compile(build(params, multi_node_grpo), package_path=str(compiled))
        atomic_write_text(out, with_registry(stable_header(compiled.read_text(encoding="utf-8")), registry))
    return out
