"""Deploy the registered champion as the `globe` KServe InferenceService (create or patch).

The InferenceService (manifests/base/inference-service.yaml) serves the model format `globe` with
our ServingRuntime; KServe's storage initializer copies `storageUri` into /mnt/models. Promoting a
new champion therefore only changes `storageUri`: the deploy step creates the service when it does
not exist, merge-patches `storageUri` (plus a model-version annotation) when it does, and does
nothing when it already points at that location. KServe rolls the predictor over without downtime.

It talks to the API with the kubernetes client's CustomObjectsApi (what KServe's own
`KServeClient` wraps): KServeClient always loads a kubeconfig or the in-cluster config into the
process-wide default, and turns every API error into a bare RuntimeError, so "not found -> create"
could only be told apart by parsing messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from globe.k8s.client import api_client
from globe.k8s.trainjob import GpuSettings

KSERVE_GROUP = "serving.kserve.io"
KSERVE_VERSION = "v1beta1"
PLURAL = "inferenceservices"
VERSION_ANNOTATION = "globe.ai/model-version"


@dataclass(frozen=True)
class DeployOutcome:
    name: str
    namespace: str
    action: str  # "created" | "patched" | "unchanged"
    storage_uri: str
    ready: bool | None  # None when not waited for
    url: str | None


def inference_service(
    name: str,
    storage_uri: str,
    *,
    model_version: str | None = None,
    runtime: str = "globe",
    service_account: str = "globe-predictor",
    cpu: str = "1",
    memory: str = "4Gi",
    gpu: GpuSettings | None = None,
) -> dict[str, Any]:
    """The InferenceService object for the geo-reasoning predictor (same shape as the manifest)."""
    if not storage_uri or "://" not in storage_uri:
        raise ValueError(f"storage_uri must be a URI such as s3://bucket/path, got {storage_uri!r}")
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    predictor: dict[str, Any] = {
        "serviceAccountName": service_account,
        "minReplicas": 1,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "model": {
            "runtime": runtime,
            "modelFormat": {"name": "globe"},
            "storageUri": storage_uri,
            "resources": {"requests": dict(requests), "limits": dict(requests)},
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
    }
    if gpu is not None and gpu.gpus_per_node:
        for bound in ("requests", "limits"):
            predictor["model"]["resources"][bound][gpu.resource_name] = str(gpu.gpus_per_node)
        if gpu.selector():
            predictor["nodeSelector"] = gpu.selector()
        if gpu.tolerations:
            predictor["tolerations"] = list(gpu.tolerations)
    annotations = {"serving.kserve.io/deploymentMode": "RawDeployment"}
    if model_version:
        annotations[VERSION_ANNOTATION] = str(model_version)
    return {
        "apiVersion": f"{KSERVE_GROUP}/{KSERVE_VERSION}",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": annotations, "labels": {"app.kubernetes.io/part-of": "globe"}},
        "spec": {"predictor": predictor},
    }


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and str(c.get("status")).lower() == "true" for c in conditions)


def deploy_inference_service(
    namespace: str,
    storage_uri: str,
    *,
    name: str = "globe",
    model_version: str | None = None,
    gpu: GpuSettings | None = None,
    wait_ready_s: float = 0,
    poll_s: float = 5,
    client_configuration: Any | None = None,
    config_file: str | None = None,
) -> DeployOutcome:
    """Create the InferenceService or point the existing one at `storage_uri`; optionally wait.

    Raises TimeoutError when `wait_ready_s` > 0 and the service is not Ready in time (its last
    conditions are in the message), and kubernetes ApiException for other API errors.
    """
    from kubernetes import client

    api = client.CustomObjectsApi(api_client(client_configuration, config_file))
    desired = inference_service(name, storage_uri, model_version=model_version, gpu=gpu)
    try:
        current = api.get_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace, PLURAL, name)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        current = None
    if current is None:
        api.create_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace, PLURAL, desired)
        action = "created"
    elif current.get("spec", {}).get("predictor", {}).get("model", {}).get("storageUri") == storage_uri:
        action = "unchanged"
    else:
        patch: dict[str, Any] = {"spec": {"predictor": {"model": {"storageUri": storage_uri}}}}
        if model_version:
            patch["metadata"] = {"annotations": {VERSION_ANNOTATION: str(model_version)}}
        api.patch_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace, PLURAL, name, patch)
        action = "patched"

    ready: bool | None = None
    obj: dict[str, Any] = {}
    if wait_ready_s > 0:
        deadline = time.monotonic() + wait_ready_s
        while True:
            obj = api.get_namespaced_custom_object(KSERVE_GROUP, KSERVE_VERSION, namespace, PLURAL, name)
            if _ready(obj):
                ready = True
                break
            if time.monotonic() >= deadline:
                seen = (obj.get("status") or {}).get("conditions") or "no status yet"
                raise TimeoutError(
                    f"InferenceService {namespace}/{name} not Ready within {wait_ready_s:.0f}s "
                    f"(storageUri {storage_uri}); conditions: {seen}. Check: kubectl -n {namespace} describe isvc {name}"
                )
            time.sleep(poll_s)
    url = (obj.get("status") or {}).get("url")
    return DeployOutcome(name=name, namespace=namespace, action=action, storage_uri=storage_uri, ready=ready, url=url)


def kserve_storage_uri(uri: str, artifacts_destination: str | None) -> str:
    """A storage location KServe's storage initializer can read.

    An MLflow server started with `--serve-artifacts --artifacts-destination s3://B/P` reports
    proxied locations as `mlflow-artifacts:/REST`; the files are at `s3://B/P/REST`.
    """
    prefix = "mlflow-artifacts:"
    if not uri.startswith(prefix):
        return uri
    if not artifacts_destination:
        raise ValueError(
            f"{uri} is proxied by the MLflow server; set MLFLOW_ARTIFACTS_DESTINATION (the server's "
            "--artifacts-destination, e.g. s3://globe/mlflow) so it can be mapped to an s3:// URI"
        )
    body = uri[len(prefix):]
    if body.startswith("//"):  # mlflow-artifacts://host:port/path
        body = body[2:].split("/", 1)[1] if "/" in body[2:] else ""
    return artifacts_destination.rstrip("/") + "/" + body.lstrip("/")
