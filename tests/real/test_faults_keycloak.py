"""Faults between the Keycloak providers and the REAL Keycloak: the fault proxy
(tests/harness/fault_proxy.py) forwards to the server and resets, cuts after the server acted,
answers 5xx/429 or stalls. The guarantees of the fake-based fault tests, now against Keycloak's
own answers (its 409s, its Location headers, its lookups): no duplicate client or realm, nothing
orphaned, nothing lost, after at most one re-run of the step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.fault_proxy import ProxyApp, http_proxy, with_one_rerun
from tests.harness.loopback import LoopbackServer
from tests.real.keycloak_support import (  # noqa: F401 - fixtures
    CLIENT_TYPE,
    OWNER,
    REALM_TYPE,
    RETRY,
    RealKeycloak,
    admin,
    clients,
    kc,
    realm,
    realms,
)

CLIENTS = "/admin/realms/{realm}/clients"
CLIENT = "/admin/realms/{realm}/clients/{uuid}"
MAPPERS = "/admin/realms/{realm}/clients/{uuid}/protocol-mappers/models"
REALMS = "/admin/realms"
REALM = "/admin/realms/{realm}"
TOKEN = "/realms/{realm}/protocol/openid-connect/token"


@pytest.fixture
def proxy(admin: RealKeycloak) -> Iterator[tuple[LoopbackServer, ProxyApp]]:
    srv, app = http_proxy(admin.url, tls=False, templates=[MAPPERS, CLIENT, CLIENTS, REALM, REALMS, TOKEN])
    yield srv, app
    srv.stop()
    app.close()


def via(proxy: tuple[LoopbackServer, ProxyApp], admin: RealKeycloak, **overrides: Any) -> dict[str, Any]:
    return admin.connection(url=proxy[0].url, **overrides)


def ziti_client(realm: str, connection: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "realm": realm,
        "client_id": "openziti",
        "access_type": "PUBLIC",
        "standard_flow_enabled": True,
        "direct_access_grants_enabled": False,
        "pkce_method": "S256",
        "redirect_uris": ["http://localhost:20314/auth/callback"],
        "audience": "openziti",
        "connection": connection,
        "owner": OWNER,
        **overrides,
    }



class TestClientCreate:
    def test_a_lost_answer_is_adopted_not_repeated(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        srv.inject("POST", CLIENTS, reset_after=True)  # Keycloak created it; the answer never arrives
        state = with_one_rerun(lambda: clients.up("ziti", ziti_client(realm, via(proxy, admin))))
        assert admin.count_clients(realm, "openziti") == 1
        assert state.id == admin.client(realm, "openziti")["id"]
        assert srv.count("POST", CLIENTS) == 1

    def test_a_reset_before_keycloak_saw_it_is_sent_again(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        srv.inject("POST", CLIENTS, reset=True)
        state = clients.up("ziti", ziti_client(realm, via(proxy, admin)))
        assert admin.count_clients(realm, "openziti") == 1
        assert state.id == admin.client(realm, "openziti")["id"]
        assert srv.count("POST", CLIENTS) == 2

    def test_a_create_slower_than_the_timeout_leaves_one_client(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        srv.inject("POST", CLIENTS, delay=3)
        state = with_one_rerun(lambda: clients.up("ziti", ziti_client(realm, via(proxy, admin, timeout=1))))
        time.sleep(3)  # the stalled request reaches Keycloak after the provider gave up on it
        assert admin.count_clients(realm, "openziti") == 1
        assert state.id == admin.client(realm, "openziti")["id"]

    def test_503_and_429_are_ridden_out(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        srv.inject("POST", CLIENTS, status=503)
        srv.inject("POST", CLIENTS, status=429, headers={"Retry-After": "1"})
        started = time.monotonic()
        state = clients.up("ziti", ziti_client(realm, via(proxy, admin)))
        assert time.monotonic() - started >= 1.0
        assert admin.count_clients(realm, "openziti") == 1
        assert state.id == admin.client(realm, "openziti")["id"]

    def test_a_lost_answer_adding_the_audience_mapper_leaves_one_mapper(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        without = ziti_client(realm, via(proxy, admin))
        del without["audience"]
        state = clients.up("ziti", without)
        srv.inject("POST", MAPPERS, reset_after=True)
        with_one_rerun(lambda: clients.change("ziti", state, ziti_client(realm, via(proxy, admin))))
        mappers = admin.client(realm, "openziti").get("protocolMappers", [])
        audience = [m for m in mappers if m.get("protocolMapper") == "oidc-audience-mapper"]
        assert len(audience) == 1, mappers


class TestReadUpdateDelete:
    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param({"status": 503, "headers": {"Retry-After": "0"}, "times": 2}, id="503"),
            pytest.param({"status": 502}, id="502"),
            pytest.param({"reset": True}, id="reset"),
            pytest.param({"delay": 2.5}, id="slower-than-timeout"),
        ],
    )
    def test_refresh_rides_out_transient_faults(self, proxy, admin, realm, clients, fault) -> None:
        srv, _ = proxy
        state = clients.up("ziti", ziti_client(realm, via(proxy, admin, timeout=1)))
        srv.inject("GET", CLIENT, **fault)
        refreshed = clients.refresh("ziti", state)
        assert refreshed is not None and refreshed.id == state.id

    def test_an_update_whose_answer_is_lost_is_applied_once(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        state = clients.up("ziti", ziti_client(realm, via(proxy, admin)))
        srv.inject("PUT", CLIENT, reset_after=True)
        new = ziti_client(realm, via(proxy, admin), redirect_uris=["http://localhost:20315/auth/callback"])
        with_one_rerun(lambda: clients.change("ziti", state, new))
        assert admin.client(realm, "openziti")["redirectUris"] == ["http://localhost:20315/auth/callback"]
        assert admin.count_clients(realm, "openziti") == 1

    def test_a_delete_whose_answer_is_lost_leaves_nothing(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        state = clients.up("ziti", ziti_client(realm, via(proxy, admin)))
        srv.inject("DELETE", CLIENT, reset_after=True)
        with_one_rerun(lambda: clients.delete("ziti", state.id, state.outputs))  # the re-run finds it gone
        assert admin.count_clients(realm, "openziti") == 0

    def test_the_admin_login_rides_out_a_503_from_the_token_endpoint(self, proxy, admin, realm, clients) -> None:
        srv, _ = proxy
        srv.inject("POST", TOKEN, status=503, times=2)
        state = clients.up("ziti", ziti_client(realm, via(proxy, admin)))
        assert state.id == admin.client(realm, "openziti")["id"]
        assert srv.count("POST", TOKEN) >= 3


class TestRealmCreate:
    def test_a_lost_answer_is_adopted_not_repeated(self, proxy, admin, realms, request) -> None:
        srv, _ = proxy
        name = f"lost-{int(time.time() * 1000) % 10**9}"
        request.addfinalizer(lambda: admin.delete_realm(name))
        srv.inject("POST", REALMS, reset_after=True)
        props = {"realm": name, "connection": via(proxy, admin), "owner": OWNER}
        state = with_one_rerun(lambda: realms.up(name, props))
        rep = admin.realm(name)
        assert rep is not None and state.id == rep["id"]
        assert srv.count("POST", REALMS) == 1
