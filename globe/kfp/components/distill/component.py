"""KFP components: multi-teacher distillation fanned out over shards (`globe.data.distill`).

`shard_plan` lists the shard indices a `dsl.ParallelFor` iterates over, `distill_shard` distills
every `num_shards`-th record, and `merge_shards` joins the collected shard datasets.
"""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def shard_plan(num_shards: int) -> List[int]:
    """The shard indices 0..num_shards-1."""
    from globe.data.shards import shard_indices

    return shard_indices(num_shards)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def distill_shard(base: dict, distill: dict, dataset: Input[Dataset], shard: int, num_shards: int, distilled: Output[Dataset]):
    """Ask every teacher about one shard of the dataset (resumable within the shard)."""
    from globe.kfp import steps

    steps.distill_shard({"base": base, "distill": distill}, dataset.path, shard, num_shards, distilled.path)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge_shards(shards: Input[List[Dataset]], dataset: Output[Dataset], metrics: Output[Metrics], summary: Output[Markdown]):
    """Join the distilled shards into one dataset (records ordered by id)."""
    from globe.kfp import steps

    steps.publish(steps.merge_distilled([s.path for s in shards], dataset.path), metrics, summary, "Distilled dataset")
