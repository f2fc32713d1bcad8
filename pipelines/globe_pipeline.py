"""The GLOBE KFP pipeline: synth -> distill (ParallelFor over shards) -> verify -> SFT and reward model
-> GRPO (a multi-node Kubeflow Trainer TrainJob) -> evaluate -> register + promote -> deploy (KServe).

Parameters mirror params.yaml: one dict parameter per group (`synth`, `distill`, `verify`, `rewards`,
`sft`, `reward_model`, `grpo`, `eval`, `register`, plus `base`), whose defaults are the groups of the
params file the pipeline was compiled from, with its preset already applied. The remaining parameters
are cluster settings: shards, GPU count/type/placement, the TrainJob's nodes, the deploy target.

GPU steps (SFT, reward model, single-node GRPO, evaluation) carry their accelerator type and limit,
the GPU pool's node selector and tolerations, a /dev/shm memory emptyDir, S3 and MLflow settings from
the `globe-s3` Secret and `globe-config` ConfigMap as env, the workspace PVC and a timeout.

Compile:  globe pipeline compile --out pipelines/globe_pipeline.yaml   (checked in; a test checks drift)
(No `from __future__ import annotations` here: KFP reads the parameter annotations as types.)
"""


import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # components/ lives beside pipelines/, outside the globe package
    sys.path.insert(0, str(ROOT))

from kfp import dsl, kubernetes  # noqa: E402

from components.base_model.component import base_model  # noqa: E402
from components.deploy.component import deploy as deploy_component  # noqa: E402
from components.distill.component import distill_shard, merge_shards, shard_plan  # noqa: E402
from components.evaluate.component import evaluate  # noqa: E402
from components.grpo.component import grpo as grpo_local  # noqa: E402
from components.grpo.component import grpo_trainjob  # noqa: E402
from components.register.component import register as register_component  # noqa: E402
from components.reward_model.component import reward_model as reward_model_component  # noqa: E402
from components.sft.component import sft as sft_component  # noqa: E402
from components.synth.component import synth as synth_component  # noqa: E402
from components.verify.component import verify as verify_component  # noqa: E402
from globe.pipeline import settings as s  # noqa: E402

CONFIG_KEYS = ["AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACTS_DESTINATION"]


def with_cluster_env(task: dsl.PipelineTask, timeout_s: int = s.CPU_STEP_TIMEOUT_S) -> dsl.PipelineTask:
    """S3 credentials (Secret) and endpoints/MLflow URI (ConfigMap) as env, plus a pod timeout."""
    kubernetes.use_secret_as_env(task, s.S3_SECRET, secret_key_to_env=dict(s.S3_SECRET_ENV))
    kubernetes.use_config_map_as_env(task, s.CONFIG_MAP, config_map_key_to_env={k: k for k in CONFIG_KEYS})
    kubernetes.set_timeout(task, timeout_s)
    return task


def on_gpu(task: dsl.PipelineTask, gpus: Any, gpu_resource: Any, node_selector: Any, tolerations: Any) -> dsl.PipelineTask:
    """Place a step on the GPU node pool with shared memory and the checkpoint workspace."""
    task.set_accelerator_type(gpu_resource).set_accelerator_limit(gpus)
    task.set_cpu_request("4").set_memory_request("32Gi")
    kubernetes.add_node_selector_json(task, node_selector)
    kubernetes.add_toleration_json(task, tolerations)
    kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=s.SHM_SIZE)
    kubernetes.mount_pvc(task, pvc_name=s.WORKSPACE_PVC, mount_path=s.WORKSPACE_PATH)
    task.set_env_variable("GLOBE_WORKSPACE", s.WORKSPACE_PATH)
    return with_cluster_env(task, s.GPU_STEP_TIMEOUT_S)


def build_pipeline(groups: dict[str, dict[str, Any]], multi_node_grpo: bool = True):
    """The pipeline function with `groups` (resolved params groups) as parameter defaults.

    `multi_node_grpo=False` trains GRPO inside a step pod instead of a TrainJob; that is the variant
    `globe pipeline run-local` runs, because kfp.local cannot create Kubernetes objects.
    """
    g = {name: groups[name] for name in s.PIPELINE_GROUPS}

    @dsl.pipeline(name="globe", description="GLOBE: distill -> verify -> SFT/RM -> GRPO -> evaluate -> register -> deploy")
    def globe_pipeline(
        base: dict = g["base"],
        synth: dict = g["synth"],
        distill: dict = g["distill"],
        verify: dict = g["verify"],
        rewards: dict = g["rewards"],
        sft: dict = g["sft"],
        reward_model: dict = g["reward_model"],
        grpo: dict = g["grpo"],
        eval: dict = g["eval"],
        register: dict = g["register"],
        num_shards: int = 2,
        gpus_per_node: int = 1,
        gpu_resource: str = s.GPU_RESOURCE,
        gpu_node_selector: dict = s.GPU_NODE_SELECTOR,
        gpu_tolerations: list = s.GPU_TOLERATIONS,
        grpo_num_nodes: int = 1,
        grpo_image: str = s.TRAIN_IMAGE,
        trainjob_timeout_s: int = s.TRAINJOB_TIMEOUT_S,
        namespace: str = "globe",
        deploy: bool = True,
        isvc_name: str = "globe",
        deploy_wait_s: int = 900,
    ):
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        gpu = dict(gpus=gpus_per_node, gpu_resource=gpu_resource, node_selector=gpu_node_selector, tolerations=gpu_tolerations)

        data = with_cluster_env(synth_component(base=base, synth=synth)).set_display_name("synth")
        plan = shard_plan(num_shards=num_shards).set_display_name("shard plan")
        with dsl.ParallelFor(plan.output, name="shards") as shard:
            part = distill_shard(base=base, distill=distill, dataset=data.outputs["dataset"], shard=shard, num_shards=num_shards)
            with_cluster_env(part).set_display_name("distill shard")
        merged = merge_shards(shards=dsl.Collected(part.outputs["distilled"])).set_display_name("merge shards")
        verified = with_cluster_env(verify_component(base=base, verify=verify, dataset=merged.outputs["dataset"]))
        verified.set_display_name("verify")
        dataset = verified.outputs["verified"]

        start = with_cluster_env(base_model(base=base, sft=sft)).set_display_name("base model")
        policy = sft_component(base=base, sft=sft, dataset=dataset, init_model=start.outputs["model"], run_id=run_id)
        on_gpu(policy, **gpu).set_display_name("sft")
        # The judge learns localizable yes/no from the teachers' judgments: it needs the distilled data
        # (verification keeps localizable samples only).
        judge = reward_model_component(base=base, reward_model=reward_model, dataset=merged.outputs["dataset"],
                                       init_model=start.outputs["model"], run_id=run_id)
        on_gpu(judge, **gpu).set_display_name("reward model")

        if multi_node_grpo:
            trained = grpo_trainjob(
                base=base, grpo=grpo, rewards=rewards, dataset=dataset, sft_model=policy.outputs["model"],
                judge_model=judge.outputs["model"], run_id=run_id, namespace=namespace, image=grpo_image,
                num_nodes=grpo_num_nodes, gpus_per_node=gpus_per_node, gpu_resource=gpu_resource,
                gpu_node_selector=gpu_node_selector, gpu_tolerations=gpu_tolerations, timeout_s=trainjob_timeout_s,
            )
            kubernetes.mount_pvc(trained, pvc_name=s.WORKSPACE_PVC, mount_path=s.WORKSPACE_PATH)
            trained.set_env_variable("GLOBE_WORKSPACE", s.WORKSPACE_PATH)
            with_cluster_env(trained, s.TRAINJOB_TIMEOUT_S + 600).set_display_name("grpo (TrainJob)")
        else:
            trained = grpo_local(base=base, grpo=grpo, rewards=rewards, dataset=dataset, sft_model=policy.outputs["model"],
                                 judge_model=judge.outputs["model"], run_id=run_id)
            on_gpu(trained, **gpu).set_display_name("grpo")

        scored = evaluate(base=base, eval=eval, model=trained.outputs["model"], dataset=dataset)
        on_gpu(scored, **gpu).set_display_name("evaluate")
        registered = register_component(base=base, register=register, model=trained.outputs["model"], evaluation=scored.outputs["evaluation"])
        with_cluster_env(registered).set_caching_options(False).set_display_name("register + promote")
        with dsl.If(deploy == True, name="deploy enabled"):  # noqa: E712 (a pipeline condition, not Python)
            served = deploy_component(storage_uri=registered.outputs["champion_storage_uri"], namespace=namespace,
                                      name=isvc_name, wait_ready_s=deploy_wait_s)
            with_cluster_env(served).set_caching_options(False).set_display_name("deploy")

    return globe_pipeline
