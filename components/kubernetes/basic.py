"""BasicTopology: the design's single-cluster SPIRE deployment (`kubernetes.topology: basic`).

Namespaces and their Pod Security levels (enforced by the API server's admission):

    spire-server   restricted   SpireServer: the server StatefulSet and its PostgreSQL
    spire-system   privileged   SpireAgents: the agent DaemonSet (hostPID) and the CSI driver
    production     restricted   the workloads; SampleWorkloads when `sampleWorkloads` is on

plus the node alias entry every agent of the cluster is mapped to, registered on the server by a
`SpireEntry` (through `kubectl exec` into the first server pod), so workload entries have a parent
that exists before any node does. The workload entries themselves are `SpireRegistrations`,
the same component the Swarm and external platforms use (components/assembly.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes.spire_agents import SpireAgents, SpireAgentsArgs
from components.kubernetes.spire_config import (
    AGENT_NAME,
    SERVER_NAME,
    SERVER_NAMESPACE,
    SERVER_PORT,
    SERVER_SOCKET,
    SYSTEM_NAMESPACE,
    WORKLOAD_NAMESPACE,
    build_agent_conf,
    build_server_conf,
    node_alias,
)
from components.kubernetes.spire_server import SpireServer, SpireServerArgs
from components.kubernetes.workloads import SampleWorkloads, SampleWorkloadsArgs, k8s_identity
from dynamic_providers.spire.provider import SpireEntry
from stack_config import Images, KubernetesCluster, KubernetesSettings, SpireSettings, Workload


@dataclass(frozen=True)
class BasicTopologyArgs:
    spire: SpireSettings  # server.conf: the trust domain and the TTLs
    kubernetes: KubernetesSettings  # storage, kubelet verification, sample workloads
    images: Images
    workloads: Mapping[str, Workload]
    cluster: str
    cluster_access: KubernetesCluster
    root_ca_cert_pem: pulumi.Input[str]
    root_ca_key_pem: pulumi.Input[str]


def kubectl_connection(trust_domain: str, access: KubernetesCluster) -> dict[str, Any]:
    """`kubectl exec` of the SPIRE CLI in the first server pod, through the cluster's kubeconfig."""
    conn: dict[str, Any] = {
        "transport": "kubectl-exec",
        "namespace": SERVER_NAMESPACE,
        "pod": f"{SERVER_NAME}-0",
        "container": SERVER_NAME,
        "socket_path": SERVER_SOCKET,
        "trust_domain": trust_domain,
        "project": pulumi.get_project(),
        "stack": pulumi.get_stack(),
    }
    if access.kubeconfig is not None:
        conn["kubeconfig"] = access.kubeconfig
    if access.context is not None:
        conn["context"] = access.context
    return conn


def workload_namespaces(samples: Mapping[str, Workload]) -> list[str]:
    """`production` and every namespace a sample workload (`sample_workloads`) runs in."""
    return sorted({WORKLOAD_NAMESPACE} | {k8s_identity(w)[0] for w in samples.values()})


def sample_workloads(k8s: KubernetesSettings, workloads: Mapping[str, Workload]) -> Mapping[str, Workload]:
    """The workloads that run as sample Deployments: all of them with `sampleWorkloads`, else none."""
    return workloads if k8s.sample_workloads else {}


def namespaces(
    name: str, levels: Mapping[str, sec.PodSecurityLevel], parent: pulumi.Resource
) -> tuple[dict[str, k8s.core.v1.Namespace], dict[str, pulumi.Output[str]]]:
    """The namespaces at their Pod Security levels, and their names as outputs (which objects in
    them take, so they wait for the namespace)."""
    made = {
        ns: k8s.core.v1.Namespace(
            f"{name}-ns-{ns}",
            metadata={"name": ns, "labels": {**sec.namespace_labels(level),
                                             "app.kubernetes.io/part-of": "identity-platform"}},
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for ns, level in sorted(levels.items())
    }
    return made, {ns: r.metadata.apply(lambda m: str(m.name)) for ns, r in made.items()}


def agents_of(
    name: str, trust_domain: str, k8s: KubernetesSettings, images: Images, cluster: str,
    namespace: pulumi.Input[str], bundle_pem: pulumi.Input[str], parent: pulumi.Resource,
) -> SpireAgents:
    """The cluster's agents, trusting `bundle_pem`, dialing the server `agent.conf` names: the
    cluster's own (basic) or `kubernetes.externalServer` (crd-free, reachable on any address)."""
    external = k8s.external_server
    args = SpireAgentsArgs(
        namespace=namespace,
        agent_conf=build_agent_conf(trust_domain, k8s, cluster).render(),
        bundle_pem=bundle_pem,
        agent_image=images.spire_agent,
        csi_driver_image=images.spiffe_csi_driver,
        csi_registrar_image=images.csi_node_driver_registrar,
    )
    if external is not None:
        args = dataclasses.replace(args, server_peer=None, server_port=external.port)
    return SpireAgents(f"{name}-agents", args, opts=pulumi.ResourceOptions(parent=parent))


def workloads_side(
    name: str, samples: Mapping[str, Workload], helper_image: str, names: Mapping[str, pulumi.Input[str]],
    agents: pulumi.Resource, parent: pulumi.Resource, workload_ns: Sequence[str] | None = None,
) -> None:
    """Default-deny in every workload namespace (`workload_ns`, else `workload_namespaces`); the
    sample workloads (`samples`, from `sample_workloads`), with the spiffe-helper `helper_image`."""
    for ns in workload_ns if workload_ns is not None else workload_namespaces(samples):
        k8s.networking.v1.NetworkPolicy(
            f"{name}-{ns}-default-deny",
            metadata={"name": "default-deny", "namespace": names[ns], "labels": sec.labels("default-deny", "policy")},
            spec=sec.default_deny(),
            opts=pulumi.ResourceOptions(parent=parent),
        )
    if samples:
        SampleWorkloads(
            f"{name}-workloads",
            SampleWorkloadsArgs(workloads=samples, namespaces=names, helper_image=helper_image),
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[agents]),
        )


def alias_registration(trust_domain: str, cluster: str, agent: str = AGENT_NAME) -> tuple[str, str, list[str]]:
    """(SPIFFE ID, parent ID, selectors) of the node alias entry of the cluster's agents
    (`spire_config.node_alias`), registered under the server: what `ops status` looks for too."""
    alias_id, selectors = node_alias(trust_domain, cluster, agent)
    return alias_id, f"spiffe://{trust_domain}/spire/server", selectors


def alias_entry(
    name: str, trust_domain: str, cluster: str, connection: Mapping[str, Any], parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (), agent: str = AGENT_NAME,
) -> tuple[SpireEntry, str]:
    """The node alias of the cluster's agents (`alias_registration`) as a SpireEntry, and its ID."""
    alias_id, parent_id, selectors = alias_registration(trust_domain, cluster, agent)
    entry = SpireEntry(
        f"{name}-node-alias",
        spiffe_id=alias_id,
        parent_id=parent_id,
        selectors=selectors,
        connection=dict(connection),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
    return entry, alias_id


class BasicTopology(pulumi.ComponentResource):
    """Namespaces, the SPIRE server, the agents, the node alias and the sample workloads."""

    namespaces: dict[str, k8s.core.v1.Namespace]
    server: SpireServer
    agents: SpireAgents
    alias_entry: SpireEntry
    alias_id: str
    connection: Mapping[str, Any]
    server_address: str

    def __init__(self, name: str, args: BasicTopologyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:BasicTopology", name, None, opts)
        cluster, k8s_conf, images = args.cluster, args.kubernetes, args.images
        td = args.spire.trust_domain
        samples = sample_workloads(k8s_conf, args.workloads)
        levels: dict[str, sec.PodSecurityLevel] = {SERVER_NAMESPACE: "restricted", SYSTEM_NAMESPACE: "privileged"}
        levels |= {ns: "restricted" for ns in workload_namespaces(samples)}
        self.namespaces, names = namespaces(name, levels, self)
        self.server = SpireServer(
            f"{name}-server",
            SpireServerArgs(
                namespace=names[SERVER_NAMESPACE],
                server_conf=build_server_conf(args.spire, cluster).render(),
                server_image=images.spire_server,
                postgres_image=images.postgres,
                root_ca_cert_pem=args.root_ca_cert_pem,
                root_ca_key_pem=args.root_ca_key_pem,
                server_storage=k8s_conf.server_storage,
                database_storage=k8s_conf.database_storage,
                storage_class=k8s_conf.storage_class,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.agents = agents_of(name, td, k8s_conf, images, cluster, names[SYSTEM_NAMESPACE], args.root_ca_cert_pem,
                                self)
        workloads_side(name, samples, images.spiffe_helper, names, self.agents, self)

        self.connection = kubectl_connection(td, args.cluster_access)
        self.alias_entry, self.alias_id = alias_entry(
            name, td, cluster, self.connection, self, depends_on=[self.server.statefulset]
        )
        self.server_address = f"{SERVER_NAME}.{SERVER_NAMESPACE}.svc:{SERVER_PORT}"
        self.register_outputs({"alias_id": self.alias_id, "server_address": self.server_address})
