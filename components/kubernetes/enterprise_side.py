"""EnterpriseSide: one cluster of the enterprise topology, built from the basic topology's parts.

Through that cluster's provider (inherited from this component): the namespaces at their Pod
Security levels, the SPIRE server of the side's trust domain (`SpireServer`, exposed on the side's
NodePorts with its federation bundle endpoint), its agents (`SpireAgents`), the node alias entry,
the default-deny policies and sample workloads of the workloads this cluster attests,
spire-controller-manager in the server pod (with the relationship to the peer trust domain as a
`ClusterFederatedTrustDomain`, and downstream the ClusterSPIFFEIDs), and downstream the security
gateway's NodePort.

Nested (`kubernetes.enterprise.nesting: spire`), the downstream cluster also runs the upstream
server's agents (`SpireAgents` under `UPSTREAM_AGENTS` names: their own service account, host
socket directory and CSI driver, whose volume the downstream server pod mounts) and the reviewer
account the upstream server reads their tokens and pods with; the upstream server mounts the
kubeconfig of that account (an optional Secret). With `kubernetes.enterprise.downstream.apiServer`
the downstream side also makes that account's token Secret (`kubernetes.io/service-account-token`,
filled by the cluster's token controller; pulumi-kubernetes waits for its token), from which the
topology builds the kubeconfig Secret upstream (components/kubernetes/enterprise.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes.basic import (
    alias_entry,
    kubectl_connection,
    namespaces,
    sample_workloads,
    workloads_side,
)
from components.kubernetes.controller_manager import (
    FederatedTrustDomain,
    SpireControllerManager,
    SpireControllerManagerArgs,
)
from components.kubernetes.enterprise_config import FEDERATION_PORT, EnterpriseSide
from components.kubernetes.generated.spire_spiffe_io import ClusterSPIFFEIDSpec
from components.kubernetes.spire_agents import AgentNames, SpireAgents, SpireAgentsArgs
from components.kubernetes.spire_config import (
    SERVER_NAMESPACE,
    SYSTEM_NAMESPACE,
    UPSTREAM_AGENT_HOST_DIR,
    UPSTREAM_AGENT_NAME,
    UPSTREAM_CSI_DRIVER,
    UPSTREAM_CSI_NAME,
    UPSTREAM_REVIEWER,
    UPSTREAM_REVIEWER_TOKEN,
)
from components.kubernetes.spire_server import (
    ServerExposure,
    Sidecar,
    SpireServer,
    SpireServerArgs,
    reviewer_account,
)
from components.kubernetes.workloads import k8s_identity
from dynamic_providers.spire.provider import SpireEntry
from stack_config import Images, KubernetesCluster, KubernetesSettings, Workload
from stack_config.kubernetes_enterprise import GATEWAY_NODE_PORT, UPSTREAM_NODE_PORTS

GATEWAY = "security-gateway"
GATEWAY_PORT = 8080  # the gateway application's listener (the sample pod runs only its SVID helper)
UPSTREAM_AGENTS = AgentNames(agent=UPSTREAM_AGENT_NAME, csi=UPSTREAM_CSI_NAME, csi_driver=UPSTREAM_CSI_DRIVER,
                             host_socket_dir=UPSTREAM_AGENT_HOST_DIR, bundle="spire-upstream-bundle",
                             default_deny=False)


@dataclass(frozen=True)
class EnterpriseSideArgs:
    kubernetes: KubernetesSettings  # storage and sample workloads
    images: Images
    # The workloads this side's cluster attests (`node` is its cluster).
    workloads: Mapping[str, Workload]
    side: EnterpriseSide
    access: KubernetesCluster
    server_conf: str
    agent_conf: str
    # The upstream CA (the root upstream, an intermediate downstream; None nested downstream) and,
    # for an intermediate, the root.
    ca_cert_pem: pulumi.Input[str] | None
    ca_key_pem: pulumi.Input[str] | None
    bundle_pem: pulumi.Input[str]
    upstream_bundle_pem: pulumi.Input[str] | None = None
    workload_namespaces: tuple[str, ...] = ()
    # ClusterSPIFFEIDs for spire-controller-manager in the server pod; None: no manager.
    cluster_spiffe_ids: Mapping[str, ClusterSPIFFEIDSpec] | None = None
    # The manager's ClusterFederatedTrustDomains (the peer, with its seed bundle).
    federated_trust_domains: Mapping[str, FederatedTrustDomain] = field(default_factory=dict)
    gateway: bool = False
    # Nested downstream: the upstream server's agents' config; nested upstream: read the peer's kubeconfig.
    upstream_agent_conf: str | None = None
    peer_kubeconfig: bool = False
    # Nested downstream with downstream.apiServer: make the reviewer's token Secret.
    reviewer_token: bool = False
    # Nested upstream: the downstream API server's port when the server's policy does not allow it yet.
    peer_api_ports: tuple[int, ...] = ()
    server_depends_on: tuple[pulumi.Resource, ...] = ()


class EnterpriseSideStack(pulumi.ComponentResource):
    """Namespaces, server, agents, node alias, workloads (and manager, gateway) of one cluster."""

    server: SpireServer
    agents: SpireAgents
    alias_entry: SpireEntry
    alias_id: str
    connection: dict[str, Any]
    controller_manager: SpireControllerManager | None
    upstream_agents: SpireAgents | None
    namespaces: dict[str, pulumi.Output[str]]
    # Nested downstream with downstream.apiServer: the reviewer's token Secret (its `data` a secret).
    reviewer_token: k8s.core.v1.Secret | None

    def __init__(self, name: str, args: EnterpriseSideArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:EnterpriseSide", name, None, opts)
        side, k8s_conf, images = args.side, args.kubernetes, args.images
        levels: dict[str, sec.PodSecurityLevel] = {SERVER_NAMESPACE: "restricted", SYSTEM_NAMESPACE: "privileged"}
        levels |= {ns: "restricted" for ns in args.workload_namespaces}
        _, names = namespaces(name, levels, self)
        self.namespaces = names

        self.controller_manager = None
        sidecars: tuple[Sidecar, ...] = ()
        if args.cluster_spiffe_ids is not None:
            self.controller_manager = SpireControllerManager(
                f"{name}-controller-manager",
                SpireControllerManagerArgs(namespace=names[SERVER_NAMESPACE], cluster=side.cluster,
                                           trust_domain=side.trust_domain, image=images.spire_controller_manager,
                                           spiffe_ids=args.cluster_spiffe_ids,
                                           federated_trust_domains=args.federated_trust_domains),
                opts=pulumi.ResourceOptions(parent=self),
            )
            sidecars = (self.controller_manager.sidecar,)
        self.server = SpireServer(
            f"{name}-server",
            SpireServerArgs(
                namespace=names[SERVER_NAMESPACE],
                server_conf=args.server_conf,
                server_image=images.spire_server,
                postgres_image=images.postgres,
                root_ca_cert_pem=args.ca_cert_pem,
                root_ca_key_pem=args.ca_key_pem,
                upstream_bundle_pem=args.upstream_bundle_pem,
                server_storage=k8s_conf.server_storage,
                database_storage=k8s_conf.database_storage,
                storage_class=k8s_conf.storage_class,
                exposure=_exposure(side, args.upstream_agent_conf is not None, args.peer_api_ports),
                sidecars=sidecars,
                upstream_socket_driver=UPSTREAM_CSI_DRIVER if args.upstream_agent_conf is not None else None,
                peer_kubeconfig=args.peer_kubeconfig,
                depends_on=args.server_depends_on,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.agents = _agents(f"{name}-agents", names[SYSTEM_NAMESPACE], args.agent_conf, args, self)
        self.upstream_agents, self.reviewer_token = None, None
        if args.upstream_agent_conf is not None:
            self.upstream_agents, self.reviewer_token = _upstream_agents(name, names[SYSTEM_NAMESPACE], args, self)
        workloads_side(name, sample_workloads(k8s_conf, args.workloads), images.spiffe_helper, names, self.agents,
                       self, workload_ns=args.workload_namespaces)
        if args.gateway:
            _gateway(name, names[k8s_identity(args.workloads[GATEWAY])[0]], self)

        self.connection = kubectl_connection(side.trust_domain, args.access)
        self.alias_entry, self.alias_id = alias_entry(
            name, side.trust_domain, side.cluster, self.connection, self, depends_on=[self.server.statefulset]
        )
        self.register_outputs({"alias_id": self.alias_id})


def _exposure(side: EnterpriseSide, nested_downstream: bool, api_ports: tuple[int, ...] = ()) -> ServerExposure:
    """The side's NodePorts; federated, each server fetches the peer's bundle endpoint NodePort;
    nested, the downstream server calls the upstream's agent API NodePort and the upstream the
    downstream's API server (`api_ports`: its port when not 443 or 6443, which it may reach anyway)."""
    if not side.nested:
        return ServerExposure(node_ports=side.node_ports, federation_port=FEDERATION_PORT,
                              peer_ports=(side.peer_federation_port,))
    return ServerExposure(node_ports=side.node_ports, federation_port=None,
                          peer_ports=(UPSTREAM_NODE_PORTS["grpc"],) if nested_downstream else api_ports)


def _upstream_agents(
    name: str, ns: pulumi.Input[str], args: EnterpriseSideArgs, parent: pulumi.Resource
) -> tuple[SpireAgents, k8s.core.v1.Secret | None]:
    """The upstream server's agents on every node of the downstream cluster, and the reviewer
    account the upstream server attests them with (k8s_psat: TokenReview, get pods and nodes; the
    ClusterRole the downstream server's own reviewer has, bound to a second account), with its
    token Secret when `args.reviewer_token`."""
    assert args.upstream_agent_conf is not None
    account = reviewer_account(f"{name}-upstream-reviewer", UPSTREAM_REVIEWER, ns, parent)
    token = reviewer_token(f"{name}-upstream-reviewer", ns, account, parent) if args.reviewer_token else None
    # The upstream server is in the other cluster: its agent API NodePort, on a node address.
    agents = _agents(
        f"{name}-upstream-agents",
        ns,
        args.upstream_agent_conf,
        args,
        parent,
        server_peer=None,
        server_port=UPSTREAM_NODE_PORTS["grpc"],
        names=UPSTREAM_AGENTS,
    )
    return agents, token


def reviewer_token(
    name: str, ns: pulumi.Input[str], account: k8s.core.v1.ServiceAccount, parent: pulumi.Resource
) -> k8s.core.v1.Secret:
    """A long-lived token of the reviewer account: a `kubernetes.io/service-account-token` Secret,
    which the cluster's token controller fills with `token`, `ca.crt` and `namespace` (and deletes
    with the account). pulumi-kubernetes waits for the token before the Secret counts as created
    (pulumi/pulumi-kubernetes#2048), so its `data` output holds it; `data` is a secret output
    (the provider marks a Secret's data so; named here too), never plain in state."""
    return k8s.core.v1.Secret(
        f"{name}-token",
        metadata={"name": UPSTREAM_REVIEWER_TOKEN, "namespace": ns, "labels": sec.labels(UPSTREAM_REVIEWER, "server"),
                  "annotations": {"kubernetes.io/service-account.name": UPSTREAM_REVIEWER}},
        type="kubernetes.io/service-account-token",
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[account], additional_secret_outputs=["data"]),
    )


def _agents(name: str, ns: pulumi.Input[str], conf: str, args: EnterpriseSideArgs, parent: pulumi.Resource,
            **where: Any) -> SpireAgents:
    """A set of agents of the side's images, bootstrapping with the root; `where`: their server and names."""
    images = args.images
    return SpireAgents(name, SpireAgentsArgs(
        namespace=ns, agent_conf=conf, bundle_pem=args.bundle_pem, agent_image=images.spire_agent,
        csi_driver_image=images.spiffe_csi_driver, csi_registrar_image=images.csi_node_driver_registrar, **where,
    ), opts=pulumi.ResourceOptions(parent=parent))


def _gateway(name: str, ns: pulumi.Input[str], parent: pulumi.Resource) -> None:
    """The security gateway on every node's port 30080, and the one flow into it."""
    child = pulumi.ResourceOptions(parent=parent)
    k8s.core.v1.Service(
        f"{name}-gateway",
        metadata=sec.meta(GATEWAY, ns, GATEWAY, "workload"),
        spec={"type": "NodePort", "selector": sec.selector(GATEWAY),
              "ports": [{"name": "https", "port": GATEWAY_PORT, "target_port": GATEWAY_PORT,
                         "node_port": GATEWAY_NODE_PORT}]},
        opts=child,
    )
    k8s.networking.v1.NetworkPolicy(
        f"{name}-gateway-policy",
        metadata=sec.meta(GATEWAY, ns, GATEWAY, "policy"),
        # From outside the cluster: the gateway is the topology's public entry point.
        spec=sec.allow(GATEWAY, ingress=[{"ports": sec.tcp(GATEWAY_PORT)}]),
        opts=child,
    )
