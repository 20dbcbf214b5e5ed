"""`kubernetes.enterprise`: the two clusters of the enterprise topology and how they reach each other.

The upstream cluster runs the root server of `spire.trustDomain` (UpstreamAuthority "disk" with the
platform's root CA, the same root the trust chain registers in OpenZiti); the downstream cluster
runs the server of `downstream.trustDomain`, whose CA is an intermediate the root signs
(pulumi-tls), so the downstream cluster never holds the root's key. The two trust domains federate
both ways: each server serves its bundle on 8443 (`https_spiffe`) and fetches the other's from the
other cluster's NodePort at `address` (the relationship and its first bundle come from
spire-controller-manager's ClusterFederatedTrustDomain unless `controllerManager` is false).

Why not `UpstreamAuthority "spire"` between them: SPIRE nests servers only within one trust domain
(the plugin authenticates the upstream as `spiffe://<its own trust domain>/spire/server`,
spire v1.15.3 pkg/server/plugin/upstreamauthority/spire/spire.go), so two trust domains are joined
by federation; the nested server is proven on its own (tests/real/test_spire_nested.py).
"""

from __future__ import annotations

from pydantic import Field

from stack_config.base import Hostname, Model
from stack_config.spiffe import TrustDomain

# The design's NodePorts: agent API (gRPC) and bundle endpoint of each server, the security gateway.
UPSTREAM_NODE_PORTS = {"grpc": 31081, "federation": 31443}
DOWNSTREAM_NODE_PORTS = {"grpc": 32081, "federation": 32443}
GATEWAY_NODE_PORT = 30080


class EnterpriseCluster(Model):
    """One side of the enterprise topology: which cluster, and where the other cluster reaches it."""

    cluster: str = Field(description="Key of `kubernetes.clusters` this server runs in.")
    address: Hostname = Field(
        description="Host name or IPv4 address of a node of that cluster that the other cluster reaches: "
        "its server's bundle endpoint is fetched at https://<address>:<federation NodePort>."
    )


class EnterpriseDownstream(EnterpriseCluster):
    trust_domain: TrustDomain = Field(
        description="Trust domain of the downstream server (differs from spire.trustDomain, the upstream's); "
        "federated both ways with the upstream's."
    )


class EnterpriseSettings(Model):
    """The upstream (root, spire.trustDomain) and downstream (its own trust domain) sides."""

    upstream: EnterpriseCluster = Field(description="The root server's cluster (trust domain spire.trustDomain).")
    downstream: EnterpriseDownstream = Field(
        description="The downstream server's cluster and trust domain; its workloads run in downstream-workloads."
    )
    controller_manager: bool = Field(
        default=True,
        description="Run spire-controller-manager beside both servers: each declares the federation relationship "
        "with the other trust domain as a ClusterFederatedTrustDomain seeded with its bundle (no manual `bundle "
        "set`), and downstream ClusterSPIFFEID resources register pods that opt in (CRD-based registration, next "
        "to the SpireEntry resources). false: static relationships in server.conf, seeded once by hand.",
    )

    def problems(self, clusters: set[str], upstream_trust_domain: str) -> list[str]:
        """`kubernetes.enterprise.<key>: ...` lines."""
        out = []
        for side in ("upstream", "downstream"):
            name = getattr(self, side).cluster
            if name not in clusters:
                out.append(
                    f"kubernetes.enterprise.{side}.cluster: {name!r} is not a key of kubernetes.clusters "
                    f"({sorted(clusters)}): name one of them"
                )
        if self.upstream.cluster == self.downstream.cluster:
            out.append(
                "kubernetes.enterprise.downstream.cluster: the downstream server runs in the other cluster than "
                f"the upstream ({self.upstream.cluster!r}): name the second cluster"
            )
        if self.downstream.trust_domain == upstream_trust_domain:
            out.append(
                f"kubernetes.enterprise.downstream.trustDomain: {self.downstream.trust_domain!r} is also "
                "spire.trustDomain (the upstream's): the two servers federate, which needs two trust domains; "
                "choose another (e.g. downstream.<your domain>)"
            )
        return out

    def trust_domains(self, upstream_trust_domain: str) -> dict[str, str]:
        """Cluster name -> the trust domain of the server that runs there."""
        return {self.upstream.cluster: upstream_trust_domain, self.downstream.cluster: self.downstream.trust_domain}
