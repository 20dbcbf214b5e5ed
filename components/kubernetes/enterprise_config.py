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

With `kubernetes.enterprise.nesting: spire` both servers are in spire.trustDomain and nothing
federates (no bundle endpoint, no relationship):

    upstream cluster     root server      UpstreamAuthority disk: the root CA; k8s_psat also for
                                          the downstream cluster's upstream agents (cluster
                                          `<downstream>-upstream`, through that cluster's kubeconfig)
    downstream cluster   nested server    UpstreamAuthority spire: the upstream's agent API
                                          NodePort, authenticated by the SVID the upstream agent on
                                          its node gives it (a `downstream` entry on the upstream)
                         upstream agents  k8s_psat to the upstream's agent API NodePort

Why k8s_psat and not join_token for the upstream agents: a join token is single-use and an agent
re-attests with a new one whenever its data is lost (a DaemonSet pod rescheduled), so every node
would need an operator-minted token per restart; k8s_psat is re-attestable from the projected
token the kubelet keeps rotating, and SPIRE's server plugin reviews tokens of a cluster it does not
run in through that cluster's `kube_config_file` (doc/plugin_server_nodeattestor_k8s_psat.md). The
price is a credential of the downstream cluster in the upstream one: a token of the reviewer
account the program creates there (`spire-upstream-reviewer`), in a Secret of the upstream
cluster. With `kubernetes.enterprise.downstream.apiServer` `pulumi up` makes it (the token from a
service-account-token Secret, the kubeconfig a Pulumi secret: encrypted in state); without it the
operator mints the token and creates the Secret (docs/architecture.md), and it stays out of state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.kubernetes.spire_config import (
    AGENT_SOCKET_DIR,
    PEER_KUBECONFIG,
    SERVER_SECRETS,
    SERVER_UPSTREAM_SOCKET_DIR,
    SYSTEM_NAMESPACE,
    UPSTREAM_AGENT_NAME,
    UPSTREAM_BUNDLE,
    build_agent_conf,
    build_server_conf,
    spire_upstream,
)
from components.spire_conf import AgentConf, BundleEndpoint, FederatesWith, Federation, Plugin, ServerConf
from stack_config import KubernetesSettings, SpireSettings
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
    nested: bool = False  # kubernetes.enterprise.nesting spire: one trust domain, no federation

    @property
    def peer_bundle_url(self) -> str:
        return f"https://{self.peer_address}:{self.peer_federation_port}"


def enterprise_sides(up_td: str, ent: EnterpriseSettings) -> dict[Role, EnterpriseSide]:
    """Both sides, from `kubernetes.enterprise`; the upstream's trust domain is `spire.trustDomain` (`up_td`)."""
    down_td = ent.downstream_trust_domain(up_td)
    nested = ent.nested
    # Nested: no bundle endpoint; the agent APIs keep the design's NodePorts.
    up_ports, down_ports = ({k: v for k, v in ports.items() if k != "federation" or not nested}
                            for ports in (UPSTREAM_NODE_PORTS, DOWNSTREAM_NODE_PORTS))
    return {
        "upstream": EnterpriseSide("upstream", ent.upstream.cluster, up_td, up_ports, down_td,
                                   ent.downstream.address, DOWNSTREAM_NODE_PORTS["federation"], nested),
        "downstream": EnterpriseSide("downstream", ent.downstream.cluster, down_td, down_ports,
                                     up_td, ent.upstream.address, UPSTREAM_NODE_PORTS["federation"], nested),
    }


def relationships_by_crd(ent: EnterpriseSettings) -> bool:
    """True when spire-controller-manager runs beside both servers and declares the federation
    relationships (`ClusterFederatedTrustDomain`); False: they are static in server.conf (or, nested,
    there are none)."""
    return ent.controller_manager and not ent.nested


def build_side_server_conf(spire: SpireSettings, ent: EnterpriseSettings, side: EnterpriseSide) -> ServerConf:
    """server.conf of one side: the basic server in `side.trust_domain` serving its bundle, federated
    with the peer statically only when no controller manager declares the relationship; the
    downstream's UpstreamAuthority also names the root as its bundle (its CA is an intermediate)."""
    if side.nested:
        return _nested_server_conf(spire, ent, side)
    base = build_server_conf(spire, side.cluster)
    static = {} if relationships_by_crd(ent) else {side.peer_trust_domain: FederatesWith(
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


def _nested_server_conf(spire: SpireSettings, ent: EnterpriseSettings, side: EnterpriseSide) -> ServerConf:
    """nesting spire: no federation. Upstream: the root server, whose k8s_psat also takes the
    downstream cluster's upstream agents (reviewed there through its kubeconfig). Downstream:
    UpstreamAuthority "spire", dialing the upstream's agent API NodePort with the SVID the upstream
    agent of its node serves it (its socket in the pod's CSI volume)."""
    base = build_server_conf(spire, side.cluster)
    server = base.server.model_copy(update={"trust_domain": side.trust_domain})
    update: dict[str, object] = {"server": server}
    if side.role == "upstream":
        (psat,) = base.node_attestors
        own = psat.data["clusters"]
        assert isinstance(own, dict)
        clusters = {**own, ent.nested_cluster: {
            "service_account_allow_list": [f"{SYSTEM_NAMESPACE}:{UPSTREAM_AGENT_NAME}"],
            "kube_config_file": f"{SERVER_SECRETS}/{PEER_KUBECONFIG}",
        }}
        update["node_attestors"] = [Plugin(name=psat.name, data={**psat.data, "clusters": clusters})]
    else:
        update["upstream_authority"] = spire_upstream(
            side.peer_address, UPSTREAM_NODE_PORTS["grpc"], f"{SERVER_UPSTREAM_SOCKET_DIR}/agent.sock")
    return ServerConf.model_validate(base.model_copy(update=update))


def build_upstream_agent_conf(k8s: KubernetesSettings, nested_cluster: str, side: EnterpriseSide) -> AgentConf:
    """agent.conf of the upstream server's agents in the downstream cluster (nesting spire): the
    downstream cluster's agent config, attesting to the upstream's agent API NodePort as cluster
    `nested_cluster` (`<downstream>-upstream`). Its socket path in the container is the usual one;
    the host directory behind it is its own (`UPSTREAM_AGENT_HOST_DIR`)."""
    base = build_agent_conf(side.peer_trust_domain, k8s, side.cluster)
    agent = base.agent.model_copy(update={
        "server_address": side.peer_address,
        "server_port": str(UPSTREAM_NODE_PORTS["grpc"]), "socket_path": f"{AGENT_SOCKET_DIR}/agent.sock"})
    attestor = Plugin(name=base.node_attestor.name,
                      data={**base.node_attestor.data, "cluster": nested_cluster})
    return AgentConf.model_validate(base.model_copy(update={"agent": agent, "node_attestor": attestor}))


def build_side_agent_conf(k8s: KubernetesSettings, side: EnterpriseSide) -> AgentConf:
    """agent.conf of one side's agents: the basic agents of its cluster, in its trust domain."""
    return build_agent_conf(side.trust_domain, k8s, side.cluster)
