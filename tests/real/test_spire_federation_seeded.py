"""The enterprise topology's federation as the program deploys it, for real and with no bundle set by
hand: two real SPIRE servers with the stack's own server configs (`enterprise_support.layout`:
bundle endpoint, no `federates_with`), two real spire-controller-manager 0.7.0 binaries with the
component's config (`manager_config(..., federation=True)`), one beside each server, and the
program's two `ClusterFederatedTrustDomain`s (as `Pulumi.k8s-enterprise.yaml` registers them under
the mock engine) in the real API server.

What changes is only where things are, as in enterprise_support: each CR's `bundleEndpointURL`
points at the peer's local bundle endpoint; its `trustDomainBundle` is the program's seed
(`federation.seed_bundle`) of this test's root, the one both local servers chain to, since the
mock engine's root is not theirs; and one API server stands in for the two clusters, so each
side's manager and CR carry a class of their own side (`identity-platform-hq` /
`-branch`), as the two clusters' managers would each see only their own CR.

Then each manager creates its server's relationship with the seed through the TrustDomain API, and
each server fetches the peer's bundle from the peer's https_spiffe endpoint ("Bundle refreshed",
logged only for a bundle got from the endpoint), which it could not authenticate without the seed.
The bundle it keeps is the peer's own (with the peer's JWT key, which the seed did not have).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kubernetes.controller_manager import NAME, manager_config
from components.kubernetes.enterprise_config import Role
from components.kubernetes.federation import seed_bundle
from servers import controller_manager, spire
from servers.process import Run, free_port, stop_procs
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import KubeApi, as_sent
from tests.real.enterprise_support import STACK, LocalSide, layout, peer_of, wait_for_peer_bundles
from tests.real.test_kubernetes_iam import iam_api  # noqa: F401 - the CRDs, established

READY_SECONDS = 90
FEDERATED_SECONDS = 120  # the manager's first pass, then SPIRE reloads its relationships at once
CLUSTERS: dict[Role, str] = {"upstream": "hq", "downstream": "branch"}


@dataclass(frozen=True)
class Side:
    local: LocalSide
    log: Path
    manager_log: Path


def _cli(bins: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "spire-server"), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def _program_relationships() -> dict[str, dict[str, Any]]:
    """trust domain -> the ClusterFederatedTrustDomain the program registers (update: all known)."""
    run = program_run(STACK, False)
    objs = [as_sent(unwrap(r.inputs)) for r in run.resources if r.type.endswith(":ClusterFederatedTrustDomain")]
    return {o["spec"]["trustDomain"]: o for o in objs}


@pytest.fixture(scope="module")
def seeded(servers_run: Run, real_servers: Any, iam_api: KubeApi) -> Iterator[tuple[Path, dict[Role, Side]]]:
    bins = spire.bin_dir()
    manager_bin = controller_manager.bin_dir() / NAME
    kube = real_servers("kubernetes")
    root = Path(tempfile.mkdtemp(prefix="identity-platform-fed-seeded-"))
    sides = layout(root, running=True)
    program = _program_relationships()
    iam_api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "spire-server"}})
    started: dict[Role, Side] = {}
    procs = []
    for role, side in sides.items():
        proc = servers_run.spawn("spire", f"seeded-{role}", [str(bins / "spire-server"), "run", "-config",
                                                             str(side.server_conf)], cwd=side.home)
        servers_run.wait_ready(
            proc, lambda s=side.socket: _cli(bins, "healthcheck", "-socketPath", str(s)).returncode == 0,
            timeout=READY_SECONDS, what=f"{side.trust_domain} healthcheck")
        procs.append(proc)
        peer = sides[peer_of(role)]
        cluster = CLUSTERS[role]
        cr = program[peer.trust_domain]  # this side's relationship: named after, and with, the peer
        cr["spec"] |= {"bundleEndpointURL": f"https://127.0.0.1:{peer.bundle_port}",
                       "trustDomainBundle": seed_bundle(spire._pem(side.root)),
                       "className": f"identity-platform-{cluster}"}
        iam_api.apply(cr)
        conf = manager_config(cluster, side.trust_domain, "spire-server", federation=True) | {
            "spireServerSocketPath": str(side.socket),
            "health": {"healthProbeBindAddress": f"127.0.0.1:{free_port()}"},
            "className": f"identity-platform-{cluster}",
        }
        (side.home / "manager.yaml").write_text(yaml.safe_dump(conf))
        env = {**os.environ, "KUBECONFIG": kube["kubeconfig"], "ENABLE_WEBHOOKS": "false"}
        manager = servers_run.spawn("spire", f"controller-manager-{cluster}",
                                    [str(manager_bin), f"--config={side.home / 'manager.yaml'}"], cwd=side.home,
                                    env=env)
        procs.append(manager)
        started[role] = Side(side, Path(proc.log), Path(manager.log))
    try:
        yield bins, started
    finally:
        stop_procs(procs)  # these processes only: the run also holds the session's servers
        with iam_api.client() as c:
            for td in program:
                c.delete(f"/apis/spire.spiffe.io/v1alpha1/clusterfederatedtrustdomains/{td}")
        shutil.rmtree(root, ignore_errors=True)


def test_the_servers_start_with_no_relationship_and_no_peer_bundle(seeded: tuple[Path, dict[Role, Side]]) -> None:
    """The rendered server.conf declares none: what federates them below is the managers' doing."""
    _, sides = seeded
    for side in sides.values():
        assert "federates_with" not in json.loads(side.local.server_conf.read_text())["server"]["federation"]


def test_each_server_fetches_the_peers_bundle_with_no_bundle_set_by_hand(
        seeded: tuple[Path, dict[Role, Side]]) -> None:
    bins, sides = seeded
    pending = wait_for_peer_bundles({r: (s.local.trust_domain, s.log) for r, s in sides.items()}, FEDERATED_SECONDS)
    managers = {r: sides[r].manager_log.read_text()[-2000:] for r in pending}
    assert not pending, f"no bundle fetched from the peer's endpoint by {sorted(pending)}; managers: {managers}"
    for role, side in sides.items():
        peer = sides[peer_of(role)].local
        # The relationship is the manager's (a dynamic one, which the federation CLI lists) ...
        listed = _cli(bins, "federation", "show", "-trustDomain", peer.trust_domain, "-socketPath",
                      str(side.local.socket))
        assert listed.returncode == 0, listed.stderr
        assert f"https://127.0.0.1:{peer.bundle_port}" in listed.stdout and "https_spiffe" in listed.stdout
        # ... and the bundle kept is the peer's own, JWT authority included, not the seed.
        theirs = json.loads(_cli(bins, "bundle", "show", "-format", "spiffe", "-socketPath",
                                 str(peer.socket)).stdout)
        kept = _cli(bins, "bundle", "list", "-id", f"spiffe://{peer.trust_domain}", "-format", "spiffe",
                    "-socketPath", str(side.local.socket))
        assert kept.returncode == 0, kept.stderr
        kept_keys = json.loads(kept.stdout)["keys"]
        assert any(k["use"] == "jwt-svid" for k in kept_keys)
        assert {k.get("kid") for k in kept_keys if k["use"] == "jwt-svid"} == {
            k.get("kid") for k in theirs["keys"] if k["use"] == "jwt-svid"}
    for side in sides.values():  # once each: later passes find the relationship equal and leave it
        assert side.manager_log.read_text().count("Created federation relationship") == 1
