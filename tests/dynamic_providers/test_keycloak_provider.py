"""KeycloakClient / KeycloakRealm providers through `python -m pulumi.dynamic`, against the loopback Keycloak.

Every test drives the provider the way the engine does (tests/harness/dynamic_host.py: the
provider is dill-pickled, unpickled in a separate host process, called over gRPC with secrets
unwrapped) and checks the outcome on the fake server, not only in the provider's answers.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import pytest
from pulumi.runtime import rpc

from dynamic_providers.keycloak.client import RetryPolicy
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from tests.fakes import keycloak as fake_keycloak
from tests.fakes.keycloak import KeycloakFake
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError, State
from tests.harness.loopback import LoopbackServer

OWNER = "identity-platform/test"  # the host's PULUMI_PROJECT / PULUMI_STACK
CLIENT_TYPE = "pulumi-python:dynamic/keycloak:Client"
REALM_TYPE = "pulumi-python:dynamic/keycloak:Realm"
CLIENTS = "/admin/realms/{realm}/clients"
CLIENT = "/admin/realms/{realm}/clients/{uuid}"
FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)

Host = Callable[..., DynamicProviderHost]


@pytest.fixture
def fake(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    return fake_keycloak.start(loopback, platform_owner=OWNER)


@pytest.fixture
def clients(dynamic_host: Host) -> DynamicProviderHost:
    return dynamic_host(KeycloakClientProvider(retry=FAST, ready_timeout=5), resource_type=CLIENT_TYPE)


@pytest.fixture
def realms(dynamic_host: Host) -> DynamicProviderHost:
    return dynamic_host(KeycloakRealmProvider(retry=FAST, ready_timeout=5), resource_type=REALM_TYPE)


def confidential(fake: KeycloakFake, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "realm": "platform",
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
        "connection": fake.connection(),
        "owner": OWNER,
    }
    props.update(overrides)
    return props


def ziti_client(fake: KeycloakFake, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "realm": "platform",
        "client_id": "openziti",
        "access_type": "PUBLIC",
        "standard_flow_enabled": True,
        "implicit_flow_enabled": False,
        "direct_access_grants_enabled": False,
        "pkce_method": "S256",
        "redirect_uris": ["http://localhost:20314/auth/callback"],
        "audience": "openziti",
        "connection": fake.connection(),
        "owner": OWNER,
    }
    props.update(overrides)
    return props


def server(fake: KeycloakFake, client_id: str, realm: str = "platform") -> dict[str, Any]:
    rep = fake.client_by_client_id(realm, client_id)
    assert rep is not None, f"{client_id} not on the server"
    return rep


class TokenFault:
    """Something that happens to the admin token between two provider calls."""

    def __init__(self, fake: KeycloakFake, mode: str) -> None:
        self.fake, self.mode = fake, mode

    def between_calls(self) -> None:
        if self.mode == "expired":
            self.fake.expire_tokens()  # the host's cached token is now rejected (401)
        elif self.mode == "session-ended":
            self.fake.end_sessions()  # and so is its refresh token (400): log in again
        elif self.mode == "short-lived":
            time.sleep(0.6)  # past 90 % of a 0.5 s lifetime: renewed before use


class TestClientLifecycle:
    @pytest.mark.parametrize("mode", ["steady", "expired", "session-ended", "short-lived"])
    def test_create_read_noop_update_rotate_delete(
        self, fake: KeycloakFake, clients: DynamicProviderHost, mode: str
    ) -> None:
        if mode == "short-lived":
            fake.access_token_lifespan = 0.5
        token = TokenFault(fake, mode)
        props = confidential(fake)

        state = clients.up("billing", props)
        rep = server(fake, "billing")
        assert state.id == rep["id"]
        assert rep["publicClient"] is False and rep["bearerOnly"] is False
        [posted] = [body for method, path, body in fake.bodies if method == "POST" and path.endswith("/clients")]
        assert posted["protocol"] == "openid-connect"
        assert posted["publicClient"] is False and posted["bearerOnly"] is False  # explicit, never defaulted
        assert rep["attributes"]["pulumi.stack"] == OWNER
        assert rep["attributes"]["access.token.lifespan"] == "600"
        assert rep["attributes"]["post.logout.redirect.uris"] == "https://billing.acme.net/bye"
        assert state.outputs["client_secret"] == rep["secret"]
        assert state.outputs["issuer_url"] == f"{fake.url}/realms/platform"

        token.between_calls()
        refreshed = clients.refresh("billing", state)
        assert refreshed is not None and refreshed.id == state.id
        # Server defaults (frontchannelLogout, backchannel attributes, scopes...) are not drift.
        _, diff = clients.preview_change("billing", refreshed, props)
        assert diff.changes == "DIFF_NONE"

        token.between_calls()
        news = {
            **props,
            "redirect_uris": ["https://billing.acme.net/alt", "https://billing.acme.net/new"],
            "attributes": {"access.token.lifespan": 600, "use.refresh.tokens": True},  # custom.flag removed
        }
        updated, diff = clients.change("billing", refreshed, news)
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        rep = server(fake, "billing")
        assert sorted(rep["redirectUris"]) == ["https://billing.acme.net/alt", "https://billing.acme.net/new"]
        assert "custom.flag" not in rep["attributes"]
        assert rep["attributes"]["use.refresh.tokens"] == "true"
        assert updated.outputs["client_secret"] == rep["secret"] == state.outputs["client_secret"]

        token.between_calls()
        rotated, _ = clients.change("billing", updated, {**news, "rotate_secret_trigger": "2"})
        new_secret = server(fake, "billing")["secret"]
        assert new_secret != state.outputs["client_secret"]
        assert rotated.outputs["client_secret"] == new_secret

        token.between_calls()
        clients.delete("billing", rotated.id, rotated.outputs)
        assert fake.client_by_client_id("platform", "billing") is None
        assert fake.invalid_bodies == []
        if mode == "steady":
            assert fake.grants == {"password": 1}
        elif mode == "session-ended":
            assert fake.grants["password"] >= 4  # every renewal had to log in again
        else:
            assert fake.grants["refresh_token"] >= 4  # renewed between every pair of calls
        assert fake.server is not None and fake.server.count("POST", CLIENTS) == 1

    def test_public_pkce_client_with_audience_mapper(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        state = clients.up("ziti", ziti_client(fake))
        rep = server(fake, "openziti")
        assert rep["publicClient"] is True and "secret" not in rep
        assert rep["attributes"]["pkce.code.challenge.method"] == "S256"
        mappers = rep["protocolMappers"]
        assert [m["protocolMapper"] for m in mappers] == ["oidc-audience-mapper"]
        assert mappers[0]["config"]["included.custom.audience"] == "openziti"
        assert mappers[0]["config"]["access.token.claim"] == "true"
        assert state.outputs.get("client_secret") is None
        assert state.outputs["audience"] == "openziti"

        changed, _ = clients.change("ziti", state, ziti_client(fake, audience="ziti-controller"))
        mapper = server(fake, "openziti")["protocolMappers"][0]
        assert mapper["id"] == mappers[0]["id"]  # updated in place
        assert mapper["config"]["included.custom.audience"] == "ziti-controller"

        without = ziti_client(fake)
        del without["audience"]
        clients.change("ziti", changed, without)
        assert "protocolMappers" not in server(fake, "openziti")

    def test_bearer_only_client_runs_no_flows(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        props = {
            "realm": "platform",
            "client_id": "api",
            "access_type": "BEARER-ONLY",
            "connection": fake.connection(),
            "owner": OWNER,
        }
        clients.up("api", props)
        rep = server(fake, "api")
        assert rep["bearerOnly"] is True
        assert not (rep["standardFlowEnabled"] or rep["directAccessGrantsEnabled"] or rep["implicitFlowEnabled"])

    def test_client_id_change_renames_in_place(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        state = clients.up("ziti", ziti_client(fake))
        renamed, diff = clients.change("ziti", state, ziti_client(fake, client_id="ziti-users"))
        assert diff.replaces == [] and renamed.id == state.id
        assert fake.client_by_client_id("platform", "openziti") is None
        assert server(fake, "ziti-users")["id"] == state.id

    def test_rename_onto_a_taken_client_id_fails_naming_it(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        fake.seed_client("platform", {"clientId": "taken"})
        state = clients.up("ziti", ziti_client(fake))
        with pytest.raises(ProviderCallError, match="409") as err:
            clients.change("ziti", state, ziti_client(fake, client_id="taken"))
        assert "client_id 'taken' is already used by another client" in err.value.details
        assert "Duplicate resource error" in err.value.details  # Keycloak 26.7's own words, kept

    def test_realm_change_replaces(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        fake.seed_realm("other")
        state = clients.up("ziti", ziti_client(fake))
        moved, diff = clients.change("ziti", state, ziti_client(fake, realm="other"))
        assert diff.replaces == ["realm"] and diff.delete_before_replace, "the old client goes first"
        assert moved.id != state.id
        assert fake.client_by_client_id("platform", "openziti") is None
        assert server(fake, "openziti", realm="other")["id"] == moved.id

    def test_scopes_are_set_on_create_and_moved_through_their_endpoints(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        props = ziti_client(fake, default_client_scopes=["profile", "email"])
        props["optional_client_scopes"] = ["phone"]
        state = clients.up("ziti", props)
        rep = server(fake, "openziti")
        assert sorted(rep["defaultClientScopes"]) == ["email", "profile"]
        assert rep["optionalClientScopes"] == ["phone"]
        moved, diff = clients.change(
            "ziti", state, {**props, "default_client_scopes": ["profile", "phone"], "optional_client_scopes": ["email"]}
        )
        assert diff.changes == "DIFF_SOME"
        rep = server(fake, "openziti")
        assert sorted(rep["defaultClientScopes"]) == ["phone", "profile"]
        assert rep["optionalClientScopes"] == ["email"]
        same = {**props, "default_client_scopes": ["phone", "profile"], "optional_client_scopes": ["email"]}
        assert clients.preview_change("ziti", moved, same)[1].changes == "DIFF_NONE"

    def test_scopes_left_out_of_the_representation_are_read_from_their_endpoints(
        self, loopback: Callable[..., LoopbackServer], clients: DynamicProviderHost
    ) -> None:
        hidden = KeycloakFake(hide_scopes_in_representation=True)
        hidden.serve(loopback)
        hidden.seed_realm("platform", {"pulumi.stack": OWNER})
        props = ziti_client(hidden, default_client_scopes=["profile", "email"], optional_client_scopes=["phone"])
        state = clients.up("ziti", props)
        assert sorted(state.outputs["default_client_scopes"]) == ["email", "profile"]
        refreshed = clients.refresh("ziti", state)
        assert refreshed is not None and refreshed.outputs["optional_client_scopes"] == ["phone"]
        assert clients.preview_change("ziti", refreshed, props)[1].changes == "DIFF_NONE"  # no perpetual diff

    def test_an_unknown_scope_fails_before_anything_is_created(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        with pytest.raises(ProviderCallError, match="no-such-scope") as err:
            clients.up("ziti", ziti_client(fake, default_client_scopes=["profile", "no-such-scope"]))
        assert "available" in err.value.details
        assert fake.client_by_client_id("platform", "openziti") is None


class TestSecrets:
    def test_a_secret_rotated_elsewhere_is_never_overwritten_by_an_update(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        state = clients.up("billing", confidential(fake))
        rotated_elsewhere = fake.rotate_secret_out_of_band("platform", state.id)
        updated, _ = clients.change("billing", state, confidential(fake, description="now described"))
        assert server(fake, "billing")["secret"] == rotated_elsewhere
        assert updated.outputs["client_secret"] == rotated_elsewhere
        puts = [body for method, path, body in fake.bodies if method == "PUT" and path.endswith(state.id)]
        assert len(puts) == 1 and puts[0]["description"] == "now described"
        assert "secret" not in puts[0] and "protocolMappers" not in puts[0]  # never a stale copy

    def test_the_secret_is_read_from_its_endpoint_when_the_representation_masks_it(
        self, loopback: Callable[..., LoopbackServer], clients: DynamicProviderHost
    ) -> None:
        masked = KeycloakFake(mask_secret_in_representation=True)
        masked.serve(loopback)
        masked.seed_realm("platform", {"pulumi.stack": OWNER})
        state = clients.up("billing", confidential(masked))
        assert state.outputs["client_secret"] == server(masked, "billing")["secret"]
        assert "*" not in state.outputs["client_secret"]

    def test_switching_a_public_client_to_confidential_yields_a_secret(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        state = clients.up("ziti", ziti_client(fake))
        assert state.outputs.get("client_secret") is None
        switched, _ = clients.change("ziti", state, ziti_client(fake, access_type="CONFIDENTIAL"))
        assert switched.outputs["client_secret"] == server(fake, "openziti")["secret"]
        back, _ = clients.change("ziti", switched, ziti_client(fake))
        assert back.outputs.get("client_secret") is None and "secret" not in server(fake, "openziti")

    def test_read_never_turns_the_secret_into_an_input(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        state = clients.up("billing", confidential(fake))
        _, outs, inputs = clients.read("billing", state.id, state.outputs)
        assert outs["client_secret"] and inputs is not None and "client_secret" not in inputs

    def test_the_pickled_provider_holds_no_credentials(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        clients.up("billing", confidential(fake))
        blob = base64.b64decode(clients.blob)
        assert b"admin-password" not in blob and fake.url.encode() not in blob
        assert clients.serialized_size < 600, clients.serialized_size


class TestOwnership:
    def test_an_orphan_of_this_stack_is_adopted_and_brought_in_line(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        # As left by a crash between Keycloak's create and the state write.
        orphan = fake.seed_client(
            "platform",
            {
                "clientId": "openziti",
                "publicClient": True,
                "redirectUris": ["https://old/cb"],
                "attributes": {"pulumi.stack": OWNER},
            },
        )
        state = clients.up("ziti", ziti_client(fake))
        assert state.id == orphan
        rep = server(fake, "openziti")
        assert rep["redirectUris"] == ["http://localhost:20314/auth/callback"]
        assert rep["protocolMappers"][0]["config"]["included.custom.audience"] == "openziti"
        assert fake.count_clients("platform", "openziti") == 1

    @pytest.mark.parametrize("marker", [None, "identity-platform/prod", "someone-else/test"])
    def test_a_foreign_client_is_refused_with_its_name_and_id(
        self, fake: KeycloakFake, clients: DynamicProviderHost, marker: str | None
    ) -> None:
        attrs = {"pulumi.stack": marker} if marker else {}
        foreign = fake.seed_client("platform", {"clientId": "openziti", "publicClient": False, "attributes": attrs})
        before = server(fake, "openziti")
        with pytest.raises(ProviderCallError) as err:
            clients.up("ziti", ziti_client(fake))
        details = err.value.details
        assert "'openziti' already exists in realm 'platform'" in details and foreign in details
        assert ("absent" if marker is None else marker) in details
        assert "pulumi.stack=identity-platform/test" in details  # how to hand it over
        assert server(fake, "openziti") == before  # untouched

    def test_inputs_without_owner_are_marked_with_the_hosts_stack(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        props = confidential(fake)
        del props["owner"]  # as another program driving the provider with only the inputs
        state = clients.up("billing", props)
        assert server(fake, "billing")["attributes"]["pulumi.stack"] == OWNER
        assert state.outputs["owner"] == OWNER
        _, diff = clients.preview_change("billing", state, props)
        assert diff.changes == "DIFF_NONE"

    def test_minimal_inputs_create_a_confidential_client_with_keycloaks_defaults(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        props = {"realm": "platform", "client_id": "svc", "connection": fake.connection()}
        state = clients.up("svc", props)
        rep = server(fake, "svc")
        assert state.id == rep["id"] and rep["publicClient"] is False and rep["bearerOnly"] is False
        assert rep["standardFlowEnabled"] is True  # Keycloak's default, left unmanaged
        assert state.outputs["client_secret"] == rep["secret"]
        refreshed = clients.refresh("svc", state)
        assert refreshed is not None
        _, diff = clients.preview_change("svc", refreshed, props)
        assert diff.changes == "DIFF_NONE"
        clients.delete("svc", state.id, refreshed.outputs)
        assert fake.client_by_client_id("platform", "svc") is None

    def test_keycloak_built_in_clients_are_never_taken_over(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        with pytest.raises(ProviderCallError, match="'account' already exists"):
            clients.up("acct", ziti_client(fake, client_id="account"))


class TestLostAnswersNeverDuplicate:
    def test_create_whose_response_is_lost_is_adopted_not_repeated(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, reset_after=True)  # Keycloak created it; the answer is lost
        state = clients.up("ziti", ziti_client(fake))
        assert fake.count_clients("platform", "openziti") == 1
        assert state.id == server(fake, "openziti")["id"]
        assert fake.server.count("POST", CLIENTS) == 1

    def test_create_reset_before_keycloak_saw_it_is_sent_again(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, reset=True)
        state = clients.up("ziti", ziti_client(fake))
        assert fake.count_clients("platform", "openziti") == 1
        assert state.id == server(fake, "openziti")["id"]
        assert fake.server.count("POST", CLIENTS) == 2

    def test_create_slower_than_the_timeout_leaves_one_client(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, delay=1.5)
        state = clients.up("ziti", ziti_client(fake, connection=fake.connection(timeout=0.5)))
        time.sleep(1.5)  # let the slow request finish on the server
        assert fake.count_clients("platform", "openziti") == 1
        assert state.id == server(fake, "openziti")["id"]

    def test_503_on_create_is_checked_before_retrying(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, status=503)
        clients.up("ziti", ziti_client(fake))
        assert fake.count_clients("platform", "openziti") == 1
        assert fake.server.count("GET", CLIENTS) == 1  # looked up before the second POST

    def test_429_with_retry_after_on_create_waits_and_succeeds(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, status=429, headers={"Retry-After": "1"})
        start = time.monotonic()
        clients.up("ziti", ziti_client(fake))
        assert time.monotonic() - start >= 1.0
        assert fake.count_clients("platform", "openziti") == 1

    def test_500_on_create_is_looked_up_before_it_is_sent_again(self, fake: KeycloakFake,
                                                                 clients: DynamicProviderHost) -> None:
        """A 5xx to a POST leaves its outcome unknown (the transport's one rule): look, then post."""
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, status=500, body={"errorMessage": "unknown_error"})
        clients.up("ziti", ziti_client(fake))
        assert fake.count_clients("platform", "openziti") == 1
        assert fake.server.count("POST", CLIENTS) == 2 and fake.server.count("GET", CLIENTS) >= 1

    def test_a_persistent_500_on_create_fails_without_a_client(self, fake: KeycloakFake,
                                                               clients: DynamicProviderHost) -> None:
        assert fake.server is not None
        fake.server.inject("POST", CLIENTS, status=500, body={"errorMessage": "unknown_error"}, times=100)
        with pytest.raises(ProviderCallError, match="500"):
            clients.up("ziti", ziti_client(fake))
        assert fake.client_by_client_id("platform", "openziti") is None

    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param({"status": 503, "headers": {"Retry-After": "0"}, "times": 2}, id="503"),
            pytest.param({"status": 502, "times": 1}, id="502"),
            pytest.param({"reset": True}, id="reset"),
            pytest.param({"delay": 1.2}, id="slower-than-timeout"),
        ],
    )
    def test_refresh_rides_out_transient_faults(
        self, fake: KeycloakFake, clients: DynamicProviderHost, fault: dict[str, Any]
    ) -> None:
        state = clients.up("ziti", ziti_client(fake, connection=fake.connection(timeout=0.5)))
        assert fake.server is not None
        fake.server.inject("GET", CLIENT, **fault)
        refreshed = clients.refresh("ziti", state)
        assert refreshed is not None and refreshed.id == state.id

    def test_a_lost_answer_when_adding_the_audience_mapper_leaves_one_mapper(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        without = ziti_client(fake)
        del without["audience"]
        state = clients.up("ziti", without)
        assert fake.server is not None
        fake.server.inject("POST", "/admin/realms/{realm}/clients/{uuid}/protocol-mappers/models", reset_after=True)
        clients.change("ziti", state, ziti_client(fake))
        mappers = server(fake, "openziti")["protocolMappers"]
        assert [m["name"] for m in mappers] == ["pulumi-audience"]
        models = "/admin/realms/{realm}/clients/{uuid}/protocol-mappers/models"
        assert (fake.server.count("POST", models), fake.server.count("GET", models)) == (1, 1)  # looked up, not re-sent

    def test_delete_is_idempotent(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        state = clients.up("ziti", ziti_client(fake))
        clients.delete("ziti", state.id, state.outputs)
        clients.delete("ziti", state.id, state.outputs)  # 404 counts as success
        assert clients.refresh("ziti", state) is None


class TestDriftAndDiff:
    def test_drift_on_the_server_shows_up_after_refresh_and_is_repaired(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        props = ziti_client(fake)
        state = clients.up("ziti", props)
        with fake.lock:
            rep = fake.realms["platform"].clients[state.id].rep
            rep["redirectUris"] = ["https://evil.example/cb"]
            rep["attributes"]["pkce.code.challenge.method"] = "plain"
        refreshed = clients.refresh("ziti", state)
        assert refreshed is not None
        assert refreshed.inputs["redirect_uris"] == ["https://evil.example/cb"]
        assert refreshed.inputs["pkce_method"] == "plain"
        repaired, diff = clients.change("ziti", refreshed, props)
        assert diff.changes == "DIFF_SOME"
        rep = server(fake, "openziti")
        assert rep["redirectUris"] == props["redirect_uris"]
        assert rep["attributes"]["pkce.code.challenge.method"] == "S256"
        assert clients.preview_change("ziti", repaired, props)[1].changes == "DIFF_NONE"

    def test_a_client_deleted_outside_pulumi_reads_as_gone(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        state = clients.up("ziti", ziti_client(fake))
        with fake.lock:
            del fake.realms["platform"].clients[state.id]
        assert clients.refresh("ziti", state) is None

    @pytest.mark.parametrize(
        "edit",
        [
            pytest.param({"redirect_uris": ["http://localhost:20314/auth/callback"] * 2}, id="duplicate-uri"),
            pytest.param({"attributes": {}}, id="empty-map-equals-none"),
            pytest.param({"description": ""}, id="empty-string-equals-absent"),
            pytest.param({"enabled": True}, id="default-made-explicit"),
        ],
    )
    def test_equivalent_inputs_are_no_change(
        self, fake: KeycloakFake, clients: DynamicProviderHost, edit: dict[str, Any]
    ) -> None:
        state = clients.up("ziti", ziti_client(fake))
        _, diff = clients.preview_change("ziti", state, {**ziti_client(fake), **edit})
        assert diff.changes == "DIFF_NONE"

    def test_reordered_uris_and_stringly_attributes_are_no_change(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        props = confidential(fake)
        state = clients.up("billing", props)
        same = {
            **props,
            "redirect_uris": list(reversed(props["redirect_uris"])),
            "attributes": {"access.token.lifespan": "600", "use.refresh.tokens": "true", "custom.flag": "on"},
        }
        assert clients.preview_change("billing", state, same)[1].changes == "DIFF_NONE"

    def test_new_credentials_update_the_state_without_touching_keycloak(
        self, fake: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        state = clients.up("ziti", ziti_client(fake))
        assert fake.server is not None
        fake.server.reset_log()
        new_conn = fake.connection(timeout=7)
        updated, diff = clients.change("ziti", state, ziti_client(fake, connection=new_conn))
        assert diff.changes == "DIFF_SOME"
        assert updated.outputs["connection"]["timeout"] == 7
        assert fake.server.count() == 0


class TestPreviewMakesNoRequests:
    def test_check_and_diff_never_call_keycloak(self, fake: KeycloakFake, clients: DynamicProviderHost) -> None:
        state = clients.up("ziti", ziti_client(fake))
        assert fake.server is not None
        fake.server.reset_log()
        # New resource, then a changed one, then inputs still Unknown (first preview of a stack).
        clients.check("new", {}, ziti_client(fake, client_id="new"))
        clients.preview_change("ziti", state, ziti_client(fake, redirect_uris=["https://zac.acme.net/cb"]))
        unknown = ziti_client(
            fake,
            realm=rpc.UNKNOWN,
            connection={**fake.connection(), "password": rpc.UNKNOWN, "url": rpc.UNKNOWN},
            redirect_uris=[rpc.UNKNOWN],
        )
        checked, diff = clients.preview_change("ziti", state, unknown)
        assert checked.failures == []
        assert diff.changes == "DIFF_SOME" and diff.replaces == ["realm"]
        assert fake.server.count() == 0

    def test_realm_check_and_diff_never_call_keycloak(self, fake: KeycloakFake, realms: DynamicProviderHost) -> None:
        props = {"realm": "platform", "connection": fake.connection(), "owner": OWNER, "access_token_lifespan": 300}
        assert fake.server is not None
        fake.server.reset_log()
        checked = realms.check("r", {}, props)
        assert checked.failures == []
        state = State("id", checked.inputs, {**checked.inputs, "enabled": True})
        realms.preview_change("r", state, {**props, "access_token_lifespan": 120})
        assert fake.server.count() == 0


class TestRealmLifecycle:
    def test_a_keycloak_without_discovery_gives_the_issuer_of_its_url(
        self, loopback: Callable[..., LoopbackServer], realms: DynamicProviderHost
    ) -> None:
        """The discovery document is OpenID Connect's, not the Admin API's: a server that answers it
        404 gets the issuer Keycloak derives from the URL the provider uses (no frontend URL set)."""
        kc = KeycloakFake()
        kc.serve(loopback)
        assert kc.server is not None
        kc.server.inject("GET", "/realms/{realm}/.well-known/openid-configuration", status=404,
                         body={"error": "HTTP 404 Not Found"}, times=10)
        state = realms.up("users", {"realm": "users", "connection": kc.connection(), "owner": OWNER})
        assert state.outputs["issuer_url"] == f"{kc.url}/realms/users"
        assert state.outputs["jwks_url"] == f"{kc.url}/realms/users/protocol/openid-connect/certs"
        refreshed = realms.refresh("users", state)
        assert refreshed is not None and refreshed.outputs["issuer_url"] == f"{kc.url}/realms/users"
        assert "users" in kc.realms

    def test_create_read_update_delete_with_issuer_from_discovery(
        self, loopback: Callable[..., LoopbackServer], realms: DynamicProviderHost, clients: DynamicProviderHost
    ) -> None:
        kc = KeycloakFake(frontend_url="https://auth.acme.net", new_realm_needs_new_token=True)
        kc.serve(loopback)
        props = {
            "realm": "users",
            "display_name": "Users",
            "access_token_lifespan": 300,
            "sso_session_idle_timeout": 1800,
            "connection": kc.connection(),
            "owner": OWNER,
        }
        state = realms.up("users", props)
        rep = kc.realms["users"].rep
        assert state.id == rep["id"] and rep["enabled"] is True and rep["displayName"] == "Users"
        assert rep["attributes"]["pulumi.stack"] == OWNER
        assert state.outputs["issuer_url"] == "https://auth.acme.net/realms/users"
        # JWKS is a back-channel endpoint: it follows the URL the provider used (KC_HOSTNAME_BACKCHANNEL_DYNAMIC).
        assert state.outputs["jwks_url"] == f"{kc.url}/realms/users/protocol/openid-connect/certs"

        # The same host process then creates a client in the new realm: no 403 from a stale token.
        clients.up("c", ziti_client(kc, realm="users"))
        assert kc.client_by_client_id("users", "openziti") is not None

        refreshed = realms.refresh("users", state)
        assert refreshed is not None
        assert realms.preview_change("users", refreshed, props)[1].changes == "DIFF_NONE"
        updated, diff = realms.change("users", refreshed, {**props, "access_token_lifespan": 120})
        assert diff.changes == "DIFF_SOME" and kc.realms["users"].rep["accessTokenLifespan"] == 120
        assert kc.realms["users"].rep["ssoSessionMaxLifespan"] == 36000  # unmanaged: untouched

        renamed_diff = realms.preview_change("users", updated, {**props, "realm": "people"})[1]
        assert renamed_diff.replaces == ["realm"]

        realms.delete("users", updated.id, updated.outputs)
        assert "users" not in kc.realms
        realms.delete("users", updated.id, updated.outputs)  # already gone: fine
        assert kc.invalid_bodies == []

    def test_a_realm_of_another_owner_is_refused(self, fake: KeycloakFake, realms: DynamicProviderHost) -> None:
        fake.seed_realm("theirs", {"pulumi.stack": "other/prod"})
        props = {"realm": "theirs", "connection": fake.connection(), "owner": OWNER}
        with pytest.raises(ProviderCallError, match="realm 'theirs' already exists") as err:
            realms.up("theirs", props)
        assert "'other/prod'" in err.value.details

    def test_our_realm_is_adopted(self, fake: KeycloakFake, realms: DynamicProviderHost) -> None:
        props = {"realm": "platform", "connection": fake.connection(), "owner": OWNER, "display_name": "Platform"}
        state = realms.up("platform", props)
        assert state.id == fake.realms["platform"].rep["id"]
        assert fake.realms["platform"].rep["displayName"] == "Platform"

    def test_realm_create_whose_answer_is_lost_is_adopted(
        self, fake: KeycloakFake, realms: DynamicProviderHost
    ) -> None:
        assert fake.server is not None
        fake.server.inject("POST", "/admin/realms", reset_after=True)
        state = realms.up("lost", {"realm": "lost", "connection": fake.connection(), "owner": OWNER})
        assert state.id == fake.realms["lost"].rep["id"]
        assert fake.server.count("POST", "/admin/realms") == 1

    def test_a_realm_replaced_by_a_namesake_reads_as_gone(
        self, fake: KeycloakFake, realms: DynamicProviderHost
    ) -> None:
        state = realms.up("x", {"realm": "x", "connection": fake.connection(), "owner": OWNER})
        with fake.lock:
            fake.realms["x"].rep["id"] = "someone-elses-realm"
        assert realms.refresh("x", state) is None


class TestReadinessThroughTheHost:
    def test_first_create_waits_for_keycloak_to_start(self, fake: KeycloakFake, dynamic_host: Host) -> None:
        host = dynamic_host(KeycloakClientProvider(retry=FAST, ready_timeout=30), resource_type=CLIENT_TYPE)
        assert fake.server is not None
        fake.server.inject("POST", "/realms/{realm}/protocol/openid-connect/token", status=503, times=8)
        host.up("ziti", ziti_client(fake))
        assert fake.count_clients("platform", "openziti") == 1

    def test_update_and_refresh_wait_for_keycloak_restarting(self, fake: KeycloakFake, dynamic_host: Host) -> None:
        """Keycloak replaced in the same `up` (a new image) before a change to its client: the
        update, and a refresh, wait for it as the first create does."""
        state = dynamic_host(KeycloakClientProvider(retry=FAST, ready_timeout=30), resource_type=CLIENT_TYPE).up(
            "ziti", ziti_client(fake)
        )
        assert fake.server is not None
        token = "/realms/{realm}/protocol/openid-connect/token"
        fake.server.inject("POST", token, status=503, times=8)
        host = dynamic_host(KeycloakClientProvider(retry=FAST, ready_timeout=30), resource_type=CLIENT_TYPE)
        changed, diff = host.change("ziti", state, {**ziti_client(fake), "description": "restarted"})
        assert diff.changes == "DIFF_SOME"
        stored = fake.client_by_client_id("platform", "openziti")
        assert stored is not None and stored["description"] == "restarted"
        fake.server.inject("POST", token, status=503, times=8)
        refreshed = dynamic_host(KeycloakClientProvider(retry=FAST, ready_timeout=30), resource_type=CLIENT_TYPE)
        assert refreshed.refresh("ziti", changed) is not None

    def test_gives_up_with_the_url_when_keycloak_never_answers(self, dynamic_host: Host) -> None:
        host = dynamic_host(KeycloakClientProvider(retry=FAST, ready_timeout=1), resource_type=CLIENT_TYPE)
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conn = {"url": f"http://localhost:{port}", "username": "admin", "password": "pw"}
        with pytest.raises(ProviderCallError) as err:
            host.up("ziti", {**ziti_client_stub(), "connection": conn})
        assert f"http://localhost:{port}" in err.value.details and "did not answer within 1 s" in err.value.details


def ziti_client_stub() -> dict[str, Any]:
    return {
        "realm": "platform",
        "client_id": "openziti",
        "access_type": "PUBLIC",
        "redirect_uris": ["http://localhost:20314/auth/callback"],
        "owner": OWNER,
    }
