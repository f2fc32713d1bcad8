"""KFP component: the model SFT and the reward model start from (tiny model, or `sft.model`)."""

from kfp import dsl
from kfp.dsl import Model, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def base_model(base: dict, sft: dict, model: Output[Model]):
    """Build the tiny offline VLM (`globe.tiny.model.build_tiny`) unless `sft.model` names a real one."""
    from globe.kfp import steps

    steps.base_model({"base": base, "sft": sft}, model.path)
