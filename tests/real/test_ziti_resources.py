"""Every other Ziti resource through the engine's provider host against the REAL controller: a full
CRUD cycle (create, no flap after the controller's defaults, PATCH of the managed fields, refresh,
delete, delete of something gone), identities by SPIFFE ID, the ext-JWT signer + auth policy with
a real ext-JWT login (openziti/ziti#4170), and the edge router's enrollment JWT consumed by a real
`ziti router enroll` (the router image's bootstrap, through the stack's wrapper)."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from dynamic_providers.ziti import provider as zp
from servers import ziti as ziti_server
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.real._ziti import Admin, admin_client, connection, owner, unique, ziti_section

ziti = pytest.fixture(scope="module")(ziti_section)
admin = pytest.fixture(scope="module")(admin_client)


def host_for(dynamic_host: Any, provider: type[zp.ZitiProvider]) -> DynamicProviderHost:
    h: DynamicProviderHost = dynamic_host(provider(), resource_type=f"pulumi-python:dynamic/ziti:{provider.__name__}")
    return h


def full(section: dict[str, Any], props: dict[str, Any], name: str) -> dict[str, Any]:
    return {**props, "connection": connection(section), "owner": owner(name)}


def signer_id(admin: Admin) -> str:
    return admin.create("external-jwt-signers", {"name": unique("pre"), "issuer": f"https://{unique('iss')}",
                                                 "audience": "a", "jwksEndpoint": "https://pre.invalid/jwks",
                                                 "enabled": True})


# kind -> (provider, props(admin, name), change, server fields after create, after the change)
CASES: dict[str, tuple[type[zp.ZitiProvider], Callable[[Admin, str], dict[str, Any]], dict[str, Any],
                       dict[str, Any], dict[str, Any]]] = {
    "external-jwt-signer": (
        zp.ExternalJwtSignerProvider,
        lambda a, n: {"name": n, "issuer": f"https://{n}.example/realms/p", "audience": "openziti",
                      "jwks_endpoint": f"https://{n}.example/realms/p/certs", "client_id": "openziti",
                      "external_auth_url": f"https://{n}.example/realms/p", "scopes": ["openid", "email"],
                      "claims_property": "email", "use_external_id": True},
        {"scopes": ["email", "openid", "profile"], "enabled": False, "audience": "other", "claims_property": "sub",
         "use_external_id": False, "target_token": "ID"},
        {"claimsProperty": "email", "useExternalId": True, "enabled": True},
        {"scopes": ["email", "openid", "profile"], "enabled": False, "audience": "other", "claimsProperty": "sub",
         "useExternalId": False, "targetToken": "ID"},
    ),
    "auth-policy": (
        zp.AuthPolicyProvider,
        lambda a, n: {"name": n, "primary": {"ext_jwt": {"allowed": True, "allowed_signers": [signer_id(a)]}}},
        {"secondary": {"require_totp": True},
         "primary": {"cert": {"allowed": True, "allow_expired_certs": True},
                     "updb": {"allowed": True, "min_password_length": 8, "max_attempts": 3}}},
        {"secondary": {"requireTotp": False}},
        {"secondary": {"requireTotp": True}},
    ),
    "identity": (
        zp.IdentityProvider,
        lambda a, n: {"name": n, "external_id": f"spiffe://real.test/ns/{n}/sa/api", "role_attributes": ["payments"]},
        {"role_attributes": ["payments", "pci"], "is_admin": True, "external_id": "spiffe://real.test/changed"},
        {"authPolicyId": "default", "roleAttributes": ["payments"], "isAdmin": False},
        {"roleAttributes": ["payments", "pci"], "isAdmin": True, "externalId": "spiffe://real.test/changed"},
    ),
    "edge-router": (
        zp.EdgeRouterProvider,
        lambda a, n: {"name": n, "role_attributes": ["public"]},
        {"is_tunneler_enabled": True, "role_attributes": ["public", "eu"]},
        {"roleAttributes": ["public"], "isTunnelerEnabled": False, "isVerified": False},
        {"isTunnelerEnabled": True, "roleAttributes": ["public", "eu"]},
    ),
    "service-policy": (
        zp.ServicePolicyProvider,
        lambda a, n: {"name": n, "type": "Dial", "service_roles": ["#payments"], "identity_roles": ["#web"]},
        {"type": "Bind", "identity_roles": ["#payments"], "semantic": "AnyOf"},
        {"type": "Dial", "semantic": "AllOf", "serviceRoles": ["#payments"], "postureCheckRoles": None},
        {"type": "Bind", "identityRoles": ["#payments"], "semantic": "AnyOf"},
    ),
    "edge-router-policy": (
        zp.EdgeRouterPolicyProvider,
        lambda a, n: {"name": n, "semantic": "AnyOf", "identity_roles": ["#all"], "edge_router_roles": ["#all"]},
        {"identity_roles": ["#users"], "edge_router_roles": ["#public"]},
        {"semantic": "AnyOf", "identityRoles": ["#all"], "edgeRouterRoles": ["#all"]},
        {"identityRoles": ["#users"], "edgeRouterRoles": ["#public"]},
    ),
    "service-edge-router-policy": (
        zp.ServiceEdgeRouterPolicyProvider,
        lambda a, n: {"name": n, "service_roles": ["#all"], "edge_router_roles": ["#all"]},
        {"semantic": "AnyOf", "service_roles": ["#payments"]},
        {"semantic": "AllOf", "serviceRoles": ["#all"]},
        {"semantic": "AnyOf", "serviceRoles": ["#payments"]},
    ),
}


def subset(entity: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k in expected:
        v = entity.get(k)
        if isinstance(v, dict) and "name" in v and k == "type":
            v = v["name"]
        out[k] = sorted(v) if isinstance(v, list) and k != "scopes" else v
        if k == "scopes":
            out[k] = sorted(v or [])
    return out


def norm(expected: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, list) else v for k, v in expected.items()}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_full_crud_cycle_against_the_real_controller(kind: str, ziti, admin, dynamic_host) -> None:
    provider, make, change, server, server_after = CASES[kind]
    host = host_for(dynamic_host, provider)
    name = unique(kind)
    props = full(ziti, make(admin, name), f"r-{name}")
    state = host.up("r", props)
    entity = admin.get(f"/{provider.collection}/{state.id}")
    assert entity is not None and subset(entity, server) == norm(server)
    assert entity["tags"] == {"pulumi.stack": "identity-platform/test", "pulumi.name": f"r-{name}"}

    refreshed = host.refresh("r", state)  # the controller's defaults come back: no flap
    assert refreshed is not None
    assert host.preview_change("r", refreshed, props)[1].changes == "DIFF_NONE"

    changed = {**props, **change}
    new_state, diff = host.change("r", refreshed, changed)
    assert (diff.changes, diff.replaces, new_state.id) == ("DIFF_SOME", [], state.id)
    entity = admin.get(f"/{provider.collection}/{state.id}")
    assert entity is not None and subset(entity, server_after) == norm(server_after)

    again = host.refresh("r", new_state)
    assert again is not None and again.id == state.id
    assert host.preview_change("r", again, changed)[1].changes == "DIFF_NONE"  # no perpetual drift

    host.delete("r", state.id, again.outputs)
    assert admin.get(f"/{provider.collection}/{state.id}") is None
    host.delete("r", state.id, again.outputs)  # already gone: done
    assert host.refresh("r", again) is None


class TestIdentities:
    def test_a_spiffe_id_held_by_another_identity_is_a_clear_error(self, ziti, admin, dynamic_host) -> None:
        host = host_for(dynamic_host, zp.IdentityProvider)
        spiffe = f"spiffe://real.test/{unique('dup')}"
        theirs = admin.create("identities", {"name": unique("theirs"), "type": "Default", "isAdmin": False,
                                             "externalId": spiffe})
        try:
            with pytest.raises(ProviderCallError) as err:
                host.up("w", full(ziti, {"name": unique("mine"), "external_id": spiffe}, "w"))
            assert "externalId" in err.value.details and "duplicate" in err.value.details
        finally:
            admin.delete("identities", theirs)

    def test_a_missing_auth_policy_names_the_policy(self, ziti, dynamic_host) -> None:
        host = host_for(dynamic_host, zp.IdentityProvider)
        with pytest.raises(ProviderCallError) as err:
            host.up("w", full(ziti, {"name": unique("w"), "auth_policy_id": "nope"}, "w"))
        assert "NOT_FOUND" in err.value.details and "authPolicy with id nope not found" in err.value.details


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _es256_jwt(key: ec.EllipticCurvePrivateKey, kid: str, claims: dict[str, Any]) -> str:
    head = _b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
    return f"{head}.{body}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def test_ext_jwt_primary_login_with_a_signer_and_policy_made_by_the_providers(ziti, admin, dynamic_host) -> None:
    """openziti/ziti#4170 (2.0.1 answers ext-JWT primary auth with error="missing"): on the pinned
    1.7.2, a user logs in with a token of a signer the provider made, under the policy it made."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "test issuer")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    issuer, kid, email = f"https://{unique('kc')}.example/realms/platform", unique("kid"), f"{unique('u')}@example.org"
    signer = host_for(dynamic_host, zp.ExternalJwtSignerProvider).up("s", full(ziti, {
        "name": unique("signer"), "issuer": issuer, "audience": "openziti", "cert_pem": cert_pem, "kid": kid,
        "claims_property": "email", "use_external_id": True}, "s"))
    policy = host_for(dynamic_host, zp.AuthPolicyProvider).up("p", full(ziti, {
        "name": unique("users"), "primary": {"ext_jwt": {"allowed": True, "allowed_signers": [signer.id]}}}, "p"))
    ident = host_for(dynamic_host, zp.IdentityProvider).up("i", full(ziti, {
        "name": unique("alice"), "external_id": email, "auth_policy_id": policy.id}, "i"))
    try:
        token = _es256_jwt(key, kid, {"iss": issuer, "aud": "openziti", "sub": "alice", "email": email,
                                      "iat": int(time.time()), "exp": int(time.time()) + 300})
        ctx = ssl.create_default_context(cadata=ziti["ca_pem"])
        r = httpx.post(f"{ziti['url']}/edge/client/v1/authenticate", params={"method": "ext-jwt"},
                       headers={"Authorization": f"Bearer {token}"}, json={}, verify=ctx)
        print(f"ext-jwt login on {ziti['version']}: {r.status_code} {r.headers.get('www-authenticate')}")
        assert r.status_code == 200, (r.status_code, r.headers.get("www-authenticate"), r.text[:300])
        assert r.json()["data"]["identity"]["id"] == ident.id
        wrong = _es256_jwt(ec.generate_private_key(ec.SECP256R1()), kid, {
            "iss": issuer, "aud": "openziti", "email": email, "exp": int(time.time()) + 300})
        refused = httpx.post(f"{ziti['url']}/edge/client/v1/authenticate", params={"method": "ext-jwt"},
                             headers={"Authorization": f"Bearer {wrong}"}, json={}, verify=ctx)
        assert refused.status_code == 401  # the login above is not a controller that admits anything
    finally:
        for coll, id_ in (("identities", ident.id), ("auth-policies", policy.id),
                          ("external-jwt-signers", signer.id)):
            admin.delete(coll, id_)


def test_the_edge_routers_jwt_enrolls_a_real_router(ziti, admin, dynamic_host, servers_run) -> None:
    """ZitiEdgeRouter's `enrollment_jwt`, consumed by `ziti router enroll` as ZitiRouter runs it
    (the stack's wrapper, the router image's bootstrap, `router_env`); the router comes online and
    the next `up` keeps the used token (no churn), and never re-enrolls an enrolled router."""
    host = host_for(dynamic_host, zp.EdgeRouterProvider)
    name = unique("router")
    props = full(ziti, {"name": name, "role_attributes": ["public"], "is_tunneler_enabled": True}, name)
    state = host.up("er", props)
    jwt = state.outputs["enrollment_jwt"]
    assert jwt.count(".") == 2
    ctrl = SimpleNamespace(port=int(ziti["url"].rsplit(":", 1)[1]), bin=Path(ziti["bin_dir"]), url=ziti["url"],
                           ca_pem=ziti["ca_pem"],
                           token=lambda: ziti_server.login(ziti["url"], ziti["ca_pem"], ziti["admin_user"],
                                                           ziti["admin_password"]))
    router = ziti_server.Router(servers_run, ctrl, name=f"router-{name}", router_name=name)  # type: ignore[arg-type]
    router.id = state.id
    router.jwt_file.write_text(jwt)
    try:
        router.start()
        assert admin.get(f"/edge-routers/{state.id}")["isVerified"] is True  # type: ignore[index]
        refreshed = host.refresh("er", state)
        assert refreshed is not None and refreshed.outputs["enrollment_jwt"] == jwt, "the used token stays"
        assert refreshed.outputs["is_verified"] is True
        assert host.preview_change("er", refreshed, props)[1].changes == "DIFF_NONE"
    finally:
        if router.proc is not None:
            from servers.process import stop_procs

            stop_procs([router.proc])
        host.delete("er", state.id, state.outputs)


def test_a_rename_to_a_name_another_entity_holds_fails_and_changes_nothing(ziti, admin, dynamic_host) -> None:
    """The controller (1.7.2) answers a PATCH giving an identity a name another one holds with 200
    and applies none of it: the provider reads the rename back and fails the update, so the state
    never records a name (or a role) the controller does not have."""
    host = host_for(dynamic_host, zp.IdentityProvider)
    name, taken = unique("renamed"), unique("taken")
    props = full(ziti, {"name": name, "role_attributes": ["a"]}, "r")
    state = host.up("r", props)
    holder = admin.create("identities", {"name": taken, "type": "Default", "isAdmin": False})
    try:
        with pytest.raises(ProviderCallError, match=rf"did not rename identity '{name}'.* holds that name"):
            host.change("r", state, {**props, "name": taken, "role_attributes": ["b"]})
        stored = admin.get(f"/identities/{state.id}")
        assert stored is not None and stored["name"] == name and stored["roleAttributes"] == ["a"]
        renamed, _ = host.change("r", state, {**props, "name": f"{name}-2"})
        stored = admin.get(f"/identities/{state.id}")
        assert stored is not None and stored["name"] == f"{name}-2" == renamed.outputs["name"]
    finally:
        admin.delete("identities", holder)
        admin.delete("identities", state.id)


def test_an_external_id_another_identity_holds_fails_naming_it_and_changes_nothing(ziti, admin, dynamic_host) -> None:
    """The controller (1.7.2) answers a PATCH giving an identity an externalId another one holds
    with 500 UNHANDLED and applies none of it: the provider fails the update once, naming the holder."""
    host = host_for(dynamic_host, zp.IdentityProvider)
    name, spiffe = unique("mine"), f"spiffe://fidelity.test/{unique('taken')}"
    props = full(ziti, {"name": name, "external_id": f"{spiffe}-mine", "role_attributes": ["a"]}, "r")
    state = host.up("r", props)
    holder_name = unique("holder")
    holder = admin.create("identities", {"name": holder_name, "type": "Default", "isAdmin": False,
                                         "externalId": spiffe})
    try:
        message = (rf"refused to set externalId of identity '{name}' \(id {state.id}\) to '{spiffe}': identity "
                   rf"'{holder_name}' \(id {holder}\) holds that value; nothing was applied")
        with pytest.raises(ProviderCallError, match=message):
            host.change("r", state, {**props, "external_id": spiffe, "role_attributes": ["b"]})
        stored = admin.get(f"/identities/{state.id}")
        assert stored is not None and stored["externalId"] == f"{spiffe}-mine" and stored["roleAttributes"] == ["a"]
    finally:
        admin.delete("identities", holder)
        admin.delete("identities", state.id)
