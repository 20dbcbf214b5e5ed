"""The identity platform: load config, build the stacks, wire the trust chain, export outputs."""

import pulumi

import stack_config
from components.keycloak_stack import KeycloakStack
from components.spire_stack import SpireStack
from components.storage import SpacesBucket, bucket_name
from components.swarm_nodes import SwarmNodes
from components.ziti_stack import ZitiStack

config = stack_config.load()
stack = pulumi.get_stack()

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
            bucket_name=bucket_name(config.domain, stack, role),
            region=config.region,
            noncurrent_version_days=config.storage.noncurrent_version_days,
        )
        for role in ("spire", "keycloak", "ziti")
    }
    if config.is_prod
    else {}
)

# Order: SPIRE -> Keycloak -> OpenZiti.
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
    # Until the ZitiEdgeRouter resource is wired in, the router's one-time JWT may come from config.
    router_enrollment_jwt=pulumi.Config().get_secret("zitiRouterEnrollmentJwt"),
    opts=pulumi.ResourceOptions(depends_on=[keycloak]),
)

pulumi.export("environment", config.environment)
pulumi.export("nodes", sorted(config.nodes))
pulumi.export("spireTrustDomain", spire.trust_domain)
pulumi.export("spireBundlePem", spire.root_ca_cert_pem)
pulumi.export("keycloakUrl", keycloak.url)
pulumi.export("keycloakAdminUser", keycloak.admin_user)
pulumi.export("keycloakAdminPassword", pulumi.Output.secret(keycloak.admin_password))
pulumi.export("zitiControllerUrl", ziti.controller_url)
pulumi.export("zitiConsoleUrl", ziti.console_url)
pulumi.export("zitiAdminUser", ziti.admin_user)
pulumi.export("zitiAdminPassword", pulumi.Output.secret(ziti.admin_password))
pulumi.export(
    "buckets",
    {role: {"name": b.bucket_name, "region": b.region, "endpoint": b.endpoint} for role, b in buckets.items()},
)
