"""How the components fit together: the stacks in order and the trust chain between them.

`__main__.py` calls `build_platform(config)` and exports from the result; tests call the same
function, so what they assert is exactly what `pulumi up` builds. No resources here are
created at import time.

Order and data flow (each arrow is a `depends_on` or an Output passed as an input):

    SpireStack ──► KeycloakStack ──► ZitiStack (controller)
        │ root CA (cert + key)              │ controller CA, URL, admin password
        │ agent SPIFFE IDs                  ▼
        ├──► SpireRegistrations ──► ZitiTrust ◄── KeycloakIdentity (realm, Ziti client)
        │       (SPIFFE IDs)          │  CA verified, signer, policies, identities
        └───────────────────────────► │  edge router ─ one-time JWT ─► ZitiRouter
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.keycloak_identity import KeycloakIdentity
from components.keycloak_stack import KeycloakStack
from components.spire_registrations import SpireRegistrations, registration_connection
from components.spire_stack import SpireStack
from components.storage import SpacesBucket, bucket_name
from components.swarm_nodes import SwarmNodes
from components.ziti_router import ZitiRouter
from components.ziti_stack import ZitiStack
from components.ziti_trust import ZitiTrust, ZitiWorkload
from stack_config import StackConfig

BUCKET_ROLES = ("spire", "keycloak", "ziti")

# The providers wait this long for a service created in the same `pulumi up` to answer.
SERVER_READY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Platform:
    """Every component of one stack, for exports and tests."""

    swarm: SwarmNodes
    buckets: dict[str, SpacesBucket]
    spire: SpireStack
    keycloak: KeycloakStack
    ziti: ZitiStack
    registrations: SpireRegistrations
    keycloak_identity: KeycloakIdentity
    ziti_trust: ZitiTrust
    router: ZitiRouter


def build_platform(config: StackConfig) -> Platform:
    """Build the three stacks (SPIRE -> Keycloak -> OpenZiti) and wire the trust chain."""
    swarm = SwarmNodes(
        "swarm",
        nodes=config.nodes,
        manager_node=config.manager_node,
        rclone_plugin_image=config.images.rclone_plugin if config.is_prod else None,
    )
    # prod: one private bucket (and key) per stack; dev: local volumes only.
    buckets = (
        {
            role: SpacesBucket(
                f"bucket-{role}",
                bucket_name=bucket_name(config.domain, pulumi.get_stack(), role),
                region=config.region,
                noncurrent_version_days=config.storage.noncurrent_version_days,
            )
            for role in BUCKET_ROLES
        }
        if config.is_prod
        else {}
    )

    spire = SpireStack("spire", config=config, swarm=swarm, bucket=buckets.get("spire"))
    keycloak = KeycloakStack(
        "keycloak",
        config=config,
        swarm=swarm,
        bucket=buckets.get("keycloak"),
        opts=pulumi.ResourceOptions(depends_on=[spire]),
    )
    ziti = ZitiStack(
        "ziti",
        config=config,
        swarm=swarm,
        spire=spire,
        keycloak=keycloak,
        bucket=buckets.get("ziti"),
        opts=pulumi.ResourceOptions(depends_on=[keycloak]),
    )

    registrations = SpireRegistrations(
        "spire-entries",
        workloads=config.workloads,
        trust_domain=spire.trust_domain,
        agent_spiffe_ids=spire.agent_spiffe_ids,
        connection=registration_connection(
            config,
            server_node=spire.server_node,
            server_service=spire.server_service_name,
            server_socket_path=spire.server_socket_path,
        ),
        opts=pulumi.ResourceOptions(depends_on=[spire]),
    )

    kc = config.keycloak
    identity = KeycloakIdentity(
        "keycloak-identity",
        url=keycloak.url,
        admin_user=keycloak.admin_user,
        admin_password=keycloak.admin_password,
        realm=kc.realm,
        ziti_client_id=kc.ziti_client_id,
        # Tokens for Ziti carry the Ziti client's id as audience; the signer expects exactly that.
        audience=kc.ziti_client_id,
        opts=pulumi.ResourceOptions(depends_on=[keycloak]),
    )

    trust = ZitiTrust(
        "ziti-trust",
        connection={
            "url": ziti.controller_url,
            "username": ziti.admin_user,
            "password": ziti.admin_password,
            "ca_bundle_pem": ziti.controller_ca_pem,
            "ready_timeout": SERVER_READY_TIMEOUT_SECONDS,
        },
        root_ca_cert_pem=spire.root_ca_cert_pem,
        root_ca_key_pem=spire.root_ca_key_pem,
        keycloak_issuer=identity.issuer_url,
        # The controller fetches the JWKS itself, over the `keycloak` overlay network.
        keycloak_jwks_url=f"{keycloak.internal_url}/realms/{kc.realm}/protocol/openid-connect/certs",
        keycloak_audience=identity.audience,
        keycloak_client_id=identity.client_id,
        router_name=config.ziti.router_name,
        workloads={
            wname: ZitiWorkload(registrations.spiffe_ids[wname], tuple(w.ziti_role_attributes))
            for wname, w in sorted(config.workloads.items())
        },
        opts=pulumi.ResourceOptions(depends_on=[ziti]),
    )
    router = ZitiRouter(
        "ziti-router",
        config=config,
        swarm=swarm,
        ziti=ziti,
        enrollment_jwt=trust.router_enrollment_jwt,
        opts=pulumi.ResourceOptions(depends_on=[ziti]),
    )
    return Platform(swarm, buckets, spire, keycloak, ziti, registrations, identity, trust, router)
