"""Observability: logs and metrics of the IAM design, in the `observability` namespace (`kubernetes.iam.observability`).

- **Loki** in single-binary mode (`-target=all`), filesystem storage on an `emptyDir` (logs survive
  pod restarts only as long as the pod; a bucket is the next step), port 3100.
- **Promtail** as a DaemonSet reading `/var/log/pods` of its node (read-only `hostPath`) and
  pushing to Loki: every pod's output, so Keycloak's JSON console log (its events) and the
  CloudNativePG instances' PostgreSQL logs reach Loki with their namespace, pod and container labels.
  It is the one exception to the restricted level here (the namespace enforces `privileged` and
  warns at restricted): the host directory, and uid 0 *without any capability* because the
  kubelet writes the log files root-owned, mode 0640. Its ClusterRole: `get/list/watch pods`
  (its service discovery), nothing else.
- **Prometheus** (one server, `emptyDir`) scraping Keycloak's `/metrics` on 9000 and the SPIRE
  servers' on 9988, each pod through DNS discovery of a headless Service, so no API access.
- **Grafana** with Loki and Prometheus provisioned as datasources (a ConfigMap), its admin
  password from pulumi-random in a Secret (`GF_SECURITY_ADMIN_PASSWORD__FILE`).

In the mesh (sidecars, PeerAuthentication STRICT: mesh.py). Network policies: default deny, DNS,
istiod, then promtail/grafana -> loki 3100, grafana -> prometheus 9090, prometheus -> Keycloak 9000
and SPIRE 9988 (with the matching ingress policies on their side), promtail -> the API server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes import security as sec
from components.kubernetes.iam import API_SERVER_PORTS, IAM_NAMESPACE, KEYCLOAK, MANAGEMENT_PORT, namespace_policies

NAMESPACE = "observability"
LOKI, PROMTAIL, PROMETHEUS, GRAFANA = "loki", "promtail", "prometheus", "grafana"
LOKI_PORT, PROMETHEUS_PORT, GRAFANA_PORT = 3100, 9090, 3000
SPIRE_NAMESPACE, SPIRE_PODS, SPIRE_METRICS_PORT = "spire-server", "spire-server-pods", 9988
KEYCLOAK_PODS = "keycloak-pods"  # the headless Service Prometheus resolves to Keycloak's pods
LOG_DIR = "/var/log/pods"
UIDS = {LOKI: 10001, PROMETHEUS: 65534, GRAFANA: 472}
RESOURCES = {
    LOKI: sec.Resources("100m", "256Mi", "1", "1Gi"),
    PROMTAIL: sec.Resources("50m", "64Mi", "500m", "256Mi"),
    PROMETHEUS: sec.Resources("100m", "256Mi", "1", "1Gi"),
    GRAFANA: sec.Resources("50m", "128Mi", "500m", "512Mi"),
}


@dataclass(frozen=True)
class ObservabilityArgs:
    loki_image: str
    promtail_image: str
    prometheus_image: str
    grafana_image: str


def loki_config() -> str:
    return json.dumps({
        "auth_enabled": False,
        "server": {"http_listen_port": LOKI_PORT},
        "common": {"path_prefix": "/loki", "replication_factor": 1, "ring": {"kvstore": {"store": "inmemory"}},
                   "storage": {"filesystem": {"chunks_directory": "/loki/chunks", "rules_directory": "/loki/rules"}}},
        "schema_config": {"configs": [{"from": "2024-01-01", "store": "tsdb", "object_store": "filesystem",
                                       "schema": "v13", "index": {"prefix": "index_", "period": "24h"}}]},
    }, indent=2)


def promtail_config() -> str:
    return json.dumps({
        "server": {"http_listen_port": 9080, "grpc_listen_port": 0},
        "positions": {"filename": "/run/promtail/positions.yaml"},
        "clients": [{"url": f"http://{LOKI}.{NAMESPACE}.svc:{LOKI_PORT}/loki/api/v1/push"}],
        "scrape_configs": [{
            "job_name": "pods",
            "kubernetes_sd_configs": [{"role": "pod"}],
            "pipeline_stages": [{"cri": {}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "__host__"},
                {"action": "replace", "source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"action": "replace", "source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"action": "replace", "source_labels": ["__meta_kubernetes_pod_container_name"],
                 "target_label": "container"},
                {"action": "replace", "separator": "/", "replacement": f"{LOG_DIR}/*$1/*.log",
                 "source_labels": ["__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name"],
                 "target_label": "__path__"},
            ],
        }],
    }, indent=2)


def prometheus_config() -> str:
    def job(name: str, host: str, port: int) -> dict[str, object]:
        return {"job_name": name, "dns_sd_configs": [{"names": [host], "type": "A", "port": port}]}

    return json.dumps({
        "global": {"scrape_interval": "30s"},
        "scrape_configs": [
            job(KEYCLOAK, f"{KEYCLOAK_PODS}.{IAM_NAMESPACE}.svc.cluster.local", MANAGEMENT_PORT),
            job("spire-server", f"{SPIRE_PODS}.{SPIRE_NAMESPACE}.svc.cluster.local", SPIRE_METRICS_PORT),
        ],
    }, indent=2)


def grafana_datasources() -> str:
    return json.dumps({"apiVersion": 1, "datasources": [
        {"name": "Loki", "type": "loki", "access": "proxy", "url": f"http://{LOKI}.{NAMESPACE}.svc:{LOKI_PORT}",
         "isDefault": True},
        {"name": "Prometheus", "type": "prometheus", "access": "proxy",
         "url": f"http://{PROMETHEUS}.{NAMESPACE}.svc:{PROMETHEUS_PORT}"},
    ]}, indent=2)


def network_policies() -> dict[tuple[str, str], k8s.networking.v1.NetworkPolicySpecArgsDict]:
    """By (namespace, name): observability's own, and the scrape targets' ingress from Prometheus."""
    out = {(NAMESPACE, n): spec for n, spec in namespace_policies(NAMESPACE).items()}
    out |= {
        (NAMESPACE, LOKI): sec.allow(LOKI, ingress=[{"from_": [sec.pod(PROMTAIL), sec.pod(GRAFANA)],
                                                      "ports": sec.tcp(LOKI_PORT)}]),
        (NAMESPACE, PROMTAIL): sec.allow(PROMTAIL, egress=[{"to": [sec.pod(LOKI)], "ports": sec.tcp(LOKI_PORT)},
                                                           {"ports": sec.tcp(*API_SERVER_PORTS)}]),
        (NAMESPACE, GRAFANA): sec.allow(GRAFANA, egress=[{"to": [sec.pod(LOKI)], "ports": sec.tcp(LOKI_PORT)},
                                                         {"to": [sec.pod(PROMETHEUS)],
                                                          "ports": sec.tcp(PROMETHEUS_PORT)}]),
        (NAMESPACE, PROMETHEUS): sec.allow(
            PROMETHEUS,
            ingress=[{"from_": [sec.pod(GRAFANA)], "ports": sec.tcp(PROMETHEUS_PORT)}],
            egress=[{"to": [sec.peer(IAM_NAMESPACE, KEYCLOAK)], "ports": sec.tcp(MANAGEMENT_PORT)},
                    {"to": [sec.peer(SPIRE_NAMESPACE, "spire-server")], "ports": sec.tcp(SPIRE_METRICS_PORT)}],
        ),
        # The SPIRE server's side (its own policies are components/kubernetes/spire_server.py's;
        # policies add up, so this one only opens the metrics port to Prometheus).
        (SPIRE_NAMESPACE, "spire-server-metrics"): sec.allow(
            "spire-server", ingress=[{"from_": [sec.peer(NAMESPACE, PROMETHEUS)], "ports": sec.tcp(SPIRE_METRICS_PORT)}]
        ),
    }
    return out


class Observability(pulumi.ComponentResource):
    """Loki, Promtail, Prometheus and Grafana with their configs, accounts and policies."""

    namespace: k8s.core.v1.Namespace

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:Observability", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            # privileged for Promtail's host log directory alone; warn/audit stay at restricted.
            metadata={"name": NAMESPACE, "labels": {**sec.namespace_labels("privileged"), "istio-injection": "enabled",
                                                   "app.kubernetes.io/part-of": "identity-platform"}},
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        configs = {LOKI: ("loki.json", loki_config()), PROMTAIL: ("promtail.json", promtail_config()),
                   PROMETHEUS: ("prometheus.json", prometheus_config()),
                   GRAFANA: ("datasources.json", grafana_datasources())}
        for app, (file, text) in configs.items():
            k8s.core.v1.ConfigMap(f"{name}-{app}-config", metadata=sec.meta(app, NAMESPACE, app, "config"),
                                  data={file: text}, opts=in_ns)
        for app in (LOKI, PROMTAIL, PROMETHEUS, GRAFANA):
            k8s.core.v1.ServiceAccount(f"{name}-{app}-account", metadata=sec.meta(app, NAMESPACE, app, "account"),
                                       automount_service_account_token=app == PROMTAIL, opts=in_ns)
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-promtail-role",
            metadata={"name": "identity-platform-promtail", "labels": sec.labels(PROMTAIL, "logs")},
            rules=[{"api_groups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            opts=child,
        )
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-promtail-binding",
            metadata={"name": "identity-platform-promtail", "labels": sec.labels(PROMTAIL, "logs")},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.metadata.name},
            subjects=[{"kind": "ServiceAccount", "name": PROMTAIL, "namespace": NAMESPACE}],
            opts=in_ns,
        )
        password = random.RandomPassword(f"{name}-grafana-password", length=32, special=False, opts=child)
        k8s.core.v1.Secret(f"{name}-grafana-admin", metadata=sec.meta(f"{GRAFANA}-admin", NAMESPACE, GRAFANA, "ui"),
                           string_data={"password": password.result}, opts=in_ns)

        def deployment(app: str, image: str, port: int, args_: list[str], mounts: list[tuple[str, str, str]],
                       env: list[k8s.core.v1.EnvVarArgsDict] | None = None) -> None:
            """`mounts`: (volume, path, source) with source `config`, `secret` or `scratch` (emptyDir)."""
            volumes: list[k8s.core.v1.VolumeArgsDict] = []
            for vol, _, source in mounts:
                if source == "config":
                    volumes.append({"name": vol, "config_map": {"name": app}})
                elif source == "secret":
                    volumes.append({"name": vol, "secret": {"secret_name": f"{app}-admin"}})
                else:
                    volumes.append({"name": vol, "empty_dir": {}})
            # a dict: the SDK's ArgsDicts are read-only Mappings to mypy (4.25.0)
            container: dict[str, Any] = {
                "name": app, "image": image, "args": args_,
                "ports": [{"name": "http", "container_port": port}],
                "readiness_probe": {"tcp_socket": {"port": port}, "period_seconds": 10},
                "resources": RESOURCES[app].spec(),
                "security_context": sec.restricted_container(),
                "volume_mounts": [{"name": v, "mount_path": p, "read_only": s != "scratch"} for v, p, s in mounts],
            }
            if env:
                container["env"] = env
            k8s.apps.v1.Deployment(
                f"{name}-{app}",
                metadata=sec.meta(app, NAMESPACE, app, "server"),
                spec={"replicas": 1, "selector": {"match_labels": sec.selector(app)},
                      "template": {"metadata": {"labels": sec.labels(app, "server")}, "spec": {
                          "service_account_name": app, "automount_service_account_token": False,
                          "security_context": sec.pod_security(UIDS[app]),
                          "containers": [container], "volumes": volumes}}},
                opts=in_ns,
            )
            k8s.core.v1.Service(f"{name}-{app}-service", metadata=sec.meta(app, NAMESPACE, app, "server"),
                                spec={"selector": sec.selector(app),
                                      "ports": [{"name": "http", "port": port, "target_port": port}]},
                                opts=in_ns)

        deployment(LOKI, args.loki_image, LOKI_PORT, ["-config.file=/etc/loki/loki.json", "-target=all"],
                   [("config", "/etc/loki", "config"), ("data", "/loki", "scratch"), ("tmp", "/tmp", "scratch")])  # noqa: S108
        deployment(PROMETHEUS, args.prometheus_image, PROMETHEUS_PORT,
                   ["--config.file=/etc/prometheus/prometheus.json", "--storage.tsdb.path=/prometheus"],
                   [("config", "/etc/prometheus", "config"), ("data", "/prometheus", "scratch")])
        deployment(GRAFANA, args.grafana_image, GRAFANA_PORT, [],
                   [("config", "/etc/grafana/provisioning/datasources", "config"),
                    ("admin", "/run/secrets/grafana", "secret"), ("data", "/var/lib/grafana", "scratch"),
                    ("tmp", "/tmp", "scratch")],  # noqa: S108
                   env=[{"name": "GF_SECURITY_ADMIN_PASSWORD__FILE", "value": "/run/secrets/grafana/password"},
                        {"name": "GF_PATHS_DATA", "value": "/var/lib/grafana"}])

        # Promtail: the exception (module docstring).
        promtail_ctx = {**sec.restricted_container(), "run_as_non_root": False, "run_as_user": 0}
        k8s.apps.v1.DaemonSet(
            f"{name}-promtail",
            metadata=sec.meta(PROMTAIL, NAMESPACE, PROMTAIL, "logs"),
            spec={"selector": {"match_labels": sec.selector(PROMTAIL)},
                  "template": {"metadata": {"labels": sec.labels(PROMTAIL, "logs")}, "spec": {
                      "service_account_name": PROMTAIL,
                      "security_context": {"seccomp_profile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": PROMTAIL, "image": args.promtail_image,
                          "args": ["-config.file=/etc/promtail/promtail.json"],
                          "env": [{"name": "HOSTNAME", "value_from": {"field_ref": {"field_path": "spec.nodeName"}}}],
                          "resources": RESOURCES[PROMTAIL].spec(),
                          "security_context": promtail_ctx,
                          "volume_mounts": [{"name": "config", "mount_path": "/etc/promtail", "read_only": True},
                                            {"name": "logs", "mount_path": LOG_DIR, "read_only": True},
                                            {"name": "positions", "mount_path": "/run/promtail"}],
                      }],
                      "volumes": [{"name": "config", "config_map": {"name": PROMTAIL}},
                                  {"name": "logs", "host_path": {"path": LOG_DIR, "type": "Directory"}},
                                  {"name": "positions", "empty_dir": {}}],
                  }}},
            opts=in_ns,
        )
        for (ns, policy), spec in network_policies().items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{ns}-{policy}",
                metadata={"name": policy, "namespace": ns, "labels": sec.labels(policy, "policy")},
                spec=spec, opts=in_ns,
            )
        self.register_outputs({})
