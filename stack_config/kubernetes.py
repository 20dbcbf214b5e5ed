"""`platform: kubernetes`: which topology, and how the program reaches each cluster.

The clusters are a named map like the Swarm nodes: each name is also the SPIRE `k8s_psat` cluster
name the server authorizes and the agents present, so it follows the Kubernetes label rule. A
cluster is reached through a kubeconfig file and context (one pulumi-kubernetes Provider per
cluster); only the path is stored, so credentials stay in the kubeconfig and never reach Pulumi
state.

Topologies (docs: the SPIRE design, research/spire.md sections 5-6):

- `basic`: one cluster; the SPIRE server (StatefulSet, PostgreSQL datastore) and its agents
  (DaemonSet, `k8s_psat`), workloads registered by `SpireEntry` resources.
- `enterprise`: two clusters, the root server of `spire.trustDomain` and a downstream server of
  its own trust domain, federated both ways, or nested under the root in one trust domain
  (`kubernetes.enterprise.nesting: spire`; stack_config/kubernetes_enterprise.py).
- `crd-free`: agents only, pointing at servers outside the cluster.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from stack_config.base import Hostname, Model, checked, formatted, port_number
from stack_config.kubernetes_enterprise import EnterpriseSettings
from stack_config.kubernetes_iam import IamSettings
from stack_config.kubernetes_ziti import ZitiOnKubernetes
from stack_config.systems import PemBundle

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def cluster_name_problem(v: str) -> str | None:
    if not _LABEL.match(v):
        return (
            "is not a cluster name: use 1-63 lowercase letters, digits or '-', starting and ending with a letter "
            "or digit (it is the k8s_psat cluster name and part of SPIFFE IDs)"
        )
    return None


ClusterName = Annotated[str, checked(cluster_name_problem, lambda v, p: f"{v!r} {p}")]


class KubernetesCluster(Model):
    """How the program reaches one cluster: a kubeconfig file and a context in it."""

    kubeconfig: str | None = Field(
        default=None,
        description="Path of the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config). Only the path is "
        "kept in Pulumi state; the credentials stay in the file.",
    )
    context: str | None = Field(
        default=None, min_length=1, description="Context of that kubeconfig (default: its current context)."
    )

    @field_validator("kubeconfig")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and (not v or "\n" in v or v.lstrip().startswith(("apiVersion", "{"))):
            raise ValueError(
                "give the path of a kubeconfig file, not its contents: the contents hold credentials, which "
                "must not sit in the stack file or in Pulumi state"
            )
        return v


class ExternalSpireServer(Model):
    """crd-free: the SPIRE server outside the cluster that the agents attest to."""

    address: Hostname = Field(description="Host name or IPv4 address the agents dial, e.g. spire.acme.net.")
    port: Annotated[int, port_number(8081)] = Field(
        default=8081, ge=1, le=65535, description="The server's agent API port."
    )
    trust_bundle: PemBundle = Field(
        description="The server's trust bundle (PEM): the agents bootstrap with it (`spire-server bundle show`)."
    )


class KubernetesSettings(Model):
    topology: Literal["basic", "enterprise", "crd-free"] = Field(
        default="basic",
        description="basic: one cluster runs the SPIRE server and agents; enterprise: upstream and downstream "
        "servers in two clusters with federation; crd-free: agents only, against external servers.",
    )
    clusters: dict[ClusterName, KubernetesCluster] = Field(
        min_length=1,
        description="Clusters by name (the k8s_psat cluster name): kubeconfig path and context of each. basic: "
        "exactly one; enterprise: exactly two.",
    )
    storage_class: str | None = Field(
        default=None,
        pattern=formatted(
            r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
            "a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or "
            "digit, e.g. fast-ssd",
        ),
        description="StorageClass of the SPIRE server's and its PostgreSQL's volumes (default: the cluster's default).",
    )
    server_storage: str = Field(
        default="1Gi", description="Size of the SPIRE server's data volume (its CA keys), a Kubernetes quantity."
    )
    database_storage: str = Field(
        default="2Gi", description="Size of the SPIRE datastore's PostgreSQL volume, a Kubernetes quantity."
    )

    skip_kubelet_verification: bool = Field(
        default=False,
        description="The agents' k8s workload attestor does not verify the kubelet's serving certificate (for "
        "local clusters whose kubelets serve self-signed certificates, such as kind). Refused in strict mode.",
    )
    sample_workloads: bool = Field(
        default=False,
        description="Run each workload as a sample Deployment in its k8s:ns namespace, as its k8s:sa service "
        "account, that fetches and renews its SVID through the Workload API (spiffe-helper).",
    )

    external_server: ExternalSpireServer | None = Field(
        default=None,
        description="crd-free: the SPIRE server the agents attest to (its address, port and trust bundle); "
        "registration entries reach it through spire.transport.",
    )

    enterprise: EnterpriseSettings | None = Field(
        default=None,
        description="enterprise: the upstream and downstream clusters, the downstream trust domain and the node "
        "addresses each cluster reaches the other's NodePorts at.",
    )

    iam: IamSettings | None = Field(
        default=None,
        description="Keycloak on CloudNativePG behind Istio STRICT mTLS in the topology's cluster (iam-system), "
        "with network policies, observability and an optional ArgoCD ApplicationSet; unset: SPIRE alone.",
    )
    ziti: ZitiOnKubernetes | None = Field(
        default=None,
        description="The OpenZiti controller and edge router in the namespace `ziti` (needs `iam`: the realm is "
        "their external JWT signer), wired to SPIRE and Keycloak as on Swarm; names and ports from `ziti`.",
    )

    @field_validator("server_storage", "database_storage")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if not _QUANTITY.match(v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity: write e.g. 1Gi or 500Mi")
        return v

    def problems(self) -> list[str]:
        """`kubernetes.<key>: ...` lines for what the topology cannot take."""
        if self.topology == "enterprise":
            return self._enterprise_problems()
        out = []
        if self.enterprise is not None:
            out.append(
                f"kubernetes.enterprise: only the enterprise topology has two sides, not {self.topology}: remove "
                "it (fix: `pulumi config rm --path 'kubernetes.enterprise'`)"
            )
        if len(self.clusters) != 1:
            out.append(
                f"kubernetes.clusters: the {self.topology} topology runs in exactly one cluster, not "
                f"{len(self.clusters)} ({sorted(self.clusters)}): keep one"
            )
        if self.topology == "crd-free" and self.external_server is None:
            out.append(
                "kubernetes.externalServer: required with the crd-free topology: the address, port and trust "
                "bundle of the SPIRE server the agents attest to "
                "(fix: `pulumi config set --path 'kubernetes.externalServer.address' <host>`)"
            )
        if self.topology == "basic" and self.external_server is not None:
            out.append(
                "kubernetes.externalServer: the basic topology runs its own server in the cluster: remove it "
                "(fix: `pulumi config rm --path 'kubernetes.externalServer'`)"
            )
        if self.ziti is not None:
            out += self.ziti.problems()
            if self.iam is None:
                out.append(
                    "kubernetes.ziti: needs kubernetes.iam: the Keycloak realm in the cluster is the controller's "
                    "external JWT signer (fix: set `kubernetes.iam.hostname`, or "
                    "`pulumi config rm --path 'kubernetes.ziti'`)"
                )
        return out

    def _enterprise_problems(self) -> list[str]:
        out: list[str] = []
        if len(self.clusters) != 2:
            out.append(
                f"kubernetes.clusters: the enterprise topology runs in exactly two clusters (upstream and "
                f"downstream), not {len(self.clusters)} ({sorted(self.clusters)})"
            )
        if self.enterprise is None:
            out.append(
                "kubernetes.enterprise: required with the enterprise topology: the upstream and downstream "
                "clusters, the downstream trust domain and each side's node address "
                "(fix: `pulumi config set --path 'kubernetes.enterprise.downstream.trustDomain' <name>`)"
            )
        if self.external_server is not None:
            out.append(
                "kubernetes.externalServer: the enterprise topology runs its own servers: remove it "
                "(fix: `pulumi config rm --path 'kubernetes.externalServer'`)"
            )
        return out
