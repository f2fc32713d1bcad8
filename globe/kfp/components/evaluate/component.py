"""KFP component: benchmark the trained policy (`globe.evaluate.runner.run_benchmark`)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from globe.kfp.settings import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate(base: dict, source: dict, benchmark: dict, eval: dict, on: str, model: Input[Model], dataset: Input[Dataset],
             lineage: Input[Artifact], evaluation: Output[Artifact], metrics: Output[Metrics], report: Output[HTML],
             summary: Output[Markdown]):
    """Accuracy within 1/25/200/750/2500 km and city/country match on the dataset's test split
    (`on`: heldout, the unverified set the gate uses, or benchmark); the HTML report, with the
    run's lineage, shows in the UI."""
    import json
    import shutil
    from pathlib import Path

    from globe.kfp import steps

    groups = {"base": base, "source": source, "benchmark": benchmark, "eval": eval}
    found = json.loads(Path(lineage.path).read_text(encoding="utf-8"))
    result = steps.evaluate(groups, model.path, dataset.path, evaluation.path, on=on, lineage=found)
    shutil.copyfile(Path(evaluation.path) / "report.html", report.path)
    shutil.copyfile(Path(evaluation.path) / "summary.md", summary.path)  # the metric table with 95% intervals
    steps.publish(result, metrics, None)
