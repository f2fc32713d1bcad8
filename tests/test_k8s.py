"""The TrainJob launcher's create -> wait -> succeed/fail/timeout flow, through the real kubeflow
SDK and kubernetes client, against kmock's in-memory Kubernetes API on 127.0.0.1. A small
coroutine plays the Trainer controller: it sets the job's conditions the way Trainer v2 does."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from pathlib import Path

import attrs
import kmock
import pytest
import yaml
from kubernetes import client as k8s

from globe.k8s.manifests import validate_custom
from globe.k8s.trainjob import (
    GpuSettings,
    TrainJobFailed,
    TrainJobRequest,
    TrainJobTimeout,
    launch_trainjob,
    node_launch,
    render_trainjob,
)

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "globe"
TRAINJOBS = "trainer.kubeflow.org/v1alpha1/trainjobs"
RUNTIMES = "trainer.kubeflow.org/v1alpha1/trainingruntimes"


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator stores objects as posted; a real API server also fills in the metadata
    that clients rely on (the SDK rejects a TrainJob without namespace/creationTimestamp)."""

    async def _handle(self, request):
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("namespace", request.namespace)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return await super()._handle(request)


pytestmark = pytest.mark.kmock(cls=ApiServer)


def _config(server: kmock.RawHandler) -> k8s.Configuration:
    cfg = k8s.Configuration()
    cfg.host = str(server.servers[0].url).rstrip("/")
    assert cfg.host.startswith("http://127.0.0.1:")
    return cfg


def _seed(server: kmock.RawHandler) -> None:
    """The cluster state before the step runs: the runtime from manifests/, no pods yet."""
    runtime = yaml.safe_load((ROOT / "manifests/base/training-runtime.yaml").read_text())
    runtime["metadata"]["namespace"] = NAMESPACE
    server.objects[RUNTIMES, NAMESPACE, runtime["metadata"]["name"]] = runtime
    server.resources["v1/pods"] = {"kind": "Pod", "namespaced": True, "verbs": ["list", "get"]}
    server.resources[TRAINJOBS] = {"kind": "TrainJob", "namespaced": True}


async def _controller(server: kmock.RawHandler, outcome: str | None, after_s: float = 1.0) -> None:
    """Wait for the TrainJob to be created, then mark it Complete or Failed (None: never)."""
    while not any(key[0] == kmock.resource(TRAINJOBS) for key in server.objects):
        await asyncio.sleep(0.05)
    if outcome is None:
        return
    await asyncio.sleep(after_s)
    key = next(k for k in server.objects if k[0] == kmock.resource(TRAINJOBS))
    condition = {
        "Complete": {"type": "Complete", "status": "True", "reason": "JobSetCompleted", "message": "jobset completed"},
        "Failed": {
            "type": "Failed",
            "status": "True",
            "reason": "DeadlineExceeded",
            "message": "TrainJob exceeded its activeDeadlineSeconds (node-0: OOMKilled)",
        },
    }[outcome]
    condition["lastTransitionTime"] = "2026-11-22T00:00:00Z"
    server.objects[key].patch({"status": {"conditions": [condition]}})


REQUEST = TrainJobRequest(
    image="ghcr.io/globe-platform/globe-train:0.1.0",
    command=["torchrun", "--no-python", "globe", "train", "grpo"],
    args=["--params", "/workspace/params.yaml", "--preset", "qwen2.5-vl-7b-8gpu"],
    num_nodes=2,
    gpu=GpuSettings(gpus_per_node=8, accelerator_type="NVIDIA-H100-80GB-HBM3", shm_size="32Gi"),
    cpu_per_node="32",
    memory_per_node="512Gi",
    env={"GLOBE_RUN": "grpo-1"},
    secret_env={"AWS_SECRET_ACCESS_KEY": ("globe-s3", "AWS_SECRET_ACCESS_KEY")},
    active_deadline_s=7200,
    name="grpo-test",
)


@pytest.mark.asyncio
async def test_launch_creates_a_valid_trainjob_and_returns_on_complete(kmock, shared_crds):
    _seed(kmock)
    controller = asyncio.create_task(_controller(kmock, "Complete"))
    outcome = await asyncio.to_thread(
        launch_trainjob, REQUEST, NAMESPACE, timeout_s=30, poll_s=1, client_configuration=_config(kmock)
    )
    await controller
    assert outcome.name == "grpo-test" and outcome.status == "Complete"
    assert outcome.conditions[0]["reason"] == "JobSetCompleted"

    created = [r for r in kmock if r.method == "POST" and r.resource == kmock.resource(TRAINJOBS)]
    assert len(created) == 1 and created[0].namespace == NAMESPACE
    job = created[0].data
    validate_custom(job, shared_crds)  # what the SDK sent is a valid TrainJob for Trainer v2.3
    spec = job["spec"]
    assert spec["runtimeRef"] == {"name": "globe-grpo", "kind": "TrainingRuntime"}
    assert spec["activeDeadlineSeconds"] == 7200
    trainer = spec["trainer"]
    assert trainer["numNodes"] == 2
    assert trainer["command"][:2] == ["torchrun", "--no-python"] and trainer["args"][-1] == "qwen2.5-vl-7b-8gpu"
    assert trainer["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": 8, "cpu": "32", "memory": "512Gi"}
    assert {"name": "GLOBE_RUN", "value": "grpo-1"} in trainer["env"]
    pod = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}} in pod["volumes"]
    node = pod["containers"][0]
    assert node["name"] == "node"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in node["volumeMounts"]
    secret_ref = {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "globe-s3", "key": "AWS_SECRET_ACCESS_KEY"}}}
    assert node["env"] == [secret_ref]
    # rendered offline (what tests/test_train_distributed.py runs on loopback), it is the job that was created
    runtime = yaml.safe_load((ROOT / "manifests/base/training-runtime.yaml").read_text())
    rendered = render_trainjob(REQUEST, runtime, namespace=NAMESPACE)
    assert rendered["spec"] == job["spec"] and rendered["metadata"]["name"] == "grpo-test"
    node1 = node_launch(rendered, runtime, 1)
    assert node1.argv == ["torchrun", "--no-python", "globe", "train", "grpo", *REQUEST.args]
    assert {k: v for k, v in node1.env.items() if k.startswith("PET_")} == {
        "PET_NNODES": "2", "PET_NPROC_PER_NODE": "auto", "PET_NODE_RANK": "1",  # auto: one process per GPU
        "PET_MASTER_ADDR": "grpo-test-node-0-0.grpo-test", "PET_MASTER_PORT": "29400"}
    assert node1.env["GLOBE_RUN"] == "grpo-1" and "AWS_SECRET_ACCESS_KEY" not in node1.env


@pytest.mark.asyncio
async def test_failed_job_surfaces_the_failure_condition(kmock):
    _seed(kmock)
    controller = asyncio.create_task(_controller(kmock, "Failed"))
    with pytest.raises(TrainJobFailed) as info:
        await asyncio.to_thread(
            launch_trainjob, REQUEST, NAMESPACE, timeout_s=30, poll_s=1, client_configuration=_config(kmock)
        )
    await controller
    message = str(info.value)
    assert "globe/grpo-test" in message and "DeadlineExceeded" in message and "OOMKilled" in message
    assert info.value.conditions[0]["type"] == "Failed"


@pytest.mark.asyncio
async def test_timeout_reports_last_state_and_leaves_the_job(kmock):
    _seed(kmock)
    controller = asyncio.create_task(_controller(kmock, None))
    with pytest.raises(TrainJobTimeout, match=r"did not finish within 3s; last seen: no conditions yet"):
        await asyncio.to_thread(
            launch_trainjob, REQUEST, NAMESPACE, timeout_s=3, poll_s=1, client_configuration=_config(kmock)
        )
    await controller
    assert not [r for r in kmock if r.method == "DELETE"]
    assert any(key[0] == kmock.resource(TRAINJOBS) for key in kmock.objects)


@pytest.mark.asyncio
async def test_retried_step_waits_on_the_existing_job(kmock):
    """A retried KFP step asks for the same job name; it must wait on that job, not fail on 409."""
    _seed(kmock)
    existing = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                "metadata": {"name": "grpo-test", "namespace": NAMESPACE, "creationTimestamp": "2026-11-22T00:00:00Z"},
                "spec": {"runtimeRef": {"name": "globe-grpo", "kind": "TrainingRuntime"}}}
    kmock.objects[kmock.resource(TRAINJOBS), NAMESPACE, "grpo-test"] = existing
    controller = asyncio.create_task(_controller(kmock, "Complete", after_s=0.5))
    outcome = await asyncio.to_thread(
        launch_trainjob, REQUEST, NAMESPACE, timeout_s=30, poll_s=1, client_configuration=_config(kmock)
    )
    await controller
    assert outcome.status == "Complete"
    posts = [r for r in kmock if r.method == "POST"]
    assert len(posts) == 1  # tried once, got 409 Conflict, then waited
    assert len([k for k in kmock.objects if k[0] == kmock.resource(TRAINJOBS)]) == 1


@pytest.mark.asyncio
async def test_missing_runtime_is_a_clear_error(kmock):
    kmock.resources[RUNTIMES] = {"kind": "TrainingRuntime", "namespaced": True}
    with pytest.raises(RuntimeError, match="globe-grpo"):
        await asyncio.to_thread(launch_trainjob, REQUEST, NAMESPACE, timeout_s=5, poll_s=1, client_configuration=_config(kmock))
    assert not [r for r in kmock if r.method == "POST"]


# --- InferenceService deploy: create -> unchanged -> patch, then wait for Ready ------------------

ISVCS = "serving.kserve.io/v1beta1/inferenceservices"


async def _kserve_controller(server: kmock.RawHandler, name: str, after_s: float = 0.5) -> None:
    """Mark the InferenceService Ready with a URL once it exists, as KServe's controller does."""
    key = (kmock.resource(ISVCS), NAMESPACE, name)
    while key not in server.objects or server.objects[key].deleted:
        await asyncio.sleep(0.05)
    await asyncio.sleep(after_s)
    server.objects[key].patch(
        {"status": {"url": f"http://{name}.{NAMESPACE}.example.com", "conditions": [{"type": "Ready", "status": "True"}]}}
    )


@pytest.mark.asyncio
async def test_deploy_creates_then_patches_the_inference_service(kmock, shared_crds):
    from globe.k8s.deploy import deploy_inference_service

    kmock.resources[ISVCS] = {"kind": "InferenceService", "namespaced": True}
    cfg = _config(kmock)
    controller = asyncio.create_task(_kserve_controller(kmock, "globe"))
    first = await asyncio.to_thread(
        deploy_inference_service, NAMESPACE, "s3://globe/models/globe/1", model_version="1",
        wait_ready_s=10, poll_s=0.2, client_configuration=cfg,
    )
    await controller
    assert (first.action, first.ready, first.url) == ("created", True, "http://globe.globe.example.com")
    posted = [r for r in kmock if r.method == "POST" and r.resource == kmock.resource(ISVCS)]
    assert len(posted) == 1
    validate_custom(posted[0].data, shared_crds)  # a valid InferenceService for KServe

    again = await asyncio.to_thread(deploy_inference_service, NAMESPACE, "s3://globe/models/globe/1", client_configuration=cfg)
    assert again.action == "unchanged"
    assert not [r for r in kmock if r.method == "PATCH"]

    second = await asyncio.to_thread(
        deploy_inference_service, NAMESPACE, "s3://globe/models/globe/2", model_version="2", client_configuration=cfg
    )
    assert second.action == "patched"
    patches = [r for r in kmock if r.method == "PATCH"]
    assert len(patches) == 1
    assert patches[0].headers["Content-Type"] == "application/merge-patch+json"
    assert patches[0].data == {
        "spec": {"predictor": {"model": {"storageUri": "s3://globe/models/globe/2"}}},
        "metadata": {"annotations": {"globe.ai/model-version": "2"}},
    }
    stored = kmock.objects[kmock.resource(ISVCS), NAMESPACE, "globe"]
    assert stored["spec"]["predictor"]["model"]["storageUri"] == "s3://globe/models/globe/2"
    assert stored["spec"]["predictor"]["model"]["runtime"] == "globe"  # the rest of the spec is kept


@pytest.mark.asyncio
async def test_deploy_wait_times_out_with_the_conditions(kmock):
    from globe.k8s.deploy import deploy_inference_service

    kmock.resources[ISVCS] = {"kind": "InferenceService", "namespaced": True}
    with pytest.raises(TimeoutError, match=r"globe/globe not Ready within 1s \(storageUri s3://globe/m\)"):
        await asyncio.to_thread(
            deploy_inference_service, NAMESPACE, "s3://globe/m", wait_ready_s=1, poll_s=0.2,
            client_configuration=_config(kmock),
        )


def test_inference_service_matches_the_manifest_and_rejects_bad_uris():
    from globe.k8s.deploy import inference_service

    manifest = yaml.safe_load((ROOT / "manifests/base/inference-service.yaml").read_text())
    built = inference_service("globe", "s3://globe/models/globe/champion", gpu=GpuSettings(gpus_per_node=1))
    for field in ("runtime", "modelFormat", "storageUri"):
        assert built["spec"]["predictor"]["model"][field] == manifest["spec"]["predictor"]["model"][field]
    assert built["spec"]["predictor"]["serviceAccountName"] == manifest["spec"]["predictor"]["serviceAccountName"]
    assert built["spec"]["predictor"]["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert built["spec"]["predictor"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    with pytest.raises(ValueError, match="storage_uri must be a URI"):
        inference_service("globe", "models/champion")
