"""SpireAgents: a SPIRE agent on every node of a cluster and the SPIFFE CSI driver, in
`spire-system` (the one namespace at the privileged Pod Security level).

The agent (DaemonSet):
- attests with `k8s_psat`: a projected service-account token with audience `spire-server`,
  rotated by the kubelet; the server reviews it and aliases every agent of the cluster to one
  node entry (`spire_config.node_alias`);
- trusts the server through the platform's root CA (a ConfigMap: it is public), the same root
  the server's UpstreamAuthority chains to;
- serves the Workload API at `/run/spire/sockets/agent.sock`, a host directory the CSI driver
  mounts into workload pods, so workloads need no hostPath and stay at the restricted level;
- attests workloads with the `k8s` attestor, which asks this node's kubelet (reached by node
  name, `MY_NODE_NAME`) for the caller's pod; its ClusterRole grants `get nodes/pods` only, the
  kubelet's fine-grained permission for listing pods, and not `nodes/proxy`, which would allow
  `exec` into every pod of the node.

The exceptions to the restricted level, each needed and nothing more:
- `hostPID`: the attestor maps the caller's PID (from the socket's peer credentials) to its pod
  through /proc; in its own PID namespace the agent would see no workload's process;
- a hostPath directory for the socket, shared with the CSI driver;
- the agent runs as uid 0 with every capability dropped: the host directory is created
  root-owned by the kubelet (fsGroup does not apply to hostPath), and the image runs as root for
  exactly this, sharing the socket (spire's Dockerfile); with no capability, root cannot bypass
  file permissions, load modules or trace other processes;
- the CSI driver is privileged: it bind-mounts the socket directory into pods' volumes, which
  needs bidirectional mount propagation on the kubelet's pod directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes.spire_config import (
    AGENT_BUNDLE,
    AGENT_BUNDLE_DIR,
    AGENT_CONF_DIR,
    AGENT_DATA,
    AGENT_NAME,
    AGENT_SOCKET_DIR,
    AGENT_TOKEN,
    AGENT_TOKEN_AUDIENCE,
    AGENT_TOKEN_DIR,
    HEALTH_PORT,
    NODE_NAME_ENV,
    SERVER_NAME,
    SERVER_NAMESPACE,
    SERVER_PORT,
)

CSI_DRIVER = "csi.spiffe.io"
CSI_NAME = "spiffe-csi-driver"
KUBELET_PORT = 10250
TOKEN_SECONDS = 7200  # the kubelet rotates it at 80 % of its life
CSI_HEALTH_PORT = 9809


@dataclass(frozen=True)
class AgentNames:
    """The names of one set of agents of a node, so two sets share `spire-system`: the cluster's
    own (the defaults) and, with the enterprise topology's nesting, the upstream server's agents in
    the downstream cluster, each with its own host socket directory and CSI driver."""

    agent: str = AGENT_NAME
    csi: str = CSI_NAME
    csi_driver: str = CSI_DRIVER
    host_socket_dir: str = AGENT_SOCKET_DIR
    bundle: str = "spire-bundle"
    # The namespace's default-deny policy comes with the first set only.
    default_deny: bool = True

    @property
    def role(self) -> str:
        return f"identity-platform-{self.agent}"


@dataclass(frozen=True)
class SpireAgentsArgs:
    namespace: pulumi.Input[str]
    agent_conf: str
    bundle_pem: pulumi.Input[str]
    agent_image: str
    csi_driver_image: str
    csi_registrar_image: str
    # The server's pods (basic), or None for a server outside the cluster (crd-free), whose address
    # a policy cannot name: then the agents may reach `server_port` on any address.
    server_peer: k8s.networking.v1.NetworkPolicyPeerArgsDict | None = field(
        default_factory=lambda: sec.peer(SERVER_NAMESPACE, SERVER_NAME)
    )
    server_port: int = SERVER_PORT
    names: AgentNames = field(default_factory=AgentNames)


def _node_name() -> k8s.core.v1.EnvVarArgsDict:
    return {"name": NODE_NAME_ENV, "value_from": {"field_ref": {"field_path": "spec.nodeName"}}}


def agent_container_security() -> k8s.core.v1.SecurityContextArgsDict:
    """Root without any capability (see the module docstring): the socket's host directory is
    root-owned; nothing else of root's power is kept."""
    return {**sec.restricted_container(), "run_as_user": 0, "run_as_non_root": False}


class SpireAgents(pulumi.ComponentResource):
    """The agent DaemonSet, its RBAC and configs, the CSI driver and the namespace's policies."""

    daemonset: k8s.apps.v1.DaemonSet
    csi_daemonset: k8s.apps.v1.DaemonSet

    def __init__(self, name: str, args: SpireAgentsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:SpireAgents", name, None, opts)
        n = args.names
        child = pulumi.ResourceOptions(parent=self)
        ns = args.namespace

        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata=sec.meta(n.agent, ns, n.agent, "agent"),
            automount_service_account_token=False,
            opts=child,
        )
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-role",
            metadata={"name": n.role, "labels": sec.labels(n.agent, "agent")},
            # The kubelet's /pods, which the k8s workload attestor reads to find the caller's pod.
            rules=[{"api_groups": [""], "resources": ["nodes/pods"], "verbs": ["get"]}],
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-role-binding",
            metadata={"name": n.role, "labels": sec.labels(n.agent, "agent")},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": n.agent, "namespace": ns}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )
        conf = k8s.core.v1.ConfigMap(
            f"{name}-conf",
            metadata=sec.meta(n.agent, ns, n.agent, "agent"),
            data={"agent.conf": args.agent_conf},
            opts=child,
        )
        bundle = k8s.core.v1.ConfigMap(
            f"{name}-bundle",
            metadata=sec.meta(n.bundle, ns, n.agent, "agent"),
            data={AGENT_BUNDLE: args.bundle_pem},
            opts=child,
        )

        agent: k8s.core.v1.ContainerArgsDict = {
            "name": n.agent,
            "image": args.agent_image,
            "args": ["-config", f"{AGENT_CONF_DIR}/agent.conf"],
            "env": [_node_name()],
            "ports": [{"name": "health", "container_port": HEALTH_PORT}],
            "liveness_probe": {"http_get": {"path": "/live", "port": HEALTH_PORT}, "period_seconds": 30},
            "readiness_probe": {"http_get": {"path": "/ready", "port": HEALTH_PORT}, "period_seconds": 10},
            "resources": sec.AGENT_RESOURCES.spec(),
            "security_context": agent_container_security(),
            "volume_mounts": [
                {"name": "conf", "mount_path": AGENT_CONF_DIR, "read_only": True},
                {"name": "bundle", "mount_path": AGENT_BUNDLE_DIR, "read_only": True},
                {"name": "token", "mount_path": AGENT_TOKEN_DIR, "read_only": True},
                {"name": "sockets", "mount_path": AGENT_SOCKET_DIR},
                {"name": "data", "mount_path": AGENT_DATA},
            ],
        }
        self.daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata=sec.meta(n.agent, ns, n.agent, "agent"),
            spec={
                "selector": {"match_labels": sec.selector(n.agent)},
                "update_strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 1}},
                "template": {
                    "metadata": {
                        "labels": sec.labels(n.agent, "agent"),
                        "annotations": {"identity-platform/agent-conf": sec.digest(args.agent_conf)},
                    },
                    "spec": {
                        "service_account_name": n.agent,
                        # The k8s workload attestor authenticates to the kubelet with this token.
                        "automount_service_account_token": True,
                        "enable_service_links": False,
                        # The attestor resolves a caller's PID through /proc: it must see the host's PIDs.
                        "host_pid": True,
                        "security_context": {"seccomp_profile": {"type": "RuntimeDefault"}},
                        "containers": [agent],
                        "volumes": [
                            {"name": "conf", "config_map": {"name": conf.metadata.name}},
                            {"name": "bundle", "config_map": {"name": bundle.metadata.name}},
                            {"name": "token", "projected": {"sources": [{"service_account_token": {
                                "path": AGENT_TOKEN.rsplit("/", 1)[1],
                                "audience": AGENT_TOKEN_AUDIENCE,
                                "expiration_seconds": TOKEN_SECONDS,
                            }}]}},
                            {"name": "sockets", "host_path": {"path": n.host_socket_dir, "type": "DirectoryOrCreate"}},
                            {"name": "data", "empty_dir": {"size_limit": "64Mi"}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
        )

        # --- the SPIFFE CSI driver: the Workload API socket as an inline volume ------------------
        k8s.storage.v1.CSIDriver(
            f"{name}-csi-driver",
            metadata={"name": n.csi_driver, "labels": sec.labels(n.csi, "csi")},
            spec={
                "attach_required": False,
                "pod_info_on_mount": True,
                "fs_group_policy": "None",  # the socket is not a filesystem to chown
                "volume_lifecycle_modes": ["Ephemeral"],
            },
            opts=child,
        )
        csi_account = k8s.core.v1.ServiceAccount(
            f"{name}-csi-account",
            metadata=sec.meta(n.csi, ns, n.csi, "csi"),
            automount_service_account_token=False,
            opts=child,
        )
        driver: k8s.core.v1.ContainerArgsDict = {
            "name": n.csi,
            "image": args.csi_driver_image,
            "args": ["-workload-api-socket-dir", "/spire-agent-socket", "-plugin-name", n.csi_driver,
                     "-csi-socket-path", "/spiffe-csi/csi.sock"],
            "env": [_node_name()],
            "resources": sec.CSI_RESOURCES.spec(),
            # Privileged: it bind-mounts the socket directory into pod volumes (Bidirectional).
            "security_context": {"privileged": True, "read_only_root_filesystem": True},
            "volume_mounts": [
                {"name": "sockets", "mount_path": "/spire-agent-socket", "read_only": True},
                {"name": "csi-socket", "mount_path": "/spiffe-csi"},
                {"name": "pods", "mount_path": "/var/lib/kubelet/pods", "mount_propagation": "Bidirectional"},
            ],
        }
        registrar: k8s.core.v1.ContainerArgsDict = {
            "name": "node-driver-registrar",
            "image": args.csi_registrar_image,
            "args": ["-csi-address", "/spiffe-csi/csi.sock",
                     "-kubelet-registration-path", f"/var/lib/kubelet/plugins/{n.csi_driver}/csi.sock",
                     "-health-port", str(CSI_HEALTH_PORT)],
            "ports": [{"name": "healthz", "container_port": CSI_HEALTH_PORT}],
            "liveness_probe": {"http_get": {"path": "/healthz", "port": CSI_HEALTH_PORT}, "period_seconds": 30},
            "resources": sec.CSI_RESOURCES.spec(),
            # Writes its registration socket into the kubelet's root-owned plugin directory.
            "security_context": agent_container_security(),
            "volume_mounts": [
                {"name": "csi-socket", "mount_path": "/spiffe-csi"},
                {"name": "registration", "mount_path": "/registration"},
            ],
        }
        self.csi_daemonset = k8s.apps.v1.DaemonSet(
            f"{name}-csi-daemonset",
            metadata=sec.meta(n.csi, ns, n.csi, "csi"),
            spec={
                "selector": {"match_labels": sec.selector(n.csi)},
                "template": {
                    "metadata": {"labels": sec.labels(n.csi, "csi")},
                    "spec": {
                        "service_account_name": n.csi,
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "security_context": {"seccomp_profile": {"type": "RuntimeDefault"}},
                        "containers": [driver, registrar],
                        "volumes": [
                            {"name": "sockets", "host_path": {"path": n.host_socket_dir, "type": "DirectoryOrCreate"}},
                            {"name": "csi-socket", "host_path": {"path": f"/var/lib/kubelet/plugins/{n.csi_driver}",
                                                                 "type": "DirectoryOrCreate"}},
                            {"name": "registration", "host_path": {"path": "/var/lib/kubelet/plugins_registry",
                                                                   "type": "Directory"}},
                            {"name": "pods", "host_path": {"path": "/var/lib/kubelet/pods", "type": "Directory"}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[csi_account]),
        )

        # --- network policies ---------------------------------------------------------------------
        if n.default_deny:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-default-deny", metadata=sec.meta("default-deny", ns, n.agent, "policy"),
                spec=sec.default_deny(), opts=child,
            )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-agent-policy",
            metadata=sec.meta(n.agent, ns, n.agent, "policy"),
            spec=sec.allow(
                n.agent,
                egress=[
                    _server_egress(args),
                    # The node's kubelet (its address is the node's, not a pod's).
                    {"ports": sec.tcp(KUBELET_PORT)},
                    sec.dns_egress(),
                ],
            ),
            opts=child,
        )
        self.register_outputs({})



def _server_egress(args: SpireAgentsArgs) -> k8s.networking.v1.NetworkPolicyEgressRuleArgsDict:
    if args.server_peer is None:
        return {"ports": sec.tcp(args.server_port)}
    return {"to": [args.server_peer], "ports": sec.tcp(args.server_port)}
