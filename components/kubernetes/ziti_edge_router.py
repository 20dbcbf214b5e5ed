"""ZitiEdgeRouterPod: the OpenZiti edge router in the namespace `ziti` (`kubernetes.ziti`).

As on Swarm (components/ziti_router.py), and for the same reasons its own component: the router
enrolls with the one-time JWT of the `ZitiEdgeRouter` resource, which exists only once the
controller answers; the JWT reaches the pod as a Kubernetes Secret projected at the Swarm secret's
path (`ZITI_ENROLL_TOKEN` names the file, never the token), and the pod runs the Swarm router's
wrapper (re-enrolls when the token changed) and environment (`router_env`) before the image's
bootstrap. Routers cannot enroll with a SPIFFE SVID in current OpenZiti.

- A StatefulSet of one whose volume claim holds `/ziti-router` (the enrolled identity: the JWT is
  single-use, so losing it means `pulumi up --replace` on the edge-router resource).
- The controller's certificate names only `ziti.advertisedAddress` (and localhost): inside the
  cluster the router reaches the controller under that name through a host alias to the
  controller Service's cluster IP, as the Swarm overlay network aliases it.
- Outside the mesh (`sidecar.istio.io/inject: "false"`): it speaks only Ziti's own mTLS, to the
  controller (whose port the controller's sidecar does not capture) and to edge clients on its
  listener, which must reach it unterminated.
- Restricted pod, no API token, requests/limits, a PodDisruptionBudget, a network policy: anyone
  to the edge listener, out only to the controller's port.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes import ziti_pods as pods
from components.kubernetes.ziti_controller import CONTROLLER
from components.ziti_router import ENROLLMENT_JWT_FILE, ROUTER_HOME, ROUTER_SERVICE, ROUTER_WRAPPER, router_env
from stack_config import ZitiSettings
from stack_config.base import required

ROUTER = ROUTER_SERVICE
ROUTER_RESOURCES = sec.Resources("100m", "128Mi", "1", "512Mi")
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}


@dataclass(frozen=True)
class ZitiEdgeRouterPodArgs:
    ziti: ZitiSettings
    image: str
    namespace: pulumi.Input[str]
    # The controller's Service: its cluster IP is where the advertised name points inside the pod.
    controller_service: k8s.core.v1.Service
    enrollment_jwt: pulumi.Input[str]
    service_type: str
    node_port: int | None
    storage: str
    storage_class: str | None
    prod: bool


def router_policy(zt: ZitiSettings) -> k8s.networking.v1.NetworkPolicySpecArgsDict:
    """Anyone to the edge listener (clients, other routers' links); out to the controller only."""
    return sec.allow(
        ROUTER,
        ingress=[{"ports": sec.tcp(zt.router_port)}],
        egress=[{"to": [sec.pod(CONTROLLER)], "ports": sec.tcp(zt.advertised_port)}],
    )


class ZitiEdgeRouterPod(pulumi.ComponentResource):
    """The JWT Secret, the router's StatefulSet, its Service, PDB and network policy."""

    stateful_set: k8s.apps.v1.StatefulSet
    service: k8s.core.v1.Service

    def __init__(self, name: str, args: ZitiEdgeRouterPodArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:ZitiEdgeRouterPod", name, None, opts)
        zt, ns = args.ziti, args.namespace
        child = pulumi.ResourceOptions(parent=self)
        advertised = required(zt.advertised_address, "ziti.advertisedAddress")
        jwt = k8s.core.v1.Secret(
            f"{name}-enrollment-secret",
            metadata=sec.meta(f"{ROUTER}-enrollment", ns, ROUTER, "router"),
            string_data={"jwt": pulumi.Output.secret(args.enrollment_jwt)},
            opts=child,
        )
        account = k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata=sec.meta(ROUTER, ns, ROUTER, "router"),
            automount_service_account_token=False,
            opts=child,
        )
        # Inside the pod the controller's advertised name is its Service's cluster IP.
        cluster_ip = args.controller_service.spec.apply(lambda s: str(s.cluster_ip))
        self.stateful_set = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=sec.meta(ROUTER, ns, ROUTER, "router"),
            spec=pods.stateful_set_spec(
                app=ROUTER, component="router", image=args.image, wrapper=ROUTER_WRAPPER, env=router_env(zt),
                port_name="tls-edge", port=zt.router_port, home=ROUTER_HOME,
                secret_files=[(f"{ROUTER}-enrollment", [("jwt", ENROLLMENT_JWT_FILE)])],
                resources=ROUTER_RESOURCES, storage=args.storage, storage_class=args.storage_class,
                annotations=NO_SIDECAR, host_aliases=[{"ip": cluster_ip, "hostnames": [advertised]}],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[account, jwt, args.controller_service],
                                        retain_on_delete=args.prod),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=sec.meta(ROUTER, ns, ROUTER, "router"),
            spec={"type": args.service_type, "selector": sec.selector(ROUTER),
                  "ports": [pods.service_port("tls-edge", zt.router_port, args.node_port, args.service_type)]},
            opts=child,
        )
        pods.single_pod_budget(f"{name}-pdb", ns, ROUTER, "router", child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-policy",
            metadata={"name": ROUTER, "namespace": ns, "labels": sec.labels(ROUTER, "policy")},
            spec=router_policy(zt),
            opts=child,
        )
        self.register_outputs({})
