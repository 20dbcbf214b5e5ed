"""The enterprise topology's own SPIRE configs (`Pulumi.k8s-enterprise.yaml` through
`components/kubernetes/enterprise_config.py`), moved onto loopback for the real binaries.

What changes is only where things are: the pods' paths go under a scratch directory
(`servers.spire.remap`), listeners bind 127.0.0.1 on free ports, and each `federates_with` URL
points at the peer's local bundle endpoint instead of the other cluster's NodePort. The trust
domains, the federation relationships and profiles, the node attestor and the UpstreamAuthority
are the rendered ones. The CA files are made with the parameters the stack gives pulumi-tls (whose
provider plugin does not run here; `servers.spire.self_signed_ca` / `intermediate_ca`): a
self-signed P-384 root for the upstream, an intermediate it signs for the downstream
(`IntermediateCa`), with the root as the downstream's `bundle_file_path`.

`running=True` also swaps the PostgreSQL datastore for SQLite (a server per test, no database to
run); `spire-server validate` checks the rendered PostgreSQL datastore as shipped.

`nested_layout` does the same for `Pulumi.k8s-enterprise-nested.yaml` (`nesting: spire`): both
servers, both clusters' agents and the upstream server's agents in the downstream cluster; given a
running upstream (`NestedUpstream`), the downstream's UpstreamAuthority "spire" dials it and its
agent's socket instead of the upstream cluster's NodePort and the CSI volume, in its trust domain.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

import stack_config
from components.kubernetes import spire_config as sc
from components.kubernetes.enterprise_config import (
    Role,
    build_side_agent_conf,
    build_side_server_conf,
    build_upstream_agent_conf,
    enterprise_sides,
)
from servers import spire
from servers.process import free_port
from stack_config import KubernetesSettings
from stack_config.kubernetes_enterprise import EnterpriseSettings
from tests.harness.mock_engine import stack_config as raw_stack_config

STACK = "k8s-enterprise"
NESTED_STACK = "k8s-enterprise-nested"


@dataclass(frozen=True)
class LocalSide:
    role: Role
    trust_domain: str
    home: Path
    server_conf: Path
    agent_conf: Path
    socket: Path
    root: x509.Certificate
    bundle_port: int  # its bundle endpoint's, on 127.0.0.1


def sections(cfg: stack_config.StackConfig) -> tuple[KubernetesSettings, EnterpriseSettings]:
    """The `kubernetes` section and its `enterprise` part, as the assembly gives them to the topology."""
    k8s = cfg.kubernetes
    assert k8s is not None and k8s.enterprise is not None
    return k8s, k8s.enterprise


def config(*, controller_manager: bool = True) -> stack_config.StackConfig:
    """The stack file's config; `controller_manager=False`: as with `controllerManager: false`
    (static federation relationships in server.conf)."""
    cfg = stack_config.parse_stack_values(*raw_stack_config(STACK))
    if controller_manager:
        return cfg
    k8s = cfg.kubernetes
    assert k8s is not None and k8s.enterprise is not None
    ent = k8s.enterprise.model_copy(update={"controller_manager": False})
    return cfg.model_copy(update={"kubernetes": k8s.model_copy(update={"enterprise": ent})})


def layout(root: Path, *, running: bool, controller_manager: bool = True) -> dict[Role, LocalSide]:
    """Both sides' server.conf and agent.conf under `root`, with the files they name (the configs
    of the stack file, or with `controllerManager: false`)."""
    cfg = config(controller_manager=controller_manager)
    k8s, ent = sections(cfg)
    sides = enterprise_sides(cfg.spire.trust_domain, ent)
    endpoints = {role: free_port() for role in sides}
    root_key, root_cert = spire.self_signed_ca(f"{cfg.spire.trust_domain} root CA", 48)
    out = {}
    for role, side in sides.items():
        home = root / role
        paths = _paths(home)
        secrets = paths[sc.SERVER_SECRETS]
        if role == "upstream":
            ca_key, ca_cert = root_key, root_cert
        else:
            ca_key, ca_cert = spire.intermediate_ca(f"{side.trust_domain} intermediate CA", root_key, root_cert, 48)
            (secrets / sc.UPSTREAM_BUNDLE).write_text(spire._pem(root_cert))
        spire._write_key(secrets / sc.UPSTREAM_KEY, ca_key)
        (secrets / sc.UPSTREAM_CERT).write_text(spire._pem(ca_cert))
        (paths[sc.AGENT_BUNDLE_DIR] / sc.AGENT_BUNDLE).write_text(spire._pem(root_cert))

        rendered = build_side_server_conf(cfg.spire, ent, side)
        federation = rendered.server.federation
        assert federation is not None and federation.bundle_endpoint is not None
        peer = "downstream" if role == "upstream" else "upstream"
        local_federation = federation.model_copy(update={
            "bundle_endpoint": federation.bundle_endpoint.model_copy(
                update={"address": "127.0.0.1", "port": endpoints[role]}),
            "federates_with": {td: f.model_copy(update={"bundle_endpoint_url": f"https://127.0.0.1:{endpoints[peer]}"})
                               for td, f in federation.federates_with.items()},
        })
        values: dict[str, Any] = {
            "server.bind_address": "127.0.0.1", "server.bind_port": str(free_port()),
            "server.federation": local_federation.model_dump(),
            "health_checks.bind_address": "127.0.0.1", "health_checks.bind_port": str(free_port()),
            "telemetry.prometheus": {"host": "127.0.0.1", "port": free_port()},
        }
        if running:
            values["data_store"] = {"name": "sql", "data": {
                "database_type": "sqlite3", "connection_string": str(paths[sc.SERVER_DATA] / "datastore.sqlite3")}}
        server = spire.remap(rendered, paths, values, root)
        agent = spire.remap(build_side_agent_conf(k8s, side), paths, {
            "health_checks.bind_address": "127.0.0.1", "health_checks.bind_port": str(free_port()),
            "telemetry.prometheus": {"host": "127.0.0.1", "port": free_port()},
        }, root)
        (home / "server.conf").write_text(server.render())
        (home / "agent.conf").write_text(agent.render())
        out[role] = LocalSide(role, side.trust_domain, home, home / "server.conf", home / "agent.conf",
                              Path(server.server.socket_path), root_cert, endpoints[role])
    return out


@dataclass(frozen=True)
class NestedUpstream:
    """A running upstream server of the downstream's trust domain: its agent API and the socket
    of an agent of it that serves the downstream server its SVID."""

    trust_domain: str
    server_port: int
    agent_socket: str


def _paths(home: Path) -> dict[str, Path]:
    """Each container directory the rendered configs name -> its place under `home`."""
    paths = {
        sc.SERVER_SECRETS: home / "secrets", sc.SERVER_DATA: home / "server-data",
        sc.SERVER_SOCKET_DIR: home / "admin", sc.AGENT_BUNDLE_DIR: home / "bundle",
        sc.AGENT_DATA: home / "agent-data", sc.AGENT_SOCKET_DIR: home / "sockets",
        sc.AGENT_TOKEN_DIR: home / "tokens", sc.POD_ACCOUNT_DIR: home / "account",
        sc.SERVER_UPSTREAM_SOCKET_DIR: home / "upstream-agent",
    }
    for p in paths.values():
        p.mkdir(parents=True)
    (paths[sc.POD_ACCOUNT_DIR] / "token").write_text("not-a-token-validate-does-not-send-it\n")
    return paths


def _loopback(running: bool, data: Path) -> dict[str, Any]:
    values: dict[str, Any] = {
        "health_checks.bind_address": "127.0.0.1", "health_checks.bind_port": str(free_port()),
        "telemetry.prometheus": {"host": "127.0.0.1", "port": free_port()},
    }
    if running:
        values["data_store"] = {"name": "sql", "data": {
            "database_type": "sqlite3", "connection_string": str(data / "datastore.sqlite3")}}
    return values


def nested_layout(root: Path, *, upstream: NestedUpstream | None = None) -> dict[str, Path]:
    """The configs of the nested stack under `root`, by name: `upstream-server`, `downstream-server`,
    `upstream-agent` (hq's agents), `downstream-agent` (branch's own) and `upstream-agent-downstream`
    (the upstream's agents in branch). With `upstream`, the downstream server is set up to run against
    it (SQLite, its address and trust domain, its agent's socket linked where the rendered
    `workload_api_socket` points); the upstream server's kubeconfig of the
    downstream cluster is not written: the Secret behind it is optional."""
    cfg = stack_config.parse_stack_values(*raw_stack_config(NESTED_STACK))
    k8s, ent = sections(cfg)
    sides = enterprise_sides(cfg.spire.trust_domain, ent)
    root_key, root_cert = spire.self_signed_ca(f"{cfg.spire.trust_domain} root CA", 48)
    out: dict[str, Path] = {}
    for role, side in sides.items():
        home = root / role
        paths = _paths(home)
        (paths[sc.AGENT_BUNDLE_DIR] / sc.AGENT_BUNDLE).write_text(spire._pem(root_cert))
        server_values = {"server.bind_address": "127.0.0.1", "server.bind_port": str(free_port()),
                         **_loopback(upstream is not None and role == "downstream", paths[sc.SERVER_DATA])}
        if role == "upstream":
            spire._write_key(paths[sc.SERVER_SECRETS] / sc.UPSTREAM_KEY, root_key)
            (paths[sc.SERVER_SECRETS] / sc.UPSTREAM_CERT).write_text(spire._pem(root_cert))
        elif upstream is not None:
            server_values |= {
                "server.trust_domain": upstream.trust_domain,
                "upstream_authority.data.server_address": "127.0.0.1",
                "upstream_authority.data.server_port": str(upstream.server_port),
            }
            # The rendered socket path, where the CSI volume would put the upstream agent's socket.
            (paths[sc.SERVER_UPSTREAM_SOCKET_DIR] / "agent.sock").symlink_to(upstream.agent_socket)
        confs = {f"{role}-server": spire.remap(build_side_server_conf(cfg.spire, ent, side), paths, server_values,
                                               root),
                 f"{role}-agent": spire.remap(build_side_agent_conf(k8s, side), paths, _loopback(False, home), root)}
        if role == "downstream":
            confs["upstream-agent-downstream"] = spire.remap(build_upstream_agent_conf(k8s, ent.nested_cluster, side),
                                                             paths, _loopback(False, home), root)
        for name, conf in confs.items():
            (home / f"{name}.conf").write_text(conf.render())
            out[name] = home / f"{name}.conf"
    return out


def peer_of(role: Role) -> Role:
    return "downstream" if role == "upstream" else "upstream"


def wait_for_peer_bundles(logs: Mapping[Role, tuple[str, Path]], within: float) -> set[Role]:
    """Wait until each server's log (role -> (its trust domain, its log)) says "Bundle refreshed"
    for its peer's trust domain, which the server logs only for a bundle fetched from the peer's
    endpoint; the roles still waiting after `within` seconds."""
    deadline = time.monotonic() + within
    pending = set(logs)
    while pending and time.monotonic() < deadline:
        for role in list(pending):
            other = logs[peer_of(role)][0]
            lines = [json.loads(line) for line in logs[role][1].read_text().splitlines() if line.startswith("{")]
            if any(entry.get("msg") == "Bundle refreshed" and other in json.dumps(entry) for entry in lines):
                pending.discard(role)
        if pending:
            time.sleep(1)
    return pending
