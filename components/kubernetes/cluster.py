"""One pulumi-kubernetes Provider per cluster of `kubernetes.clusters`.

The provider gets the kubeconfig's path and the context, never the file's contents: the
credentials stay in the file the operator controls and out of Pulumi state. Every object of a
cluster is created through its provider (`opts=ResourceOptions(provider=...)`, inherited by the
children of the components that take it as parent), so no object can land in the ambient
kubeconfig's current cluster by accident.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from stack_config import KubernetesCluster


def cluster_provider(name: str, cluster: KubernetesCluster) -> k8s.Provider:
    """The provider of cluster `name` (`k8s-<name>`)."""
    return k8s.Provider(
        f"k8s-{name}",
        kubeconfig=cluster.kubeconfig,
        context=cluster.context,
        # An unreachable cluster is an error, never a reason to drop its objects from the state.
        delete_unreachable=False,
        opts=pulumi.ResourceOptions(),
    )
