"""ZitiController: the OpenZiti controller in the namespace `ziti` (`kubernetes.ziti`).

The same controller as on Swarm (components/ziti_stack.py), started the same way: the pinned
`openziti/ziti-controller` image runs the Swarm stack's own wrapper (`CONTROLLER_WRAPPER`: the
Pulumi-owned PKI root copied into `pki/root/` on an empty volume, the admin password read from a
file into the process only) and then the image's bootstrap, driven by the same `ZITI_*`
environment (`controller_env`). The files the wrapper reads under `/run/secrets` come from two
Kubernetes Secrets projected there under the Swarm secrets' file names, so the wrapper is one text
for both platforms and `servers/ziti.py` starts the real controller from it for the tests.

- PKI: the controller's root is a pulumi-tls CA with URI SAN `spiffe://<ziti.clusterTrustDomain>`
  (distinct from SPIRE's root), made here as on Swarm; `controller_ca_pem` lets the Ziti
  providers verify the controller in the same `up`.
- A StatefulSet of one (the 1.7.2 bootstrap has no cluster mode) whose volume claim holds the
  whole `/ziti-controller` home (database, PKI, config); `/tmp` (the bootstrap's `mktemp`, the
  agent socket of `ziti agent stats`) is an `emptyDir`, the root filesystem is read-only.
- A Service `ziti-controller` for the edge client/management API and the control plane, which
  share one TLS port (`ziti.advertisedPort`), of `kubernetes.ziti.serviceType`.
- Istio: the namespace is in the mesh, because the controller fetches the Keycloak realm's JWKS
  from `keycloak.iam-system.svc`, which only admits mTLS callers (iam-system is STRICT; its
  AuthorizationPolicy admits the `ziti` namespace on GET /realms/*). Ziti authenticates its own
  clients with its own mTLS (client certificates, SVIDs, the router's identity), which a sidecar
  would terminate: the controller's port is excluded from the sidecar's inbound capture
  (`traffic.sidecar.istio.io/excludeInboundPorts`), so it stays TLS passthrough end to end, and
  the PeerAuthentication STRICT of the namespace governs every other port.
- Restricted pod (non-root uid 2171 = the image's `ziggy`, read-only root, no capabilities), a
  ServiceAccount without API token, requests/limits, a PodDisruptionBudget, and default-deny
  network policies with the flows: anyone to the API port (clients, the router, this program),
  the controller to Keycloak's HTTP port, DNS and istiod.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.kubernetes import security as sec
from components.kubernetes import ziti_pods as pods
from components.kubernetes.custom_resources import PeerAuthentication
from components.ziti_stack import (
    ADMIN_PASSWORD_FILE,
    CONTROLLER_HOME,
    CONTROLLER_SERVICE,
    CONTROLLER_WRAPPER,
    PKI_ROOT_CERT_FILE,
    PKI_ROOT_KEY_FILE,
    controller_env,
    controller_pki_root,
)
from stack_config import ZitiSettings
from stack_config.base import required

ZITI_NAMESPACE = "ziti"
CONTROLLER = CONTROLLER_SERVICE  # the Service's, the StatefulSet's and the app label's name
CONTROLLER_RESOURCES = sec.Resources("100m", "256Mi", "1", "1Gi")


@dataclass(frozen=True)
class ZitiControllerArgs:
    ziti: ZitiSettings
    image: str
    pki_validity_hours: int  # of the controller's PKI root (the same as SPIRE's root)
    service_type: str
    node_port: int | None
    storage: str
    storage_class: str | None
    prod: bool
    # Where the controller fetches the realm's JWKS (the egress it is allowed).
    keycloak_namespace: str
    keycloak_app: str
    keycloak_port: int
    istio_namespace: str = "istio-system"
    istiod_port: int = 15012


def pod_annotations(port: int) -> dict[str, str]:
    """The controller's pod in the mesh, its Ziti port outside the sidecar's capture."""
    return {
        "traffic.sidecar.istio.io/excludeInboundPorts": str(port),
        # The sidecar is up before the controller's first JWKS fetch.
        "proxy.istio.io/config": '{"holdApplicationUntilProxyStarts": true}',
    }


def namespace_policies(args: ZitiControllerArgs) -> dict[str, k8s.networking.v1.NetworkPolicySpecArgsDict]:
    """The `ziti` namespace's deny-all, DNS and istiod (the controller's sidecar), by name."""
    return {
        "default-deny": sec.default_deny(),
        "allow-dns": {"pod_selector": {}, "policy_types": ["Egress"], "egress": [sec.dns_egress()]},
        "allow-istiod": {
            "pod_selector": {"match_labels": sec.selector(CONTROLLER)}, "policy_types": ["Egress"],
            "egress": [{"to": [sec.peer(args.istio_namespace, "istiod")], "ports": sec.tcp(args.istiod_port)}],
        },
    }


def controller_policy(args: ZitiControllerArgs) -> k8s.networking.v1.NetworkPolicySpecArgsDict:
    """Anyone to the API port (edge clients, the router, the program: the port is Ziti's own mTLS
    and password login); out only to Keycloak's HTTP port for the realm's JWKS."""
    return sec.allow(
        CONTROLLER,
        ingress=[{"ports": sec.tcp(args.ziti.advertised_port)}],
        egress=[{"to": [sec.peer(args.keycloak_namespace, args.keycloak_app)], "ports": sec.tcp(args.keycloak_port)}],
    )


class ZitiController(pulumi.ComponentResource):
    """Namespace, PKI root, Secrets, the StatefulSet, its Service, PDB and network policies."""

    namespace: k8s.core.v1.Namespace
    namespace_name: pulumi.Output[str]
    stateful_set: k8s.apps.v1.StatefulSet
    service: k8s.core.v1.Service
    controller_url: pulumi.Output[str]
    admin_user: str
    admin_password: pulumi.Output[str]
    controller_ca_pem: pulumi.Output[str]

    def __init__(self, name: str, args: ZitiControllerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:ZitiController", name, None, opts)
        zt = args.ziti
        advertised = required(zt.advertised_address, "ziti.advertisedAddress")
        self.admin_user = zt.admin_user
        self.controller_url = pulumi.Output.from_input(f"https://{advertised}:{zt.advertised_port}")
        child = pulumi.ResourceOptions(parent=self)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": ZITI_NAMESPACE, "labels": {**sec.namespace_labels("restricted"),
                                                        "istio-injection": "enabled",
                                                        "app.kubernetes.io/part-of": "identity-platform"}},
            opts=child,
        )
        ns = self.namespace_name = self.namespace.metadata.apply(lambda m: str(m.name))
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])

        # --- credentials and PKI root, as on Swarm; delivered as Secrets --------------------------
        password = random.RandomPassword(f"{name}-admin-password", length=32, special=False, opts=child)
        self.admin_password = pulumi.Output.secret(password.result)
        pki_key, pki_root = controller_pki_root(f"{name}-pki-root", zt, args.pki_validity_hours, parent=self)
        self.controller_ca_pem = pki_root.cert_pem
        admin_secret = k8s.core.v1.Secret(
            f"{name}-admin-secret",
            metadata=sec.meta(f"{CONTROLLER}-admin", ns, CONTROLLER, "controller"),
            string_data={"password": self.admin_password},
            opts=in_ns,
        )
        pki_secret = k8s.core.v1.Secret(
            f"{name}-pki-root-secret",
            metadata=sec.meta(f"{CONTROLLER}-pki-root", ns, CONTROLLER, "controller"),
            string_data={"cert": pki_root.cert_pem, "key": pki_key.private_key_pem},  # the key: a secret output
            opts=in_ns,
        )

        # --- the controller ------------------------------------------------------------------------
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata=sec.meta(CONTROLLER, ns, CONTROLLER, "controller"),
            automount_service_account_token=False,  # it never calls the Kubernetes API
            opts=in_ns,
        )
        port = zt.advertised_port
        self.stateful_set = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=sec.meta(CONTROLLER, ns, CONTROLLER, "controller"),
            spec=pods.stateful_set_spec(
                app=CONTROLLER, component="controller", image=args.image, wrapper=CONTROLLER_WRAPPER,
                env=controller_env(zt), port_name="tls-ctrl", port=port, home=CONTROLLER_HOME,
                secret_files=[(f"{CONTROLLER}-admin", [("password", ADMIN_PASSWORD_FILE)]),
                              (f"{CONTROLLER}-pki-root", [("cert", PKI_ROOT_CERT_FILE), ("key", PKI_ROOT_KEY_FILE)])],
                resources=CONTROLLER_RESOURCES, storage=args.storage, storage_class=args.storage_class,
                annotations=pod_annotations(port),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, admin_secret, pki_secret],
                                        retain_on_delete=args.prod),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=sec.meta(CONTROLLER, ns, CONTROLLER, "controller"),
            spec={"type": args.service_type, "selector": sec.selector(CONTROLLER),
                  "ports": [pods.service_port("tls-ctrl", port, args.node_port, args.service_type)]},
            opts=in_ns,
        )
        pods.single_pod_budget(f"{name}-pdb", ns, CONTROLLER, "controller", in_ns)
        PeerAuthentication(
            f"{name}-peer-authentication",
            metadata=sec.meta("default", ns, "default", "mesh"),
            spec={"mtls": {"mode": "STRICT"}},
            opts=in_ns,
        )
        policies = {**namespace_policies(args), CONTROLLER: controller_policy(args)}
        for pname, pspec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-policy-{pname}",
                metadata={"name": pname, "namespace": ns, "labels": sec.labels(pname, "policy")},
                spec=pspec,
                opts=in_ns,
            )
        self.register_outputs({"controller_url": self.controller_url, "admin_password": self.admin_password,
                               "controller_ca_pem": self.controller_ca_pem})
