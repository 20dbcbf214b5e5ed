"""Federation between two real SPIRE servers of two trust domains, from the renderer's federation
model (`components.spire_conf.Federation`): each serves its bundle on an `https_spiffe` bundle
endpoint, federates with the other, and after the one-time seeding https_spiffe requires, each
fetches the other's bundle from the other's endpoint (the server logs "Bundle refreshed" only
for a bundle it got from the endpoint). This is the federation half of the enterprise topology
(upstream and downstream trust domains), proven on loopback before the topology itself exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.spire_conf import (
    BundleEndpoint,
    FederatesWith,
    Federation,
    HealthChecks,
    Plugin,
    Prometheus,
    ServerConf,
    ServerSection,
    Telemetry,
)
from servers import spire
from servers.process import Run, free_port

DOMAINS = ("upstream.zt.internal", "downstream.zt.internal")
READY_SECONDS = 90
# Before its bundle is seeded a server retries the peer after SPIRE's minimum refresh hint (1 min).
REFRESH_SECONDS = 150


@dataclass(frozen=True)
class Server:
    trust_domain: str
    socket: Path
    log: Path


def _cli(bins: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "spire-server"), *args], capture_output=True, text=True, input=stdin,
                          timeout=60, check=False)


def conf(td: str, home: Path, port: int, endpoints: dict[str, int]) -> ServerConf:
    peers = {
        other: FederatesWith(bundle_endpoint_url=f"https://127.0.0.1:{endpoints[other]}",
                             endpoint_spiffe_id=f"spiffe://{other}/spire/server")
        for other in DOMAINS if other != td
    }
    return ServerConf(
        server=ServerSection(
            trust_domain=td, bind_address="127.0.0.1", bind_port=str(port), socket_path=str(home / "api.sock"),
            data_dir=str(home / "data"),
            federation=Federation(
                bundle_endpoint=BundleEndpoint(address="127.0.0.1", port=endpoints[td], refresh_hint="10s"),
                federates_with=peers,
            ),
        ),
        data_store=Plugin(name="sql", data={"database_type": "sqlite3",
                                            "connection_string": str(home / "data" / "datastore.sqlite3")}),
        key_manager=Plugin(name="disk", data={"keys_path": str(home / "data" / "keys.json")}),
        node_attestors=[Plugin(name="join_token")],
        health_checks=HealthChecks(bind_address="127.0.0.1", bind_port=str(free_port())),
        telemetry=Telemetry(prometheus=Prometheus(host="127.0.0.1", port=free_port())),
    )


@pytest.fixture(scope="module")
def federated(servers_run: Run) -> Iterator[tuple[Path, dict[str, Server]]]:
    bins = spire.bin_dir()
    root = Path(tempfile.mkdtemp(prefix="identity-platform-fed-"))
    endpoints = {td: free_port() for td in DOMAINS}
    started: dict[str, Server] = {}
    for td in DOMAINS:
        home = root / td.split(".")[0]
        (home / "data").mkdir(parents=True)
        (home / "server.conf").write_text(conf(td, home, free_port(), endpoints).render())
        proc = servers_run.spawn("spire", f"federation-{td}", [str(bins / "spire-server"), "run", "-config",
                                                               str(home / "server.conf")], cwd=home)
        socket = home / "api.sock"
        servers_run.wait_ready(proc, lambda s=socket: _cli(bins, "healthcheck", "-socketPath", str(s)).returncode == 0,
                               timeout=READY_SECONDS, what=f"{td} healthcheck")
        started[td] = Server(td, socket, Path(proc.log))
    # https_spiffe: each side must know the other's bundle once, to authenticate its endpoint.
    for td, server in started.items():
        shown = _cli(bins, "bundle", "show", "-format", "spiffe", "-socketPath", str(server.socket))
        assert shown.returncode == 0, shown.stderr
        for other in DOMAINS:
            if other != td:
                done = _cli(bins, "bundle", "set", "-format", "spiffe", "-id", f"spiffe://{td}",
                            "-socketPath", str(started[other].socket), stdin=shown.stdout)
                assert done.returncode == 0, done.stderr
    yield bins, started
    shutil.rmtree(root, ignore_errors=True)


def test_the_rendered_federation_section_is_what_spire_reads(tmp_path: Path) -> None:
    bins = spire.bin_dir()
    (tmp_path / "data").mkdir()
    rendered = conf(DOMAINS[0], tmp_path, 8081, {DOMAINS[0]: 8443, DOMAINS[1]: 9443})
    doc = json.loads(rendered.render())
    assert doc["server"]["federation"] == {
        "bundle_endpoint": {"address": "127.0.0.1", "port": 8443, "refresh_hint": "10s",
                            "profile": {"https_spiffe": {}}},
        "federates_with": {DOMAINS[1]: {
            "bundle_endpoint_url": "https://127.0.0.1:9443",
            "bundle_endpoint_profile": {"https_spiffe": {"endpoint_spiffe_id": f"spiffe://{DOMAINS[1]}/spire/server"}},
        }},
    }
    path = tmp_path / "server.conf"
    path.write_text(rendered.render())
    done = _cli(bins, "validate", "-config", str(path))
    assert done.returncode == 0 and "valid" in done.stdout, done.stdout + done.stderr


def test_each_domain_fetches_the_others_bundle_from_its_endpoint(federated: tuple[Path, dict[str, Server]]) -> None:
    bins, servers = federated
    deadline = time.monotonic() + REFRESH_SECONDS
    pending = set(DOMAINS)
    while pending:
        for td in list(pending):
            lines = [json.loads(line) for line in servers[td].log.read_text().splitlines() if line.startswith("{")]
            other = next(d for d in DOMAINS if d != td)
            if any(entry.get("msg") == "Bundle refreshed" and other in json.dumps(entry) for entry in lines):
                pending.discard(td)
        assert time.monotonic() < deadline, f"no bundle fetched from the peer's endpoint by {sorted(pending)}"
        time.sleep(1)
    for td, server in servers.items():
        other = next(d for d in DOMAINS if d != td)
        theirs = _cli(bins, "bundle", "show", "-socketPath", str(servers[other].socket)).stdout.strip()
        kept = _cli(bins, "bundle", "list", "-id", f"spiffe://{other}", "-socketPath", str(server.socket))
        assert kept.returncode == 0 and theirs.splitlines()[1] in kept.stdout, kept.stdout + kept.stderr
