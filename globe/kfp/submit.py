"""`globe pipeline submit`: compile with the given params and start a run on a KFP v2 backend."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from globe.kfp.build import PipelineError, compile_pipeline


def submit(
    params: Any,
    host: str,
    *,
    arguments: dict[str, Any] | None = None,
    experiment: str = "globe",
    run_name: str | None = None,
    namespace: str | None = None,
    service_account: str | None = "globe-pipeline",
    existing_token: str | None = None,
    registry: str | None = None,
) -> dict[str, Any]:
    """Compile the pipeline with `params` as its defaults and create a run; returns ids and the URL.

    Runs execute as `service_account` (manifests/base/rbac.yaml: may create TrainJobs and
    InferenceServices and nothing else). `existing_token` is a bearer token for an authenticated
    KFP endpoint; it is passed to the client only, never stored. `registry`: where the steps' images
    are pulled from (`globe.kfp.build.with_registry`).
    """
    import kfp

    try:
        client = kfp.Client(host=host, namespace=namespace, existing_token=existing_token)
    except Exception as exc:  # the client probes the endpoint while connecting
        raise PipelineError(f"cannot reach the KFP API at {host}: {exc}") from exc
    with tempfile.TemporaryDirectory() as tmp:
        package = compile_pipeline(params, Path(tmp) / "globe_pipeline.yaml", registry=registry)
        try:
            result = client.create_run_from_pipeline_package(
                str(package),
                arguments=arguments or {},
                run_name=run_name,
                experiment_name=experiment,
                namespace=namespace,
                service_account=service_account,
            )
        except Exception as exc:
            raise PipelineError(f"KFP at {host} refused the run: {exc}") from exc
    run_id = getattr(result, "run_id", None)
    return {"run_id": run_id, "url": f"{host.rstrip('/')}/#/runs/details/{run_id}", "experiment": experiment}
