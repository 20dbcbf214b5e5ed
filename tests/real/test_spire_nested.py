"""Nested SPIRE for real: a downstream server with `UpstreamAuthority "spire"`
(`spire_config.spire_upstream`, the enterprise topology's downstream) obtains its intermediate CA
from the real upstream server (`real_servers("spire")`, the pinned SPIRE), authenticated by the SVID
the upstream's agent gives it for a `downstream` entry registered through the provider's own client.
Its SVIDs then chain through that intermediate to the upstream's root.

SPIRE nests within one trust domain ("an upstream SPIRE server in the same trust domain",
doc/plugin_server_upstreamauthority_spire.md); two trust domains are joined by federation instead
(test_spire_federation.py).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from components.kubernetes.spire_config import spire_upstream
from components.spire_conf import HealthChecks, Plugin, Prometheus, ServerConf, ServerSection, Telemetry
from dynamic_providers.spire.client import GrpcEntryClient
from dynamic_providers.spire.models import EntryFields, parse_connection
from servers.process import Run, free_port
from tests.real.conftest import RealServers

READY_SECONDS = 120


def _cli(bins: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "spire-server"), *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture(scope="module")
def downstream(real_servers: RealServers, servers_run: Run) -> Iterator[tuple[dict[str, Any], Path]]:
    upstream = real_servers("spire")
    bins = Path(upstream["bin_dir"])
    td = upstream["trust_domain"]
    client = GrpcEntryClient(parse_connection({
        "transport": "grpc", "socket_path": upstream["admin_socket"], "trust_domain": td,
        "project": "identity-platform", "stack": "nested-test",
    }))
    # The downstream server runs as this test's user: the upstream's agent attests it by uid.
    entry = client.create(EntryFields(spiffe_id=f"spiffe://{td}/nested/downstream-server",
                                      parent_id=upstream["agent_spiffe_id"],
                                      selectors=(f"unix:uid:{os.getuid()}",), downstream=True))
    home = Path(tempfile.mkdtemp(prefix="identity-platform-nested-"))
    (home / "data").mkdir()
    conf = ServerConf(
        server=ServerSection(trust_domain=td, bind_address="127.0.0.1", bind_port=str(free_port()),
                             socket_path=str(home / "api.sock"), data_dir=str(home / "data")),
        data_store=Plugin(name="sql", data={"database_type": "sqlite3",
                                            "connection_string": str(home / "data" / "datastore.sqlite3")}),
        key_manager=Plugin(name="disk", data={"keys_path": str(home / "data" / "keys.json")}),
        node_attestors=[Plugin(name="join_token")],
        upstream_authority=spire_upstream("127.0.0.1", upstream["server_port"], upstream["agent_socket"]),
        health_checks=HealthChecks(bind_address="127.0.0.1", bind_port=str(free_port())),
        telemetry=Telemetry(prometheus=Prometheus(host="127.0.0.1", port=free_port())),
    )
    (home / "server.conf").write_text(conf.render())
    proc = servers_run.spawn("spire", "nested-downstream", [str(bins / "spire-server"), "run", "-config",
                                                            str(home / "server.conf")], cwd=home)
    socket = home / "api.sock"
    try:
        servers_run.wait_ready(proc, lambda: _cli(bins, "healthcheck", "-socketPath", str(socket)).returncode == 0,
                               timeout=READY_SECONDS, what="the downstream server got its CA from the upstream")
        yield upstream, socket
    finally:
        client.delete(entry.id)
        shutil.rmtree(home, ignore_errors=True)


def test_the_downstream_svids_chain_to_the_upstream_root(downstream: tuple[dict[str, Any], Path],
                                                         tmp_path: Path) -> None:
    upstream, socket = downstream
    bins = Path(upstream["bin_dir"])
    td = upstream["trust_domain"]
    done = _cli(bins, "x509", "mint", "-spiffeID", f"spiffe://{td}/nested/probe", "-write", str(tmp_path),
                "-socketPath", str(socket))
    assert done.returncode == 0, done.stderr
    chain = x509.load_pem_x509_certificates((tmp_path / "svid.pem").read_bytes())
    assert len(chain) >= 3, "leaf, the downstream's CA, the upstream's CA"
    root = x509.load_pem_x509_certificate(Path(upstream["x509pop"]["root_cert"]).read_bytes())
    # leaf <- the downstream's CA (minted by the upstream) <- the upstream's CA <- the root.
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    chain[-1].verify_directly_issued_by(root)
    shown = _cli(bins, "bundle", "show", "-socketPath", str(socket))
    assert root.public_bytes(serialization.Encoding.PEM).decode().strip() in shown.stdout
