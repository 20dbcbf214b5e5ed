"""What the real-Keycloak tests use to set up and inspect the server beside the provider under test:
a small admin API client (the bootstrap admin, password grant with `admin-cli`) that never shares a
token or a session with the provider's host process, and counts the logins and refreshes of the
provider from Keycloak's own events."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from dynamic_providers.keycloak.client import RetryPolicy
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from tests.conftest import program_run
from tests.harness import mock_engine
from tests.harness.dynamic_host import PROVIDER_KEY, DynamicProviderHost

CLIENT_TYPE = "pulumi-python:dynamic/keycloak:Client"
REALM_TYPE = "pulumi-python:dynamic/keycloak:Realm"
RETRY = RetryPolicy(attempts=4, base_delay=0.2, max_delay=2)
OWNER = "identity-platform/test"  # the dynamic host's PULUMI_PROJECT / PULUMI_STACK
EVENT_TYPES = ["LOGIN", "LOGIN_ERROR", "REFRESH_TOKEN", "REFRESH_TOKEN_ERROR"]
PLATFORMS = ("dev", "k8s-dev")
"""Stacks whose realm and Ziti client the scenarios run with: Swarm's dev and Kubernetes's k8s-dev,
as each one's assembly registers them (`KeycloakIdentity`), so both platforms pass the same tests."""


def platform_inputs(stack: str, type_: str) -> dict[str, Any]:
    """The inputs `stack`'s `__main__.py` registers for its one `KeycloakIdentity` resource of
    `type_` (mock engine), plain, without what points it at a server: connection, owner, provider."""
    run = program_run(stack, False)
    (recorded,) = [r for r in run.resources if r.type == type_ and r.name.startswith("keycloak-identity-")]
    out = {k: mock_engine.unwrap_secret(v) for k, v in recorded.inputs.items()
           if k not in ("connection", "owner", PROVIDER_KEY)}
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in out.items()}


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class RealKeycloak:
    """Admin calls for test set-up and inspection (not the code under test)."""

    def __init__(self, section: dict[str, Any]) -> None:
        self.section = section
        self.url: str = section["url"]
        self.http = httpx.Client(timeout=60)
        self._token: str | None = None
        self._renew_at = 0.0
        self.own_sessions: set[str] = set()

    # --- the helper's own token ----------------------------------------------------------------

    def login(self) -> str:
        r = self.http.post(
            f"{self.url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.section["admin_user"],
                "password": self.section["admin_password"],
            },
        )
        assert r.status_code == 200, f"helper login: {r.status_code} {r.text[:300]}"
        body = r.json()
        sid = _claims(body["access_token"]).get("sid")
        if sid:
            self.own_sessions.add(sid)
        return str(body["access_token"])

    def token(self) -> str:
        if self._token is None or time.monotonic() > self._renew_at:
            self._token = self.login()
            exp = _claims(self._token)["exp"] - _claims(self._token)["iat"]
            self._renew_at = time.monotonic() + max(0.5, exp * 0.5)
        return self._token

    def call(self, method: str, path: str, *, expected: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        for attempt in (1, 2):
            r = self.http.request(
                method, f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token()}"}, **kwargs
            )
            if r.status_code == 401 and attempt == 1:
                self._token = None  # e.g. after the test logged the admin out
                continue
            break
        assert r.status_code in expected, f"{method} {path}: {r.status_code} {r.text[:300]}"
        return r

    # --- connection inputs ---------------------------------------------------------------------

    def connection(self, **overrides: Any) -> dict[str, Any]:
        conn: dict[str, Any] = {
            "url": self.url,
            "username": self.section["admin_user"],
            "password": self.section["admin_password"],
            "timeout": 30,
        }
        conn.update(overrides)
        return conn

    # --- realms --------------------------------------------------------------------------------

    def seed_realm(self, name: str, attributes: dict[str, str] | None = None) -> dict[str, Any]:
        self.call(
            "POST",
            "/admin/realms",
            json={"realm": name, "enabled": True, "attributes": attributes or {}},
            expected=(201,),
        )
        self._token = None  # the new realm's roles are only in tokens issued from now on
        return self.realm(name) or {}

    def realm(self, name: str) -> dict[str, Any] | None:
        r = self.call("GET", f"/admin/realms/{quote(name, safe='')}", expected=(200, 404))
        return r.json() if r.status_code == 200 else None

    def delete_realm(self, name: str) -> None:
        self.call("DELETE", f"/admin/realms/{quote(name, safe='')}", expected=(204, 404))

    # --- clients -------------------------------------------------------------------------------

    def clients(self, realm: str, client_id: str) -> list[dict[str, Any]]:
        r = self.call("GET", f"/admin/realms/{realm}/clients", params={"clientId": client_id})
        return [c for c in r.json() if c["clientId"] == client_id]

    def count_clients(self, realm: str, client_id: str) -> int:
        return len(self.clients(realm, client_id))

    def client_by_client_id(self, realm: str, client_id: str) -> dict[str, Any] | None:
        """The full representation (as a master admin sees it), with its protocol mappers and scopes."""
        found = self.clients(realm, client_id)
        assert len(found) <= 1, f"duplicate clientId {client_id!r} in {realm}: {len(found)}"
        if not found:
            return None
        rep = self.call("GET", f"/admin/realms/{realm}/clients/{found[0]['id']}").json()
        return dict(rep)

    def client(self, realm: str, client_id: str) -> dict[str, Any]:
        rep = self.client_by_client_id(realm, client_id)
        assert rep is not None, f"{client_id} is not in realm {realm}"
        return rep

    def seed_client(self, realm: str, rep: dict[str, Any]) -> str:
        r = self.call("POST", f"/admin/realms/{realm}/clients", json=rep, expected=(201,))
        return r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    def put_client(self, realm: str, uuid: str, rep: dict[str, Any]) -> None:
        self.call("PUT", f"/admin/realms/{realm}/clients/{uuid}", json=rep, expected=(204,))

    def delete_client(self, realm: str, uuid: str) -> None:
        self.call("DELETE", f"/admin/realms/{realm}/clients/{uuid}", expected=(204,))

    def rotate_secret_out_of_band(self, realm: str, uuid: str) -> str:
        r = self.call("POST", f"/admin/realms/{realm}/clients/{uuid}/client-secret")
        return str(r.json()["value"])

    def secret(self, realm: str, uuid: str) -> str:
        return str(self.call("GET", f"/admin/realms/{realm}/clients/{uuid}/client-secret").json()["value"])

    def scope_names(self, realm: str, uuid: str, kind: str) -> list[str]:
        r = self.call("GET", f"/admin/realms/{realm}/clients/{uuid}/{kind}-client-scopes")
        return sorted(s["name"] for s in r.json())

    # --- the master realm: token lifetime, sessions and events -----------------------------------

    def set_master(self, **fields: Any) -> None:
        self.call("PUT", "/admin/realms/master", json=fields, expected=(204,))

    def admin_user_id(self) -> str:
        r = self.call(
            "GET", "/admin/realms/master/users", params={"username": self.section["admin_user"], "exact": "true"}
        )
        return str(r.json()[0]["id"])

    def end_admin_sessions(self) -> None:
        """Log the admin out everywhere: its access tokens and refresh tokens stop working."""
        self.call("POST", f"/admin/realms/master/users/{self.admin_user_id()}/logout", expected=(204,))
        self._token = None

    def enable_login_events(self) -> None:
        self.set_master(eventsEnabled=True, enabledEventTypes=EVENT_TYPES, eventsExpiration=3600)

    def clear_events(self) -> None:
        self.call("DELETE", "/admin/realms/master/events", expected=(204,))

    def provider_events(self) -> dict[str, int]:
        """Login and refresh events of sessions this helper did not open (the provider's)."""
        r = self.call("GET", "/admin/realms/master/events", params={"max": 1000})
        counts: dict[str, int] = {}
        for ev in r.json():
            if ev.get("sessionId") in self.own_sessions:
                continue
            counts[ev["type"]] = counts.get(ev["type"], 0) + 1
        return counts


# --- fixtures (imported by the test modules) -------------------------------------------------------


@pytest.fixture
def kc(real_servers: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """The real Keycloak's state section (started with PostgreSQL on first use; started again, on
    the same database, after a test stopped it)."""
    return real_servers("keycloak")


@pytest.fixture
def admin(kc: dict[str, Any]) -> Iterator[RealKeycloak]:
    helper = RealKeycloak(kc)
    helper.enable_login_events()
    yield helper
    helper.http.close()


@pytest.fixture
def realm(admin: RealKeycloak, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh realm of this stack (marked with OWNER) per test, deleted afterwards."""
    name = "t-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    admin.seed_realm(name, {"pulumi.stack": OWNER})
    yield name
    admin.delete_realm(name)


Host = Callable[..., DynamicProviderHost]


@pytest.fixture
def clients(dynamic_host: Host) -> DynamicProviderHost:
    return dynamic_host(KeycloakClientProvider(retry=RETRY, ready_timeout=30), resource_type=CLIENT_TYPE)


@pytest.fixture
def realms(dynamic_host: Host) -> DynamicProviderHost:
    return dynamic_host(KeycloakRealmProvider(retry=RETRY, ready_timeout=30), resource_type=REALM_TYPE)
