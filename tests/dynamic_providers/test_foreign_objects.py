"""Ownership is checked on every write: for every resource kind, an update or a delete that finds a
foreign object at the address in its state (the state's id, or its name for Keycloak realms)
refuses it with a message naming it, and leaves it untouched: same fields, same owner marker, and
no request that could write it reaches the server. A refresh reads such an object as gone, and the
create the engine then plans refuses it as foreign when it holds the name. Objects that are ours
(including Ziti entities taken over by `import_id`) are still updated and deleted, and a delete of
an object already gone still succeeds.

All through the engine's own provider host (`python -m pulumi.dynamic`) against the fakes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dynamic_providers.keycloak.client import RetryPolicy
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire.models import entry_id_for, owner_prefix
from dynamic_providers.spire.provider import DEFAULTS, SpireEntryProvider
from tests.fakes import keycloak as fake_keycloak
from tests.fakes import ziti as fake_ziti
from tests.fakes.keycloak import KeycloakFake
from tests.fakes.spire_env import TRANSPORTS, SpireTarget, make_target
from tests.fakes.spire_server import FakeSpireServer, entry
from tests.fakes.ziti import ZitiController
from tests.fakes.ziti_kinds import ZITI_KINDS, ZitiKind
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError, State
from tests.harness.loopback import LoopbackServer

OWNER = "identity-platform/test"  # the host's PULUMI_PROJECT / PULUMI_STACK
OTHER = "identity-platform/prod"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
Host = Callable[..., DynamicProviderHost]


def refused(call: Callable[[], Any], *fragments: str) -> str:
    """Run a provider call that must be refused as foreign; the message carries `fragments`."""
    with pytest.raises(ProviderCallError) as err:
        call()
    details = err.value.details
    assert "ForeignObjectError" in details and "refusing to" in details, details
    assert "Nothing was changed" in details and "To hand it over" in details, details
    for fragment in fragments:
        assert fragment in details, f"{fragment!r} not in {details}"
    return details


# --- Keycloak ---------------------------------------------------------------------------------------


@pytest.fixture
def keycloak(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    return fake_keycloak.start(loopback, platform_owner=OWNER)


def realm_props(fake: KeycloakFake, **extra: Any) -> dict[str, Any]:
    return {"realm": "shop", "display_name": "Shop", "connection": fake.connection(), "owner": OWNER, **extra}


REALM_CASES = {
    # A realm re-created outside Pulumi: another id, even when it carries our marker.
    "recreated-with-our-marker": (KeycloakFake.recreate_realm, {"pulumi.stack": OWNER}),
    "recreated-by-another-stack": (KeycloakFake.recreate_realm, {"pulumi.stack": OTHER}),
    "recreated-unmarked": (KeycloakFake.recreate_realm, {}),
    # The realm in the state, handed to another stack or stripped of its marker.
    "handed-to-another-stack": (KeycloakFake.remark_realm, {"pulumi.stack": OTHER}),
    "marker-removed": (KeycloakFake.remark_realm, {}),
}


class TestKeycloakRealm:
    @pytest.fixture
    def realms(self, dynamic_host: Host) -> DynamicProviderHost:
        return dynamic_host(
            KeycloakRealmProvider(retry=FAST, ready_timeout=5), resource_type="pulumi-python:dynamic/keycloak:Realm"
        )

    @pytest.mark.parametrize("case", sorted(REALM_CASES))
    def test_a_foreign_realm_with_the_states_name_is_refused_untouched(
        self, keycloak: KeycloakFake, realms: DynamicProviderHost, case: str
    ) -> None:
        fake = keycloak
        props = realm_props(fake)
        state = realms.up("shop", props)
        change, attributes = REALM_CASES[case]
        change(fake, "shop", attributes)
        before = copy.deepcopy(fake.realms["shop"].rep)
        assert fake.server is not None
        fake.server.reset_log()

        owner_text = repr(attributes["pulumi.stack"]) if attributes else "absent"
        found = f"Keycloak realm 'shop' (id {before['id']})"
        update = refused(
            lambda: realms.change("shop", state, {**props, "display_name": "Changed"}),
            f"refusing to update {found}",
            f"pulumi.stack attribute is {owner_text}, this stack is {OWNER!r}",
            "kcadm.sh update realms/shop",
        )
        refused(lambda: realms.delete("shop", state.id, state.outputs), f"refusing to delete {found}")
        if before["id"] != state.id:
            assert f"not the one in this stack's state (id {state.id})" in update
        else:
            assert "not managed by this stack" in update
        assert fake.realms["shop"].rep == before
        assert fake.writes() == []

        # A refresh forgets it; the create the engine then plans adopts it only if it carries our marker.
        assert realms.refresh("shop", state) is None
        if attributes.get("pulumi.stack") == OWNER:
            assert realms.up("shop", props).id == before["id"]
        else:
            with pytest.raises(ProviderCallError, match="is not managed by this stack"):
                realms.up("shop", props)
            assert fake.realms["shop"].rep == before

    def test_our_realm_is_still_updated_and_deleted_and_a_gone_one_is_deleted(
        self, keycloak: KeycloakFake, realms: DynamicProviderHost
    ) -> None:
        fake = keycloak
        props = realm_props(fake)
        state = realms.up("shop", props)
        state, _ = realms.change("shop", state, {**props, "display_name": "Changed"})
        assert fake.realms["shop"].rep["displayName"] == "Changed"
        realms.delete("shop", state.id, state.outputs)
        assert "shop" not in fake.realms
        realms.delete("shop", state.id, state.outputs)  # already gone: success


CLIENT_CASES = ("handed-to-another-stack", "marker-removed", "recreated-by-another-stack-with-the-same-id")


class TestKeycloakClient:
    @pytest.fixture
    def clients(self, dynamic_host: Host) -> DynamicProviderHost:
        return dynamic_host(
            KeycloakClientProvider(retry=FAST, ready_timeout=5), resource_type="pulumi-python:dynamic/keycloak:Client"
        )

    @staticmethod
    def props(fake: KeycloakFake, **extra: Any) -> dict[str, Any]:
        return {
            "realm": "platform",
            "client_id": "billing",
            "access_type": "CONFIDENTIAL",
            "redirect_uris": ["https://billing.acme.net/cb"],
            "connection": fake.connection(),
            "owner": OWNER,
            **extra,
        }

    @pytest.mark.parametrize("case", CLIENT_CASES)
    def test_a_foreign_client_at_the_states_id_is_refused_untouched(
        self, keycloak: KeycloakFake, clients: DynamicProviderHost, case: str
    ) -> None:
        fake = keycloak
        props = self.props(fake)
        state = clients.up("billing", props)
        realm = fake.realms["platform"]
        if case == "recreated-by-another-stack-with-the-same-id":
            with fake.lock:
                del realm.clients[state.id]
            fake.seed_client("platform", {"id": state.id, "clientId": "billing", "attributes": {"pulumi.stack": OTHER}})
        else:
            with fake.lock:
                attrs = realm.clients[state.id].rep["attributes"]
                del attrs["pulumi.stack"]
                if case == "handed-to-another-stack":
                    attrs["pulumi.stack"] = OTHER
        before = copy.deepcopy(realm.clients[state.id])
        assert fake.server is not None
        fake.server.reset_log()

        owner_text = "absent" if case == "marker-removed" else repr(OTHER)
        found = f"Keycloak client 'billing' in realm 'platform' (id {state.id})"
        changed = {**props, "redirect_uris": ["https://billing.acme.net/other"], "name": "Billing"}
        refused(
            lambda: clients.change("billing", state, changed),
            f"refusing to update {found}",
            "not managed by this stack",
            f"pulumi.stack attribute is {owner_text}, this stack is {OWNER!r}",
            f"kcadm.sh update clients/{state.id} -r platform",
        )
        refused(lambda: clients.delete("billing", state.id, state.outputs), f"refusing to delete {found}")
        assert realm.clients[state.id] == before  # fields, marker, secret, mappers and scopes
        assert fake.writes() == []

        assert clients.refresh("billing", state) is None
        with pytest.raises(ProviderCallError, match="is not managed by this stack"):
            clients.up("billing", props)  # the create after the refresh: the clientId is taken by it
        assert realm.clients[state.id] == before

    def test_our_client_is_still_updated_and_deleted_and_a_gone_one_is_deleted(
        self, keycloak: KeycloakFake, clients: DynamicProviderHost
    ) -> None:
        fake = keycloak
        props = self.props(fake)
        state = clients.up("billing", props)
        state, _ = clients.change("billing", state, {**props, "name": "Billing"})
        assert fake.realms["platform"].clients[state.id].rep["name"] == "Billing"
        clients.delete("billing", state.id, state.outputs)
        assert state.id not in fake.realms["platform"].clients
        clients.delete("billing", state.id, state.outputs)  # already gone: success


# --- Ziti -------------------------------------------------------------------------------------------


RESOURCE = "ziti-resource"
ZITI_TAGS = {
    "another-stack": {"pulumi.stack": OTHER, "pulumi.name": RESOURCE, "team": "prod"},
    "another-resource-of-this-stack": {"pulumi.stack": OWNER, "pulumi.name": "ziti-other-resource"},
    "no-pulumi-tags": {"team": "payments"},
}


@pytest.fixture
def ziti(loopback: Callable[..., LoopbackServer]) -> tuple[ZitiController, Any]:
    return fake_ziti.start(loopback)


def ziti_host(dynamic_host: Host, kind: ZitiKind) -> DynamicProviderHost:
    return dynamic_host(kind.provider(), resource_type=f"pulumi-python:dynamic/ziti:{kind.provider.__name__}")


def ziti_props(kind: ZitiKind, fake: ZitiController, srv: Any) -> dict[str, Any]:
    return {**kind.props(fake), "connection": fake_ziti.connection(srv, fake), "owner": fake_ziti.owner(RESOURCE)}


def ziti_up(
    fake: ZitiController, srv: Any, dynamic_host: Host, name: str
) -> tuple[ZitiKind, DynamicProviderHost, dict[str, Any], State]:
    """A resource of kind `name`, created through the engine's host: (kind, host, props, state)."""
    kind = ZITI_KINDS[name]
    host = ziti_host(dynamic_host, kind)
    props = ziti_props(kind, fake, srv)
    return kind, host, props, host.up("r", props)


def ziti_writes(srv: Any) -> list[str]:
    """Requests that could change an entity: anything but reads and the login."""
    return [f"{r.method} {r.pattern}" for r in srv.log if r.method != "GET" and not r.pattern.endswith("/authenticate")]


class TestZiti:
    @pytest.mark.parametrize("tags", sorted(ZITI_TAGS))
    @pytest.mark.parametrize("name", sorted(ZITI_KINDS))
    def test_an_entity_at_the_states_id_with_foreign_tags_is_refused_untouched(
        self, ziti: tuple[ZitiController, Any], dynamic_host: Host, name: str, tags: str
    ) -> None:
        fake, srv = ziti
        kind, host, props, state = ziti_up(fake, srv, dynamic_host, name)
        entity = fake.entities[kind.provider.collection][state.id]
        entity["tags"] = dict(ZITI_TAGS[tags])  # re-tagged outside Pulumi
        before = copy.deepcopy(entity)
        srv.reset_log()

        found = f"Ziti {kind.provider.label} {props['name']!r} (id {state.id})"
        holder = "no Pulumi ownership tags" if tags == "no-pulumi-tags" else "its tags name stack"
        refused(
            lambda: host.change("r", state, {**props, **kind.change}),
            f"refusing to update {found}",
            "not managed by this resource",
            holder,
            f"this resource is stack {OWNER!r}, resource {RESOURCE!r}",
            '{"pulumi.stack": "identity-platform/test", "pulumi.name": "ziti-resource"}',
        )
        refused(lambda: host.delete("r", state.id, state.outputs), f"refusing to delete {found}")
        assert fake.entities[kind.provider.collection][state.id] == before
        assert ziti_writes(srv) == []

        assert host.refresh("r", state) is None  # a refresh forgets it ...
        with pytest.raises(ProviderCallError, match="already exists and is not owned by this resource"):
            host.up("r", props)  # ... and the create then planned refuses it: it holds the name
        assert fake.entities[kind.provider.collection][state.id] == before

    @pytest.mark.parametrize("name", sorted(ZITI_KINDS))
    def test_our_entity_is_still_updated_and_deleted_and_a_gone_one_is_deleted(
        self, ziti: tuple[ZitiController, Any], dynamic_host: Host, name: str
    ) -> None:
        fake, srv = ziti
        kind, host, props, state = ziti_up(fake, srv, dynamic_host, name)
        state, diff = host.change("r", state, {**props, **kind.change})
        assert diff.changes == "DIFF_SOME" and not diff.replaces
        host.delete("r", state.id, state.outputs)
        assert state.id not in fake.entities[kind.provider.collection]
        host.delete("r", state.id, state.outputs)  # already gone: success

    def test_an_entity_taken_over_by_import_id_is_ours(
        self, ziti: tuple[ZitiController, Any], dynamic_host: Host
    ) -> None:
        fake, srv = ziti
        kind = ZITI_KINDS["identity"]
        host = ziti_host(dynamic_host, kind)
        theirs = fake.put_entity(
            "identities",
            {"name": "payments-api", "type": "Default", "isAdmin": False, "authPolicyId": "default", "tags": {}},
        )
        props = ziti_props(kind, fake, srv)
        state = host.up("r", {**props, "import_id": theirs})
        assert state.id == theirs
        state, _ = host.change("r", state, {**props, **kind.change})
        assert sorted(fake.entities["identities"][theirs]["roleAttributes"]) == ["p", "pci"]
        host.delete("r", state.id, state.outputs)
        assert theirs not in fake.entities["identities"]

    def test_a_resource_renamed_by_alias_still_owns_its_entity(
        self, ziti: tuple[ZitiController, Any], dynamic_host: Host
    ) -> None:
        fake, srv = ziti
        kind, host, props, state = ziti_up(fake, srv, dynamic_host, "edge-router-policy")
        renamed = {**props, "owner": fake_ziti.owner("ziti-renamed")}
        state, _ = host.change("r", state, renamed)  # the old tags are the state's: ours, re-tagged now
        assert fake.entities[kind.provider.collection][state.id]["tags"]["pulumi.name"] == "ziti-renamed"


# --- SPIRE ------------------------------------------------------------------------------------------

TD = "example.org"
AGENT = f"spiffe://{TD}/spire/agent/x509pop/worker-1"
PREFIX = owner_prefix("identity-platform", "test")


@pytest.fixture
def spire_server() -> Iterator[FakeSpireServer]:
    with FakeSpireServer(trust_domain=TD) as srv:
        yield srv


@pytest.fixture(params=TRANSPORTS)
def target(request: pytest.FixtureRequest, spire_server: FakeSpireServer, tmp_path: Path) -> SpireTarget:
    return make_target(request.param, spire_server, tmp_path / "world")


@pytest.fixture
def spire(dynamic_host: Host, target: SpireTarget) -> DynamicProviderHost:
    return dynamic_host(SpireEntryProvider(), resource_type="pulumi-python:dynamic/spire:Entry", env=target.env)


def spire_props(target: SpireTarget, **extra: Any) -> dict[str, Any]:
    return {
        "spiffe_id": f"spiffe://{TD}/ns/payments/sa/api",
        "parent_id": AGENT,
        "selectors": ["unix:uid:1000"],
        "connection": target.connection,
        **extra,
    }


def spire_writes(server: FakeSpireServer) -> dict[str, int]:
    return {m: server.calls[m] for m in ("BatchCreateEntry", "BatchUpdateEntry", "BatchDeleteEntry") if server.calls[m]}


def state_for(entry_id: str, target: SpireTarget, props: dict[str, Any]) -> State:
    """What the state would record for an entry with this id (e.g. after a state edit or a
    copied stack), with this stack's connection."""
    outputs = {**props, **DEFAULTS, "entry_id": entry_id, "revision_number": 0, "created_at": 1}
    return State(entry_id, props, outputs)


class TestSpireEntry:
    def test_an_entry_recreated_at_our_id_with_other_identity_fields_is_refused(
        self, spire: DynamicProviderHost, target: SpireTarget
    ) -> None:
        server = target.server
        props = spire_props(target)
        state = spire.up("api", props)
        del server.entries[state.id]  # deleted, and another entry made under the same id
        server.seed(entry(f"spiffe://{TD}/someone/else", AGENT, ["unix:uid:0"], entry_id=state.id, hint="theirs"))
        self.assert_refused_untouched(spire, target, state, props, "its id carries this stack's prefix")

    @pytest.mark.parametrize(
        "holder",
        [
            pytest.param(owner_prefix("identity-platform", "prod"), id="another-stack"),
            pytest.param("", id="no-pulumi-prefix"),
        ],
    )
    def test_an_entry_of_another_owner_at_the_states_id_is_refused(
        self, spire: DynamicProviderHost, target: SpireTarget, holder: str
    ) -> None:
        props = spire_props(target)
        theirs = entry_id_for(holder, props["spiffe_id"], AGENT, props["selectors"]) if holder else "4f1c8d2e-9a"
        target.server.seed(entry(props["spiffe_id"], AGENT, props["selectors"], entry_id=theirs, hint="theirs"))
        expected = "Pulumi project 'identity-platform', stack 'prod'" if holder else "no Pulumi stack prefix"
        self.assert_refused_untouched(spire, target, state_for(theirs, target, props), props, expected)

    @staticmethod
    def assert_refused_untouched(
        spire: DynamicProviderHost, target: SpireTarget, state: State, props: dict[str, Any], holder: str
    ) -> None:
        server = target.server
        before = copy.deepcopy(server.entries)
        server.calls.clear()
        refused(
            lambda: spire.change("api", state, {**props, "x509_svid_ttl": 600, "hint": "ours"}),
            "refusing to update SPIRE entry spiffe://example.org/",
            f"(id {state.id})",
            holder,
            repr(PREFIX),
            "spire-server entry delete -entryID",
        )
        refused(lambda: spire.delete("api", state.id, state.outputs), "refusing to delete", f"(id {state.id})")
        assert server.entries == before
        assert spire_writes(server) == {}
        assert spire.refresh("api", state) is None

    @pytest.mark.parametrize("adopted", [False, True], ids=["created", "adopted-under-an-older-id"])
    def test_our_entry_is_still_updated_and_deleted_and_a_gone_one_is_deleted(
        self, spire: DynamicProviderHost, target: SpireTarget, adopted: bool
    ) -> None:
        props = spire_props(target)
        if adopted:  # ours by its prefix, under an id an earlier run chose: create adopts it
            target.server.seed(entry(props["spiffe_id"], AGENT, props["selectors"], entry_id=PREFIX + "earlier-run"))
        state = spire.up("api", props)
        assert state.id.startswith(PREFIX) and (state.id == PREFIX + "earlier-run") == adopted
        state, _ = spire.change("api", state, {**props, "hint": "ours"})
        assert target.server.entries[state.id].hint == "ours"
        spire.delete("api", state.id, state.outputs)
        assert target.server.entries == {}
        spire.delete("api", state.id, state.outputs)  # already gone: success
