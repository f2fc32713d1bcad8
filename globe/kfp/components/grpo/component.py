"""KFP components: GRPO of the policy (`globe.train.grpo`).

`grpo` trains inside the step's own (GPU) pod: one node, and what `globe pipeline run-local` runs.
`grpo_trainjob` launches a multi-node Kubeflow Trainer TrainJob and waits for it (globe.k8s.trainjob);
its own pod needs no GPU, it forwards the GPU settings to the job.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from globe.kfp.settings import CPU_IMAGE, TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def grpo(base: dict, grpo: dict, rewards: dict, dataset: Input[Dataset], sft_model: Input[Model],
         judge_model: Input[Model], run_id: str, model: Output[Model], metrics: Output[Metrics], summary: Output[Markdown]):
    """GRPO with the accuracy, localizability, grounding and format rewards, in this pod."""
    from globe.kfp import steps

    groups = {"base": base, "grpo": grpo, "rewards": rewards}
    result = steps.train("grpo", groups, dataset.path, sft_model.path, model.path, reward_model=judge_model.path, run_id=run_id)
    steps.publish(result, metrics, summary, "GRPO")


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def grpo_trainjob(base: dict, grpo: dict, rewards: dict, dataset: Input[Dataset], sft_model: Input[Model],
                  judge_model: Input[Model], run_id: str, namespace: str, image: str, num_nodes: int,
                  gpus_per_node: int, gpu_resource: str, gpu_node_selector: dict, gpu_tolerations: list,
                  timeout_s: int, model: Output[Model], metrics: Output[Metrics], summary: Output[Markdown]):
    """GRPO as a multi-node TrainJob (torchrun on the globe-grpo runtime); waits with a timeout."""
    from globe.kfp import steps

    groups = {"base": base, "grpo": grpo, "rewards": rewards}
    result = steps.grpo_trainjob(
        groups, dataset.path, sft_model.path, judge_model.path, model.path,
        run_id=run_id, namespace=namespace, image=image, num_nodes=num_nodes, gpus_per_node=gpus_per_node,
        gpu_resource=gpu_resource, node_selector=gpu_node_selector, tolerations=gpu_tolerations, timeout_s=timeout_s,
    )
    steps.publish(result, metrics, summary, "GRPO (TrainJob)")
