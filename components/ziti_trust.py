"""ZitiTrust: the trust wiring inside OpenZiti, as resources that show up in `pulumi preview`.

What the reference architecture's bootstrap script did by hand:

- SPIRE's upstream root CA registered as a third-party CA and **verified** (the program owns the
  key), `externalIdClaim` SAN_URI / SCHEME / spiffe, auth enabled: a workload logs in with its
  SVID and is matched to the identity whose `externalId` is its SPIFFE ID;
- one identity per workload (`externalId` = SPIFFE ID), under a cert-only auth policy;
- the Keycloak realm as an external JWT signer (issuer, JWKS, audience) and an auth policy that
  admits only tokens from it, for users;
- one identity per Keycloak user (`externalId` = the user's email, the claim the signer matches),
  under the auth policy that admits only Keycloak tokens;
- the edge router entity (when `router_name` is given), whose one-time enrollment JWT is the
  router service's secret (routers cannot enroll with a third-party CA in current OpenZiti);
- default policies: every identity may use every edge router, every service is reachable
  through every edge router. Service (Dial/Bind) policies stay per application.

It needs the controller up (its `connection`) and nothing from the router service: the router
service consumes `router_enrollment_jwt`, so the dependency only runs one way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.docker_helpers import after
from dynamic_providers.ziti.provider import (
    ZitiAuthPolicy,
    ZitiCertificateAuthority,
    ZitiEdgeRouter,
    ZitiEdgeRouterPolicy,
    ZitiExternalJwtSigner,
    ZitiIdentity,
    ZitiServiceEdgeRouterPolicy,
)
from stack_config import USER_IDENTITY, USER_IDENTITY_PREFIX, WORKLOAD_IDENTITY

SPIFFE_CLAIM = {
    "location": "SAN_URI",
    "matcher": "SCHEME",
    "matcher_criteria": "spiffe",
    "parser": "NONE",
    "parser_criteria": "",
    "index": 0,
}


@dataclass(frozen=True)
class ZitiWorkload:
    """A workload's Ziti identity: matched by SPIFFE ID, selected by policies through its attributes."""

    spiffe_id: pulumi.Input[str]
    role_attributes: Sequence[str] = field(default_factory=tuple)


WorkloadSpec = ZitiWorkload | tuple[Any, Sequence[str]]


@dataclass(frozen=True)
class ZitiUserSpec:
    """A Keycloak user's Ziti identity: matched by the email claim of their token."""

    email: str
    role_attributes: Sequence[str] = field(default_factory=tuple)


def _workload(spec: WorkloadSpec) -> ZitiWorkload:
    if isinstance(spec, ZitiWorkload):
        return spec
    spiffe_id, attributes = spec
    return ZitiWorkload(spiffe_id, tuple(attributes))


@dataclass(frozen=True)
class ZitiTrustArgs:
    """The controller connection, SPIRE's root (cert and key: the CA is verified with it), the
    Keycloak realm's signer settings, the router to make, and the identities by name."""

    connection: Mapping[str, pulumi.Input[Any]]
    root_ca_cert_pem: pulumi.Input[str]
    root_ca_key_pem: pulumi.Input[str]
    keycloak_issuer: pulumi.Input[str]
    keycloak_jwks_url: pulumi.Input[str]
    keycloak_audience: pulumi.Input[str]
    keycloak_client_id: pulumi.Input[str]
    # The edge router entity to make (its one-time JWT is an output); None: none.
    router_name: str | None
    workloads: Mapping[str, WorkloadSpec] = field(default_factory=dict)
    users: Mapping[str, ZitiUserSpec] = field(default_factory=dict)
    keycloak_claims_property: str = "email"
    router_role_attributes: Sequence[str] = ("public",)
    # Prefixes the name of every Ziti object made here (`<scope>-...`): on a controller several
    # stacks share (platform external), names are unique per stack.
    name_scope: str | None = None


class ZitiTrust(pulumi.ComponentResource):
    """SPIRE CA (verified), Keycloak signer and policies, edge router, workload identities."""

    ca_id: pulumi.Output[str]
    ca_fingerprint: pulumi.Output[str]
    ext_jwt_signer_id: pulumi.Output[str]
    auth_policy_id: pulumi.Output[str]
    workload_auth_policy_id: pulumi.Output[str]
    router_id: pulumi.Output[str] | None
    router_enrollment_jwt: pulumi.Output[str] | None
    identity_ids: dict[str, pulumi.Output[str]]
    user_identity_ids: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: ZitiTrustArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:ziti:ZitiTrust", name, None, opts)
        # depends_on is not inherited through `parent`: every child waits for the controller.
        wait = after(opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=wait)
        a = args
        scope = f"{a.name_scope}-" if a.name_scope else ""
        # The connection (with the admin password) is secret however the caller built the map; one
        # Output for every child, which the resource classes wrap once, not once per identity.
        conn = pulumi.Output.secret(dict(a.connection))

        ca = ZitiCertificateAuthority(
            f"{name}-spire-ca",
            name=f"{scope}{name}-spire",
            cert_pem=a.root_ca_cert_pem,
            ca_key_pem=pulumi.Output.secret(a.root_ca_key_pem),
            is_auth_enabled=True,
            is_auto_ca_enrollment_enabled=False,
            is_ott_ca_enrollment_enabled=False,
            identity_roles=["spire"],
            external_id_claim=SPIFFE_CLAIM,
            connection=conn,
            opts=child,
        )
        workload_policy = ZitiAuthPolicy(
            f"{name}-workload-policy",
            name=f"{scope}{name}-spiffe-workloads",
            primary={
                "cert": {"allowed": True, "allow_expired_certs": False},
                "ext_jwt": {"allowed": False, "allowed_signers": []},
                "updb": {"allowed": False},
            },
            connection=conn,
            opts=child,
        )
        signer = ZitiExternalJwtSigner(
            f"{name}-keycloak-signer",
            name=f"{scope}{name}-keycloak",
            issuer=a.keycloak_issuer,
            audience=a.keycloak_audience,
            jwks_endpoint=a.keycloak_jwks_url,
            client_id=a.keycloak_client_id,
            external_auth_url=a.keycloak_issuer,
            scopes=["openid", "email"],
            claims_property=a.keycloak_claims_property,
            use_external_id=True,
            target_token="ACCESS",  # noqa: S106 (the token type, not a secret)
            enabled=True,
            connection=conn,
            opts=child,
        )
        user_policy = ZitiAuthPolicy(
            f"{name}-user-policy",
            name=f"{scope}{name}-keycloak-users",
            primary={
                "cert": {"allowed": False, "allow_expired_certs": False},
                "ext_jwt": {"allowed": True, "allowed_signers": [signer.id]},
                "updb": {"allowed": False},
            },
            connection=conn,
            opts=child,
        )
        router = (
            ZitiEdgeRouter(
                f"{name}-router",
                name=a.router_name,
                role_attributes=list(a.router_role_attributes),
                is_tunneler_enabled=False,
                connection=conn,
                opts=child,
            )
            if a.router_name is not None
            else None
        )
        self.identity_ids = {}
        for key, spec in sorted(a.workloads.items()):
            workload = _workload(spec)
            identity = ZitiIdentity(
                WORKLOAD_IDENTITY.format(name=name, key=key),
                name=f"{scope}{key}",
                # type "Default", is_admin False: the provider's check fills them in (each input
                # given is one more Output per identity for the SDK).
                external_id=workload.spiffe_id,
                auth_policy_id=workload_policy.id,
                role_attributes=list(workload.role_attributes),
                connection=conn,
                # Logins through the CA need it verified first; identities need nothing else from it.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[ca, *wait]),
            )
            self.identity_ids[key] = identity.id
        self.user_identity_ids = {}
        for key, user in sorted(a.users.items()):
            self.user_identity_ids[key] = ZitiIdentity(
                USER_IDENTITY.format(name=name, key=key),
                name=f"{scope}{USER_IDENTITY_PREFIX}{key}",
                external_id=user.email,
                auth_policy_id=user_policy.id,
                role_attributes=list(user.role_attributes),
                connection=conn,
                opts=child,
            ).id
        ZitiEdgeRouterPolicy(
            f"{name}-all-routers",
            name=f"{scope}{name}-all-identities-all-routers",
            semantic="AnyOf",
            identity_roles=["#all"],
            edge_router_roles=["#all"],
            connection=conn,
            opts=child,
        )
        ZitiServiceEdgeRouterPolicy(
            f"{name}-all-services",
            name=f"{scope}{name}-all-services-all-routers",
            semantic="AnyOf",
            service_roles=["#all"],
            edge_router_roles=["#all"],
            connection=conn,
            opts=child,
        )

        self.ca_id = ca.id
        self.ca_fingerprint = ca.fingerprint
        self.ext_jwt_signer_id = signer.id
        self.auth_policy_id = user_policy.id
        self.workload_auth_policy_id = workload_policy.id
        self.router_id = router.id if router else None
        self.router_enrollment_jwt = pulumi.Output.secret(router.enrollment_jwt) if router else None
        self.register_outputs(
            {
                "ca_id": self.ca_id,
                "ca_fingerprint": self.ca_fingerprint,
                "ext_jwt_signer_id": self.ext_jwt_signer_id,
                "auth_policy_id": self.auth_policy_id,
                "workload_auth_policy_id": self.workload_auth_policy_id,
                "router_id": self.router_id,
                "router_enrollment_jwt": self.router_enrollment_jwt,
                "identity_ids": self.identity_ids,
                "user_identity_ids": self.user_identity_ids,
            }
        )
