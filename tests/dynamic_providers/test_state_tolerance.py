"""`diff` never raises on malformed or older state: it reports a change, or a replacement when the
unreadable field is one that cannot change in place.

States written by older versions of a provider, edited by hand (`pulumi stack export/import`) or
damaged carry missing keys, values of the wrong type, or older shapes. A diff that raises stops
every preview of the stack; these tests feed each provider's `diff`, through the engine's provider
host, with such states against well-formed new inputs. Diff needs no server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire.provider import SpireEntryProvider
from dynamic_providers.ziti import provider as zp
from tests.fakes.ziti import make_ca
from tests.harness.dynamic_host import DynamicProviderHost

OWNER = "identity-platform/test"
Host = Callable[..., DynamicProviderHost]
Mutation = Callable[[dict[str, Any]], None]
CERT, KEY = make_ca()


def drop(*keys: str) -> Mutation:
    def apply(state: dict[str, Any]) -> None:
        for key in keys:
            state.pop(key, None)

    return apply


def put(key: str, value: Any) -> Mutation:
    def apply(state: dict[str, Any]) -> None:
        state[key] = value

    return apply


def put_in(key: str, inner: str, value: Any) -> Mutation:
    def apply(state: dict[str, Any]) -> None:
        state[key] = {**state[key], inner: value}

    return apply


def clear(state: dict[str, Any]) -> None:
    state.clear()


@pytest.fixture
def diff_of(dynamic_host: Host) -> Callable[..., tuple[str, list[str]]]:
    """diff_of(provider, inputs, mutate): (changes, replaces) of `inputs` (checked) against a state
    made from the same checked inputs and then mutated; the unmutated state must be no change."""
    hosts: dict[type, DynamicProviderHost] = {}

    def run(provider: Any, inputs: dict[str, Any], mutate: Mutation) -> tuple[str, list[str]]:
        host = hosts.get(type(provider)) or hosts.setdefault(type(provider), dynamic_host(provider))
        checked = host.check("r", {}, inputs)
        assert checked.failures == []
        assert host.diff("r", "the-id", dict(checked.inputs), checked.inputs).changes == "DIFF_NONE"
        state = dict(checked.inputs)
        mutate(state)
        diff = host.diff("r", "the-id", state, checked.inputs)
        return diff.changes, sorted(diff.replaces)

    return run


# --- Keycloak ---------------------------------------------------------------------------------------

KC_CONNECTION = {"url": "https://kc.example.com", "username": "admin", "password": "pw", "timeout": 5}
KC_CLIENT = {
    "realm": "platform",
    "client_id": "billing",
    "redirect_uris": ["https://billing.example.com/cb"],
    "post_logout_redirect_uris": ["https://billing.example.com/bye"],
    "attributes": {"access.token.lifespan": "600"},
    "default_client_scopes": ["profile"],
    "audience": "billing",
    "connection": KC_CONNECTION,
    "owner": OWNER,
}
KC_CLIENT_STATES: dict[str, tuple[Mutation, list[str]]] = {
    "redirect-uris-not-a-list": (put("redirect_uris", 5), []),
    "attributes-a-list": (put("attributes", ["a", "b"]), []),
    "attributes-a-string": (put("attributes", "access.token.lifespan=600"), []),
    "scopes-not-a-list": (put("default_client_scopes", True), []),
    "connection-a-string": (put("connection", "https://kc.example.com"), []),
    "connection-timeout-not-a-number": (put_in("connection", "timeout", "soon"), []),
    "enabled-a-string": (put("enabled", "no"), []),
    "owner-missing (older schema)": (drop("owner"), []),
    "realm-missing": (drop("realm"), ["realm"]),
    "realm-not-a-string": (put("realm", 7), ["realm"]),
    "empty": (clear, ["realm"]),
}
KC_REALM = {"realm": "platform", "display_name": "Platform", "access_token_lifespan": 300, "connection": KC_CONNECTION}
KC_REALM_STATES: dict[str, tuple[Mutation, list[str]]] = {
    "lifespan-not-a-number": (put("access_token_lifespan", "five minutes"), []),
    "lifespan-a-list": (put("access_token_lifespan", [300]), []),
    "connection-not-an-object": (put("connection", 5), []),
    "connection-timeout-not-a-number": (put_in("connection", "timeout", {"s": 5}), []),
    "owner-missing (older schema)": (drop("owner"), []),
    "realm-missing": (drop("realm"), ["realm"]),
    "empty": (clear, ["realm"]),
}


@pytest.mark.parametrize("case", list(KC_CLIENT_STATES))
def test_keycloak_client(diff_of: Callable[..., tuple[str, list[str]]], case: str) -> None:
    mutate, replaces = KC_CLIENT_STATES[case]
    assert diff_of(KeycloakClientProvider(), KC_CLIENT, mutate) == ("DIFF_SOME", replaces)


@pytest.mark.parametrize("case", list(KC_REALM_STATES))
def test_keycloak_realm(diff_of: Callable[..., tuple[str, list[str]]], case: str) -> None:
    mutate, replaces = KC_REALM_STATES[case]
    assert diff_of(KeycloakRealmProvider(), {**KC_REALM, "owner": OWNER}, mutate) == ("DIFF_SOME", replaces)


# --- Ziti -------------------------------------------------------------------------------------------

ZITI_CONNECTION = {"url": "https://ziti.example.com:1280", "username": "admin", "password": "pw"}
ZITI_OWNER = {"stack": OWNER, "name": "r"}
ZITI_INPUTS: dict[str, tuple[Any, dict[str, Any]]] = {
    "identity": (
        zp.IdentityProvider,
        {"name": "payments-api", "role_attributes": ["payments", "pci"], "tags": {"team": "payments"}},
    ),
    "ca": (
        zp.CertificateAuthorityProvider,
        {
            "name": "spire",
            "cert_pem": CERT,
            "ca_key_pem": KEY,
            "identity_roles": ["spire"],
            "external_id_claim": {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"},
        },
    ),
    "auth-policy": (zp.AuthPolicyProvider, {"name": "users", "primary": {"ext_jwt": {"allowed": True}}}),
    "edge-router": (zp.EdgeRouterProvider, {"name": "router-1", "role_attributes": ["public"]}),
}
ZITI_STATES: dict[str, tuple[str, Mutation, list[str]]] = {
    "identity: roles of mixed types": ("identity", put("role_attributes", ["payments", 1]), []),
    "identity: roles not a list": ("identity", put("role_attributes", "payments,pci"), []),
    "identity: tags a list": ("identity", put("tags", ["team"]), []),
    "identity: name missing": ("identity", drop("name"), []),
    "identity: owner not an object": ("identity", put("owner", "identity-platform/test"), []),
    "identity: owner and connection missing (older schema)": ("identity", drop("owner", "connection"), []),
    "identity: empty": ("identity", clear, []),
    "ca: certificate not PEM": ("ca", put("cert_pem", "not a certificate"), ["cert_pem"]),
    "ca: certificate a number": ("ca", put("cert_pem", 5), ["cert_pem"]),
    "ca: claim a string": ("ca", put("external_id_claim", "SAN_URI"), []),
    "ca: roles of mixed types": ("ca", put("identity_roles", [None, "spire"]), []),
    "auth-policy: primary a string": ("auth-policy", put("primary", "ext_jwt"), []),
    "auth-policy: signers not a list": ("auth-policy", put("primary", {"ext_jwt": {"allowed_signers": 5}}), []),
    "edge-router: roles a mapping": ("edge-router", put("role_attributes", {"public": True}), []),
}


# Damage to outputs the server computes is not a change of the inputs.
ZITI_HARMLESS: dict[str, tuple[str, Mutation]] = {
    "ca: fingerprint and verification outputs missing": ("ca", drop("fingerprint", "is_verified")),
    "edge-router: expiry not a date": ("edge-router", put("enrollment_expires_at", 1700000000)),
    "edge-router: expiry not ISO 8601": ("edge-router", put("enrollment_expires_at", "tomorrow")),
}


@pytest.mark.parametrize("case", list(ZITI_STATES))
def test_ziti(diff_of: Callable[..., tuple[str, list[str]]], case: str) -> None:
    kind, mutate, replaces = ZITI_STATES[case]
    provider, inputs = ZITI_INPUTS[kind]
    full = {**inputs, "connection": ZITI_CONNECTION, "owner": ZITI_OWNER}
    assert diff_of(provider(), full, mutate) == ("DIFF_SOME", replaces)


@pytest.mark.parametrize("case", list(ZITI_HARMLESS))
def test_ziti_damaged_outputs_are_no_change(diff_of: Callable[..., tuple[str, list[str]]], case: str) -> None:
    kind, mutate = ZITI_HARMLESS[case]
    provider, inputs = ZITI_INPUTS[kind]
    full = {**inputs, "connection": ZITI_CONNECTION, "owner": ZITI_OWNER}
    assert diff_of(provider(), full, mutate) == ("DIFF_NONE", [])


# --- SPIRE ------------------------------------------------------------------------------------------

SPIRE_ENTRY = {
    "spiffe_id": "spiffe://example.org/ns/payments/sa/api",
    "parent_id": "spiffe://example.org/spire/agent/x509pop/worker-1",
    "selectors": ["unix:uid:1000", "docker:label:app:api"],
    "dns_names": ["api.payments.internal"],
    "connection": {
        "transport": "grpc",
        "socket_path": "/run/spire/api.sock",
        "trust_domain": "example.org",
        "project": "identity-platform",
        "stack": "test",
    },
}
SPIRE_STATES: dict[str, tuple[Mutation, list[str]]] = {
    "spiffe-id-missing": (drop("spiffe_id"), ["spiffe_id"]),
    "parent-id-not-a-string": (put("parent_id", 5), ["parent_id"]),
    "selectors-not-strings": (put("selectors", [5, 6]), ["selectors"]),
    "selectors-a-string": (put("selectors", "unix:uid:1000"), ["selectors"]),
    "ttl-not-a-number": (put("x509_svid_ttl", "soon"), []),
    "ttl-a-list": (put("jwt_svid_ttl", [300]), []),
    "dns-names-a-number": (put("dns_names", 5), []),
    "federates-with-not-strings": (put("federates_with", [None]), []),
    "hint-a-number": (put("hint", 5), []),
    "connection-a-string": (put("connection", "grpc"), []),
    "empty": (clear, ["parent_id", "selectors", "spiffe_id"]),
}


@pytest.mark.parametrize("case", list(SPIRE_STATES))
def test_spire_entry(diff_of: Callable[..., tuple[str, list[str]]], case: str) -> None:
    mutate, replaces = SPIRE_STATES[case]
    assert diff_of(SpireEntryProvider(), SPIRE_ENTRY, mutate) == ("DIFF_SOME", replaces)


def test_spire_selectors_in_their_older_object_form_are_no_change(
    diff_of: Callable[..., tuple[str, list[str]]],
) -> None:
    older = put("selectors", [{"type": "docker", "value": "label:app:api"}, {"type": "unix", "value": "uid:1000"}])
    assert diff_of(SpireEntryProvider(), SPIRE_ENTRY, older) == ("DIFF_NONE", [])
