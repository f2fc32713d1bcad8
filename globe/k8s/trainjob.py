"""Launch GRPO on a cluster as a Kubeflow Trainer `TrainJob` and wait for it.

Why a TrainJob and not a bigger KFP pod: multi-node GRPO needs N pods that start together, find
each other (torchrun rendezvous) and fail together; Kubeflow Trainer v2 does exactly that from a
`TrainingRuntime` (manifests/base/training-runtime.yaml: torch-distributed, the GPU image, /dev/shm,
the workspace PVC). A KFP step therefore only *launches* the job, waits, and turns the outcome
into a step result.

The flow uses the `kubeflow` SDK's `TrainerClient` (0.5.0):
  create  `train(runtime, CustomTrainerContainer(...), options=[...])`; the step's GPU settings are
          forwarded: GPUs/CPU/memory per node, node selector (accelerator type) and tolerations,
          the /dev/shm size, Secrets as env (references only), the workspace PVC, a deadline;
          A job of the same name that already exists (a retried step) is waited on, not recreated;
  wait    `wait_for_job_status(..., {"Complete", "Failed"}, timeout)`; the SDK's own failure error
          says only "TrainJob X is Failed", so on failure we read the job's `Failed` condition and
          raise `TrainJobFailed` with its reason and message (e.g. DeadlineExceeded, a pod's
          OOMKilled); on timeout `TrainJobTimeout` carries the last conditions seen. The job is
          left in place after either, so `kubectl describe trainjob` still works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from globe.k8s.client import api_client

TRAINER_GROUP = "trainer.kubeflow.org"
TRAINER_VERSION = "v1alpha1"
NODE_CONTAINER = "node"  # the container name Trainer runtimes use for training nodes


@dataclass(frozen=True)
class GpuSettings:
    """Where and on what a GPU step runs; shared by the KFP GPU steps and the TrainJob."""

    gpus_per_node: int = 8
    resource_name: str = "nvidia.com/gpu"
    accelerator_type: str | None = None  # e.g. "NVIDIA-H100-80GB-HBM3"
    accelerator_label: str = "nvidia.com/gpu.product"  # node label that carries the type
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    shm_size: str = "64Gi"

    def selector(self) -> dict[str, str]:
        """Node selector: the explicit one plus the accelerator-type label when a type is set."""
        out = dict(self.node_selector)
        if self.accelerator_type:
            out[self.accelerator_label] = self.accelerator_type
        return out


@dataclass(frozen=True)
class TrainJobRequest:
    """One GRPO run as a TrainJob. `command`/`args` run on every node under torchrun."""

    image: str
    command: list[str]
    args: list[str] = field(default_factory=list)
    runtime: str = "globe-grpo"
    num_nodes: int = 1
    gpu: GpuSettings = field(default_factory=GpuSettings)
    cpu_per_node: str | None = None
    memory_per_node: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # env var -> (Secret name, key): passed as secretKeyRef, never as a value.
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    workspace_pvc: str | None = "globe-workspace"
    workspace_path: str = "/workspace"
    active_deadline_s: int | None = None
    labels: dict[str, str] = field(default_factory=lambda: {"app.kubernetes.io/part-of": "globe"})
    name: str | None = None

    def resources_per_node(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.gpu.gpus_per_node:
            out[self.gpu.resource_name] = self.gpu.gpus_per_node
        if self.cpu_per_node:
            out["cpu"] = self.cpu_per_node
        if self.memory_per_node:
            out["memory"] = self.memory_per_node
        return out


@dataclass(frozen=True)
class TrainJobOutcome:
    name: str
    namespace: str
    status: str
    conditions: list[dict[str, Any]]
    seconds: float


class TrainJobFailed(RuntimeError):
    """The TrainJob reached `Failed`; the message carries the condition's reason and message."""

    def __init__(self, namespace: str, name: str, conditions: list[dict[str, Any]]):
        self.namespace, self.name, self.conditions = namespace, name, conditions
        failed = next((c for c in conditions if c.get("type") == "Failed"), {})
        super().__init__(
            f"TrainJob {namespace}/{name} failed: reason={failed.get('reason', 'unknown')}: "
            f"{failed.get('message', 'no message')} (kubectl -n {namespace} describe trainjob {name})"
        )


class TrainJobTimeout(TimeoutError):
    """The TrainJob did not finish within the step's timeout; it is left running."""

    def __init__(self, namespace: str, name: str, timeout_s: float, conditions: list[dict[str, Any]]):
        self.namespace, self.name, self.conditions = namespace, name, conditions
        seen = ", ".join(f"{c.get('type')}={c.get('status')} ({c.get('reason')})" for c in conditions) or "no conditions yet"
        super().__init__(
            f"TrainJob {namespace}/{name} did not finish within {timeout_s:.0f}s; last seen: {seen}. "
            f"It keeps running: kubectl -n {namespace} delete trainjob {name} to stop it"
        )


def build_options(req: TrainJobRequest) -> list[Any]:
    """The SDK options that carry the request's command, placement, volumes and env."""
    from kubeflow.trainer.options import (
        ActiveDeadlineSeconds,
        ContainerPatch,
        JobSetSpecPatch,
        JobSetTemplatePatch,
        JobSpecPatch,
        JobTemplatePatch,
        Labels,
        Name,
        PodSpecPatch,
        PodTemplatePatch,
        ReplicatedJobPatch,
        RuntimePatch,
        TrainerArgs,
        TrainerCommand,
        TrainingRuntimeSpecPatch,
    )

    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": req.gpu.shm_size}}]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if req.workspace_pvc:
        volumes.append({"name": "workspace", "persistentVolumeClaim": {"claimName": req.workspace_pvc}})
        mounts.append({"name": "workspace", "mountPath": req.workspace_path})
    secret_env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, (secret, key) in sorted(req.secret_env.items())
    ]
    pod = PodSpecPatch(
        node_selector=req.gpu.selector() or None,
        tolerations=list(req.gpu.tolerations) or None,
        volumes=volumes,
        containers=[ContainerPatch(name=NODE_CONTAINER, env=secret_env or None, volume_mounts=mounts)],
    )
    patch = RuntimePatch(
        training_runtime_spec=TrainingRuntimeSpecPatch(
            template=JobSetTemplatePatch(
                spec=JobSetSpecPatch(
                    replicated_jobs=[
                        ReplicatedJobPatch(
                            name=NODE_CONTAINER,
                            template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=pod))),
                        )
                    ]
                )
            )
        )
    )
    options: list[Any] = [TrainerCommand(command=list(req.command)), Labels(labels=dict(req.labels)), patch]
    if req.args:
        options.append(TrainerArgs(args=list(req.args)))
    if req.active_deadline_s:
        options.append(ActiveDeadlineSeconds(seconds=int(req.active_deadline_s)))
    if req.name:
        options.append(Name(name=req.name))
    return options


def job_conditions(api: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    """The TrainJob's status.conditions as plain dicts ([] when none yet)."""
    from kubernetes import client

    obj = client.CustomObjectsApi(api).get_namespaced_custom_object(
        TRAINER_GROUP, TRAINER_VERSION, namespace, "trainjobs", name
    )
    return list((obj.get("status") or {}).get("conditions") or [])


def launch_trainjob(
    req: TrainJobRequest,
    namespace: str,
    timeout_s: int = 48 * 3600,
    poll_s: int = 30,
    client_configuration: Any | None = None,
    config_file: str | None = None,
) -> TrainJobOutcome:
    """Create the TrainJob, wait for Complete/Failed within `timeout_s`, and report the outcome.

    Raises TrainJobFailed (with the Failed condition's reason/message) or TrainJobTimeout.
    `client_configuration` (a kubernetes.client.Configuration) or `config_file` select the cluster;
    by default the in-cluster service account is used, then ~/.kube/config.
    """
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import CustomTrainerContainer, TrainerClient

    if req.num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {req.num_nodes}")
    if poll_s >= timeout_s:
        raise ValueError(f"poll_s ({poll_s}) must be smaller than timeout_s ({timeout_s})")
    api = api_client(client_configuration, config_file)
    trainer_client = TrainerClient(
        KubernetesBackendConfig(namespace=namespace, client_configuration=api.configuration)
    )
    trainer = CustomTrainerContainer(
        image=req.image,
        num_nodes=req.num_nodes,
        resources_per_node=req.resources_per_node() or None,
        env=dict(req.env) or None,
    )
    started = time.monotonic()
    try:
        name = trainer_client.train(runtime=req.runtime, trainer=trainer, options=build_options(req))
    except RuntimeError as exc:
        # A retried pipeline step asks for the same (deterministic) name: wait on that job.
        if req.name is None or getattr(exc.__cause__, "status", None) != 409:
            raise
        name = req.name
    try:
        job = trainer_client.wait_for_job_status(
            name, status={"Complete", "Failed"}, timeout=int(timeout_s), polling_interval=int(poll_s)
        )
    except TimeoutError:
        raise TrainJobTimeout(namespace, name, timeout_s, job_conditions(api, namespace, name)) from None
    conditions = job_conditions(api, namespace, name)
    if job.status == "Failed":
        raise TrainJobFailed(namespace, name, conditions)
    return TrainJobOutcome(
        name=name, namespace=namespace, status=job.status, conditions=conditions, seconds=time.monotonic() - started
    )
