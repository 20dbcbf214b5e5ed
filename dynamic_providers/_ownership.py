"""What every provider does when an update or delete meets an object this stack does not own.

Before any write, `update` and `delete` read the object at the address their state records (an
id, or a name for name-addressed kinds) and check two things:

* identity: it is the object in the state (same id; for SPIRE, the id our own derivation gives
  its spiffe_id/parent_id/selectors);
* ownership: it carries this stack's marker (Keycloak's `pulumi.stack` attribute, Ziti's
  `pulumi.stack` / `pulumi.name` tags, SPIRE's `pulumi.<project>.<stack>.` entry id prefix).

An object failing either is refused with `ForeignObjectError` and no request that could change
it is sent. `read` reports such an object as gone instead, so a refresh drops it from the state
and the next `up` plans a create, which refuses it too when it holds the name. One message
shape for all kinds: what and its id, why it is not ours, who owns it, how to hand it over.
"""

from __future__ import annotations

REFRESH_HINT = (
    "If this stack should let go of it, `pulumi refresh` drops it from this stack's state (a later "
    "`pulumi up` creates the resource anew, or refuses if that object still holds its name)"
)


class ForeignObjectError(Exception):
    """The object at the state's address is not this resource's: nothing was written."""


def refusal(action: str, what: str, id_: str, reason: str, owner: str, handover: str) -> ForeignObjectError:
    """`ForeignObjectError` with the one message shape every provider uses."""
    return ForeignObjectError(
        f"refusing to {action} {what} (id {id_}): {reason}; {owner}. Nothing was changed. "
        f"To hand it over to this stack: {handover}. {REFRESH_HINT}"
    )


class Malformed:
    """A stored value that could not be read in its expected form: unequal to everything, so a
    `diff` comparing it reports a change (or a replacement) instead of raising."""

    __slots__ = ("raw",)

    def __init__(self, raw: object) -> None:
        self.raw = raw

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Malformed({self.raw!r})"
