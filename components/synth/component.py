"""KFP component: GeoScenes tiny-world dataset (`globe data synth`)."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from globe.pipeline.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def synth(base: dict, synth: dict, dataset: Output[Dataset], metrics: Output[Metrics], summary: Output[Markdown]):
    """Synthesize the GeoScenes dataset (records.jsonl + images/) from the `synth` params group."""
    from globe.pipeline import steps

    result = steps.synth({"base": base, "synth": synth}, dataset.path)
    steps.publish(result, metrics, summary, "GeoScenes dataset")
