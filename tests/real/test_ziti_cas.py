"""ZitiCertificateAuthority through the engine's provider host against the REAL controller (the
pinned `ziti`, bootstrapped as the stack bootstraps it): create + automatic verification by the
Go verifier, no flap after the controller's defaults, PATCH of every managed field, certificate
change -> delete-first replacement, refresh and drift, delete and delete of something gone,
ownership (adoption only of what carries our mark), and verification failures."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509

from dynamic_providers.ziti.models import sha1_fingerprint
from dynamic_providers.ziti.provider import CertificateAuthorityProvider
from tests.fakes.ziti import make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.real._ziti import Admin, admin_client, connection, owner, unique, ziti_section

TYPE = "pulumi-python:dynamic/ziti:CertificateAuthority"
SPIFFE = {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"}


ziti = pytest.fixture(scope="module")(ziti_section)
admin = pytest.fixture(scope="module")(admin_client)


@pytest.fixture
def host(dynamic_host: Any) -> DynamicProviderHost:
    h: DynamicProviderHost = dynamic_host(CertificateAuthorityProvider(), resource_type=TYPE)
    return h


@pytest.fixture
def cleanup(admin: Admin) -> Any:
    ids: list[str] = []
    yield ids
    for i in ids:
        admin.delete("cas", i)


def ca_props(section: dict[str, Any], name: str, cert: tuple[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    cert_pem, key_pem = cert or make_ca(name)
    return {
        "name": name,
        "cert_pem": cert_pem,
        "ca_key_pem": key_pem,
        "is_auth_enabled": True,
        "identity_roles": ["spire"],
        "external_id_claim": SPIFFE,
        "connection": connection(section),
        "owner": owner(f"res-{name}"),
        **extra,
    }


class TestCreateAndVerify:
    def test_the_real_controller_verifies_our_certificate(self, ziti, admin, host, cleanup) -> None:
        name = unique("spire")
        props = ca_props(ziti, name)
        state = host.up("ca", props)
        cleanup.append(state.id)
        ca = admin.get(f"/cas/{state.id}")
        assert ca is not None and ca["isVerified"] is True and ca["name"] == name
        assert ca["externalIdClaim"] == {"location": "SAN_URI", "matcher": "SCHEME", "matcherCriteria": "spiffe",
                                         "parser": "NONE", "parserCriteria": "", "index": 0}
        assert ca["tags"] == {"pulumi.stack": "identity-platform/test", "pulumi.name": f"res-{name}"}
        cert = x509.load_pem_x509_certificate(props["cert_pem"].encode())
        assert state.outputs["fingerprint"] == sha1_fingerprint(cert) == ca["fingerprint"]
        assert state.outputs["is_verified"] is True
        assert state.outputs["enrollment_jwt"].count(".") == 2
        assert "ca_key_pem" not in state.outputs

    def test_an_rsa_ca_verifies_too(self, ziti, host, cleanup) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        name = unique("rsa")
        state = host.up("ca", ca_props(ziti, name, make_ca(name, key=rsa.generate_private_key(65537, 2048))))
        cleanup.append(state.id)
        assert state.outputs["is_verified"] is True

    def test_a_certificate_that_is_not_a_ca_is_refused_by_the_controller(self, admin) -> None:
        cert_pem, _ = make_ca(unique("leaf"), is_ca=False)
        r = admin.request("POST", "/cas", json={
            "name": unique("leaf"), "certPem": cert_pem, "isAuthEnabled": True, "isAutoCaEnrollmentEnabled": False,
            "isOttCaEnrollmentEnabled": False, "identityRoles": []})
        assert r.status_code >= 400, r.text  # check() refuses it earlier; here is what the controller says
        print(f"real controller, non-CA certificate: {r.status_code} {r.json()['error']['code']}")


class TestChanges:
    def test_same_inputs_are_no_change_after_the_controllers_defaults(self, ziti, host, cleanup) -> None:
        props = ca_props(ziti, unique("nodiff"))
        state = host.up("ca", props)
        cleanup.append(state.id)
        refreshed = host.refresh("ca", state)
        assert refreshed is not None
        assert host.preview_change("ca", refreshed, props)[1].changes == "DIFF_NONE"

    def test_every_managed_field_is_patched_and_read_back(self, ziti, admin, host, cleanup) -> None:
        name = unique("patch")
        props = ca_props(ziti, name)
        state = host.up("ca", props)
        cleanup.append(state.id)
        changed = {
            **props,
            "name": name + "-renamed",
            "is_auth_enabled": False,
            "is_auto_ca_enrollment_enabled": True,
            "is_ott_ca_enrollment_enabled": True,
            "identity_roles": ["spire", "workloads"],
            "identity_name_format": "[caName]-[commonName]-x",
            "external_id_claim": {"location": "SAN_URI", "matcher": "PREFIX", "matcher_criteria": "spiffe://a/",
                                  "parser": "SPLIT", "parser_criteria": "/", "index": 1},
            "tags": {"team": "platform"},
        }
        new_state, diff = host.change("ca", state, changed)
        assert (diff.changes, diff.replaces, new_state.id) == ("DIFF_SOME", [], state.id)
        ca = admin.get(f"/cas/{state.id}")
        assert ca is not None
        assert (ca["name"], ca["isAuthEnabled"], ca["isAutoCaEnrollmentEnabled"], ca["isOttCaEnrollmentEnabled"]) == (
            name + "-renamed", False, True, True)
        assert sorted(ca["identityRoles"]) == ["spire", "workloads"]
        assert ca["identityNameFormat"] == "[caName]-[commonName]-x"
        assert ca["externalIdClaim"] == {"location": "SAN_URI", "matcher": "PREFIX", "matcherCriteria": "spiffe://a/",
                                         "parser": "SPLIT", "parserCriteria": "/", "index": 1}
        assert ca["tags"]["team"] == "platform" and ca["tags"]["pulumi.name"] == f"res-{name}"
        assert ca["isVerified"] is True
        refreshed = host.refresh("ca", new_state)
        assert refreshed is not None
        assert host.preview_change("ca", refreshed, changed)[1].changes == "DIFF_NONE"  # no flap

    def test_new_certificate_replaces_the_ca_deleting_first(self, ziti, admin, host, cleanup) -> None:
        name = unique("rotate")
        props = ca_props(ziti, name)
        state = host.up("ca", props)
        new_props = ca_props(ziti, name, make_ca("rotated root"))
        new_state, diff = host.change("ca", state, new_props)
        cleanup.append(new_state.id)
        assert diff.replaces == ["cert_pem"] and diff.delete_before_replace
        assert admin.get(f"/cas/{state.id}") is None
        ca = admin.get(f"/cas/{new_state.id}")
        assert ca is not None and ca["isVerified"] is True and ca["certPem"].strip() == new_props["cert_pem"].strip()

    def test_password_rotation_is_an_update_and_delete_uses_the_new_password(self, ziti, admin, host) -> None:
        props = ca_props(ziti, unique("pwrot"))
        state = host.up("ca", props)
        # The connection changes (as after a rotation) but nothing on the CA: an update with no PATCH.
        new_conn = {**props["connection"], "timeout": 29}
        new_state, diff = host.change("ca", state, {**props, "connection": new_conn})
        assert diff.changes == "DIFF_SOME" and diff.replaces == []
        host.delete("ca", new_state.id, new_state.outputs)
        assert admin.get(f"/cas/{state.id}") is None


class TestReadAndDelete:
    def test_refresh_sees_drift_and_the_next_preview_shows_it(self, ziti, admin, host, cleanup) -> None:
        props = ca_props(ziti, unique("drift"))
        state = host.up("ca", props)
        cleanup.append(state.id)
        admin.patch("cas", state.id, {"identityRoles": ["changed-by-hand"]})
        refreshed = host.refresh("ca", state)
        assert refreshed is not None and refreshed.outputs["identity_roles"] == ["changed-by-hand"]
        assert host.preview_change("ca", refreshed, props)[1].changes == "DIFF_SOME"

    def test_refresh_of_a_deleted_ca_reports_it_gone(self, ziti, admin, host) -> None:
        state = host.up("ca", ca_props(ziti, unique("gone")))
        assert admin.delete("cas", state.id) == 200
        assert host.refresh("ca", state) is None

    def test_delete_and_delete_of_something_already_gone(self, ziti, admin, host) -> None:
        state = host.up("ca", ca_props(ziti, unique("del")))
        host.delete("ca", state.id, state.outputs)
        assert admin.get(f"/cas/{state.id}") is None
        host.delete("ca", state.id, state.outputs)  # the real 404 counts as done


class TestOwnership:
    def test_our_ca_left_by_a_crash_before_the_state_write_is_adopted(self, ziti, admin, host, cleanup) -> None:
        props = ca_props(ziti, unique("crash"))
        first = host.up("ca", props)
        cleanup.append(first.id)
        admin.patch("cas", first.id, {"identityRoles": []})
        again = host.up("ca", props)  # the engine never recorded `first`
        assert again.id == first.id
        ca = admin.get(f"/cas/{first.id}")
        assert ca is not None and ca["isVerified"] is True and ca["identityRoles"] == ["spire"]

    def test_an_unverified_ca_of_ours_is_adopted_and_verified(self, ziti, admin, host, cleanup) -> None:
        name = unique("unverified")
        props = ca_props(ziti, name)
        theirs = admin.create("cas", {
            "name": name, "certPem": props["cert_pem"], "isAuthEnabled": True, "isAutoCaEnrollmentEnabled": False,
            "isOttCaEnrollmentEnabled": False, "identityRoles": [],
            "tags": {"pulumi.stack": "identity-platform/test", "pulumi.name": f"res-{name}"}})
        cleanup.append(theirs)
        state = host.up("ca", props)  # a crash between POST and verify, then the next up
        assert state.id == theirs
        ca = admin.get(f"/cas/{theirs}")
        assert ca is not None and ca["isVerified"] is True

    def test_same_name_without_our_tags_is_refused(self, ziti, admin, host, cleanup) -> None:
        name = unique("foreign")
        other_cert, _ = make_ca("hand made")
        theirs = admin.create("cas", {
            "name": name, "certPem": other_cert, "isAuthEnabled": True, "isAutoCaEnrollmentEnabled": False,
            "isOttCaEnrollmentEnabled": False, "identityRoles": []})
        cleanup.append(theirs)
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(ziti, name))
        assert f"'{name}' (id {theirs}) already exists and is not owned by this resource" in err.value.details
        assert [c["id"] for c in admin.find("cas", name)] == [theirs]
        assert admin.get(f"/cas/{theirs}")["tags"] == {}  # type: ignore[index]

    def test_same_name_owned_by_another_stack_names_that_stack(self, ziti, admin, host, cleanup) -> None:
        name = unique("otherstack")
        other_cert, _ = make_ca("theirs")
        cleanup.append(admin.create("cas", {
            "name": name, "certPem": other_cert, "isAuthEnabled": True, "isAutoCaEnrollmentEnabled": False,
            "isOttCaEnrollmentEnabled": False, "identityRoles": [],
            "tags": {"pulumi.stack": "identity-platform/prod", "pulumi.name": f"res-{name}"}}))
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(ziti, name))
        assert "stack 'identity-platform/prod'" in err.value.details

    def test_the_same_certificate_under_our_tags_and_another_name_is_adopted_and_renamed(
        self, ziti, admin, host, cleanup
    ) -> None:
        name = unique("samecert")
        props = ca_props(ziti, name)
        first = host.up("ca", props)
        cleanup.append(first.id)
        again = host.up("ca", {**props, "name": name + "-renamed"})  # lost state + rename: fingerprint is ours
        assert again.id == first.id and admin.get(f"/cas/{first.id}")["name"] == name + "-renamed"  # type: ignore[index]

    def test_the_same_certificate_held_by_a_foreign_ca_is_refused(self, ziti, admin, host, cleanup) -> None:
        name = unique("certheld")
        props = ca_props(ziti, name)
        theirs = admin.create("cas", {
            "name": unique("someone"), "certPem": props["cert_pem"], "isAuthEnabled": True,
            "isAutoCaEnrollmentEnabled": False, "isOttCaEnrollmentEnabled": False, "identityRoles": []})
        cleanup.append(theirs)
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", props)
        assert theirs in err.value.details
        assert admin.find("cas", name) == []

    def test_without_an_owner_input_the_hosts_stack_tags_and_adopts(self, ziti, admin, host, cleanup) -> None:
        props = {k: v for k, v in ca_props(ziti, unique("noowner")).items() if k != "owner"}
        state = host.up("ca", props)
        cleanup.append(state.id)
        assert admin.get(f"/cas/{state.id}")["tags"] == {"pulumi.stack": "identity-platform/test"}  # type: ignore[index]
        assert host.up("ca", props).id == state.id

    def test_an_entity_of_the_same_stack_but_another_resource_is_not_adopted(self, ziti, admin, host, cleanup) -> None:
        name = unique("otherres")
        props = ca_props(ziti, name)
        first = host.up("ca", {**props, "owner": owner("another-resource")})
        cleanup.append(first.id)
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", props)
        assert "resource 'another-resource'" in err.value.details
        assert len(admin.find("cas", name)) == 1
