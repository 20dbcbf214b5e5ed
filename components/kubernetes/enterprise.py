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

Why not the downstream server nested under the upstream (`UpstreamAuthority "spire"`): SPIRE nests
only within one trust domain (stack_config/kubernetes_enterprise.py); the nested server is proven
on its own in tests/real/test_spire_nested.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.intermediate_ca import IntermediateCa, IntermediateCaArgs
from components.kubernetes.controller_manager import FederatedTrustDomain
from components.kubernetes.enterprise_config import (
    DOWNSTREAM_WORKLOADS,
    Role,
    build_side_agent_conf,
    build_side_server_conf,
    enterprise_sides,
    relationships_by_crd,
)
from components.kubernetes.enterprise_side import GATEWAY, EnterpriseSideArgs, EnterpriseSideStack
from components.kubernetes.federation import federated_trust_domain, seed_bundle
from components.kubernetes.generated.spire_spiffe_io import ClusterSPIFFEIDSpec
from components.kubernetes.workloads import k8s_identity
from stack_config import KubernetesCluster, StackConfig

# Pods that opt in to registration by spire-controller-manager carry this label.
CRD_REGISTRATION_LABEL = "identity-platform/registration"
INTERMEDIATE_HOURS = 24 * 365
INTERMEDIATE_EARLY_RENEWAL_HOURS = 24 * 60


@dataclass(frozen=True)
class EnterpriseTopologyArgs:
    config: StackConfig
    accesses: Mapping[str, KubernetesCluster]
    providers: Mapping[str, k8s.Provider]
    root_ca_cert_pem: pulumi.Input[str]
    root_ca_key_pem: pulumi.Input[str]


def cluster_spiffe_ids(config: StackConfig) -> dict[str, ClusterSPIFFEIDSpec]:
    """The CRD-based registration path: pods of downstream-workloads labelled
    `identity-platform/registration: crd` get `spiffe://<downstream td>/ns/<ns>/sa/<sa>`,
    federated with the upstream trust domain."""
    return {
        DOWNSTREAM_WORKLOADS: {
            "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/"
                                "{{ .PodSpec.ServiceAccountName }}",
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": DOWNSTREAM_WORKLOADS}},
            "podSelector": {"matchLabels": {CRD_REGISTRATION_LABEL: "crd"}},
            "federatesWith": [config.spire.trust_domain],
        }
    }


class EnterpriseTopology(pulumi.ComponentResource):
    """Both sides, each through its cluster's provider, and the downstream's intermediate CA."""

    sides: dict[Role, EnterpriseSideStack]
    alias_ids: dict[str, str]
    connections: dict[str, Mapping[str, Any]]
    server_address: str
    intermediate: IntermediateCa

    def __init__(self, name: str, args: EnterpriseTopologyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:EnterpriseTopology", name, None, opts)
        config = args.config
        ent = config.kubernetes.enterprise if config.kubernetes is not None else None
        if ent is None:
            raise AssertionError("stack_config refuses the enterprise topology without kubernetes.enterprise")
        specs = enterprise_sides(config)
        down = specs["downstream"]
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
        ca: dict[Role, tuple[pulumi.Input[str], pulumi.Input[str], pulumi.Input[str] | None]] = {
            "upstream": (args.root_ca_cert_pem, args.root_ca_key_pem, None),
            "downstream": (self.intermediate.cert_pem, self.intermediate.key_pem, args.root_ca_cert_pem),
        }
        # Either trust domain's X.509 authorities are the root's certificates (federation.py).
        seed = pulumi.Output.from_input(args.root_ca_cert_pem).apply(seed_bundle)
        managed = relationships_by_crd(config)
        self.sides = {}
        for role, side in specs.items():
            own = [w for w in config.workloads.values() if w.node == side.cluster]
            ns = {k8s_identity(w)[0] for w in own} | ({DOWNSTREAM_WORKLOADS} if role == "downstream" else set())
            cert, key, bundle = ca[role]
            self.sides[role] = EnterpriseSideStack(
                f"{name}-{role}",
                EnterpriseSideArgs(
                    config=config,
                    side=side,
                    access=args.accesses[side.cluster],
                    server_conf=build_side_server_conf(config, side).render(),
                    agent_conf=build_side_agent_conf(config, side).render(),
                    ca_cert_pem=cert,
                    ca_key_pem=key,
                    # Agents trust the root: every SVID of either trust domain chains to it.
                    bundle_pem=args.root_ca_cert_pem,
                    upstream_bundle_pem=bundle,
                    workload_namespaces=tuple(sorted(ns)),
                    cluster_spiffe_ids=(cluster_spiffe_ids(config) if role == "downstream" else {})
                    if managed else None,
                    federated_trust_domains={side.peer_trust_domain: FederatedTrustDomain(
                        federated_trust_domain(side), seed)} if managed else {},
                    gateway=role == "downstream" and any(
                        w == GATEWAY and spec.node == side.cluster for w, spec in config.workloads.items()),
                ),
                opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": args.providers[side.cluster]}),
            )
        self.alias_ids = {specs[r].cluster: s.alias_id for r, s in self.sides.items()}
        self.connections = {specs[r].cluster: s.connection for r, s in self.sides.items()}
        self.server_address = f"{ent.upstream.address}:{specs['upstream'].node_ports['grpc']}"
        self.register_outputs({"alias_ids": self.alias_ids, "server_address": self.server_address})
