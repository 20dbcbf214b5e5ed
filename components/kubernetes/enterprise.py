"""EnterpriseTopology (`kubernetes.topology: enterprise`): two clusters, two trust domains.

    upstream cluster     spire-server    root server of spire.trustDomain, UpstreamAuthority disk
                                         with the platform's root CA; NodePorts 31081 (agent API)
                                         and 31443 (bundle endpoint)
                         spire-system    its agents and the CSI driver
    downstream cluster   spire-server    server of kubernetes.enterprise.downstream.trustDomain,
                                         UpstreamAuthority disk with an intermediate the root signs
                                         (the root as its bundle); spire-controller-manager in its
                                         pod; NodePorts 32081 and 32443
                         spire-system    its agents and the CSI driver
                         downstream-workloads   enterprise-api, data-processor, security-gateway
                                         (NodePort 30080), registered by SpireEntry resources

Both trust domains chain to the one root OpenZiti verifies; the downstream cluster never holds the
root's key. They federate both ways: each server's bundle endpoint (8443, https_spiffe) is fetched
by the other through the other cluster's federation NodePort at `kubernetes.enterprise.<side>.address`,
and workload entries name the peer in `federatesWith` (their SVID responses then carry its bundle).
With spire-controller-manager (the default) it runs beside both servers, and each cluster's
`ClusterFederatedTrustDomain` declares the relationship with the peer, seeded with the peer's
bundle built from that root (components/kubernetes/federation.py): no bundle is set by hand.

`kubernetes.enterprise.nesting: spire` nests the downstream server under the upstream instead, in
one trust domain (SPIRE nests only within one: stack_config/kubernetes_enterprise.py): no
intermediate from the program, no federation, no ClusterFederatedTrustDomain and no manager beside
the upstream (nothing to reconcile there). The downstream server's UpstreamAuthority "spire" gets
its CA from the upstream, authenticated by the SVID of a `downstream` entry the program registers
on the upstream (`SpireEntry`): parented to the node alias of the upstream's agents in the
downstream cluster, selecting the server container of the downstream server's pods. The
downstream server waits for both entries (enterprise_config.py has the wiring). With
`kubernetes.enterprise.downstream.apiServer` the topology also delivers the kubeconfig the upstream
server reviews the downstream cluster's upstream agents with (`peer_kubeconfig_secret`): built from
the reviewer's token Secret in the downstream cluster as a Pulumi secret, and written as the Secret
spire-server/spire-server-downstream-kubeconfig in the upstream cluster; without it the operator
creates that Secret (docs/architecture.md).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components.intermediate_ca import IntermediateCa, IntermediateCaArgs
from components.kubernetes import security as sec
from components.kubernetes.basic import alias_entry
from components.kubernetes.controller_manager import FederatedTrustDomain
from components.kubernetes.enterprise_config import (
    DOWNSTREAM_WORKLOADS,
    EnterpriseSide,
    Role,
    build_side_agent_conf,
    build_side_server_conf,
    build_upstream_agent_conf,
    enterprise_sides,
    relationships_by_crd,
)
from components.kubernetes.enterprise_side import GATEWAY, EnterpriseSideArgs, EnterpriseSideStack
from components.kubernetes.federation import federated_trust_domain, seed_bundle
from components.kubernetes.generated.spire_spiffe_io import ClusterSPIFFEIDSpec
from components.kubernetes.spire_config import (
    PEER_KUBECONFIG_KEY,
    PEER_KUBECONFIG_SECRET,
    SERVER_NAME,
    SERVER_NAMESPACE,
    SYSTEM_NAMESPACE,
    UPSTREAM_AGENT_NAME,
    UPSTREAM_REVIEWER_TOKEN,
    peer_kubeconfig,
)
from components.kubernetes.spire_server import API_SERVER_PORTS
from components.kubernetes.workloads import k8s_identity
from dynamic_providers.spire.provider import SpireEntry
from stack_config import Images, KubernetesCluster, KubernetesSettings, SpireSettings, Workload

# Pods that opt in to registration by spire-controller-manager carry this label.
CRD_REGISTRATION_LABEL = "identity-platform/registration"
INTERMEDIATE_HOURS = 24 * 365
INTERMEDIATE_EARLY_RENEWAL_HOURS = 24 * 60


@dataclass(frozen=True)
class EnterpriseTopologyArgs:
    spire: SpireSettings  # the upstream's trust domain; both servers' TTLs
    kubernetes: KubernetesSettings  # `enterprise`, storage, kubelet verification, sample workloads
    images: Images
    workloads: Mapping[str, Workload]
    accesses: Mapping[str, KubernetesCluster]
    providers: Mapping[str, k8s.Provider]
    root_ca_cert_pem: pulumi.Input[str]
    root_ca_key_pem: pulumi.Input[str]


def cluster_spiffe_ids(upstream_trust_domain: str, nested: bool) -> dict[str, ClusterSPIFFEIDSpec]:
    """The CRD-based registration path: pods of downstream-workloads labelled
    `identity-platform/registration: crd` get `spiffe://<downstream td>/ns/<ns>/sa/<sa>`,
    federated with the upstream trust domain (`nested`: the same trust domain, nothing to federate)."""
    spec: ClusterSPIFFEIDSpec = {
        "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/"
                            "{{ .PodSpec.ServiceAccountName }}",
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DOWNSTREAM_WORKLOADS}},
        "podSelector": {"matchLabels": {CRD_REGISTRATION_LABEL: "crd"}},
    }
    if not nested:
        spec["federatesWith"] = [upstream_trust_domain]
    return {DOWNSTREAM_WORKLOADS: spec}


def downstream_entry(trust_domain: str, downstream: EnterpriseSide) -> tuple[str, list[str]]:
    """The nested downstream server's SPIFFE ID on the upstream and its selectors: the `spire-server`
    container of pods in spire-server running as the spire-server account (the manager sidecar
    shares the account but not the container name, and never mounts the upstream socket)."""
    return (f"spiffe://{trust_domain}/k8s/{downstream.cluster}/spire-server",
            [f"k8s:ns:{SERVER_NAMESPACE}", f"k8s:sa:{SERVER_NAME}", f"k8s:container-name:{SERVER_NAME}"])


class EnterpriseTopology(pulumi.ComponentResource):
    """Both sides, each through its cluster's provider, and the downstream's intermediate CA."""

    sides: dict[Role, EnterpriseSideStack]
    alias_ids: dict[str, str]
    connections: dict[str, Mapping[str, Any]]
    server_address: str
    intermediate: IntermediateCa | None
    nested_entries: tuple[SpireEntry, SpireEntry] | None
    peer_kubeconfig: k8s.core.v1.Secret | None

    def __init__(self, name: str, args: EnterpriseTopologyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:EnterpriseTopology", name, None, opts)
        k8s_conf, td = args.kubernetes, args.spire.trust_domain
        ent = k8s_conf.enterprise
        if ent is None:
            raise AssertionError("stack_config refuses the enterprise topology without kubernetes.enterprise")
        specs = enterprise_sides(td, ent)
        down = specs["downstream"]
        nested = ent.nested
        ca: dict[Role, tuple[pulumi.Input[str] | None, pulumi.Input[str] | None, pulumi.Input[str] | None]] = {
            "upstream": (args.root_ca_cert_pem, args.root_ca_key_pem, None),
            "downstream": (None, None, None),  # nested: the upstream server mints its CA
        }
        self.intermediate = None
        if not nested:
            self.intermediate = IntermediateCa(
                f"{name}-downstream-ca",
                IntermediateCaArgs(
                    common_name=f"{down.trust_domain} intermediate CA",
                    root_cert_pem=args.root_ca_cert_pem,
                    root_key_pem=args.root_ca_key_pem,
                    validity_hours=INTERMEDIATE_HOURS,
                    early_renewal_hours=INTERMEDIATE_EARLY_RENEWAL_HOURS,
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            ca["downstream"] = (self.intermediate.cert_pem, self.intermediate.key_pem, args.root_ca_cert_pem)
        # Either trust domain's X.509 authorities are the root's certificates (federation.py).
        seed = pulumi.Output.from_input(args.root_ca_cert_pem).apply(seed_bundle)
        managed = relationships_by_crd(ent)
        self.sides = {}
        self.nested_entries = None

        def runs_manager(role: Role) -> bool:
            # Nested, the upstream's manager would have nothing to reconcile: none runs there.
            return ent.controller_manager and (not nested or role == "downstream")

        for role, side in specs.items():
            own = {w: spec for w, spec in args.workloads.items() if spec.node == side.cluster}
            ns = {k8s_identity(w)[0] for w in own.values()} | (
                {DOWNSTREAM_WORKLOADS} if role == "downstream" else set())
            cert, key, bundle = ca[role]
            self.sides[role] = EnterpriseSideStack(
                f"{name}-{role}",
                EnterpriseSideArgs(
                    kubernetes=k8s_conf,
                    images=args.images,
                    workloads=own,
                    side=side,
                    access=args.accesses[side.cluster],
                    server_conf=build_side_server_conf(args.spire, ent, side).render(),
                    agent_conf=build_side_agent_conf(k8s_conf, side).render(),
                    ca_cert_pem=cert,
                    ca_key_pem=key,
                    # Agents trust the root: every SVID of either trust domain chains to it.
                    bundle_pem=args.root_ca_cert_pem,
                    upstream_bundle_pem=bundle,
                    workload_namespaces=tuple(sorted(ns)),
                    cluster_spiffe_ids=(cluster_spiffe_ids(td, nested) if role == "downstream" else {})
                    if runs_manager(role) else None,
                    federated_trust_domains={side.peer_trust_domain: FederatedTrustDomain(
                        federated_trust_domain(side), seed)} if managed else {},
                    gateway=role == "downstream" and GATEWAY in own,
                    upstream_agent_conf=build_upstream_agent_conf(k8s_conf, ent.nested_cluster, side).render()
                    if nested and role == "downstream" else None,
                    peer_kubeconfig=nested and role == "upstream",
                    reviewer_token=nested and role == "downstream" and ent.downstream.api_server is not None,
                    peer_api_ports=_api_ports(ent.downstream.api_server) if nested and role == "upstream" else (),
                    server_depends_on=tuple(self.nested_entries or ()) if role == "downstream" else (),
                ),
                opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": args.providers[side.cluster]}),
            )
            if nested and role == "upstream":
                self.nested_entries = self._nested_entries(name, td, ent.nested_cluster, self.sides["upstream"], down)
        self.peer_kubeconfig = None
        token = self.sides["downstream"].reviewer_token
        if token is not None and ent.downstream.api_server is not None:
            self.peer_kubeconfig = peer_kubeconfig_secret(
                f"{name}-peer-kubeconfig",
                down.cluster,
                ent.downstream.api_server,
                token,
                self.sides["upstream"].namespaces[SERVER_NAMESPACE],
                pulumi.ResourceOptions(parent=self, provider=args.providers[specs["upstream"].cluster]),
            )
        self.alias_ids = {specs[r].cluster: s.alias_id for r, s in self.sides.items()}
        self.connections = {specs[r].cluster: s.connection for r, s in self.sides.items()}
        self.server_address = f"{ent.upstream.address}:{specs['upstream'].node_ports['grpc']}"
        self.register_outputs({"alias_ids": self.alias_ids, "server_address": self.server_address})

    def _nested_entries(self, name: str, td: str, nested_cluster: str, upstream: EnterpriseSideStack,
                        down: EnterpriseSide) -> tuple[SpireEntry, SpireEntry]:
        """On the upstream server: the node alias of its agents in the downstream cluster (`nested_cluster`,
        the k8s_psat cluster name they attest as) and, under it, the downstream entry of the nested server."""
        alias, alias_id = alias_entry(f"{name}-nested", td, nested_cluster, upstream.connection, self,
                                      depends_on=[upstream.server.statefulset], agent=UPSTREAM_AGENT_NAME)
        spiffe_id, selectors = downstream_entry(td, down)
        entry = SpireEntry(
            f"{name}-downstream-entry",
            spiffe_id=spiffe_id,
            parent_id=alias_id,
            selectors=selectors,
            downstream=True,
            connection=dict(upstream.connection),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[alias]),
        )
        return alias, entry


def _api_ports(api_server: str | None) -> tuple[int, ...]:
    """The downstream API server's port when the server's policy does not already allow it."""
    if api_server is None:
        return ()
    port = urlsplit(api_server).port or 443
    return () if port in API_SERVER_PORTS else (port,)


def peer_kubeconfig_secret(
    name: str,
    cluster: str,
    api_server: str,
    token: k8s.core.v1.Secret,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """The Secret spire-server/spire-server-downstream-kubeconfig (key `kubeconfig`) that the upstream
    server's pods project: the downstream cluster at `api_server`, its CA and the reviewer's token,
    both from the token Secret's `data` (base64, as the token controller fills it). The kubeconfig is
    a Pulumi secret Output end to end (state holds it encrypted) and reaches the pods as a file."""

    def render(data: Mapping[str, str] | None) -> str:
        if not data or not data.get("token") or not data.get("ca.crt"):
            raise ValueError(
                f"{SYSTEM_NAMESPACE}/{UPSTREAM_REVIEWER_TOKEN}: the token Secret has no token or "
                "ca.crt: no token controller filled it (is kube-controller-manager running in the "
                f"{cluster} cluster?)"
            )
        return peer_kubeconfig(cluster, api_server, data["ca.crt"], base64.b64decode(data["token"]).decode())

    kubeconfig: pulumi.Output[str] = pulumi.Output.secret(token.data.apply(render))
    return k8s.core.v1.Secret(
        name,
        metadata=sec.meta(PEER_KUBECONFIG_SECRET, namespace, SERVER_NAME, "server"),
        string_data={PEER_KUBECONFIG_KEY: kubeconfig},
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[token])),
    )
