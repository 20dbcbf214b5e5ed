"""`kubernetes.ziti`: the OpenZiti controller and edge router in the cluster of `platform: kubernetes`.

Present (with `kubernetes.iam`, whose Keycloak realm is the external JWT signer): the program runs
the controller (a StatefulSet on its own volume) and one edge router in the namespace `ziti`, and
wires the same trust chain as on Swarm: SPIRE's root as a verified third-party CA, an identity per
workload by SPIFFE ID, the realm as the signer, the auth policies, the router's one-time JWT.
The names and ports are the `ziti` section's (`advertisedAddress`, `routerAdvertisedAddress`,
`clusterTrustDomain`); this section says how they are exposed and how big the volumes are.

How the names are reached: clients (and this program) dial `ziti.advertisedAddress` and
`ziti.routerAdvertisedAddress`, which must resolve to the Services this section exposes (a
LoadBalancer's address, or the nodes with NodePorts, e.g. kind's extraPortMappings). Inside the
cluster the router reaches the controller under the same name (a host alias to the controller's
Service), since the controller's certificate carries only that name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from stack_config.base import Model, port_number

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
NODE_PORTS = (30000, 32767)  # the API server's default --service-node-port-range


class ZitiOnKubernetes(Model):
    service_type: Literal["LoadBalancer", "NodePort", "ClusterIP"] = Field(
        default="LoadBalancer",
        description="Type of the controller's and the router's Services: LoadBalancer (a cloud's load "
        "balancer), NodePort (e.g. kind with extraPortMappings) or ClusterIP (reached from inside the cluster only).",
    )
    controller_node_port: Annotated[int, port_number(31280)] | None = Field(
        default=None, ge=NODE_PORTS[0], le=NODE_PORTS[1],
        description="NodePort of the controller's edge API (serviceType NodePort; default: the cluster picks one).",
    )
    router_node_port: Annotated[int, port_number(31022)] | None = Field(
        default=None, ge=NODE_PORTS[0], le=NODE_PORTS[1],
        description="NodePort of the edge router's listener (serviceType NodePort; default: the cluster picks one).",
    )
    database_storage: str = Field(
        default="2Gi", description="Size of the controller's volume (its database and PKI), a Kubernetes quantity."
    )
    router_storage: str = Field(
        default="256Mi", description="Size of the router's volume (its enrolled identity), a Kubernetes quantity."
    )

    @field_validator("database_storage", "router_storage")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if not _QUANTITY.match(v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity: write e.g. 2Gi or 500Mi")
        return v

    def problems(self) -> list[str]:
        """`kubernetes.ziti.<key>: ...` lines for settings that contradict each other."""
        out = []
        for key, value in (("controllerNodePort", self.controller_node_port),
                           ("routerNodePort", self.router_node_port)):
            if value is not None and self.service_type != "NodePort":
                out.append(
                    f"kubernetes.ziti.{key}: only used with serviceType NodePort, not {self.service_type}: remove it "
                    f"(fix: `pulumi config rm --path 'kubernetes.ziti.{key}'`)"
                )
        if (self.controller_node_port is not None and self.controller_node_port == self.router_node_port):
            out.append("kubernetes.ziti.routerNodePort: the same as controllerNodePort: give each its own")
        return out
