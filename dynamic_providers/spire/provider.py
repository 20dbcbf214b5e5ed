"""Pulumi glue for SPIRE registration entries: `SpireEntry` and its provider on the kernel's
`OwnedProvider`; see docs/providers/spire.md (Lifecycle, Ownership and ids)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CheckResult
from pydantic import ValidationError

from dynamic_providers._kernel import ForeignObjectError, OwnedProvider, OwnershipEncoder, Resource, refusal, strip
from dynamic_providers._kernel import gone as gone_message
from dynamic_providers.spire.client import EntryClient, SpireError, open_client
from dynamic_providers.spire.models import (
    IDENTITY_FIELDS,
    Connection,
    Entry,
    EntryArgs,
    EntryFields,
    entry_id_for,
    parse_connection,
)

OUTPUT_KEYS = ("entry_id", "revision_number", "created_at")
DEFAULTS: dict[str, Any] = {
    name: list(f.default) if isinstance(f.default, tuple) else f.default
    for name, f in EntryArgs.model_fields.items()
    if not f.is_required()
}

# Stand-ins for the identity fields, so that one field at a time can be read with `from_props`.
_PLACEHOLDER: dict[str, Any] = {"spiffe_id": "spiffe://td/a", "parent_id": "spiffe://td/b", "selectors": ("a:b",)}


def _one(key: str, value: Any) -> EntryFields:
    """`value` read as the field `key` (selectors as "type:value", trust domains without scheme);
    raises on a value it cannot read (the kernel's diff then compares it as `Malformed`)."""
    return EntryFields.from_props({**_PLACEHOLDER, key: value})


class EntryIdPrefix(OwnershipEncoder[str, Entry]):
    """SPIRE's ownership mark: the entry id's prefix `pulumi.<project>.<stack>.`, from a connection;
    an entry is ours when it also has the state's triple (docs/providers/spire.md, Ownership)."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        self.state = state

    def parse(self, raw: Any) -> str | None:
        return parse_connection(raw).owner_prefix if isinstance(raw, Mapping) else None  # no `project/stack` text

    def owns(self, entry: Entry, marks: Sequence[str]) -> bool:
        prefix = next((p for p in marks if entry.id.startswith(p)), None)
        if prefix is None:
            return False
        try:  # the identity the state records, when readable
            return entry.identity() == EntryFields.from_props(self.state).identity()
        except (ValidationError, TypeError, ValueError, AttributeError, KeyError):
            return entry.id == entry_id_for(prefix, entry.spiffe_id, entry.parent_id, entry.selectors)

    def refuse(self, action: str, entry: Entry, id_: str, marks: Sequence[str]) -> ForeignObjectError:
        ours = marks[0] if marks else "pulumi.<project>.<stack>."
        delete = f"`spire-server entry delete -entryID {entry.id}`"
        what = f"SPIRE entry {entry.spiffe_id} (parent {entry.parent_id})"
        if any(entry.id.startswith(p) for p in marks):
            return refusal(
                action,
                what,
                entry.id,
                f"it is not the entry in this stack's state: its spiffe_id, parent_id and selectors "
                f"{list(entry.selectors)} are not the recorded ones, so it was edited or re-created outside Pulumi",
                f"its id carries this stack's prefix {ours!r}",
                "restore the spiffe_id, parent_id and selectors this stack declared, or delete it "
                f"({delete}) so that `pulumi up` creates this stack's own",
            )
        parts = entry.id.split(".")
        if len(parts) == 4 and parts[0] == "pulumi":
            prefix = ".".join(parts[:3]) + "."
            holder = f"its id carries the prefix {prefix!r} (Pulumi project {parts[1]!r}, stack {parts[2]!r})"
        else:
            holder = "its id carries no Pulumi stack prefix (made by hand, by the SPIRE CLI or by another tool)"
        return refusal(
            action,
            what,
            entry.id,
            "it is not managed by this stack",
            f"{holder}; this stack's prefix is {ours!r}",
            "an entry id cannot change, so it cannot be handed over in place: delete it in its own stack or with "
            f"{delete}, and `pulumi up` creates this stack's own",
        )


def _props_of(entry: Entry, reference: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's fields, each list in the order of `reference` (the program's inputs) when both
    hold the same items: SPIRE answers a write with the selectors sorted and a read in insertion
    order (tests/real/test_spire_fidelity.py), which a refresh after `up` would show as a change."""
    props = entry.fields().as_props()
    for name in ("selectors", "dns_names", "federates_with"):
        try:
            ordered = list(getattr(_one(name, reference.get(name)), name))
        except (ValidationError, TypeError, ValueError):
            continue
        if sorted(ordered) == sorted(props[name]):
            props[name] = ordered
    return props


# (server, entry id) -> the revision this provider process last wrote: one process serves a whole
# deployment, so a replaced resource's delete can tell the entry its replacement just wrote.
_WRITTEN: dict[tuple[str, str], int] = {}


def _server(props: Mapping[str, Any]) -> str:
    return json.dumps(parse_connection(props["connection"]).model_dump(mode="json"), sort_keys=True)


def _outs(entry: Entry, props: Mapping[str, Any]) -> dict[str, Any]:
    """The outputs: the entry as the server holds it, `props`' connection and list order."""
    return {
        **_props_of(entry, props),
        "connection": props["connection"],
        "entry_id": entry.id,
        "revision_number": entry.revision_number,
        "created_at": entry.created_at,
    }


def _wrote(entry: Entry, props: Mapping[str, Any]) -> Entry:
    """`entry`, just written by this process, noted for `handed_over`."""
    _WRITTEN[(_server(props), entry.id)] = entry.revision_number
    return entry


class SpireEntryProvider(OwnedProvider):
    """The kernel's CRUD for one SPIRE registration entry (see docs/providers/spire.md)."""

    args_model = EntryArgs
    computed = OUTPUT_KEYS
    failures_by_input = True
    # A new spiffe_id, parent_id or selector set is a new entry for SPIRE (and a new entry id).
    replace_fields = frozenset(IDENTITY_FIELDS)
    mark_key = "connection"  # its project and stack make the entry-id prefix
    gone_where = " on the SPIRE server"

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in strip(news).items() if k not in OUTPUT_KEYS}
        if "connection" in inputs:
            # The engine runs the provider with PULUMI_PROJECT (and the test host with
            # PULUMI_STACK) set; fill in what the program left out, so state records the owner.
            env = {"project": os.environ.get("PULUMI_PROJECT"), "stack": os.environ.get("PULUMI_STACK")}
            inputs["connection"] = _owned(inputs["connection"], env)
        return super().check(olds, inputs)

    def checked(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, **{k: default for k, default in DEFAULTS.items() if props.get(k) is None}}

    def comparable(self, field: str, value: Any) -> Any:
        """A connection without the keys it leaves unset; an entry field in its `normalized()` form."""
        if field == "connection":
            return {k: x for k, x in sorted(value.items()) if x is not None} if isinstance(value, Mapping) else value
        return _one(field, value).normalized()[field]

    def changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        # A field the new inputs leave out keeps its stored value; a connection left out is a change.
        return super().changes(olds, {**olds, **news, "connection": news.get("connection")})

    # --- the kernel's hooks ------------------------------------------------------------------------

    def connect(self, connection: Connection) -> closing[EntryClient]:
        return open_client(connection)

    def parse(self, props: Mapping[str, Any]) -> tuple[EntryFields, Connection, Any]:
        connection = self.stored_connection(props)
        return EntryFields.from_props(props), connection, props["connection"]

    def stored_connection(self, props: Mapping[str, Any]) -> Connection:
        return parse_connection(props["connection"])

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"SPIRE entry {props.get('spiffe_id')}"

    def gone(self, id_: str, props: Mapping[str, Any]) -> SpireError:
        return SpireError(gone_message(self.describe(props), id_, self.gone_where), code="NOT_FOUND", entry_id=id_)

    def ownership(self, props: Mapping[str, Any], id_: str) -> EntryIdPrefix:
        return EntryIdPrefix(props)

    def fetch(self, client: EntryClient, props: Mapping[str, Any], id_: str) -> Entry | None:
        return client.get(id_)

    def make(self, client: EntryClient, fields: EntryFields, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        entry = _wrote(client.create(fields), props)
        return entry.id, _outs(entry, props)

    def read_outputs(self, client: EntryClient, props: Mapping[str, Any], entry: Entry) -> dict[str, Any]:
        return _outs(entry, props)

    def write(
        self,
        client: EntryClient,
        fields: EntryFields,
        news: Mapping[str, Any],
        olds: Mapping[str, Any],
        current: Entry,
        changed: set[str],
    ) -> dict[str, Any]:
        try:
            return _outs(_wrote(client.update(current.id, fields, current=current), news), news)
        except SpireError as e:
            if e.code != "NOT_FOUND":
                raise
        return self.vanished(client, fields, news, current.id)

    def vanished(self, client: EntryClient, fields: EntryFields, news: Mapping[str, Any], id_: str) -> dict[str, Any]:
        """Gone (deleted outside Pulumi, or pruned after its expiry): re-created only under our own id."""
        if client.entry_id_for(fields) != id_:
            raise self.gone(id_, news)
        return _outs(_wrote(client.create(fields), news), news)

    def remove(self, client: EntryClient, props: Mapping[str, Any], id_: str) -> None:
        client.delete(id_)

    def handed_over(self, entry: Entry, props: Mapping[str, Any]) -> bool:
        """Written since this state saw it, by a create of this stack that adopted it by its id (the
        replacement of `pulumi up --replace`, or a renamed key, made before this delete; adoption
        writes the entry, so its revision moved on): this process wrote that revision, or the entry
        holds what this state recorded (the create ran in an earlier deployment that stopped before
        this delete). It is that resource's entry now; deleting it would leave the workload without one."""
        try:
            seen = int(props["revision_number"])
            recorded = EntryFields.from_props(props).normalized()
            written = _WRITTEN.get((_server(props), entry.id))
        except (KeyError, TypeError, ValueError, ValidationError):
            return False
        return entry.revision_number > seen and (
            written == entry.revision_number or entry.fields().normalized() == recorded)


class SpireEntry(Resource, module="spire", name="Entry"):
    """A SPIRE registration entry (`pulumi-python:dynamic/spire:Entry`); its inputs are tabled in
    docs/providers/spire.md."""

    provider = SpireEntryProvider  # its `check` fills in DEFAULTS for what is left out
    state_only = frozenset({"revision_number", "created_at"})  # kept in the state: no program reads them
    if TYPE_CHECKING:
        spiffe_id: pulumi.Output[str]
        entry_id: pulumi.Output[str]

    @classmethod
    def with_program_inputs(cls, resource_name: str, props: dict[str, Any]) -> dict[str, Any]:
        """The ownership prefix's `project` / `stack` from the running program where left out: the
        program knows its stack, the provider process may not."""
        owner = {"project": pulumi.get_project(), "stack": pulumi.get_stack()}
        connection = props["connection"]
        if isinstance(connection, Mapping):
            return {**props, "connection": _owned(connection, owner)}
        return {**props, "connection": pulumi.Output.from_input(connection).apply(lambda c: _owned(c, owner))}


def _owned(connection: Any, owner: Mapping[str, str | None]) -> Any:
    """`connection` with the ownership prefix's parts in `owner` filled in where left out (anything
    but a mapping is left for `check` to report)."""
    if not isinstance(connection, Mapping):
        return connection
    return {**connection, **{k: v for k, v in owner.items() if v and connection.get(k) is None}}


__all__ = ["DEFAULTS", "SpireEntry", "SpireEntryProvider"]
