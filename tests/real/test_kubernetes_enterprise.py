"""The enterprise topology against the real servers:

- every Kubernetes object `Pulumi.k8s-enterprise.yaml` declares, cluster by cluster, is accepted
  by the real kube-apiserver 1.37.2 (`kube_api`), server-side applied dry-run with
  `fieldValidation=Strict`, with spire-controller-manager's CRDs of the pinned module installed
  (`servers/crds.py`): the ClusterSPIFFEID is checked against its published schema, and the CRDs
  the program installs are exactly the published ones;
- each pod template, as a pod, passes Pod Security admission in its namespace (restricted but
  spire-system, whose warnings name exactly the agent's and the CSI driver's exceptions);
- the four SPIRE configs (both servers, both agents' configs) pass the real `spire-server validate` /
  `spire-agent validate`.

One API server stands for both clusters: the fixture runs one, and the two clusters' objects share
names (each has a `spire-server/spire-server`), so each cluster's objects are sent dry-run (only the
namespaces and service accounts, alike in both, are created), which runs admission and validation
in full without one cluster's objects replacing the other's. The real federation between the two
servers: test_spire_federation.py.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kubernetes.controller_manager import CRD_DIR
from servers import crds, spire
from tests.components._platform import unwrap
from tests.components.test_kubernetes_enterprise import cluster_of
from tests.conftest import program_run
from tests.harness.kube_api import ApiRefusedError, Applied, KubeApi, as_sent
from tests.real.enterprise_support import layout
from tests.real.test_kubernetes_iam import _contains, iam_api  # noqa: F401 - the CRDs, established

STACK = "k8s-enterprise"
ORDER = ("Namespace", "CustomResourceDefinition", "CSIDriver", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
         "Role", "RoleBinding", "ConfigMap", "Secret", "Service", "NetworkPolicy", "PodDisruptionBudget",
         "StatefulSet", "DaemonSet", "Deployment", "ClusterSPIFFEID")


def cluster_manifests() -> dict[str, list[dict[str, Any]]]:
    """Cluster name -> its objects as the provider would send them, in creation order."""
    run = program_run(STACK, False)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in run.resources:
        if r.type.startswith("kubernetes:") and not r.type.startswith("pulumi:providers"):
            out[cluster_of(run, r)].append(as_sent(unwrap(r.inputs)))
    for objs in out.values():
        assert all(m["kind"] in ORDER for m in objs), sorted({m["kind"] for m in objs} - set(ORDER))
        objs.sort(key=lambda m: ORDER.index(m["kind"]))
    return dict(out)


def _key(m: dict[str, Any]) -> str:
    return f"{m['kind']}/{m['metadata'].get('namespace', '')}/{m['metadata']['name']}"


@pytest.fixture(scope="module")
def applied(iam_api: KubeApi) -> dict[str, dict[str, Applied]]:
    """Cluster -> object key -> what the API server answered (namespaces and service accounts
    created, the same in both clusters; the rest dry-run)."""
    out: dict[str, dict[str, Applied]] = {}
    for cluster, objs in cluster_manifests().items():
        answers = {}
        for m in objs:
            real = m["kind"] in ("Namespace", "ServiceAccount")  # pods need their accounts
            answers[_key(m)] = iam_api.apply(m, dry_run=not real, strict=True)
        out[cluster] = answers
    return out


def test_every_object_of_both_clusters_is_accepted(applied: dict[str, dict[str, Applied]]) -> None:
    manifests = cluster_manifests()
    assert set(applied) == {"hq", "branch"}
    for cluster, objs in manifests.items():
        for m in objs:
            body = applied[cluster][_key(m)].body
            assert body["metadata"]["name"] == m["metadata"]["name"]
            if m["kind"] in ("ClusterSPIFFEID", "ConfigMap", "StatefulSet", "DaemonSet", "Deployment"):
                # Kept as sent: nothing pruned by a schema (the server only adds defaults).
                assert _contains(body.get("spec", body.get("data")), m.get("spec", m.get("data"))), _key(m)
    kinds = {c: {m["kind"] for m in objs} for c, objs in manifests.items()}
    assert "ClusterSPIFFEID" in kinds["branch"] and "ClusterSPIFFEID" not in kinds["hq"]


def test_only_the_node_level_objects_fall_below_restricted(applied: dict[str, dict[str, Applied]]) -> None:
    for cluster, answers in applied.items():
        warned = {k for k, a in answers.items() if a.warnings}
        assert warned == {"DaemonSet/spire-system/spire-agent", "DaemonSet/spire-system/spiffe-csi-driver"}, (
            cluster, {k: answers[k].warnings for k in warned})


def test_each_pod_is_admitted_in_its_namespace(applied: dict[str, dict[str, Applied]], iam_api: KubeApi) -> None:
    for cluster, objs in cluster_manifests().items():
        namespaces = set()
        for m in objs:
            if m["kind"] not in ("StatefulSet", "DaemonSet", "Deployment"):
                continue
            template = m["spec"]["template"]
            spec = dict(template["spec"])
            spec["volumes"] = spec.get("volumes", []) + [
                {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-0"}}
                for c in m["spec"].get("volumeClaimTemplates", [])]
            ns = m["metadata"]["namespace"]
            namespaces.add(ns)
            pod = {"apiVersion": "v1", "kind": "Pod", "spec": spec,
                   "metadata": {"name": f"{m['metadata']['name']}-probe", "namespace": ns,
                                "labels": template["metadata"]["labels"]}}
            created = iam_api.create(pod, dry_run=True)
            assert created.body["kind"] == "Pod"
            if ns != "spire-system":
                assert created.warnings == [], (cluster, pod["metadata"]["name"], created.warnings)
        expected = {"spire-server", "spire-system"} | ({"downstream-workloads"} if cluster == "branch" else set())
        assert namespaces == expected, cluster


def test_the_agent_is_refused_where_the_downstream_workloads_run(
        applied: dict[str, dict[str, Applied]], iam_api: KubeApi) -> None:
    agent = next(m for m in cluster_manifests()["branch"] if m["kind"] == "DaemonSet"
                 and m["metadata"]["name"] == "spire-agent")
    iam_api.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "spire-agent", "namespace": "downstream-workloads"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": agent["spec"]["template"]["spec"],
           "metadata": {"name": "agent-probe", "namespace": "downstream-workloads"}}
    with pytest.raises(ApiRefusedError) as refused:
        iam_api.create(pod, dry_run=True)
    assert refused.value.status == 403 and 'violates PodSecurity "restricted' in refused.value.message


def test_a_cluster_spiffe_id_outside_the_schema_is_refused(applied: dict[str, dict[str, Applied]],
                                                           iam_api: KubeApi) -> None:
    (ids,) = [m for m in cluster_manifests()["branch"] if m["kind"] == "ClusterSPIFFEID"]
    wrong = {**ids, "spec": {**ids["spec"], "spiffeIdTemplate": ids["spec"]["spiffeIDTemplate"]}}
    with pytest.raises(ApiRefusedError) as e:
        iam_api.apply(wrong, dry_run=True, strict=True)
    assert ".spec.spiffeIdTemplate: field not declared in schema" in e.value.message


def test_the_installed_crds_are_the_published_ones() -> None:
    pinned = {d["metadata"]["name"]: d for d in crds.definitions() if d["spec"]["group"] == "spire.spiffe.io"}
    committed = {p.name.removesuffix(".yaml"): yaml.safe_load(p.read_text()) for p in CRD_DIR.glob("*.yaml")}
    assert committed == pinned


@pytest.mark.parametrize("role", ["upstream", "downstream"])
def test_the_rendered_spire_configs_validate(role: str, tmp_path: Path) -> None:
    bins = spire.bin_dir()
    side = layout(tmp_path, running=False)[role]  # type: ignore[index]
    for tool, conf, said in (("spire-server", side.server_conf, "SPIRE server configuration file is valid."),
                             ("spire-agent", side.agent_conf, "SPIRE agent configuration file is valid.")):
        done = subprocess.run([str(bins / tool), "validate", "-config", str(conf)], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0 and said in done.stdout, (tool, done.stdout, done.stderr)
