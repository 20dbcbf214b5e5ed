"""Pulumi glue for SPIRE registration entries: `SpireEntry` and its dynamic provider.

Lifecycle (see `client.py` for the server-side semantics):

- check: SPIRE's validation rules, offline, one failure per broken rule naming the field;
  defaults filled in. Values still Unknown during preview are skipped.
- diff: offline. Compares normalised fields (sorted selectors, DNS names and trust domains,
  trust domains without scheme). A new spiffe_id, parent_id or selector set is a new entry for
  SPIRE (its "similar entry" key, and our entry id is derived from it), so those replace;
  everything else updates in place. Replacement is create-before-delete: the new triple gets a
  new id, so old and new never collide. Never raises: a stored field it cannot read (older or
  damaged state) counts as changed, so a bad identity field replaces and any other updates.
- create: under the stack's deterministic, ownership-prefixed id; adopts our own similar entry,
  refuses a foreign one, reports an id collision.
- read: NOT_FOUND means gone (empty id), e.g. deleted by hand or pruned after `expires_at`. A
  foreign entry at that id (see below) reads as gone too: a refresh drops it from the state, and
  the next `up` plans a create, which refuses it as an id collision if it holds our id.
- update: reads the entry and checks ownership, then writes the owned fields only (no call when
  only the connection changed). If the entry has vanished and holds the id we derive, it is
  re-created under that same id.
- delete: reads the entry and checks ownership, then deletes; NOT_FOUND counts as success.

Ownership on every write (`dynamic_providers/_kernel.py`): the entry at the state's id is ours
only if that id carries this stack's prefix (`pulumi.<project>.<stack>.`, from the connection in
the state or, on update, the new one: the mark create adopts by) and it is the entry in the state:
the same spiffe_id, parent_id and selectors (the provider never changes those in place; with no
readable identity in the state, the id must be the one derived from the entry's own). An entry
that fails was made by another stack or tool, or edited or re-created outside Pulumi. It is
refused untouched with `ForeignObjectError`, naming the entry, its id, whose prefix it carries and
what to do (an entry id cannot change, so handing over means deleting it and letting this stack
create its own).

The provider is stateless (a client is built inside each method) and picklable by reference.
The `connection` (transport, socket / docker host / kubectl target, trust domain, ownership
prefix parts) is a resource input, echoed in the outputs so read and delete can reach the
server; it carries no credentials (local admin socket, or the operator's docker/kubectl login).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import ValidationError

from dynamic_providers._kernel import (
    ForeignObjectError,
    OwnershipEncoder,
    Provider,
    Resource,
    changed_fields,
    contains_unknown,
    is_unknown,
    refusal,
    strip,
)
from dynamic_providers.spire.client import SpireError, open_client
from dynamic_providers.spire.models import (
    IDENTITY_FIELDS,
    MANAGED_FIELDS,
    MAX_HINT_BYTES,
    MAX_INT32,
    TRANSPORTS,
    Entry,
    EntryFields,
    dns_name_problem,
    duplicates,
    entry_id_for,
    parse_connection,
    parse_selector,
    selector_problem,
    selector_string,
    spiffe_id_problem,
    trust_domain_name,
    trust_domain_problem,
)

OUTPUT_KEYS = ("entry_id", "revision_number", "created_at")
DEFAULTS: dict[str, Any] = {
    "x509_svid_ttl": 0,
    "jwt_svid_ttl": 0,
    "dns_names": [],
    "federates_with": [],
    "admin": False,
    "downstream": False,
    "hint": "",
    "store_svid": False,
}


# --- check -------------------------------------------------------------------------------------


def _int_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a whole number of seconds, got {value!r}"
    if isinstance(value, float) and not value.is_integer():
        return f"must be a whole number of seconds, got {value!r}"
    if value < 0:
        return f"must be >= 0 (0 = the server's default TTL), got {value:g}"
    if value > MAX_INT32:
        return f"must be at most {MAX_INT32} (int32 seconds), got {value:g}"
    return None


def _string_list(field: str, value: Any, failures: list[tuple[str, str]]) -> list[tuple[int, str]] | None:
    """The known strings of a list with their own index (so a failure names the right item)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        failures.append((field, f"{field}: must be a list of strings, got {type(value).__name__}"))
        return None
    out = []
    for i, item in enumerate(value):
        if contains_unknown(item):
            continue
        if not isinstance(item, str):
            failures.append((field, f"{field}[{i}]: must be a string, got {item!r}"))
            continue
        out.append((i, item))
    return out


def _check_connection(raw: Any, failures: list[tuple[str, str]]) -> str | None:
    """Validate `connection`; return its trust domain when known and valid."""
    if is_unknown(raw):
        return None
    if raw is None:
        failures.append(("connection", "connection: required (transport, trust_domain, project, stack, ...)"))
        return None
    if not isinstance(raw, Mapping):
        failures.append(("connection", f"connection: must be an object, got {type(raw).__name__}"))
        return None
    td = raw.get("trust_domain")
    known_td = td if isinstance(td, str) and not contains_unknown(td) and trust_domain_problem(td) is None else None
    transport = raw.get("transport")
    if contains_unknown(transport):
        return known_td  # validated again at `up`, when every value is known
    if transport not in TRANSPORTS:
        failures.append(
            ("connection", f"connection.transport: must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        )
        return known_td
    unknown_keys = {k for k, v in raw.items() if contains_unknown(v)}
    try:
        parse_connection(raw)
    except ValidationError as e:
        for err in e.errors():
            loc = [str(p) for p in err["loc"] if str(p) != transport]
            if loc and loc[0] in unknown_keys:
                continue  # an Unknown placeholder, not the real value
            path = ".".join(["connection", *loc])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key for transport {transport!r}"
            failures.append(("connection", f"{path}: {msg}"))
    return known_td


def check_inputs(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every broken rule as (field, "field: rule"), skipping values that are still Unknown."""
    failures: list[tuple[str, str]] = []
    td = _check_connection(props.get("connection"), failures)

    for field, workload in (("spiffe_id", True), ("parent_id", False)):
        value = props.get(field)
        if contains_unknown(value):
            continue
        if not isinstance(value, str) or not value:
            failures.append((field, f"{field}: required, a SPIFFE ID such as spiffe://example.org/ns/app"))
            continue
        problem = spiffe_id_problem(value, td, workload=workload)
        if problem:
            failures.append((field, f"{field}: {problem}"))

    selector_types: set[str] = set()
    raw_selectors = props.get("selectors")
    if not is_unknown(raw_selectors):
        if not isinstance(raw_selectors, list | tuple) or not raw_selectors:
            failures.append(("selectors", 'selectors: at least one "type:value" selector is required'))
        else:
            seen: list[str] = []
            for i, raw in enumerate(raw_selectors):
                if contains_unknown(raw):
                    continue
                if not isinstance(raw, str | Mapping):
                    failures.append(("selectors", f'selectors[{i}]: must be a "type:value" string, got {raw!r}'))
                    continue
                if isinstance(raw, str) and ":" not in raw:
                    failures.append(("selectors", f"selectors[{i}]: {raw!r} is not \"type:value\" (no ':')"))
                    continue
                type_, value = parse_selector(raw)
                problem = selector_problem(type_, value)
                if problem:
                    failures.append(("selectors", f"selectors[{i}]: {raw!r}: selector {problem}"))
                    continue
                selector_types.add(type_)
                seen.append(selector_string(type_, value))
            for dup in duplicates(seen):
                failures.append(("selectors", f"selectors: {dup!r} is listed more than once"))

    for field in ("x509_svid_ttl", "jwt_svid_ttl"):
        value = props.get(field)
        if value is None or contains_unknown(value):
            continue
        problem = _int_problem(value)
        if problem:
            failures.append((field, f"{field}: {problem}"))

    for field in ("admin", "downstream", "store_svid"):
        value = props.get(field)
        if value is not None and not contains_unknown(value) and not isinstance(value, bool):
            failures.append((field, f"{field}: must be true or false, got {value!r}"))

    hint = props.get("hint")
    if hint is not None and not contains_unknown(hint):
        if not isinstance(hint, str):
            failures.append(("hint", f"hint: must be a string, got {hint!r}"))
        elif len(hint.encode()) > MAX_HINT_BYTES:
            failures.append(("hint", f"hint: at most {MAX_HINT_BYTES} bytes, got {len(hint.encode())}"))

    dns_names = props.get("dns_names")
    if not is_unknown(dns_names):
        dns = _string_list("dns_names", dns_names, failures) or []
        for i, name in dns:
            problem = dns_name_problem(name)
            if problem:
                failures.append(("dns_names", f"dns_names[{i}]: {name!r} {problem}"))
        for dup in duplicates([name for _, name in dns]):
            failures.append(("dns_names", f"dns_names: {dup!r} is listed more than once"))

    federates_with = props.get("federates_with")
    if not is_unknown(federates_with):
        tds = _string_list("federates_with", federates_with, failures) or []
        names = []
        for i, raw in tds:
            name = trust_domain_name(raw)
            if "/" in name:
                failures.append(
                    (
                        "federates_with",
                        f"federates_with[{i}]: {raw!r} must name a trust domain (other.org or spiffe://other.org), "
                        "not a SPIFFE ID with a path",
                    )
                )
                continue
            problem = trust_domain_problem(name)
            if problem:
                failures.append(("federates_with", f"federates_with[{i}]: {raw!r}: {problem}"))
                continue
            if td is not None and name == td:
                failures.append(
                    (
                        "federates_with",
                        f"federates_with[{i}]: {raw!r} is the server's own trust domain; list peers only",
                    )
                )
                continue
            names.append(name)
        for dup in duplicates(names):
            failures.append(("federates_with", f"federates_with: {dup!r} is listed more than once"))

    if props.get("store_svid") is True and len(selector_types) > 1:
        failures.append(
            (
                "store_svid",
                f"store_svid: needs all selectors of one type (SVIDStore export), got types {sorted(selector_types)}",
            )
        )
    return failures


# --- provider ----------------------------------------------------------------------------------


# Stand-ins for the identity fields, so that one field at a time can be read with `from_props`.
_PLACEHOLDER: dict[str, Any] = {"spiffe_id": "", "parent_id": "", "selectors": ()}


def _comparable(key: str, value: Any) -> Any:
    """`EntryFields.normalized()` of one field: sorted selectors, DNS names and trust domains,
    trust domains without scheme. A value it cannot read raises (the kernel's diff then compares
    it as `Malformed`, a change: a replacement for an identity field)."""
    return EntryFields.from_props({**_PLACEHOLDER, key: value}).normalized()[key]


def _state_identity(*states: Mapping[str, Any]) -> tuple[str, str, frozenset[str]] | None:
    """The (spiffe_id, parent_id, selectors) the state records, from the first state that has them readable."""
    for state in states:
        try:
            return EntryFields.from_props(state).identity()
        except (ValidationError, TypeError, ValueError, AttributeError, KeyError):
            continue
    return None


class EntryIdPrefix(OwnershipEncoder[str, Entry]):
    """SPIRE's ownership mark: the entry id's prefix `pulumi.<project>.<stack>.` (from a connection).

    An entry is ours when its id carries one of our prefixes (create adopts such an entry,
    refuses any other) and it is the entry in the state: same spiffe_id, parent_id and selectors
    (the provider never changes them in place). With no readable identity in the state, its id
    must be the one this provider derives from its own identity fields."""

    def __init__(self, *states: Mapping[str, Any]) -> None:
        self.states = states

    def parse(self, raw: Any) -> str | None:
        return parse_connection(raw).owner_prefix

    def owns(self, entry: Entry, marks: Sequence[str]) -> bool:
        prefix = next((p for p in marks if entry.id.startswith(p)), None)
        if prefix is None:
            return False
        recorded = _state_identity(*self.states)
        if recorded is not None:
            return entry.identity() == recorded
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


def _connection_key(raw: Any) -> Any:
    if isinstance(raw, Mapping):
        return {k: v for k, v in sorted(raw.items()) if v is not None}
    return raw


_LIST_KEYS: dict[str, Any] = {
    "selectors": lambda s: selector_string(*parse_selector(s)),
    "dns_names": lambda s: s,
    "federates_with": lambda s: trust_domain_name(s),
}


def _ordered_like(values: Sequence[str], reference: Any, key: Any) -> list[str]:
    """`values` (as the server holds them) in the order of `reference` (the program's list) when
    both hold the same items, else as the server returned them.

    SPIRE's list order is not stable: a create or update answers with the selectors sorted, a
    read returns them in insertion order (tests/real/test_spire_fidelity.py). Without this, a
    `pulumi refresh` right after `pulumi up` would report a changed `selectors` output."""
    if not isinstance(reference, list | tuple) or not all(isinstance(r, str) for r in reference):
        return list(values)
    try:
        ref_keys = [key(r) for r in reference]
    except ValueError:
        return list(values)
    if sorted(key(v) for v in values) != sorted(ref_keys):
        return list(values)
    by_key = {key(v): v for v in values}
    return [by_key[k] for k in ref_keys]


def _props_of(entry: Entry, reference: Mapping[str, Any]) -> dict[str, Any]:
    props = entry.fields().as_props()
    for name, key in _LIST_KEYS.items():
        props[name] = _ordered_like(props[name], reference.get(name), key)
    return props


def _outs(entry: Entry, connection: Any, reference: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **_props_of(entry, reference),
        "connection": connection,
        "entry_id": entry.id,
        "revision_number": entry.revision_number,
        "created_at": entry.created_at,
    }


class SpireEntryProvider(Provider):
    """CRUD for one SPIRE registration entry (see the module docstring)."""

    args_model = EntryFields
    computed = OUTPUT_KEYS

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {k: v for k, v in strip(news).items() if k not in OUTPUT_KEYS}
        connection = inputs.get("connection")
        if isinstance(connection, Mapping):
            # The engine runs the provider with PULUMI_PROJECT (and the test host with
            # PULUMI_STACK) set; fill in what the program left out, so state records the owner.
            env = {"project": os.environ.get("PULUMI_PROJECT"), "stack": os.environ.get("PULUMI_STACK")}
            missing = {k: v for k, v in env.items() if v and connection.get(k) is None}
            if missing:
                inputs["connection"] = {**connection, **missing}
        failures = check_inputs(inputs)
        for key, default in DEFAULTS.items():
            if inputs.get(key) is None:
                inputs[key] = default
        return CheckResult(inputs, [CheckFailure(field, reason) for field, reason in failures])

    def changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        # A field the new inputs leave out keeps its stored value; a connection left out is a change.
        managed = changed_fields(MANAGED_FIELDS, olds, {**olds, **news}, _comparable)
        return managed + changed_fields(("connection",), olds, news, lambda _k, v: _connection_key(v))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = self.changes(strip(olds), strip(news))
        replaces = [k for k in IDENTITY_FIELDS if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        props = strip(props)
        connection = parse_connection(props["connection"])
        with open_client(connection) as client:
            entry = client.create(EntryFields.from_props(props))
        return CreateResult(entry.id, _outs(entry, props["connection"], props))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        props = strip(props)
        connection = parse_connection(props["connection"])
        with open_client(connection) as client:
            entry = client.get(id_)
        ownership = EntryIdPrefix(props)
        if entry is None or not ownership.owns(entry, ownership.marks(props["connection"])):
            return ReadResult("", {})  # gone, or not this stack's: refresh forgets it
        inputs = {**_props_of(entry, props), "connection": props["connection"]}
        return ReadResult(entry.id, _outs(entry, props["connection"], props), inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        olds, news = strip(olds), strip(news)
        connection = parse_connection(news["connection"])
        fields = EntryFields.from_props(news)
        if not changed_fields(MANAGED_FIELDS, olds, fields.as_props(), _comparable):
            # Only the connection changed: nothing to write on the server.
            return UpdateResult({**olds, "connection": news["connection"]})
        with open_client(connection) as client:
            try:
                current = client.get(id_)
                ownership = EntryIdPrefix(olds, news)
                if current is not None:
                    ownership.require(
                        "update", current, id_, ownership.marks(news["connection"], olds.get("connection"))
                    )
                if current is None:
                    raise SpireError(f"entry {id_} not found", code="NOT_FOUND", entry_id=id_)
                entry = client.update(id_, fields, current=current)
            except SpireError as e:
                if e.code != "NOT_FOUND":
                    raise
                if client.entry_id_for(fields) != id_:
                    raise SpireError(
                        f"entry {id_} no longer exists on the SPIRE server (deleted outside Pulumi or expired): "
                        "run `pulumi refresh`, then `pulumi up` re-creates it",
                        code="NOT_FOUND",
                        entry_id=id_,
                    ) from None
                entry = client.create(fields)
        return UpdateResult(_outs(entry, news["connection"], news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        props = strip(props)
        connection = parse_connection(props["connection"])
        with open_client(connection) as client:
            current = client.get(id_)
            if current is None:
                return  # already gone
            ownership = EntryIdPrefix(props)
            ownership.require("delete", current, id_, ownership.marks(props["connection"]))
            client.delete(id_)


class SpireEntry(Resource, module="spire", name="Entry"):
    """A SPIRE registration entry (`pulumi-python:dynamic/spire:Entry`).

    Inputs mirror `spire.api.types.Entry`: `selectors` are "type:value" strings, TTLs are seconds
    (0 = the server's default), `federates_with` lists trust domains (with or without
    `spiffe://`). `connection` says how to reach the server: `transport` "grpc" (`socket_path`),
    "docker-exec" (`docker_host`, `container` or Swarm `service`) or "kubectl-exec" (`namespace`,
    `pod`, `container`, `context`), plus `trust_domain`, `project` and `stack` (the entry-id
    ownership prefix `pulumi.<project>.<stack>.`, filled in from the running program when left out).
    """

    provider = SpireEntryProvider  # its `check` fills in DEFAULTS for what is left out
    if TYPE_CHECKING:
        spiffe_id: pulumi.Output[str]
        entry_id: pulumi.Output[str]

    @classmethod
    def with_program_inputs(cls, resource_name: str, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, "connection": _with_owner(props["connection"])}


def _with_owner(connection: pulumi.Input[Mapping[str, Any]]) -> pulumi.Input[Mapping[str, Any]]:
    """`connection` with `project` / `stack` (the entry-id ownership prefix) filled in from the
    running program when left out: the program knows its stack, the provider process may not."""

    def fill(raw: Any) -> Any:
        if not isinstance(raw, Mapping):
            return raw  # check reports it
        out = dict(raw)
        for key, value in (("project", pulumi.get_project()), ("stack", pulumi.get_stack())):
            if out.get(key) is None:
                out[key] = value
        return out

    if isinstance(connection, Mapping):
        return fill(connection)  # type: ignore[no-any-return]
    return pulumi.Output.from_input(cast(Any, connection)).apply(fill)


__all__ = ["DEFAULTS", "SpireEntry", "SpireEntryProvider", "check_inputs"]
