"""SpireRegistrations under the mock engine: one entry per workload, keyed by name, parented to its
node's agent, with a connection the provider accepts; and how the assembly turns the configured
workloads and `spire.transport` into those entries and that connection (the configuration refuses
a workload without an agent and two workloads with one SPIFFE ID: tests/test_config_gate.py)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.assembly import registrations
from components.spire_connection import spire_connection
from components.spire_registrations import Registration, SpireRegistrations, SpireRegistrationsArgs
from dynamic_providers.spire.provider import SpireEntryProvider
from stack_config import SpireTransport, StackConfig, Workload, parse_stack_values
from tests.harness.mock_engine import ProgramRun, Registered, run, stack_config, swarm_stack_files

ENTRY = "pulumi-python:dynamic/spire:Entry"
COMPONENT = "identity-platform:spire:SpireRegistrations"
TD = "zt.acme-identity.net"
AGENTS = {n: f"spiffe://{TD}/spire/agent/x509pop/{n}" for n in ("manager-1", "worker-1", "worker-2")}
CONNECTION = {"transport": "docker-exec", "docker_host": "ssh://root@10.114.0.2", "service": "spire-server"}
OWNED = {**CONNECTION, "trust_domain": TD, "project": "identity-platform", "stack": "prod"}
ENTRIES = {
    "payments-api": Registration(
        spiffe_id=f"spiffe://{TD}/ns/payments/sa/api",
        parent_id=AGENTS["worker-1"],
        selectors=("docker:label:com.docker.swarm.service.name:payments_api",),
        x509_svid_ttl=900,
        dns_names=("api.payments.internal",),
    ),
    "ledger": Registration(
        spiffe_id=f"spiffe://{TD}/ns/payments/sa/ledger",
        parent_id=AGENTS["worker-2"],
        selectors=("docker:label:com.docker.swarm.service.name:payments_ledger", "unix:uid:1000"),
    ),
}


def _workloads(**overrides: dict[str, Any]) -> dict[str, Workload]:
    raw = {
        "payments-api": {
            "spiffePath": "/ns/payments/sa/api",
            "node": "worker-1",
            "selectors": ["docker:label:com.docker.swarm.service.name:payments_api"],
            "dnsNames": ["api.payments.internal"],
            "x509SvidTtl": 900,
        },
        "ledger": {
            "spiffePath": "/ns/payments/sa/ledger",
            "node": "worker-2",
            "selectors": ["docker:label:com.docker.swarm.service.name:payments_ledger", "unix:uid:1000"],
        },
        **overrides,
    }
    return {name: Workload.model_validate(w) for name, w in raw.items()}


def _build(entries: dict[str, Registration]) -> ProgramRun:
    def body() -> None:
        reg = SpireRegistrations("spire-registrations", SpireRegistrationsArgs(entries=entries, connection=OWNED))
        pulumi.export("entryIds", reg.entry_ids)
        pulumi.export("spiffeIds", reg.spiffe_ids)

    return run(body, stack="prod")


def _entries(r: ProgramRun) -> dict[str, Registered]:
    return {e.name: e for e in r.of_type(ENTRY)}


@pytest.fixture(scope="module")
def built() -> ProgramRun:
    return _build(ENTRIES)


class TestEntries:
    def test_one_entry_per_workload_named_by_key(self, built: ProgramRun) -> None:
        component = built.get(COMPONENT, "spire-registrations")
        entries = _entries(built)
        assert set(entries) == {"spire-registrations-entry-payments-api", "spire-registrations-entry-ledger"}
        assert all(e.parent == component.urn and e.custom for e in entries.values())

    def test_fields_come_from_the_registration(self, built: ProgramRun) -> None:
        api = _entries(built)["spire-registrations-entry-payments-api"].inputs
        assert api["spiffe_id"] == f"spiffe://{TD}/ns/payments/sa/api"
        assert api["parent_id"] == AGENTS["worker-1"]
        assert api["selectors"] == ["docker:label:com.docker.swarm.service.name:payments_api"]
        assert api["dns_names"] == ["api.payments.internal"] and api["x509_svid_ttl"] == 900
        ledger = _entries(built)["spire-registrations-entry-ledger"].inputs
        assert ledger["parent_id"] == AGENTS["worker-2"] and "x509_svid_ttl" not in ledger
        checked = SpireEntryProvider().check({}, dict(ledger)).inputs  # what the engine stores
        assert checked["x509_svid_ttl"] == 0 and checked["dns_names"] == []

    def test_connection_carries_trust_domain_and_ownership(self, built: ProgramRun) -> None:
        for e in _entries(built).values():
            assert e.inputs["connection"] == OWNED

    def test_the_provider_accepts_every_entry(self, built: ProgramRun) -> None:
        for e in _entries(built).values():
            assert SpireEntryProvider().check({}, e.inputs).failures == [], e.name

    def test_outputs_keyed_by_workload(self, built: ProgramRun) -> None:
        assert built.exports["spiffeIds"].value == {
            "payments-api": f"spiffe://{TD}/ns/payments/sa/api",
            "ledger": f"spiffe://{TD}/ns/payments/sa/ledger",
        }
        assert set(built.exports["entryIds"].value) == {"payments-api", "ledger"}

    def test_reordering_the_map_changes_nothing(self, built: ProgramRun) -> None:
        reordered = dict(reversed(list(ENTRIES.items())))
        again = _entries(_build(reordered))
        assert {n: e.inputs for n, e in again.items()} == {n: e.inputs for n, e in _entries(built).items()}

    def test_entries_wait_for_what_the_component_waits_for(self) -> None:
        def body() -> None:
            server = pulumi.CustomResource("test:index:Server", "spire-server-svc", {})
            SpireRegistrations(
                "reg",
                SpireRegistrationsArgs(entries=ENTRIES, connection=OWNED),
                opts=pulumi.ResourceOptions(depends_on=[server]),
            )

        r = run(body, stack="prod")
        server = r.get("test:index:Server", "spire-server-svc")
        assert all(server.urn in e.dependencies for e in r.of_type(ENTRY))


class TestWorkloadsBecomeEntries:
    def test_each_workload_under_its_nodes_agent(self) -> None:
        config = parse_stack_values(*stack_config("prod"))
        config = config.model_copy(update={"workloads": _workloads()})
        assert registrations(config, AGENTS) == ENTRIES


class TestConnectionFromConfig:
    def _config(self, stack: str, **spire: Any) -> StackConfig:
        values, _ = stack_config(stack)
        raw: dict[str, Any] = {}
        for key, value in values.items():
            name = key.split(":", 1)[1]
            if key.startswith("identity-platform:"):
                try:
                    raw[name] = json.loads(value)
                except json.JSONDecodeError:
                    raw[name] = value
        if spire:
            raw["spire"] = {**raw.get("spire", {}), **spire}
        raw.pop("strict", None)
        return StackConfig.model_validate(raw)

    def _connection(self, cfg: StackConfig) -> dict[str, Any]:
        out: dict[str, Any] = {}

        def body() -> None:
            out.update(spire_connection(cfg))

        run(body, stack="prod")
        return out

    def test_prod_default_is_docker_exec_on_the_server_node(self) -> None:
        conn = self._connection(self._config("prod"))
        assert conn == {
            "transport": "docker-exec",
            "docker_host": "ssh://root@10.114.0.2",
            "service": "spire-server",
            "socket_path": "/tmp/spire-server/private/api.sock",
            "trust_domain": TD,
            "project": "identity-platform",
            "stack": "prod",
        }

    def test_grpc_and_kubectl(self) -> None:
        grpc = self._connection(self._config("prod", transport={"kind": "grpc", "socketPath": "/run/spire/api.sock"}))
        assert grpc["transport"] == "grpc" and grpc["socket_path"] == "/run/spire/api.sock"
        # kubectl-exec reaches a server in Kubernetes: your own (platform external); swarm refuses it.
        external = parse_stack_values(*stack_config("external"))
        transport = SpireTransport(kind="kubectl-exec", namespace="spire")
        kube_cfg = external.model_copy(update={"spire": external.spire.model_copy(update={"transport": transport})})
        kube: dict[str, Any] = {}
        run(lambda: kube.update(spire_connection(kube_cfg)), stack="prod")
        assert kube["transport"] == "kubectl-exec" and kube["namespace"] == "spire" and "docker_host" not in kube

    @pytest.mark.parametrize("stack", swarm_stack_files())
    def test_every_stack_files_workloads_make_valid_entries(self, stack: str) -> None:
        cfg = self._config(stack)
        agents = {n: f"spiffe://{cfg.spire.trust_domain}/spire/agent/x509pop/{n}" for n in cfg.nodes}
        conn = self._connection(cfg)

        def body() -> None:
            SpireRegistrations("reg", SpireRegistrationsArgs(entries=registrations(cfg, agents), connection=conn))

        r = run(body, stack=stack)
        entries = r.of_type(ENTRY)
        assert len(entries) == len(cfg.workloads)
        for e in entries:
            assert SpireEntryProvider().check({}, e.inputs).failures == [], (stack, e.name)
