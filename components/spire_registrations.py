"""SPIRE registration entries for the configured workloads, one `SpireEntry` per workload.

The workloads are a named map in stack config (`workloads: {name: {spiffePath, node, selectors,
...}}`), so entries are keyed and named by workload name, never by position: reordering the map
changes nothing, renaming a workload replaces only its entry. Each entry is parented to the
SPIRE agent of the workload's node (swarm: `spiffe://<td>/spire/agent/x509pop/<node>`, from
`SpireStack.agent_spiffe_ids`; external: `spire.agents`), which is the agent that attests it.

The assembly resolves each workload to its entry and `spire.transport` to the provider's
connection; the configuration has already refused a workload on a node without an agent and two
workloads with one SPIFFE ID (so no two entries can claim the same (ID, parent, selectors)).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi

from dynamic_providers.spire.provider import SpireEntry


@dataclass(frozen=True)
class Registration:
    """One workload's entry: its SPIFFE ID under the agent (`parent_id`) that attests it."""

    spiffe_id: str
    parent_id: str
    selectors: tuple[str, ...]
    x509_svid_ttl: int = 0
    dns_names: tuple[str, ...] = ()
    federates_with: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpireRegistrationsArgs:
    """The entries by workload name, and how the provider reaches the server (`connection`, with
    the trust domain and the ownership's project and stack: `components.spire_connection`)."""

    entries: Mapping[str, Registration]
    connection: Mapping[str, Any] = field(default_factory=dict)


class SpireRegistrations(pulumi.ComponentResource):
    """One SPIRE registration entry per configured workload."""

    entry_ids: dict[str, pulumi.Output[str]]
    spiffe_ids: dict[str, str]
    entries: dict[str, SpireEntry]

    def __init__(
        self, resource_name: str, args: SpireRegistrationsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("identity-platform:spire:SpireRegistrations", resource_name, None, opts)
        conn = dict(args.connection)
        self.spiffe_ids = {wname: reg.spiffe_id for wname, reg in sorted(args.entries.items())}
        # depends_on is not inherited through `parent`: pass it on so entries wait for the server.
        depends_on = opts.depends_on if opts is not None else None
        self.entries = {}
        for wname, reg in sorted(args.entries.items()):
            self.entries[wname] = SpireEntry(
                f"{resource_name}-entry-{wname}",
                spiffe_id=reg.spiffe_id,
                parent_id=reg.parent_id,
                selectors=list(reg.selectors),
                # Left out at their defaults (0: the server's; none), which the provider's check fills
                # in: every input given is one more Output per entry for the SDK.
                x509_svid_ttl=reg.x509_svid_ttl or None,
                dns_names=list(reg.dns_names) or None,
                federates_with=list(reg.federates_with) or None,
                connection=conn,
                opts=pulumi.ResourceOptions(depends_on=depends_on, parent=self),
            )
        self.entry_ids = {wname: e.id for wname, e in self.entries.items()}
        self.register_outputs({"entry_ids": self.entry_ids, "spiffe_ids": self.spiffe_ids})
