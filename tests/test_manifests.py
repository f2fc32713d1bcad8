"""manifests/: every overlay builds with `kubectl kustomize`, every object validates (core kinds
strictly, KServe/Trainer kinds against the vendored CRDs), pods are non-root with limits, RBAC is
least-privilege, and no credential is written down anywhere."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from globe.k8s.manifests import (
    ManifestError,
    kustomize_build,
    load_yaml_documents,
    secret_leaks,
    validate_core,
    validate_custom,
    validate_documents,
)

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ["dev", "prod"]
TEMPLATES = sorted((MANIFESTS / "templates").glob("*.yaml"))
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*", "escalate", "bind", "impersonate"}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, kustomize_build(MANIFESTS / "overlays" / request.param)


def test_overlays_validate(overlay, shared_crds):
    name, docs = overlay
    counts = validate_documents(docs, shared_crds)
    kinds = {d["kind"] for d in docs}
    assert {"InferenceService", "ServingRuntime", "TrainingRuntime", "Deployment", "StatefulSet", "Role"} <= kinds
    assert counts["custom"] >= 3 and counts["core"] >= 10
    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    assert namespaces == {"globe-dev" if name == "dev" else "globe"}


def test_templates_validate(shared_crds):
    assert {t.name for t in TEMPLATES} >= {"secrets.yaml", "trainjob-grpo.yaml"}
    for template in TEMPLATES:
        validate_documents(load_yaml_documents(template), shared_crds)


def test_overlays_differ_where_they_should(overlay):
    name, docs = overlay
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "globe-config")
    isvc_names = {d["metadata"]["name"] for d in docs if d["kind"] == "InferenceService"}
    if name == "dev":
        assert config["data"]["AWS_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert any(d["kind"] == "Deployment" and d["metadata"]["name"] == "seaweedfs" for d in docs)
        assert isvc_names == {"globe"}
    else:
        assert config["data"]["AWS_ENDPOINT_URL"].startswith("https://")
        assert isvc_names == {"globe", "globe-raw"}  # the raw model on KServe's HF runtime (vLLM)
        raw = next(d for d in docs if d["metadata"]["name"] == "globe-raw")
        assert raw["spec"]["predictor"]["model"]["modelFormat"]["name"] == "huggingface"
        assert "--backend=vllm" in raw["spec"]["predictor"]["model"]["args"]


def test_strict_crd_validation_rejects_typos(overlay, shared_crds):
    """The CRD check must fail on an unknown field and a wrong type, or it proves nothing."""
    _, docs = overlay
    isvc = copy.deepcopy(next(d for d in docs if d["kind"] == "InferenceService"))
    isvc["spec"]["predictor"]["model"]["storageURI"] = "s3://typo"
    with pytest.raises(ManifestError, match="storageURI"):
        validate_custom(isvc, shared_crds)
    runtime = copy.deepcopy(next(d for d in docs if d["kind"] == "TrainingRuntime"))
    runtime["spec"]["mlPolicy"]["numNodes"] = "two"
    with pytest.raises(ManifestError, match="numNodes"):
        validate_custom(runtime, shared_crds)
    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(ManifestError, match="resource"):
        validate_core(deployment)
    with pytest.raises(ManifestError, match="unknown kind"):
        validate_documents([{"apiVersion": "v1", "kind": "Podd", "metadata": {"name": "x"}}], shared_crds)


def _pods(doc: dict) -> list[tuple[str, dict, list[dict]]]:
    """(where, pod-level spec, containers) for every pod template an object carries."""
    kind, spec = doc["kind"], doc.get("spec", {})
    if kind in {"Deployment", "StatefulSet"}:
        pod = spec["template"]["spec"]
        return [(kind, pod, pod["containers"])]
    if kind == "TrainingRuntime":
        return [
            (f"{kind}/{job['name']}", job["template"]["spec"]["template"]["spec"], job["template"]["spec"]["template"]["spec"]["containers"])
            for job in spec["template"]["spec"]["replicatedJobs"]
        ]
    if kind == "InferenceService":
        predictor = spec["predictor"]
        return [(kind, predictor, [predictor["model"], *predictor.get("containers", [])])]
    if kind == "ServingRuntime":
        return [(kind, {}, spec["containers"])]
    return []


def test_pods_are_non_root_with_requests_and_limits(overlay):
    _, docs = overlay
    checked = 0
    for doc in docs:
        for where, pod, containers in _pods(doc):
            pod_ctx = pod.get("securityContext", {})
            for c in containers:
                ctx = c.get("securityContext", {})
                label = f"{doc['metadata']['name']} {where} container {c.get('name', '<model>')}"
                assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, label
                assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, label
                assert ctx.get("allowPrivilegeEscalation") is False, label
                assert ctx.get("capabilities", {}).get("drop") == ["ALL"], label
                seccomp = ctx.get("seccompProfile", pod_ctx.get("seccompProfile", {}))
                assert seccomp.get("type") == "RuntimeDefault", label
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(c.get("resources", {}).get(bound, {})), f"{label}: {bound}"
                checked += 1
    assert checked >= 5


def test_gpu_workloads_are_placed_on_the_gpu_pool(overlay):
    _, docs = overlay
    runtime = next(d for d in docs if d["kind"] == "TrainingRuntime")
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert int(pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert any(m["mountPath"] == "/dev/shm" for m in pod["containers"][0]["volumeMounts"])


def test_rbac_is_least_privilege(overlay):
    _, docs = overlay
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] in {"Role", "ClusterRole"}}
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    writes: dict[str, set[str]] = {}
    for name, role in roles.items():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{name}: wildcard in {field}"
            if set(rule["verbs"]) & WRITE_VERBS:
                writes.setdefault(name, set()).update(rule["resources"])
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames"), f"{name}: secrets readable without resourceNames"
    assert writes["globe-pipeline"] == {"trainjobs", "inferenceservices"}
    # KFP's executor bookkeeping (Argo task results) is the only other write, in its own Role.
    assert writes.get("globe-kfp-executor", set()) <= {"workflowtaskresults"}
    assert set(writes) <= {"globe-pipeline", "globe-kfp-executor"}
    pipeline_rules = roles["globe-pipeline"]["rules"]
    create_on = {r for rule in pipeline_rules if "create" in rule["verbs"] for r in rule["resources"]}
    assert create_on == {"trainjobs", "inferenceservices"}
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    for sa in ("globe-trainer", "globe-predictor", "globe-mlflow"):
        assert accounts[sa].get("automountServiceAccountToken") is False, sa


def test_no_credentials_in_manifests(overlay):
    _, docs = overlay
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets must come from templates/, created by hand"
    assert secret_leaks(docs) == []
    assert secret_leaks([load_yaml_documents(t) for t in TEMPLATES]) == []


def test_secret_leak_detector_finds_planted_values():
    secret = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"USERNAME": "abc"}}
    env = {"env": [{"name": "POSTGRES_PASSWORD", "value": "hunter2"}]}
    param = {"defaultValue": {"aws_secret_access_key": "xyz"}}
    text = {"args": ["--key=AKIAABCDEFGHIJKLMNOP"]}
    ref = {"secretAsEnv": [{"secretName": "globe-s3", "keyToEnv": [{"secretKey": "AWS_SECRET_ACCESS_KEY", "envVar": "X"}]}]}
    assert len(secret_leaks(secret)) == 1
    assert len(secret_leaks(env)) == 1
    assert len(secret_leaks(param)) == 1
    assert len(secret_leaks(text)) == 1
    assert secret_leaks(ref) == []


def test_every_manifest_file_says_how_to_apply_check_and_clean_up():
    files = [p for p in MANIFESTS.rglob("*.yaml")]
    assert len(files) >= 15
    for path in files:
        head = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            head.append(line.lower())
        text = "\n".join(head)
        assert head, f"{path} has no leading comment"
        for word in ("apply", "check", "clean up"):
            assert word in text, f"{path}: leading comment does not say how to {word}"


def test_check_manifests_command(shared_crds, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from globe.cli import app

    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["pipeline", "check-manifests", "--crds", str(shared_crds)])
    assert result.exit_code == 0, result.output
    assert '"prod"' in result.output and '"custom": 4' in result.output
    bad = CliRunner().invoke(app, ["pipeline", "check-manifests", "--crds", str(tmp_path / "nope")])
    assert bad.exit_code == 2 and "not a directory" in bad.output


def test_check_manifests_needs_crds_named(monkeypatch):
    from typer.testing import CliRunner

    from globe.cli import app

    monkeypatch.delenv("GLOBE_SHARED_CRDS", raising=False)
    result = CliRunner().invoke(app, ["pipeline", "check-manifests"])
    assert result.exit_code == 2 and "--crds is required" in result.stderr
