"""KFP component: serve the champion as the `globe` KServe InferenceService (create or patch).

Side-effecting (the cluster changes), so the pipeline never caches it.
"""

from kfp import dsl
from kfp.dsl import Markdown, Output

from globe.kfp.settings import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def deploy(storage_uri: str, namespace: str, name: str, wait_ready_s: int, summary: Output[Markdown]) -> str:
    """Point the InferenceService at `storage_uri`; returns its URL once Ready (or "" when not waited)."""
    from globe.kfp import steps

    result = steps.deploy(storage_uri, namespace, name, wait_ready_s)
    steps.publish(result, None, summary, "Deployment")
    return result.get("url") or ""
