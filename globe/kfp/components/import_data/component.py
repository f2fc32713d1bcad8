"""KFP components: check the sources, import the photos shard by shard, join the shards.

`check_sources` runs first and alone: it fails the run before any work when the source or
benchmark spec cannot be read (missing CSV, empty image prefix, no such bucket, refused
credentials) or the DVC remote's bucket is not there. `import_shard` fans out over the shard list
it returns (GeoScenes is synthesized in its one shard); `benchmark_given` is the benchmark
branch's condition; `merge_imports` joins them and shows the skipped-row
report as Markdown; `import_benchmark` imports the optional benchmark (all test split).
"""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def check_sources(source: dict, benchmark: dict, num_shards: int, dvc_remote: str) -> List[int]:
    """Probe the source/benchmark CSVs and images and the DVC remote; the import's shard indices."""
    from globe.kfp import steps

    return steps.check_sources({"source": source, "benchmark": benchmark}, num_shards, dvc_remote)["shards"]


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def benchmark_given(benchmark: dict) -> bool:
    """Whether the `benchmark` spec names one (its format is not null): the benchmark branch's condition."""
    from globe.kfp import steps

    return steps.benchmark_given({"benchmark": benchmark})


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def import_shard(base: dict, source: dict, synth: dict, shard: int, num_shards: int, dataset: Output[Dataset]):
    """Import every `num_shards`-th row from `shard` on (only its photos are downloaded)."""
    from globe.kfp import steps

    steps.import_shard({"base": base, "source": source, "synth": synth}, shard, num_shards, dataset.path)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge_imports(shards: Input[List[Dataset]], dataset: Output[Dataset], metrics: Output[Metrics], report: Output[Markdown]):
    """Join the shards (records ordered by id); the skipped rows by reason, with examples, as Markdown."""
    from pathlib import Path

    from globe.data.source import report_markdown
    from globe.kfp import steps

    summary = steps.merge_imports([s.path for s in shards], dataset.path)
    steps.publish(summary, metrics, None)
    Path(report.path).write_text(report_markdown(summary, "Source dataset"), encoding="utf-8")


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def import_benchmark(benchmark: dict, dataset: Output[Dataset], metrics: Output[Metrics], report: Output[Markdown]):
    """Import the benchmark spec, every record in the test split; its skipped rows as Markdown."""
    from pathlib import Path

    from globe.data.source import report_markdown
    from globe.kfp import steps

    summary = steps.import_benchmark({"benchmark": benchmark}, dataset.path)
    steps.publish(summary, metrics, None)
    Path(report.path).write_text(report_markdown(summary, f"Benchmark {benchmark.get('format')}"), encoding="utf-8")
