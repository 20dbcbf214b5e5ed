"""`kubernetes.enterprise`: the two clusters of the enterprise topology and how they reach each other.

The upstream cluster runs the root server of `spire.trustDomain` (UpstreamAuthority "disk" with the
platform's root CA, the same root the trust chain registers in OpenZiti); the downstream cluster
runs the server of `downstream.trustDomain`, whose CA is an intermediate the root signs
(pulumi-tls), so the downstream cluster never holds the root's key. The two trust domains federate
both ways: each server serves its bundle on 8443 (`https_spiffe`) and fetches the other's from the
other cluster's NodePort at `address` (the relationship and its first bundle come from
spire-controller-manager's ClusterFederatedTrustDomain unless `controllerManager` is false).

`nesting: spire` is the other shape: one trust domain, the downstream server nested under the
upstream (`UpstreamAuthority "spire"`: the upstream mints its intermediate CA), no federation.
SPIRE nests servers only within one trust domain (the plugin authenticates the upstream as
`spiffe://<its own trust domain>/spire/server`, spire v1.15.3
pkg/server/plugin/upstreamauthority/spire/spire.go; doc/plugin_server_upstreamauthority_spire.md),
so a downstream trust domain of its own is refused with it, and two trust domains are joined by
federation (`nesting: none`, the default).
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field

from stack_config.base import Hostname, Model, checked, hostname_problem
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


# k8s_psat cluster name of the upstream server's agents in the downstream cluster (nesting: spire):
# `<downstream cluster>-upstream`, a label of at most 63 characters.
NESTED_CLUSTER_SUFFIX = "-upstream"


def api_server_problem(v: str) -> str | None:
    """Why `v` is not the https URL of an API server (`https://<host>[:<port>]`), or None."""
    try:
        url = urlsplit(v)
        port = url.port
    except ValueError as e:
        return f"is not a URL ({e}): give https://<host>[:<port>]"
    if url.scheme != "https" or not url.hostname:
        return "is not an https URL: give https://<host>[:<port>] (the API server serves TLS only)"
    if url.username is not None or url.password is not None or url.query or url.fragment or url.path not in ("", "/"):
        return "has a path, query or user info: give https://<host>[:<port>] alone"
    host = hostname_problem(url.hostname)
    if host:
        return f"has an unusable host: {url.hostname!r} {host}"
    if port == 0:
        return "has port 0: give the API server's port (e.g. 6443) or none (443)"
    return None


ApiServerUrl = Annotated[str, checked(api_server_problem, lambda v, p: f"{v!r} {p}")]


class EnterpriseDownstream(EnterpriseCluster):
    api_server: ApiServerUrl | None = Field(
        default=None,
        description="nesting spire: URL of the downstream cluster's API server as the upstream cluster's pods reach "
        "it (https://<host>[:<port>]). Set: `pulumi up` makes a token of the reviewer account spire-upstream-reviewer "
        "in the downstream cluster and delivers its kubeconfig (this URL, the cluster CA, the token; a Pulumi secret) "
        "as the Secret spire-server/spire-server-downstream-kubeconfig of the upstream cluster. Unset: the operator "
        "creates that Secret (docs/architecture.md).",
    )
    trust_domain: TrustDomain | None = Field(
        default=None,
        description="Trust domain of the downstream server (nesting none: required, differs from spire.trustDomain, "
        "the upstream's, and is federated both ways with it; nesting spire: leave it out, the downstream server is "
        "in spire.trustDomain).",
    )


class EnterpriseSettings(Model):
    """The upstream (root, spire.trustDomain) and downstream (its own trust domain, or nested in
    spire.trustDomain with `nesting: spire`) sides."""

    upstream: EnterpriseCluster = Field(description="The root server's cluster (trust domain spire.trustDomain).")
    downstream: EnterpriseDownstream = Field(
        description="The downstream server's cluster and trust domain; its workloads run in downstream-workloads."
    )
    controller_manager: bool = Field(
        default=True,
        description="Run spire-controller-manager beside both servers: each declares the federation relationship "
        "with the other trust domain as a ClusterFederatedTrustDomain seeded with its bundle (no manual `bundle "
        "set`), and downstream ClusterSPIFFEID resources register pods that opt in (CRD-based registration, next "
        "to the SpireEntry resources). false: static relationships in server.conf, seeded once by hand. With "
        "nesting spire only beside the downstream server, for its ClusterSPIFFEIDs (nothing federates).",
    )

    nesting: Literal["none", "spire"] = Field(
        default="none",
        description="How the downstream server gets its CA. none: from an intermediate the root signs, in its own "
        "trust domain (downstream.trustDomain), federated both ways with the upstream's. spire: nested under the "
        "upstream server in spire.trustDomain (UpstreamAuthority \"spire\" through an upstream agent in the "
        "downstream cluster, registered on the upstream as a downstream entry); no federation, since SPIRE nests "
        "only within one trust domain. The upstream server then reviews that agent's k8s_psat tokens in the "
        "downstream cluster with the kubeconfig in the Secret spire-server/spire-server-downstream-kubeconfig of "
        "the upstream cluster: made by `pulumi up` with downstream.apiServer, else by the operator.",
    )

    @property
    def nested(self) -> bool:
        return self.nesting == "spire"

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
        out += self._trust_domain_problems(upstream_trust_domain)
        return out

    def _trust_domain_problems(self, upstream_trust_domain: str) -> list[str]:
        td = self.downstream.trust_domain
        if self.nested:
            out = []
            if td is not None and td != upstream_trust_domain:
                out.append(
                    f"kubernetes.enterprise.downstream.trustDomain: {td!r} differs from spire.trustDomain "
                    f"({upstream_trust_domain!r}), but nesting: spire puts the downstream server in the upstream's "
                    "trust domain (SPIRE's UpstreamAuthority \"spire\" works only within one trust domain): remove "
                    "it (fix: `pulumi config rm --path 'kubernetes.enterprise.downstream.trustDomain'`), or set "
                    "kubernetes.enterprise.nesting to none to federate two trust domains"
                )
            if len(self.downstream.cluster) + len(NESTED_CLUSTER_SUFFIX) > 63:
                out.append(
                    f"kubernetes.enterprise.downstream.cluster: {self.downstream.cluster!r} is too long for "
                    f"nesting: spire: the upstream's agents there attest as cluster "
                    f"'<name>{NESTED_CLUSTER_SUFFIX}', a label of at most 63 characters; use a name of at most "
                    f"{63 - len(NESTED_CLUSTER_SUFFIX)}"
                )
            return out
        out = []
        if self.downstream.api_server is not None:
            out.append(
                f"kubernetes.enterprise.downstream.apiServer: {self.downstream.api_server!r} is used only with "
                "kubernetes.enterprise.nesting spire (the upstream server reviews tokens in the downstream cluster "
                "only when nested): remove it (fix: `pulumi config rm --path "
                "'kubernetes.enterprise.downstream.apiServer'`), or set kubernetes.enterprise.nesting to spire"
            )
        if td is None:
            out.append(
                "kubernetes.enterprise.downstream.trustDomain: required with kubernetes.enterprise.nesting none: "
                "the downstream server has its own trust domain, federated with spire.trustDomain "
                "(fix: `pulumi config set --path 'kubernetes.enterprise.downstream.trustDomain' "
                "downstream.<your domain>`, or set kubernetes.enterprise.nesting to spire for one trust domain)"
            )
            return out
        if td == upstream_trust_domain:
            out.append(
                f"kubernetes.enterprise.downstream.trustDomain: {self.downstream.trust_domain!r} is also "
                "spire.trustDomain (the upstream's): the two servers federate, which needs two trust domains; "
                "choose another (e.g. downstream.<your domain>), or set kubernetes.enterprise.nesting to spire to nest "
                "the downstream server in it"
            )
        return out

    def downstream_trust_domain(self, upstream_trust_domain: str) -> str:
        """The downstream server's trust domain: its own, or the upstream's when nested."""
        if self.nested or self.downstream.trust_domain is None:
            return upstream_trust_domain
        return self.downstream.trust_domain

    @property
    def nested_cluster(self) -> str:
        """The k8s_psat cluster name the upstream server knows the downstream cluster's upstream agents by:
        not the downstream cluster's own, so their agent IDs differ from the downstream server's agents'
        on the same nodes (one trust domain, two servers)."""
        return f"{self.downstream.cluster}{NESTED_CLUSTER_SUFFIX}"

    def trust_domains(self, upstream_trust_domain: str) -> dict[str, str]:
        """Cluster name -> the trust domain of the server that runs there."""
        return {self.upstream.cluster: upstream_trust_domain,
                self.downstream.cluster: self.downstream_trust_domain(upstream_trust_domain)}
