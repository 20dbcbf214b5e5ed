"""Objects that move to another resource name keep their resource.

Rename a workload or user key in the stack file and keep its SPIFFE ID or email, and the program
registers the same SPIRE entry or Ziti identity under a new resource name. Without more, the engine
would create the new resource (which adopts the entry by its deterministic id, or is refused: an
identity's external id is unique) and then delete the old one, removing the object. So the program
reads the previous deployment's resources (the engine's builtin `readStackResourceOutputs`, once
per run: the state's outputs, never written anywhere) and gives a new resource whose object an old
one held the old URN as an alias: the engine renames it in the state, and updates it in place
(an identity's name) — with `pulumi up` as with `ops`. docs/operations.md#replacing-and-renaming.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
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


class Moves:
    """The previous deployment's followed objects: object key -> URN, and the (type, name) of each
    resource of a followed type it held."""

    def __init__(self, previous: Mapping[str, Any]) -> None:
        self.held: dict[str, str] = {}
        self.names: set[tuple[str, str]] = set()
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

    def alias(self, type_: str, name: str, props: Mapping[str, Any]) -> str | None:
        """The URN under which the previous deployment held this new resource's object, if any (run
        for every resource the program registers: other types return at once)."""
        if type_ not in KEYS or (type_, name) in self.names:
            return None  # the resource is not new
        key = object_key(type_, props)
        return self.held.get(key) if key is not None else None
