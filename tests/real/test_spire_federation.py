"""Federation for real with the enterprise topology's own server configs, as rendered with
`controllerManager: false` (the fallback: relationships static in server.conf): the upstream
(root) and downstream servers of `Pulumi.k8s-enterprise.yaml` (`enterprise_support.layout`: the
rendered configs moved onto loopback) run as two real SPIRE servers of the two trust domains. Each
serves its bundle on its `https_spiffe` bundle endpoint and federates with the other; after the
one-time seeding by hand that https_spiffe requires without the controller manager
(docs/architecture.md, enterprise topology), each fetches the other's bundle from the other's
endpoint (the server logs "Bundle refreshed" only for a bundle it got from the endpoint). And the
downstream's CA is the intermediate the root signs: its SVIDs chain leaf <- downstream CA <-
intermediate <- root, the root OpenZiti verifies. The default path, where spire-controller-manager
declares the relationships with the seed bundle, is test_spire_federation_seeded.py.

SPIRE nests servers only within one trust domain, so the topology joins its two by federation; the
nested server (`UpstreamAuthority "spire"`) is proven in test_spire_nested.py.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from components.kubernetes.enterprise_config import Role
from servers import spire
from servers.process import Run
from tests.real.enterprise_support import LocalSide, layout, wait_for_peer_bundles

READY_SECONDS = 90
# Before its peer's bundle is seeded a server retries after SPIRE's minimum refresh hint (1 min).
REFRESH_SECONDS = 150


@dataclass(frozen=True)
class Server:
    side: LocalSide
    log: Path


def _cli(bins: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "spire-server"), *args], capture_output=True, text=True, input=stdin,
                          timeout=60, check=False)


@pytest.fixture(scope="module")
def federated(servers_run: Run) -> Iterator[tuple[Path, dict[Role, Server]]]:
    bins = spire.bin_dir()
    root = Path(tempfile.mkdtemp(prefix="identity-platform-fed-"))
    started: dict[Role, Server] = {}
    for role, side in layout(root, running=True, controller_manager=False).items():
        proc = servers_run.spawn("spire", f"enterprise-{role}", [str(bins / "spire-server"), "run", "-config",
                                                                 str(side.server_conf)], cwd=side.home)
        servers_run.wait_ready(
            proc, lambda s=side.socket: _cli(bins, "healthcheck", "-socketPath", str(s)).returncode == 0,
            timeout=READY_SECONDS, what=f"{side.trust_domain} healthcheck")
        started[role] = Server(side, Path(proc.log))
    # https_spiffe: each side must know the other's bundle once, to authenticate its endpoint.
    for role, server in started.items():
        shown = _cli(bins, "bundle", "show", "-format", "spiffe", "-socketPath", str(server.side.socket))
        assert shown.returncode == 0, shown.stderr
        for other, peer in started.items():
            if other != role:
                done = _cli(bins, "bundle", "set", "-format", "spiffe", "-id", f"spiffe://{server.side.trust_domain}",
                            "-socketPath", str(peer.side.socket), stdin=shown.stdout)
                assert done.returncode == 0, done.stderr
    yield bins, started
    shutil.rmtree(root, ignore_errors=True)


def test_the_rendered_configs_name_each_other(federated: tuple[Path, dict[Role, Server]]) -> None:
    _, servers = federated
    up, down = (json.loads(servers[r].side.server_conf.read_text())["server"] for r in ("upstream", "downstream"))
    assert (up["trust_domain"], down["trust_domain"]) == ("hq.acme-identity.net", "branch.acme-identity.net")
    assert list(up["federation"]["federates_with"]) == [down["trust_domain"]]
    assert list(down["federation"]["federates_with"]) == [up["trust_domain"]]


def test_each_domain_fetches_the_others_bundle_from_its_endpoint(
        federated: tuple[Path, dict[Role, Server]]) -> None:
    bins, servers = federated
    pending = wait_for_peer_bundles({r: (s.side.trust_domain, s.log) for r, s in servers.items()}, REFRESH_SECONDS)
    assert not pending, f"no bundle fetched from the peer's endpoint by {sorted(pending)}"
    for role, server in servers.items():
        peer = servers["downstream" if role == "upstream" else "upstream"]
        theirs = _cli(bins, "bundle", "show", "-socketPath", str(peer.side.socket)).stdout.strip()
        kept = _cli(bins, "bundle", "list", "-id", f"spiffe://{peer.side.trust_domain}",
                    "-socketPath", str(server.side.socket))
        assert kept.returncode == 0 and theirs.splitlines()[1] in kept.stdout, kept.stdout + kept.stderr


def test_the_downstream_svids_chain_through_the_intermediate_to_the_root(
        federated: tuple[Path, dict[Role, Server]], tmp_path: Path) -> None:
    bins, servers = federated
    down = servers["downstream"].side
    done = _cli(bins, "x509", "mint", "-spiffeID", f"spiffe://{down.trust_domain}/ns/downstream-workloads/sa/probe",
                "-write", str(tmp_path), "-socketPath", str(down.socket))
    assert done.returncode == 0, done.stderr
    chain = x509.load_pem_x509_certificates((tmp_path / "svid.pem").read_bytes())
    intermediate = x509.load_pem_x509_certificate((down.home / "secrets" / "upstream-ca.pem").read_bytes())
    assert len(chain) == 3 and chain[-1] == intermediate, "leaf, the downstream's CA, the intermediate"
    for child, parent in itertools.pairwise(chain):
        child.verify_directly_issued_by(parent)
    intermediate.verify_directly_issued_by(down.root)
    up = servers["upstream"].side
    assert down.root.subject == x509.load_pem_x509_certificate(
        (up.home / "secrets" / "upstream-ca.pem").read_bytes()).subject  # one root for both trust domains
