"""The enterprise topology against the real servers:

- two real kube-apiservers 1.37.2 (each with its etcd, started for this module in a run of its own,
  `servers/kubernetes.py`), one per cluster of `Pulumi.k8s-enterprise.yaml`, with the pinned CRDs
  installed (`servers/crds.py`, spire-controller-manager's among them): every object of a cluster
  is server-side applied to its API server with `fieldValidation=Strict` and stored as sent (the
  program's own CRDs before its ClusterSPIFFEID and ClusterFederatedTrustDomain, which are checked
  against their published schemas);
  the CRDs the program installs are exactly the published ones;
- each pod template, as a pod, passes Pod Security admission in its namespace (restricted but
  spire-system, whose warnings name exactly the agent's and the CSI driver's exceptions); the
  nested stack's objects (`Pulumi.k8s-enterprise-nested.yaml`) too, dry-run in the same servers;
- the four SPIRE configs (both servers, both agents' configs) pass the real `spire-server validate` /
  `spire-agent validate`, and so do the five of the nested stack (`Pulumi.k8s-enterprise-nested.yaml`:
  the downstream's UpstreamAuthority "spire", the upstream's k8s_psat for the downstream cluster
  without its kubeconfig yet, the upstream server's agents in the downstream cluster).

The real federation between the two SPIRE servers: test_spire_federation.py; the controller
manager: test_spire_controller_manager.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.kubernetes.controller_manager import CRD_DIR
from servers import crds, kubernetes, spire
from servers.process import Run
from tests.components._platform import unwrap
from tests.components.test_kubernetes_enterprise import cluster_of
from tests.conftest import program_run
from tests.harness.kube_api import ApiRefusedError, Applied, KubeApi, as_sent
from tests.real.enterprise_support import layout, nested_layout
from tests.real.test_kubernetes_iam import _contains

STACK = "k8s-enterprise"
NESTED_STACK = "k8s-enterprise-nested"
ESTABLISHED_SECONDS = 60
ORDER = ("Namespace", "CustomResourceDefinition", "CSIDriver", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
         "Role", "RoleBinding", "ConfigMap", "Secret", "Service", "NetworkPolicy", "PodDisruptionBudget",
         "StatefulSet", "DaemonSet", "Deployment", "ClusterSPIFFEID", "ClusterFederatedTrustDomain")


def cluster_manifests(stack: str = STACK) -> dict[str, list[dict[str, Any]]]:
    """Cluster name -> its objects as the provider would send them, in creation order."""
    run = program_run(stack, False)
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


def _established(api: KubeApi, names: list[str]) -> None:
    deadline = time.monotonic() + ESTABLISHED_SECONDS
    for name in names:
        while not any(c["type"] == "Established" and c["status"] == "True" for c in (api.get(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").get("status") or {}).get(
                "conditions") or []):
            assert time.monotonic() < deadline, f"CRD {name} not established within {ESTABLISHED_SECONDS} s"
            time.sleep(0.5)
    api.forget_kinds()


@pytest.fixture(scope="module")
def apis() -> Iterator[dict[str, KubeApi]]:
    """A real API server per cluster, in runs of this module's (stopped at its end)."""
    runs = {c: Run(root=Path(tempfile.mkdtemp(prefix=f"identity-platform-k8s-{c}-"))) for c in ("hq", "branch")}
    try:
        out = {c: KubeApi(kubernetes.SERVER.start(run, {})) for c, run in runs.items()}
        for api in out.values():
            for crd in crds.definitions():
                api.apply(crd)
            _established(api, [c["metadata"]["name"] for c in crds.definitions()])
        yield out
    finally:
        for run in runs.values():
            run.stop()
            shutil.rmtree(run.root, ignore_errors=True)


@pytest.fixture(scope="module")
def applied(apis: dict[str, KubeApi]) -> dict[str, dict[str, Applied]]:
    """Cluster -> object key -> what its API server answered: every object created, in order (the
    program's CRDs are the ones installed, so its ClusterSPIFFEID waits for none)."""
    return {cluster: {_key(m): apis[cluster].apply(m, strict=True) for m in objs}
            for cluster, objs in cluster_manifests().items()}


def test_every_object_of_both_clusters_is_stored_in_its_own(applied: dict[str, dict[str, Applied]],
                                                            apis: dict[str, KubeApi]) -> None:
    manifests = cluster_manifests()
    assert set(applied) == {"hq", "branch"}
    for cluster, objs in manifests.items():
        for m in objs:
            stored = apis[cluster].get(apis[cluster].path(m))
            assert stored["metadata"]["name"] == m["metadata"]["name"]
            if m["kind"] != "Secret":  # stringData is write-only (stored as data)
                # Kept as sent: nothing pruned by a schema (the server only adds defaults).
                assert _contains({k: v for k, v in stored.items() if k not in ("metadata", "status")},
                                 {k: v for k, v in m.items() if k not in ("metadata", "status")}), _key(m)
    # Each cluster holds its own server.conf: the two trust domains did not overwrite each other.
    confs = {c: apis[c].get("/api/v1/namespaces/spire-server/configmaps/spire-server")["data"]["server.conf"]
             for c in apis}
    assert '"trust_domain": "hq.acme-identity.net"' in confs["hq"].replace('":"', '": "')
    assert '"trust_domain": "branch.acme-identity.net"' in confs["branch"].replace('":"', '": "')
    kinds = {c: {m["kind"] for m in objs} for c, objs in manifests.items()}
    assert "ClusterSPIFFEID" in kinds["branch"] and "ClusterSPIFFEID" not in kinds["hq"]
    # Each cluster's relationship with the other trust domain, its seed bundle accepted by the schema.
    relationships = {c: [m["metadata"]["name"] for m in objs if m["kind"] == "ClusterFederatedTrustDomain"]
                     for c, objs in manifests.items()}
    assert relationships == {"hq": ["branch.acme-identity.net"], "branch": ["hq.acme-identity.net"]}


def test_only_the_node_level_objects_fall_below_restricted(applied: dict[str, dict[str, Applied]]) -> None:
    for cluster, answers in applied.items():
        warned = {k for k, a in answers.items() if a.warnings}
        assert warned == {"DaemonSet/spire-system/spire-agent", "DaemonSet/spire-system/spiffe-csi-driver"}, (
            cluster, {k: answers[k].warnings for k in warned})


def test_each_pod_is_admitted_in_its_namespace(applied: dict[str, dict[str, Applied]],
                                               apis: dict[str, KubeApi]) -> None:
    for cluster, objs in cluster_manifests().items():
        namespaces = _admitted(apis[cluster], objs, cluster)
        expected = {"spire-server", "spire-system"} | ({"downstream-workloads"} if cluster == "branch" else set())
        assert namespaces == expected, cluster


def test_the_nested_stack_is_accepted_and_its_pods_admitted(applied: dict[str, dict[str, Applied]],
                                                            apis: dict[str, KubeApi]) -> None:
    """`Pulumi.k8s-enterprise-nested.yaml`'s objects, dry-run in the same API servers (the namespaces
    and CRDs are there; the new service accounts created): each accepted with
    `fieldValidation=Strict`, warnings only for spire-system's DaemonSets (branch's four: the
    upstream server's agents and their CSI driver beside its own), and every pod admitted where it
    runs: the downstream server's, with the upstream agents' CSI volume, at the restricted level."""
    node_level = {"DaemonSet/spire-system/spire-agent", "DaemonSet/spire-system/spiffe-csi-driver"}
    for cluster, objs in cluster_manifests(NESTED_STACK).items():
        # Service accounts for real (a pod's is looked up at admission), the rest dry-run.
        warned = {_key(m) for m in objs
                  if apis[cluster].apply(m, dry_run=m["kind"] != "ServiceAccount", strict=True).warnings}
        assert warned == node_level | ({"DaemonSet/spire-system/spire-upstream-agent",
                                        "DaemonSet/spire-system/spiffe-upstream-csi-driver"}
                                       if cluster == "branch" else set()), cluster
        _admitted(apis[cluster], objs, cluster)
    server = next(m for m in cluster_manifests(NESTED_STACK)["branch"] if _key(m) == "StatefulSet/spire-server/"
                  "spire-server")
    assert {"name": "upstream-agent", "csi": {"driver": "upstream.csi.spiffe.io", "readOnly": True}} in server[
        "spec"]["template"]["spec"]["volumes"]


def _admitted(api: KubeApi, objs: list[dict[str, Any]], cluster: str) -> set[str]:
    """Each pod template of `objs`, as a pod (dry-run), is admitted in its namespace, without a
    warning outside spire-system; the namespaces they run in."""
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
        created = api.create(pod, dry_run=True)
        assert created.body["kind"] == "Pod"
        if ns != "spire-system":
            assert created.warnings == [], (cluster, pod["metadata"]["name"], created.warnings)
    return namespaces


def test_the_agent_is_refused_where_the_downstream_workloads_run(
        applied: dict[str, dict[str, Applied]], apis: dict[str, KubeApi]) -> None:
    agent = next(m for m in cluster_manifests()["branch"] if m["kind"] == "DaemonSet"
                 and m["metadata"]["name"] == "spire-agent")
    apis["branch"].apply({"apiVersion": "v1", "kind": "ServiceAccount",
                          "metadata": {"name": "spire-agent", "namespace": "downstream-workloads"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": agent["spec"]["template"]["spec"],
           "metadata": {"name": "agent-probe", "namespace": "downstream-workloads"}}
    with pytest.raises(ApiRefusedError) as refused:
        apis["branch"].create(pod, dry_run=True)
    assert refused.value.status == 403 and 'violates PodSecurity "restricted' in refused.value.message


def test_a_cluster_spiffe_id_outside_the_schema_is_refused(applied: dict[str, dict[str, Applied]],
                                                           apis: dict[str, KubeApi]) -> None:
    (ids,) = [m for m in cluster_manifests()["branch"] if m["kind"] == "ClusterSPIFFEID"]
    wrong = {**ids, "spec": {**ids["spec"], "spiffeIdTemplate": ids["spec"]["spiffeIDTemplate"]}}
    with pytest.raises(ApiRefusedError) as e:
        apis["branch"].apply(wrong, dry_run=True, strict=True)
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


@pytest.mark.parametrize("name", ["upstream-server", "downstream-server", "upstream-agent", "downstream-agent",
                                  "upstream-agent-downstream"])
def test_the_nested_spire_configs_validate(name: str, tmp_path: Path) -> None:
    """`validate` configures each plugin: the `spire` UpstreamAuthority takes its address and socket
    (it dials only when the server runs: test_spire_nested.py), and the upstream's k8s_psat takes the
    downstream cluster's `kube_config_file` before the operator's Secret exists (it is optional)."""
    conf = nested_layout(tmp_path)[name]
    tool, said = (("spire-server", "SPIRE server configuration file is valid.") if name.endswith("-server")
                  else ("spire-agent", "SPIRE agent configuration file is valid."))
    assert not (tmp_path / "upstream" / "secrets" / "downstream-kubeconfig").exists()
    done = subprocess.run([str(spire.bin_dir() / tool), "validate", "-config", str(conf)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and said in done.stdout, (name, done.stdout, done.stderr)


@pytest.mark.parametrize("cluster", ["hq", "branch-upstream"])
def test_both_k8s_psat_clusters_of_the_nested_upstream_are_read(cluster: str, tmp_path: Path) -> None:
    """The upstream's two clusters, written as a list of one-key objects (one JSON object of two
    would be flattened by HCL into two plugin blocks): SPIRE reads each, so emptying either's allow
    list is refused naming that cluster."""
    conf = nested_layout(tmp_path)["upstream-server"]
    doc = json.loads(conf.read_text())
    clusters = doc["plugins"]["NodeAttestor"][0]["k8s_psat"]["plugin_data"]["clusters"]
    assert [list(c) for c in clusters] == [["hq"], ["branch-upstream"]]
    next(c[cluster] for c in clusters if cluster in c)["service_account_allow_list"] = []
    conf.write_text(json.dumps(doc))
    done = subprocess.run([str(spire.bin_dir() / "spire-server"), "validate", "-config", str(conf)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f'cluster "{cluster}" configuration must have at least one service account allowed' in \
        done.stdout + done.stderr
