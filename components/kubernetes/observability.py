"""Observability: logs and metrics of the IAM design, in the `observability` namespace (`kubernetes.iam.observability`).

- **Loki** in single-binary mode (`-target=all`), filesystem storage on a PersistentVolumeClaim
  (size and storage class from `kubernetes.iam.logsStorage` / `kubernetes.storageClass`, retention
  `logsRetentionDays` through its compactor), port 3100.
- **Promtail** as a DaemonSet reading `/var/log/pods` of its node (read-only `hostPath`) and
  pushing to Loki: every pod's output with namespace, pod, container and app labels, and two
  pipelines: Keycloak's JSON console log, whose `org.keycloak.events` lines (the jboss-logging
  event listener at INFO: `KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING_SUCCESS_LEVEL`, iam.py) get
  `kind=event`, and the CloudNativePG instances' JSON log, whose PostgreSQL records get
  `kind=postgresql`.
  It is the one exception to the restricted level here (the namespace enforces `privileged` and
  warns at restricted): the host directory, and uid 0 *without any capability* because the
  kubelet writes the log files root-owned, mode 0640. Its ClusterRole: `get/list/watch pods`
  (its service discovery), nothing else.
- **Prometheus** (one server, its TSDB on a PersistentVolumeClaim, `metricsRetentionDays`)
  scraping Keycloak's `/metrics` on 9000 and the SPIRE
  servers' on 9988, each pod through DNS discovery of a headless Service, so no API access.
- **Grafana** with Loki and Prometheus provisioned as datasources (a ConfigMap), its admin
  password from pulumi-random in a Secret (`GF_SECURITY_ADMIN_PASSWORD__FILE`).

The four configs are files (components/kubernetes/templates/), filled from the constants the
objects use and parsed as YAML when rendered. Loki and Prometheus run as Deployments of one pod
with `strategy: Recreate` on their claim (ReadWriteOnce: the old pod lets go of the volume before
the new one mounts it); the claims are the program's own objects, so `pulumi destroy` removes them
(a StatefulSet's claim templates would outlive the stack).

In the mesh (sidecars, PeerAuthentication STRICT: mesh.py). Network policies: default deny, DNS,
istiod, then promtail/grafana -> loki 3100, grafana -> prometheus 9090, prometheus -> Keycloak 9000
and SPIRE 9988 (with the matching ingress policies on their side), promtail -> the API server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes import security as sec
from components.kubernetes import templates
from components.kubernetes.iam import (
    API_SERVER_PORTS,
    DB_CLUSTER,
    IAM_NAMESPACE,
    KEYCLOAK,
    MANAGEMENT_PORT,
    SCRAPER,
    namespace_policies,
)
from components.kubernetes.spire_config import METRICS_PORT as SPIRE_METRICS_PORT
from components.kubernetes.spire_config import SERVER_NAME as SPIRE_SERVER
from components.kubernetes.spire_config import SERVER_NAMESPACE as SPIRE_NAMESPACE
from stack_config.kubernetes_iam import ObservabilityStorage

NAMESPACE = "observability"
LOKI, PROMTAIL, PROMETHEUS, GRAFANA = "loki", "promtail", SCRAPER, "grafana"
LOKI_PORT, PROMETHEUS_PORT, GRAFANA_PORT, PROMTAIL_PORT = 3100, 9090, 3000, 9080
SPIRE_PODS = f"{SPIRE_SERVER}-pods"  # the SPIRE server StatefulSet's headless Service
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
    storage: ObservabilityStorage
    storage_class: str | None = None


def loki_config(storage: ObservabilityStorage) -> str:
    return templates.render("loki.yaml", loki_port=LOKI_PORT, retention_hours=24 * storage.logs_retention_days)


def promtail_config() -> str:
    return templates.render("promtail.yaml", promtail_port=PROMTAIL_PORT, log_dir=LOG_DIR,
                            loki_push_url=f"http://{LOKI}.{NAMESPACE}.svc:{LOKI_PORT}/loki/api/v1/push",
                            iam_namespace=IAM_NAMESPACE, keycloak_app=KEYCLOAK, database_app=DB_CLUSTER)


def prometheus_config() -> str:
    return templates.render(
        "prometheus.yaml",
        keycloak_pods=f"{KEYCLOAK_PODS}.{IAM_NAMESPACE}.svc.cluster.local", keycloak_port=MANAGEMENT_PORT,
        spire_pods=f"{SPIRE_PODS}.{SPIRE_NAMESPACE}.svc.cluster.local", spire_port=SPIRE_METRICS_PORT,
    )


def grafana_datasources() -> str:
    return templates.render("grafana-datasources.yaml", loki_url=f"http://{LOKI}.{NAMESPACE}.svc:{LOKI_PORT}",
                            prometheus_url=f"http://{PROMETHEUS}.{NAMESPACE}.svc:{PROMETHEUS_PORT}")


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
                    {"to": [sec.peer(SPIRE_NAMESPACE, SPIRE_SERVER)], "ports": sec.tcp(SPIRE_METRICS_PORT)}],
        ),
        # The SPIRE server's side (its own policies are components/kubernetes/spire_server.py's;
        # policies add up, so this one only opens the metrics port to Prometheus).
        (SPIRE_NAMESPACE, f"{SPIRE_SERVER}-metrics"): sec.allow(
            SPIRE_SERVER, ingress=[{"from_": [sec.peer(NAMESPACE, PROMETHEUS)], "ports": sec.tcp(SPIRE_METRICS_PORT)}]
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
        configs = {LOKI: ("loki.yaml", loki_config(args.storage)), PROMTAIL: ("promtail.yaml", promtail_config()),
                   PROMETHEUS: ("prometheus.yaml", prometheus_config()),
                   GRAFANA: ("datasources.yaml", grafana_datasources())}
        for app, (file, text) in configs.items():
            k8s.core.v1.ConfigMap(f"{name}-{app}-config", metadata=sec.meta(app, NAMESPACE, app, "config"),
                                  data={file: text}, opts=in_ns)
        # A changed config rolls the pods over (a mounted ConfigMap alone would not restart them).
        config_digest = {app: {"identity-platform/config-digest": sec.digest(text)}
                         for app, (_, text) in configs.items()}
        claims = {LOKI: args.storage.logs_storage, PROMETHEUS: args.storage.metrics_storage}
        for app, size in claims.items():
            claim = sec.claim_spec(size, args.storage_class)
            k8s.core.v1.PersistentVolumeClaim(f"{name}-{app}-data", metadata=sec.meta(f"{app}-data", NAMESPACE, app,
                                                                                      "storage"),
                                              spec=claim, opts=in_ns)
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
            """`mounts`: (volume, path, source) with source `config`, `secret`, `claim` (the app's
            PersistentVolumeClaim) or `scratch` (emptyDir)."""
            volumes: list[k8s.core.v1.VolumeArgsDict] = []
            for vol, _, source in mounts:
                if source == "config":
                    volumes.append({"name": vol, "config_map": {"name": app}})
                elif source == "secret":
                    volumes.append({"name": vol, "secret": {"secret_name": f"{app}-admin"}})
                elif source == "claim":
                    volumes.append({"name": vol, "persistent_volume_claim": {"claim_name": f"{app}-data"}})
                else:
                    volumes.append({"name": vol, "empty_dir": {}})
            # a dict: the SDK's ArgsDicts are read-only Mappings to mypy (4.25.0)
            container: dict[str, Any] = {
                "name": app, "image": image,
                "ports": [{"name": "http", "container_port": port}],
                "readiness_probe": {"tcp_socket": {"port": port}, "period_seconds": 10},
                "resources": RESOURCES[app].spec(),
                "security_context": sec.restricted_container(),
                "volume_mounts": [{"name": v, "mount_path": p, "read_only": s in ("config", "secret")}
                                  for v, p, s in mounts],
            }
            if args_:  # an empty list is dropped by the API server: a diff on every refresh
                container["args"] = args_
            if env:
                container["env"] = env
            k8s.apps.v1.Deployment(
                f"{name}-{app}",
                metadata=sec.meta(app, NAMESPACE, app, "server"),
                spec={"replicas": 1, "selector": {"match_labels": sec.selector(app)},
                      # One pod on a ReadWriteOnce claim: the old one lets go before the new one starts.
                      "strategy": {"type": "Recreate" if app in claims else "RollingUpdate"},
                      "template": {"metadata": {"labels": sec.labels(app, "server"), "annotations": config_digest[app]},
                                   "spec": {
                          "service_account_name": app, "automount_service_account_token": False,
                          "security_context": sec.pod_security(UIDS[app]),
                          "containers": [container], "volumes": volumes}}},
                opts=in_ns,
            )
            k8s.core.v1.Service(f"{name}-{app}-service", metadata=sec.meta(app, NAMESPACE, app, "server"),
                                spec={"selector": sec.selector(app),
                                      "ports": [{"name": "http", "port": port, "target_port": port}]},
                                opts=in_ns)

        deployment(LOKI, args.loki_image, LOKI_PORT, ["-config.file=/etc/loki/loki.yaml", "-target=all"],
                   [("config", "/etc/loki", "config"), ("data", "/loki", "claim"), ("tmp", "/tmp", "scratch")])  # noqa: S108
        deployment(PROMETHEUS, args.prometheus_image, PROMETHEUS_PORT,
                   ["--config.file=/etc/prometheus/prometheus.yaml", "--storage.tsdb.path=/prometheus",
                    f"--storage.tsdb.retention.time={args.storage.metrics_retention_days}d"],
                   [("config", "/etc/prometheus", "config"), ("data", "/prometheus", "claim")])
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
                  "template": {"metadata": {"labels": sec.labels(PROMTAIL, "logs"),
                                            "annotations": config_digest[PROMTAIL]}, "spec": {
                      "service_account_name": PROMTAIL,
                      "security_context": {"seccomp_profile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": PROMTAIL, "image": args.promtail_image,
                          "args": ["-config.file=/etc/promtail/promtail.yaml"],
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
