"""KFP component: the run's lineage (dataset DVC hashes, images, run id, params) as one artifact."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def lineage(base: dict, source: dict, synth: dict, heldout: dict, distill: dict, verify: dict, rewards: dict, sft: dict,
            reward_model: dict, grpo: dict, eval: dict, benchmark: dict, register: dict, serve: dict,
            source_dvc: Input[Artifact], distilled_dvc: Input[Artifact], verified_dvc: Input[Artifact],
            heldout_dvc: Input[Artifact],
            run_id: str, data_image: str, train_image: str, grpo_image: str,
            lineage: Output[Artifact], summary: Output[Markdown]):
    """Write lineage.json: what evaluation shows in report.html and registration tags on the version."""
    import json
    from pathlib import Path

    from globe.kfp import steps

    groups = {"base": base, "source": source, "synth": synth, "heldout": heldout, "distill": distill, "verify": verify, "rewards": rewards,
              "sft": sft, "reward_model": reward_model, "grpo": grpo, "eval": eval, "benchmark": benchmark, "register": register,
              "serve": serve}
    found = steps.lineage(groups, {"source": source_dvc.path, "distilled": distilled_dvc.path, "verified": verified_dvc.path,
                                   "heldout": heldout_dvc.path},
                          run_id, {"data": data_image, "train": train_image, "grpo": grpo_image})
    Path(lineage.path).write_text(json.dumps(found, indent=2), encoding="utf-8")
    steps.publish({k: v for k, v in found.items() if k != "params"}, None, summary, "Lineage")
