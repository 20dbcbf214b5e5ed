"""The SPIRE server and agent configs of the Kubernetes topologies, built from the same typed models
(`components/spire_conf.py`) the Swarm stacks render, so both platforms ship text from one
renderer and the real `spire-server validate` / `spire-agent validate` check both.

Pure: no resources. Paths are the ones the pods mount (`SERVER_*`, `AGENT_*`).

Node attestation is `k8s_psat`: an agent presents its projected service-account token (audience
`spire-server`), the server reviews it with the API server (TokenReview) and reads the agent's pod
and node; only the agents' service account `spire-system:spire-agent` is allowed. Agent IDs then
carry node UIDs, unknown before the cluster runs, so workloads are parented to a node alias: an
entry `spiffe://<td>/k8s/<cluster>/agents` that every agent of the cluster gets by its
`k8s_psat:cluster` / `agent_ns` / `agent_sa` selectors (`node_alias`).
"""

from __future__ import annotations

import yaml

from components.spire_conf import AgentConf, AgentSection, HealthChecks, Plugin, ServerConf, ServerSection
from stack_config import KubernetesSettings, SpireSettings

SERVER_NAMESPACE = "spire-server"
SYSTEM_NAMESPACE = "spire-system"
WORKLOAD_NAMESPACE = "production"
SERVER_NAME = "spire-server"
AGENT_NAME = "spire-agent"
DATABASE_NAME = "spire-db"

SERVER_CONF_DIR = "/etc/spire/server"
SERVER_DATA = "/var/lib/spire/server"
SERVER_SOCKET_DIR = "/tmp/spire-server/private"  # noqa: S108 - the image's admin socket directory
SERVER_SOCKET = f"{SERVER_SOCKET_DIR}/api.sock"
SERVER_SECRETS = "/run/spire/secrets"
UPSTREAM_CERT = "upstream-ca.pem"
UPSTREAM_KEY = "upstream-ca.key"
UPSTREAM_BUNDLE = "upstream-bundle.pem"  # the root(s), when the upstream CA is an intermediate
PGPASS = "spire-db.pgpass"
SERVER_PORT = 8081
HEALTH_PORT = 8080
METRICS_PORT = 9988

# The enterprise topology's nesting: the upstream server's agents in the downstream cluster serve
# their Workload API from their own host directory, through a CSI driver of their own, to the
# downstream server's pod, whose UpstreamAuthority "spire" dials it there.
UPSTREAM_AGENT_NAME = "spire-upstream-agent"
UPSTREAM_CSI_NAME = "spiffe-upstream-csi-driver"
UPSTREAM_CSI_DRIVER = "upstream.csi.spiffe.io"
UPSTREAM_AGENT_HOST_DIR = "/run/spire/upstream-sockets"
SERVER_UPSTREAM_SOCKET_DIR = "/run/spire/upstream-agent"
# The kubeconfig the upstream server reviews those agents' tokens with in the downstream cluster:
# a Secret (it holds a token of that cluster) projected into SERVER_SECRETS, which `pulumi up`
# makes with kubernetes.enterprise.downstream.apiServer (`peer_kubeconfig`, from the token of
# UPSTREAM_REVIEWER_TOKEN) and the operator otherwise.
PEER_KUBECONFIG_SECRET = "spire-server-downstream-kubeconfig"  # noqa: S105 - a Secret's name
PEER_KUBECONFIG_KEY = "kubeconfig"
PEER_KUBECONFIG = "downstream-kubeconfig"
# The upstream server's identity in the downstream cluster and its token Secret there
# (`kubernetes.io/service-account-token`: the cluster's token controller fills it).
UPSTREAM_REVIEWER = "spire-upstream-reviewer"
UPSTREAM_REVIEWER_TOKEN = f"{UPSTREAM_REVIEWER}-token"

AGENT_CONF_DIR = "/etc/spire/agent"
AGENT_BUNDLE_DIR = "/run/spire/bundle"
AGENT_BUNDLE = "bundle.pem"
AGENT_SOCKET_DIR = "/run/spire/sockets"
AGENT_SOCKET = f"{AGENT_SOCKET_DIR}/agent.sock"
AGENT_DATA = "/var/lib/spire/agent"
AGENT_TOKEN_DIR = "/var/run/secrets/tokens"  # noqa: S105 - a directory, not a secret
AGENT_TOKEN = f"{AGENT_TOKEN_DIR}/spire-agent"  # the k8s_psat agent plugin's default token_path
AGENT_TOKEN_AUDIENCE = "spire-server"  # noqa: S105 - the k8s_psat server plugin default audience
# The pod's own service-account token: the k8s workload attestor authenticates to the kubelet with it.
POD_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NODE_NAME_ENV = "MY_NODE_NAME"  # the k8s workload attestor reaches the kubelet at this node's name


def peer_kubeconfig(cluster: str, server: str, ca_data: str, token: str) -> str:
    """The kubeconfig the upstream server reviews the downstream cluster's tokens with: one
    cluster (`server`, its CA as base64 `certificate-authority-data`), one user (the reviewer's
    bearer `token`), one context. A YAML document dumped from data, so no value can break it."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": UPSTREAM_REVIEWER, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": UPSTREAM_REVIEWER}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def server_address() -> str:
    """The in-cluster DNS name of the server's Service."""
    return f"{SERVER_NAME}.{SERVER_NAMESPACE}.svc"


def postgres_datastore() -> Plugin:
    """The `sql` DataStore on the namespace's PostgreSQL; the password reaches SPIRE as a libpq
    password file (`passfile=`, a Secret mounted 0400), never in server.conf or the environment."""
    conn = (
        f"dbname=spire user=spire host={DATABASE_NAME}.{SERVER_NAMESPACE}.svc port=5432 sslmode=disable "
        f"passfile={SERVER_SECRETS}/{PGPASS}"
    )
    return Plugin(name="sql", data={"database_type": "postgres", "connection_string": conn})


def build_server_conf(spire: SpireSettings, cluster: str) -> ServerConf:
    """server.conf of the basic topology's server (one cluster): `spire` gives its trust domain and TTLs."""
    return ServerConf(
        server=ServerSection(
            trust_domain=spire.trust_domain,
            bind_port=str(SERVER_PORT),
            data_dir=SERVER_DATA,
            socket_path=SERVER_SOCKET,
            ca_ttl=spire.ca_ttl,
            default_x509_svid_ttl=spire.default_x509_svid_ttl,
            default_jwt_svid_ttl=spire.default_jwt_svid_ttl,
        ),
        data_store=postgres_datastore(),
        key_manager=Plugin(name="disk", data={"keys_path": f"{SERVER_DATA}/keys.json"}),
        node_attestors=[
            Plugin(
                name="k8s_psat",
                data={"clusters": {cluster: {"service_account_allow_list": [f"{SYSTEM_NAMESPACE}:{AGENT_NAME}"]}}},
            )
        ],
        upstream_authority=Plugin(
            name="disk",
            data={
                "cert_file_path": f"{SERVER_SECRETS}/{UPSTREAM_CERT}",
                "key_file_path": f"{SERVER_SECRETS}/{UPSTREAM_KEY}",
            },
        ),
        health_checks=HealthChecks(bind_port=str(HEALTH_PORT)),
    )


def build_agent_conf(trust_domain: str, k8s: KubernetesSettings, cluster: str) -> AgentConf:
    """agent.conf of the cluster's agents in `trust_domain`: the cluster's own server (basic), or
    the external one (crd-free: `k8s.external_server`)."""
    attestor: dict[str, str | bool] = {"node_name_env": NODE_NAME_ENV, "token_path": f"{POD_ACCOUNT_DIR}/token"}
    if k8s.skip_kubelet_verification:
        attestor["skip_kubelet_verification"] = True
    external = k8s.external_server
    return AgentConf(
        agent=AgentSection(
            server_address=external.address if external else server_address(),
            server_port=str(external.port if external else SERVER_PORT),
            trust_domain=trust_domain,
            socket_path=AGENT_SOCKET,
            trust_bundle_path=f"{AGENT_BUNDLE_DIR}/{AGENT_BUNDLE}",
            data_dir=AGENT_DATA,
        ),
        node_attestor=Plugin(name="k8s_psat", data={"cluster": cluster, "token_path": AGENT_TOKEN}),
        key_manager=Plugin(name="disk", data={"directory": AGENT_DATA}),
        workload_attestors=[Plugin(name="k8s", data=dict(attestor))],
        health_checks=HealthChecks(bind_port=str(HEALTH_PORT)),
    )


def node_alias(trust_domain: str, cluster: str, agent: str = AGENT_NAME) -> tuple[str, list[str]]:
    """The SPIFFE ID and selectors of the entry every agent of `cluster` (service account `agent`
    in spire-system) is aliased to."""
    return (
        f"spiffe://{trust_domain}/k8s/{cluster}/agents",
        [
            f"k8s_psat:cluster:{cluster}",
            f"k8s_psat:agent_ns:{SYSTEM_NAMESPACE}",
            f"k8s_psat:agent_sa:{agent}",
        ],
    )


def spire_upstream(server_address: str, server_port: int, workload_api_socket: str) -> Plugin:
    """`UpstreamAuthority "spire"` of a nested (downstream) server: it asks the upstream server of
    the same trust domain for its intermediate CA, authenticated by the SVID the upstream's agent
    gives it through `workload_api_socket` (a `downstream` entry on the upstream names it)."""
    return Plugin(name="spire", data={
        "server_address": server_address,
        "server_port": str(server_port),
        "workload_api_socket": workload_api_socket,
    })
