"""KFP component: the localizability judge, a LoRA SFT (`globe.train.reward_model`). A GPU step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from globe.kfp.settings import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def reward_model(base: dict, reward_model: dict, dataset: Input[Dataset], init_model: Input[Model], run_id: str,
                 model: Output[Model], metrics: Output[Metrics], summary: Output[Markdown]):
    """Train the yes/no localizability judge whose P(yes) is GRPO's localizability reward."""
    from globe.kfp import steps

    groups = {"base": base, "reward_model": reward_model}
    result = steps.train("reward-model", groups, dataset.path, init_model.path, model.path, run_id=run_id)
    steps.publish(result, metrics, summary, "Reward model")
