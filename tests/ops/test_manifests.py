"""`ops manifests`: kubernetes.iam rendered per ArgoCD sync wave, from the program's own objects.

The ApplicationSet the k8s-prod stack registers names `<path>/<wave>` directories; the render
writes each of them, every object it holds is the one `__main__.py` registers under the mock
engine (same inputs, as the provider receives them), no Secret and no secret value reaches a file,
and a re-render is byte-identical and prunes files of objects the program no longer makes.
The real API server's verdict on these files is tests/real/test_kubernetes_gitops.py's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kubernetes import gitops
from ops import manifests
from ops.cli import main
from ops.workspace import PROJECT_ROOT
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import as_sent
from tests.harness.mock_engine import SECRET_PREFIX

STACK = "k8s-prod"
GITOPS_PATH = "deploy/iam"  # kubernetes.iam.gitops.path of Pulumi.k8s-prod.yaml
# What each wave holds, by kind (the design's order: the mesh first, then the route, the operator,
# then the workloads).
WAVE_KINDS = {
    "istio": {"Namespace", "PeerAuthentication", "AuthorizationPolicy"},
    "gateway": {"Gateway", "VirtualService"},
    # The CNPG operator's release (components/kubernetes/cnpg_operator.py) and its namespace's policies.
    "cnpg": {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
             "Service", "Deployment", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
             "NetworkPolicy"},
    "iam": {"Cluster", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "NetworkPolicy"},
    "observability": {"ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "PersistentVolumeClaim",
                      "Deployment", "DaemonSet", "Service", "NetworkPolicy"},
}


def render(out: Path, stack: str = STACK) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    code = main(["manifests", "--stack", stack, "--out", str(out)], stdout=stdout, stderr=stderr, root=PROJECT_ROOT)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "iam"
    code, _, err = render(out)
    assert code == 0, err
    return out


def objects_in(directory: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        (doc,) = list(yaml.safe_load_all(path.read_text()))
        out[path.name] = doc
    return out


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def program_objects() -> dict[tuple[str, str, str], dict[str, Any]]:
    """The Kubernetes objects of the program's IamStack (`iam`), as the provider would receive them."""
    run = program_run(STACK, False)
    out = {}
    for r in run.resources:
        if r.type.startswith("kubernetes:") and any(a.name == "iam" for a in run.ancestors(r)):
            obj = as_sent(unwrap(r.inputs))
            out[key(obj)] = obj
    return out


def test_every_path_the_application_set_names_exists_and_holds_its_wave(rendered: Path) -> None:
    (appset,) = yaml.safe_load_all((rendered / "applicationset.yaml").read_text())
    assert appset["kind"] == "ApplicationSet" and appset["metadata"]["namespace"] == "argocd"
    path = appset["spec"]["template"]["spec"]["source"]["path"]
    assert path == f"{GITOPS_PATH}/{{{{.name}}}}"
    (generator,) = appset["spec"]["generators"]
    elements = generator["list"]["elements"]
    assert [(e["name"], e["wave"]) for e in elements] == [
        ("istio", "0"), ("gateway", "1"), ("cnpg", "2"), ("iam", "3"), ("observability", "3")]
    for e in elements:
        directory = rendered / path.replace("{{.name}}", e["name"]).removeprefix(f"{GITOPS_PATH}/")
        objects = objects_in(directory)
        assert objects, f"{directory} holds nothing"
        assert {o["kind"] for o in objects.values()} == WAVE_KINDS[e["name"]], e["name"]
        for name, obj in objects.items():
            assert name == f"{obj['kind'].lower()}-{obj['metadata'].get('namespace', 'cluster')}-" \
                           f"{obj['metadata']['name']}.yaml"
    # The template: the sync wave annotation, automated prune and self-heal, 5 retries.
    template = appset["spec"]["template"]
    assert template["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "{{.wave}}"}
    policy = template["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True} and policy["retry"]["limit"] == 5


def test_the_files_hold_the_programs_own_objects_and_nothing_else(rendered: Path) -> None:
    expected = program_objects()
    files = {key(o): o for wave in WAVE_KINDS for o in objects_in(rendered / wave).values()}
    (appset,) = yaml.safe_load_all((rendered / "applicationset.yaml").read_text())
    files[key(appset)] = appset
    secrets = {k for k in expected if k[0] == "Secret"}
    assert set(files) == set(expected) - secrets
    for k, obj in files.items():
        assert obj == expected[k], k
    # The operator is in git as the program registers it: its pod outside the mesh, its CRDs and
    # webhooks in the wave before the Cluster that needs them.
    operator = files[("Deployment", "cnpg-system", "cnpg-controller-manager")]["spec"]["template"]
    assert operator["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    cnpg = {key(o) for o in objects_in(rendered / "cnpg").values()}
    assert ("CustomResourceDefinition", "", "clusters.postgresql.cnpg.io") in cnpg
    assert ("ValidatingWebhookConfiguration", "", "cnpg-validating-webhook-configuration") in cnpg


def test_no_secret_reaches_git(rendered: Path) -> None:
    texts = {p: p.read_text() for p in rendered.rglob("*") if p.is_file()}
    assert not any(SECRET_PREFIX in t or "not-rendered" in t for t in texts.values())
    assert not any(o["kind"] == "Secret" for w in WAVE_KINDS for o in objects_in(rendered / w).values())
    listed = (rendered / "SECRETS.md").read_text()
    for ns, name, keys in (("iam-system", "keycloak-db-credentials", "password, username"),
                           ("iam-system", "keycloak-admin", "password, username"),
                           ("observability", "grafana-admin", "password")):
        assert f"| {ns} | {name} | {keys} |" in listed
    # ... and every Secret a pod refers to is listed there.
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for o in objects_in(rendered / "iam").values()
            if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]
            for e in c.get("env", []) if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]}
    assert refs and all(f"| iam-system | {r} |" in listed for r in refs)


def test_a_render_is_repeatable_and_prunes_what_the_program_no_longer_makes(tmp_path: Path) -> None:
    out = tmp_path / "iam"
    assert render(out)[0] == 0
    first = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (out / "iam" / "deployment-iam-system-retired.yaml").write_text("kind: Deployment\n")
    (out / "README.md").write_text("ours\n")
    code, stdout, _ = render(out)
    # cnpg: the operator's 18 objects (10 CRDs, its role and binding, ...) and the namespace's 3 policies.
    assert code == 0 and "istio 9, gateway 2, cnpg 21, iam 11, observability 27" in stdout
    assert not (out / "iam" / "deployment-iam-system-retired.yaml").exists()
    assert (out / "README.md").read_text() == "ours\n"  # outside the wave directories: not the render's
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "README.md"} == first


def test_a_stack_without_gitops_is_a_config_error(tmp_path: Path) -> None:
    code, _, err = render(tmp_path / "iam", stack="k8s-dev")
    assert code == 3
    assert "stack k8s-dev sets no kubernetes.iam.gitops" in err and "fix: set kubernetes.iam.gitops.repoUrl" in err
    assert not (tmp_path / "iam").exists()


def test_an_object_no_wave_holds_is_refused() -> None:
    with pytest.raises(ValueError, match="no sync wave holds Deployment payments/api"):
        gitops.wave_of("Deployment", "payments", "api")
    assert manifests.file_name({"kind": "ClusterRole", "metadata": {"name": "x"}}) == "clusterrole-cluster-x.yaml"
