"""k8s_psat node attestation for real, without a kubelet: the pinned SPIRE server and agent, run
from the configs the k8s-dev stack ships, against the real Kubernetes API server on loopback.

The cluster side is what a kubelet would leave behind: a Node, the agent's Pod bound to it (never
started: no kubelet runs), and the agent's projected token, requested with the `spire-server`
audience and bound to that pod, in the file the agent's config names. The server reviews the
token and reads the pod and node with **its own service account's credentials** (a kubeconfig
holding a token of `spire-server:spire-server`), so its ClusterRole is exercised as shipped: a
missing permission fails the attestation.

Then the chain the program registers: the node alias (`spire_config.node_alias`, created through
the provider's own gRPC client) matches the agent's k8s_psat selectors, and a workload entry under
the alias reaches the agent: this test's process fetches that SVID from the agent. The agent's
config is the shipped one plus the `unix` workload attestor, because no pod can call it here (the
`k8s` attestor needs a kubelet); everything else is as deployed.

Differences from the pods, each forced by running on loopback: paths under a scratch directory,
free ports, SQLite instead of the PostgreSQL Service (the datastore's config is validated in
test_kubernetes_spire_configs.py), and the `kube_config_file` that an out-of-cluster server needs.
"""

from __future__ import annotations

import base64
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

import stack_config
from components.kubernetes import spire_config as sc
from components.spire_conf import Plugin
from dynamic_providers.spire.client import GrpcEntryClient
from dynamic_providers.spire.models import EntryFields, parse_connection
from servers import spire
from servers.process import Run, free_port
from tests.harness.kube_api import KubeApi
from tests.harness.mock_engine import stack_config as raw_stack_config
from tests.real.test_kubernetes_manifests import manifests

STACK = "k8s-dev"
CLUSTER = "dev"
NODE = "node-a"
READY_SECONDS = 90


@dataclass(frozen=True)
class Attested:
    bins: Path
    admin_socket: Path
    agent_socket: Path
    trust_domain: str
    node_uid: str
    pod_uid: str


def _token(kube_api: KubeApi, namespace: str, account: str, spec: dict[str, Any]) -> str:
    issued = kube_api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    return str(issued["status"]["token"])


def _cli(bins: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / tool), *args], capture_output=True, text=True, timeout=60, check=False)


def _cluster_objects(kube_api: KubeApi) -> tuple[str, str]:
    """The program's namespaces, accounts and roles, a Node and the agent's Pod on it: (node uid, pod uid)."""
    for m in manifests():
        if m["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"):
            kube_api.apply(m)
    node = kube_api.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}).body
    config = stack_config.parse_stack_values(*raw_stack_config(STACK))
    pod = kube_api.apply({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"spire-agent-{NODE}", "namespace": sc.SYSTEM_NAMESPACE,
                     "labels": {"app.kubernetes.io/name": sc.AGENT_NAME}},
        "spec": {"nodeName": NODE, "serviceAccountName": sc.AGENT_NAME, "automountServiceAccountToken": False,
                 "containers": [{"name": sc.AGENT_NAME, "image": config.images.spire_agent}]},
    }).body
    return str(node["metadata"]["uid"]), str(pod["metadata"]["uid"])


def _server_kubeconfig(kube_api: KubeApi, path: Path) -> None:
    """A kubeconfig that authenticates as the server's service account (its in-cluster identity)."""
    token = _token(kube_api, sc.SERVER_NAMESPACE, sc.SERVER_NAME, {"expirationSeconds": 3600})
    ca = base64.b64encode(Path(kube_api.section["ca_file"]).read_bytes()).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "spire-server",
        "clusters": [{"name": "loopback", "cluster": {"server": kube_api.section["url"],
                                                      "certificate-authority-data": ca}}],
        "users": [{"name": "spire-server", "user": {"token": token}}],
        "contexts": [{"name": "spire-server", "context": {"cluster": "loopback", "user": "spire-server"}}],
    }))
    path.chmod(0o600)


@pytest.fixture(scope="module")
def attested(kube_api: KubeApi, servers_run: Run) -> Iterator[Attested]:
    bins = spire.bin_dir()
    node_uid, pod_uid = _cluster_objects(kube_api)
    # A short root: the admin and agent sockets must fit in sun_path (107 bytes).
    root = Path(tempfile.mkdtemp(prefix="identity-platform-psat-"))
    dirs = {p: root / name for p, name in (
        (sc.SERVER_SECRETS, "secrets"), (sc.SERVER_DATA, "server"), (sc.SERVER_SOCKET_DIR, "admin"),
        (sc.AGENT_BUNDLE_DIR, "bundle"), (sc.AGENT_DATA, "agent"), (sc.AGENT_SOCKET_DIR, "sockets"),
        (sc.AGENT_TOKEN_DIR, "tokens"), (sc.POD_ACCOUNT_DIR, "account"),
    )}
    for d in dirs.values():
        d.mkdir()
    key, cert = spire.self_signed_ca("k8s-dev root CA", 48)
    spire._write_key(dirs[sc.SERVER_SECRETS] / sc.UPSTREAM_KEY, key)
    (dirs[sc.SERVER_SECRETS] / sc.UPSTREAM_CERT).write_text(spire._pem(cert))
    (dirs[sc.AGENT_BUNDLE_DIR] / sc.AGENT_BUNDLE).write_text(spire._pem(cert))
    kubeconfig = dirs[sc.SERVER_SECRETS] / "kubeconfig"
    _server_kubeconfig(kube_api, kubeconfig)
    # The pod's own token (automounted in the DaemonSet), which the k8s attestor loads at start.
    (dirs[sc.POD_ACCOUNT_DIR] / "token").write_text(_token(kube_api, sc.SYSTEM_NAMESPACE, sc.AGENT_NAME, {
        "expirationSeconds": 3600,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": f"spire-agent-{NODE}", "uid": pod_uid},
    }))
    (dirs[sc.AGENT_TOKEN_DIR] / "spire-agent").write_text(_token(kube_api, sc.SYSTEM_NAMESPACE, sc.AGENT_NAME, {
        "audiences": [sc.AGENT_TOKEN_AUDIENCE], "expirationSeconds": 3600,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": f"spire-agent-{NODE}", "uid": pod_uid},
    }))

    config = stack_config.parse_stack_values(*raw_stack_config(STACK))
    assert config.kubernetes is not None
    shipped = sc.build_server_conf(config.spire, CLUSTER)
    (psat,) = shipped.node_attestors
    cluster = psat.data["clusters"][CLUSTER]  # type: ignore[index]
    server = shipped.model_copy(update={
        "data_store": Plugin(name="sql", data={"database_type": "sqlite3",
                                               "connection_string": f"{sc.SERVER_DATA}/datastore.sqlite3"}),
        "node_attestors": [Plugin(name="k8s_psat", data={"clusters": {
            CLUSTER: {**cluster, "kube_config_file": str(kubeconfig)},
        }})],
    })
    port = free_port()
    server = spire.remap(server, dirs, {"server.bind_address": "127.0.0.1", "server.bind_port": str(port),
                                        "health_checks.bind_port": str(free_port()),
                                        "telemetry.prometheus.port": free_port()}, root)
    shipped_agent = sc.build_agent_conf(config.spire.trust_domain, config.kubernetes, CLUSTER)
    agent = shipped_agent.model_copy(update={
        "workload_attestors": [*shipped_agent.workload_attestors, Plugin(name="unix")],
    })
    agent = spire.remap(agent, dirs, {"agent.server_address": "127.0.0.1", "agent.server_port": str(port),
                                      "health_checks.bind_port": str(free_port()),
                                      "telemetry.prometheus.port": free_port()}, root)
    (root / "server.conf").write_text(server.render())
    (root / "agent.conf").write_text(agent.render())
    admin = Path(server.server.socket_path)
    agent_socket = Path(agent.agent.socket_path)

    proc = servers_run.spawn("spire", "k8s-psat-server", [str(bins / "spire-server"), "run", "-config",
                                                          str(root / "server.conf")], cwd=root)
    servers_run.wait_ready(proc, lambda: _cli(bins, "spire-server", "healthcheck", "-socketPath",
                                              str(admin)).returncode == 0,
                           timeout=READY_SECONDS, what="spire-server healthcheck")
    proc = servers_run.spawn("spire", "k8s-psat-agent", [str(bins / "spire-agent"), "run", "-config",
                                                         str(root / "agent.conf")],
                             cwd=root, env={sc.NODE_NAME_ENV: NODE})
    servers_run.wait_ready(proc, lambda: agent_socket.is_socket() and _cli(
        bins, "spire-agent", "healthcheck", "-socketPath", str(agent_socket)).returncode == 0,
                           timeout=READY_SECONDS, what="the agent attested with k8s_psat")
    yield Attested(bins, admin, agent_socket, config.spire.trust_domain, node_uid, pod_uid)
    shutil.rmtree(root, ignore_errors=True)


def test_the_agent_attests_as_its_node(attested: Attested) -> None:
    agent_id = f"spiffe://{attested.trust_domain}/spire/agent/k8s_psat/{CLUSTER}/{attested.node_uid}"
    listed = _cli(attested.bins, "spire-server", "agent", "list", "-socketPath", str(attested.admin_socket))
    assert agent_id in listed.stdout, listed.stdout + listed.stderr
    shown = _cli(attested.bins, "spire-server", "agent", "show", "-spiffeID", agent_id, "-socketPath",
                 str(attested.admin_socket))
    _, alias_selectors = sc.node_alias(attested.trust_domain, CLUSTER)
    # The alias entry's selectors, and those that say which node and pod the token was bound to.
    expected = [*alias_selectors, f"k8s_psat:agent_node_name:{NODE}", f"k8s_psat:agent_pod_uid:{attested.pod_uid}"]
    for selector in expected:
        assert selector in shown.stdout, (selector, shown.stdout)


def test_a_workload_under_the_node_alias_gets_its_svid(attested: Attested, tmp_path: Path) -> None:
    td = attested.trust_domain
    client = GrpcEntryClient(parse_connection({
        "transport": "grpc", "socket_path": str(attested.admin_socket), "trust_domain": td,
        "project": "identity-platform", "stack": STACK,
    }))
    alias_id, alias_selectors = sc.node_alias(td, CLUSTER)
    client.create(EntryFields(spiffe_id=alias_id, parent_id=f"spiffe://{td}/spire/server",
                              selectors=tuple(alias_selectors)))
    workload = f"spiffe://{td}/ns/production/sa/psat-probe"
    client.create(EntryFields(spiffe_id=workload, parent_id=alias_id, selectors=(f"unix:uid:{os.getuid()}",)))
    deadline = time.monotonic() + 60  # the agent syncs its entries every few seconds
    while True:
        done = _cli(attested.bins, "spire-agent", "api", "fetch", "x509", "-socketPath", str(attested.agent_socket),
                    "-write", str(tmp_path))
        if done.returncode == 0 and workload in done.stdout:
            break
        assert time.monotonic() < deadline, done.stdout + done.stderr
        time.sleep(2)
