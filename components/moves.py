"""Objects that move to another resource name keep their resource.

Rename a workload or user key in the stack file and keep its SPIFFE ID or email, and the program
registers the same SPIRE entry or Ziti identity under a new resource name. Without more, the engine
would create the new resource (which adopts the entry by its deterministic id, or is refused: an
identity's external id is unique) and then delete the old one, removing the object. So the program
reads the previous deployment's resources (the engine's builtin `readStackResourceOutputs`, once
per run: the state's outputs, never written anywhere) and gives a new resource whose object an old
one held the old URN as an alias: the engine renames it in the state, and updates it in place
(an identity's name) — with `pulumi up` as with `ops`. docs/operations.md#replacing-and-renaming.

A value can also change hands between resources that stay (a workload's SPIFFE ID or a user's
email given to another key while that key takes a new one, or a renamed key whose old key is
declared again): the engine refuses an alias naming a URN the program still declares, so the old
name keeps its resource and the program orders the two instead. Ziti refuses one external id on
two identities, so the identity that takes the value is written after the one that gives it up;
a SPIRE entry's create adopts the entry of its triple, and the old resource's delete leaves it.
Which names the program registers is known only once it has registered them all, so these
aliases and dependencies are Outputs resolved after the build. Resources that trade values, and a
value taken from a resource the deployment removes, have no order: the program fails at preview
naming them and the two deployments that do it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pydantic import ValidationError

from dynamic_providers.spire.models import parse_connection

ENTRY = "pulumi-python:dynamic/spire:Entry"
IDENTITY = "pulumi-python:dynamic/ziti:Identity"
READ_STATE = "pulumi:pulumi:readStackResourceOutputs"


def _entry_key(props: Mapping[str, Any]) -> str | None:
    """The SPIRE server (its connection, as its model reads it) and the entry's triple."""
    try:
        server = parse_connection(props["connection"]).model_dump(mode="json")
        triple = [str(props["spiffe_id"]), str(props["parent_id"]), sorted(str(s) for s in props["selectors"])]
    except (KeyError, TypeError, ValueError, ValidationError):
        return None  # not plain (an Output) or not readable: no move is followed
    return json.dumps([server, *triple], sort_keys=True)


def _identity_key(props: Mapping[str, Any]) -> str | None:
    """The external id: unique among the controller's identities (one controller per stack)."""
    external_id = props.get("external_id")
    return external_id if isinstance(external_id, str) and external_id else None


KEYS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {ENTRY: _entry_key, IDENTITY: _identity_key}
# Types whose key the server refuses on a second object: a resource takes it only once its holder let go.
# (An entry is taken over: its create adopts the entry of that triple, and the old resource's delete leaves it.)
EXCLUSIVE = frozenset({IDENTITY})


def object_key(type_: str, props: Mapping[str, Any]) -> str | None:
    """What names the object of a resource of `type_` on its server, or None (not a followed type)."""
    key = KEYS.get(type_)
    found = key(props) if key is not None else None
    return f"{type_} {found}" if found is not None else None


class MoveConflictError(ValueError):
    """Values that change hands among this stack's resources in a way no single deployment can apply."""


@dataclass(frozen=True)
class _Handover:
    """A resource of a followed type whose object key another resource name held in the previous
    deployment: a renamed key (a new resource) or a value taken from another resource."""

    type_: str
    name: str
    key: str  # the object key it declares
    moved_from: str  # the URN that held it (of the same type)
    new: bool  # a resource the previous deployment did not have
    resolve_alias: Callable[[pulumi.Output[str | pulumi.Alias]], None] | None
    resolve_after: Callable[[pulumi.Output[list[pulumi.Resource]]], None] | None

    @property
    def old_name(self) -> str:
        return _name(self.moved_from)


class Moves:
    """The previous deployment's followed objects: object key -> URN, and the (type, name) of each
    resource of a followed type it held."""

    def __init__(self, previous: Mapping[str, Any]) -> None:
        self.held: dict[str, str] = {}
        self.names: set[tuple[str, str]] = set()
        self._registered: dict[tuple[str, str], pulumi.Resource] = {}
        self._handovers: list[_Handover] = []
        for urn, res in previous.items():
            if not isinstance(res, Mapping) or res.get("type") not in KEYS:
                continue
            type_, outputs = str(res["type"]), res.get("outputs")
            self.names.add((type_, _name(str(urn))))
            key = object_key(type_, outputs) if isinstance(outputs, Mapping) else None
            if key is not None:
                self.held[key] = str(urn)

    @classmethod
    def of_this_stack(cls) -> Moves:
        """From the state of the stack being deployed (empty on its first deployment)."""
        stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
        try:
            answer = pulumi.runtime.invoke(READ_STATE, {"stackName": stack}).value or {}
        except Exception as e:  # noqa: BLE001 - whatever the engine says, deploying goes on without it
            pulumi.log.warn(f"the previous deployment could not be read ({e}): a renamed workload or user key is "
                            "not followed; `ops preview` refuses such a move")
            return cls({})
        return cls(answer.get("outputs") or {})

    def holder(self, type_: str, name: str, props: Mapping[str, Any]) -> str | None:
        """The URN under which the previous deployment held the object key this resource declares,
        when that was another resource name."""
        return self._held(object_key(type_, props), name)

    def _held(self, key: str | None, name: str) -> str | None:
        held = self.held.get(key) if key is not None else None
        return held if held is not None and _name(held) != name else None

    def moved_from(self, type_: str, name: str, props: Mapping[str, Any]) -> str | None:
        """The URN under which the previous deployment held the object of this new resource, if any."""
        if type_ not in KEYS or (type_, name) in self.names:
            return None  # not a followed type, or not a new resource
        return self.holder(type_, name, props)

    def options(self, resource: pulumi.Resource, type_: str, name: str,
                props: Mapping[str, Any]) -> pulumi.ResourceOptions | None:
        """What a resource the program registers needs (run for every one; None for most): a new
        resource whose object another name held gets that URN as an alias; one whose unique value
        (`EXCLUSIVE`) another name held is updated after that one. Both are Outputs that `settle`
        resolves once every resource is registered (until then the engine does not see this one)."""
        if type_ not in KEYS:
            return None
        self._registered[(type_, name)] = resource
        key = object_key(type_, props) if self.held else None  # no work when nothing was held
        moved_from = self._held(key, name)
        new = (type_, name) not in self.names
        if key is None or moved_from is None or not (new or type_ in EXCLUSIVE):
            return None  # an entry taking another's triple adopts it; the old one's delete then leaves it
        alias: pulumi.Output[str | pulumi.Alias] | None = None
        after: pulumi.Output[list[pulumi.Resource]] | None = None
        resolve_alias: Callable[[pulumi.Output[str | pulumi.Alias]], None] | None = None
        resolve_after: Callable[[pulumi.Output[list[pulumi.Resource]]], None] | None = None
        if new:
            alias, resolve_alias = pulumi.deferred_output()
        if type_ in EXCLUSIVE:
            after, resolve_after = pulumi.deferred_output()
        self._handovers.append(_Handover(type_, name, key, moved_from, new, resolve_alias, resolve_after))
        return pulumi.ResourceOptions(aliases=[alias] if alias is not None else None, depends_on=after)

    def settle(self, label: Callable[[str], str] = str) -> MoveConflictError | None:
        """Resolve what `options` handed out, once the program has registered every resource.

        A new resource whose object's old name is not declared again moves (its alias). Otherwise
        the old name keeps its resource (the engine refuses an alias naming a URN the program still
        declares): an entry adopts the object, an identity is updated or created after the resource
        that gives the value up. Two cases have no order and make the error returned for the
        program to raise: resources that trade values (a cycle), and a value taken from a resource
        this deployment removes (the engine deletes after every create and update). `label`: how
        the messages name a resource (the stack-file key it comes from)."""
        handovers, self._handovers = self._handovers, []
        declared = {h.name: h for h in handovers if (h.type_, h.old_name) in self._registered}

        def takes(h: _Handover) -> str:
            return f"{label(h.name)} takes {h.key.split(' ', 1)[-1]!r} from {label(h.old_name)}"

        problems = [
            f"{takes(h)}, which this deployment removes: deploy the removal of {label(h.old_name)} first, then "
            f"the change of {label(h.name)}"
            for h in handovers if h.type_ in EXCLUSIVE and not h.new and h.name not in declared
        ]
        for cycle in _cycles({n: h.old_name for n, h in declared.items() if h.type_ in EXCLUSIVE}):
            problems.append(
                f"{' and '.join(map(label, cycle))} trade values ({'; '.join(takes(declared[n]) for n in cycle)}): "
                "the controller holds a value on one identity at a time, so give one of them a value no identity "
                "holds first, deploy, then the value it should have")
        for h in handovers:
            if h.resolve_alias is not None:
                keep = problems or h.name in declared
                h.resolve_alias(pulumi.Output.from_input(pulumi.Alias() if keep else h.moved_from))
            if h.resolve_after is not None:
                holder = self._registered.get((h.type_, h.old_name))
                after = [holder] if holder is not None and not problems else []
                h.resolve_after(pulumi.Output.from_input(after))
        if not problems:
            return None
        return MoveConflictError(
            "values change hands among this stack's resources in a way one deployment cannot apply: "
            + "; ".join(problems))


def _name(urn: str) -> str:
    """A URN's resource name."""
    return urn.rsplit("::", 1)[-1]


def _cycles(edges: Mapping[str, str]) -> list[list[str]]:
    """The cycles of a graph of at most one edge per node (name -> the name it waits for), each
    once, from its smallest name."""
    found = []
    for start in sorted(edges):
        path, node = [start], edges[start]
        while node in edges and node not in path:
            path.append(node)
            node = edges[node]
        if node == start and start == min(path):
            found.append(path)
    return found
