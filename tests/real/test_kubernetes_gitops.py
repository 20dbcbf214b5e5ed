"""The YAML `ops manifests` writes for ArgoCD is accepted by the real API server (kube-apiserver
1.37.2 with the pinned CNPG, Istio and ArgoCD CRDs, `iam_api` of test_kubernetes_iam.py): every
file of every wave directory, and the ApplicationSet, server-side applied dry-run with
`fieldValidation=Strict`, as ArgoCD's `ServerSideApply=true` sends them, and the Applications the
ApplicationSet generates (its template filled from each list element, as ArgoCD's `goTemplate`
does). A field the schema does not know fails, and every field sent is kept as sent. The namespaces
the objects live in are made first (plain, as ArgoCD's `CreateNamespace=true` and the istio wave
would).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.cli import main
from ops.workspace import PROJECT_ROOT
from tests.harness.kube_api import ApiRefusedError, KubeApi
from tests.real.test_kubernetes_iam import iam_api  # noqa: F401 - the fixture

WAVES = ("istio", "gateway", "cnpg", "iam", "observability")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gitops") / "iam"
    err = io.StringIO()
    code = main(["manifests", "--stack", "k8s-prod", "--out", str(out)], stdout=io.StringIO(), stderr=err,
                root=PROJECT_ROOT)
    assert code == 0, err.getvalue()
    return out


def generated_applications(appset: dict[str, Any]) -> list[dict[str, Any]]:
    """The Applications `appset` generates: its template with each element's `{{.key}}` filled in."""
    (generator,) = appset["spec"]["generators"]
    template = json.dumps(appset["spec"]["template"])
    out = []
    for element in generator["list"]["elements"]:
        text = template
        for k, v in element.items():
            text = text.replace("{{." + k + "}}", v)
        app = json.loads(text)
        app["metadata"]["namespace"] = appset["metadata"]["namespace"]
        out.append({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **app})
    return out


def documents(rendered: Path) -> list[tuple[str, dict[str, Any]]]:
    out = [("", doc) for doc in yaml.safe_load_all((rendered / "applicationset.yaml").read_text())]
    out += [("", app) for app in generated_applications(out[0][1])]
    for wave in WAVES:
        out += [(wave, yaml.safe_load(p.read_text())) for p in sorted((rendered / wave).glob("*.yaml"))]
    return out


def not_kept(stored: Any, sent: Any, path: str = "") -> str | None:
    """The first path where `stored` does not hold `sent` as sent. The server may add keys, and it
    omits a built-in type's zero values (`readOnly: false`, `args: []`: Go's omitempty), which mean
    the same; anything else missing or different is a loss."""
    if stored is None and sent in (False, 0, "", [], {}):
        return None
    if isinstance(sent, dict):
        if not isinstance(stored, dict):
            return path
        return next((p for k, v in sent.items() if (p := not_kept(stored.get(k), v, f"{path}.{k}"))), None)
    if isinstance(sent, list):
        if not isinstance(stored, list) or len(stored) != len(sent):
            return path
        return next((p for i, (a, b) in enumerate(zip(stored, sent, strict=True))
                     if (p := not_kept(a, b, f"{path}[{i}]"))), None)
    return None if stored == sent else f"{path}: {stored!r} != {sent!r}"


def _ensure_namespace(api: KubeApi, name: str) -> None:
    """Create `name` when absent; an existing one (another test's, with its labels) is left as is."""
    try:
        api.get(f"/api/v1/namespaces/{name}")
    except ApiRefusedError as e:
        if e.status != 404:
            raise
        api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def test_every_rendered_object_is_accepted_strictly_and_kept_as_sent(
    iam_api: KubeApi, rendered: Path
) -> None:
    docs = documents(rendered)
    namespaces = {d["metadata"].get("namespace") for _, d in docs} - {None}
    assert namespaces == {"iam-system", "cnpg-system", "observability", "spire-server", "argocd"}
    for ns in sorted(namespaces):
        _ensure_namespace(iam_api, ns)
    kinds = set()
    for wave, doc in docs:
        what = (wave, doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        applied = iam_api.apply(doc, dry_run=True, strict=True)
        kinds.add(doc["kind"])
        # Pod Security warns (restricted) on Promtail's host log directory alone: observability.py.
        if doc["kind"] != "DaemonSet":
            assert applied.warnings == [], (what, applied.warnings)
        for field in ("spec", "data", "rules", "subjects", "roleRef"):
            if field in doc:
                assert not_kept(applied.body.get(field), doc[field], field) is None, what
    assert {"ApplicationSet", "Application", "Cluster", "PeerAuthentication", "Gateway", "Deployment",
            "PersistentVolumeClaim", "NetworkPolicy"} <= kinds


def test_a_field_the_application_crd_does_not_know_is_refused(iam_api: KubeApi, rendered: Path) -> None:
    app = next(d for w, d in documents(rendered) if d["kind"] == "Application")
    wrong = {**app, "spec": {**app["spec"], "syncPolicy": {**app["spec"]["syncPolicy"], "retries": 5}}}
    with pytest.raises(ApiRefusedError) as e:
        iam_api.apply(wrong, dry_run=True, strict=True)
    assert ".spec.syncPolicy.retries: field not declared in schema" in e.value.message
