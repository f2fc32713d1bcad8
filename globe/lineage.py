"""Lineage: which dataset versions, images, pipeline run and params a model came from.

A lineage is a flat mapping of short keys to strings, so that it is stored as MLflow model
version tags (`globe.lineage.<key>`, written with the version in one call), printed by
`globe resolve models:/NAME@ALIAS --lineage` and shown as a table in report.html:

    train_data.md5         DVC md5 of the verified dataset's `.dir` manifest (SFT reads its train
                           split: the traces that passed the four filters)
    grpo_data.md5          DVC md5 of the distilled dataset (GRPO reads every localizable labelled
                           photo of its train split, traces or not; docs/train.md)
    eval_data.md5          DVC md5 of the dataset the gate metric was measured on (its test split)
    data.<name>.md5        every dataset versioned in the run: source, distilled, verified,
    data.<name>.nfiles     benchmark; with the DVC remote in `dvc_remote`
    image.<role>           the container image (tag or digest) a group of steps ran in
    pipeline_run_id        the KFP run (kfp.local: its local run id)
    params                 the resolved params as JSON (preset applied), and `params_sha256`

The md5 is what `dvc pull` of the dataset's `.dvc` file fetches, so a tag is enough to get
exactly the bytes a model learned from back onto any machine (docs/data.md).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from typing import Any

TAG_PREFIX = "globe.lineage."
TRAIN_DATASET = "verified"  # SFT trains on the verified train split, evaluation uses its test split
GRPO_DATASET = "distilled"  # GRPO trains on every localizable labelled photo of the distilled train split


def local_runtime() -> str:
    """What `image.*` says when steps run without containers (kfp.local, `dvc repro`)."""
    from globe import __version__

    return f"none (local process: python {sys.version.split()[0]}, globe {__version__})"


def build_lineage(
    datasets: Mapping[str, Mapping[str, Any]],
    *,
    params: Mapping[str, Any],
    images: Mapping[str, str],
    pipeline_run_id: str | None = None,
    train: str = TRAIN_DATASET,
    evaluated: str = TRAIN_DATASET,
    grpo: str | None = GRPO_DATASET,
) -> dict[str, str]:
    """The lineage of a model trained on `datasets[train]` and gated on `datasets[evaluated]`.

    `datasets` maps a dataset name to its DVC record (`md5`, `nfiles`, `remote`: a
    `DatasetVersion.to_dict()` or a `.dvc` file's output)."""
    for role, name in (("train", train), ("evaluation", evaluated), ("GRPO", grpo)):
        if name is not None and name not in datasets:
            raise ValueError(f"lineage: no version of the {role} dataset {name!r} (have {sorted(datasets)})")
    out: dict[str, str] = {
        "train_data.md5": str(datasets[train]["md5"]),
        "train_data": f"{train} (split=train)",
        "eval_data.md5": str(datasets[evaluated]["md5"]),
        "eval_data": f"{evaluated} (split=test)",
    }
    if grpo is not None:
        out["grpo_data.md5"], out["grpo_data"] = str(datasets[grpo]["md5"]), f"{grpo} (split=train)"
    remotes = {str(v.get("remote") or v.get("meta", {}).get("remote") or "") for v in datasets.values()} - {""}
    if remotes:
        out["dvc_remote"] = ", ".join(sorted(remotes))
    for name, version in sorted(datasets.items()):
        out[f"data.{name}.md5"] = str(version["md5"])
        out[f"data.{name}.nfiles"] = str(version.get("nfiles", ""))
    for role, image in sorted(images.items()):
        out[f"image.{role}"] = str(image)
    if pipeline_run_id:
        out["pipeline_run_id"] = str(pipeline_run_id)
    text = json.dumps(params, sort_keys=True, default=str)
    out["params"] = text
    out["params_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return out


def to_tags(lineage: Mapping[str, str]) -> dict[str, str]:
    return {TAG_PREFIX + key: str(value) for key, value in lineage.items()}


def from_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    """The lineage stored in a model version's tags; `params` comes back as a mapping."""
    out: dict[str, Any] = {k[len(TAG_PREFIX):]: v for k, v in sorted(tags.items()) if k.startswith(TAG_PREFIX)}
    if "params" in out:
        try:
            out["params"] = json.loads(out["params"])
        except json.JSONDecodeError:
            pass  # written by hand: show it as it is
    return out


def report_rows(lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows for report.html: everything but the params JSON itself (`params_sha256` stands in)."""
    return [(k, str(v)) for k, v in lineage.items() if k != "params"]
