"""One way to reach the cluster for every GLOBE step that talks to Kubernetes."""

from __future__ import annotations

from typing import Any


def api_client(client_configuration: Any | None = None, config_file: str | None = None) -> Any:
    """A kubernetes ApiClient: an explicit Configuration (tests, kmock) or kubeconfig file when
    given; otherwise the pod's service account in a cluster, then ~/.kube/config on a laptop.
    Never touches the process-wide default configuration."""
    from kubernetes import client, config

    if client_configuration is not None:
        return client.ApiClient(client_configuration)
    if config_file:
        return config.new_client_from_config(config_file=config_file)
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return client.ApiClient(configuration)
