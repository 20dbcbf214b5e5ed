"""The loopback Keycloak behaves like Keycloak where our provider depends on it, and follows the spec.

These tests talk raw HTTP (httpx) to the fake, independently of the provider, so a provider test
passing against the fake means something about the real server.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.fakes import keycloak as fake_keycloak
from tests.fakes.keycloak import FULL_SPEC_PATH, SUBSET_PATH, KeycloakFake, build_subset
from tests.harness.loopback import LoopbackServer

SchemaCheck = Callable[[str, Any], list[str]]
FULL_SPEC_SHA256 = "c7580b4a4a732d38e91b816a4759926c64c2167d6d65ea7ffdb96eb5d0e766aa"


@pytest.fixture
def fake(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    return fake_keycloak.start(loopback)


@pytest.fixture
def http(fake: KeycloakFake) -> Iterator[httpx.Client]:
    assert fake.server is not None and fake.server.ca_pem is not None
    import ssl

    ctx = ssl.create_default_context(cadata=fake.server.ca_pem)
    with httpx.Client(base_url=fake.url, verify=ctx, timeout=5) as client:
        yield client


def _login(http: httpx.Client, **form: str) -> httpx.Response:
    data = {"grant_type": "password", "client_id": "admin-cli", "username": "admin", "password": "admin-password"}
    data.update(form)
    return http.post("/realms/master/protocol/openid-connect/token", data=data)


def _auth(http: httpx.Client) -> dict[str, str]:
    resp = _login(http)
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


class TestSpecFidelity:
    def test_vendored_subset_is_derived_from_the_official_spec(self) -> None:
        text = gzip.decompress(FULL_SPEC_PATH.read_bytes())
        assert hashlib.sha256(text).hexdigest() == FULL_SPEC_SHA256, "not the published file"
        full = json.loads(text)
        assert build_subset(full) == json.loads(SUBSET_PATH.read_text())

    def test_every_admin_route_of_the_fake_is_an_operation_of_the_spec(self, fake: KeycloakFake) -> None:
        ops = fake.validator.operations
        admin_routes = [r for r in fake.app.routes if r.pattern.startswith("/admin/")]
        assert len(admin_routes) >= 20
        for route in admin_routes:
            # The spec names path parameters differently ({client-uuid}, {id}); compare the shapes.
            shape = re.sub(r"\{[^}]+\}", "{}", route.pattern)
            matches = [p for p in ops if re.sub(r"\{[^}]+\}", "{}", p) == shape]
            assert matches, f"{route.pattern} is not in the spec"
            assert any(route.method in ops[p] for p in matches), f"{route.method} {route.pattern} not in the spec"

    def test_json_bodies_are_validated_with_the_schema_the_spec_declares(self, fake: KeycloakFake) -> None:
        v = fake.validator
        assert v.request_schema("/admin/realms/{realm}/clients", "POST") == "ClientRepresentation"
        assert v.request_schema("/admin/realms/{realm}/clients/{client-uuid}", "PUT") == "ClientRepresentation"
        assert v.request_schema("/admin/realms/{realm}", "PUT") == "RealmRepresentation"
        mapper = "/admin/realms/{realm}/clients/{client-uuid}/protocol-mappers/models"
        assert v.request_schema(mapper, "POST") == "ProtocolMapperRepresentation"
        # The realm import is declared as a raw stream; the fake validates it as a RealmRepresentation.
        assert v.request_schema("/admin/realms", "POST") == json.dumps({"format": "binary", "type": "string"})

    def test_schema_rejects_wrong_types_and_unknown_fields(self, fake: KeycloakFake) -> None:
        v = fake.validator
        assert v.errors("ClientRepresentation", {"clientId": "a", "attributes": {"x": "y"}}) == []
        assert v.errors("ClientRepresentation", {"clientId": "a", "attributes": {"x": True}})
        assert v.errors("ClientRepresentation", {"clientId": "a", "redirectUris": "https://a/cb"})
        assert v.errors("ClientRepresentation", {"clientId": "a", "accessType": "PUBLIC"})  # not a field
        assert v.errors("RealmRepresentation", {"realm": "r", "accessTokenLifespan": "300"})


class TestTokens:
    def test_master_tokens_live_60_seconds_and_come_with_a_refresh_token(self, http: httpx.Client) -> None:
        body = _login(http).json()
        assert body["expires_in"] == 60
        assert body["refresh_token"] and body["refresh_expires_in"] == 1800
        assert body["token_type"] == "Bearer"

    def test_client_credentials_have_no_refresh_token(self, http: httpx.Client) -> None:
        resp = http.post(
            "/realms/master/protocol/openid-connect/token",
            data={"grant_type": "client_credentials", "client_id": "temp-admin", "client_secret": "bootstrap"},
        )
        assert resp.status_code == 200
        assert "refresh_token" not in resp.json()

    def test_bad_password_is_400_invalid_grant(self, http: httpx.Client) -> None:
        resp = _login(http, password="wrong")
        assert resp.status_code == 400  # as Keycloak 26.7 answers
        assert resp.json()["error"] == "invalid_grant"

    def test_expired_access_token_is_401_and_refresh_works_until_the_session_ends(
        self, fake: KeycloakFake, http: httpx.Client
    ) -> None:
        tokens = _login(http).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert http.get("/admin/realms/master", headers=headers).status_code == 200
        fake.expire_tokens()
        assert http.get("/admin/realms/master", headers=headers).status_code == 401
        form = {"grant_type": "refresh_token", "client_id": "admin-cli", "refresh_token": tokens["refresh_token"]}
        refreshed = http.post("/realms/master/protocol/openid-connect/token", data=form)
        assert refreshed.status_code == 200
        fake.end_sessions()
        form["refresh_token"] = refreshed.json()["refresh_token"]
        again = http.post("/realms/master/protocol/openid-connect/token", data=form)
        assert again.status_code == 400 and again.json()["error_description"] == "Token is not active"

    def test_a_realm_created_after_the_token_was_issued_is_403_until_refresh(
        self, fake: KeycloakFake, http: httpx.Client
    ) -> None:
        fake.new_realm_needs_new_token = True  # older Keycloaks; 26.7 answers 200 (the next test)
        headers = _auth(http)
        fake.seed_realm("later")
        assert http.get("/admin/realms/later", headers=headers).status_code == 403
        assert http.get("/admin/realms/later", headers=_auth(http)).status_code == 200

    def test_a_realm_created_after_the_token_was_issued_is_visible_by_default(
        self, fake: KeycloakFake, http: httpx.Client
    ) -> None:
        headers = _auth(http)
        fake.seed_realm("later")
        assert http.get("/admin/realms/later", headers=headers).status_code == 200


class TestClients:
    def test_create_fills_server_defaults_and_answers_location(self, fake: KeycloakFake, http: httpx.Client) -> None:
        headers = _auth(http)
        resp = http.post(
            "/admin/realms/master/clients",
            json={"clientId": "app", "redirectUris": ["https://app.acme.net/cb"]},
            headers=headers,
        )
        assert resp.status_code == 201 and resp.content == b""
        uuid = resp.headers["Location"].rsplit("/", 1)[-1]
        assert resp.headers["Location"] == f"{fake.url}/admin/realms/master/clients/{uuid}"
        rep = http.get(f"/admin/realms/master/clients/{uuid}", headers=headers).json()
        assert rep["publicClient"] is True  # neither publicClient nor bearerOnly was sent
        assert rep["standardFlowEnabled"] is True and rep["directAccessGrantsEnabled"] is True
        assert rep["protocol"] == "openid-connect" and rep["fullScopeAllowed"] is True
        assert rep["webOrigins"] == ["https://app.acme.net"]  # derived from the redirect URIs
        assert rep["attributes"]["backchannel.logout.session.required"] == "true"
        assert set(rep["defaultClientScopes"]) == {"profile", "email", "roles", "web-origins", "acr", "basic"}
        assert "secret" not in rep

    def test_confidential_clients_get_a_secret_and_the_secret_endpoints_work(self, http: httpx.Client) -> None:
        headers = _auth(http)
        body = {"clientId": "svc", "publicClient": False}
        uuid = http.post("/admin/realms/master/clients", json=body, headers=headers).headers["Location"].rsplit("/")[-1]
        secret = http.get(f"/admin/realms/master/clients/{uuid}/client-secret", headers=headers).json()
        assert secret["type"] == "secret" and secret["value"]
        rotated = http.post(f"/admin/realms/master/clients/{uuid}/client-secret", headers=headers).json()
        assert rotated["value"] and rotated["value"] != secret["value"]
        rep = http.get(f"/admin/realms/master/clients/{uuid}", headers=headers).json()
        assert rep["secret"] == rotated["value"]
        assert "client.secret.creation.time" in rep["attributes"]

    def test_duplicate_client_id_is_409_and_lookup_is_exact(self, http: httpx.Client) -> None:
        headers = _auth(http)
        assert http.post("/admin/realms/master/clients", json={"clientId": "dup"}, headers=headers).status_code == 201
        again = http.post("/admin/realms/master/clients", json={"clientId": "dup"}, headers=headers)
        assert again.status_code == 409 and "already exists" in again.json()["errorMessage"]
        http.post("/admin/realms/master/clients", json={"clientId": "dup-2"}, headers=headers)
        found = http.get("/admin/realms/master/clients", params={"clientId": "dup"}, headers=headers).json()
        assert [c["clientId"] for c in found] == ["dup"]

    def test_put_merges_fields_and_attributes(self, http: httpx.Client) -> None:
        headers = _auth(http)
        body = {
            "clientId": "m",
            "publicClient": False,
            "description": "keep me",
            "attributes": {"a": "1", "b": "2"},
            "protocolMappers": [
                {"name": "one", "protocolMapper": "oidc-audience-mapper", "config": {}},
                {"name": "two", "protocolMapper": "oidc-audience-mapper", "config": {}},
            ],
        }
        loc = http.post("/admin/realms/master/clients", json=body, headers=headers).headers["Location"]
        path = "/admin/realms/master/clients/" + loc.rsplit("/", 1)[-1]
        secret = http.get(path, headers=headers).json()["secret"]
        put = {
            "redirectUris": ["https://x/cb"],
            "attributes": {"a": "", "c": "3"},
            "defaultClientScopes": ["email"],
            "protocolMappers": [{"name": "one", "protocolMapper": "oidc-audience-mapper", "config": {"k": "v"}}],
        }
        assert http.put(path, json=put, headers=headers).status_code == 204
        rep = http.get(path, headers=headers).json()
        assert rep["description"] == "keep me"  # absent field kept
        assert rep["secret"] == secret  # absent secret kept
        assert rep["redirectUris"] == ["https://x/cb"]
        assert "a" not in rep["attributes"] and rep["attributes"]["b"] == "2" and rep["attributes"]["c"] == "3"
        assert "email" in rep["defaultClientScopes"] and "profile" in rep["defaultClientScopes"]  # PUT ignores scopes
        assert [m["name"] for m in rep["protocolMappers"]] == ["one"]  # unlisted mapper deleted
        assert "authorizationServicesEnabled" not in rep  # disabled: Keycloak leaves the key out
        http.put(path, json={"publicClient": True}, headers=headers)
        assert "secret" not in http.get(path, headers=headers).json()

    def test_invalid_bodies_are_400_and_recorded(self, fake: KeycloakFake, http: httpx.Client) -> None:
        headers = _auth(http)
        bad = http.post("/admin/realms/master/clients", json={"clientId": "x", "attributes": {"n": 1}}, headers=headers)
        assert bad.status_code == 400
        unknown = http.post("/admin/realms/master/clients", json={"clientId": "x", "bogus": True}, headers=headers)
        assert unknown.status_code == 400
        fragment = http.post(
            "/admin/realms/master/clients", json={"clientId": "x", "redirectUris": ["https://a/#f"]}, headers=headers
        )
        assert fragment.status_code == 400 and "fragment" in fragment.json()["error_description"]
        assert len(fake.invalid_bodies) == 2
        assert fake.count_clients("master", "x") == 0

    def test_scope_links_use_scope_ids(self, http: httpx.Client) -> None:
        headers = _auth(http)
        loc = http.post("/admin/realms/master/clients", json={"clientId": "s"}, headers=headers).headers["Location"]
        base = "/admin/realms/master/clients/" + loc.rsplit("/", 1)[-1]
        scopes = {s["name"]: s["id"] for s in http.get("/admin/realms/master/client-scopes", headers=headers).json()}
        assert http.put(f"{base}/default-client-scopes/{scopes['phone']}", headers=headers).status_code == 409
        assert http.delete(f"{base}/optional-client-scopes/{scopes['phone']}", headers=headers).status_code == 204
        assert http.put(f"{base}/default-client-scopes/{scopes['phone']}", headers=headers).status_code == 204
        names = [s["name"] for s in http.get(f"{base}/default-client-scopes", headers=headers).json()]
        assert "phone" in names
        assert http.put(f"{base}/default-client-scopes/nope", headers=headers).status_code == 404


class TestRealms:
    def test_realm_create_conflict_merge_delete(self, fake: KeycloakFake, http: httpx.Client) -> None:
        headers = _auth(http)
        resp = http.post("/admin/realms", json={"realm": "r1", "enabled": True}, headers=headers)
        assert resp.status_code == 201 and resp.headers["Location"].endswith("/admin/realms/r1")
        assert http.post("/admin/realms", json={"realm": "r1"}, headers=headers).status_code == 409
        headers = _auth(http)  # the new realm's roles
        rep = http.get("/admin/realms/r1", headers=headers).json()
        assert rep["accessTokenLifespan"] == 300 and rep["attributes"]["cibaExpiresIn"] == "120"
        put = {"realm": "r1", "accessTokenLifespan": 120, "attributes": {"k": "v"}}
        assert http.put("/admin/realms/r1", json=put, headers=headers).status_code == 204
        rep = http.get("/admin/realms/r1", headers=headers).json()
        assert rep["accessTokenLifespan"] == 120 and rep["ssoSessionIdleTimeout"] == 1800
        assert rep["attributes"]["k"] == "v" and rep["attributes"]["cibaExpiresIn"] == "120"
        assert http.delete("/admin/realms/r1", headers=headers).status_code == 204
        assert http.get("/admin/realms/r1", headers=headers).status_code == 404

    def test_discovery_issuer_follows_the_frontend_url(self, loopback: Callable[..., LoopbackServer]) -> None:
        kc = KeycloakFake(frontend_url="https://auth.acme.net")
        kc.serve(loopback, tls=False)
        body = httpx.get(f"{kc.url}/realms/master/.well-known/openid-configuration").json()
        assert body["issuer"] == "https://auth.acme.net/realms/master"
        assert body["authorization_endpoint"] == "https://auth.acme.net/realms/master/protocol/openid-connect/auth"
        # Back-channel endpoints follow the caller's URL (KC_HOSTNAME_BACKCHANNEL_DYNAMIC, as Keycloak 26.7)...
        assert body["jwks_uri"] == f"{kc.url}/realms/master/protocol/openid-connect/certs"
        assert body["token_endpoint"] == f"{kc.url}/realms/master/protocol/openid-connect/token"
        # ... unless that is off.
        kc.backchannel_dynamic = False
        body = httpx.get(f"{kc.url}/realms/master/.well-known/openid-configuration").json()
        assert body["jwks_uri"] == "https://auth.acme.net/realms/master/protocol/openid-connect/certs"
