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
"""

from __future__ import annotations

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
    enterprise_sides,
)
from servers import spire
from servers.process import free_port
from tests.harness.mock_engine import stack_config as raw_stack_config

STACK = "k8s-enterprise"


@dataclass(frozen=True)
class LocalSide:
    role: Role
    trust_domain: str
    home: Path
    server_conf: Path
    agent_conf: Path
    socket: Path
    root: x509.Certificate


def config() -> stack_config.StackConfig:
    return stack_config.parse_stack_values(*raw_stack_config(STACK))


def layout(root: Path, *, running: bool) -> dict[Role, LocalSide]:
    """Both sides' server.conf and agent.conf under `root`, with the files they name."""
    cfg = config()
    sides = enterprise_sides(cfg)
    endpoints = {role: free_port() for role in sides}
    root_key, root_cert = spire.self_signed_ca(f"{cfg.spire.trust_domain} root CA", 48)
    out = {}
    for role, side in sides.items():
        home = root / role
        paths = {
            sc.SERVER_SECRETS: home / "secrets", sc.SERVER_DATA: home / "server-data",
            sc.SERVER_SOCKET_DIR: home / "admin", sc.AGENT_BUNDLE_DIR: home / "bundle",
            sc.AGENT_DATA: home / "agent-data", sc.AGENT_SOCKET_DIR: home / "sockets",
            sc.AGENT_TOKEN_DIR: home / "tokens", sc.POD_ACCOUNT_DIR: home / "account",
        }
        for p in paths.values():
            p.mkdir(parents=True)
        (paths[sc.POD_ACCOUNT_DIR] / "token").write_text("not-a-token-validate-does-not-send-it\n")
        secrets = paths[sc.SERVER_SECRETS]
        if role == "upstream":
            ca_key, ca_cert = root_key, root_cert
        else:
            ca_key, ca_cert = spire.intermediate_ca(f"{side.trust_domain} intermediate CA", root_key, root_cert, 48)
            (secrets / sc.UPSTREAM_BUNDLE).write_text(spire._pem(root_cert))
        spire._write_key(secrets / sc.UPSTREAM_KEY, ca_key)
        (secrets / sc.UPSTREAM_CERT).write_text(spire._pem(ca_cert))
        (paths[sc.AGENT_BUNDLE_DIR] / sc.AGENT_BUNDLE).write_text(spire._pem(root_cert))

        rendered = build_side_server_conf(cfg, side)
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
        agent = spire.remap(build_side_agent_conf(cfg, side), paths, {
            "health_checks.bind_address": "127.0.0.1", "health_checks.bind_port": str(free_port()),
            "telemetry.prometheus": {"host": "127.0.0.1", "port": free_port()},
        }, root)
        (home / "server.conf").write_text(server.render())
        (home / "agent.conf").write_text(agent.render())
        out[role] = LocalSide(role, side.trust_domain, home, home / "server.conf", home / "agent.conf",
                              Path(server.server.socket_path), root_cert)
    return out
