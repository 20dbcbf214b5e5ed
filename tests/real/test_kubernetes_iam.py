"""kubernetes.iam's custom resources against the real API server with the pinned CRDs installed.

The CloudNativePG `Cluster`, Istio's PeerAuthentication, AuthorizationPolicy, Gateway and
VirtualService (and ArgoCD's objects when rendered) the k8s-dev and k8s-prod stacks register
under the mock engine (update mode) are server-side applied, dry-run, with `fieldValidation=Strict`
to the real kube-apiserver 1.37.2, into which the test first creates the CRDs of CNPG 1.27.1, Istio
1.28.0 and ArgoCD 3.2.0 (`servers/crds.py`: from their Go modules, sums pinned). So every field
name, type, enum value and required field the typed wrappers (components/kubernetes/
custom_resources.py) send is checked against the CRDs' own OpenAPI schemas by the server that
enforces them in a cluster; a wrong field or value is refused, which the last tests show.

The CNPG operator itself (its release's CRDs, RBAC, webhook configurations and Deployment,
components/kubernetes/cnpg_operator.py) and the same custom resources are applied by the real
engine and the pulumi-kubernetes plugin: tests/engine/test_kubernetes_stack.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from servers import crds
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import ApiRefusedError, KubeApi, as_sent

STACKS = ("k8s-dev", "k8s-prod")
CUSTOM = ("kubernetes:postgresql.cnpg.io/", "kubernetes:security.istio.io/", "kubernetes:networking.istio.io/",
          "kubernetes:argoproj.io/")
ESTABLISHED_SECONDS = 60


def _contains(stored: Any, sent: Any) -> bool:
    """`sent` is a part of `stored`: same values, with maybe more keys in `stored`'s objects."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(k in stored and _contains(stored[k], v) for k, v in sent.items())
    if isinstance(sent, list):
        return isinstance(stored, list) and len(stored) == len(sent) and all(map(_contains, stored, sent))
    return bool(stored == sent)


def custom_resources(stack: str) -> list[dict[str, Any]]:
    run = program_run(stack, False)
    return [as_sent(unwrap(r.inputs)) for r in run.resources if r.type.startswith(CUSTOM)]


@pytest.fixture(scope="module")
def iam_api(kube_api: KubeApi) -> KubeApi:
    """The API server with the pinned CRDs established and the IAM namespaces present."""
    kube_api.establish(crds.definitions(), within=ESTABLISHED_SECONDS)
    for ns in ("iam-system", "observability", "argocd", "ziti"):
        kube_api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    return kube_api


@pytest.mark.parametrize("stack", STACKS)
def test_every_custom_resource_matches_its_crd_schema(iam_api: KubeApi, stack: str) -> None:
    objects = custom_resources(stack)
    kinds = {o["kind"] for o in objects}
    assert {"Cluster", "PeerAuthentication", "AuthorizationPolicy", "Gateway", "VirtualService"} <= kinds
    assert ("ApplicationSet" in kinds) == (stack == "k8s-prod")  # kubernetes.iam.gitops
    for obj in objects:
        applied = iam_api.apply(obj, dry_run=True, strict=True)
        assert applied.warnings == [], (obj["kind"], obj["metadata"]["name"], applied.warnings)
        # Every field sent is kept as sent (none pruned by the schema); the server only adds defaults.
        assert _contains(applied.body.get("spec") or {}, obj.get("spec") or {}), (obj["kind"], applied.body)


def test_the_servers_defaults_keep_the_sent_mtls_split(iam_api: KubeApi) -> None:
    (db,) = [o for o in custom_resources("k8s-prod")
             if o["kind"] == "PeerAuthentication" and o["metadata"]["name"] == "keycloak-db"]
    stored = iam_api.apply(db, dry_run=True, strict=True).body["spec"]
    assert stored["mtls"] == {"mode": "STRICT"} and stored["portLevelMtls"] == {"8000": {"mode": "PERMISSIVE"}}


def test_a_field_the_crd_does_not_know_is_refused(iam_api: KubeApi) -> None:
    (cluster,) = [o for o in custom_resources("k8s-dev") if o["kind"] == "Cluster"]
    wrong = {**cluster, "spec": {**cluster["spec"], "replicas": 3}}  # CNPG calls it `instances`
    with pytest.raises(ApiRefusedError) as e:
        iam_api.apply(wrong, dry_run=True, strict=True)
    assert ".spec.replicas: field not declared in schema" in e.value.message


def test_a_value_outside_the_crds_enum_is_refused(iam_api: KubeApi) -> None:
    (peer,) = [o for o in custom_resources("k8s-dev")
               if o["kind"] == "PeerAuthentication" and o["metadata"]["name"] == "default"
               and o["metadata"]["namespace"] == "iam-system"]
    wrong = {**peer, "spec": {"mtls": {"mode": "SOMETIMES"}}}
    with pytest.raises(ApiRefusedError) as e:
        iam_api.apply(wrong, dry_run=True, strict=True)
    assert e.value.status == 422 and "SOMETIMES" in e.value.message


def test_a_cluster_without_instances_bound_is_refused(iam_api: KubeApi) -> None:
    (cluster,) = [o for o in custom_resources("k8s-dev") if o["kind"] == "Cluster"]
    wrong = {**cluster, "spec": {**cluster["spec"], "instances": 0}}
    with pytest.raises(ApiRefusedError) as e:
        iam_api.apply(wrong, dry_run=True, strict=True)
    assert e.value.status == 422 and "instances" in e.value.message
