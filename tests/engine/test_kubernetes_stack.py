"""The project's Kubernetes program applied by the real engine and the real pulumi-kubernetes plugin
to a real kube-apiserver: the CLI at the pin, `pulumi-resource-kubernetes` 4.25.0 built from its Go
module (`scripts/servers install pulumi-kubernetes`), a kube-apiserver 1.37.2 of each test's own
(so nothing another test applied is in it) and, for the crd-free stack, the shared real SPIRE server.

`tests/engine/k8s_program/__main__.py` runs the project's `__main__.py` with what this machine needs
(that file says why): `pulumi.com/skipAwait` and `deletionPropagationPolicy: background` on every
Kubernetes object (no nodes, no controller manager: nothing becomes ready and no garbage collector
finishes a foreground delete), and a stand-in for pulumi-random's RandomPassword (its plugin cannot
be built here).

- `Pulumi.k8s-crd-free.yaml` as shipped, pointed at these servers (kubeconfig and context, SPIRE's
  trust domain, admin socket and bundle): every resource of the stack is created. `preview` writes
  nothing; `up` makes every object the design names, applied by the provider's field manager, and
  the node alias and workload entry on SPIRE; `preview --expect-no-changes`; `destroy` removes all.
- `Pulumi.k8s-dev.yaml` (basic topology and Keycloak on CNPG behind Istio) with a brought root CA,
  the Istio and ArgoCD CRDs of servers/crds.py created first (the CNPG ones are the program's own,
  from the operator's release), without `kubernetes.ziti` (its controller PKI is pulumi-tls's) and
  with `--exclude` of what cannot run here (`EXCLUDED` says why): the StatefulSets, DaemonSets,
  RBAC, network policies, Secrets, the CNPG operator (CRDs, RBAC, webhook configurations,
  Deployment), the CNPG Cluster and the Istio objects are applied; a second preview has no changes;
  `destroy` removes them.

After `destroy` the namespaces stay Terminating: the namespace controller that would finish them is
part of the controller manager, which does not run here.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dynamic_providers.spire.models import owner_prefix
from servers import crds
from servers import pulumi_kubernetes as plugin
from servers.stack import set_secrets, write_stack_file
from stack_config import versions
from tests.engine.cli import REPO
from tests.engine.kube_stack import (
    PART_OF,
    PROJECT,
    api_server,
    assert_destroyed,
    assert_not_in_state,
    excluded,
    k8s_stack,
    k8s_state,
    obj,
    release_claims,
)
from tests.engine.test_external_stack import another_root
from tests.harness.kube_api import KubeApi
from tests.real.conftest import RealServers
from tests.real.spire_targets import Admin

# What the crd-free topology puts in the cluster (components/kubernetes/crd_free.py, spire_agents.py):
# (apiVersion, kind, namespace or None, name).
SYSTEM, RBAC = "spire-system", "rbac.authorization.k8s.io/v1"
CLUSTER_OBJECTS = {
    ("v1", "Namespace", None, SYSTEM), ("v1", "Namespace", None, "production"),
    *(("v1", "ServiceAccount", SYSTEM, n) for n in ("spire-agent", "spire-server", "spiffe-csi-driver")),
    *(("v1", "ConfigMap", SYSTEM, n) for n in ("spire-agent", "spire-bundle")),
    *(("apps/v1", "DaemonSet", SYSTEM, n) for n in ("spire-agent", "spiffe-csi-driver")),
    *((RBAC, kind, None, n) for kind in ("ClusterRole", "ClusterRoleBinding")
      for n in ("identity-platform-spire-agent", "identity-platform-spire-server")),
    ("storage.k8s.io/v1", "CSIDriver", None, "csi.spiffe.io"),
    *(("networking.k8s.io/v1", "NetworkPolicy", ns, n)
      for ns, n in ((SYSTEM, "default-deny"), (SYSTEM, "spire-agent"), ("production", "default-deny"))),
}


@pytest.fixture
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    """A kube-apiserver (and etcd) of this test's own, stopped afterwards."""
    with api_server(tmp_path_factory.mktemp("kube")) as api:
        yield api


def ours(kube: KubeApi) -> set[tuple[str, str, str | None, str]]:
    """Every object of the kinds above (in their namespaces) that carries the platform's label."""
    found = set()
    for api_version, kind, ns in {(a, k, n) for a, k, n, _ in CLUSTER_OBJECTS}:
        for item in kube.get(f"{kube.collection(api_version, kind, ns)}?labelSelector={PART_OF}")["items"]:
            found.add((api_version, kind, item["metadata"].get("namespace"), item["metadata"]["name"]))
    return found


def point_at_spire(plain: dict[str, Any], spire: dict[str, Any], cluster: str, workload: str) -> None:
    """The crd-free settings pointed at the real SPIRE server (trust domain, admin socket, bundle),
    with one workload `workload` on `cluster`."""
    plain["spire"]["trustDomain"] = spire["trust_domain"]
    plain["spire"]["transport"]["socketPath"] = spire["admin_socket"]
    # The address stays the shipped one: only the agents, which never run here, dial it.
    plain["kubernetes"]["externalServer"]["trustBundle"] = spire["bundle_pem"]
    (shipped_workload,) = plain["workloads"].values()
    plain["workloads"] = {workload: {**shipped_workload, "node": cluster,
                                     "spiffePath": f"/ns/production/sa/{workload}",
                                     "selectors": ["k8s:ns:production", f"k8s:sa:{workload}"]}}


def test_the_crd_free_stack_lives_and_dies_in_a_real_api_server(
    engine_bin: Path, k8s_plugin_bin: Path, kube: KubeApi, real_servers: RealServers, tmp_path: Path
) -> None:
    spire = real_servers("spire")
    admin = Admin(spire["admin_socket"])
    tag = secrets.token_hex(3)
    stack, cluster, workload = f"k8s-{tag}", f"engine-{tag}", f"ledger-{tag}"
    prefix = owner_prefix(PROJECT, stack)

    def entries() -> list[str]:
        return sorted(i for i in admin.ids() if i.startswith(prefix))

    try:
        assert plugin.SERVER.reported_version() == versions.PULUMI_KUBERNETES
        cli, plain = k8s_stack(engine_bin, k8s_plugin_bin, tmp_path, stack, "Pulumi.k8s-crd-free.yaml",
                               {cluster: kube})
        point_at_spire(plain, spire, cluster, workload)
        write_stack_file(cli.dir, stack, plain)

        # -- preview: a plan, and nothing written anywhere -----------------------------------------
        preview = cli("preview", "--diff")
        for kind in ("kubernetes:core/v1:Namespace", "kubernetes:apps/v1:DaemonSet",
                     "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
                     "kubernetes:networking.k8s.io/v1:NetworkPolicy", "pulumi-python:dynamic/spire:Entry"):
            assert kind in preview.stdout, (kind, preview.stdout)
        assert ours(kube) == set() and entries() == []

        # -- up ----------------------------------------------------------------------------------
        up = cli("up", "--yes")
        assert "unknown field" not in up.stdout + up.stderr, up.stdout  # the API server's warning, passed on
        assert ours(kube) == CLUSTER_OBJECTS
        for api_version, kind, ns, name in CLUSTER_OBJECTS:
            body = obj(kube, api_version, kind, ns, name)
            assert body is not None, (kind, name)
            meta = body["metadata"]
            managers = {f["manager"] for f in meta.get("managedFields") or []}
            assert any(m.startswith("pulumi-kubernetes") for m in managers), (kind, name, managers)
            assert meta["annotations"]["pulumi.com/skipAwait"] == "true", (kind, name)
        levels = {n: obj(kube, "v1", "Namespace", None, n) for n in ("spire-system", "production")}
        assert {n: (b or {})["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for n, b in levels.items()} \
            == {"spire-system": "privileged", "production": "restricted"}
        agent = obj(kube, "apps/v1", "DaemonSet", SYSTEM, "spire-agent")
        assert agent is not None and agent["spec"]["template"]["spec"]["hostPID"] is True
        bundle = obj(kube, "v1", "ConfigMap", SYSTEM, "spire-bundle")
        assert bundle is not None and spire["bundle_pem"].strip() in "".join(bundle["data"].values())
        # The state records the provider at the pinned release: the version the SDK asks for.
        state = json.loads(cli("stack", "export").stdout)
        providers = [r for r in state["deployment"]["resources"] if r["type"] == "pulumi:providers:kubernetes"]
        assert providers and {p["inputs"]["version"] for p in providers} == {versions.PULUMI_KUBERNETES}
        # The node alias and the workload's entry, on the real SPIRE server.
        made = entries()
        assert len(made) == 2, made
        paths = set()
        for i in made:
            entry = admin.get(i)
            assert entry is not None
            paths.add(entry.spiffe_id.path)
        assert f"/ns/production/sa/{workload}" in paths, paths

        # -- nothing to do -------------------------------------------------------------------------
        cli("preview", "--expect-no-changes")

        # -- destroy -------------------------------------------------------------------------------
        cli("destroy", "--yes")
        assert entries() == []
        for api_version, kind, ns, name in CLUSTER_OBJECTS:
            body = obj(kube, api_version, kind, ns, name)
            if kind == "Namespace":
                assert body is not None and body["status"]["phase"] == "Terminating", (name, body)
            else:
                assert body is None, (kind, name, body)
    finally:
        admin.close()


# -- the basic topology with Keycloak on CNPG (k8s-dev), as far as this machine can take it ----------

# What `pulumi up` leaves out of k8s-dev here, by URN pattern (`--exclude`), and why:
EXCLUDED = {
    # registrations through `kubectl exec` into the SPIRE server pod, which never runs here (the
    # workload entries, SpireRegistrations, depend on the node alias: `--exclude-dependents`)
    "**::spire-dev-node-alias",
    # the realm and client, written to the Keycloak that never runs here
    "**::keycloak-identity-*",
}
# Kinds the design puts in the cluster that must be there after `up` (each one checked by name below).
DEV_KINDS = {"Namespace", "StatefulSet", "DaemonSet", "Deployment", "ServiceAccount", "ClusterRole",
             "ClusterRoleBinding", "NetworkPolicy", "Secret", "ConfigMap", "Service", "PodDisruptionBudget",
             "Cluster", "PeerAuthentication", "AuthorizationPolicy", "Gateway", "VirtualService",
             "CustomResourceDefinition", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
# The CNPG operator's release, as committed (components/kubernetes/cnpg_operator.py deploys it).
CNPG_RELEASE = REPO / "components" / "kubernetes" / "generated" / "cnpg-operator.yaml"
CNPG_GROUP = "postgresql.cnpg.io"
CNPG_OPERATOR = "system:serviceaccount:cnpg-system:cnpg-manager"


def cnpg_release() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object of the committed release manifest."""
    docs = yaml.load_all(CNPG_RELEASE.read_text(), Loader=yaml.CSafeLoader)
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


def assert_the_cnpg_operator_is_there(kube: KubeApi) -> None:
    """The operator's release in the API server: its CRDs served, its Deployment with the pinned
    image outside the mesh, its own rules bound to its account (and those rules granting what the
    operator does and no more), its webhook configurations pointing at its Service."""
    release = cnpg_release()
    for (kind, name), published in release.items():
        if kind == "CustomResourceDefinition":
            crd = kube.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
            assert conditions["Established"] == "True", (name, conditions)
            assert crd["spec"]["versions"] == published["spec"]["versions"], name
    operator = kube.get("/apis/apps/v1/namespaces/cnpg-system/deployments/cnpg-controller-manager")
    template = operator["spec"]["template"]
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    (container,) = template["spec"]["containers"]
    assert container["image"] == "ghcr.io/cloudnative-pg/cloudnative-pg:1.27.1"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert template["spec"]["serviceAccountName"] == "cnpg-manager"
    kube.get("/api/v1/namespaces/cnpg-system/serviceaccounts/cnpg-manager")
    role = kube.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/cnpg-manager")
    assert role["rules"] == release[("ClusterRole", "cnpg-manager")]["rules"]
    binding = kube.get("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cnpg-manager-rolebinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cnpg-manager", "namespace": "cnpg-system"}]
    groups = ("system:serviceaccounts", "system:serviceaccounts:cnpg-system")
    for verb, resource, group, allowed in (("create", "pods", "", True), ("create", "jobs", "batch", True),
                                           ("patch", "clusters", CNPG_GROUP, True), ("get", "secrets", "", True),
                                           ("create", "clusterroles", "rbac.authorization.k8s.io", False),
                                           ("delete", "nodes", "", False), ("create", "pods/attach", "", False)):
        res, _, sub = resource.partition("/")
        got = kube.can(CNPG_OPERATOR, verb, res, group=group, subresource=sub, namespace="iam-system", groups=groups)
        assert got is allowed, (verb, resource, got)
    assert kube.can(CNPG_OPERATOR, "patch", "validatingwebhookconfigurations", group="admissionregistration.k8s.io",
                    groups=groups)
    for kind, plural in (("MutatingWebhookConfiguration", "mutatingwebhookconfigurations"),
                         ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations")):
        (published,) = [o for (k, _), o in release.items() if k == kind]
        stored = kube.get(f"/apis/admissionregistration.k8s.io/v1/{plural}/{published['metadata']['name']}")
        # As released but failurePolicy: the test program's `Ignore`, as no operator pod answers here.
        assert [w["name"] for w in stored["webhooks"]] == [w["name"] for w in published["webhooks"]]
        for w, p in zip(stored["webhooks"], published["webhooks"], strict=True):
            assert w["clientConfig"]["service"] == {**p["clientConfig"]["service"], "port": 443}, w["name"]
            assert w["rules"] == [{**r, "scope": "*"} for r in p["rules"]], w["name"]
            assert (w["failurePolicy"], p["failurePolicy"]) == ("Ignore", "Fail")


def test_the_basic_topology_with_keycloak_on_cnpg_is_applied_to_a_real_api_server(
    engine_bin: Path, k8s_plugin_bin: Path, kube: KubeApi, tmp_path: Path
) -> None:
    # Istio's and ArgoCD's CRDs: the cluster's own. CloudNativePG's are the program's (its operator's release).
    kube.establish([d for d in crds.definitions() if d["spec"]["group"] != CNPG_GROUP])
    tag = secrets.token_hex(3)
    stack = f"k8s-dev-{tag}"
    cli, plain = k8s_stack(engine_bin, k8s_plugin_bin, tmp_path, stack, "Pulumi.k8s-dev.yaml", {"dev": kube})
    # A brought root CA (pulumi-tls cannot be built here): certificate in config, key a secret.
    cert_pem, key_pem = another_root(f"{stack} root")
    plain["rootCa"] = {"certificate": cert_pem}
    # kubernetes.ziti left out: the controller's PKI is pulumi-tls's, whose plugin cannot be built
    # here; the Ziti pods are run from their specs by tests/real/test_kubernetes_ziti.py.
    del plain["kubernetes"]["ziti"], plain["ziti"]
    write_stack_file(cli.dir, stack, plain)
    set_secrets({"rootCaKey": key_pem}, stack=stack, cwd=cli.dir, env=cli.env)

    up = cli(*excluded(EXCLUDED, "up", "--yes"))
    assert "unknown field" not in up.stdout + up.stderr, up.stdout  # the API server's warning, passed on
    kube.forget_kinds()  # the program made the CNPG kinds
    applied = k8s_state(cli)
    assert DEV_KINDS <= {o["kind"] for o in applied}, sorted(DEV_KINDS - {o["kind"] for o in applied})
    for o in applied:
        body = kube.get(kube.path(o))
        managers = {f["manager"] for f in body["metadata"].get("managedFields") or []}
        assert any(m.startswith("pulumi-kubernetes") for m in managers), (o["kind"], o["metadata"]["name"])
    by_name = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in applied}
    for expected in (("StatefulSet", "spire-server", "spire-server"), ("StatefulSet", "spire-server", "spire-db"),
                     ("DaemonSet", "spire-system", "spire-agent"), ("Cluster", "iam-system", "keycloak-db"),
                     ("PeerAuthentication", "iam-system", "default"), ("Deployment", "iam-system", "keycloak"),
                     ("Deployment", "cnpg-system", "cnpg-controller-manager"),
                     ("CustomResourceDefinition", None, "clusters.postgresql.cnpg.io")):
        assert expected in by_name, expected
    assert_the_cnpg_operator_is_there(kube)
    # The stand-in's password reached the Secret the CNPG Cluster bootstraps from, and not the state.
    secret = kube.get("/api/v1/namespaces/iam-system/secrets/keycloak-db-credentials")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert len(password) == 32
    assert_not_in_state(cli, password, key_pem)

    cli(*excluded(EXCLUDED, "preview", "--expect-no-changes"))

    release_claims(kube, applied)
    cli("destroy", "--yes")
    assert_destroyed(kube, applied)
