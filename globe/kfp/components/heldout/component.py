"""KFP component: the held-out test sets the models are scored and gated on (`globe.kfp.steps.heldout_sets`)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def heldout(base: dict, source: dict, synth: dict, heldout: dict, dataset: Input[Dataset], test_set: Output[Dataset],
            shifted: Output[Dataset]):
    """Unverified held-out images, as dvc's heldout stage makes them: GeoScenes of an unseen seed in
    the training and the shifted rendering (tiny world), or the imported source's test split (and an
    empty `shifted`, which evaluation does not read)."""
    from globe.kfp import steps

    groups = {"base": base, "source": source, "synth": synth, "heldout": heldout}
    steps.heldout_sets(groups, dataset.path, test_set.path, shifted.path)
