"""KFP component: the held-out test set the model is scored and gated on (`globe.kfp.steps.heldout`)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def heldout(base: dict, source: dict, synth: dict, heldout: dict, dataset: Input[Dataset], test_set: Output[Dataset]):
    """Unverified held-out images, as `dvc repro` scores: GeoScenes of an unseen seed (tiny world)
    or the imported source's test split."""
    from globe.kfp import steps

    groups = {"base": base, "source": source, "synth": synth, "heldout": heldout}
    steps.heldout(groups, dataset.path, test_set.path)
