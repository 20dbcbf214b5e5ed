"""`ops status`'s SPIRE rows on the basic Kubernetes topology against the REAL SPIRE server: every
SpireEntry of the k8s-dev stack (its mock-engine run, the trust domain rewritten to the server's)
created by the SPIRE provider through the program's `kubectl exec` into `spire-server-0` of the
cluster's context, the `kubectl` shim running the real `spire-server` CLI
(tests/real/spire_targets.py). Then the rows: the node alias the topology registers is the stack's
own entry, and one deleted behind Pulumi's back fails the entries row by name. Expected counts are
written out from the stack file (three workloads, one node alias).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stack_config
from dynamic_providers.spire._proto import entry_pb2
from ops.health.checks import Context, spire_rows
from ops.health.inputs import Options, Target
from ops.health.model import Check
from tests.harness.mock_engine import stack_config as raw_stack_config
from tests.ops.test_status_kubernetes import create_entries, deployed
from tests.real.conftest import RealServers
from tests.real.spire_targets import Admin, emptied, make_target

STACK = "k8s-dev"
STACK_TD = "k8s-dev.zt.internal"
CONTEXT = "kind-identity-platform"  # the k8s-dev stack's cluster context


def _moved(value: Any, td: str) -> Any:
    """`value` with the stack's trust domain replaced by the real server's."""
    if isinstance(value, str):
        return value.replace(STACK_TD, td)
    if isinstance(value, dict):
        return {k: _moved(v, td) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, td) for v in value]
    return value


@pytest.fixture
def world(real_servers: RealServers, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Target, dict[str, str], Admin]]:
    """(the target ops reads, resource name -> the entry id the provider made, the server's admin)."""
    state = real_servers("spire")
    td = state["trust_domain"]
    shim = make_target("kubectl-exec", state, tmp_path, stack=STACK, context=CONTEXT)
    for key, value in shim.env.items():
        monkeypatch.setenv(key, value)
    values, secret_keys = raw_stack_config(STACK)
    config = stack_config.parse_stack_values(_moved(values, td), secret_keys)
    with emptied(state) as admin:
        ids, exports = create_entries(STACK, lambda v: _moved(v, td))
        yield deployed(STACK, exports, config), ids, admin


def _rows(target: Target) -> dict[str, Check]:
    return {r.check: r for r in spire_rows(target, Options(timeout=30.0), Context(None))}


def test_the_node_alias_is_the_stacks_own_entry(world: tuple[Target, dict[str, str], Admin]) -> None:
    target, _, admin = world
    assert len(admin.ids()) == 4
    rows = _rows(target)
    assert rows["server ready"].status == "ok"
    assert rows["server ready"].target == f"kubectl exec spire-server/spire-server-0 (context {CONTEXT})"
    assert (rows["entries"].status, rows["entries"].detail) == (
        "ok", "entries owned by this stack (pulumi.identity-platform.k8s-dev.*): 4; in spireEntryIds: 3; "
              "the topology's own: 1")


def test_a_node_alias_deleted_out_of_band_fails_by_name(world: tuple[Target, dict[str, str], Admin]) -> None:
    target, ids, admin = world
    admin.stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=[ids["spire-dev-node-alias"]]), timeout=10)
    row = _rows(target)["entries"]
    assert row.status == "fail"
    assert "missing on the server: node alias of cluster dev's agents" in row.detail

