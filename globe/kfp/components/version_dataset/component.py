"""KFP component: record a dataset in DVC's format on the DVC remote; the `.dvc` file is the output."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def version_dataset(dataset: Input[Dataset], name: str, remote: str, run_id: str, dvc_file: Output[Artifact],
                    metrics: Output[Metrics], summary: Output[Markdown]) -> str:
    """`dvc add` + `dvc push` of the dataset; returns the md5 of its `.dir` manifest."""
    from pathlib import Path

    from globe.data.versioning import fetch_commands
    from globe.kfp import steps

    version = steps.version_dataset(dataset.path, name, remote, dvc_file.path, run_id)
    dvc_file.metadata.update({k: version[k] for k in ("md5", "nfiles", "size", "remote")})
    steps.publish({"nfiles": version["nfiles"], "size_bytes": version["size"], "objects_pushed": version["pushed"]}, metrics, None)
    metrics.log_metric("dvc_md5", version["md5"])  # a string: the KFP UI's scalar table shows it as it is
    fetch = "\n".join(fetch_commands(name, remote))
    Path(summary.path).write_text(
        f"## Dataset `{name}` on DVC\n\n| md5 (.dir) | files | bytes | remote |\n|---|---:|---:|---|\n"
        f"| `{version['md5']}` | {version['nfiles']} | {version['size']} | `{remote}` |\n\n"
        f"Fetch exactly this dataset anywhere: download this step's `dvc_file` artifact as `{name}.dvc`, then\n\n"
        f"```bash\n{fetch}\n```\n", encoding="utf-8")
    return version["md5"]
