"""The enterprise topology's CRD-based registration path for real: the pinned spire-controller-manager
(`servers/controller_manager.py`, built from its Go module) runs with the component's own config
(`controller_manager.manager_config`: class name, entry ID prefix, reconcile switches; only the
trust domain, the admin socket and the health listener are the local servers'), against the real
kube-apiserver (its CRDs installed) and the real SPIRE server. The program's ClusterSPIFFEID, as
the k8s-enterprise stack registers it, selects a pod labelled `identity-platform/registration: crd`
in downstream-workloads (a Pod object bound to a Node object: no kubelet is needed to render an
entry); the manager registers exactly that pod, under the node's k8s_psat agent ID, federated with
the upstream trust domain, with its ID prefix, and leaves an entry the provider made (ID
`pulumi.<project>.<stack>.<hash>`) untouched, which is what lets SpireEntry resources and the manager share a
server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kubernetes.controller_manager import NAME, manager_config
from dynamic_providers.spire.client import GrpcEntryClient
from dynamic_providers.spire.models import EntryFields, parse_connection
from servers import controller_manager, spire
from servers.process import Run, free_port, stop_procs
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import KubeApi, as_sent
from tests.harness.real_servers import RealServers
from tests.real.test_kubernetes_iam import iam_api  # noqa: F401 - the CRDs, established

UPSTREAM_TD = "hq.acme-identity.net"  # the stack file's: the ClusterSPIFFEID federates with it
CLUSTER = "branch"
NAMESPACE = "downstream-workloads"
RECONCILE_SECONDS = 90


def _cli(bins: Path, socket: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / "spire-server"), *args, "-socketPath", socket], capture_output=True, text=True,
                          input=stdin, timeout=60, check=False)


def _entries(bins: Path, socket: str) -> list[dict[str, Any]]:
    shown = _cli(bins, socket, "entry", "show", "-output", "json")
    assert shown.returncode == 0, shown.stderr
    return list(json.loads(shown.stdout).get("entries") or [])


@dataclass(frozen=True)
class Managed:
    bins: Path
    socket: str
    trust_domain: str
    pod_uid: str
    node_uid: str
    provider_entry_id: str


def _stack_cluster_spiffe_id() -> dict[str, Any]:
    run = program_run("k8s-enterprise", False)
    (obj,) = [as_sent(unwrap(r.inputs)) for r in run.resources if r.type.endswith(":ClusterSPIFFEID")]
    return dict(obj)


def _pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {"nodeName": "node-1", "serviceAccountName": "probe", "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "app", "image": "ghcr.io/spiffe/spiffe-helper:0.11.0",
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}


@pytest.fixture(scope="module")
def managed(real_servers: RealServers, iam_api: KubeApi, servers_run: Run) -> Iterator[Managed]:
    spire_server = real_servers("spire")
    kube = real_servers("kubernetes")
    bins, socket, td = Path(spire_server["bin_dir"]), spire_server["admin_socket"], spire_server["trust_domain"]
    binary = controller_manager.bin_dir() / NAME

    # The upstream trust domain's bundle, as the one-time seeding puts it there: federatesWith needs it.
    key_dir = Path(tempfile.mkdtemp(prefix="identity-platform-scm-"))
    _, root = spire.self_signed_ca(f"{UPSTREAM_TD} root CA", 2)
    seeded = _cli(bins, socket, "bundle", "set", "-format", "pem", "-id", f"spiffe://{UPSTREAM_TD}",
                  stdin=spire._pem(root))
    assert seeded.returncode == 0, seeded.stderr

    # A provider-made entry (the kind SpireEntry owns), which the manager must leave alone.
    client = GrpcEntryClient(parse_connection({"transport": "grpc", "socket_path": socket, "trust_domain": td,
                                               "project": "identity-platform", "stack": "scm-test"}))
    ours = client.create(EntryFields(spiffe_id=f"spiffe://{td}/ns/{NAMESPACE}/sa/enterprise-api",
                                     parent_id=f"spiffe://{td}/k8s/{CLUSTER}/agents",
                                     selectors=(f"k8s:ns:{NAMESPACE}", "k8s:sa:enterprise-api")))

    for obj in ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "spire-server"}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": NAMESPACE, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}},
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}},
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "probe", "namespace": NAMESPACE}},
                _stack_cluster_spiffe_id()):
        iam_api.apply(obj)
    pod = iam_api.apply(_pod("opted-in", {"identity-platform/registration": "crd"})).body
    iam_api.apply(_pod("not-opted-in", {}))
    node = iam_api.get("/api/v1/nodes/node-1")

    conf = manager_config(CLUSTER, td, "spire-server") | {
        "spireServerSocketPath": socket,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{free_port()}"},
    }
    (key_dir / "config.yaml").write_text(yaml.safe_dump(conf))
    env = {**os.environ, "KUBECONFIG": kube["kubeconfig"], "ENABLE_WEBHOOKS": "false"}
    proc = servers_run.spawn("spire", "controller-manager", [str(binary), f"--config={key_dir / 'config.yaml'}"],
                             cwd=key_dir, env=env)
    try:
        yield Managed(bins, socket, td, pod["metadata"]["uid"], node["metadata"]["uid"], ours.id)
    finally:
        stop_procs([proc])  # this process only: the run also holds the session's servers
        for e in _entries(bins, socket):
            if e["id"].startswith(f"k8s-{CLUSTER}."):
                _cli(bins, socket, "entry", "delete", "-entryID", e["id"])
        client.delete(ours.id)
        _cli(bins, socket, "bundle", "delete", "-id", f"spiffe://{UPSTREAM_TD}")
        with iam_api.client() as c:
            for path in (f"/api/v1/namespaces/{NAMESPACE}/pods/opted-in",
                         f"/api/v1/namespaces/{NAMESPACE}/pods/not-opted-in", "/api/v1/nodes/node-1",
                         f"/apis/spire.spiffe.io/v1alpha1/clusterspiffeids/{NAMESPACE}"):
                c.delete(path)
        shutil.rmtree(key_dir, ignore_errors=True)


def test_the_manager_registers_the_opted_in_pod_and_nothing_else(managed: Managed) -> None:
    deadline = time.monotonic() + RECONCILE_SECONDS
    while True:
        mine = [e for e in _entries(managed.bins, managed.socket) if e["id"].startswith(f"k8s-{CLUSTER}.")]
        if mine:
            break
        assert time.monotonic() < deadline, "the controller manager registered nothing"
        time.sleep(2)
    time.sleep(5)  # a further pass must not add the other pod
    mine = [e for e in _entries(managed.bins, managed.socket) if e["id"].startswith(f"k8s-{CLUSTER}.")]
    assert len(mine) == 1, mine
    (entry,) = mine
    td = managed.trust_domain
    assert entry["spiffe_id"] == {"trust_domain": td, "path": f"/ns/{NAMESPACE}/sa/probe"}
    assert entry["parent_id"] == {"trust_domain": td, "path": f"/spire/agent/k8s_psat/{CLUSTER}/{managed.node_uid}"}
    assert {f"{s['type']}:{s['value']}" for s in entry["selectors"]} == {f"k8s:pod-uid:{managed.pod_uid}"}
    assert entry["federates_with"] == [UPSTREAM_TD]


def test_the_providers_entry_is_left_alone(managed: Managed) -> None:
    test_the_manager_registers_the_opted_in_pod_and_nothing_else(managed)
    time.sleep(12)  # past the manager's 10 s garbage-collection interval
    ids = {e["id"] for e in _entries(managed.bins, managed.socket)}
    assert managed.provider_entry_id in ids and managed.provider_entry_id.startswith("pulumi.")
