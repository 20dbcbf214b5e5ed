"""`check` applies the controller's own validation rules before any request, names the property
and the fix, never echoes a secret, and skips what a preview does not know yet; `check` and
`diff` (all `pulumi preview` runs) make zero requests to the controller."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime import rpc

from dynamic_providers.ziti import provider as zp
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import ApiError, make_ca

CONN = {"url": "https://ziti.example.com:1280", "username": "admin", "password": "s3cret-Passw0rd"}
OWNER = {"stack": "identity-platform/dev", "name": "r"}
CERT, KEY = make_ca()
U = rpc.UNKNOWN


def failures(provider: zp.ZitiProvider, **props: Any) -> dict[str, str]:
    result = provider.check({}, {"connection": CONN, "owner": OWNER, **props})
    return {f.property: f.reason for f in result.failures}


def ca(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "spire",
        "cert_pem": CERT,
        "ca_key_pem": KEY,
        "external_id_claim": {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"},
        **overrides,
    }


CA = zp.CertificateAuthorityProvider()
SIGNER = zp.ExternalJwtSignerProvider()


class TestCertificateAuthorityRules:
    def test_a_valid_ca_passes_and_gets_defaults(self) -> None:
        result = CA.check({}, {"connection": CONN, "owner": OWNER, **ca()})
        assert result.failures == []
        assert result.inputs["is_auth_enabled"] is True
        assert result.inputs["identity_name_format"] == "[caName]-[commonName]"
        assert result.inputs["external_id_claim"]["parser"] == "NONE"

    @pytest.mark.parametrize(
        ("claim", "prop", "words"),
        [
            ({"location": "COMMON_NAME", "matcher": "SCHEME", "matcher_criteria": "spiffe"}, "matcher", "SAN_URI"),
            ({"location": "SAN_URI", "matcher": "SCHEME"}, "matcher_criteria", "spiffe"),
            ({"location": "SAN_EMAIL", "matcher": "SUFFIX"}, "matcher_criteria", "SUFFIX"),
            ({"location": "SAN_URI", "matcher": "ALL", "parser": "SPLIT"}, "parser_criteria", "separator"),
            ({"location": "SAN_URI", "matcher": "ALL", "index": -1}, "index", "negative"),
            ({"location": "DNS", "matcher": "ALL"}, "location", "COMMON_NAME"),
        ],
    )
    def test_external_id_claim_rules(self, claim: dict[str, Any], prop: str, words: str) -> None:
        found = failures(CA, **ca(external_id_claim=claim))
        assert list(found) == [f"external_id_claim.{prop}"]
        assert words in found[f"external_id_claim.{prop}"]

    def test_the_first_certificate_must_be_a_ca(self) -> None:
        leaf, leaf_key = make_ca("a leaf", is_ca=False)
        found = failures(CA, **ca(cert_pem=leaf, ca_key_pem=leaf_key))
        assert list(found) == ["cert_pem"] and "is not a CA" in found["cert_pem"]

    def test_the_key_must_be_the_certificates(self) -> None:
        _, other_key = make_ca()
        found = failures(CA, **ca(ca_key_pem=other_key))
        assert list(found) == ["ca_key_pem"] and "does not belong" in found["ca_key_pem"]
        assert other_key not in repr(found)

    def test_independent_mistakes_are_reported_together(self) -> None:
        _, other_key = make_ca()
        claim = {"location": "SAN_URI", "matcher": "PREFIX"}
        found = failures(CA, **ca(ca_key_pem=other_key, external_id_claim=claim, name=""))
        assert set(found) == {"ca_key_pem", "external_id_claim.matcher_criteria", "name"}

    def test_an_expired_ca_cannot_be_verified(self) -> None:
        from cryptography.hazmat.primitives import serialization

        key = serialization.load_pem_private_key(KEY.encode(), None)
        old, _ = make_ca(valid_days=-1, key=key)
        assert "expired" in failures(CA, **ca(cert_pem=old))["cert_pem"]

    def test_names_roles_and_reserved_tags(self) -> None:
        found = failures(CA, **ca(name=" ", identity_roles=["#spire"], tags={"pulumi.stack": "x"}))
        assert set(found) == {"name", "identity_roles", "tags"}
        assert "'#spire'" in found["identity_roles"]

    def test_garbage_pem_and_key(self) -> None:
        found = failures(CA, **ca(cert_pem="not a pem", ca_key_pem="not a key"))
        assert set(found) == {"cert_pem", "ca_key_pem"}
        assert "not a key" not in found["ca_key_pem"]


class TestOtherRules:
    def test_issuer_without_trailing_slash(self) -> None:
        found = failures(SIGNER, name="kc", issuer="https://kc/realms/r/", audience="a", jwks_endpoint="https://kc/j")
        assert list(found) == ["issuer"] and "'https://kc/realms/r'" in found["issuer"]

    @pytest.mark.parametrize(
        ("keys", "prop"),
        [
            ({}, "jwks_endpoint"),
            ({"jwks_endpoint": "https://kc/j", "cert_pem": CERT, "kid": "k"}, "jwks_endpoint"),
            ({"cert_pem": CERT}, "kid"),
        ],
    )
    def test_signer_key_source(self, keys: dict[str, Any], prop: str) -> None:
        assert list(failures(SIGNER, name="kc", issuer="https://kc/realms/r", audience="a", **keys)) == [prop]

    def test_identity_type_and_policy_roles(self) -> None:
        found = failures(zp.IdentityProvider(), name="w", type="Device", external_id=" ")
        assert set(found) == {"type", "external_id"}
        found = failures(zp.ServicePolicyProvider(), name="p", type="Dial", service_roles=["payments", "#ok"])
        assert list(found) == ["service_roles"] and "'#<attribute>'" in found["service_roles"]

    def test_auth_policy_must_allow_a_primary_method(self) -> None:
        found = failures(zp.AuthPolicyProvider(), name="p", primary={"updb": {"min_password_length": -1}})
        assert set(found) == {"primary.updb.min_password_length"}
        assert list(failures(zp.AuthPolicyProvider(), name="p", primary={})) == ["primary"]

    def test_a_misspelt_or_camel_case_input_is_named_not_dropped(self) -> None:
        found = failures(zp.IdentityProvider(), name="w", is_admn=True, externalId="spiffe://td/w")
        assert set(found) == {"is_admn", "externalId"}
        assert "write it as external_id" in found["externalId"] and "is_admin" in found["is_admn"]
        # Outputs seeded as None by the resource class are not inputs, and are not failures.
        assert failures(zp.EdgeRouterProvider(), name="r", enrollment_jwt=None, is_verified=None) == {}

    def test_camel_case_blocks_keep_their_values(self) -> None:
        primary = {"extJwt": {"allowed": True, "allowedSigners": ["s1"]}, "updb": {"minPasswordLength": 8}}
        result = zp.AuthPolicyProvider().check(
            {}, {"connection": CONN, "owner": OWNER, "name": "p", "primary": primary}
        )
        assert result.failures == []
        assert result.inputs["primary"]["ext_jwt"] == {"allowed": True, "allowed_signers": ["s1"]}
        assert result.inputs["primary"]["updb"]["min_password_length"] == 8
        claim = {"location": "SAN_URI", "matcher": "SCHEME", "matcherCriteria": "spiffe"}
        result = CA.check({}, {"connection": CONN, "owner": OWNER, **ca(external_id_claim=claim)})
        assert result.failures == [] and result.inputs["external_id_claim"]["matcher_criteria"] == "spiffe"

    def test_connection_rules_never_echo_the_password(self) -> None:
        bad = {"url": "http://ziti:1280", "username": "", "password": "s3cret-Passw0rd", "ca_fingerprint": "zz"}
        result = CA.check({}, {"connection": bad, "owner": OWNER, **ca()})
        found = {f.property: f.reason for f in result.failures}
        assert set(found) == {"connection.url", "connection.username", "connection.ca_fingerprint"}
        assert "https://" in found["connection.url"]
        assert all("s3cret" not in r for r in found.values())
        both = {**CONN, "ca_bundle_pem": CERT, "ca_fingerprint": "ab" * 32}
        found = {f.property: f.reason for f in CA.check({}, {"connection": both, "owner": OWNER, **ca()}).failures}
        assert list(found) == ["connection.ca_fingerprint"]


class TestUnknownsInPreview:
    def test_unknown_certificate_key_and_claim_parts_are_not_failures(self) -> None:
        claim = {"location": "SAN_URI", "matcher": U, "matcher_criteria": U}
        assert failures(CA, **ca(cert_pem=U, ca_key_pem=U, external_id_claim=claim, identity_roles=[U])) == {}
        assert failures(CA, **ca(external_id_claim=U)) == {}
        assert CA.check({}, {"connection": U, "owner": OWNER, **ca()}).failures == []
        assert (
            failures(zp.AuthPolicyProvider(), name="p", primary={"ext_jwt": {"allowed": True, "allowed_signers": [U]}})
            == {}
        )

    def test_known_mistakes_are_still_reported_next_to_unknowns(self) -> None:
        found = failures(CA, **ca(cert_pem=U, name="", identity_roles=["@x"]))
        assert set(found) == {"name", "identity_roles"}

    def test_an_unknown_certificate_is_a_replacement_and_unknown_roles_a_change(self) -> None:
        state = {**ca(), "connection": CONN, "owner": OWNER}
        diff = CA.diff("id", state, {**state, "cert_pem": U})
        assert diff.changes and diff.replaces == ["cert_pem"] and diff.delete_before_replace
        diff = CA.diff("id", state, {**state, "identity_roles": [U]})
        assert diff.changes and diff.replaces == []


@settings(max_examples=300, deadline=None)
@given(
    location=st.sampled_from(["COMMON_NAME", "SAN_URI", "SAN_EMAIL"]),
    matcher=st.sampled_from(["ALL", "PREFIX", "SUFFIX", "SCHEME"]),
    matcher_criteria=st.sampled_from(["", "spiffe"]),
    parser=st.sampled_from(["NONE", "SPLIT"]),
    parser_criteria=st.sampled_from(["", "/"]),
    index=st.integers(min_value=-2, max_value=2),
)
def test_check_refuses_what_the_controller_refuses_and_what_can_never_match(**claim: Any) -> None:
    snake = dict(claim)
    camel = {
        "location": claim["location"],
        "matcher": claim["matcher"],
        "matcherCriteria": claim["matcher_criteria"],
        "parser": claim["parser"],
        "parserCriteria": claim["parser_criteria"],
        "index": claim["index"],
    }
    try:
        fake_ziti._validate_claim(camel)
        server_ok = True
    except ApiError:
        server_ok = False
    # The pinned controller (1.7.2) refuses only SCHEME outside SAN_URI; a claim with empty criteria,
    # SPLIT without a separator or a negative index is stored and fails at login. check refuses both.
    never_matches = (
        (claim["matcher"] in ("SCHEME", "PREFIX", "SUFFIX") and not claim["matcher_criteria"])
        or (claim["parser"] == "SPLIT" and not claim["parser_criteria"])
        or claim["index"] < 0
    )
    assert (failures(CA, **ca(external_id_claim=snake)) == {}) == (server_ok and not never_matches)


class TestPreviewMakesNoRequests:
    PREVIEW_PROPS = {
        "CertificateAuthority": (zp.CertificateAuthorityProvider, ca(cert_pem=U, ca_key_pem=U)),
        "ExternalJwtSigner": (
            zp.ExternalJwtSignerProvider,
            {"name": "kc", "issuer": U, "audience": U, "jwks_endpoint": U, "client_id": U},
        ),
        "AuthPolicy": (
            zp.AuthPolicyProvider,
            {"name": "p", "primary": {"ext_jwt": {"allowed": True, "allowed_signers": [U]}}},
        ),
        "Identity": (zp.IdentityProvider, {"name": "w", "external_id": U, "auth_policy_id": U}),
        "EdgeRouter": (zp.EdgeRouterProvider, {"name": "edge-router-1"}),
        "ServicePolicy": (zp.ServicePolicyProvider, {"name": "p", "type": "Dial", "identity_roles": [U]}),
        "EdgeRouterPolicy": (zp.EdgeRouterPolicyProvider, {"name": "p", "identity_roles": ["#all"]}),
        "ServiceEdgeRouterPolicy": (zp.ServiceEdgeRouterPolicyProvider, {"name": "p", "service_roles": ["#all"]}),
    }

    @pytest.mark.parametrize("name", sorted(PREVIEW_PROPS))
    def test_check_and_diff_through_the_host(self, name: str, loopback, dynamic_host) -> None:
        fake, srv = fake_ziti.start(loopback)
        provider_cls, props = self.PREVIEW_PROPS[name]
        host = dynamic_host(provider_cls(), resource_type=f"pulumi-python:dynamic/ziti:{name}")
        news = {**props, "connection": {**fake_ziti.connection(srv, fake), "password": U}, "owner": OWNER}
        checked = host.check("r", {}, news)
        assert checked.failures == []
        old_outputs = {**checked.inputs, "name": "previous-name"}
        diff = host.diff("r", "some-id", old_outputs, checked.inputs)
        assert diff.changes == "DIFF_SOME"
        assert srv.counts() == {} and fake.authentications == 0


def test_a_missing_connection_is_named() -> None:
    result = CA.check({}, {"owner": OWNER, **ca()})
    assert [(f.property, f.reason) for f in result.failures] == [("connection", "connection is required")]


def test_read_and_delete_of_a_state_without_connection_name_it() -> None:
    for call in (
        lambda: zp.IdentityProvider().read("id", {"name": "w"}),
        lambda: zp.IdentityProvider().delete("id", {}),
    ):
        with pytest.raises(ValueError, match=r"^connection: connection is required$"):
            call()


class TestControllerUrlRule:
    """The public rule stack_config applies to ziti.controllerUrl is the connection's own."""

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://ziti:1280",
             "'http://ziti:1280' must be an https:// URL with a host (the controller only serves TLS)"),
            ("https://ziti:1280/?a=1", "'https://ziti:1280/?a=1' must not carry a query or fragment"),
            ("https://ziti:1280/edge/client/v1", "'https://ziti:1280/edge/client/v1': give the controller base URL "
             "(https://host:port) or its /edge/management/v1 URL"),
        ],
    )  # fmt: skip
    def test_refused_url_by_the_rule_and_by_the_connection(self, url: str, message: str) -> None:
        from dynamic_providers.ziti.models import controller_url_rule

        with pytest.raises(ValueError) as e:
            controller_url_rule(url)
        assert str(e.value) == message
        found = {f.property: f.reason for f in CA.check({}, {"connection": {**CONN, "url": url}, "owner": OWNER,
                                                                           **ca()}).failures}
        assert message in found["connection.url"]

    @pytest.mark.parametrize("url", ["https://ziti:1280", "https://ziti:1280/edge/management/v1/"])
    def test_accepted_url_is_returned_as_given(self, url: str) -> None:
        from dynamic_providers.ziti.models import controller_url_rule

        assert controller_url_rule(url) == url
