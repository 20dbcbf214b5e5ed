"""The loopback Kubernetes API server (`servers/kubernetes.py`) is a real one: it reports the
pinned version, authorizes with RBAC, enforces PodSecurity on labelled namespaces, and issues and
reviews projected service-account tokens. The platform's tests rely on each of these: a manifest it
accepts, a role it grants and a token SPIRE's k8s_psat attestor reviews mean what they would on a
cluster of that version."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from stack_config import versions
from tests.harness.kube_api import ApiRefusedError, KubeApi


def _namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def test_it_reports_the_pinned_version(kube_api: KubeApi) -> None:
    version = kube_api.get("/version")
    assert version["gitVersion"] == f"v{versions.KUBERNETES}"
    assert (version["major"], version["minor"]) == tuple(versions.KUBERNETES.split(".")[:2])


def test_the_kubeconfig_names_one_admin_context(kube_api: KubeApi) -> None:
    doc = yaml.safe_load(open(kube_api.section["kubeconfig"]).read())
    assert doc["current-context"] == kube_api.section["context"]
    assert [c["cluster"]["server"] for c in doc["clusters"]] == [kube_api.section["url"]]


def test_rbac_is_enforced(kube_api: KubeApi) -> None:
    kube_api.apply(_namespace("rbac-probe"))
    kube_api.apply({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "nobody",
                                                                               "namespace": "rbac-probe"}})
    user = "system:serviceaccount:rbac-probe:nobody"
    assert not kube_api.can(user, "list", "secrets", namespace="rbac-probe")
    kube_api.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "read-configmaps", "namespace": "rbac-probe"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]})
    kube_api.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": "nobody-reads", "namespace": "rbac-probe"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
                    "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": "rbac-probe"}]})
    assert kube_api.can(user, "get", "configmaps", namespace="rbac-probe")
    assert not kube_api.can(user, "get", "configmaps", namespace="default")
    assert not kube_api.can(user, "list", "secrets", namespace="rbac-probe")


def test_pod_security_admission_refuses_a_privileged_pod_in_a_restricted_namespace(kube_api: KubeApi) -> None:
    kube_api.apply(_namespace("psa-probe", {"pod-security.kubernetes.io/enforce": "restricted"}))
    kube_api.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": "psa-probe"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": "psa-probe"},
           "spec": {"hostPID": True, "containers": [{"name": "c", "image": "registry.invalid/c:1.0.0"}]}}
    with pytest.raises(ApiRefusedError) as refused:
        kube_api.create(pod, dry_run=True)
    assert refused.value.status == 403 and "violates PodSecurity" in refused.value.message
    assert "hostPID" in refused.value.message


def test_projected_tokens_are_issued_and_reviewed(kube_api: KubeApi) -> None:
    """What SPIRE's k8s_psat attestor does with an agent's token: TokenReview with its audience."""
    kube_api.apply(_namespace("token-probe"))
    kube_api.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "agent", "namespace": "token-probe"}})
    issued = kube_api.post("/api/v1/namespaces/token-probe/serviceaccounts/agent/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["spire-server"], "expirationSeconds": 600},
    })
    token = issued["status"]["token"]
    review = kube_api.post("/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["spire-server"]},
    })
    assert review["status"]["authenticated"] is True
    assert review["status"]["user"]["username"] == "system:serviceaccount:token-probe:agent"
    wrong = kube_api.post("/apis/authentication.k8s.io/v1/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["someone-else"]},
    })
    assert wrong["status"].get("authenticated") is not True


def test_the_binaries_report_their_pins(kube_api: KubeApi) -> None:
    api_bin, etcd_bin = kube_api.section["bin_dirs"]
    out = subprocess.run([f"{etcd_bin}/etcd", "--version"], capture_output=True, text=True, check=True).stdout
    assert f"etcd Version: {versions.ETCD}" in out
    out = subprocess.run([f"{api_bin}/kube-apiserver", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"Kubernetes v{versions.KUBERNETES}"
