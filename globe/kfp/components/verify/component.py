"""KFP component: the paper's four filters (`globe.data.verify`)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def verify(base: dict, verify: dict, dataset: Input[Dataset], verified: Output[Dataset], metrics: Output[Metrics], summary: Output[Markdown]):
    """Keep samples that are localizable, agree with the ground truth and each other, and are grounded."""
    from globe.kfp import steps

    report = steps.verify({"base": base, "verify": verify}, dataset.path, verified.path)
    steps.publish(report, metrics, summary, "Verification")
