"""Objects that move to another resource name keep their resource.

Rename a workload or user key in the stack file and keep its SPIFFE ID or email, and the program
registers the same SPIRE entry or Ziti identity under a new resource name. Without more, the engine
would create the new resource (which adopts the entry by its deterministic id, or is refused: an
identity's external id is unique) and then delete the old one, removing the object. So the program
reads the previous deployment's resources (the engine's builtin `readStackResourceOutputs`, once
per run: the state's outputs, never written anywhere) and gives a new resource whose object an old
one held the old URN as an alias: the engine renames it in the state, and updates it in place
(an identity's name) — with `pulumi up` as with `ops`. docs/operations.md#replacing-and-renaming.

The engine refuses an alias naming a URN the program registers again, so a key renamed while its
old key is declared anew for another object cannot be followed in one deployment. Which names the
program registers is known only once it has registered them all, so a moved resource's alias is an
Output resolved after the build; in that case it names the resource itself (no alias), and the
program fails asking for two deployments: the rename alone, then the old key again.
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


def object_key(type_: str, props: Mapping[str, Any]) -> str | None:
    """What names the object of a resource of `type_` on its server, or None (not a followed type)."""
    key = KEYS.get(type_)
    found = key(props) if key is not None else None
    return f"{type_} {found}" if found is not None else None


class MoveConflictError(ValueError):
    """A renamed key's object cannot be followed: its old resource name is declared again."""


@dataclass(frozen=True)
class _Move:
    """A new resource of a followed type whose object the previous deployment held under another name."""

    type_: str
    name: str
    moved_from: str  # the URN that held its object (of the same type)
    resolve: Callable[[pulumi.Output[str | pulumi.Alias]], None]

    @property
    def old_name(self) -> str:
        return self.moved_from.rsplit("::", 1)[-1]


class Moves:
    """The previous deployment's followed objects: object key -> URN, and the (type, name) of each
    resource of a followed type it held."""

    def __init__(self, previous: Mapping[str, Any]) -> None:
        self.held: dict[str, str] = {}
        self.names: set[tuple[str, str]] = set()
        self._registered: set[tuple[str, str]] = set()
        self._moves: list[_Move] = []
        for urn, res in previous.items():
            if not isinstance(res, Mapping) or res.get("type") not in KEYS:
                continue
            type_, outputs = str(res["type"]), res.get("outputs")
            self.names.add((type_, str(urn).rsplit("::", 1)[-1]))
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

    def moved_from(self, type_: str, name: str, props: Mapping[str, Any]) -> str | None:
        """The URN under which the previous deployment held the object of this new resource, if any."""
        if type_ not in KEYS or (type_, name) in self.names:
            return None  # not a followed type, or not a new resource
        key = object_key(type_, props)
        return self.held.get(key) if key is not None else None

    def alias(self, type_: str, name: str, props: Mapping[str, Any]) -> pulumi.Output[str | pulumi.Alias] | None:
        """The alias of a resource the program registers (run for every one; None unless it moved):
        `moved_from`, once `settle` has seen every resource the program registers (until then the
        engine does not see this one)."""
        if type_ not in KEYS or not self.held:
            return None
        self._registered.add((type_, name))
        moved_from = self.moved_from(type_, name, props)
        if moved_from is None:
            return None
        resolve: Callable[[pulumi.Output[str | pulumi.Alias]], None]
        alias, resolve = pulumi.deferred_output()
        self._moves.append(_Move(type_, name, moved_from, resolve))
        return alias

    def settle(self) -> MoveConflictError | None:
        """Resolve the aliases `alias` handed out, once the program has registered every resource.
        A move whose old name is registered again cannot be followed (the engine refuses an alias
        naming a URN the program still declares): then no move gets its alias (each resolves to the
        resource itself, which is none) and the error, for the program to raise, asks for two
        deployments."""
        blocked = [m for m in self._moves if (m.type_, m.old_name) in self._registered]
        for m in self._moves:
            m.resolve(pulumi.Output.from_input(pulumi.Alias() if blocked else m.moved_from))
        self._moves.clear()
        if not blocked:
            return None
        moved = "; ".join(f"{m.name} would take over what {m.old_name} held, and {m.old_name} is declared again"
                          for m in blocked)
        return MoveConflictError(
            f"a renamed key cannot be followed in the deployment that declares its old key again ({moved}): the "
            "engine cannot give a resource the URN of one the program still declares. Deploy the rename alone first "
            "(without the key that reuses the old name), then add that key back in a second deployment"
        )
