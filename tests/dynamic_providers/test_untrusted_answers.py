"""Lookups trust nothing, and repeated POSTs back off.

* An adoption lookup checks, in what comes back, the fields it filtered on: a controller or proxy
  that ignores or loosens a filter (simulated by answering the list call with everything) never
  makes a provider adopt, or refuse, the wrong object. A read by id or name answered about
  another object is an error, never taken as the object asked for.
* A POST repeated after a failure (a persistent 503, whose outcome is unknown) waits first, with
  the policy of every other retry: the server's `Retry-After` when it sends one, else jittered
  exponential backoff. Before, five POSTs went out in 0.4 s.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dynamic_providers.keycloak.client import KeycloakAdmin, KeycloakApiError, RetryPolicy, forget_tokens
from dynamic_providers.keycloak.models import Connection
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider, _KeycloakProvider
from dynamic_providers.spire._proto import types_pb2
from dynamic_providers.spire.client import GrpcEntryClient, SpireError
from dynamic_providers.spire.models import GrpcConnection
from dynamic_providers.ziti.client import ZitiApiError, ZitiClient
from dynamic_providers.ziti.models import ZitiConnection
from dynamic_providers.ziti.provider import CertificateAuthorityProvider
from tests.fakes import keycloak as fake_keycloak
from tests.fakes import ziti as fake_ziti
from tests.fakes.keycloak import KeycloakFake
from tests.fakes.ziti import API, ZitiController, make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.harness.loopback import LoopbackServer

OWNER = "identity-platform/test"
CLIENTS = "/admin/realms/{realm}/clients"
REALMS = "/admin/realms"
Host = Callable[..., DynamicProviderHost]


@pytest.fixture(autouse=True)
def _cold_tokens() -> Iterator[None]:
    forget_tokens()
    yield
    forget_tokens()


# --- Ziti: lists whose filter was ignored ---------------------------------------------------------


@pytest.fixture
def ziti(loopback: Callable[..., LoopbackServer]) -> tuple[ZitiController, Any]:
    return fake_ziti.start(loopback)


def ignore_filter(fake: ZitiController, srv: Any, collection: str, times: int) -> None:
    """The next `times` list calls of `collection` answer with every entity, whatever the filter."""
    with fake.lock:
        everything = sorted(fake.entities[collection].values(), key=lambda e: str(e.get("name")))
        page = [fake._detail(collection, e) for e in everything]
    body = {"data": page, "meta": {"pagination": {"limit": 500, "offset": 0, "totalCount": len(page)}}}
    srv.inject("GET", f"{API}/{collection}", status=200, body=body, times=times)


def ziti_client(fake: ZitiController, srv: Any) -> ZitiClient:
    return ZitiClient(ZitiConnection.model_validate(fake_ziti.connection(srv, fake)), sleep=lambda _: None)


class TestZitiLookups:
    def test_find_keeps_only_exact_matches_of_an_ignored_filter(self, ziti: tuple[ZitiController, Any]) -> None:
        fake, srv = ziti
        for name in ("alpha", "beta", "beta-2"):
            fake.put_entity(
                "identities", {"name": name, "type": "Default", "isAdmin": False, "authPolicyId": "default"}
            )
        ignore_filter(fake, srv, "identities", times=3)
        with ziti_client(fake, srv) as c:
            assert [e["name"] for e in c.find("identities", "name", "beta")] == ["beta"]
            assert c.find_by_name("identities", "beta-2")["name"] == "beta-2"  # type: ignore[index]
            assert c.find_by_name("identities", "gamma") is None  # not "the first result"

    def test_a_get_answered_about_another_entity_is_an_error(self, ziti: tuple[ZitiController, Any]) -> None:
        fake, srv = ziti
        ours = fake.put_entity(
            "identities", {"name": "ours", "type": "Default", "isAdmin": False, "authPolicyId": "default"}
        )
        other = fake.put_entity(
            "identities", {"name": "other", "type": "Default", "isAdmin": False, "authPolicyId": "default"}
        )
        with fake.lock:
            answer = {"data": fake._detail("identities", fake.entities["identities"][other]), "meta": {}}
        srv.inject("GET", f"{API}/identities/{{id}}", status=200, body=answer)
        with ziti_client(fake, srv) as c, pytest.raises(ZitiApiError, match="not trusted") as err:
            c.get("identities", ours)
        assert err.value.code == "WRONG_ENTITY" and other in str(err.value)

    def test_the_ca_lookup_by_fingerprint_adopts_the_ca_with_that_fingerprint(
        self, ziti: tuple[ZitiController, Any], dynamic_host: Host
    ) -> None:
        fake, srv = ziti
        host = dynamic_host(
            CertificateAuthorityProvider(), resource_type="pulumi-python:dynamic/ziti:CertificateAuthority"
        )
        cert, key = make_ca()
        props = {
            "name": "legacy-name",
            "cert_pem": cert,
            "ca_key_pem": key,
            "connection": fake_ziti.connection(srv, fake),
            "owner": fake_ziti.owner("ziti-trust-spire-ca"),
        }
        ours = host.up("ca", props).id  # then the state was lost, and the program renamed the CA
        other_cert, _ = make_ca()
        foreign = fake.put_entity(
            "cas",
            {"name": "aaa-first", "certPem": other_cert, "fingerprint": "00" * 20, "tags": {"pulumi.stack": "x/y"}},
        )
        before = copy.deepcopy(fake.entities["cas"][foreign])
        ignore_filter(fake, srv, "cas", times=2)  # the lookups by name, then by fingerprint
        state = host.up("ca", {**props, "name": "spire"})  # POST refused: the fingerprint is taken
        assert state.id == ours and fake.entities["cas"][ours]["name"] == "spire"
        assert fake.entities["cas"][foreign] == before


# --- Keycloak: answers about another object; POSTs that back off ------------------------------------


@pytest.fixture
def keycloak(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    return fake_keycloak.start(loopback, platform_owner=OWNER)


def admin(fake: KeycloakFake) -> KeycloakAdmin:
    policy = RetryPolicy(attempts=2, base_delay=0.01)
    return KeycloakAdmin(Connection.model_validate(fake.connection()), retry=policy, sleep=lambda _: None)


class TestKeycloakLookups:
    def test_a_realm_read_answered_about_another_realm_is_an_error(self, keycloak: KeycloakFake) -> None:
        assert keycloak.server is not None
        keycloak.server.inject("GET", "/admin/realms/{realm}", status=200, body={"id": "x1", "realm": "master"})
        with admin(keycloak) as kc, pytest.raises(KeycloakApiError, match="answered with realm 'master'"):
            kc.get_realm("platform")

    def test_a_client_read_answered_about_another_client_is_an_error(self, keycloak: KeycloakFake) -> None:
        uuid = keycloak.seed_client("platform", {"clientId": "billing"})
        assert keycloak.server is not None
        other = {"id": "another-uuid", "clientId": "admin-cli"}
        keycloak.server.inject("GET", "/admin/realms/{realm}/clients/{uuid}", status=200, body=other)
        with admin(keycloak) as kc, pytest.raises(KeycloakApiError, match="answered with client 'admin-cli'"):
            kc.get_client("platform", uuid)

    def test_the_client_lookup_keeps_only_the_exact_client_id(self, keycloak: KeycloakFake) -> None:
        keycloak.seed_client("platform", {"clientId": "billing-2"})
        with admin(keycloak) as kc:
            assert kc.find_client("platform", "billing") is None
        assert keycloak.server is not None
        listing = [{"id": "u1", "clientId": "billing-2"}, {"id": "u2", "clientId": "billing"}]
        keycloak.server.inject("GET", CLIENTS, status=200, body=listing)  # a filter ignored
        with admin(keycloak) as kc:
            found = kc.find_client("platform", "billing")
        assert found is not None and found.id == "u2"


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client_props(fake: KeycloakFake) -> dict[str, Any]:
    return {"realm": "platform", "client_id": "billing", "connection": fake.connection(), "owner": OWNER}


def realm_props(fake: KeycloakFake) -> dict[str, Any]:
    return {"realm": "shop", "connection": fake.connection(), "owner": OWNER}


POSTS = {
    "client": (KeycloakClientProvider, client_props, CLIENTS),
    "realm": (KeycloakRealmProvider, realm_props, REALMS),
}


class TestKeycloakPostBackoff:
    @pytest.fixture
    def sleeps(self, monkeypatch: pytest.MonkeyPatch) -> Sleeps:
        """The provider's admin sessions record their waits instead of sleeping them."""
        recorded = Sleeps()

        def session(self: _KeycloakProvider, conn: Connection) -> KeycloakAdmin:
            return KeycloakAdmin(conn, retry=self.retry, sleep=recorded)

        monkeypatch.setattr(_KeycloakProvider, "connect", session)
        return recorded

    @pytest.mark.parametrize("kind", sorted(POSTS))
    def test_a_persistent_503_backs_off_exponentially(
        self, keycloak: KeycloakFake, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, kind: str
    ) -> None:
        provider_class, props, pattern = POSTS[kind]
        monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the top of each jitter range
        provider = provider_class(retry=RetryPolicy(attempts=5, base_delay=0.1, max_delay=0.5))
        assert keycloak.server is not None
        keycloak.server.inject("POST", pattern, status=503, times=100)
        checked = provider.check({}, props(keycloak)).inputs
        with pytest.raises(KeycloakApiError, match="could not create"):
            provider.create(checked)
        assert keycloak.server.count("POST", pattern) == 5
        assert sleeps == [0.1, 0.2, 0.4, 0.5]  # base * 2^(n-1), capped by max_delay

    @pytest.mark.parametrize("kind", sorted(POSTS))
    def test_retry_after_is_honoured(self, keycloak: KeycloakFake, sleeps: Sleeps, kind: str) -> None:
        provider_class, props, pattern = POSTS[kind]
        provider = provider_class(retry=RetryPolicy(attempts=3, base_delay=0.01))
        assert keycloak.server is not None
        keycloak.server.inject("POST", pattern, status=503, headers={"Retry-After": "7"}, times=100)
        with pytest.raises(KeycloakApiError, match="could not create"):
            provider.create(provider.check({}, props(keycloak)).inputs)
        assert keycloak.server.count("POST", pattern) == 3
        assert sleeps == [7.0, 7.0]

    def test_through_the_engines_host_the_posts_are_spaced(self, keycloak: KeycloakFake, dynamic_host: Host) -> None:
        host = dynamic_host(
            KeycloakClientProvider(retry=RetryPolicy(attempts=5, base_delay=0.01), ready_timeout=5),
            resource_type="pulumi-python:dynamic/keycloak:Client",
        )
        assert keycloak.server is not None
        keycloak.server.inject("POST", CLIENTS, status=503, headers={"Retry-After": "0.3"}, times=100)
        started = time.monotonic()
        with pytest.raises(ProviderCallError, match="could not create client 'billing'"):
            host.up("billing", client_props(keycloak))
        assert keycloak.server.count("POST", CLIENTS) == 5
        assert time.monotonic() - started >= 4 * 0.3


# --- SPIRE: an entry read answered about another entry -------------------------------------------------


def test_a_spire_entry_read_answered_about_another_entry_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = GrpcConnection(
        transport="grpc", socket_path="/tmp/none.sock", trust_domain="example.org", project="p", stack="s"
    )
    client = GrpcEntryClient(conn)
    try:
        other = types_pb2.Entry(id="someone-elses", spiffe_id=types_pb2.SPIFFEID(trust_domain="example.org", path="/x"))
        monkeypatch.setattr(client, "_call", lambda method, request: other)
        with pytest.raises(SpireError, match="answered with entry 'someone-elses'"):
            client.get("pulumi.p.s.0123")
    finally:
        client.close()
