"""SPIRE registration entries for the configured workloads, one `SpireEntry` per workload.

The workloads are a named map in stack config (`workloads: {name: {spiffePath, node, selectors,
...}}`), so entries are keyed and named by workload name, never by position: reordering the map
changes nothing, renaming a workload replaces only its entry. Each entry is parented to the
SPIRE agent of the workload's node (swarm: `spiffe://<td>/spire/agent/x509pop/<node>`, from
`SpireStack.agent_spiffe_ids`; external: `spire.agents`), which is the agent that attests it.

`registration_connection()` turns `spire.transport` into the provider's `connection`: docker exec
on the SPIRE server's node (the Swarm default), kubectl exec, or the admin socket over gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from dynamic_providers.spire.provider import SpireEntry
from stack_config import ConfigError, StackConfig, Workload
from stack_config.base import PROJECT


def registration_connection(
    config: StackConfig,
    *,
    server_node: str | None = None,
    server_service: str | None = None,
    server_socket_path: str | None = None,
) -> dict[str, Any]:
    """The `connection` for `SpireEntry` from `spire.transport`.

    swarm: docker-exec runs the CLI in the running task of `server_service` on
    `spire.transport.node` (default: `server_node`, where SpireStack places the server), through
    that node's `dockerHost` (an ssh:// URL in prod). external: docker-exec names the engine and
    the container or service of your server. grpc dials `spire.transport.socketPath` (the admin
    socket, local or forwarded); kubectl-exec runs the CLI in `namespace`/`pod` (the helm chart's
    defaults unless set).
    """
    t = config.spire.transport
    base: dict[str, Any] = {
        "trust_domain": config.spire.trust_domain,
        "project": pulumi.get_project(),
        "stack": pulumi.get_stack(),
    }
    if t.kind == "grpc":
        return {"transport": "grpc", "socket_path": t.socket_path, **base}
    if t.kind == "kubectl-exec":
        where = {k: v for k, v in (("namespace", t.namespace), ("pod", t.pod)) if v is not None}
        return {"transport": "kubectl-exec", **where, **base}
    if config.platform != "swarm":  # the user's server (external, or kubernetes crd-free)
        target = {"container": t.container} if t.container else {"service": t.service}
        return {"transport": "docker-exec", "docker_host": t.docker_host, **target, **base}
    node = t.node or server_node
    if node is None or node not in config.nodes:
        raise ConfigError(f"{PROJECT}:spire.transport.node: {node!r} is not a key of `nodes` ({sorted(config.nodes)})")
    connection = {
        "transport": "docker-exec",
        "docker_host": config.nodes[node].docker_host,
        "service": server_service,
        **base,
    }
    if server_socket_path:
        connection["socket_path"] = server_socket_path
    return connection


class SpireRegistrations(pulumi.ComponentResource):
    """One SPIRE registration entry per configured workload."""

    entry_ids: dict[str, pulumi.Output[str]]
    spiffe_ids: dict[str, str]
    entries: dict[str, SpireEntry]

    def __init__(
        self,
        resource_name: str,
        *,
        workloads: Mapping[str, Workload],
        trust_domain: str,
        agent_spiffe_ids: Mapping[str, str],
        connection: Mapping[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("identity-platform:spire:SpireRegistrations", resource_name, None, opts)
        conn = {
            "trust_domain": trust_domain,
            "project": pulumi.get_project(),
            "stack": pulumi.get_stack(),
            **dict(connection),
        }
        self.spiffe_ids = {}
        parents: dict[str, str] = {}
        seen: dict[tuple[str, str, frozenset[str]], str] = {}
        for wname, w in sorted(workloads.items()):
            if w.node not in agent_spiffe_ids:
                raise ConfigError(
                    f"{PROJECT}:workloads.{wname}.node: no SPIRE agent runs on {w.node!r} "
                    f"(agents: {sorted(agent_spiffe_ids)}); set it to one of those nodes"
                )
            spiffe_id = f"spiffe://{trust_domain}{w.spiffe_path}"
            key = (spiffe_id, agent_spiffe_ids[w.node], frozenset(w.selectors))
            if key in seen:
                # SPIRE keeps one entry per (SPIFFE ID, parent, selectors): both would own it.
                raise ConfigError(
                    f"{PROJECT}:workloads.{wname}: same spiffePath, node and selectors as workloads.{seen[key]}; "
                    "SPIRE allows one entry for that combination: merge them or change the selectors"
                )
            seen[key] = wname
            self.spiffe_ids[wname] = spiffe_id
            parents[wname] = agent_spiffe_ids[w.node]

        # depends_on is not inherited through `parent`: pass it on so entries wait for the server.
        depends_on = opts.depends_on if opts is not None else None
        self.entries = {}
        for wname, w in sorted(workloads.items()):
            self.entries[wname] = SpireEntry(
                f"{resource_name}-entry-{wname}",
                spiffe_id=self.spiffe_ids[wname],
                parent_id=parents[wname],
                selectors=list(w.selectors),
                x509_svid_ttl=w.x509_svid_ttl,
                dns_names=list(w.dns_names),
                connection=conn,
                opts=pulumi.ResourceOptions(depends_on=depends_on, parent=self),
            )
        self.entry_ids = {wname: e.id for wname, e in self.entries.items()}
        self.register_outputs({"entry_ids": self.entry_ids, "spiffe_ids": self.spiffe_ids})
