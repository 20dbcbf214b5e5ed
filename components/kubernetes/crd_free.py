"""AgentsOnlyTopology (`kubernetes.topology: crd-free`): only SPIRE agents in the cluster, attesting
to a server outside it, for regulated environments that allow no controller and no custom
resource in the cluster.

What the cluster gets: `spire-system` (privileged: the agent DaemonSet and the SPIFFE CSI driver,
as in the basic topology, pointed at `kubernetes.externalServer` and trusting its bundle), the
workload namespaces (restricted), and for the external server only an identity: the
`spire-server` service account with the k8s_psat reviewer role (`create tokenreviews`, `get pods`,
`get nodes`), whose token the server's `kube_config_file` holds. No CRD, no controller, no role
that writes anything in the cluster.

Registration is the design's "custom registration service" as code: the node alias and one
`SpireEntry` per workload, sent to the external server through `spire.transport`, as with
platform external.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes.basic import (
    agents_of,
    alias_entry,
    namespaces,
    sample_workloads,
    workload_namespaces,
    workloads_side,
)
from components.kubernetes.spire_agents import SpireAgents
from components.kubernetes.spire_config import SYSTEM_NAMESPACE
from components.kubernetes.spire_server import psat_reviewer
from dynamic_providers.spire.provider import SpireEntry
from stack_config import Images, KubernetesSettings, Workload


@dataclass(frozen=True)
class AgentsOnlyTopologyArgs:
    trust_domain: str
    kubernetes: KubernetesSettings  # externalServer, kubelet verification, sample workloads
    images: Images
    workloads: Mapping[str, Workload]
    cluster: str
    # How SpireEntry reaches the external server: `spire.transport` (components/spire_connection.py).
    connection: Mapping[str, Any]


class AgentsOnlyTopology(pulumi.ComponentResource):
    """Agents, CSI driver, the external server's reviewer identity, the node alias, sample workloads."""

    namespaces: dict[str, k8s.core.v1.Namespace]
    agents: SpireAgents
    alias_entry: SpireEntry
    alias_id: str
    connection: dict[str, Any]
    server_address: str
    bundle_pem: str

    def __init__(self, name: str, args: AgentsOnlyTopologyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:AgentsOnlyTopology", name, None, opts)
        cluster, k8s_conf, td = args.cluster, args.kubernetes, args.trust_domain
        if k8s_conf.external_server is None:
            raise AssertionError("stack_config refuses crd-free without kubernetes.externalServer")
        server = k8s_conf.external_server
        samples = sample_workloads(k8s_conf, args.workloads)
        levels: dict[str, sec.PodSecurityLevel] = {SYSTEM_NAMESPACE: "privileged"}
        levels |= {ns: "restricted" for ns in workload_namespaces(samples)}
        self.namespaces, names = namespaces(name, levels, self)
        self.bundle_pem = server.trust_bundle
        self.agents = agents_of(name, td, k8s_conf, args.images, cluster, names[SYSTEM_NAMESPACE], server.trust_bundle,
                                self)
        psat_reviewer(f"{name}-server", names[SYSTEM_NAMESPACE], self)
        workloads_side(name, samples, args.images.spiffe_helper, names, self.agents, self)
        self.connection = dict(args.connection)
        self.alias_entry, self.alias_id = alias_entry(name, td, cluster, self.connection, self)
        self.server_address = f"{server.address}:{server.port}"
        self.register_outputs({"alias_id": self.alias_id, "server_address": self.server_address})
