"""The enterprise topology (`Pulumi.k8s-enterprise.yaml`) applied by the real engine and the real
pulumi-kubernetes plugin to two real kube-apiservers, one per cluster: the CLI at the pin,
`pulumi-resource-kubernetes` 4.25.0, and two kube-apiservers 1.37.2 (each with its etcd) of the
test's own. The stack file's two clusters, `hq` (upstream) and `branch` (downstream), are pointed at
them by kubeconfig and context, so the program makes one Kubernetes provider per API server, as it
would for two real clusters.

The test program is `k8s_program/__main__.py`, as for the other Kubernetes stacks
(test_kubernetes_stack.py): objects skip the provider's await logic, and pulumi-random's and
pulumi-tls's resources are stand-ins (`k8s_program/stand_ins.py`: their plugins cannot be built
here), so the downstream server's intermediate CA is one the root really signs. The root CA is
brought (`rootCa` and the secret `rootCaKey`). Left out with `--exclude` (`EXCLUDED`): what talks to
SPIRE servers that never run here (no kubelet).

Nothing of the cluster is created by the test: spire-controller-manager's CRDs are among the
program's own objects (components/kubernetes/controller_manager.py) in each cluster (a manager
runs beside each server and keeps its ClusterFederatedTrustDomain), and the custom resources are
created after them in the same `up`.

Proven: `preview` writes to neither API server; `up` puts every object the design names into the
right cluster and nothing into the other (the upstream's objects only in hq, the downstream's, the
`downstream-workloads` namespace and the ClusterSPIFFEID only in branch; what the state records per
provider is exactly what each API server holds), each applied by the provider's field manager; the
NodePorts 31081/31443 (hq), 32081/32443 and the gateway's 30080 (branch); each server.conf names its
own trust domain, and each side's ClusterFederatedTrustDomain names the other side's bundle endpoint
and is seeded with the root; a controller manager runs beside each server; the downstream's CA is an
intermediate the root signs while the root's key stays in hq; no key or password is in the state in
plain text; a second `preview --expect-no-changes` is clean; `destroy` removes every object from
both (the namespaces stay Terminating: their controller is not run here). No PersistentVolumeClaim
is the program's own here (the StatefulSets' claim templates are filled by their controller, not run
here), so, unlike k8s-dev, no claim's finalizer holds `destroy`.

The nested stack (`Pulumi.k8s-enterprise-nested.yaml`, `nesting: spire`) the same way: one trust
domain in both clusters, no federation objects and no manager upstream, the upstream server's
agents, their CSI driver and reviewer account in branch and no CA Secret there, the downstream
server.conf's UpstreamAuthority "spire"; a clean second preview and `destroy`. Its downstream
server's StatefulSet is left out with the aliases: it waits for its downstream entry, registered
through `kubectl exec` under the nested alias. With `downstream.apiServer` pointed at branch's API
server (and `strict: false`, which refuses a loopback address there): the reviewer's
service-account-token Secret in branch, which the provider waits for until the test's stand-in of
kube-controller-manager's token controller (`token_controller`: not run here) fills it with a token
of that account from the TokenRequest API, the cluster CA and the namespace; the kubeconfig Secret
in hq built from it, which reaches branch (its CA verifies the server), reviews a spire-upstream-agent
token there (TokenReview) and may get pods and nodes but not read Secrets; the token is in no
state file in plain text.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from servers.stack import set_secrets, write_stack_file
from stack_config import versions
from tests.engine.cli import Cli
from tests.engine.kube_stack import (
    PART_OF,
    api_server,
    assert_destroyed,
    assert_not_in_state,
    excluded,
    k8s_stack,
    k8s_state_by_cluster,
    obj,
)
from tests.engine.test_external_stack import another_root
from tests.harness.kube_api import KubeApi

UP, DOWN = "hq", "branch"
UP_TD, DOWN_TD = "hq.acme-identity.net", "branch.acme-identity.net"

# What `pulumi up` leaves out here (URN patterns, with `--exclude-dependents`), and why:
EXCLUDED = {
    # Each side's node alias is registered through `kubectl exec` of the SPIRE CLI in that cluster's
    # server pod, which never runs (no kubelet); the workload entries (spire-entries-<cluster>)
    # are registered the same way under the alias and depend on it. Both servers' registrations
    # run for real in tests/real/test_spire_federation.py and test_spire_controller_manager.py.
    "**::enterprise-*-node-alias",
}

# The objects of the design (docs/architecture.md#enterprise-topology), (kind, namespace, name).
SERVER, SYSTEM, WORKLOADS_NS = "spire-server", "spire-system", "downstream-workloads"
WORKLOADS = ("enterprise-api", "data-processor", "security-gateway")
API_VERSIONS = {
    "Namespace": "v1", "ServiceAccount": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "Deployment": "apps/v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1", "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
    "Role": "rbac.authorization.k8s.io/v1", "RoleBinding": "rbac.authorization.k8s.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1", "PodDisruptionBudget": "policy/v1",
    "CSIDriver": "storage.k8s.io/v1", "CustomResourceDefinition": "apiextensions.k8s.io/v1",
    "ClusterSPIFFEID": "spire.spiffe.io/v1alpha1", "ClusterFederatedTrustDomain": "spire.spiffe.io/v1alpha1",
    "PersistentVolumeClaim": "v1",
}
Key = tuple[str, str | None, str]
# Each side: its SPIRE server (with its PostgreSQL), its agents and the CSI driver.
SIDE: set[Key] = {
    ("Namespace", None, SERVER), ("Namespace", None, SYSTEM),
    ("StatefulSet", SERVER, "spire-server"), ("StatefulSet", SERVER, "spire-db"),
    *(("Service", SERVER, n) for n in ("spire-server", "spire-server-external", "spire-server-pods", "spire-db")),
    *(("ServiceAccount", SERVER, n) for n in ("spire-server", "spire-db")),
    *(("Secret", SERVER, n) for n in ("spire-db-password", "spire-server-pgpass", "spire-server-upstream-ca")),
    ("ConfigMap", SERVER, "spire-server"), ("PodDisruptionBudget", SERVER, "spire-server"),
    *(("NetworkPolicy", SERVER, n) for n in ("default-deny", "spire-server", "spire-db")),
    *(("ServiceAccount", SYSTEM, n) for n in ("spire-agent", "spiffe-csi-driver")),
    *(("ConfigMap", SYSTEM, n) for n in ("spire-agent", "spire-bundle")),
    *(("DaemonSet", SYSTEM, n) for n in ("spire-agent", "spiffe-csi-driver")),
    *(("NetworkPolicy", SYSTEM, n) for n in ("default-deny", "spire-agent")),
    *((k, None, f"identity-platform-spire-{n}") for k in ("ClusterRole", "ClusterRoleBinding")
      for n in ("agent", "server")),
    ("CSIDriver", None, "csi.spiffe.io"),
    # spire-controller-manager beside each server: it seeds and keeps the federation relationship.
    *(("CustomResourceDefinition", None, f"{k}.spire.spiffe.io")
      for k in ("clusterspiffeids", "clusterfederatedtrustdomains", "clusterstaticentries")),
    ("ConfigMap", SERVER, "spire-controller-manager"),
    *((k, None, "identity-platform-spire-controller-manager") for k in ("ClusterRole", "ClusterRoleBinding")),
    *((k, SERVER, "spire-controller-manager-leader-election") for k in ("Role", "RoleBinding")),
}
# The downstream cluster's own: the workloads, the security gateway, their ClusterSPIFFEID.
DOWNSTREAM_ONLY: set[Key] = {
    ("Namespace", None, WORKLOADS_NS),
    *((k, WORKLOADS_NS, w) for k in ("Deployment", "ServiceAccount") for w in WORKLOADS),
    *(("ConfigMap", WORKLOADS_NS, f"{w}-spiffe-helper") for w in WORKLOADS),
    ("NetworkPolicy", WORKLOADS_NS, "default-deny"), ("NetworkPolicy", WORKLOADS_NS, "security-gateway"),
    ("Service", WORKLOADS_NS, "security-gateway"),
    ("ClusterSPIFFEID", None, WORKLOADS_NS),
}
# Each side's relationship with the other, named after the peer's trust domain.
EXPECTED = {UP: SIDE | {("ClusterFederatedTrustDomain", None, DOWN_TD)},
            DOWN: SIDE | DOWNSTREAM_ONLY | {("ClusterFederatedTrustDomain", None, UP_TD)}}


@pytest.fixture
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, KubeApi]]:
    """An API server of this test's own per cluster of the stack file (each its own root)."""
    with api_server(tmp_path_factory.mktemp(f"kube-{UP}")) as up, \
            api_server(tmp_path_factory.mktemp(f"kube-{DOWN}")) as down:
        yield {UP: up, DOWN: down}


def found(kube: KubeApi) -> set[Key]:
    """Every object of the kinds above, anywhere in the API server, carrying the platform's label."""
    kube.forget_kinds()
    return {(kind, item["metadata"].get("namespace"), item["metadata"]["name"])
            for kind, api_version in API_VERSIONS.items() for item in kube.every(api_version, kind, PART_OF)}


def body(kube: KubeApi, kind: str, ns: str | None, name: str) -> dict[str, Any]:
    got = obj(kube, API_VERSIONS[kind], kind, ns, name)
    assert got is not None, (kind, ns, name)
    return got


def secret_data(kube: KubeApi, name: str) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in body(kube, "Secret", SERVER, name)["data"].items()}


def node_ports(kube: KubeApi, ns: str, name: str) -> dict[str, tuple[int, int]]:
    service = body(kube, "Service", ns, name)["spec"]
    assert service["type"] == "NodePort", service
    return {p["name"]: (p["port"], p["nodePort"]) for p in service["ports"]}


def stack_with_root(engine_bin: Path, k8s_plugin_bin: Path, work: Path, prefix: str, shipped: str,
                    clusters: dict[str, KubeApi],
                    adjust: Callable[[dict[str, Any]], None] | None = None) -> tuple[Cli, str, str]:
    """A new stack of `shipped` on `clusters`, with a brought root CA (pulumi-tls's SelfSignedCert
    has no stand-in): its certificate in config and its key a secret; the CLI and the root's PEMs.
    `adjust` changes the plain settings before they are written."""
    stack = f"{prefix}-{secrets.token_hex(3)}"
    cli, plain = k8s_stack(engine_bin, k8s_plugin_bin, work, stack, shipped, clusters)
    if adjust is not None:
        adjust(plain)
    root_pem, root_key_pem = another_root(f"{stack} root")
    plain["rootCa"] = {"certificate": root_pem}
    write_stack_file(cli.dir, stack, plain)
    set_secrets({"rootCaKey": root_key_pem}, stack=stack, cwd=cli.dir, env=cli.env)
    return cli, root_pem, root_key_pem


def test_the_enterprise_stack_lives_and_dies_in_two_real_api_servers(
    engine_bin: Path, k8s_plugin_bin: Path, clusters: dict[str, KubeApi], tmp_path: Path
) -> None:
    cli, root_pem, root_key_pem = stack_with_root(engine_bin, k8s_plugin_bin, tmp_path, "k8s-ent",
                                                  "Pulumi.k8s-enterprise.yaml", clusters)
    hq, branch = clusters[UP], clusters[DOWN]

    # -- preview: a plan for both clusters, nothing written to either -----------------------------
    preview = cli(*excluded(EXCLUDED, "preview", "--diff"))
    for kind in ("kubernetes:apps/v1:StatefulSet", "kubernetes:spire.spiffe.io/v1alpha1:ClusterSPIFFEID",
                 "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"):
        assert kind in preview.stdout, (kind, preview.stdout)
    assert found(hq) == set() and found(branch) == set()

    # -- up: every object of the design, in its own cluster -----------------------------------------
    up = cli(*excluded(EXCLUDED, "up", "--yes"))
    assert "unknown field" not in up.stdout + up.stderr, up.stdout  # the API server's warning, passed on
    assert found(hq) == EXPECTED[UP], (sorted(found(hq) - EXPECTED[UP]), sorted(EXPECTED[UP] - found(hq)))
    assert found(branch) == EXPECTED[DOWN], (sorted(found(branch) - EXPECTED[DOWN]),
                                            sorted(EXPECTED[DOWN] - found(branch)))
    applied = k8s_state_by_cluster(cli)
    assert {c: {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs}
            for c, objs in applied.items()} == EXPECTED
    for cluster, objs in applied.items():
        for o in objs:
            meta = clusters[cluster].get(clusters[cluster].path(o))["metadata"]
            managers = {f["manager"] for f in meta.get("managedFields") or []}
            assert any(m.startswith("pulumi-kubernetes") for m in managers), (cluster, o["kind"], meta["name"])
    state = json.loads(cli("stack", "export").stdout)["deployment"]["resources"]
    providers = {r["urn"].rsplit("::", 1)[1]: r["inputs"] for r in state if r["type"] == "pulumi:providers:kubernetes"}
    assert {n: (p["kubeconfig"], p["context"], p["version"]) for n, p in providers.items()} == {
        f"k8s-{c}": (k.section["kubeconfig"], k.section["context"], versions.PULUMI_KUBERNETES)
        for c, k in clusters.items()}

    # The design's NodePorts, each on its own cluster's server Service.
    assert node_ports(hq, SERVER, "spire-server-external") == {"grpc": (8081, 31081), "federation": (8443, 31443)}
    assert node_ports(branch, SERVER, "spire-server-external") == {"grpc": (8081, 32081),
                                                                   "federation": (8443, 32443)}
    assert node_ports(branch, WORKLOADS_NS, "security-gateway") == {"https": (8080, 30080)}

    # Each server in its own trust domain; its relationship with the other side is the
    # ClusterFederatedTrustDomain its manager reconciles (so server.conf carries none), seeded with
    # the root both trust domains chain to.
    confs = {c: json.loads(body(k, "ConfigMap", SERVER, "spire-server")["data"]["server.conf"])["server"]
             for c, k in clusters.items()}
    assert {c: conf["trust_domain"] for c, conf in confs.items()} == {UP: UP_TD, DOWN: DOWN_TD}
    assert all("federates_with" not in conf.get("federation", {}) for conf in confs.values()), confs
    relationships = {UP: body(hq, "ClusterFederatedTrustDomain", None, DOWN_TD)["spec"],
                     DOWN: body(branch, "ClusterFederatedTrustDomain", None, UP_TD)["spec"]}
    for cluster, (peer, url) in {UP: (DOWN_TD, "https://nodes.branch.acme-identity.net:32443"),
                                 DOWN: (UP_TD, "https://nodes.hq.acme-identity.net:31443")}.items():
        spec = relationships[cluster]
        assert (spec["trustDomain"], spec["bundleEndpointURL"]) == (peer, url), cluster
        assert spec["bundleEndpointProfile"] == {"type": "https_spiffe",
                                                 "endpointSPIFFEID": f"spiffe://{peer}/spire/server"}, cluster
        (key,) = json.loads(spec["trustDomainBundle"])["keys"]
        seeded = x509.load_der_x509_certificate(base64.b64decode(key["x5c"][0]))
        assert key["use"] == "x509-svid" and seeded == x509.load_pem_x509_certificate(root_pem.encode()), cluster
    agents = {c: json.loads(body(k, "ConfigMap", SYSTEM, "spire-agent")["data"]["agent.conf"])["agent"]
              for c, k in clusters.items()}
    assert {c: a["trust_domain"] for c, a in agents.items()} == {UP: UP_TD, DOWN: DOWN_TD}

    # spire-controller-manager beside each server, and the downstream's ClusterSPIFFEID as stored.
    containers = {c: [x["name"] for x in body(k, "StatefulSet", SERVER, "spire-server")["spec"]["template"]["spec"][
        "containers"]] for c, k in clusters.items()}
    assert containers == {c: ["spire-server", "spire-controller-manager"] for c in clusters}
    spiffe_id = body(branch, "ClusterSPIFFEID", None, WORKLOADS_NS)["spec"]
    assert spiffe_id == {
        "className": "identity-platform",
        "spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/"
                            "{{ .PodSpec.ServiceAccountName }}",
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": WORKLOADS_NS}},
        "podSelector": {"matchLabels": {"identity-platform/registration": "crd"}},
        "federatesWith": [UP_TD],
    }
    manager = yaml.safe_load(body(branch, "ConfigMap", SERVER, "spire-controller-manager")["data"]["config.yaml"])
    assert (manager["trustDomain"], manager["clusterName"]) == (DOWN_TD, DOWN)

    # The CAs: hq's server holds the root; branch's an intermediate the root signs, the root as its
    # bundle, and never the root's key. Both clusters' agents trust the root.
    up_ca, down_ca = secret_data(hq, "spire-server-upstream-ca"), secret_data(branch, "spire-server-upstream-ca")
    # (Compared without the final newline: stack config values come back stripped.)
    assert {k: v.strip() for k, v in up_ca.items()} == {"upstream-ca.pem": root_pem.strip(),
                                                       "upstream-ca.key": root_key_pem.strip()}
    assert set(down_ca) == {"upstream-ca.pem", "upstream-ca.key", "upstream-bundle.pem"}
    assert down_ca["upstream-bundle.pem"].strip() == root_pem.strip()
    assert root_key_pem.strip() not in "".join(down_ca.values())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    intermediate = x509.load_pem_x509_certificate(down_ca["upstream-ca.pem"].encode())
    intermediate.verify_directly_issued_by(root)
    assert intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert intermediate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == \
        f"{DOWN_TD} intermediate CA"
    down_key = serialization.load_pem_private_key(down_ca["upstream-ca.key"].encode(), password=None)
    assert isinstance(down_key, ec.EllipticCurvePrivateKey) and down_key.curve.name == "secp384r1"
    assert down_key.public_key() == intermediate.public_key()
    for k in clusters.values():
        assert root_pem.strip() in "".join(body(k, "ConfigMap", SYSTEM, "spire-bundle")["data"].values())
    # No key and no password in the state in plain text.
    passwords = [secret_data(k, "spire-db-password")["password"] for k in clusters.values()]
    assert_not_in_state(cli, root_key_pem, down_ca["upstream-ca.key"], *passwords)

    # -- nothing to do ----------------------------------------------------------------------------
    cli(*excluded(EXCLUDED, "preview", "--expect-no-changes"))

    # -- destroy: both clusters emptied ------------------------------------------------------------
    cli("destroy", "--yes")
    for cluster, objs in applied.items():
        assert_destroyed(clusters[cluster], objs)
    left = {c: {k for k in found(kube) if k[0] != "Namespace"} for c, kube in clusters.items()}
    assert left == {UP: set(), DOWN: set()}


# --- nested: `Pulumi.k8s-enterprise-nested.yaml` (`kubernetes.enterprise.nesting: spire`) -------------

# The manager's objects: only the downstream runs one when nested.
MANAGER: set[Key] = {k for k in SIDE if "controller-manager" in k[2] or k[0] == "CustomResourceDefinition"}
# The upstream server's agents in the downstream cluster and the account it reviews them with there.
UPSTREAM_AGENTS: set[Key] = {
    *(("ServiceAccount", SYSTEM, n) for n in ("spire-upstream-agent", "spiffe-upstream-csi-driver",
                                              "spire-upstream-reviewer")),
    *(("ConfigMap", SYSTEM, n) for n in ("spire-upstream-agent", "spire-upstream-bundle")),
    *(("DaemonSet", SYSTEM, n) for n in ("spire-upstream-agent", "spiffe-upstream-csi-driver")),
    ("NetworkPolicy", SYSTEM, "spire-upstream-agent"),
    ("ClusterRole", None, "identity-platform-spire-upstream-agent"),
    *(("ClusterRoleBinding", None, f"identity-platform-{n}") for n in ("spire-upstream-agent",
                                                                       "spire-upstream-reviewer")),
    ("CSIDriver", None, "upstream.csi.spiffe.io"),
}
# Left out with the aliases: the downstream server's StatefulSet waits for its downstream entry on
# the upstream, which is registered under the nested alias through `kubectl exec` (no pod runs).
# With downstream.apiServer: the reviewer's token in branch, the kubeconfig built from it in hq.
NESTED_EXPECTED = {
    UP: (SIDE - MANAGER) | {("Secret", SERVER, "spire-server-downstream-kubeconfig")},
    DOWN: (SIDE | DOWNSTREAM_ONLY | UPSTREAM_AGENTS | {("Secret", SYSTEM, "spire-upstream-reviewer-token")})
    - {("Secret", SERVER, "spire-server-upstream-ca"), ("StatefulSet", SERVER, "spire-server")},
}
TOKEN_SECRETS = "/api/v1/secrets?fieldSelector=type%3Dkubernetes.io%2Fservice-account-token"


@contextmanager
def token_controller(kube: KubeApi) -> Iterator[list[str]]:
    """What kube-controller-manager's token controller does, which does not run here: every
    `kubernetes.io/service-account-token` Secret still without a token gets `token` (a token of
    the account its annotation names: here from the TokenRequest API, signed with the same
    service-account key the controller would use), `ca.crt` (the cluster CA) and `namespace`.
    Yields the tokens written; a failure of the stand-in fails the test afterwards."""
    stop = threading.Event()
    written: list[str] = []
    errors: list[str] = []
    ca = Path(kube.section["ca_file"]).read_bytes()

    def fill() -> None:
        while not stop.wait(0.2):  # the provider waits 5 s for the token (awaiters.go)
            try:
                for secret in kube.get(TOKEN_SECRETS)["items"]:
                    meta = secret["metadata"]
                    if (secret.get("data") or {}).get("token"):
                        continue
                    ns, account = meta["namespace"], meta["annotations"]["kubernetes.io/service-account.name"]
                    token = kube.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token", {
                        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "spec": {"expirationSeconds": 3600}})["status"]["token"]
                    data = {"token": token.encode(), "ca.crt": ca, "namespace": ns.encode()}
                    with kube.client() as c:
                        r = c.patch(f"/api/v1/namespaces/{ns}/secrets/{meta['name']}",
                                    json={"data": {k: base64.b64encode(v).decode() for k, v in data.items()}},
                                    headers={"Content-Type": "application/merge-patch+json"})
                        r.raise_for_status()
                    written.append(token)
            except Exception as e:  # noqa: BLE001 - reported by the test after the run
                errors.append(f"{type(e).__name__}: {e}")

    thread = threading.Thread(target=fill, name="token-controller", daemon=True)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]


def review_with(kubeconfig: dict[str, Any], token: str) -> tuple[dict[str, Any], dict[str, int]]:
    """Call the API server of `kubeconfig` as its user, as the upstream server's k8s_psat would: a
    TokenReview of `token` (audience spire-server), and the status of a few reads."""
    (cluster,) = kubeconfig["clusters"]
    (user,) = kubeconfig["users"]
    verify = ssl.create_default_context(cadata=base64.b64decode(cluster["cluster"]["certificate-authority-data"])
                                        .decode())
    with httpx.Client(base_url=cluster["cluster"]["server"], verify=verify, timeout=10,
                      headers={"Authorization": f"Bearer {user['user']['token']}"}) as c:
        review = c.post("/apis/authentication.k8s.io/v1/tokenreviews", json={
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": ["spire-server"]}})
        review.raise_for_status()
        reads = {path: c.get(path).status_code for path in (
            f"/api/v1/namespaces/{SYSTEM}/pods/absent", "/api/v1/nodes/absent", f"/api/v1/namespaces/{SYSTEM}/secrets")}
    return review.json()["status"], reads


def test_the_nested_enterprise_stack_lives_and_dies_in_two_real_api_servers(
    engine_bin: Path, k8s_plugin_bin: Path, clusters: dict[str, KubeApi], tmp_path: Path
) -> None:
    hq, branch = clusters[UP], clusters[DOWN]

    def at_branch(plain: dict[str, Any]) -> None:
        plain["kubernetes"]["enterprise"]["downstream"]["apiServer"] = branch.section["url"]
        plain["strict"] = False  # strict mode refuses the loopback address of branch's API server

    cli, root_pem, root_key_pem = stack_with_root(engine_bin, k8s_plugin_bin, tmp_path, "k8s-nested",
                                                  "Pulumi.k8s-enterprise-nested.yaml", clusters, at_branch)

    with token_controller(branch) as tokens:
        up = cli(*excluded(EXCLUDED, "up", "--yes"))
    assert "unknown field" not in up.stdout + up.stderr, up.stdout
    for cluster, kube in clusters.items():
        got = found(kube)
        assert got == NESTED_EXPECTED[cluster], (cluster, sorted(got - NESTED_EXPECTED[cluster]),
                                                 sorted(NESTED_EXPECTED[cluster] - got))
    # One trust domain, nothing federated: no bundle endpoint, no federation NodePort.
    confs = {c: json.loads(body(k, "ConfigMap", SERVER, "spire-server")["data"]["server.conf"])
             for c, k in clusters.items()}
    assert {c: (conf["server"]["trust_domain"], "federation" in conf["server"]) for c, conf in confs.items()} == {
        UP: (UP_TD, False), DOWN: (UP_TD, False)}
    assert confs[DOWN]["plugins"]["UpstreamAuthority"] == [{"spire": {"plugin_data": {
        "server_address": "nodes.hq.acme-identity.net", "server_port": "31081",
        "workload_api_socket": "/run/spire/upstream-agent/agent.sock"}}}]
    assert node_ports(hq, SERVER, "spire-server-external") == {"grpc": (8081, 31081)}
    assert node_ports(branch, SERVER, "spire-server-external") == {"grpc": (8081, 32081)}
    agent = json.loads(body(branch, "ConfigMap", SYSTEM, "spire-upstream-agent")["data"]["agent.conf"])
    assert (agent["agent"]["server_address"], agent["agent"]["server_port"]) == ("nodes.hq.acme-identity.net", "31081")
    # The upstream's CA Secret holds the root; no CA Secret at all downstream (the upstream mints it).
    assert {k: v.strip() for k, v in secret_data(hq, "spire-server-upstream-ca").items()} == {
        "upstream-ca.pem": root_pem.strip(), "upstream-ca.key": root_key_pem.strip()}

    # The kubeconfig pulumi up delivered to hq: branch's API server, its CA, the reviewer's token.
    (token,) = tokens
    kubeconfig = yaml.safe_load(secret_data(hq, "spire-server-downstream-kubeconfig")["kubeconfig"])
    (cluster,), (user,) = kubeconfig["clusters"], kubeconfig["users"]
    assert cluster["cluster"]["server"] == branch.section["url"]
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == \
        Path(branch.section["ca_file"]).read_bytes()
    assert user == {"name": "spire-upstream-reviewer", "user": {"token": token}}
    # It works as k8s_psat uses it: a TokenReview of an upstream agent's token, and the reads it needs.
    agent_token = branch.post(f"/api/v1/namespaces/{SYSTEM}/serviceaccounts/spire-upstream-agent/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["spire-server"], "expirationSeconds": 600}})["status"]["token"]
    review, reads = review_with(kubeconfig, agent_token)
    assert review["authenticated"] is True, review
    assert review["user"]["username"] == f"system:serviceaccount:{SYSTEM}:spire-upstream-agent"
    assert reads == {f"/api/v1/namespaces/{SYSTEM}/pods/absent": 404, "/api/v1/nodes/absent": 404,
                     f"/api/v1/namespaces/{SYSTEM}/secrets": 403}, reads
    assert_not_in_state(cli, root_key_pem, token, base64.b64encode(token.encode()).decode())

    cli(*excluded(EXCLUDED, "preview", "--expect-no-changes"))
    applied = k8s_state_by_cluster(cli)
    cli("destroy", "--yes")
    for cluster, objs in applied.items():
        assert_destroyed(clusters[cluster], objs)
    assert {c: {k for k in found(kube) if k[0] != "Namespace"} for c, kube in clusters.items()} == {
        UP: set(), DOWN: set()}
