"""One resource of every Ziti provider kind, for the suites that run the same contract over all of
them (tests/dynamic_providers/test_foreign_objects.py through the provider host,
tests/dynamic_providers/ziti/ in-process): the provider class, valid inputs for the fake controller
(without `connection` and `owner`) and a change that updates in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynamic_providers.ziti import provider as zp
from tests.fakes.ziti import ZitiController, make_ca


@dataclass
class ZitiKind:
    provider: type[zp.ZitiProvider]
    props: Callable[[ZitiController], dict[str, Any]]
    change: dict[str, Any]


def _signer(fake: ZitiController) -> str:
    return fake.put_entity(
        "external-jwt-signers",
        {"name": "pre", "issuer": "https://pre", "audience": "a", "jwksEndpoint": "https://pre/jwks", "enabled": True},
    )


def _ca(fake: ZitiController) -> dict[str, Any]:
    cert, key = make_ca()
    return {"name": "spire", "cert_pem": cert, "ca_key_pem": key, "is_auth_enabled": True, "identity_roles": ["a"]}


ZITI_KINDS = {
    "ca": ZitiKind(zp.CertificateAuthorityProvider, _ca, {"identity_roles": ["b"]}),
    "identity": ZitiKind(
        zp.IdentityProvider,
        lambda fake: {"name": "payments-api", "external_id": "spiffe://prod.example/api", "role_attributes": ["p"]},
        {"role_attributes": ["p", "pci"]},
    ),
    "auth-policy": ZitiKind(
        zp.AuthPolicyProvider,
        lambda fake: {"name": "users", "primary": {"ext_jwt": {"allowed": True, "allowed_signers": [_signer(fake)]}}},
        {"secondary": {"require_totp": True}},
    ),
    "external-jwt-signer": ZitiKind(
        zp.ExternalJwtSignerProvider,
        lambda fake: {
            "name": "keycloak",
            "issuer": "https://auth.example.com/realms/platform",
            "audience": "openziti",
            "jwks_endpoint": "https://auth.example.com/realms/platform/protocol/openid-connect/certs",
        },
        {"enabled": False},
    ),
    "edge-router": ZitiKind(
        zp.EdgeRouterProvider, lambda fake: {"name": "router-1", "role_attributes": ["public"]}, {"role_attributes": []}
    ),
    "edge-router-policy": ZitiKind(
        zp.EdgeRouterPolicyProvider,
        lambda fake: {"name": "all", "identity_roles": ["#all"], "edge_router_roles": ["#all"]},
        {"identity_roles": ["#users"]},
    ),
    "service-edge-router-policy": ZitiKind(
        zp.ServiceEdgeRouterPolicyProvider,
        lambda fake: {"name": "all", "service_roles": ["#all"], "edge_router_roles": ["#all"]},
        {"semantic": "AnyOf"},
    ),
    "service-policy": ZitiKind(
        zp.ServicePolicyProvider,
        lambda fake: {"name": "dial", "type": "Dial", "service_roles": ["#s"], "identity_roles": ["#i"]},
        {"identity_roles": ["#j"]},
    ),
}
