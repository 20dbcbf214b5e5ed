"""`ops status` on platform kubernetes against the real kube-apiserver: the k8s-dev stack's own
objects (as the provider sends them, `test_kubernetes_manifests.manifests`) created there, its
cluster's access pointed at the server's kubeconfig and context, and the status subresource of
each workload written by the test as the controllers and kubelets would (none runs here: no
nodes, no kube-controller-manager, no CloudNativePG operator). The rows must follow what the
API server says: ready against desired, the conditions that say why, a DaemonSet that no node
runs, an object the topology must have but the cluster lacks, and the CNPG Cluster's phase.

Expected values are written out from the states the test writes (and the replicas the k8s-dev
stack asks for: two SPIRE servers, one of everything else), not computed by ops.health.kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stack_config
from ops.health.kubernetes import rows
from ops.health.model import Check
from stack_config import KubernetesCluster
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.harness.kube_api import KubeApi, as_sent
from tests.harness.mock_engine import stack_config as raw_stack_config
from tests.harness.real_servers import RealServers
from tests.real.test_kubernetes_iam import iam_api  # noqa: F401 - the CRDs, established
from tests.real.test_kubernetes_manifests import manifests

STACK = "k8s-dev"
CLUSTER = "dev"
CNPG = "postgresql.cnpg.io/v1"
# What the test writes into each workload's status (as its controller would).
STATUS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("StatefulSet", "spire-server", "spire-server"): {"replicas": 2, "readyReplicas": 2},
    ("StatefulSet", "spire-server", "spire-db"): {"replicas": 1, "readyReplicas": 0},
    ("DaemonSet", "spire-system", "spire-agent"): {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                                                   "numberMisscheduled": 0, "numberReady": 2},
    ("DaemonSet", "spire-system", "spiffe-csi-driver"): {"desiredNumberScheduled": 0, "currentNumberScheduled": 0,
                                                         "numberMisscheduled": 0, "numberReady": 0},
    ("Deployment", "iam-system", "keycloak"): {
        "replicas": 1, "readyReplicas": 0, "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": "progressing"}]},
    ("StatefulSet", "ziti", "ziti-controller"): {"replicas": 1, "readyReplicas": 1},
    ("StatefulSet", "ziti", "ziti-router"): {"replicas": 1, "readyReplicas": 1},
}


def _path(kube: KubeApi, kind: str, namespace: str, name: str, api_version: str = "apps/v1") -> str:
    return f"{kube.collection(api_version, kind, namespace)}/{name}"


def _write_status(kube: KubeApi, path: str, status: dict[str, Any]) -> None:
    body = kube.get(path)
    status = {**status, "observedGeneration": body["metadata"].get("generation", 1)}
    with kube.client() as c:
        r = c.patch(f"{path}/status", json={"status": status}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


def _config(section: dict[str, Any]) -> stack_config.StackConfig:
    cfg = stack_config.parse_stack_values(*raw_stack_config(STACK))
    assert cfg.kubernetes is not None
    access = KubernetesCluster(kubeconfig=section["kubeconfig"], context=section["context"])
    return cfg.model_copy(update={"kubernetes": cfg.kubernetes.model_copy(update={"clusters": {CLUSTER: access}})})


def by_check(found: list[Check]) -> dict[str, tuple[str, str]]:
    return {c.check: (c.status, c.detail) for c in found}


@pytest.fixture(scope="module")
def reported(real_servers: RealServers, iam_api: KubeApi) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(rows before the CNPG Cluster exists, rows after it is created and healthy)."""
    config = _config(real_servers("kubernetes"))
    for m in manifests(STACK):
        iam_api.apply(m)
    for (kind, ns, name), status in STATUS.items():
        _write_status(iam_api, _path(iam_api, kind, ns, name), status)
    before = by_check(rows(config, timeout=10))
    (db,) = [as_sent(unwrap(r.inputs)) for r in program_run(STACK, False).resources
             if r.type == f"kubernetes:{CNPG}:Cluster"]
    iam_api.apply(db)
    db_path = _path(iam_api, "Cluster", "iam-system", "keycloak-db", CNPG)
    _write_status(iam_api, db_path, {"instances": 1, "readyInstances": 1, "phase": "Cluster in healthy state"})
    after = by_check(rows(config, timeout=10))
    try:
        yield before, after
    finally:
        with iam_api.client() as c:
            c.delete(db_path)


def test_the_api_server_answers_through_the_stacks_kubeconfig(reported: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, after = reported
    assert after["dev API server"] == ("ok", "answers: Kubernetes v1.37.2")


def test_each_workload_is_judged_by_ready_against_desired(reported: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, after = reported
    assert after["dev spire-server/spire-server"] == ("ok", "SPIRE server: StatefulSet: 2/2 replicas ready")
    assert after["dev spire-server/spire-db"] == (
        "fail", "SPIRE datastore (PostgreSQL): StatefulSet: 0/1 replicas ready")
    assert after["dev spire-system/spire-agent"] == (
        "warn", "SPIRE agents: DaemonSet: 2/3 pods ready on the nodes that should run it")
    assert after["dev spire-system/spiffe-csi-driver"] == (
        "warn", "SPIFFE CSI driver: DaemonSet: no node runs it (no node matches its selector)")
    assert after["dev iam-system/keycloak"] == (
        "fail", "Keycloak: Deployment: 0/1 replicas ready; Available=False: MinimumReplicasUnavailable: "
                "Deployment does not have minimum availability.")
    assert after["dev ziti/ziti-controller"] == ("ok", "Ziti controller: StatefulSet: 1/1 replicas ready")
    assert after["dev ziti/ziti-router"] == ("ok", "Ziti edge router: StatefulSet: 1/1 replicas ready")


def test_the_other_workloads_of_the_program_are_reported_too(
        reported: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """The sample workloads and observability's, found by the platform's part-of label; their
    status was never written (no controller runs here), so no replica is ready and no controller
    has observed their spec."""
    _, after = reported
    assert after["dev production/user-service"] == (
        "fail", "Deployment: 0/1 replicas ready (its controller has not yet seen the current spec)")


def test_a_missing_object_fails_and_the_cnpg_cluster_follows_its_phase(
        reported: tuple[dict[str, Any], dict[str, Any]]) -> None:
    before, after = reported
    status, detail = before["dev iam-system/keycloak-db"]
    assert status == "fail" and detail.startswith("Cluster Keycloak's CloudNativePG cluster: not found in the cluster")
    assert after["dev iam-system/keycloak-db"] == (
        "ok", "Keycloak's CloudNativePG cluster: CloudNativePG Cluster: 1/1 instances ready, "
              "phase 'Cluster in healthy state'")
