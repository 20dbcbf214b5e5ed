"""`diff` of every provider, one row per (resource kind, managed input field).

For each kind a valid, full set of inputs is written out below. Each row changes exactly one
field (or one key of a nested block) to another valid value and expects `diff` to report a
change, and a replacement exactly for the fields the provider must replace:

* Keycloak: `realm` (client and realm resources); a client's `client_id` renames in place.
* Ziti: the CA's `cert_pem` (the controller cannot change it in place) and dropping its
  `external_id_claim` (PATCH cannot remove a claim); replacements delete first (unique names).
* SPIRE: the identity triple `spiffe_id`, `parent_id`, `selectors`; create-before-delete.

Every row also checks the other direction: the same inputs, written again, report no change.
A second table lists rewrites that mean the same thing (order of set-like lists, equivalent
spellings) and must report no change either.

The providers are plain Python objects and `diff` makes no request, so they are driven directly,
the way the engine does: `olds` are the previous outputs (the checked inputs plus what the
provider computed), `news` are the new inputs as the provider's own `check` returns them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pulumi.dynamic import ResourceProvider
from pulumi.output import Unknown
from pydantic import BaseModel

from dynamic_providers.keycloak.models import ClientSpec, RealmSpec
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire.models import MANAGED_FIELDS as SPIRE_ENTRY_FIELDS
from dynamic_providers.spire.provider import SpireEntryProvider
from dynamic_providers.ziti.models import nested_model
from dynamic_providers.ziti.provider import (
    AuthPolicyProvider,
    CertificateAuthorityProvider,
    EdgeRouterPolicyProvider,
    EdgeRouterProvider,
    ExternalJwtSignerProvider,
    IdentityProvider,
    ServiceEdgeRouterPolicyProvider,
    ServicePolicyProvider,
)
from tests.fakes.ziti import make_ca

# --- certificates (generated once: a CA certificate cannot be written out and stay valid) -------------

CA_KEY = ec.generate_private_key(ec.SECP256R1())
CA_CERT, CA_KEY_PEM = make_ca("SPIRE upstream root", key=CA_KEY)
CA_CERT_REISSUED, _ = make_ca("SPIRE upstream root", key=CA_KEY)  # same key and subject, another certificate
CA_KEY_PEM_TRADITIONAL = CA_KEY.private_bytes(  # the same key, written in another PEM format
    serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
).decode()
SIGNER_CERT, _ = make_ca("keycloak signer")
SIGNER_CERT_2, _ = make_ca("keycloak signer")


# --- one valid, full set of inputs per kind -------------------------------------------------------------

KEYCLOAK_CONNECTION = {"url": "https://auth.acme-identity.net", "username": "admin", "password": "admin-pw"}
ZITI_CONNECTION = {"url": "https://ziti.acme-identity.net:1280", "username": "admin", "password": "admin-pw"}
SPIRE_CONNECTION = {
    "transport": "grpc",
    "socket_path": "/run/spire/server/private/api.sock",
    "trust_domain": "acme-identity.net",
    "project": "identity-platform",
    "stack": "dev",
}


def _ziti_owner(name: str) -> dict[str, str]:
    return {"stack": "identity-platform/dev", "name": name}


KEYCLOAK_CLIENT = {
    "realm": "platform",
    "client_id": "openziti",
    "name": "OpenZiti",
    "description": "tunneler logins",
    "enabled": True,
    "access_type": "CONFIDENTIAL",
    "standard_flow_enabled": True,
    "implicit_flow_enabled": False,
    "direct_access_grants_enabled": False,
    "service_accounts_enabled": False,
    "redirect_uris": ["http://localhost:20314/auth/callback", "http://127.0.0.1:20314/auth/callback"],
    "web_origins": ["https://app.acme-identity.net"],
    "post_logout_redirect_uris": ["https://app.acme-identity.net/logged-out"],
    "root_url": "https://app.acme-identity.net",
    "base_url": "/home",
    "pkce_method": "S256",
    "attributes": {"access.token.lifespan": "300"},
    "default_client_scopes": ["profile", "email"],
    "optional_client_scopes": ["offline_access"],
    "audience": "openziti",
    "rotate_secret_trigger": "1",
    "connection": KEYCLOAK_CONNECTION,
    "owner": "identity-platform/dev",
}
KEYCLOAK_REALM = {
    "realm": "platform",
    "enabled": True,
    "display_name": "Platform",
    "access_token_lifespan": 300,
    "access_code_lifespan": 60,
    "sso_session_idle_timeout": 1800,
    "sso_session_max_lifespan": 36000,
    "offline_session_idle_timeout": 2592000,
    "connection": KEYCLOAK_CONNECTION,
    "owner": "identity-platform/dev",
}
ZITI_CA = {
    "name": "spire",
    "cert_pem": CA_CERT,
    "ca_key_pem": CA_KEY_PEM,
    "is_auth_enabled": True,
    "is_auto_ca_enrollment_enabled": False,
    "is_ott_ca_enrollment_enabled": False,
    "identity_roles": ["spire", "workloads"],
    "identity_name_format": "[caName]-[commonName]",
    "external_id_claim": {
        "location": "SAN_URI",
        "matcher": "PREFIX",
        "matcher_criteria": "spiffe://acme-identity.net/",
        "parser": "NONE",
        "parser_criteria": "/",
        "index": 0,
    },
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-trust-spire-ca"),
}
ZITI_SIGNER = {
    "name": "keycloak",
    "issuer": "https://auth.acme-identity.net/realms/platform",
    "audience": "openziti",
    "jwks_endpoint": "https://auth.acme-identity.net/realms/platform/protocol/openid-connect/certs",
    "claims_property": "email",
    "use_external_id": True,
    "external_auth_url": "https://auth.acme-identity.net/realms/platform",
    "client_id": "openziti",
    "scopes": ["openid", "email"],
    "target_token": "ACCESS",
    "enabled": True,
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-keycloak-signer"),
}
# The same signer keyed by a certificate instead of a JWKS endpoint (exactly one of the two).
ZITI_SIGNER_CERT = {
    **{k: v for k, v in ZITI_SIGNER.items() if k != "jwks_endpoint"},
    "cert_pem": SIGNER_CERT,
    "kid": "key-1",
}
ZITI_AUTH_POLICY = {
    "name": "keycloak-users",
    "primary": {
        "cert": {"allowed": True, "allow_expired_certs": False},
        "ext_jwt": {"allowed": True, "allowed_signers": ["signer-1"]},
        "updb": {
            "allowed": False,
            "min_password_length": 5,
            "require_special_char": False,
            "require_number_char": False,
            "require_mixed_case": False,
            "max_attempts": 0,
            "lockout_duration_minutes": 0,
        },
    },
    "secondary": {"require_totp": False, "require_ext_jwt_signer": None},
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-users-auth-policy"),
}
ZITI_IDENTITY = {
    "name": "payments-api",
    "type": "Default",
    "is_admin": False,
    "external_id": "spiffe://acme-identity.net/ns/payments/sa/api",
    "auth_policy_id": "spire-workloads",
    "role_attributes": ["workloads"],
    "tags": {"team": "payments"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-identity-payments-api"),
}
ZITI_ROUTER = {
    "name": "router-1",
    "role_attributes": ["public"],
    "is_tunneler_enabled": False,
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-router-1"),
}
ZITI_ROUTER_POLICY = {
    "name": "workloads-use-public-routers",
    "semantic": "AllOf",
    "edge_router_roles": ["#public"],
    "identity_roles": ["#workloads"],
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-edge-router-policy"),
}
ZITI_SERVICE_ROUTER_POLICY = {
    "name": "all-services-on-public-routers",
    "semantic": "AllOf",
    "edge_router_roles": ["#public"],
    "service_roles": ["#all"],
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-service-edge-router-policy"),
}
ZITI_SERVICE_POLICY = {
    "name": "workloads-dial-payments",
    "type": "Dial",
    "semantic": "AllOf",
    "service_roles": ["#payments"],
    "identity_roles": ["#workloads"],
    "posture_check_roles": [],
    "tags": {"team": "platform"},
    "connection": ZITI_CONNECTION,
    "owner": _ziti_owner("ziti-service-policy"),
}
SPIRE_ENTRY = {
    "spiffe_id": "spiffe://acme-identity.net/ns/payments/sa/api",
    "parent_id": "spiffe://acme-identity.net/spire/agent/x509pop/worker-1",
    "selectors": [
        "docker:label:com.docker.swarm.service.name:payments_api",
        "docker:label:com.docker.stack.namespace:payments",
    ],
    "x509_svid_ttl": 3600,
    "jwt_svid_ttl": 300,
    "dns_names": ["api.payments.internal"],
    "federates_with": ["partner.org"],
    "admin": False,
    "downstream": False,
    "hint": "payments",
    "store_svid": False,
    "connection": SPIRE_CONNECTION,
}


@dataclass(frozen=True)
class Kind:
    provider: Callable[[], ResourceProvider]
    base: Mapping[str, Any]
    outputs: Mapping[str, Any]  # what the provider adds to its outputs (the state diff compares against)
    delete_before_replace: bool
    not_in_state: frozenset[str] = field(default_factory=frozenset)  # inputs never echoed into outputs


KINDS: dict[str, Kind] = {
    "keycloak-client": Kind(
        KeycloakClientProvider,
        KEYCLOAK_CLIENT,
        {
            "client_secret": "generated-secret",
            "issuer_url": "https://auth.acme-identity.net/realms/platform",
            "jwks_url": "https://auth.acme-identity.net/realms/platform/protocol/openid-connect/certs",
        },
        delete_before_replace=True,
    ),
    "keycloak-realm": Kind(
        KeycloakRealmProvider,
        KEYCLOAK_REALM,
        {
            "issuer_url": "https://auth.acme-identity.net/realms/platform",
            "jwks_url": "https://auth.acme-identity.net/realms/platform/protocol/openid-connect/certs",
        },
        delete_before_replace=True,
    ),
    "ziti-ca": Kind(
        CertificateAuthorityProvider,
        ZITI_CA,
        {"fingerprint": "0" * 40, "is_verified": True, "enrollment_jwt": "a.b.c"},
        delete_before_replace=True,
        not_in_state=frozenset({"ca_key_pem"}),
    ),
    "ziti-signer": Kind(ExternalJwtSignerProvider, ZITI_SIGNER, {}, delete_before_replace=True),
    "ziti-signer-cert": Kind(ExternalJwtSignerProvider, ZITI_SIGNER_CERT, {}, delete_before_replace=True),
    "ziti-auth-policy": Kind(AuthPolicyProvider, ZITI_AUTH_POLICY, {}, delete_before_replace=True),
    "ziti-identity": Kind(IdentityProvider, ZITI_IDENTITY, {}, delete_before_replace=True),
    "ziti-router": Kind(
        EdgeRouterProvider,
        ZITI_ROUTER,
        {"enrollment_jwt": "a.b.c", "enrollment_expires_at": "2026-01-01T00:00:00Z", "is_verified": True},
        delete_before_replace=True,
    ),
    "ziti-router-policy": Kind(EdgeRouterPolicyProvider, ZITI_ROUTER_POLICY, {}, delete_before_replace=True),
    "ziti-service-router-policy": Kind(
        ServiceEdgeRouterPolicyProvider, ZITI_SERVICE_ROUTER_POLICY, {}, delete_before_replace=True
    ),
    "ziti-service-policy": Kind(ServicePolicyProvider, ZITI_SERVICE_POLICY, {}, delete_before_replace=True),
    "spire-entry": Kind(
        SpireEntryProvider,
        SPIRE_ENTRY,
        {"entry_id": "pulumi.identity-platform.dev.0123456789abcdef01234567", "revision_number": 3, "created_at": 1},
        delete_before_replace=False,
    ),
}

PROVIDER_KEY = "__provider"
PICKLED = "pickled-provider-bytes"  # the engine passes the serialized provider along with the properties


# --- rows -----------------------------------------------------------------------------------------------

UNSET = object()  # a row's value: the field is dropped from the program


@dataclass(frozen=True)
class Change:
    kind: str
    path: str  # "field" or "field/nested/key"
    value: Any
    replaces: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.path}"


def _rows(kind: str, changes: Mapping[str, Any], replaces: Mapping[str, tuple[str, ...]] | None = None) -> list[Change]:
    replaces = replaces or {}
    return [Change(kind, path, value, replaces.get(path, ())) for path, value in changes.items()]


def _ziti_meta(name: str) -> dict[str, Any]:
    """The two inputs every Ziti kind takes besides its entity fields."""
    return {
        "connection": {**ZITI_CONNECTION, "password": "rotated-admin-pw"},
        "connection/url": "https://ziti2.acme-identity.net:1280",
        "owner": {"stack": "identity-platform/dev", "name": f"{name}-renamed"},
        "owner/stack": "identity-platform/prod",
    }


CHANGES: list[Change] = [
    *_rows(
        "keycloak-client",
        {
            "realm": "platform-2",
            "client_id": "openziti-2",
            "name": "OpenZiti tunnelers",
            "description": "tunneler and console logins",
            "enabled": False,
            "access_type": "PUBLIC",
            "standard_flow_enabled": False,
            "implicit_flow_enabled": True,
            "direct_access_grants_enabled": True,
            "service_accounts_enabled": True,
            # The bug this file was written for: a changed redirect URI (one of two) must be a diff.
            "redirect_uris": ["http://localhost:20315/auth/callback", "http://127.0.0.1:20314/auth/callback"],
            "web_origins": ["https://console.acme-identity.net"],
            "post_logout_redirect_uris": ["https://app.acme-identity.net/bye"],
            "root_url": "https://console.acme-identity.net",
            "base_url": "/start",
            "pkce_method": "plain",
            "attributes": {"access.token.lifespan": "600"},
            "attributes/client.session.idle.timeout": "900",
            "default_client_scopes": ["profile", "email", "roles"],
            "optional_client_scopes": ["offline_access", "address"],
            "audience": "ziti",
            "rotate_secret_trigger": "2",
            "connection": {**KEYCLOAK_CONNECTION, "password": "rotated-admin-pw"},
            "connection/url": "https://auth2.acme-identity.net",
            "connection/token_realm": "admins",
            "owner": "identity-platform/prod",
        },
        {"realm": ("realm",)},
    ),
    # Dropping these removes what the provider added to the server: a change, not "unmanaged".
    Change("keycloak-client", "attributes", UNSET),
    Change("keycloak-client", "audience", UNSET),
    *_rows(
        "keycloak-realm",
        {
            "realm": "platform-2",
            "enabled": False,
            "display_name": "Platform (staging)",
            "access_token_lifespan": 600,
            "access_code_lifespan": 120,
            "sso_session_idle_timeout": 3600,
            "sso_session_max_lifespan": 72000,
            "offline_session_idle_timeout": 86400,
            "connection": {**KEYCLOAK_CONNECTION, "password": "rotated-admin-pw"},
            "connection/url": "https://auth2.acme-identity.net",
            "owner": "identity-platform/prod",
        },
        {"realm": ("realm",)},
    ),
    *_rows(
        "ziti-ca",
        {
            "name": "spire-2",
            "cert_pem": CA_CERT_REISSUED,
            "is_auth_enabled": False,
            "is_auto_ca_enrollment_enabled": True,
            "is_ott_ca_enrollment_enabled": True,
            "identity_roles": ["spire"],
            "identity_name_format": "[commonName]",
            "external_id_claim/location": "SAN_EMAIL",
            "external_id_claim/matcher": "SCHEME",
            "external_id_claim/matcher_criteria": "spiffe://acme-identity.net/ns/",
            "external_id_claim/parser": "SPLIT",
            "external_id_claim/parser_criteria": "#",
            "external_id_claim/index": 1,
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-trust-spire-ca"),
        },
        {"cert_pem": ("cert_pem",)},
    ),
    # A claim cannot be removed in place: the CA is registered again without it.
    Change("ziti-ca", "external_id_claim", UNSET, ("external_id_claim",)),
    *_rows(
        "ziti-signer",
        {
            "name": "keycloak-2",
            "issuer": "https://auth.acme-identity.net/realms/users",
            "audience": "ziti",
            "jwks_endpoint": "https://auth.acme-identity.net/realms/users/protocol/openid-connect/certs",
            "claims_property": "sub",
            "use_external_id": False,
            "external_auth_url": "https://auth.acme-identity.net/realms/users",
            "client_id": "ziti-console",
            "scopes": ["openid", "email", "profile"],
            "target_token": "ID",
            "enabled": False,
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-keycloak-signer"),
        },
    ),
    *_rows("ziti-signer-cert", {"cert_pem": SIGNER_CERT_2, "kid": "key-2"}),
    *_rows(
        "ziti-auth-policy",
        {
            "name": "keycloak-users-2",
            "primary/cert/allowed": False,
            "primary/cert/allow_expired_certs": True,
            "primary/ext_jwt/allowed": False,
            "primary/ext_jwt/allowed_signers": ["signer-1", "signer-2"],
            "primary/updb/allowed": True,
            "primary/updb/min_password_length": 12,
            "primary/updb/require_special_char": True,
            "primary/updb/require_number_char": True,
            "primary/updb/require_mixed_case": True,
            "primary/updb/max_attempts": 5,
            "primary/updb/lockout_duration_minutes": 15,
            "secondary/require_totp": True,
            "secondary/require_ext_jwt_signer": "signer-1",
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-users-auth-policy"),
        },
    ),
    *_rows(
        "ziti-identity",
        {
            "name": "payments-api-2",
            "type": "Router",
            "is_admin": True,
            "external_id": "spiffe://acme-identity.net/ns/payments/sa/worker",
            "auth_policy_id": "default",
            "role_attributes": ["workloads", "payments"],
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-identity-payments-api"),
        },
    ),
    *_rows(
        "ziti-router",
        {
            "name": "router-2",
            "role_attributes": ["public", "eu"],
            "is_tunneler_enabled": True,
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-router-1"),
        },
    ),
    *_rows(
        "ziti-router-policy",
        {
            "name": "workloads-use-eu-routers",
            "semantic": "AnyOf",
            "edge_router_roles": ["#public", "#eu"],
            "identity_roles": ["#workloads", "@identity-1"],
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-edge-router-policy"),
        },
    ),
    *_rows(
        "ziti-service-router-policy",
        {
            "name": "payments-on-public-routers",
            "semantic": "AnyOf",
            "edge_router_roles": ["#eu"],
            "service_roles": ["#payments"],
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-service-edge-router-policy"),
        },
    ),
    *_rows(
        "ziti-service-policy",
        {
            "name": "workloads-bind-payments",
            "type": "Bind",
            "semantic": "AnyOf",
            "service_roles": ["#payments", "#billing"],
            "identity_roles": ["#workloads", "#admins"],
            "posture_check_roles": ["#mfa"],
            "tags": {"team": "identity"},
            **_ziti_meta("ziti-service-policy"),
        },
    ),
    *_rows(
        "spire-entry",
        {
            "spiffe_id": "spiffe://acme-identity.net/ns/payments/sa/worker",
            "parent_id": "spiffe://acme-identity.net/spire/agent/x509pop/worker-2",
            "selectors": [
                "docker:label:com.docker.swarm.service.name:payments_worker",
                "docker:label:com.docker.stack.namespace:payments",
            ],
            "x509_svid_ttl": 7200,
            "jwt_svid_ttl": 600,
            "dns_names": ["api.payments.internal", "payments.internal"],
            "federates_with": ["partner.org", "third.org"],
            "admin": True,
            "downstream": True,
            "hint": "payments-v2",
            "store_svid": True,
            "connection": {**SPIRE_CONNECTION, "socket_path": "/run/spire/other/api.sock"},
            "connection/timeout_seconds": 60.0,
            "connection/stack": "prod",
        },
        {"spiffe_id": ("spiffe_id",), "parent_id": ("parent_id",), "selectors": ("selectors",)},
    ),
]
# Rewrites that mean the same configuration: no diff.
SAME: list[Change] = [
    Change("keycloak-client", "redirect_uris", list(reversed(KEYCLOAK_CLIENT["redirect_uris"]))),
    Change(
        "keycloak-client", "redirect_uris", [*KEYCLOAK_CLIENT["redirect_uris"], "http://localhost:20314/auth/callback"]
    ),
    Change("keycloak-client", "default_client_scopes", ["email", "profile"]),
    Change("keycloak-client", "attributes", {"access.token.lifespan": 300}),
    Change("keycloak-client", "connection/url", "https://auth.acme-identity.net/"),
    Change("keycloak-client", "attributes/client.secret.creation.time", ""),  # "" is no attribute
    Change("keycloak-client", "connection/token_realm", "master"),  # the default admin realm
    Change("keycloak-client", "connection/base_path", "/"),
    Change("keycloak-client", "connection/ca_bundle_pem", ""),
    Change("keycloak-realm", "access_token_lifespan", 300.0),
    Change("ziti-ca", "identity_roles", ["workloads", "spire"]),
    Change("ziti-ca", "cert_pem", CA_CERT.strip() + "\n\n"),
    Change("ziti-ca", "ca_key_pem", CA_KEY_PEM_TRADITIONAL),  # never sent, never compared
    Change(
        "ziti-ca",
        "external_id_claim",
        {
            "location": "SAN_URI",
            "matcher": "PREFIX",
            "matcherCriteria": "spiffe://acme-identity.net/",
            "parser": "NONE",
            "parserCriteria": "/",
        },
    ),
    Change("ziti-signer", "scopes", ["email", "openid"]),
    Change("ziti-signer-cert", "cert_pem", "\n" + SIGNER_CERT.strip() + "\n\n"),
    Change("ziti-identity", "role_attributes", ["workloads"]),
    Change("ziti-router-policy", "identity_roles", ["#workloads"]),
    Change("ziti-service-policy", "service_roles", ["#payments"]),
    Change("spire-entry", "selectors", list(reversed(SPIRE_ENTRY["selectors"]))),
    Change("spire-entry", "federates_with", ["spiffe://partner.org"]),
    Change("spire-entry", "dns_names", ["api.payments.internal"]),
]


# --- driving the providers ------------------------------------------------------------------------------


def _with(props: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `props` with `path` ("a" or "a/b/c") set to `value` (or removed for UNSET)."""
    out = copy.deepcopy(dict(props))
    *parents, leaf = path.split("/")
    node: dict[str, Any] = out
    for key in parents:
        node = node.setdefault(key, {})
    if value is UNSET:
        node.pop(leaf, None)
    else:
        node[leaf] = copy.deepcopy(value)
    return out


def _checked(kind: Kind, props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as the engine hands them to `diff`: what the provider's `check` returned."""
    result = kind.provider().check({}, {**copy.deepcopy(dict(props)), PROVIDER_KEY: PICKLED})
    assert not result.failures, [(f.property, f.reason) for f in result.failures]
    return dict(result.inputs)


def _state(kind: Kind, props: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs of an `up` with `props`: the checked inputs minus what is never echoed, plus
    what the provider computed."""
    outs = {k: v for k, v in _checked(kind, props).items() if k not in kind.not_in_state}
    return {**outs, **copy.deepcopy(dict(kind.outputs)), PROVIDER_KEY: PICKLED}


def _diff(kind: Kind, news: Mapping[str, Any], olds: Mapping[str, Any] | None = None) -> Any:
    return kind.provider().diff("the-id", _state(kind, kind.base if olds is None else olds), dict(news))


def _get(props: Mapping[str, Any], path: str) -> Any:
    node: Any = props
    for key in path.split("/"):
        if not isinstance(node, Mapping) or key not in node:
            return UNSET
        node = node[key]
    return copy.deepcopy(node)


@pytest.mark.parametrize("row", CHANGES, ids=lambda r: r.id)
def test_a_changed_field_is_a_diff_and_replaces_exactly_when_it_must(row: Change) -> None:
    kind = KINDS[row.kind]
    news = _checked(kind, _with(kind.base, row.path, row.value))
    assert news != _checked(kind, kind.base), "the row must change the inputs"
    result = _diff(kind, news)
    assert result.changes is True, f"{row.id}: changed to {row.value!r} but diff reports no change"
    assert sorted(result.replaces or []) == sorted(row.replaces), f"{row.id}: replaces {result.replaces}"
    if row.replaces:
        assert result.delete_before_replace is kind.delete_before_replace


@pytest.mark.parametrize("row", CHANGES, ids=lambda r: r.id)
def test_the_same_field_written_again_is_no_diff(row: Change) -> None:
    """Both ways round: the base value over the base state, and the row's value over the state
    an `up` with that value left."""
    kind = KINDS[row.kind]
    kept = _with(kind.base, row.path, _get(kind.base, row.path))
    changed = _with(kind.base, row.path, row.value)
    for olds, news in ((kind.base, kept), (changed, changed)):
        result = _diff(kind, _checked(kind, news), olds)
        assert result.changes is False, f"{row.id}: unchanged but diff reports a change"
        assert not result.replaces


@pytest.mark.parametrize("row", SAME, ids=lambda r: r.id)
def test_an_equivalent_spelling_is_no_diff(row: Change) -> None:
    kind = KINDS[row.kind]
    news = _with(kind.base, row.path, row.value)
    for label, props in (("checked", _checked(kind, news)), ("as written", {**news, PROVIDER_KEY: PICKLED})):
        result = _diff(kind, props)
        assert result.changes is False, f"{row.id} ({label}): {row.value!r} means the same, but diff reports a change"
        assert not result.replaces


# Every input each provider manages, read from its models, so a new input without a row fails here.
def _managed(kind: str) -> set[str]:
    if kind == "keycloak-client":
        return set(ClientSpec.model_fields)
    if kind == "keycloak-realm":
        return set(RealmSpec.model_fields)
    if kind == "spire-entry":
        return {*SPIRE_ENTRY_FIELDS, "connection"}
    args_model = KINDS[kind].provider().args_model  # type: ignore[attr-defined]
    return {*args_model.model_fields, "connection", "owner"}


def _nested_leaves(model: type[BaseModel], prefix: str = "") -> set[str]:
    """ "field/key" paths of the settings inside the nested blocks of a Ziti model."""
    out: set[str] = set()
    for name, info in model.model_fields.items():
        inner = nested_model(info.annotation)
        if inner is not None:
            out |= _nested_leaves(inner, f"{prefix}{name}/")
        elif prefix:
            out.add(prefix + name)
    return out


# Inputs a diff does not compare, each with why.
NOT_COMPARED = {
    ("ziti-ca", "ca_key_pem"): "write-only secret: it must belong to cert_pem, so it changes only with the certificate",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_managed_field_has_a_row(kind: str) -> None:
    covered = {c.path.split("/")[0] for c in CHANGES if c.kind == kind}
    if kind.startswith("ziti-signer"):
        # A signer is keyed by a JWKS endpoint or by a certificate and its kid: each base covers its own.
        covered |= {c.path.split("/")[0] for c in CHANGES if c.kind.startswith("ziti-signer")}
    expected = _managed(kind) - {f for (k, f) in NOT_COMPARED if k == kind}
    assert expected - covered == set(), f"{kind}: fields without a row"
    if kind.startswith("ziti-"):
        leaves = _nested_leaves(KINDS[kind].provider().args_model)  # type: ignore[attr-defined]
        assert leaves - {c.path for c in CHANGES if c.kind == kind} == set(), f"{kind}: nested settings without a row"
    assert set(KINDS[kind].base) <= _managed(kind), f"{kind}: the base sets an input the provider does not take"


# A field dropped from the program: (kind, field, its value in the state, diff reports a change).
# Keycloak stops managing a dropped optional input (the server keeps its value), except the inputs
# with a default; Ziti and SPIRE fields fall back to their defaults.
DROPPED = [
    ("keycloak-client", "enabled", False, True),
    ("keycloak-client", "access_type", "PUBLIC", True),
    ("keycloak-client", "name", "OpenZiti", False),
    ("keycloak-client", "redirect_uris", KEYCLOAK_CLIENT["redirect_uris"], False),
    ("keycloak-realm", "enabled", False, True),
    ("keycloak-realm", "display_name", "Platform", False),
    ("ziti-identity", "auth_policy_id", "spire-workloads", True),
    ("ziti-router-policy", "semantic", "AnyOf", True),
    ("ziti-ca", "identity_name_format", "[commonName]", True),
    ("spire-entry", "hint", "payments", True),
    ("spire-entry", "x509_svid_ttl", 3600, True),
    ("spire-entry", "federates_with", ["partner.org"], True),
]


# SPIRE's diff lays the new inputs over the stored ones (so that an Unknown leaves the rest as
# stored): only the checked inputs, which carry every default, tell it that a field was dropped.
OVERLAYS_NEWS_ON_OLDS = {"spire-entry"}


@pytest.mark.parametrize(("kind_name", "path", "old", "changes"), DROPPED, ids=[f"{k}:{p}" for k, p, _, _ in DROPPED])
def test_a_dropped_field_is_unmanaged_or_back_to_its_default(
    kind_name: str, path: str, old: Any, changes: bool
) -> None:
    kind = KINDS[kind_name]
    news = _with(kind.base, path, UNSET)
    variants = [("checked", _checked(kind, news))]
    if kind_name not in OVERLAYS_NEWS_ON_OLDS:
        variants.append(("as written", {**news, PROVIDER_KEY: PICKLED}))
    for label, props in variants:
        result = _diff(kind, props, _with(kind.base, path, old))
        assert result.changes is changes, f"{kind_name}:{path} dropped ({label})"
        assert not result.replaces


# Values not known yet in a preview (outputs of other resources): a change, and a replacement
# where the field replaces.
UNKNOWN = [
    Change("keycloak-client", "redirect_uris", Unknown()),
    Change("keycloak-client", "redirect_uris", ["http://localhost:20314/auth/callback", Unknown()]),
    Change("keycloak-client", "realm", Unknown(), ("realm",)),
    Change("keycloak-client", "attributes", {"access.token.lifespan": Unknown()}),
    Change("keycloak-realm", "realm", Unknown(), ("realm",)),
    Change("keycloak-realm", "display_name", Unknown()),
    Change("ziti-ca", "cert_pem", Unknown(), ("cert_pem",)),
    Change("ziti-ca", "name", Unknown()),
    Change("ziti-identity", "role_attributes", ["workloads", Unknown()]),
    Change("ziti-signer", "issuer", Unknown()),
    Change("spire-entry", "selectors", Unknown(), ("selectors",)),
    Change("spire-entry", "parent_id", Unknown(), ("parent_id",)),
    Change("spire-entry", "hint", Unknown()),
    Change("spire-entry", "connection", Unknown()),
]


@pytest.mark.parametrize("row", UNKNOWN, ids=lambda r: r.id)
def test_an_unknown_value_is_a_change(row: Change) -> None:
    kind = KINDS[row.kind]
    result = _diff(kind, {**_with(kind.base, row.path, row.value), PROVIDER_KEY: PICKLED})
    assert result.changes is True
    assert sorted(result.replaces or []) == sorted(row.replaces)


# An edge router whose one-time enrollment JWT expired unused needs a new one: `update` re-enrolls.
@pytest.mark.parametrize(
    ("verified", "expires_at", "changes"),
    [
        (False, "2020-01-01T00:00:00Z", True),
        (False, "2020-01-01T00:00:00+00:00", True),
        (False, "2999-01-01T00:00:00Z", False),
        (True, "2020-01-01T00:00:00Z", False),  # enrolled: the used token expiring means nothing
        (False, None, False),
        (False, "not a time", False),
    ],
)
def test_an_expired_router_enrollment_is_a_change(verified: bool, expires_at: str | None, changes: bool) -> None:
    kind = KINDS["ziti-router"]
    olds = {**_state(kind, kind.base), "is_verified": verified, "enrollment_expires_at": expires_at}
    result = kind.provider().diff("the-id", olds, _checked(kind, kind.base))
    assert result.changes is changes
    assert not result.replaces


@pytest.mark.parametrize("attributes", [{}, {"access.token.lifespan": ""}])
def test_keycloak_attributes_that_add_nothing_are_no_diff(attributes: dict[str, str]) -> None:
    kind = KINDS["keycloak-client"]
    result = _diff(kind, _checked(kind, {**kind.base, "attributes": attributes}), _with(kind.base, "attributes", UNSET))
    assert result.changes is False


# Values as older states or the server hold them: (kind, field, value in the state, a change?).
STORED_AS = [
    ("keycloak-client", "enabled", "true", False),
    ("keycloak-client", "enabled", "FALSE", True),
    ("keycloak-client", "enabled", 1, False),
    ("keycloak-client", "implicit_flow_enabled", 0, False),
    ("keycloak-client", "standard_flow_enabled", "yes", True),  # unreadable: a change, never an error
    ("keycloak-client", "attributes", {"access.token.lifespan": 300}, False),
    ("keycloak-client", "attributes", {"access.token.lifespan": "300", "pkce": ""}, False),
    ("keycloak-realm", "access_token_lifespan", 300.0, False),
    ("keycloak-realm", "access_token_lifespan", 300.5, True),
    ("spire-entry", "federates_with", ["spiffe://partner.org"], False),
    (
        "spire-entry",
        "selectors",
        [
            {"type": "docker", "value": "label:com.docker.stack.namespace:payments"},
            {"type": "docker", "value": "label:com.docker.swarm.service.name:payments_api"},
        ],
        False,
    ),
]


@pytest.mark.parametrize(
    ("kind_name", "path", "stored", "changes"), STORED_AS, ids=[f"{k}:{p}={v!r}" for k, p, v, _ in STORED_AS]
)
def test_a_value_stored_in_another_form(kind_name: str, path: str, stored: Any, changes: bool) -> None:
    kind = KINDS[kind_name]
    olds = {**_state(kind, kind.base), path: stored}
    result = kind.provider().diff("the-id", olds, _checked(kind, kind.base))
    assert result.changes is changes
    assert not result.replaces
