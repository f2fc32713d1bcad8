"""Build the pipeline (pipelines/globe_pipeline.py) with params as its defaults and compile it to KFP IR YAML.

The pipeline and its components live beside the package in the repository (components/, pipelines/),
as kubeflow/pipelines-components lays them out; they are packages of the project (pyproject.toml) and
are imported as such.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


class PipelineError(RuntimeError):
    """The pipeline cannot be built, compiled, run or submitted; the message says why."""


def pipeline_definition():
    """`pipelines.globe_pipeline.build_pipeline`; a checkout without the packages is a clear error."""
    try:
        from pipelines.globe_pipeline import build_pipeline
    except ModuleNotFoundError as exc:
        if exc.name not in ("pipelines", "pipelines.globe_pipeline", "components"):
            raise
        raise PipelineError(
            f"cannot import the pipeline definition ({exc}): run from a GLOBE checkout installed with "
            "`pip install -e .` (scripts/setup.sh), which makes pipelines/ and components/ packages"
        ) from exc
    return build_pipeline


def drop_none(value: Any) -> Any:
    """Remove None-valued keys at every depth: KFP parameter defaults cannot hold null, and a
    missing key validates back to the same None default."""
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def resolved_groups(params: Any) -> dict[str, dict[str, Any]]:
    """Params (preset applied) as JSON-able dicts per group: the pipeline's parameter defaults."""
    dumped = params.model_dump(mode="json", exclude={"presets"})
    dumped["base"]["preset"] = None
    return drop_none(dumped)


def build(params: Any, multi_node_grpo: bool = True, runtime: str | None = None):
    return pipeline_definition()(resolved_groups(params), multi_node_grpo=multi_node_grpo, runtime=runtime)


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


def compile_pipeline(params: Any, out: str | Path, multi_node_grpo: bool = True) -> Path:
    """Compile to `out` atomically (a half-written pipeline file never replaces a good one)."""
    from kfp import compiler

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".yaml", dir=out.parent)
    os.close(fd)
    try:
        compiler.Compiler().compile(build(params, multi_node_grpo), package_path=tmp)
        text = Path(tmp).read_text(encoding="utf-8")
        Path(tmp).write_text(stable_header(text), encoding="utf-8")
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out
