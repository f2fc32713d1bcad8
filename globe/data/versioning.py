"""Record a dataset directory in DVC's format on a DVC remote, from inside a pipeline step.

A KFP step has no git checkout, so it builds a throwaway DVC project (`dvc init --no-scm`), links
the dataset into it and runs DVC's own `add` and `push` through its Python API (`dvc.repo.Repo`,
the code the `dvc` commands run). What lands on the remote is DVC's content-addressed cache
(`files/md5/ab/cdef...`, plus the `.dir` manifest listing every file), and what comes back is the
`.dvc` file: the md5 of that manifest, the file count and the size. Anyone holding the `.dvc`
file can later fetch exactly these bytes with ordinary DVC commands (docs/data.md):

    dvc init --no-scm && dvc remote add -d storage s3://globe/dvc
    dvc remote modify storage endpointurl https://s3.example.com      # when not on AWS
    dvc pull verified.dvc

The remote is a URL (`s3://bucket/prefix`, or a local folder for `globe pipeline run-local`);
the S3 endpoint comes from `AWS_ENDPOINT_URL` and credentials from `AWS_*` variables, as for every
other S3 access, so neither is written into the `.dvc` file. A `meta:` block in it says which
remote and which run the dataset was pushed from (DVC keeps `meta` and ignores it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from globe import s3
from globe.io import atomic_write_text

REMOTE_NAME = "storage"  # as in the repository's .dvc/config


class VersioningError(RuntimeError):
    """The dataset could not be recorded on the DVC remote; the message says why."""


@dataclass(frozen=True)
class DatasetVersion:
    name: str
    md5: str  # the md5 of the `.dir` manifest: the dataset's identity in DVC
    nfiles: int
    size: int
    remote: str
    pushed: int  # objects uploaded by this push (0 when the remote already held them all)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remote_config(remote: str) -> dict[str, str]:
    """The `[remote]` section for `remote`: its URL, plus the S3 endpoint from the environment."""
    conf = {"url": remote}
    if s3.is_s3(remote) and s3.endpoint_url():
        conf["endpointurl"] = s3.endpoint_url()
    return conf


def _link_tree(src: Path, dst: Path) -> None:
    from globe.data.records import link_or_copy

    for path in sorted(src.rglob("*")):
        if path.is_file():
            link_or_copy(path, dst / path.relative_to(src))


def version_dataset(dataset: str | Path, name: str, remote: str, dvc_file: str | Path,
                    meta: dict[str, Any] | None = None) -> DatasetVersion:
    """`dvc add` + `dvc push` of `dataset` as `name`; writes `name.dvc` to `dvc_file` (atomically)."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dataset = Path(dataset)
    if not dataset.is_dir() or not any(dataset.iterdir()):
        raise VersioningError(f"{dataset}: not a dataset directory (missing or empty)")
    if not remote:
        raise VersioningError("no DVC remote given (e.g. s3://globe/dvc)")
    if not s3.is_s3(remote) and "://" not in remote:
        Path(remote).mkdir(parents=True, exist_ok=True)  # a local remote, as `dvc push` would create it
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")  # DVC would otherwise report usage to iterative.ai
    with tempfile.TemporaryDirectory(prefix="globe-dvc-") as tmp:
        root = Path(tmp)
        _link_tree(dataset, root / name)
        try:
            with contextlib.redirect_stdout(sys.stderr):  # "Initialized DVC repository." and progress
                repo = Repo.init(str(root), no_scm=True)
                try:
                    with repo.config.edit() as conf:
                        conf["core"]["analytics"] = "false"
                        conf["core"]["remote"] = REMOTE_NAME
                        conf["remote"][REMOTE_NAME] = remote_config(remote)
                    out = repo.add(str(root / name))[0].outs[0]
                    pushed = repo.push()
                finally:
                    repo.close()
        except (DvcException, OSError) as exc:  # s3fs reports a missing bucket or refused credentials as OSError
            raise VersioningError(f"dvc push of {name} to {remote} failed: {type(exc).__name__}: {exc}") from exc
        doc = yaml.safe_load((root / f"{name}.dvc").read_text(encoding="utf-8"))
    doc["meta"] = {"remote": remote, **(meta or {})}
    atomic_write_text(dvc_file, yaml.safe_dump(doc, sort_keys=False))
    return DatasetVersion(name=name, md5=str(out.hash_info.value), nfiles=int(out.meta.nfiles or 0),
                          size=int(out.meta.size or 0), remote=remote, pushed=int(pushed))


def read_dvc_file(path: str | Path) -> dict[str, Any]:
    """The first output of a `.dvc` file (md5, size, nfiles, path) plus its `meta` block."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    outs = doc.get("outs") or []
    if not outs or "md5" not in outs[0]:
        raise VersioningError(f"{path}: not a .dvc file of a dataset (no outs[0].md5)")
    return {**outs[0], "meta": doc.get("meta") or {}}


def fetch_commands(dvc_name: str, remote: str) -> list[str]:
    """The commands that get a dataset back by its `.dvc` file, on any machine with DVC."""
    cmds = ["mkdir globe-data && cd globe-data && dvc init --no-scm",
            f"dvc remote add -d {REMOTE_NAME} {remote}"]
    if s3.is_s3(remote):
        cmds.append(f"dvc remote modify {REMOTE_NAME} endpointurl $AWS_ENDPOINT_URL   # S3-compatible stores only")
    cmds.append(f"cp /path/to/{dvc_name}.dvc . && dvc pull {dvc_name}.dvc")
    return cmds
