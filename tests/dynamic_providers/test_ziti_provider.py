"""ZitiCertificateAuthority through the engine's own provider host (`python -m pulumi.dynamic`)
against the loopback controller: create + verify, no-op diff, PATCH of roles, certificate change
-> replace (delete first), delete, refresh, session expiry, duplicates with and without our
ownership tags, and a verification failure reported with the controller's code."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography import x509

from dynamic_providers.ziti.models import sha1_fingerprint
from dynamic_providers.ziti.provider import CertificateAuthorityProvider
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, BodyRecorder, ZitiController, make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError

TYPE = "pulumi-python:dynamic/ziti:CertificateAuthority"
CAS = f"{API}/cas"
CA = f"{API}/cas/{{id}}"
VERIFY = f"{API}/cas/{{id}}/verify"
JWT = f"{API}/cas/{{id}}/jwt"
AUTH = f"{API}/authenticate"
SPIFFE = {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"}


@pytest.fixture
def ziti(loopback) -> tuple[ZitiController, Any]:
    return fake_ziti.start(loopback)


@pytest.fixture
def host(dynamic_host) -> DynamicProviderHost:
    return dynamic_host(CertificateAuthorityProvider(), resource_type=TYPE)


def ca_props(fake: ZitiController, srv: Any, cert: tuple[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    cert_pem, key_pem = cert or make_ca()
    return {
        "name": "spire",
        "cert_pem": cert_pem,
        "ca_key_pem": key_pem,
        "is_auth_enabled": True,
        "identity_roles": ["spire"],
        "external_id_claim": SPIFFE,
        "connection": fake_ziti.connection(srv, fake),
        "owner": fake_ziti.owner("ziti-trust-spire-ca"),
        **extra,
    }


def the_cas(fake: ZitiController) -> list[dict[str, Any]]:
    return fake.all("cas")


class TestCreateAndVerify:
    def test_registers_the_ca_and_verifies_it_with_its_key(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        [ca] = the_cas(fake)
        assert ca["id"] == state.id and ca["isVerified"] is True
        assert ca["externalIdClaim"] == {
            "location": "SAN_URI",
            "matcher": "SCHEME",
            "matcherCriteria": "spiffe",
            "parser": "NONE",
            "parserCriteria": "",
            "index": 0,
        }
        assert ca["tags"] == {"pulumi.stack": "identity-platform/test", "pulumi.name": "ziti-trust-spire-ca"}
        cert = x509.load_pem_x509_certificate(props["cert_pem"].encode())
        assert state.outputs["fingerprint"] == sha1_fingerprint(cert) == ca["fingerprint"]
        assert state.outputs["is_verified"] is True
        assert state.outputs["enrollment_jwt"].count(".") == 2
        assert "ca_key_pem" not in state.outputs
        assert props["ca_key_pem"] not in repr(fake.entities)  # the key never leaves the provider
        # The floor for create + verify (POST, GET the token, POST verify: its 200 is the
        # verification), one login, one GET of the CA enrollment JWT output.
        assert srv.counts() == {
            f"POST {AUTH}": 1,
            f"POST {CAS}": 1,
            f"GET {CA}": 1,
            f"POST {VERIFY}": 1,
            f"GET {JWT}": 1,
        }

    def test_an_rsa_ca_verifies_too(self, ziti, host) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        fake, srv = ziti
        state = host.up("ca", ca_props(fake, srv, make_ca(key=rsa.generate_private_key(65537, 2048))))
        assert state.outputs["is_verified"] is True

    def test_verification_failure_reports_the_controller_code_and_leaves_nothing(self, ziti, host) -> None:
        fake, srv = ziti
        fake.clock_skew = __import__("datetime").timedelta(hours=2)  # controller clock far ahead
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(fake, srv))
        assert "CERTIFICATE_FAILED_VALIDATION" in err.value.details
        assert "the unverified CA was deleted again" in err.value.details
        assert the_cas(fake) == []


class TestChanges:
    def test_same_inputs_are_no_change_and_cost_no_request(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        srv.reset_log()
        checked, diff = host.preview_change("ca", state, props)
        assert checked.failures == [] and diff.changes == "DIFF_NONE"
        reordered = {**props, "identity_roles": ["spire"], "external_id_claim": {**SPIFFE, "index": 0}}
        assert host.preview_change("ca", state, reordered)[1].changes == "DIFF_NONE"
        assert srv.counts() == {}

    def test_roles_change_is_one_patch_of_the_roles(self, ziti, host) -> None:
        fake, srv = ziti
        recorder = BodyRecorder()
        fake.on_request = recorder
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        new_state, diff = host.change("ca", state, {**props, "identity_roles": ["spire", "workloads"]})
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        assert new_state.id == state.id
        assert recorder.bodies("PATCH") == [{"identityRoles": ["spire", "workloads"]}]
        assert the_cas(fake)[0]["identityRoles"] == ["spire", "workloads"]
        assert new_state.outputs["identity_roles"] == ["spire", "workloads"]
        assert new_state.outputs["is_verified"] is True

    def test_new_certificate_replaces_the_ca_deleting_first(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        srv.reset_log()
        new_props = ca_props(fake, srv, make_ca("rotated root"))
        new_state, diff = host.change("ca", state, new_props)
        assert diff.replaces == ["cert_pem"] and diff.delete_before_replace
        [ca] = the_cas(fake)
        assert ca["id"] == new_state.id != state.id and ca["isVerified"] is True
        assert ca["certPem"] == new_props["cert_pem"]
        order = [f"{r.method} {r.pattern}" for r in srv.log if r.method in ("DELETE", "POST") and r.pattern != AUTH]
        assert order == [f"DELETE {CA}", f"POST {CAS}", f"POST {VERIFY}"]

    def test_removing_the_claim_replaces_because_patch_cannot_clear_it(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        _, diff = host.preview_change("ca", state, {k: v for k, v in props.items() if k != "external_id_claim"})
        assert diff.replaces == ["external_id_claim"]

    def test_password_rotation_is_an_update_without_patch(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        fake.password = "rotated-password"
        srv.reset_log()
        new_conn = {**props["connection"], "password": "rotated-password"}
        new_state, diff = host.change("ca", state, {**props, "connection": new_conn})
        assert diff.changes == "DIFF_SOME" and diff.replaces == []
        assert srv.count("PATCH") == 0
        assert new_state.outputs["connection"]["password"] == "rotated-password"
        host.delete("ca", new_state.id, new_state.outputs)  # delete reaches the server with the new password
        assert the_cas(fake) == []


class TestReadAndDelete:
    def test_refresh_sees_drift_and_the_next_preview_shows_it(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        fake.entities["cas"][state.id]["identityRoles"] = ["changed-by-hand"]
        refreshed = host.refresh("ca", state)
        assert refreshed is not None and refreshed.outputs["identity_roles"] == ["changed-by-hand"]
        assert refreshed.inputs["identity_roles"] == ["changed-by-hand"]
        assert host.preview_change("ca", refreshed, props)[1].changes == "DIFF_SOME"

    def test_refresh_of_a_deleted_ca_reports_it_gone(self, ziti, host) -> None:
        fake, srv = ziti
        state = host.up("ca", ca_props(fake, srv))
        del fake.entities["cas"][state.id]
        assert host.refresh("ca", state) is None

    def test_delete_and_delete_of_something_already_gone(self, ziti, host) -> None:
        fake, srv = ziti
        state = host.up("ca", ca_props(fake, srv))
        host.delete("ca", state.id, state.outputs)
        assert the_cas(fake) == []
        host.delete("ca", state.id, state.outputs)  # 404 counts as done
        # The ownership check's GET finds nothing (404): no second DELETE is sent.
        assert srv.count("DELETE", CA) == 1 and [r.status for r in srv.log if r.pattern == CA][-1] == 404


class TestSessionsAndOwnership:
    def test_session_expiring_in_the_middle_of_create(self, ziti, host) -> None:
        fake, srv = ziti
        fake.session_max_requests = 2  # expires after POST /cas and the first GET
        state = host.up("ca", ca_props(fake, srv))
        assert state.outputs["is_verified"] is True
        assert fake.authentications >= 2
        assert len(the_cas(fake)) == 1 and srv.count("POST", CAS) == 1

    def test_our_ca_left_by_a_crash_before_the_state_write_is_adopted(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        first = host.up("ca", props)
        # The engine never recorded `first` (crash): the next `pulumi up` creates again.
        fake.entities["cas"][first.id]["isVerified"] = False  # and it died before verifying
        fake.entities["cas"][first.id]["identityRoles"] = []
        again = host.up("ca", props)
        assert again.id == first.id
        [ca] = the_cas(fake)
        assert ca["isVerified"] is True and ca["identityRoles"] == ["spire"]

    def test_same_name_without_our_tags_is_refused_with_a_clear_message(self, ziti, host) -> None:
        fake, srv = ziti
        other_cert, _ = make_ca("hand made")
        theirs = fake.put_entity(
            "cas", {"name": "spire", "certPem": other_cert, "fingerprint": "x", "isVerified": True, "tags": {}}
        )
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(fake, srv))
        assert f"'spire' (id {theirs}) already exists and is not owned by this resource" in err.value.details
        assert "created outside this program" in err.value.details
        assert [c["id"] for c in the_cas(fake)] == [theirs]
        assert srv.count("PATCH") == 0 and srv.count("DELETE") == 0

    def test_same_name_owned_by_another_stack_names_that_stack(self, ziti, host) -> None:
        fake, srv = ziti
        fake.put_entity(
            "cas",
            {
                "name": "spire",
                "certPem": "x",
                "fingerprint": "y",
                "tags": {"pulumi.stack": "identity-platform/prod", "pulumi.name": "ziti-trust-spire-ca"},
            },
        )
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(fake, srv))
        assert "stack 'identity-platform/prod'" in err.value.details

    def test_the_same_certificate_under_our_tags_and_another_name_is_adopted_and_renamed(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        first = host.up("ca", props)
        renamed = {**props, "name": "spire-renamed"}
        again = host.up("ca", renamed)  # lost state + rename: duplicate fingerprint, ours
        assert again.id == first.id and the_cas(fake)[0]["name"] == "spire-renamed"


class TestOwnershipWithoutTheResourceClass:
    def test_without_an_owner_input_the_hosts_project_and_stack_tag_the_entity(self, ziti, host) -> None:
        fake, srv = ziti
        props = {k: v for k, v in ca_props(fake, srv).items() if k != "owner"}
        state = host.up("ca", props)
        assert the_cas(fake)[0]["tags"] == {"pulumi.stack": "identity-platform/test"}
        again = host.up("ca", props)  # lost state: adopted by the stack tag
        assert again.id == state.id and len(the_cas(fake)) == 1

    def test_an_entity_of_the_same_stack_but_another_resource_is_not_adopted(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        host.up("ca", {**props, "owner": fake_ziti.owner("another-resource")})
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", props)
        assert "resource 'another-resource'" in err.value.details
        assert len(the_cas(fake)) == 1


class TestProviderObject:
    def test_serialized_provider_is_a_small_module_reference(self, host) -> None:
        assert host.serialized_size < 400, host.serialized_size

    def test_the_state_holds_no_credential_outside_the_connection_output(self, ziti, host) -> None:
        fake, srv = ziti
        props = ca_props(fake, srv)
        state = host.up("ca", props)
        assert b"admin-password" not in base64.b64decode(host.blob)
        outside = {k: v for k, v in state.outputs.items() if k != "connection"}
        assert "admin-password" not in repr(outside) and props["ca_key_pem"] not in repr(state.outputs)
