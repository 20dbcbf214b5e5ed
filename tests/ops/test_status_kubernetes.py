"""`ops status` on platform kubernetes without an API server: what the topology must have in each
cluster (from the stack files), how a kubeconfig becomes an API access (client certificate files,
token file, exec credential plugin, the errors that name what is wrong), the readiness rules on
objects written as the API server returns them, and a cluster that does not answer. The rows
against the real kube-apiserver are tests/real/test_ops_status_kubernetes.py. The nested enterprise
topology's kubeconfig Secret is checked here against a fake API server (httpx's MockTransport):
present, missing, forbidden, asked for its metadata only. Expected values are
written out, not computed by ops.health.kubernetes."""

from __future__ import annotations

import json
import ssl
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import stack_config
from dynamic_providers.spire.models import entry_id_for, owner_prefix
from dynamic_providers.spire.provider import SpireEntryProvider
from ops.health import collect
from ops.health.checks import PROBES, Context, certificate_rows, spire_connection, spire_rows, spire_servers
from ops.health.inputs import Options, Target
from ops.health.kubernetes import (
    ApiAccess,
    KubeconfigError,
    NeededSecret,
    cluster_rows,
    expected,
    load_access,
    needed_secrets,
    readiness,
    rows,
)
from ops.health.model import Check
from ops.outputs import StackOutputs
from servers.kubernetes import make_pki, write_kubeconfig
from servers.process import free_port
from stack_config import KubernetesCluster
from tests.conftest import program_run
from tests.fakes.spire_cli import FakeWorld
from tests.fakes.spire_server import FakeSpireServer, entry
from tests.harness.mock_engine import stack_config as raw_stack_config

SPIRE_ENTRY = "pulumi-python:dynamic/spire:Entry"


def _config(stack: str) -> stack_config.StackConfig:
    return stack_config.parse_stack_values(*raw_stack_config(stack))


def _names(stack: str) -> dict[str, list[tuple[str, str, str]]]:
    return {c: [w.key for w in ws] for c, ws in expected(_config(stack)).items()}


SPIRE = [("StatefulSet", "spire-server", "spire-server"), ("StatefulSet", "spire-server", "spire-db"),
         ("DaemonSet", "spire-system", "spire-agent"), ("DaemonSet", "spire-system", "spiffe-csi-driver")]


def test_what_each_topology_must_run() -> None:
    assert _names("k8s-dev") == {"dev": [
        *SPIRE, ("Deployment", "iam-system", "keycloak"), ("Cluster", "iam-system", "keycloak-db"),
        ("StatefulSet", "ziti", "ziti-controller"), ("StatefulSet", "ziti", "ziti-router")]}
    assert _names("k8s-enterprise") == {"branch": SPIRE, "hq": SPIRE}
    assert _names("k8s-crd-free") == {"regulated": SPIRE[2:]}
    assert expected(_config("dev")) == {}


def test_the_probe_is_registered_and_silent_on_other_platforms() -> None:
    assert ("kubernetes", "workloads") in [(c, n) for c, n, _ in PROBES]
    assert rows(_config("dev"), timeout=1) == []


# --- kubeconfig -----------------------------------------------------------------------------------


def _kubeconfig(tmp_path: Path, user: dict[str, Any], cluster: dict[str, Any] | None = None) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "main",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}},
                     {"name": "other", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_a_token_file_becomes_a_bearer_header(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t0ken-from-file\n")
    access = load_access("dev", KubernetesCluster(kubeconfig=str(_kubeconfig(tmp_path, {"tokenFile": "token"}))))
    assert access.server == "https://127.0.0.1:6443"
    assert access.headers == {"Authorization": "Bearer t0ken-from-file"}


def test_an_exec_plugin_is_run_as_kubectl_runs_it(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.sh"
    plugin.write_text('#!/bin/sh\nprintf \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
                      '"status":{"token":"%s-%s"}}\' "$1" "$PLUGIN_ENV"\n')
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin), "args": ["arg"],
                     "env": [{"name": "PLUGIN_ENV", "value": "env"}]}}
    access = load_access("dev", KubernetesCluster(kubeconfig=str(_kubeconfig(tmp_path, user))), environ={})
    assert access.headers == {"Authorization": "Bearer arg-env"}


def test_the_kubeconfig_comes_from_the_environment_and_the_context_from_config(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"token": "x"}, {"server": "https://127.0.0.1:7443", "insecure-skip-tls-verify": True})
    access = load_access("dev", KubernetesCluster(context="other"), environ={"KUBECONFIG": f"{path}:/nowhere"})
    assert access.server == "https://127.0.0.1:7443"
    assert access.note == "the kubeconfig skips TLS verification (insecure-skip-tls-verify)"


@pytest.mark.parametrize(("access", "message"), [
    (KubernetesCluster(context="absent"), "no context named 'absent'"),
    (KubernetesCluster(kubeconfig="/nowhere/kubeconfig"),
     "cannot read the kubeconfig of cluster dev (/nowhere/kubeconfig)"),
])
def test_an_unusable_kubeconfig_is_one_clear_error(tmp_path: Path, access: KubernetesCluster, message: str) -> None:
    path = _kubeconfig(tmp_path, {"token": "x"})
    with pytest.raises(KubeconfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_access("dev", access, environ={"KUBECONFIG": str(path)})


def test_a_cluster_that_does_not_answer_fails_and_its_objects_are_not_checked(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"token": "x"}, {"server": f"https://127.0.0.1:{free_port()}"})
    config = _config("k8s-crd-free")
    assert config.kubernetes is not None
    k8s = config.kubernetes.model_copy(update={"clusters": {"regulated": KubernetesCluster(kubeconfig=str(path))}})
    found = {c.check: (c.status, c.detail) for c in rows(config.model_copy(update={"kubernetes": k8s}), timeout=2)}
    assert set(found) == {"regulated API server", "regulated spire-system/spire-agent",
                          "regulated spire-system/spiffe-csi-driver"}
    assert found["regulated API server"][0] == "fail"
    assert found["regulated API server"][1].startswith("the API server did not answer")
    assert found["regulated spire-system/spire-agent"] == (
        "fail", "SPIRE agents: not checked: the API server did not answer")


# --- the nested topology's kubeconfig Secret -------------------------------------------------------

KUBECONFIG_PATH = "/api/v1/namespaces/spire-server/secrets/spire-server-downstream-kubeconfig"
WHAT = "the kubeconfig the upstream server reviews the upstream agents of cluster branch with"
WITHOUT = "those agents cannot attest, so the nested server of branch gets no CA"


def test_a_nested_stack_needs_the_kubeconfig_secret_upstream() -> None:
    config = _config("k8s-enterprise-nested")
    assert needed_secrets(config) == {"hq": [NeededSecret(
        "spire-server", "spire-server-downstream-kubeconfig", WHAT, WITHOUT,
        "`python -m ops up` makes it (kubernetes.enterprise.downstream.apiServer is set)")]}
    assert config.kubernetes is not None and config.kubernetes.enterprise is not None
    ent = config.kubernetes.enterprise
    manual = ent.model_copy(update={"downstream": ent.downstream.model_copy(update={"api_server": None})})
    k8s = config.kubernetes.model_copy(update={"enterprise": manual})
    (need,) = needed_secrets(config.model_copy(update={"kubernetes": k8s}))["hq"]
    assert need.fix == ("set kubernetes.enterprise.downstream.apiServer and run `python -m ops up`, or create it by "
                        "hand (docs/architecture.md, nested enterprise topology)")
    assert needed_secrets(_config("k8s-enterprise")) == {} and needed_secrets(_config("k8s-dev")) == {}


class FakeApi(ApiAccess):
    """An API server that answers `/version`, empty workload lists and `secret_status` for the Secret."""

    def __init__(self, secret_status: int) -> None:
        super().__init__("https://hq.test:6443", ssl.create_default_context())
        self.secret_status = secret_status
        self.asked: list[httpx.Request] = []

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(request)
        if request.url.path == "/version":
            return httpx.Response(200, json={"gitVersion": "v1.37.2"})
        if request.url.path == KUBECONFIG_PATH:
            body = {"kind": "PartialObjectMetadata", "metadata": {"name": "spire-server-downstream-kubeconfig"}}
            return httpx.Response(self.secret_status, content=json.dumps(body))
        return httpx.Response(200, json={"items": []})

    def client(self, timeout: float) -> httpx.Client:
        return httpx.Client(base_url=self.server, transport=httpx.MockTransport(self._answer), timeout=timeout)


@pytest.mark.parametrize(("code", "status", "detail"), [
    (200, "ok", f"Secret: present ({WHAT})"),
    (404, "warn", f"Secret: not found: {WHAT}; {WITHOUT}: create it"),
    (403, "warn", f"Secret: cannot be checked (this kubeconfig may not get Secrets there): {WHAT}"),
    (500, "warn", f"Secret: cannot be checked (HTTP 500): {WHAT}"),
])
def test_the_kubeconfig_secret_row(code: int, status: str, detail: str) -> None:
    api = FakeApi(code)
    need = NeededSecret("spire-server", "spire-server-downstream-kubeconfig", WHAT, WITHOUT, "create it")
    found = {c.check: (c.status, c.detail) for c in cluster_rows("hq", api, [], timeout=2, secrets=[need])}
    assert found == {"hq API server": ("ok", "answers: Kubernetes v1.37.2"),
                     "hq spire-server/spire-server-downstream-kubeconfig": (status, detail)}
    # Its metadata only: the kubeconfig's token never reaches ops.
    (asked,) = [r for r in api.asked if r.url.path == KUBECONFIG_PATH]
    assert asked.method == "GET" and asked.headers["Accept"].startswith(
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")


def test_a_missing_workload_names_the_refreshing_up() -> None:
    """An object deleted out of band is still in the state: a plain `up` reports no changes."""
    want = [w for ws in expected(_config("k8s-dev")).values() for w in ws]
    found = cluster_rows("hq", FakeApi(200), want[:1], timeout=2, stack="dev")
    (missing,) = [c for c in found if c.status == "fail"]
    assert "`python -m ops up --stack dev --refresh` makes it again" in missing.detail


def test_the_kubeconfig_secret_is_not_checked_when_the_cluster_does_not_answer(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path, {"token": "x"}, {"server": f"https://127.0.0.1:{free_port()}"})
    config = _config("k8s-enterprise-nested")
    assert config.kubernetes is not None
    k8s = config.kubernetes.model_copy(update={"clusters": {c: KubernetesCluster(kubeconfig=str(path))
                                                            for c in config.kubernetes.clusters}})
    found = {c.check: (c.status, c.detail) for c in rows(config.model_copy(update={"kubernetes": k8s}), timeout=2)}
    assert found["hq spire-server/spire-server-downstream-kubeconfig"] == (
        "warn", f"Secret ({WHAT}): not checked: the API server did not answer")
    assert not [k for k in found if k.startswith("branch") and "kubeconfig" in k]


# --- readiness ------------------------------------------------------------------------------------


def test_a_deployment_all_ready_is_ok_and_a_stale_status_is_not() -> None:
    obj = {"metadata": {"generation": 3}, "spec": {"replicas": 2},
           "status": {"observedGeneration": 3, "readyReplicas": 2}}
    assert readiness("Deployment", obj) == ("ok", "Deployment: 2/2 replicas ready")
    stale = {**obj, "status": {"observedGeneration": 2, "readyReplicas": 2}}
    assert readiness("Deployment", stale) == (
        "warn", "Deployment: 2/2 replicas ready (its controller has not yet seen the current spec)")


def test_replicas_default_to_one_and_a_true_replica_failure_is_named() -> None:
    obj = {"spec": {}, "status": {"conditions": [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "quota exceeded"},
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}
    assert readiness("Deployment", obj) == (
        "fail", "Deployment: 0/1 replicas ready; ReplicaFailure=True: FailedCreate: quota exceeded")


def test_a_statefulset_scaled_to_zero_warns() -> None:
    assert readiness("StatefulSet", {"spec": {"replicas": 0}, "status": {}}) == (
        "warn", "StatefulSet: scaled to 0 replicas")


@pytest.mark.parametrize(("status", "verdict"), [
    ({"readyInstances": 3, "phase": "Cluster in healthy state"}, "ok"),
    ({"readyInstances": 3, "phase": "Switchover in progress"}, "warn"),
    ({"readyInstances": 2, "phase": "Cluster in healthy state"}, "warn"),
    ({"phase": "Setting up primary"}, "fail"),
])
def test_a_cnpg_cluster_needs_every_instance_and_the_healthy_phase(status: dict[str, Any], verdict: str) -> None:
    assert readiness("Cluster", {"spec": {"instances": 3}, "status": status})[0] == verdict


def test_the_kubeconfig_written_by_the_test_server_is_read(tmp_path: Path) -> None:
    """Inline CA and client certificate data (what `servers.kubernetes` writes): the CA verifies."""
    pki = make_pki(tmp_path / "pki")
    path = write_kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443", pki)
    access = load_access("dev", KubernetesCluster(kubeconfig=str(path)), environ={})
    assert access.server == "https://127.0.0.1:6443" and access.headers == {}
    (ca,) = access.verify.get_ca_certs()
    assert dict(x[0] for x in ca["subject"])["commonName"] == "identity-platform loopback Kubernetes CA"


# --- the whole status on platform kubernetes: the sections the stack deploys, nothing else -----------


def deployed(stack: str, exports: dict[str, Any] | None = None,
             config: stack_config.StackConfig | None = None) -> Target:
    """The stack as `load_target` reads it: its config and its exports (default: the mock engine's),
    contract-checked."""
    if exports is None:
        exports = {k: e.value for k, e in program_run(stack, preview=False).exports.items()}
    outputs = StackOutputs.from_mapping(exports)
    return Target(stack=stack, project=stack_config.PROJECT, config=config or _config(stack), outputs=outputs,
                  keycloak_admin_password=outputs.keycloak_admin_password,
                  ziti_admin_password=outputs.ziti_admin_password)


def create_entries(stack: str, moved: Callable[[Any], Any] = lambda v: v) -> tuple[dict[str, str], dict[str, Any]]:
    """Every SpireEntry of the stack's mock-engine run (its inputs through `moved`) created by the
    SPIRE provider (check, then create), where the environment's transport reaches: (resource
    name -> the id the provider answered, the exports with spireEntryIds as the engine would
    export them: those ids)."""
    run = program_run(stack, preview=False)
    provider, ids = SpireEntryProvider(), {}
    for r in run.of_type(SPIRE_ENTRY):
        news = provider.check({}, moved({k: v for k, v in r.inputs.items() if k != "__provider"}))
        assert not news.failures, news.failures
        ids[r.name] = provider.create(news.inputs).id
    exports = moved({k: e.value for k, e in run.exports.items()})
    exports["spireEntryIds"] = {w: ids[mock.removesuffix("-id")] for w, mock in exports["spireEntryIds"].items()}
    return ids, exports


@pytest.mark.parametrize(("stack", "sections"), [
    ("k8s-dev", {"spire", "keycloak", "ziti", "certificates", "swarm", "kubernetes"}),
    ("k8s-enterprise", {"spire", "certificates", "swarm", "kubernetes"}),
    ("k8s-crd-free", {"spire", "certificates", "swarm", "kubernetes"}),
])
def test_status_probes_only_the_sections_the_stack_deploys(stack: str, sections: set[str]) -> None:
    """Keycloak and Ziti are asked only where kubernetes.iam / kubernetes.ziti put them (a stack
    without them used to end `ops status` with exit 8 before any row)."""
    probed: list[str] = []

    def probe(component: str) -> Any:
        return lambda t, o, ctx: probed.append(component) or []

    collect(deployed(stack), probes=[(c, n, probe(c)) for c, n, _ in PROBES], context=Context(None))
    assert set(probed) == sections


def test_without_ziti_the_certificates_are_the_root_alone() -> None:
    rows = certificate_rows(deployed("k8s-enterprise"), Options(), Context(None))
    assert [(r.component, r.check) for r in rows] == [("certificates", "root CA")]


def test_the_basic_topologys_entries_are_read_as_the_program_writes_them() -> None:
    """Through `kubectl exec` into the first server pod of the cluster's context, not `spire.transport`."""
    conn = spire_connection(deployed("k8s-dev"), 5.0)
    assert (conn.transport, conn.namespace, conn.pod, conn.container) == (
        "kubectl-exec", "spire-server", "spire-server-0", "spire-server")
    assert conn.context == _config("k8s-dev").kubernetes.clusters["dev"].context


# --- the SPIRE rows against the entries the provider makes ------------------------------------------


@dataclass
class SpireWorld:
    """Every SpireEntry of a stack's mock-engine run, created by the SPIRE provider itself through
    `kubectl exec` (the fake kubectl and spire-server CLIs) into one fake server per cluster context."""

    target: Target
    servers: dict[str, FakeSpireServer]  # kubectl context -> its server
    ids: dict[str, str]  # resource name -> the id the provider answered

    def rows(self) -> dict[tuple[str, str], Check]:
        return {(r.component, r.check): r for r in spire_rows(self.target, Options(timeout=20.0), Context(None))}


@pytest.fixture
def spire_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], SpireWorld]]:
    started: list[FakeSpireServer] = []

    def make(stack: str) -> SpireWorld:
        entries = program_run(stack, preview=False).of_type(SPIRE_ENTRY)
        world, servers = FakeWorld(tmp_path / stack), {}
        domains = {r.inputs["connection"]["trust_domain"] for r in entries}  # federated with each other
        for r in entries:
            conn = r.inputs["connection"]
            if conn["context"] not in servers:
                server = FakeSpireServer(trust_domain=conn["trust_domain"], federated_bundles=domains - {
                    conn["trust_domain"]})
                servers[conn["context"]] = server.start()
                started.append(server)
                world.add_pod(conn["context"], conn["namespace"], conn["pod"], conn["container"],
                              str(server.socket_path), container_socket=conn["socket_path"])
        for key, value in world.env().items():
            monkeypatch.setenv(key, value)
        ids, exports = create_entries(stack)
        return SpireWorld(deployed(stack, exports), servers, ids)

    yield make
    for server in started:
        server.stop()


def test_the_crd_free_topologys_alias_is_known_on_its_external_server() -> None:
    """crd-free registers on the external server through `spire.transport` (a socket no test has):
    the server ops asks is that one, and the alias it expects is the one the program registers."""
    run = program_run("k8s-crd-free", preview=False)
    (alias,) = [r for r in run.of_type(SPIRE_ENTRY) if r.name.endswith("-node-alias")]
    (server,) = spire_servers(deployed("k8s-crd-free"), 5.0)
    assert (server.connection.transport, server.connection.socket_path) == ("grpc", "/run/user/1000/spire-admin.sock")
    prefix = owner_prefix(stack_config.PROJECT, "k8s-crd-free")
    ours = entry_id_for(prefix, alias.inputs["spiffe_id"], alias.inputs["parent_id"], alias.inputs["selectors"])
    assert dict(server.topology) == {ours: "node alias of cluster regulated's agents"}


@pytest.mark.parametrize(("stack", "workloads"), [("k8s-dev", 3), ("k8s-prod", 1)])
def test_a_healthy_basic_topology_is_ok_with_its_node_alias(spire_world: Callable[[str], SpireWorld],
                                                            stack: str, workloads: int) -> None:
    """The node alias the topology registers is the stack's own entry, not a stray (it warned)."""
    world = spire_world(stack)
    rows = world.rows()
    assert set(rows) == {("spire", "server ready"), ("spire", "entries")}
    assert {r.status for r in rows.values()} == {"ok"}, rows
    assert rows[("spire", "entries")].detail.endswith(
        f"*): {workloads + 1}; in spireEntryIds: {workloads}; the topology's own: 1")


def test_a_deleted_node_alias_fails_the_entries_row(spire_world: Callable[[str], SpireWorld]) -> None:
    world = spire_world("k8s-dev")
    (server,) = world.servers.values()
    del server.entries[world.ids["spire-dev-node-alias"]]
    row = world.rows()[("spire", "entries")]
    assert row.status == "fail"
    assert "missing on the server: node alias of cluster dev's agents" in row.detail


ENTERPRISE_ROWS = {("spire", f"{c} {check}") for c in ("hq", "branch") for check in ("server ready", "entries")}


@pytest.mark.parametrize("stack", ["k8s-enterprise", "k8s-enterprise-nested"])
def test_each_enterprise_server_is_asked_for_its_own_entries(spire_world: Callable[[str], SpireWorld],
                                                             stack: str) -> None:
    """One pair of rows per cluster, through that cluster's context; the workloads are the
    downstream's, the nested topology's downstream entry and its alias the upstream's."""
    world = spire_world(stack)
    rows = world.rows()
    assert set(rows) == ENTERPRISE_ROWS
    assert {r.status for r in rows.values()} == {"ok"}, rows
    assert "in spireEntryIds: 0" in rows[("spire", "hq entries")].detail
    assert "in spireEntryIds: 3" in rows[("spire", "branch entries")].detail
    assert rows[("spire", "hq server ready")].target == "kubectl exec spire-server/spire-server-0 (context acme-hq)"


def test_a_stray_entry_on_one_enterprise_server_warns_that_server_only(
        spire_world: Callable[[str], SpireWorld]) -> None:
    world = spire_world("k8s-enterprise-nested")
    stray = owner_prefix(stack_config.PROJECT, "k8s-enterprise-nested") + "0123456789abcdef01234567"
    world.servers["acme-branch"].seed(
        entry("spiffe://hq.acme-identity.net/stray", "spiffe://hq.acme-identity.net/k8s/branch/agents",
              ["k8s:ns:stray"], entry_id=stray))
    del world.servers["acme-hq"].entries[world.ids["enterprise-downstream-entry"]]
    rows = world.rows()
    assert {k: r.status for k, r in rows.items() if r.status != "ok"} == {
        ("spire", "branch entries"): "warn", ("spire", "hq entries"): "fail"}
    assert stray in rows[("spire", "branch entries")].detail
    assert "missing on the server: the nested downstream server's entry" in rows[("spire", "hq entries")].detail
