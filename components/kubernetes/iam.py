"""KeycloakOnCnpg: Keycloak on a CloudNativePG PostgreSQL cluster in `iam-system` (`kubernetes.iam`).

- The CloudNativePG operator (`versions.CNPG`) in `cnpg-system`: its released manifest as typed
  resources (cnpg_operator.py: CRDs, RBAC, webhooks, the Deployment of the pinned image), its pod
  annotated `sidecar.istio.io/inject: "false"`: the operator calls each instance's status endpoint
  (:8000, the instance manager's own TLS) from outside the mesh, which is why that one port is
  PERMISSIVE (mesh.py).
- A CNPG `Cluster` `keycloak-db` (1 instance in dev, 3 in prod, anti-affine in prod) whose
  database `keycloak` is owned by `keycloak`, with that role's password from pulumi-random in a
  `kubernetes.io/basic-auth` Secret the operator reads at bootstrap and Keycloak reads through
  `secretKeyRef`. The superuser stays disabled.
- Keycloak (1 replica in dev, 2 in prod) clustered through its database (Infinispan with the
  `jdbc-ping` stack: the pods find each other in the `JGROUPSPING` table, no API access, no
  multicast), probes on the management port 9000 (`/health/started|ready|live`), metrics on
  9000 `/metrics`, behind the Istio Gateway (`KC_PROXY_HEADERS=xforwarded`). The bootstrap admin's
  password from pulumi-random, in a Secret, as an env `secretKeyRef` (never a literal).
- Read-only root filesystem: an `emptyDir` at `/opt/keycloak/lib/quarkus` (the only directory the
  build writes), seeded by a first init container with the image's own copy (`kc.sh build` boots
  from its `quarkus-application.dat`), then `kc.sh build` in a second init container, and the
  server starts `--optimized` from it; `/opt/keycloak/data` and `/tmp` are `emptyDir`s. Checked with
  the Keycloak 26.7.0 distribution the real tier runs: as a non-root user, with everything but
  `lib/quarkus` read-only, an empty `lib/quarkus` fails the build (NoSuchFileException on
  quarkus-application.dat) and the seeded one builds (82 s on this machine).
- A PodDisruptionBudget: prod keeps one Keycloak pod through voluntary disruptions; dev's single
  pod does not block a node drain. CNPG makes its own for the instances.
- Network policies: default deny in both namespaces, then DNS and istiod for every pod, and the
  flows the design needs, each a policy of its own (`network_policies`, which the tests read).

The realm and the Ziti client are not here: the trust chain's `KeycloakIdentity` writes them
through the Gateway, after `deployment` (which pulumi-kubernetes awaits until Ready).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes import cnpg_operator
from components.kubernetes import security as sec
from components.kubernetes.cnpg_operator import CnpgOperator, CnpgOperatorArgs
from components.kubernetes.custom_resources import CnpgCluster, CnpgClusterSpec
from stack_config.kubernetes_iam import Replicas

IAM_NAMESPACE = "iam-system"
CNPG_NAMESPACE = cnpg_operator.NAMESPACE
ISTIO_NAMESPACE = "istio-system"
KEYCLOAK = "keycloak"
DB_CLUSTER = "keycloak-db"
DATABASE = "keycloak"
CNPG_OPERATOR = cnpg_operator.APP  # app.kubernetes.io/name on the operator's pods
HTTP_PORT = 8080
MANAGEMENT_PORT = 9000
DB_PORT = 5432
CNPG_STATUS_PORT = 8000  # the instance manager's status endpoint, called by the operator
CNPG_WEBHOOK_PORT = 9443
# JGroups (Infinispan's transport between Keycloak pods) and its failure detection port.
JGROUPS_PORTS = (7800, 57800)
ISTIOD_PORT = 15012  # xDS and certificate signing for the sidecars
API_SERVER_PORTS = (443, 6443)
SCRAPER = "prometheus"  # the app (and service account) of `scrapers` that reads the metrics
KEYCLOAK_UID = 1000  # the Keycloak image's user
KEYCLOAK_RESOURCES = sec.Resources("500m", "1Gi", "2", "2Gi")
KEYCLOAK_BUILD_RESOURCES = sec.Resources("500m", "512Mi", "2", "1536Mi")
INIT_RESOURCES = sec.Resources("10m", "16Mi", "100m", "64Mi")
DB_RESOURCES = sec.Resources("250m", "512Mi", "1", "1Gi")
OPERATOR_RESOURCES = sec.Resources("100m", "128Mi", "500m", "512Mi")
KEYCLOAK_HOME = "/opt/keycloak"
DB_SECRET = f"{DB_CLUSTER}-credentials"


@dataclass(frozen=True)
class KeycloakOnCnpgArgs:
    replicas: Replicas
    public_url: str  # KC_HOSTNAME: the issuer every token carries
    admin_user: str
    keycloak_image: str
    postgres_image: str  # a CloudNativePG operand image (ghcr.io/cloudnative-pg/postgresql)
    database_storage: str
    storage_class: str | None
    gateway_namespace: str
    gateway_selector: dict[str, str]
    prod: bool
    # Namespaces whose pods may call Keycloak's HTTP port directly (the Ziti controller's JWKS fetch).
    http_clients: tuple[str, ...] = ()
    # Namespaces whose Prometheus (`SCRAPER`) scrapes Keycloak's metrics (port 9000).
    scrapers: tuple[str, ...] = ()


def keycloak_env(args: KeycloakOnCnpgArgs) -> list[k8s.core.v1.EnvVarArgsDict]:
    """Keycloak's options (no literal secret: the passwords are `secretKeyRef`s)."""
    plain = {
        "KC_DB": "postgres",
        # `-rw`: CNPG's Service that always points at the primary.
        "KC_DB_URL": f"jdbc:postgresql://{DB_CLUSTER}-rw.{IAM_NAMESPACE}.svc:{DB_PORT}/{DATABASE}",
        "KC_HOSTNAME": args.public_url,
        "KC_HOSTNAME_BACKCHANNEL_DYNAMIC": "true",
        "KC_HTTP_ENABLED": "true",
        "KC_HTTP_PORT": str(HTTP_PORT),
        "KC_PROXY_HEADERS": "xforwarded",
        "KC_HEALTH_ENABLED": "true",
        "KC_METRICS_ENABLED": "true",
        "KC_CACHE": "ispn",
        "KC_CACHE_STACK": "jdbc-ping",
        "KC_LOG": "console",
        "KC_LOG_CONSOLE_OUTPUT": "json",
        # Events on stdout: the realms' default `jboss-logging` listener logs successes (logins,
        # token exchanges, admin changes) at INFO instead of DEBUG, errors at WARN; Promtail marks
        # them (logger org.keycloak.events) for Loki.
        "KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING_SUCCESS_LEVEL": "info",
        "KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING_ERROR_LEVEL": "warn",
        "KC_BOOTSTRAP_ADMIN_USERNAME": args.admin_user,
    }
    env: list[k8s.core.v1.EnvVarArgsDict] = [{"name": k, "value": v} for k, v in plain.items()]
    env += [
        {"name": "KC_DB_USERNAME", "value_from": {"secret_key_ref": {"name": DB_SECRET, "key": "username"}}},
        {"name": "KC_DB_PASSWORD", "value_from": {"secret_key_ref": {"name": DB_SECRET, "key": "password"}}},
        {"name": "KC_BOOTSTRAP_ADMIN_PASSWORD",
         "value_from": {"secret_key_ref": {"name": f"{KEYCLOAK}-admin", "key": "password"}}},
    ]
    return env


BUILD_ENV = ("KC_DB", "KC_HEALTH_ENABLED", "KC_METRICS_ENABLED", "KC_CACHE", "KC_CACHE_STACK")
"""What `kc.sh build` bakes in: the init container gets exactly these, so `start --optimized` runs
with the same build options."""


def _probe(path: str, *, period: int, failures: int) -> k8s.core.v1.ProbeArgsDict:
    return {"http_get": {"path": path, "port": MANAGEMENT_PORT}, "period_seconds": period,
            "failure_threshold": failures, "timeout_seconds": 5}


class KeycloakOnCnpg(pulumi.ComponentResource):
    """The CNPG operator, the `keycloak-db` Cluster, Keycloak, its PDB and the network policies."""

    namespace: k8s.core.v1.Namespace
    operator: CnpgOperator
    database: CnpgCluster
    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    admin_password: pulumi.Output[str]
    internal_url: str

    def __init__(self, name: str, args: KeycloakOnCnpgArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:KeycloakOnCnpg", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.internal_url = f"http://{KEYCLOAK}.{IAM_NAMESPACE}.svc:{HTTP_PORT}"

        # --- namespaces: both restricted; iam-system in the mesh, cnpg-system outside it -----------
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns-{IAM_NAMESPACE}",
            metadata={"name": IAM_NAMESPACE, "labels": {**sec.namespace_labels("restricted"),
                                                       "istio-injection": "enabled",
                                                       "app.kubernetes.io/part-of": "identity-platform"}},
            opts=child,
        )
        cnpg_ns = k8s.core.v1.Namespace(
            f"{name}-ns-{CNPG_NAMESPACE}",
            metadata={"name": CNPG_NAMESPACE, "labels": {**sec.namespace_labels("restricted"),
                                                        "istio-injection": "disabled",
                                                        "app.kubernetes.io/part-of": "identity-platform"}},
            opts=child,
        )
        ns = self.namespace.metadata.apply(lambda m: str(m.name))
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])

        # --- the operator (outside the mesh: it reaches the instances' status port, PERMISSIVE) ---
        self.operator = CnpgOperator(f"{name}-cnpg-operator", CnpgOperatorArgs(OPERATOR_RESOURCES), cnpg_ns,
                                     opts=child)

        # --- credentials: pulumi-random into Secrets, read through secretKeyRef -------------------
        db_password = random.RandomPassword(f"{name}-db-password", length=32, special=False, opts=child)
        k8s.core.v1.Secret(
            f"{name}-db-credentials",
            metadata=sec.meta(DB_SECRET, ns, DB_CLUSTER, "database"),
            type="kubernetes.io/basic-auth",
            string_data={"username": DATABASE, "password": db_password.result},
            opts=in_ns,
        )
        admin_password = random.RandomPassword(f"{name}-admin-password", length=32, special=False, opts=child)
        self.admin_password = pulumi.Output.secret(admin_password.result)
        k8s.core.v1.Secret(
            f"{name}-admin-credentials",
            metadata=sec.meta(f"{KEYCLOAK}-admin", ns, KEYCLOAK, "server"),
            string_data={"username": args.admin_user, "password": admin_password.result},
            opts=in_ns,
        )

        # --- the database --------------------------------------------------------------------------
        spec: CnpgClusterSpec = {
            "instances": args.replicas.postgres,
            "imageName": args.postgres_image,
            "primaryUpdateStrategy": "unsupervised",
            "enableSuperuserAccess": False,
            "bootstrap": {"initdb": {"database": DATABASE, "owner": DATABASE, "secret": {"name": DB_SECRET}}},
            "storage": {"size": args.database_storage},
            "resources": DB_RESOURCES.spec(),
            # The instances carry the platform's labels, so policies select them like every other app.
            "inheritedMetadata": {"labels": sec.labels(DB_CLUSTER, "database")},
            "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname",
                         "podAntiAffinityType": "required" if args.prod else "preferred"},
            "monitoring": {"enablePodMonitor": False},
        }
        if args.storage_class is not None:
            spec["storage"]["storageClass"] = args.storage_class
        self.database = CnpgCluster(
            f"{name}-db",
            metadata=sec.meta(DB_CLUSTER, ns, DB_CLUSTER, "database"),
            spec=spec,
            # The Cluster kind exists once the operator's CRDs do, and its webhooks serve once
            # its Deployment is Ready (which pulumi-kubernetes awaits).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, self.operator]),
        )

        # --- Keycloak ---------------------------------------------------------------------------
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata=sec.meta(KEYCLOAK, ns, KEYCLOAK, "server"),
            automount_service_account_token=False,  # jdbc-ping: no API access needed
            opts=in_ns,
        )
        env = keycloak_env(args)
        build_env = [e for e in env if e["name"] in BUILD_ENV]
        quarkus = f"{KEYCLOAK_HOME}/lib/quarkus"
        labels = sec.labels(KEYCLOAK, "server")
        affinity: k8s.core.v1.AffinityArgsDict = {"pod_anti_affinity": {
            "preferred_during_scheduling_ignored_during_execution": [{
                "weight": 100,
                "pod_affinity_term": {"label_selector": {"match_labels": sec.selector(KEYCLOAK)},
                                      "topology_key": "kubernetes.io/hostname"},
            }],
        }}
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-keycloak",
            metadata=sec.meta(KEYCLOAK, ns, KEYCLOAK, "server"),
            spec={
                "replicas": args.replicas.keycloak,
                "selector": {"match_labels": sec.selector(KEYCLOAK)},
                "template": {
                    "metadata": {
                        "labels": labels,
                        "annotations": {
                            # The sidecar is up before Keycloak opens its database connection.
                            "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}',
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(MANAGEMENT_PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": {
                        "service_account_name": KEYCLOAK,
                        "automount_service_account_token": False,
                        "security_context": sec.pod_security(KEYCLOAK_UID),
                        "affinity": affinity,
                        "init_containers": [{
                            # `kc.sh build` itself boots from lib/quarkus (quarkus-application.dat):
                            # the emptyDir starts as the image's copy.
                            "name": "seed",
                            "image": args.keycloak_image,
                            "command": ["cp", "-a", f"{quarkus}/.", "/seed/"],
                            "resources": INIT_RESOURCES.spec(),
                            "security_context": sec.restricted_container(),
                            "volume_mounts": [{"name": "quarkus", "mount_path": "/seed"}],
                        }, {
                            "name": "build",
                            "image": args.keycloak_image,
                            "args": ["build"],
                            "env": build_env,
                            "resources": KEYCLOAK_BUILD_RESOURCES.spec(),
                            "security_context": sec.restricted_container(),
                            "volume_mounts": [{"name": "quarkus", "mount_path": quarkus},
                                              {"name": "tmp", "mount_path": "/tmp"}],  # noqa: S108
                        }],
                        "containers": [{
                            "name": KEYCLOAK,
                            "image": args.keycloak_image,
                            "args": ["start", "--optimized"],
                            "env": env,
                            "ports": [{"name": "http", "container_port": HTTP_PORT},
                                      {"name": "management", "container_port": MANAGEMENT_PORT},
                                      {"name": "jgroups", "container_port": JGROUPS_PORTS[0]},
                                      {"name": "jgroups-fd", "container_port": JGROUPS_PORTS[1]}],
                            # Schema migrations on a first start take minutes on a small node.
                            "startup_probe": _probe("/health/started", period=5, failures=120),
                            "readiness_probe": _probe("/health/ready", period=10, failures=3),
                            "liveness_probe": _probe("/health/live", period=15, failures=4),
                            "resources": KEYCLOAK_RESOURCES.spec(),
                            "security_context": sec.restricted_container(),
                            "volume_mounts": [{"name": "quarkus", "mount_path": quarkus},
                                              {"name": "data", "mount_path": f"{KEYCLOAK_HOME}/data"},
                                              {"name": "tmp", "mount_path": "/tmp"}],  # noqa: S108
                        }],
                        "volumes": [{"name": v, "empty_dir": {}} for v in ("quarkus", "data", "tmp")],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, self.database]),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=sec.meta(KEYCLOAK, ns, KEYCLOAK, "server"),
            spec={
                "selector": sec.selector(KEYCLOAK),
                "ports": [{"name": "http", "port": HTTP_PORT, "target_port": HTTP_PORT},
                          {"name": "http-management", "port": MANAGEMENT_PORT, "target_port": MANAGEMENT_PORT}],
            },
            opts=in_ns,
        )
        if args.scrapers:
            # Prometheus resolves each Keycloak pod through this headless Service (no API access).
            k8s.core.v1.Service(
                f"{name}-pods",
                metadata=sec.meta(f"{KEYCLOAK}-pods", ns, KEYCLOAK, "server"),
                spec={"cluster_ip": "None", "selector": sec.selector(KEYCLOAK),
                      "ports": [{"name": "http-management", "port": MANAGEMENT_PORT, "target_port": MANAGEMENT_PORT}]},
                opts=in_ns,
            )
        budget: k8s.policy.v1.PodDisruptionBudgetSpecArgsDict = (
            {"min_available": args.replicas.keycloak - 1} if args.replicas.keycloak > 1 else {"max_unavailable": 1}
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-keycloak-pdb",
            metadata=sec.meta(KEYCLOAK, ns, KEYCLOAK, "server"),
            spec={**budget, "selector": {"match_labels": sec.selector(KEYCLOAK)}},
            opts=in_ns,
        )

        # --- network policies --------------------------------------------------------------------
        namespaces = {IAM_NAMESPACE: (ns, self.namespace),
                      CNPG_NAMESPACE: (cnpg_ns.metadata.apply(lambda m: str(m.name)), cnpg_ns)}
        for (namespace, policy), policy_spec in network_policies(args).items():
            ns_input, created = namespaces[namespace]
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{namespace}-{policy}",
                metadata={"name": policy, "namespace": ns_input, "labels": sec.labels(policy, "policy")},
                spec=policy_spec,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[created]),
            )
        self.register_outputs({"internal_url": self.internal_url, "admin_password": self.admin_password})


def namespace_policies(namespace: str) -> dict[str, k8s.networking.v1.NetworkPolicySpecArgsDict]:
    """Every namespace of the design: deny all, then DNS and istiod for every pod."""
    out: dict[str, k8s.networking.v1.NetworkPolicySpecArgsDict] = {
        "default-deny": sec.default_deny(),
        "allow-dns": {"pod_selector": {}, "policy_types": ["Egress"], "egress": [sec.dns_egress()]},
    }
    if namespace != CNPG_NAMESPACE:  # the operator has no sidecar
        out["allow-istiod"] = {
            "pod_selector": {}, "policy_types": ["Egress"],
            "egress": [{"to": [sec.peer(ISTIO_NAMESPACE, "istiod")], "ports": sec.tcp(ISTIOD_PORT)}],
        }
    return out


def _gateway_peer(args: KeycloakOnCnpgArgs) -> k8s.networking.v1.NetworkPolicyPeerArgsDict:
    return {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": args.gateway_namespace}},
            "pod_selector": {"match_labels": dict(args.gateway_selector)}}


PolicySpecs = dict[tuple[str, str], k8s.networking.v1.NetworkPolicySpecArgsDict]


def network_policies(args: KeycloakOnCnpgArgs) -> PolicySpecs:
    """Every policy of iam-system and cnpg-system, by (namespace, name): deny, DNS, istiod, flows."""
    out: PolicySpecs = {}
    for namespace in (IAM_NAMESPACE, CNPG_NAMESPACE):
        out |= {(namespace, n): spec for n, spec in namespace_policies(namespace).items()}
    return out | flows(args)


def flows(args: KeycloakOnCnpgArgs) -> PolicySpecs:
    """The flows the design needs, one policy per app, by (namespace, name)."""
    keycloak_in: list[k8s.networking.v1.NetworkPolicyIngressRuleArgsDict] = [
        {"from_": [_gateway_peer(args)], "ports": sec.tcp(HTTP_PORT)},
        {"from_": [sec.pod(KEYCLOAK)], "ports": sec.tcp(*JGROUPS_PORTS)},
    ]
    keycloak_in += [{"from_": [sec.peer(n)], "ports": sec.tcp(HTTP_PORT)} for n in args.http_clients]
    keycloak_in += [{"from_": [sec.peer(n, SCRAPER)], "ports": sec.tcp(MANAGEMENT_PORT)} for n in args.scrapers]
    api_server: k8s.networking.v1.NetworkPolicyEgressRuleArgsDict = {"ports": sec.tcp(*API_SERVER_PORTS)}
    return {
        (IAM_NAMESPACE, KEYCLOAK): sec.allow(
            KEYCLOAK,
            ingress=keycloak_in,
            egress=[{"to": [sec.pod(DB_CLUSTER)], "ports": sec.tcp(DB_PORT)},
                    {"to": [sec.pod(KEYCLOAK)], "ports": sec.tcp(*JGROUPS_PORTS)}],
        ),
        (IAM_NAMESPACE, DB_CLUSTER): sec.allow(
            DB_CLUSTER,
            ingress=[{"from_": [sec.pod(KEYCLOAK)], "ports": sec.tcp(DB_PORT)},
                     # Streaming replication from the primary to the standbys.
                     {"from_": [sec.pod(DB_CLUSTER)], "ports": sec.tcp(DB_PORT)},
                     {"from_": [sec.peer(CNPG_NAMESPACE, CNPG_OPERATOR)], "ports": sec.tcp(CNPG_STATUS_PORT)}],
            # The instance manager watches its Cluster and Secrets through the API server.
            egress=[{"to": [sec.pod(DB_CLUSTER)], "ports": sec.tcp(DB_PORT)}, api_server],
        ),
        (CNPG_NAMESPACE, CNPG_OPERATOR): sec.allow(
            CNPG_OPERATOR,
            # Admission webhooks: the API server calls them from the control plane (no pod to select).
            ingress=[{"ports": sec.tcp(CNPG_WEBHOOK_PORT)}],
            egress=[{"to": [sec.peer(IAM_NAMESPACE, DB_CLUSTER)], "ports": sec.tcp(CNPG_STATUS_PORT)}, api_server],
        ),
    }
