"""Every Kubernetes object the k8s-dev stack declares is accepted by a real API server of the
targeted version (`servers/kubernetes.py`, kube-apiserver 1.37.2 with etcd, no nodes), and what
it enforces holds: Pod Security admission admits each pod in its namespace (restricted everywhere
but spire-system) and refuses the agent's pod where workloads live; the roles grant exactly what
SPIRE needs (SubjectAccessReview); the server's service account can review an agent's projected
token with the `spire-server` audience, which is k8s_psat's call.

The objects are the program's own: the inputs `__main__.py` registers under the mock engine
(update mode), sent by server-side apply, as the pulumi-kubernetes provider does. This covers what
the real-engine run (tests/engine/test_kubernetes_stack.py, the pulumi-kubernetes plugin built from
its Go module, kubernetes.ziti included) does not do: the checks of admission and RBAC below.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import ApiRefusedError, KubeApi, as_sent

STACK = "k8s-dev"
# Creation order: what others refer to first (namespaces, accounts, roles), workloads last.
ORDER = ("Namespace", "CSIDriver", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Secret",
         "PersistentVolumeClaim", "Service", "NetworkPolicy", "PodDisruptionBudget", "StatefulSet", "DaemonSet",
         "Deployment")
POD_OWNERS = ("StatefulSet", "DaemonSet", "Deployment")
CUSTOM_TYPES = ("kubernetes:postgresql.cnpg.io/", "kubernetes:security.istio.io/",
                "kubernetes:networking.istio.io/", "kubernetes:argoproj.io/")
# The CNPG operator's CRDs and admission webhook configurations: applied by the real engine in an
# API server of that test's own (tests/engine/test_kubernetes_stack.py). Here, in the server the
# real tier shares, webhooks whose server (the operator's pod) never runs would refuse the `Cluster`
# that tests/real/test_kubernetes_iam.py applies.
OPERATOR_CLUSTER_WIDE = ("kubernetes:apiextensions.k8s.io/", "kubernetes:admissionregistration.k8s.io/")


def manifests(stack: str = STACK) -> list[dict[str, Any]]:
    """The stack's Kubernetes objects as the provider would send them, in creation order."""
    run = program_run(stack, False)
    out = [
        as_sent(unwrap(r.inputs))
        for r in run.resources
        if r.type.startswith("kubernetes:") and not r.type.startswith("pulumi:providers")
        # kubernetes.iam's custom resources need their CRDs: tests/real/test_kubernetes_iam.py applies those.
        and not r.type.startswith(CUSTOM_TYPES + OPERATOR_CLUSTER_WIDE)
    ]
    assert all(m["kind"] in ORDER for m in out), sorted({m["kind"] for m in out} - set(ORDER))
    return sorted(out, key=lambda m: ORDER.index(m["kind"]))


@dataclass(frozen=True)
class Applied:
    warnings: dict[str, list[str]]  # kind/namespace/name -> the API server's warnings


def _key(m: dict[str, Any]) -> str:
    return f"{m['kind']}/{m['metadata'].get('namespace', '')}/{m['metadata']['name']}"


@pytest.fixture(scope="module")
def applied(kube_api: KubeApi) -> Applied:
    warnings = {}
    for m in manifests():
        warnings[_key(m)] = kube_api.apply(m).warnings
    return Applied(warnings)


def test_every_object_is_accepted(applied: Applied, kube_api: KubeApi) -> None:
    for m in manifests():
        stored = kube_api.get(kube_api.path(m))
        assert stored["metadata"]["name"] == m["metadata"]["name"]
        if m["kind"] == "Namespace":
            assert stored["metadata"]["labels"] == {**m["metadata"]["labels"],
                                                    "kubernetes.io/metadata.name": m["metadata"]["name"]}


def test_only_the_node_level_objects_fall_below_restricted(applied: Applied) -> None:
    """Every namespace warns at restricted: only spire-system's DaemonSets get warnings, and those
    name exactly the agent's and the CSI driver's exceptions."""
    warned = {k: w for k, w in applied.warnings.items() if w}
    assert set(warned) == {"DaemonSet/spire-system/spire-agent", "DaemonSet/spire-system/spiffe-csi-driver",
                           "DaemonSet/observability/promtail"}, warned  # kubernetes.iam.observability
    agent = " ".join(warned["DaemonSet/spire-system/spire-agent"])
    assert "hostPID=true" in agent and 'volume "sockets" uses restricted volume type "hostPath"' in agent
    assert "runAsUser=0" in agent
    assert "privileged" not in agent and "capabilities" not in agent and "allowPrivilegeEscalation" not in agent
    assert "privileged" in " ".join(warned["DaemonSet/spire-system/spiffe-csi-driver"])
    promtail = " ".join(warned["DaemonSet/observability/promtail"])
    assert 'volume "logs" uses restricted volume type "hostPath"' in promtail and "runAsUser=0" in promtail
    assert "privileged" not in promtail and "capabilities" not in promtail and "hostPID" not in promtail


def _pods() -> list[dict[str, Any]]:
    out = []
    for m in manifests():
        if m["kind"] in POD_OWNERS:
            template = m["spec"]["template"]
            spec = dict(template["spec"])
            # A StatefulSet's pods get a volume per claim template, bound to that pod's claim.
            spec["volumes"] = spec.get("volumes", []) + [
                {"name": c["metadata"]["name"],
                 "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{m['metadata']['name']}-0"}}
                for c in m["spec"].get("volumeClaimTemplates", [])
            ]
            out.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"{m['metadata']['name']}-probe", "namespace": m["metadata"]["namespace"],
                                     "labels": template["metadata"]["labels"]},
                        "spec": spec})
    return out


def test_pod_security_admission_admits_every_pod_in_its_namespace(applied: Applied, kube_api: KubeApi) -> None:
    """Pod Security is enforced on pods (not on their owners): each template, as a pod, passes the
    level its namespace enforces."""
    pods = _pods()
    assert {p["metadata"]["namespace"] for p in pods} == {"spire-server", "spire-system", "production", "iam-system",
                                                          "observability", "ziti",  # kubernetes.ziti
                                                          "cnpg-system"}  # the CNPG operator's release
    for pod in pods:
        created = kube_api.create(pod, dry_run=True)
        assert created.body["kind"] == "Pod", pod["metadata"]["name"]
        # The node-level exceptions: spire-system's, and Promtail's log directory (observability).
        if pod["metadata"]["namespace"] != "spire-system" and pod["metadata"]["name"] != "promtail-probe":
            assert created.warnings == [], (pod["metadata"]["name"], created.warnings)


def test_the_agents_pod_is_refused_where_workloads_run(applied: Applied, kube_api: KubeApi) -> None:
    agent = next(p for p in _pods() if p["metadata"]["name"] == "spire-agent-probe")
    kube_api.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "spire-agent", "namespace": "production"}})
    with pytest.raises(ApiRefusedError) as refused:
        kube_api.create({**agent, "metadata": {**agent["metadata"], "namespace": "production"}}, dry_run=True)
    assert refused.value.status == 403 and "violates PodSecurity \"restricted" in refused.value.message


SERVER = "system:serviceaccount:spire-server:spire-server"
AGENT = "system:serviceaccount:spire-system:spire-agent"
WORKLOAD = "system:serviceaccount:production:user-service"


@pytest.mark.parametrize(("user", "verb", "resource", "group", "sub", "allowed"), [
    (SERVER, "create", "tokenreviews", "authentication.k8s.io", "", True),
    (SERVER, "get", "pods", "", "", True),
    (SERVER, "get", "nodes", "", "", True),
    (SERVER, "list", "pods", "", "", False),
    (SERVER, "watch", "nodes", "", "", False),
    (SERVER, "get", "secrets", "", "", False),
    (SERVER, "create", "pods", "", "", False),
    (AGENT, "get", "nodes", "", "pods", True),
    (AGENT, "get", "nodes", "", "proxy", False),
    (AGENT, "get", "pods", "", "", False),
    (AGENT, "get", "secrets", "", "", False),
    (AGENT, "create", "tokenreviews", "authentication.k8s.io", "", False),
    (WORKLOAD, "get", "pods", "", "", False),
    (WORKLOAD, "get", "secrets", "", "", False),
])
def test_the_roles_grant_exactly_what_spire_needs(
    applied: Applied, kube_api: KubeApi, user: str, verb: str, resource: str, group: str, sub: str, allowed: bool,
) -> None:
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{user.split(':')[2]}")
    got = kube_api.can(user, verb, resource, group=group, subresource=sub, namespace="spire-server", groups=groups)
    assert got is allowed, f"{user} {verb} {resource}/{sub}: {got}"


def _token(kube_api: KubeApi, namespace: str, account: str, audience: str | None) -> str:
    spec: dict[str, Any] = {"expirationSeconds": 600}
    if audience:
        spec["audiences"] = [audience]
    issued = kube_api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    return str(issued["status"]["token"])


def test_the_server_reviews_an_agents_token_as_k8s_psat_does(applied: Applied, kube_api: KubeApi) -> None:
    """As the server's own service account (its in-cluster credentials), TokenReview of an agent's
    token with the `spire-server` audience authenticates the agent's service account."""
    agent_token = _token(kube_api, "spire-system", "spire-agent", "spire-server")
    server_token = _token(kube_api, "spire-server", "spire-server", None)
    tls = ssl.create_default_context(cafile=kube_api.section["ca_file"])
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": agent_token, "audiences": ["spire-server"]}}
    with httpx.Client(base_url=kube_api.section["url"], verify=tls, timeout=30,
                      headers={"Authorization": f"Bearer {server_token}"}) as c:
        r = c.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)
        assert r.status_code == 201, r.text
        status = r.json()["status"]
        assert status["authenticated"] is True
        assert status["user"]["username"] == AGENT
        # ... and nothing else: the same credentials cannot read Secrets.
        assert c.get("/api/v1/namespaces/spire-server/secrets").status_code == 403


def test_the_crd_free_stack_is_accepted_and_writes_nothing_in_the_cluster(applied: Applied, kube_api: KubeApi) -> None:
    """crd-free: agents only. Its objects are accepted, only its DaemonSets fall below restricted,
    and nothing it grants writes anything: the external server's identity may review tokens and
    read pods and nodes, the agents read their kubelet's pod list."""
    objects = manifests("k8s-crd-free")
    kinds = {m["kind"] for m in objects}
    assert "CustomResourceDefinition" not in kinds and not kinds & {"StatefulSet", "Secret", "Deployment"}
    warned = {_key(m): w for m in objects if (w := kube_api.apply(m).warnings)}
    assert set(warned) == {"DaemonSet/spire-system/spire-agent", "DaemonSet/spire-system/spiffe-csi-driver"}
    for role in (m for m in objects if m["kind"] == "ClusterRole"):
        for rule in role["rules"]:
            assert set(rule["verbs"]) <= {"get"} or (rule["resources"], rule["verbs"]) == (["tokenreviews"], ["create"])
    reviewer = "system:serviceaccount:spire-system:spire-server"
    groups = ("system:serviceaccounts", "system:serviceaccounts:spire-system")
    assert kube_api.can(reviewer, "create", "tokenreviews", group="authentication.k8s.io", groups=groups)
    assert kube_api.can(reviewer, "get", "nodes", groups=groups)
    assert not kube_api.can(reviewer, "create", "pods", namespace="production", groups=groups)
    assert not kube_api.can(reviewer, "get", "secrets", namespace="spire-system", groups=groups)
