"""Faults between the provider host and the controller never leave duplicates, orphans or lost
entities: 5xx, 429 with Retry-After, connection resets before and after the server acted (a lost
answer after a server-side create), and answers slower than the client timeout."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dynamic_providers.ziti.provider import CertificateAuthorityProvider, IdentityProvider
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, ZitiController, make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError

CAS = f"{API}/cas"
CA = f"{API}/cas/{{id}}"
VERIFY = f"{API}/cas/{{id}}/verify"
IDENTITIES = f"{API}/identities"
IDENTITY = f"{API}/identities/{{id}}"


@pytest.fixture
def ziti(loopback) -> tuple[ZitiController, Any]:
    return fake_ziti.start(loopback)


@pytest.fixture
def ca_host(dynamic_host) -> DynamicProviderHost:
    return dynamic_host(CertificateAuthorityProvider(), resource_type="pulumi-python:dynamic/ziti:CertificateAuthority")


@pytest.fixture
def id_host(dynamic_host) -> DynamicProviderHost:
    return dynamic_host(IdentityProvider(), resource_type="pulumi-python:dynamic/ziti:Identity")


def ca_props(fake: ZitiController, srv: Any, **conn: Any) -> dict[str, Any]:
    cert, key = make_ca()
    return {
        "name": "spire",
        "cert_pem": cert,
        "ca_key_pem": key,
        "identity_roles": ["spire"],
        "external_id_claim": {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"},
        "connection": fake_ziti.connection(srv, fake, **conn),
        "owner": fake_ziti.owner("ca"),
    }


def id_props(fake: ZitiController, srv: Any, **conn: Any) -> dict[str, Any]:
    return {
        "name": "payments-api",
        "external_id": "spiffe://prod.example/ns/payments/sa/api",
        "role_attributes": ["payments"],
        "connection": fake_ziti.connection(srv, fake, **conn),
        "owner": fake_ziti.owner("identity-payments-api"),
    }


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)


class TestCreateFaults:
    def test_lost_answer_after_the_server_created_the_ca_is_adopted_not_duplicated(self, ziti, ca_host) -> None:
        fake, srv = ziti
        srv.inject("POST", CAS, reset_after=True)
        state = ca_host.up("ca", ca_props(fake, srv))
        [ca] = fake.all("cas")
        assert ca["id"] == state.id and ca["isVerified"] is True
        assert srv.count("POST", CAS) == 1  # the lookup found it: no second POST

    def test_reset_before_the_server_acted_creates_once_after_a_lookup(self, ziti, id_host) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, reset=True)
        state = id_host.up("w", id_props(fake, srv))
        assert [i["id"] for i in fake.all("identities")] == [state.id]
        assert srv.count("POST", IDENTITIES) == 2
        assert srv.count("GET", IDENTITIES) == 1  # the lookup by name between the two POSTs

    def test_429_on_create_waits_retry_after_then_looks_up_and_posts(self, ziti, id_host) -> None:
        fake, srv = ziti
        srv.inject(
            "POST", IDENTITIES, status=429, headers={"Retry-After": "1"}, body={"error": {"code": "RATE_LIMITED"}}
        )
        started = time.monotonic()
        state = id_host.up("w", id_props(fake, srv))
        assert time.monotonic() - started >= 1.0  # Retry-After honoured (a bound, not a timing test)
        assert [i["id"] for i in fake.all("identities")] == [state.id]

    def test_503_on_create_then_success(self, ziti, ca_host) -> None:
        fake, srv = ziti
        srv.inject("POST", CAS, status=503, times=2)
        state = ca_host.up("ca", ca_props(fake, srv))
        assert [c["id"] for c in fake.all("cas")] == [state.id]
        assert srv.count("POST", CAS) == 3

    def test_create_slower_than_the_timeout_leaves_exactly_one_entity(self, ziti, id_host) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, delay=2.0)
        props = id_props(fake, srv, timeout=0.5)
        state = id_host.up("w", props)
        wait_for(lambda: srv.count("POST", IDENTITIES) == 2)  # the slow first POST finally ran
        assert [i["id"] for i in fake.all("identities")] == [state.id]
        assert srv.log[-1].status == 400  # ... and the unique name index refused it

    def test_persistent_5xx_fails_without_leaving_anything(self, ziti, id_host) -> None:
        fake, srv = ziti
        srv.inject("POST", IDENTITIES, status=500, times=100)
        with pytest.raises(ProviderCallError) as err:
            id_host.up("w", id_props(fake, srv))
        assert "HTTP 500" in err.value.details
        assert fake.all("identities") == []


class TestFaultsAroundVerification:
    def test_reset_after_verify_is_repeated_and_409_counts_as_verified(self, ziti, ca_host) -> None:
        fake, srv = ziti
        srv.inject("POST", VERIFY, reset_after=True)
        state = ca_host.up("ca", ca_props(fake, srv))
        assert state.outputs["is_verified"] is True
        assert [r.status for r in srv.log if r.pattern == VERIFY] == [None, 409]

    def test_5xx_on_reads_during_create_is_retried(self, ziti, ca_host) -> None:
        fake, srv = ziti
        srv.inject("GET", CA, status=502, times=2)
        state = ca_host.up("ca", ca_props(fake, srv))
        assert state.outputs["is_verified"] is True and len(fake.all("cas")) == 1


class TestRefreshFaults:
    def test_refresh_rides_out_transient_faults(self, ziti, id_host) -> None:
        fake, srv = ziti
        state = id_host.up("w", id_props(fake, srv))
        srv.inject("GET", IDENTITY, status=503)
        srv.inject("GET", IDENTITY, reset=True)
        refreshed = id_host.refresh("w", state)
        assert refreshed is not None and refreshed.id == state.id

    def test_refresh_never_reports_gone_on_an_error(self, ziti, id_host) -> None:
        fake, srv = ziti
        state = id_host.up("w", id_props(fake, srv))
        srv.inject("GET", IDENTITY, status=500, times=10)
        with pytest.raises(ProviderCallError):
            id_host.refresh("w", state)  # an error, not an empty id: the state keeps the identity


class TestUpdateAndDeleteFaults:
    def test_patch_answer_lost_is_repeated_safely(self, ziti, id_host) -> None:
        fake, srv = ziti
        props = id_props(fake, srv)
        state = id_host.up("w", props)
        srv.inject("PATCH", IDENTITY, reset_after=True)
        new_state, _ = id_host.change("w", state, {**props, "role_attributes": ["payments", "pci"]})
        assert fake.all("identities")[0]["roleAttributes"] == ["payments", "pci"]
        assert new_state.outputs["role_attributes"] == ["payments", "pci"]

    def test_delete_with_503_and_a_lost_answer_still_deletes(self, ziti, id_host) -> None:
        fake, srv = ziti
        state = id_host.up("w", id_props(fake, srv))
        srv.inject("DELETE", IDENTITY, status=503)
        srv.inject("DELETE", IDENTITY, reset_after=True)
        id_host.delete("w", state.id, state.outputs)
        assert fake.all("identities") == []
        assert [r.status for r in srv.log if r.method == "DELETE"] == [503, None, 404]

    def test_controller_down_fails_the_step_and_keeps_the_resource(self, ziti, id_host) -> None:
        fake, srv = ziti
        state = id_host.up("w", id_props(fake, srv))
        srv.inject("DELETE", IDENTITY, reset=True, times=100)
        with pytest.raises(ProviderCallError) as err:
            id_host.delete("w", state.id, state.outputs)
        assert "NO_RESPONSE" in err.value.details
        assert [i["id"] for i in fake.all("identities")] == [state.id]  # state keeps it: nothing is lost


class TestLostAnswerWithoutOwnership:
    """Driven without an `owner` input by a host with no PULUMI_PROJECT/PULUMI_STACK, nothing tags
    what a create makes: the provider notes that the name is free before it posts."""

    @pytest.fixture
    def bare_ca_host(self, dynamic_host) -> DynamicProviderHost:
        return dynamic_host(
            CertificateAuthorityProvider(), resource_type="pulumi-python:dynamic/ziti:CertificateAuthority", project=""
        )

    def test_the_entity_of_this_calls_lost_post_is_taken_not_refused(self, ziti, bare_ca_host) -> None:
        fake, srv = ziti
        srv.inject("POST", CAS, reset_after=True)
        props = {k: v for k, v in ca_props(fake, srv).items() if k != "owner"}
        state = bare_ca_host.up("ca", props)
        [ca] = fake.all("cas")
        assert ca["id"] == state.id and ca["isVerified"] is True and ca["tags"] == {}
        assert srv.count("POST", CAS) == 1

    def test_a_name_taken_before_the_post_is_still_refused(self, ziti, bare_ca_host) -> None:
        fake, srv = ziti
        props = {k: v for k, v in ca_props(fake, srv).items() if k != "owner"}
        theirs = fake.put_entity("cas", {"name": "spire", "certPem": "x", "fingerprint": "y", "isVerified": True})
        srv.inject("POST", CAS, reset_after=True)
        with pytest.raises(ProviderCallError) as err:
            bare_ca_host.up("ca", props)
        assert "carries no ownership, so it adopts nothing" in err.value.details
        assert [c["id"] for c in fake.all("cas")] == [theirs]
