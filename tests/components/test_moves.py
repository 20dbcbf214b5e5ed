"""components/moves.py under the mock engine: a workload or user key renamed in the stack file,
its object kept, registers the new resource with the old one's URN as an alias (so the engine
renames it instead of creating one and deleting the other); a value that changes hands between
keys that stay orders the identity that takes it after the one that lets it go; a trade, or a value
taken from a removed key, fails naming the keys. The previous deployment is what the engine's
builtin `readStackResourceOutputs` answers (here the mock's call). That the real engine follows it
(with `ops`, `scripts/up` and the raw `pulumi up`, the objects kept) is tests/engine/test_ops_engine.py's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from components.moves import ENTRY, IDENTITY, READ_STATE, MoveConflictError, Moves, object_key
from dynamic_providers.spire.models import parse_connection
from stack_config import PROJECT
from tests.conftest import MODES
from tests.harness import mock_engine
from tests.harness.mock_engine import ProgramRun, run_program

STACK = "external"  # workload payments-api, user alice
ENTRY_NAME, IDENTITY_NAME, USER_NAME = (
    "spire-entries-entry-payments-api", "ziti-trust-identity-payments-api", "ziti-trust-user-alice")
OLD = {ENTRY_NAME: "spire-entries-entry-api-v1", IDENTITY_NAME: "ziti-trust-identity-api-v1",
       USER_NAME: "ziti-trust-user-alice-smith"}


def urn(type_: str, name: str) -> str:
    return f"urn:pulumi:{STACK}::identity-platform::identity-platform:component${type_}::{name}"


@pytest.fixture
def previous() -> Iterator[dict[str, Any]]:
    """The state the mock engine answers `readStackResourceOutputs` with (URN -> type, outputs)."""
    state: dict[str, Any] = {}
    mock_engine.CALLS[READ_STATE] = lambda args: {"name": args.args["stackName"], "outputs": dict(state)}
    yield state
    del mock_engine.CALLS[READ_STATE]


def deployed(run: ProgramRun, names: dict[str, str]) -> dict[str, Any]:
    """The previous deployment: `run`'s entry and identities held under the names `names` gives them,
    their outputs their inputs (what the providers store for these fields)."""
    out = {}
    for r in run.resources:
        if r.type in (ENTRY, IDENTITY):
            out[urn(r.type, names.get(r.name, r.name))] = {"type": r.type, "outputs": dict(r.inputs)}
    return out


def aliased(run: ProgramRun) -> dict[str, tuple[str, ...]]:
    return {r.name: r.alias_urns for r in run.resources if r.alias_urns}


@pytest.mark.parametrize("preview", MODES)
class TestRenamedKeys:
    def test_each_renamed_object_is_registered_with_its_old_urn_as_alias(
        self, previous: dict[str, Any], preview: bool
    ) -> None:
        previous.update(deployed(run_program(STACK, preview), OLD))
        run = run_program(STACK, preview)
        assert aliased(run) == {
            ENTRY_NAME: (urn(ENTRY, OLD[ENTRY_NAME]),),
            IDENTITY_NAME: (urn(IDENTITY, OLD[IDENTITY_NAME]),),
            USER_NAME: (urn(IDENTITY, OLD[USER_NAME]),),
        }

    def test_a_resource_the_previous_deployment_knows_by_its_name_gets_no_alias(
        self, previous: dict[str, Any], preview: bool
    ) -> None:
        previous.update(deployed(run_program(STACK, preview), {}))
        assert aliased(run_program(STACK, preview)) == {}

    def test_another_object_under_the_old_name_is_not_followed(self, previous: dict[str, Any], preview: bool) -> None:
        """The old key named another SPIFFE ID (and selectors), or another email: a new object."""
        previous.update(deployed(run_program(STACK, preview), OLD))
        for res in previous.values():
            res["outputs"].update(external_id="spiffe://zt.acme-identity.net/other", selectors=["unix:uid:2002"])
        run = run_program(STACK, preview)
        assert aliased(run) == {}
        assert {r.name for r in run.resources if r.type in (ENTRY, IDENTITY)} == set(OLD)

    def test_without_a_previous_deployment_the_registrations_are_unchanged(
        self, previous: dict[str, Any], preview: bool
    ) -> None:
        assert previous == {}
        run = run_program(STACK, preview)
        assert aliased(run) == {}
        assert any(r.type == ENTRY for r in run.resources)


USER = {"email": "alice@acme-identity.net", "zitiRoleAttributes": ["operators"]}  # the stack file's alice
OTHER_USER = {"email": "alice.new@acme-identity.net", "zitiRoleAttributes": ["operators"]}
BOB = {"email": "bob@acme-identity.net", "zitiRoleAttributes": ["operators"]}
CAROL = {"email": "carol@acme-identity.net", "zitiRoleAttributes": ["operators"]}


def users(**declared: dict[str, Any]) -> dict[str, str]:
    return {"identity-platform:users": json.dumps(declared)}


def user_identities(run: ProgramRun) -> dict[str, Any]:
    """Each user's identity as registered: name -> (aliases, the user identities it waits for)."""
    identities = {r.urn: r.name for r in run.resources if r.type == IDENTITY}
    return {r.name: (r.alias_urns, {identities[d] for d in r.dependencies if d in identities})
            for r in run.resources if r.type == IDENTITY and r.name.startswith("ziti-trust-user-")}


@pytest.mark.parametrize("preview", MODES)
class TestAnOldKeyDeclaredAgain:
    """A user key renamed with its email kept while the old key is declared again for another email:
    the engine refuses an alias naming a URN the program still declares, so the old key keeps its
    resource (its identity takes the new email) and the renamed key's identity is created after it
    has let the email go, whichever of the two the program registers first."""

    @pytest.mark.parametrize("renamed", ["alice-smith", "aaron"])  # registered after / before the old key
    def test_the_renamed_key_waits_for_the_old_one_and_gets_no_alias(
        self, previous: dict[str, Any], preview: bool, renamed: str
    ) -> None:
        previous.update(deployed(run_program(STACK, preview), {}))
        run = run_program(STACK, preview, config=users(**{renamed: USER, "alice": OTHER_USER}))
        assert user_identities(run) == {
            f"ziti-trust-user-{renamed}": ((), {USER_NAME}),
            USER_NAME: ((), set()),
        }

    def test_a_renamed_workload_key_gets_no_alias_and_its_entry_adopts_the_old_one(
        self, previous: dict[str, Any], preview: bool
    ) -> None:
        """The old key declared again with another SPIFFE path: its entry is replaced (a new triple);
        the renamed key's create adopts the entry of the old triple, so the entry needs no ordering."""
        previous.update(deployed(run_program(STACK, preview), {}))
        workload = {"spiffePath": "/ns/payments/sa/api", "node": "worker-1", "selectors": ["unix:uid:1001"]}
        moved = {"payments-api": {**workload, "spiffePath": "/ns/payments/sa/api-v2"}, "payments": workload}
        run = run_program(STACK, preview, config={"identity-platform:workloads": json.dumps(moved)})
        entries = {r.name: r for r in run.resources if r.type == ENTRY}
        assert set(entries) == {ENTRY_NAME, "spire-entries-entry-payments"}
        assert aliased(run).get("spire-entries-entry-payments") is None
        assert entries[ENTRY_NAME].inputs["spiffe_id"].endswith("/api-v2")
        identities = {r.urn: r.name for r in run.resources if r.type == IDENTITY}
        waits = {r.name: {identities[d] for d in r.dependencies if d in identities}
                 for r in run.resources if r.type == IDENTITY}
        # its Ziti identity takes the SPIFFE ID after the old key's identity has let it go
        assert waits == {"ziti-trust-identity-payments": {IDENTITY_NAME}, IDENTITY_NAME: set(), USER_NAME: set()}

    def test_the_rename_alone_is_followed(self, previous: dict[str, Any], preview: bool) -> None:
        previous.update(deployed(run_program(STACK, preview), {}))
        run = run_program(STACK, preview, config=users(aaron=USER))
        assert aliased(run) == {"ziti-trust-user-aaron": (urn(IDENTITY, USER_NAME),)}
        assert user_identities(run)["ziti-trust-user-aaron"][1] == set()


@pytest.mark.parametrize("preview", MODES)
class TestValuesChangingHands:
    """An email given to another user key, which takes a new one: Ziti holds an external id on one
    identity at a time, so the identity that takes it is updated after the one that gives it up."""

    def test_a_chain_is_applied_in_order(self, previous: dict[str, Any], preview: bool) -> None:
        previous.update(deployed(run_program(STACK, preview, config=users(alice=USER, bob=BOB, carol=CAROL)), {}))
        run = run_program(STACK, preview, config=users(alice=BOB, bob=CAROL, carol=OTHER_USER))
        assert user_identities(run) == {
            USER_NAME: ((), {"ziti-trust-user-bob"}),
            "ziti-trust-user-bob": ((), {"ziti-trust-user-carol"}),
            "ziti-trust-user-carol": ((), set()),
        }

    def test_unchanged_values_add_no_ordering(self, previous: dict[str, Any], preview: bool) -> None:
        previous.update(deployed(run_program(STACK, preview, config=users(alice=USER, bob=BOB)), {}))
        run = run_program(STACK, preview, config=users(alice=USER, bob=CAROL))
        assert user_identities(run) == {USER_NAME: ((), set()), "ziti-trust-user-bob": ((), set())}

    def test_a_trade_fails_naming_both_and_the_way_to_do_it(self, previous: dict[str, Any], preview: bool) -> None:
        previous.update(deployed(run_program(STACK, preview, config=users(alice=USER, bob=BOB, carol=CAROL)), {}))
        with pytest.raises(MoveConflictError) as err:
            run_program(STACK, preview, config=users(alice=BOB, bob=CAROL, carol=USER))
        message = str(err.value)
        for taker, value, giver in (("alice", "bob@", "bob"), ("bob", "carol@", "carol"), ("carol", "alice@", "alice")):
            assert f"{PROJECT}:users.{taker} takes '{value}acme-identity.net' from {PROJECT}:users.{giver}" in message
        assert "trade values" in message and "a value no identity holds first" in message, message
        registered = {r.urn: r for r in err.value.registered}  # type: ignore[attr-defined]
        waits = {r.name: [registered[d].name for d in r.dependencies if registered[d].type == IDENTITY]
                 for r in registered.values() if r.type == IDENTITY}
        assert waits[USER_NAME] == [] and waits["ziti-trust-user-bob"] == [], waits  # nothing waits on a failed run

    def test_a_value_taken_from_a_removed_key_fails_naming_the_removal_to_deploy_first(
        self, previous: dict[str, Any], preview: bool
    ) -> None:
        previous.update(deployed(run_program(STACK, preview, config=users(alice=USER, bob=BOB)), {}))
        with pytest.raises(MoveConflictError) as err:
            run_program(STACK, preview, config=users(alice=BOB))
        message = str(err.value)
        assert f"{PROJECT}:users.alice takes 'bob@acme-identity.net' from {PROJECT}:users.bob, which this " \
               f"deployment removes: deploy the removal of {PROJECT}:users.bob first" in message, message

    def test_a_renamed_key_taking_a_removed_keys_value_is_a_move(
        self, previous: dict[str, Any], preview: bool
    ) -> None:
        previous.update(deployed(run_program(STACK, preview, config=users(alice=USER, bob=BOB)), {}))
        run = run_program(STACK, preview, config=users(alice=USER, robert=BOB))
        assert user_identities(run) == {
            USER_NAME: ((), set()),
            "ziti-trust-user-robert": ((urn(IDENTITY, "ziti-trust-user-bob"),), set()),
        }


class TestObjectKeys:
    CONNECTION = {"transport": "grpc", "socket_path": "/run/spire/admin.sock", "trust_domain": "td.example",
                  "project": "identity-platform", "stack": "prod"}
    ENTRY_PROPS = {"spiffe_id": "spiffe://td.example/a", "parent_id": "spiffe://td.example/agent",
                   "selectors": ["unix:uid:1", "unix:gid:2"], "connection": CONNECTION}

    def test_an_entry_is_its_server_and_triple_selectors_in_any_order(self) -> None:
        key = object_key(ENTRY, self.ENTRY_PROPS)
        assert key is not None
        assert object_key(ENTRY, {**self.ENTRY_PROPS, "selectors": ["unix:gid:2", "unix:uid:1"]}) == key
        other_server = {**self.CONNECTION, "socket_path": "/run/other/admin.sock"}
        assert object_key(ENTRY, {**self.ENTRY_PROPS, "connection": other_server}) != key
        assert object_key(ENTRY, {**self.ENTRY_PROPS, "parent_id": "spiffe://td.example/agent-2"}) != key

    def test_a_connection_the_provider_stored_with_its_defaults_is_the_same_server(self) -> None:
        full = parse_connection(self.CONNECTION).model_dump(mode="json")
        assert object_key(ENTRY, {**self.ENTRY_PROPS, "connection": full}) == object_key(ENTRY, self.ENTRY_PROPS)

    def test_what_is_not_plain_or_not_followed_has_no_key(self) -> None:
        unknown = pulumi.Output.from_input("x")
        assert object_key(ENTRY, {**self.ENTRY_PROPS, "connection": unknown}) is None
        assert object_key(ENTRY, {k: v for k, v in self.ENTRY_PROPS.items() if k != "parent_id"}) is None
        assert object_key(IDENTITY, {"external_id": unknown}) is None
        assert object_key(IDENTITY, {"external_id": ""}) is None
        assert object_key("pulumi-python:dynamic/ziti:EdgeRouter", {"name": "r"}) is None

    def test_a_damaged_previous_state_is_read_as_far_as_it_goes(self) -> None:
        moves = Moves({"urn:a::x": "not a resource", "urn:b::y": {"type": IDENTITY, "outputs": None},
                       "urn:c::z": {"type": IDENTITY, "outputs": {"external_id": "spiffe://td/z"}}})
        assert moves.moved_from(IDENTITY, "new", {"external_id": "spiffe://td/z"}) == "urn:c::z"
        assert moves.moved_from(IDENTITY, "z", {"external_id": "spiffe://td/z"}) is None
