"""`SpireEntryProvider` called in-process, through its public methods, against the fake SPIRE
server on its admin socket (gRPC): what each call leaves on the server and what it says.

tests/dynamic_providers/test_foreign_objects.py and test_spire_provider.py prove the same contracts
through the engine's provider host on every transport; here they run in the test process, so
mutation testing (bench/mutation.py) sees which test exercises which decision:

* ownership on every write: the entry at the state's id is written only when its id carries this
  stack's prefix and it is the entry in the state (same spiffe_id, parent_id and selectors; with
  no readable identity in the state, the id derived from the entry's own). Anything else is refused
  untouched with `ForeignObjectError`, saying whose prefix it carries;
* create adopts this stack's own entry (after a crash between create and the state write) and
  refuses another owner's similar entry;
* check reports every broken item of every field in one run, not only the first, and skips only
  what is still Unknown;
* diff compares the connection by meaning (its unset keys left out) and counts a connection left
  out as a change; an update that finds the entry gone from an id it cannot re-create asks for a
  refresh, naming the entry.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.output import Unknown

from dynamic_providers._kernel import ForeignObjectError
from dynamic_providers.spire.client import SpireError
from dynamic_providers.spire.models import Entry, entry_id_for
from dynamic_providers.spire.provider import EntryIdPrefix, SpireEntryProvider
from tests.fakes.spire_server import FakeSpireServer, entry

TD = "example.org"
AGENT = f"spiffe://{TD}/spire/agent/x509pop/worker-1"
API = f"spiffe://{TD}/ns/payments/sa/api"
OURS = "pulumi.identity-platform.test."
PROD = "pulumi.identity-platform.prod."
WRITES = ("BatchCreateEntry", "BatchUpdateEntry", "BatchDeleteEntry")


@pytest.fixture
def fake() -> Iterator[FakeSpireServer]:
    with FakeSpireServer(trust_domain=TD) as srv:
        yield srv


def connection(fake: FakeSpireServer, stack: str = "test") -> dict[str, Any]:
    return {
        "transport": "grpc",
        "socket_path": fake.socket_path,
        "trust_domain": TD,
        "project": "identity-platform",
        "stack": stack,
    }


def props(fake: FakeSpireServer, **extra: Any) -> dict[str, Any]:
    """Checked inputs (defaults filled in) of the entry `API` under `AGENT`."""
    raw = {"spiffe_id": API, "parent_id": AGENT, "selectors": ["unix:uid:1000"], "connection": connection(fake)}
    return SpireEntryProvider().check({}, {**raw, **extra}).inputs


def writes(fake: FakeSpireServer) -> dict[str, int]:
    return {m: fake.calls[m] for m in WRITES if fake.calls[m]}


def state_at(entry_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the state records for an entry with this id (e.g. after a state edit or a copied stack)."""
    return {**inputs, "entry_id": entry_id, "revision_number": 0, "created_at": 1}


def refusal(entry_id: str, action: str, reason: str, holder: str, handover: str) -> str:
    return (
        f"refusing to {action} SPIRE entry {API} (parent {AGENT}) (id {entry_id}): {reason}; {holder}. Nothing was "
        f"changed. To hand it over to this stack: {handover}. If this stack should let go of it, `pulumi refresh` "
        "drops it from this stack's state (a later `pulumi up` creates the resource anew, or refuses if that object "
        "still holds its name)"
    )


def delete_hint(entry_id: str) -> str:
    return f"`spire-server entry delete -entryID {entry_id}`"


def foreign(entry_id: str, action: str, holder: str) -> str:
    return refusal(
        entry_id,
        action,
        "it is not managed by this stack",
        f"{holder}; this stack's prefix is {OURS!r}",
        "an entry id cannot change, so it cannot be handed over in place: delete it in its own stack or with "
        f"{delete_hint(entry_id)}, and `pulumi up` creates this stack's own",
    )


ANOTHER_STACK = f"its id carries the prefix {PROD!r} (Pulumi project 'identity-platform', stack 'prod')"
NO_PREFIX = "its id carries no Pulumi stack prefix (made by hand, by the SPIRE CLI or by another tool)"


class TestOwnership:
    def assert_refused_untouched(
        self,
        fake: FakeSpireServer,
        entry_id: str,
        state: dict[str, Any],
        news: dict[str, Any],
        expected: dict[str, str],
    ) -> None:
        before = copy.deepcopy(fake.entries)
        fake.calls.clear()
        provider = SpireEntryProvider()
        with pytest.raises(ForeignObjectError) as update:
            provider.update(entry_id, state, news)
        with pytest.raises(ForeignObjectError) as delete:
            provider.delete(entry_id, state)
        assert (str(update.value), str(delete.value)) == (expected["update"], expected["delete"])
        assert fake.entries == before
        assert writes(fake) == {}
        assert provider.read(entry_id, state).id is None  # a refresh forgets it

    @pytest.mark.parametrize(
        ("prefix", "holder"),
        [
            pytest.param(PROD, ANOTHER_STACK, id="another-stack"),
            pytest.param("", NO_PREFIX, id="no-pulumi-prefix"),
            pytest.param("spire.controller.manager.", NO_PREFIX, id="another-tools-dotted-prefix"),
        ],
    )
    def test_an_entry_of_another_owner_at_the_states_id_is_refused(
        self, fake: FakeSpireServer, prefix: str, holder: str
    ) -> None:
        inputs = props(fake)
        theirs = entry_id_for(prefix, API, AGENT, ["unix:uid:1000"]) if prefix else "4f1c8d2e-9a"
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=theirs, hint="theirs"))
        expected = {a: foreign(theirs, a, holder) for a in ("update", "delete")}
        self.assert_refused_untouched(fake, theirs, state_at(theirs, inputs), {**inputs, "hint": "ours"}, expected)

    def test_an_entry_recreated_at_our_id_with_other_identity_fields_is_refused(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        created = SpireEntryProvider().create(inputs)
        del fake.entries[created.id]
        fake.seed(entry(f"spiffe://{TD}/someone/else", AGENT, ["unix:uid:0"], entry_id=created.id))
        expected = {
            a: refusal(
                created.id,
                a,
                "it is not the entry in this stack's state: its spiffe_id, parent_id and selectors ['unix:uid:0'] "
                "are not the recorded ones, so it was edited or re-created outside Pulumi",
                f"its id carries this stack's prefix {OURS!r}",
                "restore the spiffe_id, parent_id and selectors this stack declared, or delete it "
                f"({delete_hint(created.id)}) so that `pulumi up` creates this stack's own",
            ).replace(f"SPIRE entry {API}", f"SPIRE entry spiffe://{TD}/someone/else")
            for a in ("update", "delete")
        }
        self.assert_refused_untouched(fake, created.id, created.outs, {**inputs, "hint": "ours"}, expected)

    def test_without_a_readable_identity_in_the_state_only_the_derived_id_is_ours(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        damaged = {k: v for k, v in inputs.items() if k not in ("spiffe_id", "parent_id", "selectors")}
        odd = OURS + "chosen-by-hand"  # our prefix, but not the id this provider derives
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=odd))
        with pytest.raises(ForeignObjectError, match="not the entry in this stack's state"):
            SpireEntryProvider().delete(odd, state_at(odd, damaged))
        assert odd in fake.entries
        derived = entry_id_for(OURS, API, AGENT, ["unix:uid:1000"])
        fake.seed(entry(API, f"{AGENT}-2", ["unix:uid:1000"], entry_id=derived))  # at our id, another parent
        with pytest.raises(ForeignObjectError):
            SpireEntryProvider().delete(derived, state_at(derived, damaged))
        del fake.entries[derived]
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=derived))
        SpireEntryProvider().delete(derived, state_at(derived, damaged))
        assert derived not in fake.entries

    def test_with_the_old_identity_unreadable_the_new_inputs_identify_the_entry(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        earlier = OURS + "earlier-run"  # ours by its prefix, under an id an earlier run chose
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=earlier))
        damaged = {k: v for k, v in inputs.items() if k not in ("spiffe_id", "parent_id", "selectors")}
        SpireEntryProvider().update(earlier, state_at(earlier, damaged), {**inputs, "hint": "ours"})
        assert fake.entries[earlier].hint == "ours"

    def test_an_entry_under_the_stacks_previous_prefix_is_updated_by_the_renamed_stack(
        self, fake: FakeSpireServer
    ) -> None:
        old = props(fake, connection=connection(fake, stack="old-name"))
        created = SpireEntryProvider().create(old)
        assert created.id.startswith("pulumi.identity-platform.old-name.")
        renamed = props(fake, hint="renamed")  # same entry, connection now names this stack
        updated = SpireEntryProvider().update(created.id, created.outs, renamed)
        assert fake.entries[created.id].hint == "renamed" and updated.outs["entry_id"] == created.id

    def test_a_damaged_connection_in_the_state_proves_no_ownership(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        theirs = entry_id_for(PROD, API, AGENT, ["unix:uid:1000"])
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=theirs))
        state = state_at(theirs, {**inputs, "connection": {**connection(fake), "transport": "carrier-pigeon"}})
        with pytest.raises(ForeignObjectError, match="not managed by this stack"):
            SpireEntryProvider().update(theirs, state, {**inputs, "hint": "ours"})
        assert fake.entries[theirs].hint == "" and writes(fake) == {}

    def test_our_entry_is_updated_and_deleted_and_a_gone_one_is_deleted(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        created = SpireEntryProvider().create(inputs)
        assert created.id == entry_id_for(OURS, API, AGENT, ["unix:uid:1000"])
        updated = SpireEntryProvider().update(created.id, created.outs, {**inputs, "hint": "ours"})
        assert fake.entries[created.id].hint == "ours"
        SpireEntryProvider().delete(created.id, updated.outs)
        assert fake.entries == {}
        SpireEntryProvider().delete(created.id, updated.outs)  # already gone: success

    def test_an_entry_gone_from_our_derived_id_is_re_created_there_by_an_update(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        created = SpireEntryProvider().create(inputs)
        del fake.entries[created.id]
        SpireEntryProvider().update(created.id, created.outs, {**inputs, "hint": "back"})
        assert fake.entries[created.id].hint == "back"

    def test_an_entry_gone_from_another_id_is_reported_for_a_refresh(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        elsewhere = OURS + "earlier-run"
        with pytest.raises(SpireError) as err:
            SpireEntryProvider().update(elsewhere, state_at(elsewhere, inputs), {**inputs, "hint": "x"})
        assert str(err.value) == (
            f"SPIRE entry {API} (id {elsewhere}) no longer exists on the SPIRE server (deleted outside Pulumi): run "
            "`pulumi refresh` to drop it from the state, then `pulumi up` creates it again"
        )
        assert (err.value.code, err.value.entry_id) == ("NOT_FOUND", elsewhere)
        assert fake.entries == {}

    def test_a_damaged_connection_among_the_marks_candidates_proves_nothing_and_hides_no_other(
        self, fake: FakeSpireServer
    ) -> None:
        damaged = {**connection(fake), "transport": "carrier-pigeon"}
        marks = EntryIdPrefix({}).marks(damaged, None, connection(fake, stack="old-name"), connection(fake))
        assert marks == ["pulumi.identity-platform.old-name.", OURS]

    def test_with_no_mark_known_the_refusal_shows_the_prefixs_form(self) -> None:
        """The encoder's fallback when neither the engine's stack nor a readable connection gives
        this stack's prefix: the refusal says what the prefix looks like instead of naming one."""
        theirs = entry_id_for(PROD, API, AGENT, ["unix:uid:1000"])
        found = Entry.from_proto(entry(API, AGENT, ["unix:uid:1000"], entry_id=theirs))
        encoder = EntryIdPrefix({})
        assert encoder.owns(found, []) is False
        assert str(encoder.refuse("delete", found, theirs, [])) == refusal(
            theirs,
            "delete",
            "it is not managed by this stack",
            f"{ANOTHER_STACK}; this stack's prefix is 'pulumi.<project>.<stack>.'",
            "an entry id cannot change, so it cannot be handed over in place: delete it in its own stack or with "
            f"{delete_hint(theirs)}, and `pulumi up` creates this stack's own",
        )


class TestCreateOrAdopt:
    def test_our_entry_left_by_a_crash_before_the_state_write_is_adopted(self, fake: FakeSpireServer) -> None:
        inputs = props(fake)
        derived = entry_id_for(OURS, API, AGENT, ["unix:uid:1000"])
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=derived))
        assert SpireEntryProvider().create(inputs).id == derived
        assert list(fake.entries) == [derived]

    def test_our_similar_entry_under_an_older_id_is_adopted(self, fake: FakeSpireServer) -> None:
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=OURS + "earlier-run"))
        assert SpireEntryProvider().create(props(fake)).id == OURS + "earlier-run"
        assert list(fake.entries) == [OURS + "earlier-run"]

    def test_another_owners_similar_entry_is_refused(self, fake: FakeSpireServer) -> None:
        theirs = entry_id_for(PROD, API, AGENT, ["unix:uid:1000"])
        fake.seed(entry(API, AGENT, ["unix:uid:1000"], entry_id=theirs))
        before = copy.deepcopy(fake.entries)
        with pytest.raises(SpireError, match="a similar entry already exists"):
            SpireEntryProvider().create(props(fake))
        assert fake.entries == before


class TestHandedOver:
    """A forced replacement (`pulumi up --replace`) or a renamed key the program could not follow
    creates the new resource before deleting the old, and both name one entry (its id is derived
    from the triple): the create adopts the entry and writes it, so its revision moves on, and the
    old resource's delete leaves it to the new one. Every other delete deletes."""

    def test_the_replacement_keeps_the_entry_and_its_own_delete_removes_it(self, fake: FakeSpireServer) -> None:
        provider, inputs = SpireEntryProvider(), props(fake)
        old = provider.create(inputs)
        fake.calls.clear()
        new = provider.create(inputs)  # the replacement: the same entry id
        assert new.id == old.id and new.outs["revision_number"] > old.outs["revision_number"]
        assert writes(fake) == {"BatchCreateEntry": 1, "BatchUpdateEntry": 1}
        fake.calls.clear()
        provider.delete(old.id, old.outs)  # the engine deletes the replaced resource last
        assert writes(fake) == {} and list(fake.entries) == [new.id]
        provider.delete(new.id, new.outs)
        assert writes(fake) == {"BatchDeleteEntry": 1} and fake.entries == {}

    def test_a_replacement_with_new_settings_keeps_the_entry(self, fake: FakeSpireServer) -> None:
        """`pulumi up --replace` of an entry whose dns names changed in the same run: the replacement
        writes other fields than the old state recorded; this process wrote that revision."""
        provider = SpireEntryProvider()
        old = provider.create(props(fake))
        new = provider.create(props(fake, dns_names=["api.internal"]))
        assert new.id == old.id and fake.entries[new.id].dns_names == ["api.internal"]
        fake.calls.clear()
        provider.delete(old.id, old.outs)
        assert writes(fake) == {} and list(fake.entries) == [new.id]

    def test_an_entry_changed_outside_pulumi_since_is_deleted(self, fake: FakeSpireServer) -> None:
        provider = SpireEntryProvider()
        created = provider.create(props(fake))
        stored = fake.entries[created.id]
        fake.entries[created.id] = entry(API, AGENT, ["unix:uid:1000"], entry_id=created.id, hint="by hand",
                                         revision_number=stored.revision_number + 1)
        provider.delete(created.id, created.outs)
        assert fake.entries == {}

    @pytest.mark.parametrize("revision", [None, "three"], ids=["absent", "unreadable"])
    def test_a_state_without_a_readable_revision_deletes(self, fake: FakeSpireServer, revision: Any) -> None:
        provider, inputs = SpireEntryProvider(), props(fake)
        old = provider.create(inputs)
        provider.create(inputs)
        state = {**old.outs, "revision_number": revision}
        if revision is None:
            del state["revision_number"]
        provider.delete(old.id, state)
        assert fake.entries == {}


# --- check: every broken item, in one run --------------------------------------------------------------

GRPC = {"transport": "grpc", "socket_path": "/run/spire/api.sock", "trust_domain": TD, "project": "p", "stack": "s"}
VALID = {"spiffe_id": API, "parent_id": AGENT, "selectors": ["unix:uid:1"], "connection": GRPC}
U = Unknown()


def failures(**overrides: Any) -> list[tuple[str, str]]:
    result = SpireEntryProvider().check({}, {**VALID, **overrides})
    return [(f.property, f.reason) for f in result.failures]


class TestCheckReportsEverything:
    def test_every_broken_item_of_every_field_is_reported(self) -> None:
        assert failures(
            spiffe_id=U,
            parent_id="spiffe://other.org/x",
            selectors=[U, 5, "nocolon", "unix:", "unix:uid:1", "unix:uid:1"],
            x509_svid_ttl=U,
            jwt_svid_ttl=-1,
            admin=U,
            downstream="yes",
            store_svid=1,
            dns_names=["bad name!", U, 5, "ok.example.org", "ok.example.org"],
            federates_with=["spiffe://other.org/path", "bad..td", TD, U, "spiffe://peer.org", "peer.org"],
        ) == [
            (
                "parent_id",
                "parent_id: 'spiffe://other.org/x' is not a member of the server's trust domain 'example.org'",
            ),
            ("selectors", 'selectors[1]: must be a "type:value" string, got 5'),
            ("selectors", "selectors[2]: 'nocolon' is not \"type:value\" (no ':')"),
            ("selectors", "selectors[3]: 'unix:': selector value is empty"),
            ("selectors", "selectors[5]: 'unix:uid:1' is listed more than once"),
            ("jwt_svid_ttl", "jwt_svid_ttl: must be >= 0 (0 = the server's default TTL), got -1"),
            (
                "dns_names",
                "dns_names[0]: 'bad name!' is not a DNS name SPIRE accepts: label 'bad name!' may contain only "
                "letters, digits and '-'",
            ),
            ("dns_names", "dns_names[2]: Input should be a valid string"),
            ("dns_names", "dns_names[4]: 'ok.example.org' is listed more than once"),
            (
                "federates_with",
                "federates_with[0]: 'spiffe://other.org/path' must name a trust domain (other.org or "
                "spiffe://other.org), not a SPIFFE ID with a path",
            ),
            ("federates_with", "federates_with[1]: 'bad..td': trust domain must not contain an empty label ('..')"),
            ("federates_with", "federates_with[2]: 'example.org' is the server's own trust domain; list peers only"),
            ("federates_with", "federates_with[5]: 'peer.org' is listed more than once"),
            ("downstream", "downstream: Input should be a valid boolean"),
            ("store_svid", "store_svid: Input should be a valid boolean"),
        ]

    def test_a_repeat_is_named_by_its_own_index_whatever_form_it_takes(self) -> None:
        assert failures(selectors=[{"type": "unix", "value": "x"}, "unix:x"]) == [
            ("selectors", "selectors[1]: 'unix:x' is listed more than once")
        ]

    def test_a_missing_spiffe_id_does_not_hide_a_broken_parent_id(self) -> None:
        assert failures(spiffe_id=None, parent_id="spiffe://other.org/x") == [
            ("spiffe_id", "spiffe_id is required"),
            (
                "parent_id",
                "parent_id: 'spiffe://other.org/x' is not a member of the server's trust domain 'example.org'",
            ),
        ]

    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            pytest.param(
                {"connection": {**GRPC, "socket_path": U, "docker_host": "x"}},
                [("connection", "connection.docker_host is not an input of this resource (check the spelling)")],
                id="unknown-socket-and-a-foreign-key",
            ),
            pytest.param({"connection": {"transport": U, "trust_domain": TD}}, [], id="unknown-transport"),
            pytest.param(
                {"connection": {**GRPC, "socket_path": "relative"}},
                [
                    (
                        "connection",
                        "connection.socket_path: 'relative' must be an absolute path to the server's admin socket",
                    )
                ],
                id="relative-socket",
            ),
            pytest.param(
                {"dns_names": "x", "federates_with": 7},
                [
                    ("dns_names", "dns_names: must be a list of strings, got str"),
                    ("federates_with", "federates_with: must be a list of strings, got int"),
                ],
                id="lists-that-are-not-lists",
            ),
            pytest.param({"dns_names": U, "federates_with": U, "selectors": U}, [], id="whole-lists-unknown"),
            pytest.param({"selectors": [{"type": "unix", "value": U}]}, [], id="selector-object-with-an-unknown-value"),
            pytest.param(
                {"connection": "grpc"},
                [("connection", "connection: Input should be a valid dictionary or object to extract fields from")],
                id="connection-text",
            ),
            pytest.param(
                {"connection": {**GRPC, "transport": "carrier-pigeon"}},
                [
                    (
                        "connection",
                        "connection: Input tag 'carrier-pigeon' found using 'transport' does not match any of the "
                        "expected tags: 'grpc', 'docker-exec', 'kubectl-exec'",
                    )
                ],
                id="unknown-transport-name",
            ),
        ],
    )
    def test_connection_and_list_shapes(self, overrides: dict[str, Any], expected: list[tuple[str, str]]) -> None:
        assert failures(**overrides) == expected

    @pytest.mark.parametrize(
        ("field", "value", "index"),
        [
            pytest.param("dns_names", [U, "bad name!"], "dns_names[1]", id="dns-name-after-an-unknown"),
            pytest.param("federates_with", [5, "spiffe://a.org/p"], "federates_with[1]", id="td-after-a-number"),
        ],
    )
    def test_a_broken_item_is_named_by_its_own_index(self, field: str, value: list[Any], index: str) -> None:
        reasons = [reason for prop, reason in failures(**{field: value}) if prop == field]
        assert any(reason.startswith(f"{index}: ") for reason in reasons), reasons


# --- diff details -------------------------------------------------------------------------------------

DOCKER = {"transport": "docker-exec", "container": "spire-server", "trust_domain": TD, "project": "p", "stack": "s"}
# The same connection as a program builds it from optional settings (`"docker_host": config.get(...)`).
DOCKER_DUMPED = {**DOCKER, "docker_host": None, "service": None, "socket_path": None}


def checked(connection: dict[str, Any]) -> dict[str, Any]:
    return SpireEntryProvider().check({}, {**VALID, "connection": connection}).inputs


class TestDiffDetails:
    def test_a_connection_compares_without_the_keys_it_leaves_unset(self) -> None:
        diff = SpireEntryProvider().diff("id", checked(DOCKER_DUMPED), checked(DOCKER))
        assert (diff.changes, diff.replaces) == (False, [])

    def test_another_connection_is_a_change_in_place(self) -> None:
        diff = SpireEntryProvider().diff("id", checked(DOCKER), checked({**DOCKER, "container": "spire-server-2"}))
        assert (diff.changes, diff.replaces) == (True, [])

    def test_a_connection_left_out_of_the_new_inputs_is_a_change_other_fields_keep_their_stored_values(self) -> None:
        """`changes`: a field the new inputs leave out keeps its stored value; a connection left out
        is a change."""
        olds = checked(DOCKER)
        news = {k: v for k, v in olds.items() if k not in ("connection", "dns_names")}
        assert SpireEntryProvider().changes(olds, news) == ["connection"]
