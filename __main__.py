"""The identity platform: load config, build the stacks and the trust chain, export outputs.

The wiring lives in `components/assembly.py`; the exports below are the contract that
`ops/outputs.py` (`StackOutputs`, schema/stack-outputs.schema.json) types for consumers.
"""

import pulumi

import stack_config
from components.assembly import build_platform

config = stack_config.load()
p = build_platform(config)

pulumi.export("environment", config.environment)
pulumi.export("nodes", sorted(config.nodes))
pulumi.export("spireTrustDomain", p.spire.trust_domain)
pulumi.export("spireBundlePem", p.spire.root_ca_cert_pem)
pulumi.export("spireEntryIds", p.registrations.entry_ids)
pulumi.export("keycloakUrl", p.keycloak.url)
pulumi.export("keycloakIssuerUrl", p.keycloak_identity.issuer_url)
pulumi.export("keycloakJwksUrl", p.keycloak_identity.jwks_url)
pulumi.export("keycloakRealmId", p.keycloak_identity.realm_id)
pulumi.export("keycloakZitiClientId", p.keycloak_identity.client_uuid)
pulumi.export("keycloakAdminUser", p.keycloak.admin_user)
pulumi.export("keycloakAdminPassword", pulumi.Output.secret(p.keycloak.admin_password))
pulumi.export("zitiControllerUrl", p.ziti.controller_url)
pulumi.export("zitiConsoleUrl", p.ziti.console_url)
pulumi.export("zitiAdminUser", p.ziti.admin_user)
pulumi.export("zitiAdminPassword", pulumi.Output.secret(p.ziti.admin_password))
pulumi.export("zitiCaId", p.ziti_trust.ca_id)
pulumi.export("zitiCaFingerprint", p.ziti_trust.ca_fingerprint)
pulumi.export("zitiExtJwtSignerId", p.ziti_trust.ext_jwt_signer_id)
pulumi.export("zitiAuthPolicyId", p.ziti_trust.auth_policy_id)
pulumi.export("zitiRouterId", p.ziti_trust.router_id)
pulumi.export("zitiIdentityIds", p.ziti_trust.identity_ids)
pulumi.export(
    "buckets",
    {role: {"name": b.bucket_name, "region": b.region, "endpoint": b.endpoint} for role, b in p.buckets.items()},
)
