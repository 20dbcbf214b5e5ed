"""`check` rejects bad input at preview with the field and the fix, and never needs Keycloak.

Most cases call the provider in-process (check is pure); one goes through the dynamic host to show
the failures reach the engine as CheckFailures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pulumi.output import Unknown

from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider, normalise
from tests.harness.dynamic_host import DynamicProviderHost

CONN = {"url": "https://auth.acme.net", "username": "admin", "password": "pw"}
OWNER = "identity-platform/test"


def client(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "realm": "platform",
        "client_id": "app",
        "access_type": "CONFIDENTIAL",
        "redirect_uris": ["https://app.acme.net/cb"],
        "connection": dict(CONN),
        "owner": OWNER,
    }
    props.update(overrides)
    return {k: v for k, v in props.items() if v is not None}


def failures(props: dict[str, Any]) -> list[tuple[str, str]]:
    result = KeycloakClientProvider().check({}, props)
    return [(f.property, f.reason) for f in result.failures]


def assert_fails(props: dict[str, Any], prop: str, *fragments: str) -> None:
    found = failures(props)
    matching = [reason for p, reason in found if p == prop]
    assert matching, f"no failure on {prop!r}; got {found}"
    for fragment in fragments:
        assert any(fragment in reason for reason in matching), f"{fragment!r} not in {matching}"


class TestClientRules:
    def test_a_valid_client_passes_and_gets_its_defaults(self) -> None:
        result = KeycloakClientProvider().check({}, client(attributes={"a": True, "n": 3.0}))
        assert result.failures == []
        assert result.inputs["enabled"] is True and result.inputs["access_type"] == "CONFIDENTIAL"
        assert result.inputs["attributes"] == {"a": "true", "n": "3"}

    @pytest.mark.parametrize("flow", ["standard_flow_enabled", "implicit_flow_enabled", "direct_access_grants_enabled"])
    def test_bearer_only_with_a_flow(self, flow: str) -> None:
        assert_fails(client(access_type="BEARER-ONLY", **{flow: True}), "access_type", flow, "BEARER-ONLY")

    def test_standard_flow_without_redirect_uris(self) -> None:
        assert_fails(client(redirect_uris=None, standard_flow_enabled=True), "redirect_uris", "add redirect URIs")

    def test_an_unset_standard_flow_is_keycloaks_default_and_not_refused(self) -> None:
        # Keycloak accepts it; only flows the program turns on need redirect URIs (as terraform).
        assert failures(client(redirect_uris=[])) == []
        minimal = {"realm": "platform", "client_id": "svc", "connection": dict(CONN), "owner": OWNER}
        assert failures(minimal) == []

    def test_implicit_flow_without_redirect_uris(self) -> None:
        props = client(redirect_uris=None, standard_flow_enabled=False, implicit_flow_enabled=True)
        assert_fails(props, "redirect_uris", "implicit_flow_enabled")

    def test_a_service_account_client_without_flows_needs_no_redirect(self) -> None:
        props = client(redirect_uris=None, standard_flow_enabled=False, service_accounts_enabled=True)
        assert failures(props) == []

    def test_root_url_supplies_the_default_redirect(self) -> None:
        assert failures(client(redirect_uris=None, root_url="https://app.acme.net")) == []

    def test_service_accounts_on_a_public_client(self) -> None:
        assert_fails(client(access_type="PUBLIC", service_accounts_enabled=True), "service_accounts_enabled", "PUBLIC")

    @pytest.mark.parametrize(
        ("uri", "fragment"),
        [
            ("not a uri", "whitespace"),
            ("app.acme.net/cb", "not an absolute URI"),
            ("https:///cb", "no host"),
            ("https://app.acme.net/cb#x", "fragment"),
            ("javascript:alert(1)", "forbidden scheme"),
            ("/relative/cb", "set root_url"),
            ("", "empty"),
        ],
    )
    def test_malformed_redirect_uris(self, uri: str, fragment: str) -> None:
        assert_fails(client(redirect_uris=["https://ok.acme.net/cb", uri]), "redirect_uris[1]", fragment)

    @pytest.mark.parametrize(
        "uri", ["https://app.acme.net/*", "http://localhost:20314/auth/callback", "myapp:/cb", "*"]
    )
    def test_accepted_redirect_uris(self, uri: str) -> None:
        assert failures(client(redirect_uris=[uri])) == []

    def test_relative_redirects_are_fine_under_a_root_url(self) -> None:
        assert failures(client(root_url="https://app.acme.net", redirect_uris=["/cb"])) == []

    @pytest.mark.parametrize("origin", ["https://app.acme.net/", "https://app.acme.net/path", "app.acme.net"])
    def test_malformed_web_origins(self, origin: str) -> None:
        assert_fails(client(web_origins=[origin]), "web_origins[0]", "origin")

    def test_post_logout_uris_are_checked(self) -> None:
        assert_fails(client(post_logout_redirect_uris=["+", "bad uri"]), "post_logout_redirect_uris[1]")
        assert failures(client(post_logout_redirect_uris=["+", "https://app.acme.net/bye"])) == []

    @pytest.mark.parametrize("method", ["s256", "SHA256", "none"])
    def test_unknown_pkce_method(self, method: str) -> None:
        assert_fails(client(pkce_method=method), "pkce_method", "unknown PKCE method", "'S256'")

    @pytest.mark.parametrize("realm", ["", "   ", "a/b", "with space"])
    def test_empty_or_unusable_realm(self, realm: str) -> None:
        assert_fails(client(realm=realm), "realm", "realm")

    def test_empty_client_id(self) -> None:
        assert_fails(client(client_id=""), "client_id")

    def test_unknown_access_type(self) -> None:
        assert_fails(client(access_type="confidential"), "access_type", "CONFIDENTIAL")

    @pytest.mark.parametrize(
        ("key", "hint"),
        [
            ("pkce.code.challenge.method", "pkce_method"),
            ("post.logout.redirect.uris", "post_logout"),
            ("pulumi.stack", "ownership"),
        ],
    )
    def test_attributes_behind_first_class_inputs_are_refused(self, key: str, hint: str) -> None:
        assert_fails(client(attributes={key: "x"}), f"attributes.{key}", hint)

    def test_a_scope_cannot_be_default_and_optional(self) -> None:
        props = client(default_client_scopes=["email", "profile"], optional_client_scopes=["email"])
        assert_fails(props, "optional_client_scopes", "email")

    def test_a_typo_in_an_input_name_is_named(self) -> None:
        assert_fails(client(redirect_uri=["https://a/cb"]), "redirect_uri", "not an input of this resource")

    def test_wrong_types_are_named(self) -> None:
        assert_fails(client(enabled="yes please"), "enabled")
        assert_fails(client(redirect_uris="https://app.acme.net/cb"), "redirect_uris")


class TestConnectionRules:
    def test_plain_http_to_a_remote_host(self) -> None:
        assert_fails(client(connection={**CONN, "url": "http://auth.acme.net"}), "connection.url", "https")

    def test_missing_credentials(self) -> None:
        assert_fails(client(connection={"url": "https://auth.acme.net"}), "connection", "username/password")

    def test_half_a_password_grant(self) -> None:
        assert_fails(client(connection={"url": "https://a.b", "username": "admin"}), "connection", "both")

    def test_client_credentials_are_accepted(self) -> None:
        conn = {"url": "https://a.b", "client_id": "temp-admin", "client_secret": "s"}
        assert failures(client(connection=conn)) == []

    def test_bad_base_path_and_timeout(self) -> None:
        assert_fails(client(connection={**CONN, "base_path": "auth"}), "connection.base_path", "/auth")
        assert_fails(client(connection={**CONN, "timeout": 0}), "connection.timeout")

    def test_the_password_never_appears_in_a_failure(self) -> None:
        props = client(connection={**CONN, "password": 12345, "url": "http://auth.acme.net"})
        assert all("12345" not in reason for _, reason in failures(props))


class TestOwner:
    def test_without_owner_the_hosts_stack_is_recorded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_PROJECT", "proj")
        monkeypatch.setenv("PULUMI_STACK", "dev")
        props = client(owner=None)
        assert "owner" not in props
        result = KeycloakClientProvider().check({}, props)
        assert result.failures == [] and result.inputs["owner"] == "proj/dev"
        realm = KeycloakRealmProvider().check({}, {"realm": "platform", "connection": CONN})
        assert realm.failures == [] and realm.inputs["owner"] == "proj/dev"

    def test_an_explicit_owner_wins_over_the_host(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_PROJECT", "proj")
        monkeypatch.setenv("PULUMI_STACK", "dev")
        assert KeycloakClientProvider().check({}, client()).inputs["owner"] == OWNER

    def test_no_owner_anywhere_is_one_clear_failure(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("PULUMI_PROJECT", raising=False)
        monkeypatch.delenv("PULUMI_STACK", raising=False)
        found = failures(client(owner=None))
        assert [p for p, _ in found] == ["owner"]
        assert "owner='<project>/<stack>'" in found[0][1]


class TestUnknownsAtPreview:
    def test_unknown_values_skip_only_the_rules_that_need_them(self) -> None:
        props = client(
            realm=Unknown(),
            redirect_uris=[Unknown(), "bad uri"],
            connection={**CONN, "url": Unknown(), "password": Unknown()},
            pkce_method="S257",
        )
        found = dict(failures(props))
        assert set(found) == {"redirect_uris[1]", "pkce_method"}

    def test_a_wholly_unknown_connection_is_fine(self) -> None:
        assert failures(client(connection=Unknown())) == []


class TestRealmRules:
    def test_valid_realm(self) -> None:
        props = {"realm": "platform", "connection": CONN, "owner": OWNER, "access_token_lifespan": 300.0}
        result = KeycloakRealmProvider().check({}, props)
        assert result.failures == [] and result.inputs["enabled"] is True

    @pytest.mark.parametrize(
        ("overrides", "prop"),
        [
            ({"realm": ""}, "realm"),
            ({"realm": "a#b"}, "realm"),
            ({"access_token_lifespan": 0}, "access_token_lifespan"),
            ({"sso_session_idle_timeout": -5}, "sso_session_idle_timeout"),
            ({"display_name": 3}, "display_name"),
        ],
    )
    def test_invalid_realm_inputs(self, overrides: dict[str, Any], prop: str) -> None:
        props = {"realm": "platform", "connection": CONN, "owner": OWNER, **overrides}
        names = [f.property for f in KeycloakRealmProvider().check({}, props).failures]
        assert prop in names


def test_failures_reach_the_engine_through_the_host(dynamic_host: Callable[..., DynamicProviderHost]) -> None:
    host = dynamic_host(KeycloakClientProvider(), resource_type="pulumi-python:dynamic/keycloak:Client")
    checked = host.check("bad", {}, client(access_type="PUBLIC", service_accounts_enabled=True, pkce_method="md5"))
    props = sorted(p for p, _ in checked.failures)
    assert props == ["pkce_method", "service_accounts_enabled"]


uri = st.sampled_from(["https://a.acme.net/cb", "https://b.acme.net/cb", "http://localhost:20314/auth/callback"])
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["realm", "client_id", "access_type", "redirect_uris", "attributes", "connection", "x"]),
        json_value,
    )
)
def test_check_never_raises_on_arbitrary_input(props: dict[str, Any]) -> None:
    result = KeycloakClientProvider().check({}, props)
    named = {f.property.split(".")[0].split("[")[0] for f in result.failures}
    assert all(f.reason for f in result.failures)
    assert ("x" in props) == ("x" in named), "an unknown input is named, and only then"
    if not isinstance(props.get("realm"), str) or not props["realm"].strip():
        assert "realm" in named, "a client needs a realm name"
    if not isinstance(props.get("connection"), dict):
        assert "connection" in named, "a client needs a connection"


@given(st.lists(uri, min_size=1, max_size=6), st.randoms())
def test_uri_order_and_repetition_never_make_a_diff(uris: list[str], rnd: Any) -> None:
    shuffled = list(uris)
    rnd.shuffle(shuffled)
    assert normalise("redirect_uris", uris) == normalise("redirect_uris", shuffled + uris[:1])
