"""Nested SPIRE for real: a downstream server with `UpstreamAuthority "spire"`
(`spire_config.spire_upstream`, the enterprise topology's downstream) obtains its intermediate CA
from the real upstream server (`real_servers("spire")`, the pinned SPIRE), authenticated by the SVID
the upstream's agent gives it for a `downstream` entry registered through the provider's own client.
Its SVIDs then chain through that intermediate to the upstream's root.

Two downstream servers are run: one from a config written here (the plugin alone), and the
downstream server.conf `Pulumi.k8s-enterprise-nested.yaml` renders (`nesting: spire`,
tests/real/enterprise_support.py `nested_layout`), moved onto loopback: the upstream's address,
port and trust domain are the real upstream's instead of hq's NodePort, and the upstream agent's
socket is linked where the rendered `workload_api_socket` points (the CSI volume in the pod).
Its downstream entry is the one the program registers (`enterprise.downstream_entry`: the SPIFFE
ID, `downstream: true`) with this test's uid as selector, since the k8s attestor needs a kubelet.

SPIRE nests within one trust domain ("an upstream SPIRE server in the same trust domain",
doc/plugin_server_upstreamauthority_spire.md); two trust domains are joined by federation instead
(test_spire_federation.py).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import stack_config
from components.kubernetes.enterprise import downstream_entry
from components.kubernetes.enterprise_config import enterprise_sides
from components.kubernetes.spire_config import spire_upstream
from dynamic_providers.spire.client import GrpcEntryClient
from dynamic_providers.spire.models import EntryFields, parse_connection
from servers.process import Run
from tests.harness.mock_engine import stack_config as raw_stack_config
from tests.real.conftest import RealServers
from tests.real.enterprise_support import NESTED_STACK, NestedUpstream, nested_layout, sections
from tests.real.spire_targets import server_conf

READY_SECONDS = 120
SERVED_SECONDS = 60


def _cli(bins: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "spire-server"), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def _wait_served(bins: Path, agent_socket: str, spiffe_id: str) -> None:
    deadline = time.monotonic() + SERVED_SECONDS
    while True:
        done = subprocess.run([str(bins / "spire-agent"), "api", "fetch", "x509", "-output", "json",
                               "-socketPath", agent_socket], capture_output=True, text=True, timeout=60, check=False)
        served = ({s.get("spiffe_id") for s in json.loads(done.stdout).get("svids", [])}
                  if done.returncode == 0 else set())
        if served == {spiffe_id}:
            return
        assert time.monotonic() < deadline, f"the agent serves {sorted(served)}, not {spiffe_id} alone"
        time.sleep(1)


def _by_hand(upstream: dict[str, Any], home: Path) -> tuple[str, Path]:
    """A server.conf with the plugin alone: its SPIFFE ID on the upstream, its config and admin socket."""
    td = upstream["trust_domain"]
    conf = server_conf(home, td, spire_upstream("127.0.0.1", upstream["server_port"], upstream["agent_socket"]))
    (home / "server.conf").write_text(conf.render())
    return f"spiffe://{td}/nested/downstream-server", home / "server.conf"


def _rendered(upstream: dict[str, Any], home: Path) -> tuple[str, Path]:
    """The nested stack's downstream server.conf on loopback, and the SPIFFE ID the program
    registers for it on the upstream (under the upstream's agent here, not its k8s_psat alias)."""
    cfg = stack_config.parse_stack_values(*raw_stack_config(NESTED_STACK))
    conf = nested_layout(home, upstream=NestedUpstream(upstream["trust_domain"], upstream["server_port"],
                                                       upstream["agent_socket"]))["downstream-server"]
    rendered = json.loads(conf.read_text())
    assert list(rendered["plugins"]["UpstreamAuthority"][0]) == ["spire"]  # as shipped, not rewritten here
    down = enterprise_sides(cfg.spire.trust_domain, sections(cfg)[1])["downstream"]
    spiffe_id, _ = downstream_entry(upstream["trust_domain"], down)
    return spiffe_id, conf


@pytest.fixture(scope="module", params=["by-hand", "rendered"])
def downstream(request: pytest.FixtureRequest, real_servers: RealServers,
               servers_run: Run) -> Iterator[tuple[dict[str, Any], Path]]:
    upstream = real_servers("spire")
    bins = Path(upstream["bin_dir"])
    td = upstream["trust_domain"]
    client = GrpcEntryClient(parse_connection({
        "transport": "grpc", "socket_path": upstream["admin_socket"], "trust_domain": td,
        "project": "identity-platform", "stack": "nested-test",
    }))
    home = Path(tempfile.mkdtemp(prefix="identity-platform-nested-"))
    spiffe_id, conf = (_by_hand if request.param == "by-hand" else _rendered)(upstream, home)
    # The downstream server runs as this test's user: the upstream's agent attests it by uid.
    entry = client.create(EntryFields(spiffe_id=spiffe_id, parent_id=upstream["agent_spiffe_id"],
                                      selectors=(f"unix:uid:{os.getuid()}",), downstream=True))
    # The plugin takes the first SVID the agent serves, and an SVID of an entry gone (the previous
    # param's) is refused for good: start once the agent serves this entry's alone.
    _wait_served(bins, upstream["agent_socket"], spiffe_id)
    proc = servers_run.spawn("spire", f"nested-downstream-{request.param}",
                             [str(bins / "spire-server"), "run", "-config", str(conf)], cwd=conf.parent)
    socket = Path(json.loads(conf.read_text())["server"]["socket_path"])
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
