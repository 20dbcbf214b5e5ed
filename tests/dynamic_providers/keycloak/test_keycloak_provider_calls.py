"""The Keycloak providers called in-process, through their public methods (check, diff, create,
update, delete), against the loopback fake: what each call leaves on the server and what it says.

The same contracts as tests/dynamic_providers/test_foreign_objects.py and test_keycloak_provider.py
prove through the engine's provider host; here they run in the test process, so mutation testing
(bench/mutation.py) sees which test exercises which decision:

* create-or-adopt: a create that finds the name taken (409), or lost its answer, adopts the object
  only when it carries this stack's `pulumi.stack` attribute and brings it to the declared state;
  any other holder is refused with a 409 naming it; any other refusal is raised at once; a POST
  whose outcome stays unknown is repeated at most `attempts` times;
* ownership on every write: an update or delete that finds at the state's address an object that
  is not the state's, or not marked as this stack's, is refused untouched (`ForeignObjectError`);
* check and diff details the diff table does not reach (defaults of unset inputs, the connection's
  timeout, Unknown values kept as Unknown, the comparable forms `normalise` gives).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pulumi.output import Unknown

from dynamic_providers._kernel import ForeignObjectError
from dynamic_providers.keycloak.client import KeycloakApiError, RetryPolicy, forget_tokens
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider, normalise
from tests.fakes import keycloak as fake_keycloak
from tests.fakes.keycloak import KeycloakFake
from tests.harness.loopback import LoopbackServer

OWNER = "identity-platform/test"  # this stack: PULUMI_PROJECT / PULUMI_STACK below
OTHER = "identity-platform/prod"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
REALMS = "/admin/realms"
CLIENTS = "/admin/realms/{realm}/clients"
CLIENT = "/admin/realms/{realm}/clients/{uuid}"
HANDOVER = "If this stack should let go of it, `pulumi refresh` drops it from this stack's state"


@pytest.fixture(autouse=True)
def _this_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PULUMI_PROJECT", "identity-platform")
    monkeypatch.setenv("PULUMI_STACK", "test")
    forget_tokens()
    yield
    forget_tokens()


@pytest.fixture
def fake(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    return fake_keycloak.start(loopback, platform_owner=OWNER)


def server(fake: KeycloakFake) -> LoopbackServer:
    assert fake.server is not None
    return fake.server


def realms() -> KeycloakRealmProvider:
    return KeycloakRealmProvider(retry=FAST, ready_timeout=5)


def clients() -> KeycloakClientProvider:
    return KeycloakClientProvider(retry=FAST, ready_timeout=5)


# --- realms: create or adopt -------------------------------------------------------------------------


def realm_props(fake: KeycloakFake, **extra: Any) -> dict[str, Any]:
    return {
        "realm": "shop",
        "enabled": True,
        "display_name": "Shop",
        "access_token_lifespan": 300,
        "connection": fake.connection(),
        "owner": OWNER,
        **extra,
    }


def seed_shop(fake: KeycloakFake, attributes: dict[str, str], **fields: Any) -> dict[str, Any]:
    """Realm `shop` made outside this call (an earlier run that crashed before its state write, or
    another tool), with `fields` over Keycloak's defaults."""
    rep = fake.seed_realm("shop", attributes)
    with fake.lock:
        fake.realms["shop"].rep.update(fields)
    return rep


class TestRealmCreateOrAdopt:
    def test_our_realm_left_by_a_crash_is_adopted_and_brought_to_the_declared_state(self, fake: KeycloakFake) -> None:
        seed_shop(fake, {"pulumi.stack": OWNER}, displayName="Old", accessTokenLifespan=60)
        seeded = fake.realms["shop"].rep["id"]
        result = realms().create(realm_props(fake))
        assert result.id == seeded
        rep = fake.realms["shop"].rep
        assert (rep["displayName"], rep["accessTokenLifespan"], rep["attributes"]["pulumi.stack"]) == (
            "Shop",
            300,
            OWNER,
        )
        assert result.outs["display_name"] == "Shop" and result.outs["owner"] == OWNER
        assert server(fake).count("POST", REALMS) == 1  # the 409, then the lookup: no second POST
        assert server(fake).count("PUT", "/admin/realms/{realm}") == 1

    def test_our_realm_already_as_declared_is_adopted_without_a_write(self, fake: KeycloakFake) -> None:
        seed_shop(fake, {"pulumi.stack": OWNER}, displayName="Shop", accessTokenLifespan=300)
        result = realms().create(realm_props(fake))
        assert result.id == fake.realms["shop"].rep["id"]
        assert fake.writes() == [f"POST {REALMS}"]

    @pytest.mark.parametrize(
        ("attributes", "holder"),
        [
            pytest.param({"pulumi.stack": OTHER}, repr(OTHER), id="another-stack"),
            pytest.param({}, "absent", id="unmarked"),
        ],
    )
    def test_a_realm_of_another_holder_is_refused_with_a_409_naming_it(
        self, fake: KeycloakFake, attributes: dict[str, str], holder: str
    ) -> None:
        seed_shop(fake, attributes, displayName="Theirs")
        before = copy.deepcopy(fake.realms["shop"].rep)
        with pytest.raises(KeycloakApiError) as err:
            realms().create(realm_props(fake))
        assert err.value.status == 409
        assert str(err.value) == (
            f"realm 'shop' already exists (id {before['id']}) and is not managed by this stack: its pulumi.stack "
            f"attribute is {holder}, this stack is {OWNER!r}. Choose another realm name, or hand it over by "
            f"setting the realm attribute pulumi.stack={OWNER}"
        )
        assert fake.realms["shop"].rep == before
        assert fake.writes() == [f"POST {REALMS}"]

    def test_a_lost_answer_after_the_realm_was_created_is_adopted_not_repeated(self, fake: KeycloakFake) -> None:
        server(fake).inject("POST", REALMS, reset_after=True)
        result = realms().create(realm_props(fake))
        assert result.id == fake.realms["shop"].rep["id"]
        assert server(fake).count("POST", REALMS) == 1

    def test_the_lookup_after_a_lost_answer_uses_a_token_that_sees_the_new_realm(self, fake: KeycloakFake) -> None:
        """Older Keycloaks answer 403 for a realm newer than the caller's token: the lookup after a
        lost POST gets a new token before it asks, not after a 403."""
        fake.new_realm_needs_new_token = True
        server(fake).inject("POST", REALMS, reset_after=True)
        result = realms().create(realm_props(fake))
        assert result.id == fake.realms["shop"].rep["id"]
        assert [r.status for r in server(fake).log if r.method == "GET" and r.pattern == "/admin/realms/{realm}"] == [
            200
        ]

    def test_a_refusal_other_than_409_is_raised_at_once(self, fake: KeycloakFake) -> None:
        server(fake).inject("POST", REALMS, status=400, body={"errorMessage": "invalid realm"})
        with pytest.raises(KeycloakApiError) as err:
            realms().create(realm_props(fake))
        assert err.value.status == 400 and "invalid realm" in str(err.value)
        assert server(fake).count("POST", REALMS) == 1
        assert "shop" not in fake.realms

    def test_a_post_whose_outcome_stays_unknown_is_tried_attempts_times_then_reported(self, fake: KeycloakFake) -> None:
        server(fake).inject("POST", REALMS, status=503, times=10)
        with pytest.raises(KeycloakApiError) as err:
            realms().create(realm_props(fake))
        assert err.value.status == 503
        assert str(err.value).startswith("could not create realm 'shop': ")
        assert server(fake).count("POST", REALMS) == FAST.attempts
        assert "shop" not in fake.realms


# --- realms: ownership on update and delete -------------------------------------------------------------


# case: (change made outside Pulumi, attributes it leaves, the reason the refusal gives)
NOT_OURS = "it is not managed by this stack"
REPLACED = (
    "it is not the one in this stack's state (id {state}): that one was deleted and this one created in its place "
    "outside Pulumi"
)
REALM_CASES = {
    "recreated-with-our-marker": (KeycloakFake.recreate_realm, {"pulumi.stack": OWNER}, REPLACED),
    "recreated-by-another-stack": (KeycloakFake.recreate_realm, {"pulumi.stack": OTHER}, REPLACED),
    "recreated-unmarked": (KeycloakFake.recreate_realm, {}, REPLACED),
    "handed-to-another-stack": (KeycloakFake.remark_realm, {"pulumi.stack": OTHER}, NOT_OURS),
    "marker-removed": (KeycloakFake.remark_realm, {}, NOT_OURS),
}


class TestRealmOwnership:
    @pytest.mark.parametrize("case", sorted(REALM_CASES))
    def test_a_foreign_realm_at_the_states_name_is_refused_untouched(self, fake: KeycloakFake, case: str) -> None:
        props = realm_props(fake)
        created = realms().create(props)
        change, attributes, reason = REALM_CASES[case]
        change(fake, "shop", attributes)
        before = copy.deepcopy(fake.realms["shop"].rep)
        server(fake).reset_log()
        holder = repr(attributes["pulumi.stack"]) if attributes else "absent"
        adopt = "then `pulumi refresh` and `pulumi up` adopt it"
        handover = adopt if reason == REPLACED else "then run the same Pulumi command"
        expected = {
            "update": f"refusing to update Keycloak realm 'shop' (id {before['id']}): "
            f"{reason.format(state=created.id)}",
            "delete": f"refusing to delete Keycloak realm 'shop' (id {before['id']}): "
            f"{reason.format(state=created.id)}",
        }
        tail = (
            f"its pulumi.stack attribute is {holder}, this stack is {OWNER!r}. Nothing was changed. To hand it over "
            f"to this stack: set its attribute pulumi.stack={OWNER} (`kcadm.sh update realms/shop -s "
            f"'attributes.\"pulumi.stack\"={OWNER}'`), {handover}"
        )

        with pytest.raises(ForeignObjectError) as update:
            realms().update(created.id, created.outs, {**props, "display_name": "Changed"})
        with pytest.raises(ForeignObjectError) as delete:
            realms().delete(created.id, created.outs)
        for action, err in (("update", update), ("delete", delete)):
            text = str(err.value)
            assert text.startswith(expected[action]), text
            assert tail in text and HANDOVER in text, text
        assert fake.realms["shop"].rep == before
        assert fake.writes() == []
        assert realms().read(created.id, created.outs).id is None  # a refresh forgets it

    def test_a_realm_marked_by_the_stacks_previous_name_is_ours_and_re_marked(self, fake: KeycloakFake) -> None:
        old = "identity-platform/old-name"
        created = realms().create(realm_props(fake, owner=old))
        props = realm_props(fake, display_name="Renamed")  # the stack was renamed: owner is now OWNER
        updated = realms().update(created.id, created.outs, props)
        rep = fake.realms["shop"].rep
        assert rep["displayName"] == "Renamed" and rep["attributes"]["pulumi.stack"] == OWNER
        assert updated.outs["owner"] == OWNER

    def test_a_delete_without_the_engines_stack_goes_by_the_owner_the_state_recorded(
        self, fake: KeycloakFake, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        created = realms().create(realm_props(fake))
        monkeypatch.delenv("PULUMI_PROJECT")
        monkeypatch.delenv("PULUMI_STACK")
        realms().delete(created.id, created.outs)
        assert "shop" not in fake.realms

    @pytest.mark.parametrize("recorded", [None, ""], ids=["no-owner-recorded", "empty-owner-recorded"])
    def test_a_delete_with_no_marker_at_all_is_refused(
        self, fake: KeycloakFake, monkeypatch: pytest.MonkeyPatch, recorded: str | None
    ) -> None:
        created = realms().create(realm_props(fake))
        monkeypatch.delenv("PULUMI_PROJECT")
        monkeypatch.delenv("PULUMI_STACK")
        state = {k: v for k, v in created.outs.items() if k != "owner"}
        if recorded is not None:
            state["owner"] = recorded
        with pytest.raises(ForeignObjectError) as err:
            realms().delete(created.id, state)
        assert (
            f"its pulumi.stack attribute is {OWNER!r}, this stack is unknown (no owner input and no "
            "PULUMI_PROJECT/PULUMI_STACK)"
        ) in str(err.value)
        assert 'attributes."pulumi.stack"=<project>/<stack>' in str(err.value)
        assert "shop" in fake.realms

    def test_a_delete_goes_by_the_engines_stack_when_the_state_recorded_another_marker(
        self, fake: KeycloakFake
    ) -> None:
        created = realms().create(realm_props(fake))  # marked OWNER, the engine's stack
        realms().delete(created.id, {**created.outs, "owner": "identity-platform/old-name"})
        assert "shop" not in fake.realms

    def test_a_state_with_a_broken_connection_is_reported(self, fake: KeycloakFake) -> None:
        created = realms().create(realm_props(fake))
        broken = {**created.outs, "connection": {**created.outs["connection"], "url": "ftp://auth.acme.net"}}
        with pytest.raises(KeycloakApiError) as err:
            realms().delete(created.id, broken)
        assert str(err.value).startswith("invalid connection.url: ")
        assert "'ftp://auth.acme.net' is not an http(s) URL" in str(err.value)
        assert "shop" in fake.realms

    def test_our_realm_is_updated_and_deleted_and_a_gone_one_is_deleted(self, fake: KeycloakFake) -> None:
        props = realm_props(fake)
        created = realms().create(props)
        updated = realms().update(created.id, created.outs, {**props, "display_name": "Changed"})
        assert fake.realms["shop"].rep["displayName"] == "Changed"
        realms().delete(created.id, updated.outs)
        assert "shop" not in fake.realms
        realms().delete(created.id, updated.outs)  # already gone: success


# --- clients: create or adopt ----------------------------------------------------------------------------


def client_props(fake: KeycloakFake, **extra: Any) -> dict[str, Any]:
    return {
        "realm": "platform",
        "client_id": "billing",
        "name": "Billing",
        "enabled": True,
        "access_type": "PUBLIC",
        "redirect_uris": ["https://billing.acme.net/cb"],
        "connection": fake.connection(),
        "owner": OWNER,
        **extra,
    }


def mappers(fake: KeycloakFake, uuid: str) -> dict[str, dict[str, str]]:
    """The client's protocol mappers on the server: name -> config."""
    with fake.lock:
        return {m["name"]: dict(m["config"]) for m in fake.realms["platform"].clients[uuid].mappers.values()}


def scope_names(fake: KeycloakFake, uuid: str) -> tuple[list[str], list[str]]:
    with fake.lock:
        realm = fake.realms["platform"]
        client = realm.clients[uuid]
        return (
            sorted(realm.scopes[s]["name"] for s in client.default_scopes),
            sorted(realm.scopes[s]["name"] for s in client.optional_scopes),
        )


LEGACY_AUDIENCE = {
    "name": "pulumi-audience",
    "protocol": "openid-connect",
    "protocolMapper": "oidc-audience-mapper",
    "config": {"included.custom.audience": "legacy", "access.token.claim": "true", "id.token.claim": "true"},
}


class TestClientCreateOrAdopt:
    def test_a_new_client_carries_its_audience_mapper_and_exactly_its_scopes(self, fake: KeycloakFake) -> None:
        props = client_props(
            fake, audience="openziti", default_client_scopes=["profile", "email"], optional_client_scopes=["phone"]
        )
        result = clients().create(props)
        assert mappers(fake, result.id)["pulumi-audience"]["included.custom.audience"] == "openziti"
        assert scope_names(fake, result.id) == (["email", "profile"], ["phone"])
        assert result.outs["audience"] == "openziti"
        assert server(fake).count("POST", CLIENTS) == 1
        assert fake.count_clients("platform", "billing") == 1

    @pytest.mark.parametrize(
        ("declared", "reported"),
        [
            pytest.param(["profile"], ["profile"], id="attached-by-keycloak-not-declared"),
            pytest.param(["profile", "service_account"], ["profile", "service_account"], id="declared"),
        ],
    )
    def test_the_service_account_scope_is_reported_only_when_declared(
        self, fake: KeycloakFake, declared: list[str], reported: list[str]
    ) -> None:
        props = client_props(
            fake, access_type="CONFIDENTIAL", service_accounts_enabled=True, default_client_scopes=declared
        )
        result = clients().create(props)
        assert scope_names(fake, result.id)[0] == ["profile", "service_account"]  # Keycloak attaches it
        assert sorted(result.outs["default_client_scopes"]) == reported
        assert clients().diff(result.id, result.outs, props).changes is False

    def test_our_client_left_by_a_crash_is_adopted_and_brought_to_the_declared_state(self, fake: KeycloakFake) -> None:
        seeded = fake.seed_client(
            "platform",
            {
                "clientId": "billing",
                "name": "Old",
                "publicClient": True,
                "redirectUris": ["https://old.acme.net/cb"],
                "attributes": {"pulumi.stack": OWNER},
                "defaultClientScopes": ["profile"],
            },
        )
        props = client_props(fake, audience="openziti", default_client_scopes=["email", "roles"])
        result = clients().create(props)
        assert result.id == seeded
        assert fake.count_clients("platform", "billing") == 1
        rep = fake.client_by_client_id("platform", "billing")
        assert rep is not None
        assert (rep["name"], rep["redirectUris"], rep["attributes"]["pulumi.stack"]) == (
            "Billing",
            ["https://billing.acme.net/cb"],
            OWNER,
        )
        assert mappers(fake, seeded)["pulumi-audience"]["included.custom.audience"] == "openziti"
        assert scope_names(fake, seeded)[0] == ["email", "roles"]
        assert server(fake).count("POST", CLIENTS) == 1
        # Adopted, not created: read once to adopt it, not again as a client Keycloak just made.
        assert server(fake).count("GET", CLIENT) == 1

    def test_an_adopted_clients_audience_mapper_is_kept_when_the_program_declares_none(
        self, fake: KeycloakFake
    ) -> None:
        seeded = fake.seed_client(
            "platform",
            {
                "clientId": "billing",
                "publicClient": True,
                "attributes": {"pulumi.stack": OWNER},
                "protocolMappers": [LEGACY_AUDIENCE],
            },
        )
        result = clients().create(client_props(fake))
        assert result.id == seeded
        assert mappers(fake, seeded)["pulumi-audience"]["included.custom.audience"] == "legacy"

    @pytest.mark.parametrize(
        ("attributes", "holder"),
        [
            pytest.param({"pulumi.stack": OTHER}, repr(OTHER), id="another-stack"),
            pytest.param({}, "absent", id="unmarked"),
        ],
    )
    def test_a_client_of_another_holder_is_refused_with_a_409_naming_it(
        self, fake: KeycloakFake, attributes: dict[str, str], holder: str
    ) -> None:
        seeded = fake.seed_client(
            "platform", {"clientId": "billing", "name": "Theirs", "publicClient": True, "attributes": attributes}
        )
        before = copy.deepcopy(fake.realms["platform"].clients[seeded])
        with pytest.raises(KeycloakApiError) as err:
            clients().create(client_props(fake, audience="openziti"))
        assert err.value.status == 409
        assert str(err.value) == (
            f"client 'billing' already exists in realm 'platform' (id {seeded}) and is not managed by this stack: "
            f"its pulumi.stack attribute is {holder}, this stack is {OWNER!r}. Choose another client_id, delete or "
            f"rename that client in Keycloak, or hand it over by setting its attribute pulumi.stack={OWNER}"
        )
        assert fake.realms["platform"].clients[seeded] == before
        assert fake.writes() == [f"POST {CLIENTS}"]

    def test_keycloaks_own_clients_are_never_taken_over(self, fake: KeycloakFake) -> None:
        with pytest.raises(KeycloakApiError, match=r"'account' already exists .* attribute is absent"):
            clients().create(client_props(fake, client_id="account"))
        assert fake.count_clients("platform", "account") == 1

    def test_a_lost_answer_after_the_client_was_created_is_adopted_not_repeated(self, fake: KeycloakFake) -> None:
        server(fake).inject("POST", CLIENTS, reset_after=True)
        result = clients().create(client_props(fake))
        rep = fake.client_by_client_id("platform", "billing")
        assert rep is not None and result.id == rep["id"]
        assert server(fake).count("POST", CLIENTS) == 1

    def test_a_409_whose_holder_is_gone_by_the_lookup_is_posted_again(self, fake: KeycloakFake) -> None:
        """The client holding the clientId was deleted between the POST and the lookup: nothing to
        adopt nor refuse, so the create POSTs again after the backoff."""
        server(fake).inject("POST", CLIENTS, status=409, body={"errorMessage": "Client billing already exists"})
        result = clients().create(client_props(fake))
        rep = fake.client_by_client_id("platform", "billing")
        assert rep is not None and result.id == rep["id"]
        assert server(fake).count("POST", CLIENTS) == 2
        assert fake.count_clients("platform", "billing") == 1

    def test_a_refusal_other_than_409_is_raised_at_once(self, fake: KeycloakFake) -> None:
        server(fake).inject("POST", CLIENTS, status=400, body={"error": "invalid_input"})
        with pytest.raises(KeycloakApiError) as err:
            clients().create(client_props(fake))
        assert err.value.status == 400
        assert server(fake).count("POST", CLIENTS) == 1
        assert fake.count_clients("platform", "billing") == 0

    def test_a_post_whose_outcome_stays_unknown_is_tried_attempts_times_then_reported(self, fake: KeycloakFake) -> None:
        server(fake).inject("POST", CLIENTS, status=503, times=10)
        with pytest.raises(KeycloakApiError) as err:
            clients().create(client_props(fake))
        assert err.value.status == 503
        assert str(err.value).startswith("could not create client 'billing' in realm 'platform': ")
        assert server(fake).count("POST", CLIENTS) == FAST.attempts
        assert fake.count_clients("platform", "billing") == 0


# --- clients: ownership on update and delete ---------------------------------------------------------------


def rehome_client(fake: KeycloakFake, uuid: str, owner: str | None) -> None:
    with fake.lock:
        attrs = fake.realms["platform"].clients[uuid].rep["attributes"]
        attrs.pop("pulumi.stack", None)
        if owner is not None:
            attrs["pulumi.stack"] = owner


def recreate_client(fake: KeycloakFake, uuid: str, owner: str | None) -> None:
    with fake.lock:
        del fake.realms["platform"].clients[uuid]
    fake.seed_client("platform", {"id": uuid, "clientId": "billing", "attributes": {"pulumi.stack": owner or ""}})


CLIENT_CASES = {
    "handed-to-another-stack": (rehome_client, OTHER),
    "marker-removed": (rehome_client, None),
    "recreated-by-another-stack-with-the-same-id": (recreate_client, OTHER),
}


class TestClientOwnership:
    @pytest.mark.parametrize("case", sorted(CLIENT_CASES))
    def test_a_foreign_client_at_the_states_id_is_refused_untouched(self, fake: KeycloakFake, case: str) -> None:
        props = client_props(fake, audience="openziti")
        created = clients().create(props)
        change, owner = CLIENT_CASES[case]
        change(fake, created.id, owner)
        before = copy.deepcopy(fake.realms["platform"].clients[created.id])
        server(fake).reset_log()
        holder = repr(owner) if owner else "absent"
        for action, call in (
            ("update", lambda: clients().update(created.id, created.outs, {**props, "name": "Changed"})),
            ("delete", lambda: clients().delete(created.id, created.outs)),
        ):
            with pytest.raises(ForeignObjectError) as err:
                call()
            assert str(err.value) == (
                f"refusing to {action} Keycloak client 'billing' in realm 'platform' (id {created.id}): it is not "
                f"managed by this stack; its pulumi.stack attribute is {holder}, this stack is {OWNER!r}. Nothing "
                f"was changed. To hand it over to this stack: set its attribute pulumi.stack={OWNER} (`kcadm.sh "
                f"update clients/{created.id} -r platform -s 'attributes.\"pulumi.stack\"={OWNER}'`), then run the "
                f"same Pulumi command again. {HANDOVER} (a later `pulumi up` creates the resource anew, or refuses "
                "if that object still holds its name)"
            )
        assert fake.realms["platform"].clients[created.id] == before
        assert fake.writes() == []
        assert clients().read(created.id, created.outs).id is None

    def test_a_client_marked_by_the_stacks_previous_name_is_ours_and_re_marked(self, fake: KeycloakFake) -> None:
        created = clients().create(client_props(fake, owner="identity-platform/old-name"))
        clients().update(created.id, created.outs, client_props(fake, name="Renamed"))
        rep = fake.client_by_client_id("platform", "billing")
        assert rep is not None and rep["name"] == "Renamed" and rep["attributes"]["pulumi.stack"] == OWNER

    def test_our_client_is_updated_and_deleted_and_a_gone_one_is_deleted(self, fake: KeycloakFake) -> None:
        props = client_props(fake)
        created = clients().create(props)
        updated = clients().update(created.id, created.outs, {**props, "name": "Changed"})
        assert fake.realms["platform"].clients[created.id].rep["name"] == "Changed"
        clients().delete(created.id, updated.outs)
        assert created.id not in fake.realms["platform"].clients
        clients().delete(created.id, updated.outs)  # already gone: success

    def test_an_update_of_a_client_deleted_outside_pulumi_asks_for_a_refresh_and_creates_nothing(
        self, fake: KeycloakFake
    ) -> None:
        props = client_props(fake)
        created = clients().create(props)
        del fake.realms["platform"].clients[created.id]
        with pytest.raises(KeycloakApiError) as err:
            clients().update(created.id, created.outs, {**props, "name": "Changed"})
        assert (err.value.status, err.value.code) == (404, "NOT_FOUND")
        assert str(err.value) == (
            f"client 'billing' (id {created.id}) no longer exists in Keycloak (deleted outside Pulumi): run "
            "`pulumi refresh` to drop it from the state, then `pulumi up` creates it again"
        )
        assert fake.client_by_client_id("platform", "billing") is None


# --- check and diff details --------------------------------------------------------------------------------

CONN = {"url": "https://auth.acme.net", "username": "admin", "password": "pw", "timeout": 5}
TIMEOUT_5 = {**CONN, "timeout": 5.0}  # as the state holds it (JSON numbers come back as floats)


class TestCheckDetails:
    def test_a_realms_connection_is_checked(self) -> None:
        half = {k: v for k, v in CONN.items() if k != "password"}
        result = KeycloakRealmProvider().check({}, {"realm": "shop", "connection": half, "owner": OWNER})
        assert [(f.property, f.reason) for f in result.failures] == [
            ("connection", "set both connection.username and connection.password (password grant)")
        ]

    def test_a_realm_without_any_owner_is_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("PULUMI_PROJECT")
        result = KeycloakRealmProvider().check({}, {"realm": "shop", "connection": CONN})
        assert [(f.property, f.reason) for f in result.failures] == [
            (
                "owner",
                "no ownership marker: the resource classes set owner to '<project>/<stack>' and a provider run by "
                "the engine takes it from PULUMI_PROJECT/PULUMI_STACK; pass owner='<project>/<stack>'",
            )
        ]

    def test_unknown_attribute_values_and_secret_trigger_stay_unknown(self) -> None:
        unknown = Unknown()
        props = {
            "realm": "platform",
            "client_id": "app",
            "access_type": "PUBLIC",
            "redirect_uris": ["https://app.acme.net/cb"],
            "attributes": {"a": unknown},
            "rotate_secret_trigger": unknown,
            "connection": CONN,
            "owner": OWNER,
        }
        inputs = KeycloakClientProvider().check({}, props).inputs
        assert inputs["attributes"]["a"] is unknown and inputs["rotate_secret_trigger"] is unknown

    def test_a_numeric_secret_trigger_is_recorded_as_text(self) -> None:
        props = {"realm": "platform", "client_id": "app", "rotate_secret_trigger": 3, "connection": CONN}
        inputs = KeycloakClientProvider().check({}, {**props, "owner": OWNER}).inputs
        assert inputs["rotate_secret_trigger"] == "3"


def client_state(**extra: Any) -> dict[str, Any]:
    """A client's inputs; a None in `extra` leaves that input out (unset in the program)."""
    props = {
        "realm": "platform",
        "client_id": "app",
        "enabled": True,
        "access_type": "CONFIDENTIAL",
        "connection": CONN,
        "owner": OWNER,
        **extra,
    }
    return {k: v for k, v in props.items() if v is not None}


class TestDiffDetails:
    @pytest.mark.parametrize(
        ("olds", "news", "changes"),
        [
            pytest.param({"enabled": False}, {"enabled": None}, True, id="enabled-unset-means-true"),
            pytest.param({"access_type": "PUBLIC"}, {"access_type": None}, True, id="access-type-unset-confidential"),
            pytest.param({"access_type": "CONFIDENTIAL"}, {"access_type": None}, False, id="confidential-by-default"),
            pytest.param({"attributes": {"a": ["x"]}}, {"attributes": {"a": ["y"]}}, True, id="odd-attribute-values"),
            pytest.param({"enabled": "false"}, {"enabled": False}, False, id="false-stored-as-text"),
            pytest.param({"enabled": "FALSE"}, {"enabled": False}, False, id="false-stored-upper-case"),
            pytest.param({"attributes": {"a": "1"}}, {"attributes": {"b": "1"}}, True, id="attribute-key-renamed"),
            pytest.param({"connection": TIMEOUT_5}, {"connection": {**CONN, "timeout": "5"}}, False, id="timeout-5"),
            pytest.param({"connection": TIMEOUT_5}, {"connection": {**CONN, "timeout": 10}}, True, id="timeout-10"),
            pytest.param({"description": "a"}, {"name": None, "description": "b"}, True, id="after-an-unset-input"),
            pytest.param({"description": None}, {"description": ""}, False, id="empty-text-equals-unset"),
            pytest.param({"rotate_secret_trigger": "true"}, {"rotate_secret_trigger": True}, False, id="bool-as-text"),
        ],
    )
    def test_client(self, olds: dict[str, Any], news: dict[str, Any], changes: bool) -> None:
        diff = KeycloakClientProvider().diff("id", client_state(**olds), client_state(**news))
        assert diff.changes is changes and diff.replaces == []

    @pytest.mark.parametrize(
        ("old", "new", "changes"),
        [
            pytest.param(300.0, 300, False, id="whole-float"),
            pytest.param(300, 301, True, id="other-number"),
            pytest.param(0.5, 0.5, False, id="same-fraction"),
        ],
    )
    def test_realm_lifespans_compare_as_numbers(self, old: Any, new: Any, changes: bool) -> None:
        state = {"realm": "shop", "enabled": True, "connection": CONN, "owner": OWNER}
        diff = KeycloakRealmProvider().diff(
            "id", {**state, "access_token_lifespan": old}, {**state, "access_token_lifespan": new}
        )
        assert diff.changes is changes


class TestNormalise:
    """`normalise`, the comparable form of a value (docstring: sets, booleans as Keycloak or the
    state holds them, attribute values as text, numbers as numbers, `""` equal to absent)."""

    def test_absent_attributes_are_no_attributes_and_any_other_absent_value_is_none(self) -> None:
        assert normalise("attributes", None) == ()
        assert normalise("description", None) is None
        assert normalise("description", "") is None

    @pytest.mark.parametrize(
        ("value", "expected"),
        [pytest.param(300.0, 300, id="whole-float-to-int"), pytest.param(0.5, 0.5, id="fraction-kept")],
    )
    def test_numbers_compare_as_numbers_whole_floats_as_ints(self, value: float, expected: float) -> None:
        """JSON numbers come back from the state as floats: 300.0 is the lifespan 300."""
        result = normalise("access_token_lifespan", value)
        assert result == expected and type(result) is type(expected)

    def test_a_boolean_is_not_a_number(self) -> None:
        """True is an int to Python; outside the flags it compares as Keycloak's text "true", not as 1."""
        assert normalise("rotate_secret_trigger", True) == "true"

    @pytest.mark.parametrize(("value", "expected"), [("false", False), ("TRUE", True), (1, True), (False, False)])
    def test_flags_compare_as_booleans(self, value: Any, expected: bool) -> None:
        assert normalise("enabled", value) is expected

    def test_a_flag_that_is_no_boolean_is_refused_with_the_value(self) -> None:
        with pytest.raises(ValueError, match=r"^not a boolean: 'yes'$"):
            normalise("enabled", "yes")
