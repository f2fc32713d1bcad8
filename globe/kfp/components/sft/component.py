"""KFP component: supervised warm start of the policy (`globe.train.sft`). A GPU step."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from globe.kfp.settings import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def sft(base: dict, sft: dict, dataset: Input[Dataset], init_model: Input[Model], run_id: str,
        model: Output[Model], metrics: Output[Metrics], summary: Output[Markdown]):
    """Fine-tune the base model on the verified reference reasonings."""
    from globe.kfp import steps

    result = steps.train("sft", {"base": base, "sft": sft}, dataset.path, init_model.path, model.path, run_id=run_id)
    steps.publish(result, metrics, summary, "SFT")
