"""SpireServer: the SPIRE server of a cluster, in the `spire-server` namespace.

- A StatefulSet of `SERVER_REPLICAS` servers sharing one PostgreSQL datastore (`spire-db`, a
  StatefulSet of its own), so a rescheduled or second server sees the same entries; each server
  keeps its own CA keys on its own volume (KeyManager "disk"), as SPIRE's HA setup expects.
- `UpstreamAuthority "disk"` with the platform's root CA (a Secret mounted read-only), so every
  SVID chains to the root the rest of the trust chain uses.
- `k8s_psat` node attestation: the server reviews agents' projected tokens (TokenReview) and
  reads their pods and nodes; its ClusterRole grants exactly `create tokenreviews`, `get pods`
  and `get nodes`, nothing to list, watch or write.
- Passwords: PostgreSQL's from pulumi-random, delivered as Secrets mounted as files (the
  database reads `POSTGRES_PASSWORD_FILE`, SPIRE a libpq password file), never an environment
  value, a ConfigMap or a plain output.
- Pods at the restricted Pod Security level, requests and limits, probes on the health listener;
  a PodDisruptionBudget keeps one server up through voluntary disruptions; network policies allow
  only agents -> server:8081, server -> database:5432, server -> API server, and DNS.
- `exposure` (enterprise): a NodePort Service for the agent API and the federation bundle endpoint
  (8443), and the flows across clusters: peers may reach 8081 and 8443 from outside the cluster
  (both authenticate the caller themselves: k8s_psat tokens, SPIFFE mTLS), and the server may
  reach the other cluster's bundle endpoint NodePort.
- nesting (enterprise, `kubernetes.enterprise.nesting: spire`): the downstream server has no CA
  of its own (`root_ca_*` None) and reads the upstream's agent socket from a CSI volume of that
  agent's driver (`upstream_socket_driver`: an inline CSI volume keeps the pod at the restricted
  level, where a hostPath would not); the upstream server reads the kubeconfig it reviews the
  downstream cluster's tokens with from an optional Secret (`peer_kubeconfig`: the server starts
  without it, and only that cluster's attestations fail until it exists: `pulumi up` makes it with
  `kubernetes.enterprise.downstream.apiServer`, the operator otherwise).
- `sidecars`: containers that share the pod, such as spire-controller-manager, which reaches the
  server's admin API through the socket directory (a Unix socket: it cannot be another pod).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes import security as sec
from components.kubernetes.spire_config import (
    AGENT_NAME,
    DATABASE_NAME,
    HEALTH_PORT,
    METRICS_PORT,
    PEER_KUBECONFIG,
    PEER_KUBECONFIG_KEY,
    PEER_KUBECONFIG_SECRET,
    PGPASS,
    SERVER_CONF_DIR,
    SERVER_DATA,
    SERVER_NAME,
    SERVER_NAMESPACE,
    SERVER_PORT,
    SERVER_SECRETS,
    SERVER_SOCKET_DIR,
    SERVER_UPSTREAM_SOCKET_DIR,
    SYSTEM_NAMESPACE,
    UPSTREAM_BUNDLE,
    UPSTREAM_CERT,
    UPSTREAM_KEY,
)

SERVER_UID = 1000  # the spire-server image's user
POSTGRES_UID = 999  # the postgres image's `postgres` user
SERVER_REPLICAS = 2
DATABASE_PORT = 5432
# The API server as pods reach it: the `kubernetes` Service's port, or the endpoint's own
# (6443) where the CNI applies policies after the Service's address is translated.
API_SERVER_PORTS = (443, 6443)
SECRET_FILE_MODE = 0o440  # owner root, group = the pod's fsGroup: readable by the server's user only


@dataclass(frozen=True)
class ServerExposure:
    """The server reached from outside its cluster (enterprise): NodePorts by port name (`grpc`,
    `federation`), its bundle endpoint's port (None: no federation), and the other clusters' NodePorts
    it calls (their bundle endpoints, or the upstream server's agent API when nested)."""

    node_ports: Mapping[str, int]
    federation_port: int | None
    peer_ports: tuple[int, ...] = ()


@dataclass(frozen=True)
class Sidecar:
    """A container of the server pod and the volumes only it mounts; it may mount `admin-socket`."""

    container: k8s.core.v1.ContainerArgsDict
    volumes: Sequence[k8s.core.v1.VolumeArgsDict] = ()


@dataclass(frozen=True)
class SpireServerArgs:
    namespace: pulumi.Input[str]
    server_conf: str
    server_image: str
    postgres_image: str
    # The UpstreamAuthority "disk" CA; None when the CA comes from an upstream server (nested).
    root_ca_cert_pem: pulumi.Input[str] | None
    root_ca_key_pem: pulumi.Input[str] | None
    server_storage: str
    database_storage: str
    storage_class: str | None = None
    # The chain up to the root when the upstream CA is an intermediate (UpstreamAuthority disk's bundle).
    upstream_bundle_pem: pulumi.Input[str] | None = None
    exposure: ServerExposure | None = None
    sidecars: Sequence[Sidecar] = field(default_factory=tuple)
    # Nested downstream: the CSI driver serving the upstream server's agent socket.
    upstream_socket_driver: str | None = None
    # Upstream of a nested downstream: read the downstream cluster's kubeconfig (optional Secret).
    peer_kubeconfig: bool = False
    depends_on: Sequence[pulumi.Resource] = ()


def _claim(name: str, size: str, storage_class: str | None) -> k8s.core.v1.PersistentVolumeClaimArgsDict:
    return {"metadata": {"name": name}, "spec": sec.claim_spec(size, storage_class)}


REVIEWER_ROLE = "identity-platform-spire-server"


def psat_reviewer(name: str, namespace: pulumi.Input[str], parent: pulumi.Resource) -> k8s.core.v1.ServiceAccount:
    """The `spire-server` service account and the one ClusterRole k8s_psat needs: review each
    agent's projected token, then read the agent's pod and node (by name: no list or watch, no
    write). The server in the cluster runs as it (basic); a server outside uses a token of it
    (crd-free: `kubectl create token spire-server -n spire-system`, in its `kube_config_file`)."""
    role = k8s.rbac.v1.ClusterRole(
        f"{name}-role",
        metadata={"name": REVIEWER_ROLE, "labels": sec.labels(SERVER_NAME, "server")},
        rules=[
            {"api_groups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
            {"api_groups": [""], "resources": ["pods", "nodes"], "verbs": ["get"]},
        ],
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return reviewer_account(name, SERVER_NAME, namespace, parent, role)


def reviewer_account(name: str, account: str, namespace: pulumi.Input[str], parent: pulumi.Resource,
                     role: k8s.rbac.v1.ClusterRole | None = None) -> k8s.core.v1.ServiceAccount:
    """A service account without a mounted token, bound to the k8s_psat reviewer ClusterRole
    (`role`, or the cluster's own server's when another server reviews with it: the enterprise
    topology's nested upstream, through a token of it in its `kube_config_file`)."""
    sa = k8s.core.v1.ServiceAccount(
        f"{name}-account",
        metadata=sec.meta(account, namespace, account, "server"),
        automount_service_account_token=False,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    k8s.rbac.v1.ClusterRoleBinding(
        f"{name}-role-binding",
        metadata={"name": f"identity-platform-{account}", "labels": sec.labels(account, "server")},
        role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                  "name": role.metadata.name if role is not None else REVIEWER_ROLE},
        subjects=[{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[sa]),
    )
    return sa


class SpireServer(pulumi.ComponentResource):
    """The server StatefulSet, its datastore, RBAC, PDB and network policies."""

    service_name: str
    statefulset: k8s.apps.v1.StatefulSet
    database: k8s.apps.v1.StatefulSet

    def __init__(self, name: str, args: SpireServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:SpireServer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace
        self.service_name = SERVER_NAME

        # --- identity and RBAC: what k8s_psat needs, nothing more ---------------------------------
        account = psat_reviewer(name, ns, self)

        # --- secrets, as files ------------------------------------------------------------------
        password = random.RandomPassword(f"{name}-db-password", length=32, special=False, opts=child)
        db_secret = k8s.core.v1.Secret(
            f"{name}-db-secret",
            metadata=sec.meta(f"{DATABASE_NAME}-password", ns, DATABASE_NAME, "database"),
            string_data={"password": password.result},
            opts=child,
        )
        host = f"{DATABASE_NAME}.{SERVER_NAMESPACE}.svc"
        pgpass = k8s.core.v1.Secret(
            f"{name}-pgpass",
            metadata=sec.meta(f"{SERVER_NAME}-pgpass", ns, SERVER_NAME, "server"),
            string_data={PGPASS: password.result.apply(lambda pw: f"{host}:{DATABASE_PORT}:spire:spire:{pw}\n")},
            opts=child,
        )
        secret_sources: list[k8s.core.v1.VolumeProjectionArgsDict] = []
        if args.root_ca_cert_pem is not None and args.root_ca_key_pem is not None:
            upstream_files: dict[str, pulumi.Input[str]] = {
                UPSTREAM_CERT: args.root_ca_cert_pem,
                UPSTREAM_KEY: pulumi.Output.secret(args.root_ca_key_pem),
            }
            if args.upstream_bundle_pem is not None:
                upstream_files[UPSTREAM_BUNDLE] = args.upstream_bundle_pem
            upstream = k8s.core.v1.Secret(
                f"{name}-upstream-ca",
                metadata=sec.meta(f"{SERVER_NAME}-upstream-ca", ns, SERVER_NAME, "server"),
                string_data=upstream_files,
                opts=child,
            )
            secret_sources.append({"secret": {"name": upstream.metadata.name}})
        conf = k8s.core.v1.ConfigMap(
            f"{name}-conf",
            metadata=sec.meta(SERVER_NAME, ns, SERVER_NAME, "server"),
            data={"server.conf": args.server_conf},
            opts=child,
        )

        # --- the datastore: its own account, which has no role and no token -----------------------
        db_account = k8s.core.v1.ServiceAccount(
            f"{name}-db-account",
            metadata=sec.meta(DATABASE_NAME, ns, DATABASE_NAME, "database"),
            automount_service_account_token=False,
            opts=child,
        )
        db_service = k8s.core.v1.Service(
            f"{name}-db-service",
            metadata=sec.meta(DATABASE_NAME, ns, DATABASE_NAME, "database"),
            spec={
                "cluster_ip": "None",  # headless: the StatefulSet's governing Service
                "selector": sec.selector(DATABASE_NAME),
                "ports": [{"name": "postgres", "port": DATABASE_PORT, "target_port": DATABASE_PORT}],
            },
            opts=child,
        )
        db_container: k8s.core.v1.ContainerArgsDict = {
            "name": "postgres",
            "image": args.postgres_image,
            "env": [
                {"name": "POSTGRES_USER", "value": "spire"},
                {"name": "POSTGRES_DB", "value": "spire"},
                {"name": "POSTGRES_PASSWORD_FILE", "value": "/run/secrets/postgres/password"},
                {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
            ],
            "ports": [{"name": "postgres", "container_port": DATABASE_PORT}],
            "readiness_probe": {"exec_": {"command": ["pg_isready", "-U", "spire", "-d", "spire", "-h", "127.0.0.1"]},
                                "period_seconds": 10},
            "liveness_probe": {"exec_": {"command": ["pg_isready", "-U", "spire", "-d", "spire", "-h", "127.0.0.1"]},
                               "period_seconds": 30, "failure_threshold": 5},
            "resources": sec.DATABASE_RESOURCES.spec(),
            "security_context": sec.restricted_container(),
            "volume_mounts": [
                {"name": "data", "mount_path": "/var/lib/postgresql/data"},
                {"name": "password", "mount_path": "/run/secrets/postgres", "read_only": True},
                # The read-only root filesystem: the server's socket and temporary files go here.
                {"name": "run", "mount_path": "/var/run/postgresql"},
                {"name": "tmp", "mount_path": "/tmp"},  # noqa: S108
            ],
        }
        self.database = k8s.apps.v1.StatefulSet(
            f"{name}-db",
            metadata=sec.meta(DATABASE_NAME, ns, DATABASE_NAME, "database"),
            spec={
                "service_name": DATABASE_NAME,
                "replicas": 1,
                "selector": {"match_labels": sec.selector(DATABASE_NAME)},
                "template": {
                    "metadata": {"labels": sec.labels(DATABASE_NAME, "database")},
                    "spec": {
                        "service_account_name": DATABASE_NAME,
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "security_context": sec.pod_security(POSTGRES_UID),
                        "containers": [db_container],
                        "volumes": [
                            {"name": "password", "secret": {"secret_name": db_secret.metadata.name,
                                                            "default_mode": SECRET_FILE_MODE}},
                            {"name": "run", "empty_dir": {"medium": "Memory", "size_limit": "16Mi"}},
                            {"name": "tmp", "empty_dir": {"size_limit": "64Mi"}},
                        ],
                    },
                },
                "volume_claim_templates": [_claim("data", args.database_storage, args.storage_class)],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[db_service, db_account]),
        )

        # --- the server -------------------------------------------------------------------------
        service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=sec.meta(SERVER_NAME, ns, SERVER_NAME, "server"),
            spec={
                "selector": sec.selector(SERVER_NAME),
                "ports": [{"name": "grpc", "port": SERVER_PORT, "target_port": SERVER_PORT}],
            },
            opts=child,
        )
        pods = k8s.core.v1.Service(
            f"{name}-pods",
            metadata=sec.meta(f"{SERVER_NAME}-pods", ns, SERVER_NAME, "server"),
            spec={"cluster_ip": "None", "selector": sec.selector(SERVER_NAME),
                  "ports": [{"name": "grpc", "port": SERVER_PORT, "target_port": SERVER_PORT}]},
            opts=child,
        )
        exposure = args.exposure
        ports: list[k8s.core.v1.ContainerPortArgsDict] = [
            {"name": "grpc", "container_port": SERVER_PORT},
            {"name": "health", "container_port": HEALTH_PORT},
            {"name": "metrics", "container_port": METRICS_PORT},
        ]
        if exposure is not None:
            if exposure.federation_port is not None:
                ports.append({"name": "federation", "container_port": exposure.federation_port})
            _node_port_service(name, ns, exposure, self)
        upstream_socket: list[k8s.core.v1.VolumeArgsDict] = []
        if args.upstream_socket_driver is not None:
            # Read-only: the server only dials the socket (a CSI volume, allowed at the restricted level).
            upstream_socket.append({"name": "upstream-agent", "csi": {"driver": args.upstream_socket_driver,
                                                                      "read_only": True}})
        if args.peer_kubeconfig:
            # Optional: made after the server (from a token of the other cluster) or by the operator.
            secret_sources.append({"secret": {"name": PEER_KUBECONFIG_SECRET, "optional": True,
                                              "items": [{"key": PEER_KUBECONFIG_KEY, "path": PEER_KUBECONFIG}]}})
        server_container: k8s.core.v1.ContainerArgsDict = {
            "name": SERVER_NAME,
            "image": args.server_image,
            "args": ["-config", f"{SERVER_CONF_DIR}/server.conf"],
            "ports": ports,
            "liveness_probe": {
                "http_get": {"path": "/live", "port": HEALTH_PORT}, "period_seconds": 30, "failure_threshold": 3,
            },
            "readiness_probe": {"http_get": {"path": "/ready", "port": HEALTH_PORT}, "period_seconds": 10},
            "resources": sec.SERVER_RESOURCES.spec(),
            "security_context": sec.restricted_container(),
            "volume_mounts": [
                {"name": "conf", "mount_path": SERVER_CONF_DIR, "read_only": True},
                {"name": "secrets", "mount_path": SERVER_SECRETS, "read_only": True},
                {"name": "data", "mount_path": SERVER_DATA},
                # The admin socket (entries are registered through it with `kubectl exec`).
                {"name": "admin-socket", "mount_path": SERVER_SOCKET_DIR},
                *({"name": v["name"], "mount_path": SERVER_UPSTREAM_SOCKET_DIR, "read_only": True}
                  for v in upstream_socket),
            ],
        }
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=sec.meta(SERVER_NAME, ns, SERVER_NAME, "server"),
            spec={
                "service_name": f"{SERVER_NAME}-pods",
                "replicas": SERVER_REPLICAS,
                "pod_management_policy": "Parallel",
                "selector": {"match_labels": sec.selector(SERVER_NAME)},
                "template": {
                    "metadata": {
                        "labels": sec.labels(SERVER_NAME, "server"),
                        # A changed server.conf rolls the servers over to it.
                        "annotations": {"identity-platform/server-conf": sec.digest(args.server_conf)},
                    },
                    "spec": {
                        "service_account_name": SERVER_NAME,
                        # The k8s_psat server plugin calls the API server with this token.
                        "automount_service_account_token": True,
                        "enable_service_links": False,
                        "security_context": sec.pod_security(SERVER_UID),
                        # Sidecars share the admin socket: one process namespace is not needed for that.
                        "containers": [server_container, *(c.container for c in args.sidecars)],
                        "volumes": [
                            {"name": "conf", "config_map": {"name": conf.metadata.name}},
                            {"name": "secrets", "projected": {"default_mode": SECRET_FILE_MODE, "sources": [
                                *secret_sources,
                                {"secret": {"name": pgpass.metadata.name}},
                            ]}},
                            *upstream_socket,
                            {"name": "admin-socket", "empty_dir": {"medium": "Memory", "size_limit": "1Mi"}},
                            *(v for c in args.sidecars for v in c.volumes),
                        ],
                    },
                },
                "volume_claim_templates": [_claim("data", args.server_storage, args.storage_class)],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pods, service, self.database, account,
                                                                 *args.depends_on]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=sec.meta(SERVER_NAME, ns, SERVER_NAME, "server"),
            spec={"min_available": 1, "selector": {"match_labels": sec.selector(SERVER_NAME)}},
            opts=child,
        )

        # --- network policies: deny everything, then the flows the server needs ------------------
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny", metadata=sec.meta("default-deny", ns, SERVER_NAME, "policy"),
            spec=sec.default_deny(), opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-server-policy",
            metadata=sec.meta(SERVER_NAME, ns, SERVER_NAME, "policy"),
            spec=sec.allow(
                SERVER_NAME,
                # Agents attest and fetch SVIDs on 8081.
                ingress=[{"from_": [sec.peer(SYSTEM_NAMESPACE, AGENT_NAME)], "ports": sec.tcp(SERVER_PORT)},
                         *_exposed_ingress(exposure)],
                egress=[
                    {"to": [sec.pod(DATABASE_NAME)], "ports": sec.tcp(DATABASE_PORT)},
                    # TokenReview and pod/node reads: the API server's address differs per cluster.
                    {"ports": sec.tcp(*API_SERVER_PORTS)},
                    sec.dns_egress(),
                    *_exposed_egress(exposure),
                ],
            ),
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-db-policy",
            metadata=sec.meta(DATABASE_NAME, ns, DATABASE_NAME, "policy"),
            spec=sec.allow(
                DATABASE_NAME,
                ingress=[{"from_": [sec.pod(SERVER_NAME)], "ports": sec.tcp(DATABASE_PORT)}],
            ),
            opts=child,
        )
        self.register_outputs({"service_name": self.service_name})



def _node_port_service(name: str, ns: pulumi.Input[str], exposure: ServerExposure,
                       parent: pulumi.Resource) -> k8s.core.v1.Service:
    """The agent API and the bundle endpoint on every node's `exposure.node_ports`."""
    targets = {"grpc": SERVER_PORT, **({"federation": exposure.federation_port}
                                       if exposure.federation_port is not None else {})}
    return k8s.core.v1.Service(
        f"{name}-node-ports",
        metadata=sec.meta(f"{SERVER_NAME}-external", ns, SERVER_NAME, "server"),
        spec={
            "type": "NodePort",
            "selector": sec.selector(SERVER_NAME),
            "ports": [{"name": port, "port": targets[port], "target_port": targets[port], "node_port": node_port}
                      for port, node_port in sorted(exposure.node_ports.items())],
        },
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _exposed_ingress(exposure: ServerExposure | None) -> list[k8s.networking.v1.NetworkPolicyIngressRuleArgsDict]:
    """From outside the cluster (a NodePort's source is any node or peer): the agent API and the
    bundle endpoint, each authenticating its callers itself."""
    if exposure is None:
        return []
    ports = [SERVER_PORT] if exposure.federation_port is None else [SERVER_PORT, exposure.federation_port]
    return [{"ports": sec.tcp(*ports)}]


def _exposed_egress(exposure: ServerExposure | None) -> list[k8s.networking.v1.NetworkPolicyEgressRuleArgsDict]:
    """To the other clusters: their bundle endpoints or agent API (NodePorts, on node addresses), or
    the downstream API server's port when it is not 443 or 6443 (nested upstream)."""
    if exposure is None or not exposure.peer_ports:
        return []
    return [{"ports": sec.tcp(*exposure.peer_ports)}]
