"""Faults between the Ziti providers and the REAL controller: the fault proxy
(tests/harness/fault_proxy.py) ends TLS with its own throwaway CA (given to the provider as its
bundle), verifies the controller with the controller's CA, and resets, cuts after the controller
acted, answers 5xx/429 or stalls. The fake-based guarantees (tests/dynamic_providers/
test_ziti_faults.py), now against the controller's own answers: no duplicate, no orphan, nothing
lost, after at most one re-run of the step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from dynamic_providers.ziti.provider import CertificateAuthorityProvider, ExternalJwtSignerProvider, IdentityProvider
from tests.fakes.ziti import make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.harness.fault_proxy import http_proxy, with_one_rerun
from tests.harness.loopback import LoopbackServer
from tests.real._ziti import API, Admin, admin_client, connection, owner, unique, ziti_section

CAS = f"{API}/cas"
CA = f"{API}/cas/{{id}}"
VERIFY = f"{API}/cas/{{id}}/verify"
IDENTITIES = f"{API}/identities"
IDENTITY = f"{API}/identities/{{id}}"
SIGNERS = f"{API}/external-jwt-signers"
SIGNER = f"{API}/external-jwt-signers/{{id}}"
AUTH = f"{API}/authenticate"

ziti = pytest.fixture(scope="module")(ziti_section)
admin = pytest.fixture(scope="module")(admin_client)


@pytest.fixture
def proxy(ziti: dict[str, Any]) -> Iterator[LoopbackServer]:
    templates = [VERIFY, CA, CAS, IDENTITY, IDENTITIES, SIGNER, SIGNERS, AUTH]
    srv, app = http_proxy(ziti["url"], ca_pem=ziti["ca_pem"], templates=templates)
    yield srv
    srv.stop()
    app.close()


@pytest.fixture
def ca_host(dynamic_host: Any) -> DynamicProviderHost:
    h: DynamicProviderHost = dynamic_host(
        CertificateAuthorityProvider(), resource_type="pulumi-python:dynamic/ziti:CertificateAuthority"
    )
    return h


@pytest.fixture
def id_host(dynamic_host: Any) -> DynamicProviderHost:
    h: DynamicProviderHost = dynamic_host(IdentityProvider(), resource_type="pulumi-python:dynamic/ziti:Identity")
    return h


@pytest.fixture
def signer_host(dynamic_host: Any) -> DynamicProviderHost:
    h: DynamicProviderHost = dynamic_host(
        ExternalJwtSignerProvider(), resource_type="pulumi-python:dynamic/ziti:ExternalJwtSigner"
    )
    return h


@pytest.fixture
def made(admin: Admin) -> Iterator[list[tuple[str, str]]]:
    """(collection, name) of everything a test made, removed afterwards whatever the outcome."""
    names: list[tuple[str, str]] = []
    yield names
    for collection, name in names:
        for entity in admin.find(collection, name):
            admin.delete(collection, entity["id"])


def via(ziti: dict[str, Any], proxy: LoopbackServer, **extra: Any) -> dict[str, Any]:
    return connection(ziti, url=proxy.url, ca_bundle_pem=proxy.ca_pem, **extra)


def ca_props(ziti: dict[str, Any], proxy: LoopbackServer, made: list[tuple[str, str]], **conn: Any) -> dict[str, Any]:
    name = unique("spire")
    made.append(("cas", name))
    cert, key = make_ca(name)
    return {
        "name": name,
        "cert_pem": cert,
        "ca_key_pem": key,
        "identity_roles": ["spire"],
        "external_id_claim": {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"},
        "connection": via(ziti, proxy, **conn),
        "owner": owner(f"res-{name}"),
    }


def id_props(ziti: dict[str, Any], proxy: LoopbackServer, made: list[tuple[str, str]], **conn: Any) -> dict[str, Any]:
    name = unique("payments-api")
    made.append(("identities", name))
    return {
        "name": name,
        "external_id": f"spiffe://faults.test/ns/payments/sa/{name}",
        "role_attributes": ["payments"],
        "connection": via(ziti, proxy, **conn),
        "owner": owner(f"identity-{name}"),
    }



def signer_props(
    ziti: dict[str, Any], proxy: LoopbackServer, made: list[tuple[str, str]], **conn: Any
) -> dict[str, Any]:
    name = unique("keycloak")
    made.append(("external-jwt-signers", name))
    issuer = f"https://{name}.test/realms/platform"
    return {
        "name": name,
        "issuer": issuer,
        "audience": "openziti",
        "jwks_endpoint": f"{issuer}/protocol/openid-connect/certs",
        "connection": via(ziti, proxy, **conn),
        "owner": owner(f"signer-{name}"),
    }


class TestSignerCreateFaults:
    """The controller (1.7.2) drops a signer's tags on create: the provider posts it under a name
    only that resource gives, then renames and tags it; a lost answer or a crash in between leaves
    a signer the next attempt still knows as its own."""

    def test_a_lost_answer_after_the_controller_created_the_signer_is_taken(
        self, ziti, admin, proxy, made, signer_host
    ):
        props = signer_props(ziti, proxy, made)
        proxy.inject("POST", SIGNERS, reset_after=True)
        state = with_one_rerun(lambda: signer_host.up("s", props))
        [signer] = admin.find("external-jwt-signers", props["issuer"], "issuer")
        assert signer["id"] == state.id and signer["name"] == props["name"]
        assert signer["tags"] == {"pulumi.stack": props["owner"]["stack"], "pulumi.name": props["owner"]["name"]}
        assert proxy.count("POST", SIGNERS) == 1

    def test_a_signer_left_before_its_rename_is_taken_by_the_next_up(self, ziti, admin, proxy, made, signer_host):
        props = signer_props(ziti, proxy, made)
        refused = proxy.inject("PATCH", SIGNER, status=500, times=100, body={"error": {"code": "UNHANDLED"}})
        with pytest.raises(ProviderCallError, match="500"):
            signer_host.up("s", props)
        [left] = admin.find("external-jwt-signers", props["issuer"], "issuer")
        stack, resource = props["owner"]["stack"], props["owner"]["name"]
        assert left["name"] == f"{props['name']} (pulumi: being created by {stack} {resource})"
        assert not left["tags"]  # as the controller keeps a create's tags: none
        made.append(("external-jwt-signers", left["name"]))
        refused.times = 0
        state = signer_host.up("s", {**props, "audience": "ziti-users"})
        [signer] = admin.find("external-jwt-signers", props["issuer"], "issuer")
        assert signer["id"] == left["id"] == state.id
        assert signer["name"] == props["name"] and signer["audience"] == "ziti-users"
        assert signer["tags"] == {"pulumi.stack": stack, "pulumi.name": resource}

    def test_our_signer_under_its_name_with_a_new_issuer_is_adopted_not_doubled(
        self, ziti, admin, proxy, made, signer_host
    ):
        """State lost after the rename (a crash before the state write), and the issuer changed
        since: the POST under the pending name meets no unique value, the rename does; the signer
        it made is deleted again and ours adopted with the new issuer."""
        props = signer_props(ziti, proxy, made)
        first = signer_host.up("s", props)
        moved = f"https://{props['name']}.test/realms/moved"
        state = signer_host.up("s", {**props, "issuer": moved, "jwks_endpoint": f"{moved}/certs"})
        [signer] = admin.find("external-jwt-signers", props["name"])
        assert signer["id"] == first.id == state.id and signer["issuer"] == moved
        assert admin.find("external-jwt-signers", props["issuer"], "issuer") == []
        assert proxy.count("DELETE", SIGNER) == 1

    def test_a_create_slower_than_the_timeout_leaves_exactly_one_signer(self, ziti, admin, proxy, made, signer_host):
        """The stalled first POST reaches the controller after the second was renamed: the pending
        name is free again, and the issuer, unique on the controller, refuses it."""
        props = signer_props(ziti, proxy, made, timeout=1)
        proxy.inject("POST", SIGNERS, delay=3)
        state = with_one_rerun(lambda: signer_host.up("s", props))
        time.sleep(3)
        assert [s["id"] for s in admin.find("external-jwt-signers", props["issuer"], "issuer")] == [state.id]


class TestCreateFaults:
    def test_a_lost_answer_after_the_controller_created_the_ca_is_adopted(self, ziti, admin, proxy, made, ca_host):
        props = ca_props(ziti, proxy, made)
        proxy.inject("POST", CAS, reset_after=True)
        state = with_one_rerun(lambda: ca_host.up("ca", props))
        [ca] = admin.find("cas", props["name"])
        assert ca["id"] == state.id and ca["isVerified"] is True
        assert proxy.count("POST", CAS) == 1  # found by its ownership tags, not posted again

    def test_a_reset_before_the_controller_saw_it_creates_once(self, ziti, admin, proxy, made, id_host):
        props = id_props(ziti, proxy, made)
        proxy.inject("POST", IDENTITIES, reset=True)
        state = with_one_rerun(lambda: id_host.up("w", props))
        assert [i["id"] for i in admin.find("identities", props["name"])] == [state.id]
        assert proxy.count("POST", IDENTITIES) == 2

    def test_429_and_503_are_ridden_out(self, ziti, admin, proxy, made, id_host):
        props = id_props(ziti, proxy, made)
        proxy.inject("POST", IDENTITIES, status=503)
        proxy.inject("POST", IDENTITIES, status=429, headers={"Retry-After": "1"},
                     body={"error": {"code": "RATE_LIMITED"}})
        started = time.monotonic()
        state = id_host.up("w", props)
        assert time.monotonic() - started >= 1.0
        assert [i["id"] for i in admin.find("identities", props["name"])] == [state.id]

    def test_a_create_slower_than_the_timeout_leaves_exactly_one_identity(self, ziti, admin, proxy, made, id_host):
        props = id_props(ziti, proxy, made, timeout=1)
        proxy.inject("POST", IDENTITIES, delay=3)
        state = with_one_rerun(lambda: id_host.up("w", props))
        time.sleep(3)  # the stalled first POST reaches the controller late; its unique name refuses it
        assert [i["id"] for i in admin.find("identities", props["name"])] == [state.id]

    def test_persistent_5xx_fails_without_leaving_anything(self, ziti, admin, proxy, made, id_host):
        props = id_props(ziti, proxy, made)
        proxy.inject("POST", IDENTITIES, status=500, times=100)
        with pytest.raises(ProviderCallError, match="500"):
            id_host.up("w", props)
        assert admin.find("identities", props["name"]) == []


class TestVerificationFaults:
    def test_a_lost_verify_answer_still_ends_verified(self, ziti, admin, proxy, made, ca_host):
        props = ca_props(ziti, proxy, made)
        proxy.inject("POST", VERIFY, reset_after=True)
        state = with_one_rerun(lambda: ca_host.up("ca", props))
        [ca] = admin.find("cas", props["name"])
        assert ca["id"] == state.id and ca["isVerified"] is True and state.outputs["is_verified"] is True


class TestReadUpdateDeleteFaults:
    def test_refresh_rides_out_transient_faults(self, ziti, proxy, made, id_host):
        state = id_host.up("w", id_props(ziti, proxy, made))
        proxy.inject("GET", IDENTITY, status=503)
        proxy.inject("GET", IDENTITY, reset=True)
        refreshed = id_host.refresh("w", state)
        assert refreshed is not None and refreshed.id == state.id

    def test_refresh_never_reports_gone_on_an_error(self, ziti, admin, proxy, made, id_host):
        state = id_host.up("w", id_props(ziti, proxy, made))
        proxy.inject("GET", IDENTITY, status=500, times=10)
        with pytest.raises(ProviderCallError):
            id_host.refresh("w", state)
        assert admin.get(f"/identities/{state.id}") is not None

    def test_a_lost_patch_answer_is_applied_once(self, ziti, admin, proxy, made, id_host):
        props = id_props(ziti, proxy, made)
        state = id_host.up("w", props)
        proxy.inject("PATCH", IDENTITY, reset_after=True)
        new = {**props, "role_attributes": ["payments", "pci"]}
        with_one_rerun(lambda: id_host.change("w", state, new))
        identity = admin.get(f"/identities/{state.id}")
        assert identity is not None and sorted(identity["roleAttributes"]) == ["payments", "pci"]

    def test_a_delete_with_503_and_a_lost_answer_still_deletes(self, ziti, admin, proxy, made, id_host):
        state = id_host.up("w", id_props(ziti, proxy, made))
        proxy.inject("DELETE", IDENTITY, status=503)
        proxy.inject("DELETE", IDENTITY, reset_after=True)
        with_one_rerun(lambda: id_host.delete("w", state.id, state.outputs))
        assert admin.get(f"/identities/{state.id}") is None

    def test_a_controller_that_stays_unreachable_fails_the_step_and_keeps_the_resource(
        self, ziti, admin, proxy, made, id_host
    ):
        state = id_host.up("w", id_props(ziti, proxy, made))
        proxy.inject("DELETE", IDENTITY, reset=True, times=100)
        with pytest.raises(ProviderCallError):
            id_host.delete("w", state.id, state.outputs)
        assert admin.get(f"/identities/{state.id}") is not None  # the state keeps it: nothing is lost
