"""KFP components: the main evaluation (`globe.kfp.steps.evaluate`: base, SFT and GRPO on the
held-out sets with the paired GRPO - SFT comparison, as `dvc repro`'s evaluate stage) and the
policy on the optional benchmark (`globe.kfp.steps.evaluate_benchmark`)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from globe.kfp.settings import TRAIN_IMAGE


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate(base: dict, source: dict, eval: dict, compare: str, base_model: Input[Model], sft_model: Input[Model],
             grpo_model: Input[Model], in_domain: Input[Dataset], shifted: Input[Dataset], lineage: Input[Artifact],
             evaluation: Output[Artifact], metrics: Output[Metrics], report: Output[HTML], summary: Output[Markdown]):
    """Every model on the unverified held-out sets (in_domain, and shifted in the tiny world) and the
    paired delta `compare`, in the layout of dvc's results/evaluate/; the gate reads in_domain/grpo."""
    import json
    import shutil
    from pathlib import Path

    from globe.kfp import steps
    from globe.mlflow_registry import flatten_numbers

    groups = {"base": base, "source": source, "eval": eval}
    found = json.loads(Path(lineage.path).read_text(encoding="utf-8"))
    models = {"base": base_model.path, "sft": sft_model.path, "grpo": grpo_model.path}
    splits = {"in_domain": in_domain.path, "shifted": shifted.path}
    result = steps.evaluate(groups, models, splits, evaluation.path, compare=compare, lineage=found)
    shutil.copyfile(Path(evaluation.path) / "report.html", report.path)
    shutil.copyfile(Path(evaluation.path) / "summary.md", summary.path)  # every model, the deltas with 95% intervals
    steps.publish(flatten_numbers(result), metrics, None)


@dsl.component(base_image=TRAIN_IMAGE, install_kfp_package=False)
def evaluate_benchmark(base: dict, benchmark: dict, eval: dict, model: Input[Model], dataset: Input[Dataset],
                       lineage: Input[Artifact], evaluation: Output[Artifact], metrics: Output[Metrics],
                       report: Output[HTML], summary: Output[Markdown]):
    """Accuracy within 1/25/200/750/2500 km and city/country match of the policy on the imported
    benchmark's test split; the HTML report, with the run's lineage, shows in the UI."""
    import json
    import shutil
    from pathlib import Path

    from globe.kfp import steps

    groups = {"base": base, "benchmark": benchmark, "eval": eval}
    found = json.loads(Path(lineage.path).read_text(encoding="utf-8"))
    result = steps.evaluate_benchmark(groups, model.path, dataset.path, evaluation.path, lineage=found)
    shutil.copyfile(Path(evaluation.path) / "report.html", report.path)
    shutil.copyfile(Path(evaluation.path) / "summary.md", summary.path)  # the metric table with 95% intervals
    steps.publish(result, metrics, None)
