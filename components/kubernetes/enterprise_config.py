"""The enterprise topology's SPIRE configs: the basic topology's server and agent configs
(`spire_config.build_server_conf` / `build_agent_conf`), each side in its own trust domain, with
the federation section both ways. Pure: no resources.

    upstream cluster     root server of spire.trustDomain    UpstreamAuthority disk: the root CA
    downstream cluster   server of its own trust domain      UpstreamAuthority disk: an intermediate
                                                             the root signs, the root as its bundle

Each server serves its bundle on 8443 (`https_spiffe`: authenticated by its own SVID) and keeps the
other's, fetched from the other cluster's federation NodePort at that cluster's node address.

Where the relationship with the peer is declared:
- with spire-controller-manager (`kubernetes.enterprise.controllerManager`, the default): by a
  `ClusterFederatedTrustDomain` in each cluster that carries the peer's initial bundle
  (components/kubernetes/federation.py), so server.conf has the bundle endpoint and no
  `federates_with`: one declaration, which the manager creates through the server's TrustDomain
  API with the seed (a static entry would override it and hide it from `spire-server federation`);
- without the manager: statically in server.conf (`federates_with`), and the seed has to be set
  by hand once (`spire-server bundle set`, docs/architecture.md), as https_spiffe requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.kubernetes.spire_config import (
    SERVER_SECRETS,
    UPSTREAM_BUNDLE,
    build_agent_conf,
    build_server_conf,
)
from components.spire_conf import AgentConf, BundleEndpoint, FederatesWith, Federation, ServerConf
from stack_config import StackConfig
from stack_config.kubernetes_enterprise import DOWNSTREAM_NODE_PORTS, UPSTREAM_NODE_PORTS, EnterpriseSettings

FEDERATION_PORT = 8443
DOWNSTREAM_WORKLOADS = "downstream-workloads"
Role = Literal["upstream", "downstream"]


@dataclass(frozen=True)
class EnterpriseSide:
    """One server of the topology and the peer it federates with."""

    role: Role
    cluster: str
    trust_domain: str
    node_ports: dict[str, int]
    peer_trust_domain: str
    peer_address: str
    peer_federation_port: int  # the peer cluster's federation NodePort

    @property
    def peer_bundle_url(self) -> str:
        return f"https://{self.peer_address}:{self.peer_federation_port}"


def enterprise_sides(config: StackConfig) -> dict[Role, EnterpriseSide]:
    """Both sides, from `kubernetes.enterprise` (config guarantees it with the enterprise topology)."""
    ent = _settings(config)
    up_td, down_td = config.spire.trust_domain, ent.downstream.trust_domain
    return {
        "upstream": EnterpriseSide("upstream", ent.upstream.cluster, up_td, dict(UPSTREAM_NODE_PORTS), down_td,
                                   ent.downstream.address, DOWNSTREAM_NODE_PORTS["federation"]),
        "downstream": EnterpriseSide("downstream", ent.downstream.cluster, down_td, dict(DOWNSTREAM_NODE_PORTS),
                                     up_td, ent.upstream.address, UPSTREAM_NODE_PORTS["federation"]),
    }


def _settings(config: StackConfig) -> EnterpriseSettings:
    if config.kubernetes is None or config.kubernetes.enterprise is None:
        raise AssertionError("stack_config refuses the enterprise topology without kubernetes.enterprise")
    return config.kubernetes.enterprise


def relationships_by_crd(config: StackConfig) -> bool:
    """True when spire-controller-manager runs beside both servers and declares the federation
    relationships (`ClusterFederatedTrustDomain`); False: they are static in server.conf."""
    return _settings(config).controller_manager


def build_side_server_conf(config: StackConfig, side: EnterpriseSide) -> ServerConf:
    """server.conf of one side: the basic server in `side.trust_domain` serving its bundle, federated
    with the peer statically only when no controller manager declares the relationship; the
    downstream's UpstreamAuthority also names the root as its bundle (its CA is an intermediate)."""
    base = build_server_conf(config, side.cluster)
    static = {} if relationships_by_crd(config) else {side.peer_trust_domain: FederatesWith(
        bundle_endpoint_url=side.peer_bundle_url,
        endpoint_spiffe_id=f"spiffe://{side.peer_trust_domain}/spire/server",
    )}
    federation = Federation(bundle_endpoint=BundleEndpoint(port=FEDERATION_PORT), federates_with=static)
    server = base.server.model_copy(update={"trust_domain": side.trust_domain, "federation": federation})
    upstream = base.upstream_authority
    if side.role == "downstream" and upstream is not None:
        upstream = upstream.model_copy(
            update={"data": {**upstream.data, "bundle_file_path": f"{SERVER_SECRETS}/{UPSTREAM_BUNDLE}"}}
        )
    return ServerConf.model_validate(base.model_copy(update={"server": server, "upstream_authority": upstream}))


def build_side_agent_conf(config: StackConfig, side: EnterpriseSide) -> AgentConf:
    """agent.conf of one side's agents: the basic agents of its cluster, in its trust domain."""
    base = build_agent_conf(config, side.cluster)
    return base.model_copy(update={"agent": base.agent.model_copy(update={"trust_domain": side.trust_domain})})
