"""KeycloakClient / KeycloakRealm providers through `python -m pulumi.dynamic`, against the REAL Keycloak
(`servers/keycloak.py`: the pinned Keycloak on the local PostgreSQL, started with the stack's options).

The scenarios of tests/dynamic_providers/test_keycloak_provider.py that need no injected fault, each
checked on the server through the admin API (tests/real/keycloak_support.py), never only in the
provider's answers. Each test gets its own realm, marked as this stack's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from servers import keycloak as kc_server
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.real.keycloak_support import (  # noqa: F401 - fixtures
    CLIENT_TYPE,
    OWNER,
    PLATFORMS,
    REALM_TYPE,
    RETRY,
    RealKeycloak,
    admin,
    clients,
    kc,
    platform_inputs,
    realm,
    realms,
)

Host = Callable[..., DynamicProviderHost]


def confidential(admin: RealKeycloak, realm: str, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "realm": realm,
        "client_id": "billing",
        "name": "Billing",
        "access_type": "CONFIDENTIAL",
        "standard_flow_enabled": True,
        "direct_access_grants_enabled": False,
        "redirect_uris": ["https://billing.acme.net/cb", "https://billing.acme.net/alt"],
        "web_origins": ["+"],
        "post_logout_redirect_uris": ["https://billing.acme.net/bye"],
        "attributes": {"access.token.lifespan": 600, "use.refresh.tokens": True, "custom.flag": "on"},
        "rotate_secret_trigger": "1",
        "connection": admin.connection(),
        "owner": OWNER,
    }
    props.update(overrides)
    return props


@pytest.fixture(params=PLATFORMS)
def platform(request: pytest.FixtureRequest) -> str:
    """Whose Ziti client the scenario runs with: Swarm's dev stack's or Kubernetes's (k8s-dev)."""
    return str(request.param)


def ziti_client(admin: RealKeycloak, realm: str, platform: str, **overrides: Any) -> dict[str, Any]:
    """The Ziti client as `platform`'s stack registers it (`KeycloakIdentity`, through its
    assembly), in `realm` of this server, owned by the test host's stack."""
    props = {**platform_inputs(platform, CLIENT_TYPE), "realm": realm, "connection": admin.connection(),
             "owner": OWNER}
    props.update(overrides)
    return props


class TokenFault:
    """Something that happens to the provider's admin token between two provider calls, for real."""

    def __init__(self, admin: RealKeycloak, mode: str) -> None:
        self.admin, self.mode = admin, mode

    def between_calls(self) -> None:
        if self.mode == "session-ended":
            before = self.admin.login()
            self.admin.end_admin_sessions()  # every session of the admin: the provider's refresh token too
            r = httpx.get(f"{self.admin.url}/admin/realms/master", headers={"Authorization": f"Bearer {before}"})
            assert r.status_code == 401, "logging the admin out did not revoke its tokens"
        elif self.mode == "short-lived":
            time.sleep(2.5)  # master access tokens live 2 s now: the provider's cached one has expired


@pytest.fixture
def token_mode(admin: RealKeycloak, request: pytest.FixtureRequest) -> Iterator[TokenFault]:
    mode = request.param
    if mode == "short-lived":
        kc_server.set_master_token_lifespan(admin.section, 2)  # the knob scripts/servers offers too
        assert admin.realm("master")["accessTokenLifespan"] == 2  # type: ignore[index]
    admin.clear_events()
    yield TokenFault(admin, mode)
    if mode == "short-lived":
        kc_server.set_master_token_lifespan(admin.section, 60)


class TestClientLifecycle:
    @pytest.mark.parametrize("token_mode", ["steady", "short-lived", "session-ended"], indirect=True)
    def test_create_read_noop_update_rotate_delete(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, token_mode: TokenFault
    ) -> None:
        props = confidential(admin, realm)

        state = clients.up("billing", props)
        rep = admin.client(realm, "billing")
        assert state.id == rep["id"]
        assert rep["publicClient"] is False and rep["bearerOnly"] is False and rep["protocol"] == "openid-connect"
        assert rep["attributes"]["pulumi.stack"] == OWNER
        assert rep["attributes"]["access.token.lifespan"] == "600"
        assert rep["attributes"]["post.logout.redirect.uris"] == "https://billing.acme.net/bye"
        assert state.outputs["client_secret"] == admin.secret(realm, state.id)
        assert state.outputs["issuer_url"] == f"{admin.section['public_url']}/realms/{realm}"

        token_mode.between_calls()
        refreshed = clients.refresh("billing", state)
        assert refreshed is not None and refreshed.id == state.id
        # The real server's defaults (frontchannelLogout, backchannel attributes, scopes...) are not drift.
        _, diff = clients.preview_change("billing", refreshed, props)
        assert diff.changes == "DIFF_NONE"

        token_mode.between_calls()
        news = {
            **props,
            "redirect_uris": ["https://billing.acme.net/alt", "https://billing.acme.net/new"],
            "attributes": {"access.token.lifespan": 600, "use.refresh.tokens": True},  # custom.flag removed
        }
        updated, diff = clients.change("billing", refreshed, news)
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        rep = admin.client(realm, "billing")
        assert sorted(rep["redirectUris"]) == ["https://billing.acme.net/alt", "https://billing.acme.net/new"]
        assert "custom.flag" not in rep["attributes"]
        assert rep["attributes"]["use.refresh.tokens"] == "true"
        assert updated.outputs["client_secret"] == admin.secret(realm, state.id) == state.outputs["client_secret"]

        token_mode.between_calls()
        rotated, _ = clients.change("billing", updated, {**news, "rotate_secret_trigger": "2"})
        new_secret = admin.secret(realm, state.id)
        assert new_secret != state.outputs["client_secret"]
        assert rotated.outputs["client_secret"] == new_secret

        token_mode.between_calls()
        clients.delete("billing", rotated.id, rotated.outputs)
        assert admin.client_by_client_id(realm, "billing") is None

        events = admin.provider_events()  # Keycloak's own record of the provider's token requests
        assert events.get("LOGIN_ERROR", 0) == 0
        if token_mode.mode == "steady":
            assert events.get("LOGIN") == 1 and "REFRESH_TOKEN" not in events, events
        elif token_mode.mode == "session-ended":
            assert events.get("LOGIN", 0) >= 5, events  # every renewal had to log in again
        else:
            assert events.get("REFRESH_TOKEN", 0) >= 4, events  # renewed between every pair of calls

    def test_public_pkce_client_with_audience_mapper(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        state = clients.up("ziti", ziti_client(admin, realm, platform))
        rep = admin.client(realm, "openziti")
        assert rep["publicClient"] is True and "secret" not in rep
        assert rep["attributes"]["pkce.code.challenge.method"] == "S256"
        mappers = rep["protocolMappers"]
        assert [m["protocolMapper"] for m in mappers] == ["oidc-audience-mapper"]
        assert mappers[0]["config"]["included.custom.audience"] == "openziti"
        assert mappers[0]["config"]["access.token.claim"] == "true"
        assert state.outputs.get("client_secret") is None
        assert state.outputs["audience"] == "openziti"

        changed, _ = clients.change("ziti", state, ziti_client(admin, realm, platform, audience="ziti-controller"))
        mapper = admin.client(realm, "openziti")["protocolMappers"][0]
        assert mapper["id"] == mappers[0]["id"]  # updated in place
        assert mapper["config"]["included.custom.audience"] == "ziti-controller"

        without = ziti_client(admin, realm, platform)
        del without["audience"]
        clients.change("ziti", changed, without)
        assert not admin.client(realm, "openziti").get("protocolMappers")

    def test_bearer_only_client_runs_no_flows(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost
    ) -> None:
        props = {
            "realm": realm,
            "client_id": "api",
            "access_type": "BEARER-ONLY",
            "connection": admin.connection(),
            "owner": OWNER,
        }
        state = clients.up("api", props)
        rep = admin.client(realm, "api")
        assert rep["bearerOnly"] is True
        assert not (rep["standardFlowEnabled"] or rep["directAccessGrantsEnabled"] or rep["implicitFlowEnabled"])
        refreshed = clients.refresh("api", state)
        assert refreshed is not None and clients.preview_change("api", refreshed, props)[1].changes == "DIFF_NONE"

    def test_client_id_change_renames_in_place(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        state = clients.up("ziti", ziti_client(admin, realm, platform))
        renamed, diff = clients.change("ziti", state, ziti_client(admin, realm, platform, client_id="ziti-users"))
        assert diff.replaces == [] and renamed.id == state.id
        assert admin.client_by_client_id(realm, "openziti") is None
        assert admin.client(realm, "ziti-users")["id"] == state.id

    def test_rename_onto_a_taken_client_id_fails_naming_it(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        taken = admin.seed_client(realm, {"clientId": "taken"})
        state = clients.up("ziti", ziti_client(admin, realm, platform))
        with pytest.raises(ProviderCallError, match="409") as err:
            clients.change("ziti", state, ziti_client(admin, realm, platform, client_id="taken"))
        assert "client_id 'taken' is already used by another client" in err.value.details
        assert admin.client(realm, "taken")["id"] == taken and admin.client(realm, "openziti")["id"] == state.id

    def test_realm_change_replaces(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        other = f"{realm}-o"
        admin.seed_realm(other)
        try:
            state = clients.up("ziti", ziti_client(admin, realm, platform))
            moved, diff = clients.change("ziti", state, ziti_client(admin, other, platform))
            assert diff.replaces == ["realm"] and diff.delete_before_replace
            assert moved.id != state.id
            assert admin.client_by_client_id(realm, "openziti") is None
            assert admin.client(other, "openziti")["id"] == moved.id
        finally:
            admin.delete_realm(other)

    def test_scopes_are_set_on_create_and_moved_through_their_endpoints(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        props = ziti_client(admin, realm, platform, default_client_scopes=["profile", "email"],
                            optional_client_scopes=["phone"])
        state = clients.up("ziti", props)
        assert admin.scope_names(realm, state.id, "default") == ["email", "profile"]
        assert admin.scope_names(realm, state.id, "optional") == ["phone"]
        moved, diff = clients.change(
            "ziti", state, {**props, "default_client_scopes": ["profile", "phone"], "optional_client_scopes": ["email"]}
        )
        assert diff.changes == "DIFF_SOME"
        assert admin.scope_names(realm, state.id, "default") == ["phone", "profile"]
        assert admin.scope_names(realm, state.id, "optional") == ["email"]
        same = {**props, "default_client_scopes": ["phone", "profile"], "optional_client_scopes": ["email"]}
        refreshed = clients.refresh("ziti", moved)
        assert refreshed is not None and clients.preview_change("ziti", refreshed, same)[1].changes == "DIFF_NONE"

    def test_an_unknown_scope_fails_before_anything_is_created(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        with pytest.raises(ProviderCallError, match="no-such-scope") as err:
            clients.up("ziti", ziti_client(admin, realm, platform, default_client_scopes=["profile", "no-such-scope"]))
        assert "available" in err.value.details
        assert admin.client_by_client_id(realm, "openziti") is None


class TestEveryManagedField:
    """Every managed input of KeycloakClient from one value to another on the real server, then no drift."""

    FIRST: dict[str, Any] = {
        "client_id": "every",
        "name": "Every field",
        "description": "first",
        "enabled": True,
        "access_type": "CONFIDENTIAL",
        "standard_flow_enabled": True,
        "implicit_flow_enabled": False,
        "direct_access_grants_enabled": True,
        "service_accounts_enabled": True,
        "redirect_uris": ["https://app.acme.net/cb"],
        "web_origins": ["https://app.acme.net"],
        "post_logout_redirect_uris": ["https://app.acme.net/bye"],
        "root_url": "https://app.acme.net",
        "base_url": "/home",
        "pkce_method": "S256",
        "attributes": {"access.token.lifespan": 600, "custom.flag": "on"},
        "default_client_scopes": ["profile", "email"],
        "optional_client_scopes": ["phone"],
        "audience": "every-api",
        "rotate_secret_trigger": "a",
    }
    SECOND: dict[str, Any] = {
        "client_id": "every-renamed",
        "name": "Every field, changed",
        "description": "second",
        "enabled": False,
        "access_type": "CONFIDENTIAL",
        "standard_flow_enabled": False,
        "implicit_flow_enabled": True,
        "direct_access_grants_enabled": False,
        "service_accounts_enabled": False,
        "redirect_uris": ["https://app2.acme.net/cb", "https://app2.acme.net/alt"],
        "web_origins": ["+"],
        "post_logout_redirect_uris": ["https://app2.acme.net/bye", "https://app2.acme.net/bye2"],
        "root_url": "https://app2.acme.net",
        "base_url": "/start",
        "pkce_method": "plain",
        "attributes": {"access.token.lifespan": 300, "other.flag": "x"},
        "default_client_scopes": ["profile", "roles"],
        "optional_client_scopes": ["email", "address"],
        "audience": "every-api-2",
        "rotate_secret_trigger": "b",
    }

    def check(self, admin: RealKeycloak, realm: str, v: dict[str, Any], secret_before: str | None) -> str:
        rep = admin.client(realm, v["client_id"])
        top = {
            "name": "name",
            "description": "description",
            "enabled": "enabled",
            "standard_flow_enabled": "standardFlowEnabled",
            "implicit_flow_enabled": "implicitFlowEnabled",
            "direct_access_grants_enabled": "directAccessGrantsEnabled",
            "service_accounts_enabled": "serviceAccountsEnabled",
            "root_url": "rootUrl",
            "base_url": "baseUrl",
        }
        for field, key in top.items():
            assert rep[key] == v[field], (field, rep[key])
        assert sorted(rep["redirectUris"]) == sorted(v["redirect_uris"])
        assert sorted(rep["webOrigins"]) == sorted(v["web_origins"])
        assert sorted(rep["attributes"]["post.logout.redirect.uris"].split("##")) == sorted(
            v["post_logout_redirect_uris"]
        )
        assert rep["attributes"]["pkce.code.challenge.method"] == v["pkce_method"]
        for k, val in v["attributes"].items():
            assert rep["attributes"][k] == str(val)
        # Keycloak attaches `service_account` itself while service accounts are on: kept, never drift.
        keycloaks_own = ["service_account"] if v["service_accounts_enabled"] else []
        assert admin.scope_names(realm, rep["id"], "default") == sorted(v["default_client_scopes"] + keycloaks_own)
        assert admin.scope_names(realm, rep["id"], "optional") == sorted(v["optional_client_scopes"])
        [mapper] = rep["protocolMappers"]
        assert mapper["config"]["included.custom.audience"] == v["audience"]
        secret = admin.secret(realm, rep["id"])
        assert secret != secret_before
        return secret

    def test_every_field_changes_and_then_reads_back_without_drift(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost
    ) -> None:
        first = {**self.FIRST, "realm": realm, "connection": admin.connection(), "owner": OWNER}
        state = clients.up("every", first)
        secret = self.check(admin, realm, first, None)
        assert state.outputs["client_secret"] == secret

        second = {**self.SECOND, "realm": realm, "connection": admin.connection(), "owner": OWNER}
        changed, diff = clients.change("every", state, second)
        assert diff.changes == "DIFF_SOME" and diff.replaces == [] and changed.id == state.id
        new_secret = self.check(admin, realm, second, secret)
        assert changed.outputs["client_secret"] == new_secret
        assert "custom.flag" not in admin.client(realm, "every-renamed")["attributes"]  # dropped key removed

        refreshed = clients.refresh("every", changed)
        assert refreshed is not None
        assert clients.preview_change("every", refreshed, second)[1].changes == "DIFF_NONE"

        public = {**second, "access_type": "PUBLIC", "implicit_flow_enabled": False}
        switched, _ = clients.change("every", refreshed, public)
        rep = admin.client(realm, "every-renamed")
        assert rep["publicClient"] is True and switched.outputs.get("client_secret") is None

        bearer = {
            k: v
            for k, v in public.items()
            if not k.endswith("_enabled")
            and k
            not in (
                "redirect_uris",
                "web_origins",
                "post_logout_redirect_uris",
                "root_url",
                "base_url",
                "pkce_method",
                "audience",
            )
        }
        bearer["access_type"] = "BEARER-ONLY"
        bearer_state, _ = clients.change("every", switched, bearer)
        rep = admin.client(realm, "every-renamed")
        assert rep["bearerOnly"] is True
        refreshed = clients.refresh("every", bearer_state)
        assert refreshed is not None and clients.preview_change("every", refreshed, bearer)[1].changes == "DIFF_NONE"


class TestSecrets:
    def test_a_secret_rotated_elsewhere_is_never_overwritten_by_an_update(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost
    ) -> None:
        state = clients.up("billing", confidential(admin, realm))
        rotated_elsewhere = admin.rotate_secret_out_of_band(realm, state.id)
        updated, _ = clients.change("billing", state, confidential(admin, realm, description="now described"))
        assert admin.secret(realm, state.id) == rotated_elsewhere
        assert updated.outputs["client_secret"] == rotated_elsewhere
        assert admin.client(realm, "billing")["description"] == "now described"

    def test_switching_a_public_client_to_confidential_yields_a_secret(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        state = clients.up("ziti", ziti_client(admin, realm, platform))
        assert state.outputs.get("client_secret") is None
        switched, _ = clients.change("ziti", state, ziti_client(admin, realm, platform, access_type="CONFIDENTIAL"))
        assert switched.outputs["client_secret"] == admin.secret(realm, state.id)
        back, _ = clients.change("ziti", switched, ziti_client(admin, realm, platform))
        assert back.outputs.get("client_secret") is None and "secret" not in admin.client(realm, "openziti")

    def test_read_never_turns_the_secret_into_an_input(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost
    ) -> None:
        state = clients.up("billing", confidential(admin, realm))
        _, outs, inputs = clients.read("billing", state.id, state.outputs)
        assert outs["client_secret"] == admin.secret(realm, state.id)
        assert inputs is not None and "client_secret" not in inputs


class TestOwnership:
    def test_an_orphan_of_this_stack_is_adopted_and_brought_in_line(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        orphan = admin.seed_client(
            realm,
            {
                "clientId": "openziti",
                "publicClient": True,
                "redirectUris": ["https://old/cb"],
                "attributes": {"pulumi.stack": OWNER},
            },
        )
        props = ziti_client(admin, realm, platform)
        state = clients.up("ziti", props)
        assert state.id == orphan
        rep = admin.client(realm, "openziti")
        assert sorted(rep["redirectUris"]) == sorted(props["redirect_uris"]) and "https://old/cb" not in rep[
            "redirectUris"]
        assert rep["protocolMappers"][0]["config"]["included.custom.audience"] == "openziti"
        assert admin.count_clients(realm, "openziti") == 1

    @pytest.mark.parametrize("marker", [None, "identity-platform/prod", "someone-else/test"])
    def test_a_foreign_client_is_refused_with_its_name_and_id(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, marker: str | None, platform: str
    ) -> None:
        attrs = {"pulumi.stack": marker} if marker else {}
        foreign = admin.seed_client(realm, {"clientId": "openziti", "publicClient": False, "attributes": attrs})
        before = admin.client(realm, "openziti")
        with pytest.raises(ProviderCallError) as err:
            clients.up("ziti", ziti_client(admin, realm, platform))
        details = err.value.details
        assert f"'openziti' already exists in realm '{realm}'" in details and foreign in details
        assert ("absent" if marker is None else marker) in details
        assert "pulumi.stack=identity-platform/test" in details
        assert admin.client(realm, "openziti") == before  # untouched

    def test_inputs_without_owner_are_marked_with_the_hosts_stack(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost
    ) -> None:
        props = confidential(admin, realm)
        del props["owner"]
        state = clients.up("billing", props)
        assert admin.client(realm, "billing")["attributes"]["pulumi.stack"] == OWNER
        assert state.outputs["owner"] == OWNER
        refreshed = clients.refresh("billing", state)
        assert refreshed is not None and clients.preview_change("billing", refreshed, props)[1].changes == "DIFF_NONE"

    def test_minimal_inputs_create_a_confidential_client_with_keycloaks_defaults(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost
    ) -> None:
        props = {"realm": realm, "client_id": "svc", "connection": admin.connection()}
        state = clients.up("svc", props)
        rep = admin.client(realm, "svc")
        assert state.id == rep["id"] and rep["publicClient"] is False and rep["bearerOnly"] is False
        assert rep["standardFlowEnabled"] is True  # Keycloak's default, left unmanaged
        assert state.outputs["client_secret"] == admin.secret(realm, state.id)
        refreshed = clients.refresh("svc", state)
        assert refreshed is not None
        assert clients.preview_change("svc", refreshed, props)[1].changes == "DIFF_NONE"
        clients.delete("svc", state.id, refreshed.outputs)
        assert admin.client_by_client_id(realm, "svc") is None

    @pytest.mark.parametrize("builtin", ["account", "admin-cli", "realm-management"])
    def test_keycloak_built_in_clients_are_never_taken_over(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, builtin: str, platform: str
    ) -> None:
        before = admin.client(realm, builtin)
        with pytest.raises(ProviderCallError, match=f"'{builtin}' already exists"):
            clients.up("acct", ziti_client(admin, realm, platform, client_id=builtin))
        assert admin.client(realm, builtin) == before


class TestDriftAndDeletion:
    def test_drift_on_the_server_shows_up_after_refresh_and_is_repaired(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        props = ziti_client(admin, realm, platform)
        state = clients.up("ziti", props)
        rep = admin.client(realm, "openziti")
        admin.put_client(
            realm,
            state.id,
            {
                "redirectUris": ["https://evil.example/cb"],
                "attributes": {"pkce.code.challenge.method": "plain"},
            },
        )
        refreshed = clients.refresh("ziti", state)
        assert refreshed is not None
        assert refreshed.inputs["redirect_uris"] == ["https://evil.example/cb"]
        assert refreshed.inputs["pkce_method"] == "plain"
        repaired, diff = clients.change("ziti", refreshed, props)
        assert diff.changes == "DIFF_SOME"
        rep = admin.client(realm, "openziti")
        assert rep["redirectUris"] == props["redirect_uris"]
        assert rep["attributes"]["pkce.code.challenge.method"] == "S256"
        again = clients.refresh("ziti", repaired)
        assert again is not None and clients.preview_change("ziti", again, props)[1].changes == "DIFF_NONE"

    def test_a_client_deleted_outside_pulumi_reads_as_gone_and_its_delete_succeeds(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        state = clients.up("ziti", ziti_client(admin, realm, platform))
        admin.delete_client(realm, state.id)
        assert clients.refresh("ziti", state) is None
        clients.delete("ziti", state.id, state.outputs)  # already gone: a 404 is success

    def test_delete_is_idempotent(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost, platform: str
    ) -> None:
        state = clients.up("ziti", ziti_client(admin, realm, platform))
        clients.delete("ziti", state.id, state.outputs)
        clients.delete("ziti", state.id, state.outputs)
        assert admin.client_by_client_id(realm, "openziti") is None
        assert clients.refresh("ziti", state) is None

    @pytest.mark.parametrize(
        "edit",
        [
            pytest.param(lambda p: {"redirect_uris": p["redirect_uris"] * 2}, id="duplicate-uri"),
            pytest.param(lambda p: {"attributes": {}}, id="empty-map-equals-none"),
            pytest.param(lambda p: {"root_url": ""}, id="empty-string-equals-absent"),  # no platform sets it
            pytest.param(lambda p: {"enabled": True}, id="default-made-explicit"),
        ],
    )
    def test_equivalent_inputs_are_no_change_after_a_real_refresh(
        self, admin: RealKeycloak, realm: str, clients: DynamicProviderHost,
        edit: Callable[[dict[str, Any]], dict[str, Any]], platform: str,
    ) -> None:
        props = ziti_client(admin, realm, platform)
        assert "root_url" not in props
        state = clients.up("ziti", props)
        refreshed = clients.refresh("ziti", state)
        assert refreshed is not None
        _, diff = clients.preview_change("ziti", refreshed, {**props, **edit(props)})
        assert diff.changes == "DIFF_NONE"


class TestRealmLifecycle:
    def test_create_read_update_delete_with_issuer_from_discovery(
        self, admin: RealKeycloak, realms: DynamicProviderHost, clients: DynamicProviderHost, platform: str
    ) -> None:
        name = f"users-{int(time.time() * 1000) % 10**8}"
        props = {
            "realm": name,
            "display_name": "Users",
            "access_token_lifespan": 300,
            "access_code_lifespan": 90,
            "sso_session_idle_timeout": 1800,
            "sso_session_max_lifespan": 36000,
            "offline_session_idle_timeout": 86400,
            "connection": admin.connection(),
            "owner": OWNER,
        }
        try:
            state = realms.up(name, props)
            rep = admin.realm(name)
            assert rep is not None and state.id == rep["id"] and rep["enabled"] is True
            assert rep["displayName"] == "Users" and rep["accessCodeLifespan"] == 90
            assert rep["attributes"]["pulumi.stack"] == OWNER
            public = admin.section["public_url"]
            assert state.outputs["issuer_url"] == f"{public}/realms/{name}"
            assert state.outputs["jwks_url"] == f"{public}/realms/{name}/protocol/openid-connect/certs"

            # The same host process creates a client in the new realm: no 403 from a token older than it.
            clients.up("c", ziti_client(admin, name, platform))
            assert admin.client_by_client_id(name, "openziti") is not None

            refreshed = realms.refresh(name, state)
            assert refreshed is not None
            assert realms.preview_change(name, refreshed, props)[1].changes == "DIFF_NONE"
            news = {
                **props,
                "access_token_lifespan": 120,
                "display_name": "People",
                "enabled": False,
                "access_code_lifespan": 60,
                "sso_session_idle_timeout": 900,
                "sso_session_max_lifespan": 7200,
                "offline_session_idle_timeout": 3600,
            }
            updated, diff = realms.change(name, refreshed, news)
            rep = admin.realm(name)
            assert diff.changes == "DIFF_SOME" and rep is not None
            assert (rep["accessTokenLifespan"], rep["displayName"], rep["enabled"], rep["accessCodeLifespan"]) == (
                120,
                "People",
                False,
                60,
            )
            assert (rep["ssoSessionIdleTimeout"], rep["ssoSessionMaxLifespan"], rep["offlineSessionIdleTimeout"]) == (
                900,
                7200,
                3600,
            )
            again = realms.refresh(name, updated)
            assert again is not None and realms.preview_change(name, again, news)[1].changes == "DIFF_NONE"

            assert realms.preview_change(name, updated, {**props, "realm": "people"})[1].replaces == ["realm"]

            realms.delete(name, updated.id, updated.outputs)
            assert admin.realm(name) is None
            realms.delete(name, updated.id, updated.outputs)  # already gone: fine
        finally:
            admin.delete_realm(name)

    def test_the_platforms_realm_is_made_reads_back_without_drift_and_is_deleted(
        self, admin: RealKeycloak, realms: DynamicProviderHost, platform: str
    ) -> None:
        name = f"p-{platform}-{int(time.time() * 1000) % 10**8}"
        props = {**platform_inputs(platform, REALM_TYPE), "realm": name, "connection": admin.connection(),
                 "owner": OWNER}
        try:
            state = realms.up(name, props)
            rep = admin.realm(name)
            assert rep is not None and state.id == rep["id"] and rep["enabled"] is True
            # KeycloakIdentity's lifespans, as every platform's assembly leaves them.
            assert (rep["accessTokenLifespan"], rep["ssoSessionIdleTimeout"], rep["ssoSessionMaxLifespan"]) == (
                300, 1800, 36000)
            refreshed = realms.refresh(name, state)
            assert refreshed is not None and realms.preview_change(name, refreshed, props)[1].changes == "DIFF_NONE"
            realms.delete(name, state.id, state.outputs)
            assert admin.realm(name) is None
        finally:
            admin.delete_realm(name)

    def test_a_realm_of_another_owner_is_refused(self, admin: RealKeycloak, realms: DynamicProviderHost) -> None:
        name = f"theirs-{int(time.time() * 1000) % 10**8}"
        admin.seed_realm(name, {"pulumi.stack": "other/prod"})
        try:
            with pytest.raises(ProviderCallError, match=f"realm '{name}' already exists") as err:
                realms.up(name, {"realm": name, "connection": admin.connection(), "owner": OWNER})
            assert "'other/prod'" in err.value.details
            assert admin.realm(name)["attributes"]["pulumi.stack"] == "other/prod"  # type: ignore[index]
        finally:
            admin.delete_realm(name)

    def test_the_master_realm_is_never_taken_over(self, admin: RealKeycloak, realms: DynamicProviderHost) -> None:
        with pytest.raises(ProviderCallError, match="realm 'master' already exists"):
            realms.up("master", {"realm": "master", "connection": admin.connection(), "owner": OWNER})

    def test_our_realm_is_adopted(self, admin: RealKeycloak, realm: str, realms: DynamicProviderHost) -> None:
        props = {"realm": realm, "connection": admin.connection(), "owner": OWNER, "display_name": "Platform"}
        state = realms.up(realm, props)
        rep = admin.realm(realm)
        assert rep is not None and state.id == rep["id"] and rep["displayName"] == "Platform"

    def test_a_realm_replaced_by_a_namesake_reads_as_gone(
        self, admin: RealKeycloak, realms: DynamicProviderHost
    ) -> None:
        name = f"x-{int(time.time() * 1000) % 10**8}"
        try:
            state = realms.up(name, {"realm": name, "connection": admin.connection(), "owner": OWNER})
            admin.delete_realm(name)
            admin.seed_realm(name, {"pulumi.stack": OWNER})  # same name, new id
            assert realms.refresh(name, state) is None
        finally:
            admin.delete_realm(name)
