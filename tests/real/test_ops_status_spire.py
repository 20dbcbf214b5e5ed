"""`ops status`'s SPIRE rows on Kubernetes against REAL SPIRE servers: every SpireEntry of the
stack (its mock-engine run) created by the SPIRE provider through the program's `kubectl exec`
into `spire-server-0` of the cluster's context, the `kubectl` shim running the real `spire-server`
CLI against the server of that context (tests/real/spire_targets.py).

- Basic topology (k8s-dev, the trust domain rewritten to the shared server's): the node alias the
  topology registers is the stack's own entry, and one deleted behind Pulumi's back fails the
  entries row by name.
- Enterprise topology (k8s-enterprise and k8s-enterprise-nested): one real server per cluster
  context, of that cluster's trust domain (`start_server`: a server of its own, no nesting or
  federation running; each holds a bundle of the other domain, so federated entries register).
  Each cluster gets its own pair of rows from its own server; the nested topology's downstream
  entry and its alias are the upstream's, and a fault on one server touches only its rows.

Expected counts are written out from the stack files (three workloads in branch, one node alias
per cluster, nested: the upstream agents' alias and the downstream server's entry in hq).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

import stack_config
from dynamic_providers.spire._proto import entry_pb2, types_pb2
from dynamic_providers.spire.models import owner_prefix
from ops.health.checks import Context, spire_rows
from ops.health.inputs import Options, Target
from ops.health.model import Check
from servers.process import Run, stop_procs
from tests.conftest import program_run
from tests.harness.mock_engine import stack_config as raw_stack_config
from tests.ops.test_status_kubernetes import ENTERPRISE_ROWS, SPIRE_ENTRY, create_entries, deployed
from tests.real.conftest import RealServers
from tests.real.spire_targets import Admin, emptied, federate_with, make_target, start_server

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


# --- the enterprise topology: one real server per cluster ---------------------------------------------

Servers = dict[str, dict[str, Any]]  # kubectl context -> its real server (`start_server`)


@pytest.fixture(scope="module", params=["k8s-enterprise", "k8s-enterprise-nested"])
def enterprise_servers(request: pytest.FixtureRequest, real_servers: RealServers,
                       servers_run: Run) -> Iterator[tuple[str, Servers]]:
    """(the stack, a real SPIRE server per cluster context its entries name, of that cluster's trust domain)."""
    real_servers("spire")  # the pinned build, installed (or the tier reports why not)
    stack = request.param
    domains = {r.inputs["connection"]["context"]: r.inputs["connection"]["trust_domain"]
               for r in program_run(stack, preview=False).of_type(SPIRE_ENTRY)}
    home = Path(tempfile.mkdtemp(prefix="ip-ops-"))
    servers = {ctx: start_server(servers_run, home / ctx, td, f"ops-{stack}-{ctx}") for ctx, td in domains.items()}
    for state in servers.values():
        for td in set(domains.values()) - {state["trust_domain"]}:
            federate_with(state, td, home)  # the enterprise entries federate with the other domain
    yield stack, servers
    stop_procs([state["proc"] for state in servers.values()])
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def enterprise(enterprise_servers: tuple[str, Servers], tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Target, dict[str, str], dict[str, Admin]]]:
    """(the target ops reads, resource name -> entry id the provider made, context -> its server's admin)."""
    stack, servers = enterprise_servers
    shim = make_target("kubectl-exec", next(iter(servers.values())), tmp_path, stack=stack,
                       sockets={ctx: state["admin_socket"] for ctx, state in servers.items()})
    for key, value in shim.env.items():
        monkeypatch.setenv(key, value)
    with ExitStack() as stack_of:
        admins = {ctx: stack_of.enter_context(emptied(state)) for ctx, state in servers.items()}
        ids, exports = create_entries(stack)
        yield deployed(stack, exports), ids, admins


# Per cluster: (entries on its server, owned by the stack; in spireEntryIds; the topology's own).
HELD = {
    "k8s-enterprise": {"hq": (1, 0, 1), "branch": (4, 3, 1)},
    "k8s-enterprise-nested": {"hq": (3, 0, 3), "branch": (4, 3, 1)},
}
CONTEXTS = {"hq": "acme-hq", "branch": "acme-branch"}


def test_each_cluster_is_answered_by_its_own_server(
        enterprise: tuple[Target, dict[str, str], dict[str, Admin]]) -> None:
    target, _, admins = enterprise
    rows = _rows(target)
    assert set(rows) == {check for _, check in ENTERPRISE_ROWS}
    assert {r.status for r in rows.values()} == {"ok"}, rows
    prefix = owner_prefix(stack_config.PROJECT, target.stack)
    for cluster, (owned, workloads, topology) in HELD[target.stack].items():
        context = CONTEXTS[cluster]
        assert len(admins[context].ids()) == owned
        assert rows[f"{cluster} server ready"].target == f"kubectl exec spire-server/spire-server-0 (context {context})"
        assert rows[f"{cluster} server ready"].detail == f"Entry API answers; entries on the server: {owned}"
        assert rows[f"{cluster} entries"].detail == (
            f"entries owned by this stack ({prefix}*): {owned}; in spireEntryIds: {workloads}; "
            f"the topology's own: {topology}")


@pytest.mark.parametrize("enterprise_servers", ["k8s-enterprise-nested"], indirect=True)
def test_a_fault_on_one_server_is_told_on_its_rows_alone(
        enterprise: tuple[Target, dict[str, str], dict[str, Admin]]) -> None:
    """The downstream server's entry deleted upstream fails hq's entries; an owned entry nobody
    declared, made on branch's server, warns there; the server-ready rows stay ok."""
    target, ids, admins = enterprise
    hq, branch = admins["acme-hq"], admins["acme-branch"]
    hq.stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=[ids["enterprise-downstream-entry"]]), timeout=10)
    stray = owner_prefix(stack_config.PROJECT, target.stack) + "0123456789abcdef01234567"
    made = branch.create(types_pb2.Entry(
        id=stray, spiffe_id=types_pb2.SPIFFEID(trust_domain="hq.acme-identity.net", path="/stray"),
        parent_id=types_pb2.SPIFFEID(trust_domain="hq.acme-identity.net", path="/k8s/branch/agents"),
        selectors=[types_pb2.Selector(type="k8s", value="ns:stray")]))
    assert made.status.code == 0, made.status.message
    rows = _rows(target)
    assert {check: r.status for check, r in rows.items() if r.status != "ok"} == {
        "hq entries": "fail", "branch entries": "warn"}
    assert "missing on the server: the nested downstream server's entry" in rows["hq entries"].detail
    assert stray in rows["branch entries"].detail
