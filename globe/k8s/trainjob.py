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
from types import SimpleNamespace
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


def sdk_trainer(req: TrainJobRequest) -> Any:
    """The SDK's CustomTrainerContainer for the request (what `train(trainer=...)` receives)."""
    from kubeflow.trainer import CustomTrainerContainer

    return CustomTrainerContainer(
        image=req.image,
        num_nodes=req.num_nodes,
        resources_per_node=req.resources_per_node() or None,
        env=dict(req.env) or None,
    )


class _OfflineCustomObjects:
    """Stands in for kubernetes' CustomObjectsApi inside the SDK: answers the runtime lookup with a
    given TrainingRuntime manifest and records the TrainJob the SDK would create."""

    def __init__(self, runtime: dict[str, Any]):
        self.runtime, self.created = runtime, None

    def get_namespaced_custom_object(self, *args: Any, async_req: bool = False, **kwargs: Any):
        runtime = self.runtime
        return SimpleNamespace(get=lambda timeout=None: runtime) if async_req else runtime

    def create_namespaced_custom_object(self, group, version, namespace, plural, body, **kwargs: Any):
        self.created = body
        return body


def render_trainjob(req: TrainJobRequest, runtime: dict[str, Any], namespace: str = "globe") -> dict[str, Any]:
    """The TrainJob object `launch_trainjob` would create, without a cluster: the SDK's own
    `TrainerClient.train` path (runtime lookup, options, spec), with the API calls answered offline.

    `runtime` is the TrainingRuntime manifest (manifests/base/training-runtime.yaml). Tests run the
    rendered job's command with `node_launch`, so what was tested is what the cluster gets.
    """
    from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend

    backend = object.__new__(KubernetesBackend)  # no kube-config, no version check: nothing is contacted
    backend.custom_api = _OfflineCustomObjects(runtime)
    backend.core_api = None
    backend.namespace = namespace
    backend.train(runtime=req.runtime, trainer=sdk_trainer(req), options=build_options(req))
    job = backend.custom_api.created
    job.setdefault("metadata", {}).setdefault("namespace", namespace)
    return job


TRAINER_PORT = 29400  # Kubeflow Trainer's ContainerTrainerPort: PET_MASTER_PORT of torch runtimes


@dataclass(frozen=True)
class NodeLaunch:
    """What one node's container runs: argv, environment (plain values) and working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None


def node_launch(
    job: dict[str, Any],
    runtime: dict[str, Any],
    node_rank: int,
    master_addr: str | None = None,
    master_port: int = TRAINER_PORT,
    mounts: dict[str, str] | None = None,
) -> NodeLaunch:
    """The command and environment Kubeflow Trainer v2's torch plugin gives node `node_rank` of `job`.

    Mirrors the controller (pkg/runtime/framework/plugins/torch/torch.go, Trainer v2.x): the runtime
    container's plain env, the TrainJob's `trainer.env`, then `PET_NNODES` (numNodes),
    `PET_NPROC_PER_NODE` (numProcPerNode, default "auto": left "auto" when the node asks for a GPU
    resource, so torchrun starts one process per GPU; otherwise the node's CPU limit, then request),
    `PET_NODE_RANK` (the pod's completion index), `PET_MASTER_ADDR` (`<job>-node-0-0.<job>`, node 0's
    pod behind the job's headless service) and `PET_MASTER_PORT` (29400). torchrun reads the `PET_*`
    variables as its --nnodes/--nproc-per-node/--node-rank/--master-addr/--master-port.

    `master_addr`/`master_port` replace the cluster DNS name and port (e.g. 127.0.0.1 and a free port),
    and `mounts` maps container paths (the workspace) to local directories, in args, env and the
    working directory: the two things a cluster provides that a local stand-in must.
    Values from Secrets/ConfigMaps (valueFrom, envFrom) are not resolved here.
    """
    spec, trainer = job["spec"], job["spec"].get("trainer") or {}
    name = job["metadata"]["name"]
    container = _runtime_container(runtime)
    env: dict[str, str] = {e["name"]: str(e["value"]) for e in container.get("env") or [] if "value" in e}
    env.update({e["name"]: str(e["value"]) for e in trainer.get("env") or [] if "value" in e})
    nproc = trainer.get("numProcPerNode") or ((runtime["spec"].get("mlPolicy") or {}).get("torch") or {}).get(
        "numProcPerNode", "auto")
    if str(nproc) == "auto":
        resources = trainer.get("resourcesPerNode") or {}
        for kind in ("limits", "requests"):
            amounts = resources.get(kind) or {}
            if amounts and not any("gpu" in r.lower() for r in amounts) and "cpu" in amounts:
                nproc = max(1, int(float(str(amounts["cpu"]))))
                break
    env.update(
        PET_NNODES=str(trainer.get("numNodes") or (runtime["spec"].get("mlPolicy") or {}).get("numNodes", 1)),
        PET_NPROC_PER_NODE=str(nproc),
        PET_NODE_RANK=str(node_rank),
        PET_MASTER_ADDR=master_addr or f"{name}-{NODE_CONTAINER}-0-0.{name}",
        PET_MASTER_PORT=str(master_port),
    )
    argv = list(trainer.get("command") or container.get("command") or []) + list(
        trainer.get("args") if trainer.get("args") is not None else container.get("args") or [])
    cwd = container.get("workingDir")

    def local(value: str) -> str:
        for inside, outside in (mounts or {}).items():
            if value == inside or value.startswith(inside.rstrip("/") + "/"):
                return outside.rstrip("/") + value[len(inside.rstrip("/")):]
        return value

    return NodeLaunch(argv=[local(a) for a in argv], env={k: local(v) for k, v in env.items()},
                      cwd=local(cwd) if cwd else None)


def _runtime_container(runtime: dict[str, Any]) -> dict[str, Any]:
    for rjob in runtime["spec"]["template"]["spec"]["replicatedJobs"]:
        for c in rjob["template"]["spec"]["template"]["spec"]["containers"]:
            if c["name"] == NODE_CONTAINER:
                return c
    raise ValueError(f"the runtime has no {NODE_CONTAINER!r} container")


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
    from kubeflow.trainer import TrainerClient

    if req.num_nodes < 1:
        raise ValueError(f"num_nodes must be >= 1, got {req.num_nodes}")
    if poll_s >= timeout_s:
        raise ValueError(f"poll_s ({poll_s}) must be smaller than timeout_s ({timeout_s})")
    api = api_client(client_configuration, config_file)
    trainer_client = TrainerClient(
        KubernetesBackendConfig(namespace=namespace, client_configuration=api.configuration)
    )
    trainer = sdk_trainer(req)
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
