"""The GLOBE KFP pipeline: check sources -> import (ParallelFor over shards) -> distill (ParallelFor)
-> verify -> SFT and reward model -> GRPO (a multi-node Kubeflow Trainer TrainJob) -> evaluate the base,
SFT and GRPO models on the unverified held-out sets with the paired GRPO - SFT delta (as `dvc repro`'s
evaluate stage, `globe.evaluate.suite`) -> register + promote on in_domain/grpo -> deploy (KServe); the
source, distilled, verified and held-out datasets are versioned with DVC on the way, and an optional
benchmark is imported, evaluated and attached to the version.

Parameters mirror params.yaml: one dict parameter per group (`source`, `synth`, `heldout`, `distill`, `verify`,
`rewards`, `sft`, `reward_model`, `grpo`, `eval`, `benchmark`, `register`, `serve`, plus `base`), whose
defaults are the groups of the params file the pipeline was compiled from, with its preset already
applied. `source` says where the photos come from: `{"format": "geoscenes"}` (the tiny world), or
an import spec such as `{"format": "im2gps3k", "csv": "s3://...", "images": "s3://..."}`. The
remaining parameters are cluster settings: shards, the DVC remote, GPU count/type/placement, the
TrainJob's nodes, the deploy target.

`check sources` runs first and everything waits for it, so a bad spec fails the run before any work.
GPU steps (SFT, reward model, single-node GRPO, evaluation) carry their accelerator type and limit,
the GPU pool's node selector and tolerations, a /dev/shm memory emptyDir, S3 and MLflow settings from
the `globe-s3` Secret and `globe-config` ConfigMap as env, the workspace PVC and a timeout.

The components are globe/kfp/components/<name>/component.py. pipelines/globe_pipeline.py is the front-end
that builds this from params.yaml (for `kfp dsl compile` and the KFP UI); globe.kfp.build compiles it.

Compile:  globe pipeline compile --out pipelines/globe_pipeline.yaml   (checked in; a test checks drift)
(No `from __future__ import annotations` here: KFP reads the parameter annotations as types.)
"""

from typing import Any

from kfp import dsl, kubernetes

from globe.kfp.components.base_model.component import base_model
from globe.kfp.components.deploy.component import deploy as deploy_component
from globe.kfp.components.distill.component import distill_shard, merge_shards, shard_plan
from globe.evaluate.suite import COMPARISON, GATED
from globe.kfp.components.evaluate.component import evaluate, evaluate_benchmark
from globe.kfp.components.grpo.component import grpo as grpo_local
from globe.kfp.components.grpo.component import grpo_trainjob
from globe.kfp.components.heldout.component import heldout as heldout_component
from globe.kfp.components.import_data.component import benchmark_given, check_sources, import_benchmark, import_shard, merge_imports
from globe.kfp.components.lineage.component import lineage as lineage_component
from globe.kfp.components.register.component import attach_benchmark
from globe.kfp.components.register.component import register as register_component
from globe.kfp.components.reward_model.component import reward_model as reward_model_component
from globe.kfp.components.sft.component import sft as sft_component
from globe.kfp.components.verify.component import verify as verify_component
from globe.kfp.components.version_dataset.component import version_dataset
from globe.kfp import settings as s

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


def build_pipeline(groups: dict[str, dict[str, Any]], multi_node_grpo: bool = True, runtime: str | None = None):
    """The pipeline function with `groups` (resolved params groups) as parameter defaults.

    `multi_node_grpo=False` trains GRPO inside a step pod instead of a TrainJob; that is the variant
    `globe pipeline run-local` runs, because kfp.local cannot create Kubernetes objects (nor merge
    artifacts of two `dsl.If` branches with `dsl.OneOf`, so the variant is chosen here).

    `runtime` set means the kfp.local variant: the lineage records it instead of the images (no
    containers run), and the benchmark branch's evaluate gets no GPU placement, which kfp.local
    ignores anyway and cannot resolve from pipeline parameters inside a `dsl.If`.
    """
    g = {name: groups[name] for name in s.PIPELINE_GROUPS}
    # the GPUs the training groups are planned for (`num_processes`, GPUs x nodes), on one node by default
    planned_gpus = max(int(groups[stage].get("num_processes") or 1) for stage in ("sft", "reward_model", "grpo"))

    @dsl.pipeline(name="globe", description="GLOBE: import -> distill -> verify -> SFT/RM -> GRPO -> evaluate -> register -> deploy")
    def globe_pipeline(
        base: dict = g["base"],
        source: dict = g["source"],
        synth: dict = g["synth"],
        heldout: dict = g["heldout"],
        distill: dict = g["distill"],
        verify: dict = g["verify"],
        rewards: dict = g["rewards"],
        sft: dict = g["sft"],
        reward_model: dict = g["reward_model"],
        grpo: dict = g["grpo"],
        eval: dict = g["eval"],
        benchmark: dict = g["benchmark"],
        register: dict = g["register"],
        serve: dict = g["serve"],
        num_shards: int = 2,
        dvc_remote: str = s.DVC_REMOTE,
        gpus_per_node: int = planned_gpus,
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
        """GLOBE's stages on Kubeflow; the group parameters are params.yaml's groups, resolved.

        Args:
            base: params.yaml `base` group: seed, data and results folders (the preset is already applied).
            source: where the photos come from: {"format": "geoscenes"} (the tiny world) or an import spec with csv and images (local or s3://).
            synth: the GeoScenes tiny world: images, seed, size, rendering (used when source.format is geoscenes).
            heldout: the unverified held-out test set the model is evaluated and gated on (tiny world: n, seed, shifted rendering).
            distill: the teacher engines (OpenAI-compatible endpoints or stand-ins), concurrency, timeouts, retries.
            verify: the paper's filters: max_km, min_teacher_agreement, grounding_min_share, grounding_judge.
            rewards: GRPO reward weights (accuracy, localizability, grounding, format, geodesic) and the judge's failure budget.
            sft: SFT training settings (TRL SFTConfig names; `globe config show --stage sft` lists each key).
            reward_model: localizability judge training settings (TRL SFTConfig names, LoRA).
            grpo: GRPO training settings (TRL GRPOConfig names: generations, temperature, beta, vLLM, ...).
            eval: evaluation settings: batch size, max_new_tokens, temperature, bootstrap, samples.
            benchmark: an optional benchmark to import and evaluate besides the held-out set ({"format": null} = none).
            register: MLflow model name and the promotion gate: metric, higher_is_better, min_improvement, min_value (floor).
            serve: the serving settings registered with the model (limits, batching, decoding, samples); the deployed predictor uses them.
            num_shards: parallel import and distillation shards (ParallelFor).
            dvc_remote: DVC remote (s3://bucket/prefix) the source, distilled, verified and benchmark datasets are versioned in.
            gpus_per_node: GPUs per training and evaluation pod and per TrainJob node (default: the groups' num_processes).
            gpu_resource: the Kubernetes GPU resource name, e.g. nvidia.com/gpu.
            gpu_node_selector: node selector of the GPU pool.
            gpu_tolerations: tolerations of the GPU pool.
            grpo_num_nodes: nodes of the GRPO TrainJob (torchrun across nodes).
            grpo_image: the image the GRPO TrainJob's pods run.
            trainjob_timeout_s: how long the GRPO TrainJob may run, in seconds.
            namespace: namespace of the TrainJob and the InferenceService.
            deploy: deploy the champion to KServe after promotion.
            isvc_name: name of the KServe InferenceService.
            deploy_wait_s: how long to wait for the InferenceService to become ready, in seconds.
        """
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        gpu = dict(gpus=gpus_per_node, gpu_resource=gpu_resource, node_selector=gpu_node_selector, tolerations=gpu_tolerations)

        def versioned(dataset: Any, name: str) -> dsl.PipelineTask:
            task = version_dataset(dataset=dataset, name=name, remote=dvc_remote, run_id=run_id)
            return with_cluster_env(task).set_display_name(f"dvc: {name}")

        checked = with_cluster_env(check_sources(source=source, benchmark=benchmark, num_shards=num_shards, dvc_remote=dvc_remote))
        checked.set_caching_options(False).set_display_name("check sources")  # buckets and credentials change
        with dsl.ParallelFor(checked.output, name="import-shards") as shard:
            piece = import_shard(base=base, source=source, synth=synth, shard=shard, num_shards=num_shards)
            with_cluster_env(piece).set_display_name("import shard")
        imported = merge_imports(shards=dsl.Collected(piece.outputs["dataset"])).set_display_name("import")
        source_version = versioned(imported.outputs["dataset"], "source")

        plan = shard_plan(num_shards=num_shards).after(checked).set_display_name("distill plan")
        with dsl.ParallelFor(plan.output, name="distill-shards") as part_index:
            part = distill_shard(base=base, distill=distill, dataset=imported.outputs["dataset"], shard=part_index, num_shards=num_shards)
            with_cluster_env(part).set_display_name("distill shard")
        merged = merge_shards(shards=dsl.Collected(part.outputs["distilled"])).set_display_name("merge shards")
        distilled_version = versioned(merged.outputs["dataset"], "distilled")
        verified = with_cluster_env(verify_component(base=base, verify=verify, dataset=merged.outputs["dataset"]))
        verified.set_display_name("verify")
        dataset = verified.outputs["verified"]
        verified_version = versioned(dataset, "verified")

        start = with_cluster_env(base_model(base=base, sft=sft).after(checked)).set_display_name("base model")
        policy = sft_component(base=base, sft=sft, dataset=dataset, init_model=start.outputs["model"], run_id=run_id)
        on_gpu(policy, **gpu).set_display_name("sft")
        # The judge learns localizable yes/no from the teachers' judgments: it needs the distilled data
        # (verification keeps localizable samples only).
        judge = reward_model_component(base=base, reward_model=reward_model, dataset=merged.outputs["dataset"],
                                       init_model=start.outputs["model"], run_id=run_id)
        on_gpu(judge, **gpu).set_display_name("reward model")

        if multi_node_grpo:
            trained = grpo_trainjob(
                base=base, grpo=grpo, rewards=rewards, dataset=merged.outputs["dataset"], sft_model=policy.outputs["model"],
                judge_model=judge.outputs["model"], run_id=run_id, namespace=namespace, image=grpo_image,
                num_nodes=grpo_num_nodes, gpus_per_node=gpus_per_node, gpu_resource=gpu_resource,
                gpu_node_selector=gpu_node_selector, gpu_tolerations=gpu_tolerations, timeout_s=trainjob_timeout_s,
            )
            kubernetes.mount_pvc(trained, pvc_name=s.WORKSPACE_PVC, mount_path=s.WORKSPACE_PATH)
            trained.set_env_variable("GLOBE_WORKSPACE", s.WORKSPACE_PATH)
            with_cluster_env(trained, s.TRAINJOB_TIMEOUT_S + 600).set_display_name("grpo (TrainJob)")
        else:
            trained = grpo_local(base=base, grpo=grpo, rewards=rewards, dataset=merged.outputs["dataset"],
                                 sft_model=policy.outputs["model"],
                                 judge_model=judge.outputs["model"], run_id=run_id)
            on_gpu(trained, **gpu).set_display_name("grpo")

        # scored and gated on unverified held-out images, as dvc repro does (tests/test_pipeline.py compares the two)
        test_set = heldout_component(base=base, source=source, synth=synth, heldout=heldout, dataset=imported.outputs["dataset"])
        with_cluster_env(test_set).set_display_name("held-out test sets")
        heldout_version = versioned(test_set.outputs["test_set"], "heldout")

        images = dict(data_image=s.CPU_IMAGE, train_image=s.TRAIN_IMAGE, grpo_image=grpo_image if multi_node_grpo else s.TRAIN_IMAGE)
        if runtime is not None:
            images = dict.fromkeys(images, runtime)
        lineage = lineage_component(
            base=base, source=source, synth=synth, heldout=heldout, distill=distill, verify=verify, rewards=rewards, sft=sft,
            reward_model=reward_model, grpo=grpo, eval=eval, benchmark=benchmark, register=register, serve=serve,
            source_dvc=source_version.outputs["dvc_file"], distilled_dvc=distilled_version.outputs["dvc_file"],
            verified_dvc=verified_version.outputs["dvc_file"], heldout_dvc=heldout_version.outputs["dvc_file"],
            run_id=run_id, **images,
        ).set_display_name("lineage")
        record = lineage.outputs["lineage"]

        # dvc's evaluate stage: base, SFT and GRPO on the same held-out sets, GRPO - SFT paired; the base
        # model is the one SFT and the reward model start from (the tiny model built here, or sft.model)
        scored = evaluate(base=base, source=source, eval=eval, compare=COMPARISON, base_model=start.outputs["model"],
                          sft_model=policy.outputs["model"], grpo_model=trained.outputs["model"],
                          in_domain=test_set.outputs["test_set"], shifted=test_set.outputs["shifted"], lineage=record)
        on_gpu(scored, **gpu).set_display_name("evaluate")
        # dvc's register stage: the GRPO model, gated on its in-domain run (globe.evaluate.suite.GATED)
        registered = register_component(base=base, register=register, model=trained.outputs["model"],
                                        evaluation=scored.outputs["evaluation"], gated="/".join(GATED), lineage=record)
        with_cluster_env(registered).set_caching_options(False).set_display_name("register + promote")

        given = benchmark_given(benchmark=benchmark).after(checked).set_display_name("benchmark given?")
        with dsl.If(given.output == True, name="benchmark given"):  # noqa: E712 (a pipeline condition)
            bench = with_cluster_env(import_benchmark(benchmark=benchmark)).set_display_name("import benchmark")
            bench_version = versioned(bench.outputs["dataset"], "benchmark")
            bench_scored = evaluate_benchmark(base=base, benchmark=benchmark, eval=eval, model=trained.outputs["model"],
                                              dataset=bench.outputs["dataset"], lineage=record)
            (bench_scored if runtime is not None else on_gpu(bench_scored, **gpu)).set_display_name("evaluate benchmark")
            attached = attach_benchmark(base=base, benchmark=benchmark, register=register,
                                        version=registered.outputs["version"], evaluation=bench_scored.outputs["evaluation"],
                                        dvc_file=bench_version.outputs["dvc_file"])
            with_cluster_env(attached).set_caching_options(False).set_display_name("benchmark -> registry")

        with dsl.If(deploy == True, name="deploy enabled"):  # noqa: E712 (a pipeline condition, not Python)
            served = deploy_component(storage_uri=registered.outputs["champion_storage_uri"], namespace=namespace,
                                      name=isvc_name, wait_ready_s=deploy_wait_s)
            with_cluster_env(served).set_caching_options(False).set_display_name("deploy")

    return globe_pipeline
