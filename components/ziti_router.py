"""ZitiRouter: the OpenZiti edge router service, enrolled with a one-time JWT.

The JWT comes from the `ZitiEdgeRouter` resource (dynamic provider), which can only be created
once the controller answers; that is why the router is its own component, built after
`ZitiTrust`, instead of part of `ZitiStack`. The JWT is delivered as a Swarm secret
(`ZITI_ENROLL_TOKEN` names the file, never the token). Routers cannot enroll with a SPIFFE SVID in
current OpenZiti, so the one-time token is the only enrollment path. The enrolled identity lives
on a node-local volume on the labelled node: the JWT is single-use, so losing the volume means
re-creating the edge-router resource (`pulumi up --replace` on it).

The reverse also holds: a re-created edge-router resource (new id, new JWT) cannot use the identity
enrolled for the old one. The wrapper records a hash of the token it enrolled with; when the token
changes, it moves the old identity and config aside (`.replaced-<time>/`) so that the image's
bootstrap enrolls with the new token instead of running as a router the controller deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker_helpers import (
    SECRETS_DIR,
    Placement,
    after,
    healthcheck,
    limits,
    network_attachment,
    secret_file,
    secret_mount,
    service,
    volume_mount,
)
from components.scripts import script
from components.ziti_stack import ZITI_UID
from stack_config import ZitiSettings
from stack_config.base import required

ROUTER_SERVICE = "ziti-router"
ROUTER_HOME = "/ziti-router"
ENROLLMENT_JWT_FILE = "ziti-router-enrollment.jwt"

# `bash -c ROUTER_WRAPPER entrypoint run config.yml`: re-enroll when the token changed, then the
# image's own entrypoint.
ROUTER_WRAPPER = script("ziti-router-wrapper.bash")


def router_env(zt: ZitiSettings) -> dict[str, str]:
    """The router's `ZITI_*` environment for the image's bootstrap (config + enrollment on first
    start). The bootstrap's `makeConfig` requires the controller's address and port (the router
    config's `ctrl.endpoint`); without them it stops before enrolling."""
    return {
        # A path: the bootstrap reads the token from the file.
        "ZITI_ENROLL_TOKEN": f"{SECRETS_DIR}/{ENROLLMENT_JWT_FILE}",
        "ZITI_CTRL_ADVERTISED_ADDRESS": required(zt.advertised_address, "ziti.advertisedAddress"),
        "ZITI_CTRL_ADVERTISED_PORT": str(zt.advertised_port),
        "ZITI_ROUTER_NAME": zt.router_name,
        "ZITI_ROUTER_ADVERTISED_ADDRESS": required(zt.router_advertised_address, "ziti.routerAdvertisedAddress"),
        "ZITI_ROUTER_PORT": str(zt.router_port),
        "ZITI_ROUTER_LISTENER_BIND_PORT": str(zt.router_port),
        "ZITI_ROUTER_MODE": "host",
        "ZITI_ROUTER_TYPE": "edge",
        "ZITI_BOOTSTRAP": "true",
        "ZITI_BOOTSTRAP_CONFIG": "true",
        "ZITI_BOOTSTRAP_ENROLLMENT": "true",
        "ZITI_AUTO_RENEW_CERTS": "true",
        "ZITI_HOME": ROUTER_HOME,
    }


@dataclass(frozen=True)
class ZitiRouterArgs:
    """The router's settings and image, where it runs, the controller service it enrolls with (and
    whose `ziti` network it joins), and the one-time JWT of its `ZitiEdgeRouter` entity."""

    ziti: ZitiSettings
    image: str
    prod: bool
    placement: Placement
    controller: pulumi.Resource
    network_id: pulumi.Input[str]
    enrollment_jwt: pulumi.Input[str]


class ZitiRouter(pulumi.ComponentResource):
    """The edge router service on the `ziti` network, publishing the edge listener."""

    service: docker.Service

    def __init__(self, resource_name: str, args: ZitiRouterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:ziti:ZitiRouter", resource_name, None, opts)
        name = resource_name
        zt, prod, place = args.ziti, args.prod, args.placement
        enrollment_jwt = args.enrollment_jwt
        jwt_secret = secret_file(
            f"{name}-jwt", base="ziti-router-enrollment", content=enrollment_jwt, parent=self, provider=place.manager
        )
        data_volume = docker.Volume(
            f"{name}-data",
            name="ziti-router-data",
            driver="local",
            opts=pulumi.ResourceOptions(parent=self, provider=place.stateful_node, retain_on_delete=prod),
        )
        self.service = service(
            f"{name}-service",
            name=ROUTER_SERVICE,
            stateful=True,  # its enrolled identity is on a node-local volume
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=args.image,
                commands=["/bin/bash", "-c", ROUTER_WRAPPER, "entrypoint"],
                args=["run", "config.yml"],
                env=router_env(zt),
                secrets=[secret_mount(jwt_secret, ENROLLMENT_JWT_FILE, uid=ZITI_UID)],
                mounts=[volume_mount(data_volume.name, ROUTER_HOME)],
                healthcheck=healthcheck(
                    ["CMD", "ziti", "agent", "stats"], interval="10s", timeout="5s", start_period="60s"
                ),
                stop_grace_period="30s",
            ),
            networks=[network_attachment(args.network_id)],
            ports=[
                docker.ServiceEndpointSpecPortArgs(
                    name="edge", target_port=zt.router_port, published_port=zt.router_port, protocol="tcp"
                )
            ],
            resources=limits(prod, memory_mb=512, cpus=1.0),
            opts=pulumi.ResourceOptions(
                parent=self, provider=place.manager, depends_on=[args.controller, *after(opts)]
            ),
        )
        self.register_outputs({"service_id": self.service.id})
