"""SpireRegistrations under the mock engine: one entry per configured workload, keyed by name,
parented to its node's agent, with a connection the provider accepts; config mistakes fail at
preview with the config key named."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from components.spire_registrations import SpireRegistrations, registration_connection
from dynamic_providers.spire.provider import check_inputs
from stack_config import ConfigError, SpireTransport, StackConfig, Workload, parse_stack_values
from tests.harness.mock_engine import ProgramRun, Registered, run, stack_config, swarm_stack_files

ENTRY = "pulumi-python:dynamic/spire:Entry"
COMPONENT = "identity-platform:spire:SpireRegistrations"
TD = "zt.acme-identity.net"
AGENTS = {n: f"spiffe://{TD}/spire/agent/x509pop/{n}" for n in ("manager-1", "worker-1", "worker-2")}
CONNECTION = {"transport": "docker-exec", "docker_host": "ssh://root@10.114.0.2", "service": "spire-server"}


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


def _build(workloads: dict[str, Workload], **kwargs: Any) -> ProgramRun:
    def body() -> None:
        reg = SpireRegistrations(
            "spire-registrations",
            workloads=workloads,
            trust_domain=TD,
            agent_spiffe_ids=AGENTS,
            connection=CONNECTION,
            **kwargs,
        )
        pulumi.export("entryIds", reg.entry_ids)
        pulumi.export("spiffeIds", reg.spiffe_ids)

    return run(body, stack="prod")


def _entries(r: ProgramRun) -> dict[str, Registered]:
    return {e.name: e for e in r.of_type(ENTRY)}


@pytest.fixture(scope="module")
def built() -> ProgramRun:
    return _build(_workloads())


class TestEntries:
    def test_one_entry_per_workload_named_by_key(self, built: ProgramRun) -> None:
        component = built.get(COMPONENT, "spire-registrations")
        entries = _entries(built)
        assert set(entries) == {"spire-registrations-entry-payments-api", "spire-registrations-entry-ledger"}
        assert all(e.parent == component.urn and e.custom for e in entries.values())

    def test_fields_come_from_the_workload_and_its_node(self, built: ProgramRun) -> None:
        api = _entries(built)["spire-registrations-entry-payments-api"].inputs
        assert api["spiffe_id"] == f"spiffe://{TD}/ns/payments/sa/api"
        assert api["parent_id"] == AGENTS["worker-1"]
        assert api["selectors"] == ["docker:label:com.docker.swarm.service.name:payments_api"]
        assert api["dns_names"] == ["api.payments.internal"] and api["x509_svid_ttl"] == 900
        ledger = _entries(built)["spire-registrations-entry-ledger"].inputs
        assert ledger["parent_id"] == AGENTS["worker-2"] and ledger["x509_svid_ttl"] == 0

    def test_connection_carries_trust_domain_and_ownership(self, built: ProgramRun) -> None:
        for e in _entries(built).values():
            assert e.inputs["connection"] == {
                **CONNECTION,
                "trust_domain": TD,
                "project": "identity-platform",
                "stack": "prod",
            }

    def test_the_provider_accepts_every_entry(self, built: ProgramRun) -> None:
        for e in _entries(built).values():
            assert check_inputs(e.inputs) == [], e.name

    def test_outputs_keyed_by_workload(self, built: ProgramRun) -> None:
        assert built.exports["spiffeIds"].value == {
            "payments-api": f"spiffe://{TD}/ns/payments/sa/api",
            "ledger": f"spiffe://{TD}/ns/payments/sa/ledger",
        }
        assert set(built.exports["entryIds"].value) == {"payments-api", "ledger"}

    def test_reordering_the_map_changes_nothing(self, built: ProgramRun) -> None:
        reordered = dict(reversed(list(_workloads().items())))
        again = _entries(_build(reordered))
        assert {n: e.inputs for n, e in again.items()} == {n: e.inputs for n, e in _entries(built).items()}

    def test_entries_wait_for_what_the_component_waits_for(self) -> None:
        def body() -> None:
            server = pulumi.CustomResource("test:index:Server", "spire-server-svc", {})
            SpireRegistrations(
                "reg",
                workloads=_workloads(),
                trust_domain=TD,
                agent_spiffe_ids=AGENTS,
                connection=CONNECTION,
                opts=pulumi.ResourceOptions(depends_on=[server]),
            )

        r = run(body, stack="prod")
        server = r.get("test:index:Server", "spire-server-svc")
        assert all(server.urn in e.dependencies for e in r.of_type(ENTRY))


class TestConfigMistakes:
    def test_workload_on_a_node_without_an_agent(self) -> None:
        with pytest.raises(ConfigError, match=r"workloads\.batch\.node: no SPIRE agent runs on 'worker-9'"):
            _build(_workloads(batch={"spiffePath": "/batch", "node": "worker-9", "selectors": ["unix:uid:1"]}))

    def test_two_workloads_for_one_spire_entry(self) -> None:
        twin = {
            "spiffePath": "/ns/payments/sa/api",
            "node": "worker-1",
            "selectors": ["docker:label:com.docker.swarm.service.name:payments_api"],
        }
        with pytest.raises(
            ConfigError,
            match=r"workloads\.payments-api-copy: same spiffePath, node and selectors as workloads\.payments-api;",
        ):
            _build(_workloads(**{"payments-api-copy": twin}))


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
            out.update(registration_connection(cfg, server_node=cfg.manager_node, server_service="spire-server"))

        run(body, stack="prod")
        return out

    def test_prod_default_is_docker_exec_on_the_server_node(self) -> None:
        conn = self._connection(self._config("prod"))
        assert conn == {
            "transport": "docker-exec",
            "docker_host": "ssh://root@10.114.0.2",
            "service": "spire-server",
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
        run(lambda: kube.update(registration_connection(kube_cfg)), stack="prod")
        assert kube["transport"] == "kubectl-exec" and kube["namespace"] == "spire" and "docker_host" not in kube

    @pytest.mark.parametrize("stack", swarm_stack_files())
    def test_every_stack_files_workloads_make_valid_entries(self, stack: str) -> None:
        cfg = self._config(stack)
        agents = {n: f"spiffe://{cfg.spire.trust_domain}/spire/agent/x509pop/{n}" for n in cfg.nodes}
        conn = self._connection(cfg)

        def body() -> None:
            SpireRegistrations(
                "reg",
                workloads=cfg.workloads,
                trust_domain=cfg.spire.trust_domain,
                agent_spiffe_ids=agents,
                connection=conn,
            )

        r = run(body, stack=stack)
        entries = r.of_type(ENTRY)
        assert len(entries) == len(cfg.workloads)
        for e in entries:
            assert check_inputs(e.inputs) == [], (stack, e.name)
