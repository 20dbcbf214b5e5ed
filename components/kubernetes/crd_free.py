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

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes.basic import agents_of, alias_entry, namespaces, workload_namespaces, workloads_side
from components.kubernetes.spire_agents import SpireAgents
from components.kubernetes.spire_config import SYSTEM_NAMESPACE
from components.kubernetes.spire_server import psat_reviewer
from components.spire_connection import spire_connection
from dynamic_providers.spire.provider import SpireEntry
from stack_config import StackConfig


@dataclass(frozen=True)
class AgentsOnlyTopologyArgs:
    config: StackConfig
    cluster: str


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
        config, cluster = args.config, args.cluster
        k8s_conf = config.kubernetes
        if k8s_conf is None or k8s_conf.external_server is None:
            raise AssertionError("stack_config refuses crd-free without kubernetes.externalServer")
        server = k8s_conf.external_server
        levels: dict[str, sec.PodSecurityLevel] = {SYSTEM_NAMESPACE: "privileged"}
        levels |= {ns: "restricted" for ns in workload_namespaces(config)}
        self.namespaces, names = namespaces(name, levels, self)
        self.bundle_pem = server.trust_bundle
        self.agents = agents_of(name, config, cluster, names[SYSTEM_NAMESPACE], server.trust_bundle, self)
        psat_reviewer(f"{name}-server", names[SYSTEM_NAMESPACE], self)
        workloads_side(name, config, names, self.agents, self)
        td = config.spire.trust_domain
        self.connection = spire_connection(config)
        self.alias_entry, self.alias_id = alias_entry(name, td, cluster, self.connection, self)
        self.server_address = f"{server.address}:{server.port}"
        self.register_outputs({"alias_id": self.alias_id, "server_address": self.server_address})
