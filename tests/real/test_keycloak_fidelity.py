"""Fake fidelity: the Admin API operations the Keycloak provider uses, replayed against the loopback
fake (tests/fakes/keycloak.py) and the real Keycloak, with the same requests in the same order.

For every step the status code must be equal; error bodies must be equal (ids and names
normalised); success bodies must have the same shape: every key the fake answers with exists in the
real answer with the same JSON type (the real server adds many keys the provider never reads), and
`Location` is present on the same 201s. A difference is fixed in the fake (or, where the real server
behaves in a way the provider must handle, in the product: docs/providers/keycloak.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fakes.keycloak import KeycloakFake
from tests.harness.loopback import LoopbackServer
from tests.real.keycloak_support import OWNER, RealKeycloak, admin, kc  # noqa: F401 - fixtures


@dataclass
class Step:
    name: str
    status: int
    body: Any
    location: bool


class Replay:
    """One run of the operations against one server; `steps` records every answer."""

    def __init__(self, url: str, user: str, password: str, realm: str) -> None:
        self.url, self.user, self.password, self.realm = url, user, password, realm
        self.http = httpx.Client(base_url=url, timeout=60)
        self.steps: list[Step] = []
        self.subs: dict[str, str] = {url: "<url>", realm: "<realm>"}
        self.token = ""

    def record(self, name: str, r: httpx.Response) -> Any:
        body: Any = None
        if r.content:
            try:
                body = r.json()
            except ValueError:
                body = r.text
        self.steps.append(Step(name, r.status_code, body, bool(r.headers.get("Location"))))
        return body

    def call(self, name: str, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        r = self.http.request(method, path, headers=headers, **kwargs)
        body = self.record(name, r)
        if r.headers.get("Location"):
            body = r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
            self.subs[body] = "<created-id>"
        return body

    def grant(self, name: str, form: dict[str, str]) -> Any:
        r = self.http.post("/realms/master/protocol/openid-connect/token", data=form)
        return self.record(name, r)

    def run(self) -> list[Step]:
        r, a = self.realm, f"/admin/realms/{self.realm}"
        login = {"grant_type": "password", "client_id": "admin-cli", "username": self.user, "password": self.password}
        tokens = self.grant("token: password grant", login)
        self.token = tokens["access_token"]
        self.grant(
            "token: refresh grant",
            {"grant_type": "refresh_token", "client_id": "admin-cli", "refresh_token": tokens["refresh_token"]},
        )
        self.grant("token: wrong password", {**login, "password": "not-the-password"})
        self.grant(
            "token: unknown refresh token",
            {"grant_type": "refresh_token", "client_id": "admin-cli", "refresh_token": "not-a-token"},
        )
        self.call("admin call with a bad token", "GET", "/admin/realms/master", token="not-a-token")

        self.call("realm: get missing", "GET", a)
        self.call(
            "realm: create",
            "POST",
            "/admin/realms",
            json={"realm": r, "enabled": True, "attributes": {"pulumi.stack": OWNER}},
        )
        self.call("realm: create again", "POST", "/admin/realms", json={"realm": r, "enabled": True})
        self.call("realm: get with a token older than the realm", "GET", a)
        self.token = self.grant("token: after realm create", login)["access_token"]
        realm_rep = self.call("realm: get", "GET", a)
        self.subs[realm_rep["id"]] = "<realm-id>"
        self.call(
            "realm: update",
            "PUT",
            a,
            json={
                "realm": r,
                "displayName": "Fidelity",
                "accessTokenLifespan": 120,
                "attributes": {"pulumi.stack": OWNER},
            },
        )
        self.call("realm: discovery", "GET", f"/realms/{r}/.well-known/openid-configuration")
        self.call(
            "realm: discovery of a missing realm", "GET", "/realms/no-such-realm/.well-known/openid-configuration"
        )
        scopes = self.call("realm: client scopes", "GET", f"{a}/client-scopes")
        scope_ids = {s["name"]: s["id"] for s in scopes}

        confidential = {
            "clientId": "fid",
            "protocol": "openid-connect",
            "publicClient": False,
            "bearerOnly": False,
            "enabled": True,
            "name": "Fidelity",
            "standardFlowEnabled": True,
            "directAccessGrantsEnabled": False,
            "redirectUris": ["https://fid.acme.net/cb"],
            "webOrigins": ["+"],
            "attributes": {
                "pulumi.stack": OWNER,
                "post.logout.redirect.uris": "https://fid.acme.net/bye",
                "pkce.code.challenge.method": "S256",
            },
            "defaultClientScopes": ["profile", "email"],
            "optionalClientScopes": ["phone"],
        }
        self.call("clients: lookup before create", "GET", f"{a}/clients", params={"clientId": "fid"})
        cid = self.call("client: create", "POST", f"{a}/clients", json=confidential)
        self.call("client: create a taken clientId", "POST", f"{a}/clients", json=confidential)
        self.call("clients: lookup", "GET", f"{a}/clients", params={"clientId": "fid"})
        c = f"{a}/clients/{cid}"
        rep = self.call("client: get", "GET", c)
        rep.update(description="now described", redirectUris=["https://fid.acme.net/cb2"])
        rep["attributes"]["custom.flag"] = ""
        for k in ("secret", "protocolMappers", "defaultClientScopes", "optionalClientScopes", "access"):
            rep.pop(k, None)
        self.call("client: update", "PUT", c, json=rep)
        self.call("client: secret", "GET", f"{c}/client-secret")
        self.call("client: regenerate secret", "POST", f"{c}/client-secret")
        other = self.call(
            "client: create another", "POST", f"{a}/clients", json={"clientId": "fid-other", "publicClient": True}
        )
        self.call("client: rename onto a taken clientId", "PUT", f"{a}/clients/{other}", json={"clientId": "fid"})

        models = f"{c}/protocol-mappers/models"
        audience = {
            "included.custom.audience": "fid",
            "access.token.claim": "true",
            "id.token.claim": "true",
            "introspection.token.claim": "true",
        }
        mapper = {
            "name": "pulumi-audience",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": audience,
        }
        self.call("mappers: list (none)", "GET", models)
        mid = self.call("mapper: create", "POST", models, json=mapper)
        self.call("mapper: create with a taken name", "POST", models, json=mapper)
        listed = self.call("mappers: list", "GET", models)
        self.call(
            "mapper: update",
            "PUT",
            f"{models}/{mid}",
            json={**listed[0], "config": {**audience, "included.custom.audience": "fid-2"}},
        )
        self.call("mapper: delete", "DELETE", f"{models}/{mid}")
        self.call("mapper: delete again", "DELETE", f"{models}/{mid}")

        for kind in ("default", "optional"):
            self.call(f"{kind} scopes: list", "GET", f"{c}/{kind}-client-scopes")
            self.call(f"{kind} scopes: attach", "PUT", f"{c}/{kind}-client-scopes/{scope_ids['address']}")
            self.call(f"{kind} scopes: detach", "DELETE", f"{c}/{kind}-client-scopes/{scope_ids['address']}")
            self.call(f"{kind} scopes: attach an unknown scope", "PUT", f"{c}/{kind}-client-scopes/no-such-scope")

        sa = self.call(
            "client: create with service accounts",
            "POST",
            f"{a}/clients",
            json={
                "clientId": "fid-sa",
                "publicClient": False,
                "serviceAccountsEnabled": True,
                "defaultClientScopes": ["profile"],
                "optionalClientScopes": [],
            },
        )
        self.call("service account default scopes: list", "GET", f"{a}/clients/{sa}/default-client-scopes")
        self.call(
            "client: turn service accounts off", "PUT", f"{a}/clients/{sa}", json={"serviceAccountsEnabled": False}
        )
        self.call("service accounts off, default scopes: list", "GET", f"{a}/clients/{sa}/default-client-scopes")
        self.call("client: turn service accounts on", "PUT", f"{a}/clients/{sa}", json={"serviceAccountsEnabled": True})
        self.call("service accounts on again, default scopes: list", "GET", f"{a}/clients/{sa}/default-client-scopes")

        self.call("client: delete", "DELETE", c)
        self.call("client: get deleted", "GET", c)
        self.call("client: delete again", "DELETE", c)
        self.call("client: update deleted", "PUT", c, json={"description": "x"})
        self.call("realm: delete", "DELETE", a)
        self.call("realm: delete again", "DELETE", a)
        self.http.close()
        return self.steps


def _normalise(value: Any, subs: dict[str, str]) -> Any:
    if isinstance(value, str):
        for k, v in sorted(subs.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(k, v)
        return value
    if isinstance(value, list):
        return [_normalise(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v, subs) for k, v in value.items()}
    return value


def _shape_problems(fake: Any, real: Any, where: str) -> list[str]:
    """Keys the fake answers with that the real server lacks, or answers with another JSON type."""
    if type(fake) is not type(real) and not (isinstance(fake, (int, float)) and isinstance(real, (int, float))):
        return [f"{where}: fake {type(fake).__name__}, real {type(real).__name__}"]
    if isinstance(fake, dict):
        out = []
        for k, v in fake.items():
            if k not in real:
                out.append(f"{where}.{k}: only in the fake")
            elif where.endswith("attributes") or where.endswith("config"):
                continue  # free-form string maps: their keys are data, not shape
            else:
                out += _shape_problems(v, real[k], f"{where}.{k}")
        return out
    if isinstance(fake, list) and fake and real:
        return _shape_problems(fake[0], real[0], f"{where}[0]")
    return []


def differences(fake: Replay, real: Replay) -> list[str]:
    out = []
    for f, r in zip(fake.steps, real.steps, strict=True):
        if f.status != r.status:
            out.append(f"{f.name}: status fake {f.status}, real {r.status} (real body {r.body!r:.200})")
            continue
        if f.location != r.location:
            out.append(f"{f.name}: Location fake {f.location}, real {r.location}")
        fb, rb = _normalise(f.body, fake.subs), _normalise(r.body, real.subs)
        if f.status >= 400:
            if fb != rb:
                out.append(f"{f.name}: error body fake {fb!r}, real {rb!r}")
        elif (fb is None) != (rb is None):
            out.append(f"{f.name}: body fake {fb!r:.100}, real {rb!r:.100}")
        elif fb is not None:
            out += [f"{f.name}: {p}" for p in _shape_problems(fb, rb, "body")]
            if f.name.endswith("scopes: list"):  # which scopes a client has is behaviour, not only shape
                names = (sorted(s["name"] for s in fb), sorted(s["name"] for s in rb))
                if names[0] != names[1]:
                    out.append(f"{f.name}: fake {names[0]}, real {names[1]}")
    return out


def test_the_fake_answers_the_providers_operations_as_the_real_keycloak_does(
    kc: dict[str, Any],
    admin: RealKeycloak,
    loopback: Callable[..., LoopbackServer],
) -> None:
    realm = f"fidelity-{int(time.time() * 1000) % 10**8}"
    fake = KeycloakFake(admin_user="admin", admin_password="fake-admin-password")
    fake.serve(loopback, tls=False)
    fake_run = Replay(fake.url, "admin", "fake-admin-password", realm)
    real_run = Replay(kc["url"], kc["admin_user"], kc["admin_password"], realm)
    try:
        fake_run.run()
        real_run.run()
    finally:
        admin.delete_realm(realm)
    assert [s.name for s in fake_run.steps] == [s.name for s in real_run.steps]
    assert fake.invalid_bodies == []
    problems = differences(fake_run, real_run)
    assert problems == [], "the fake differs from Keycloak " + kc["version"] + ":\n" + "\n".join(problems)


@pytest.mark.parametrize("step", ["client: get", "realm: get"])
def test_the_replay_compares_something(step: str) -> None:
    """The comparison itself: a key only the fake has and a differing status are both reported."""
    fake, real = Replay("http://f", "u", "p", "r"), Replay("http://r", "u", "p", "r")
    fake.steps = [Step(step, 200, {"id": "x", "onlyFake": True}, False), Step("gone", 404, {"error": "a"}, False)]
    real.steps = [Step(step, 200, {"id": "x"}, False), Step("gone", 400, {"error": "a"}, False)]
    assert differences(fake, real) == [
        f"{step}: body.onlyFake: only in the fake",
        "gone: status fake 404, real 400 (real body {'error': 'a'})",
    ]
