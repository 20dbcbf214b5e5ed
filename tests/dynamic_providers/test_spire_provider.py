"""`SpireEntry` through the engine's own provider host (`python -m pulumi.dynamic`), for every
transport: the gRPC Entry API on a Unix socket, and the `spire-server` CLI through `docker exec`
(DOCKER_HOST=ssh://..., Swarm service lookup) and `kubectl exec`, all backed by one in-process
fake SPIRE server. Assertions read the fake server's state, not the provider's answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pytest
from pulumi.runtime import rpc

from dynamic_providers.spire.models import entry_id_for, owner_prefix
from dynamic_providers.spire.provider import SpireEntry, SpireEntryProvider
from tests.fakes.spire_env import DOCKER_HOST, KUBE_CONTEXT, SERVICE, TRANSPORTS, SpireTarget, make_target
from tests.fakes.spire_server import FakeSpireServer, entry
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.harness.mock_engine import run

TYPE = "pulumi-python:dynamic/spire:Entry"
TD = "example.org"
AGENT = f"spiffe://{TD}/spire/agent/x509pop/worker-1"
PREFIX = owner_prefix("identity-platform", "test")


@pytest.fixture
def server() -> Iterator[FakeSpireServer]:
    with FakeSpireServer(trust_domain=TD, federated_bundles={"partner.org", "third.org"}) as srv:
        yield srv


@pytest.fixture(params=TRANSPORTS)
def target(request: pytest.FixtureRequest, server: FakeSpireServer, tmp_path: Path) -> SpireTarget:
    return make_target(request.param, server, tmp_path / "world")


@pytest.fixture
def host(dynamic_host: Callable[..., DynamicProviderHost], target: SpireTarget) -> DynamicProviderHost:
    return dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=target.env)


def _props(target: SpireTarget, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "spiffe_id": f"spiffe://{TD}/ns/payments/sa/api",
        "parent_id": AGENT,
        "selectors": ["docker:label:com.docker.swarm.service.name:payments_api", "unix:uid:1000"],
        "dns_names": ["api.payments.internal"],
        "federates_with": ["partner.org"],
        "connection": target.connection,
    }
    props.update(overrides)
    return props


def _our_id(props: dict[str, Any]) -> str:
    return entry_id_for(PREFIX, props["spiffe_id"], props["parent_id"], props["selectors"])


class TestLifecycle:
    def test_create_noop_update_refresh_delete(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        server = target.server
        props = _props(target)

        state = host.up("api", props)
        assert state.id == _our_id(props) and state.id.startswith(PREFIX)
        stored = server.get(state.id)
        assert stored is not None and len(server.entries) == 1
        assert f"spiffe://{stored.spiffe_id.trust_domain}{stored.spiffe_id.path}" == props["spiffe_id"]
        assert sorted(f"{s.type}:{s.value}" for s in stored.selectors) == sorted(props["selectors"])
        assert list(stored.dns_names) == ["api.payments.internal"] and list(stored.federates_with) == ["partner.org"]
        assert state.outputs["entry_id"] == state.id
        assert state.outputs["revision_number"] == 0 and state.outputs["created_at"] == stored.created_at > 0
        assert state.outputs["connection"] == target.connection

        # Fields this provider does not manage, set by someone else on the server.
        stored.expires_at = 4102444800
        stored.additional_attributes.disable_x509_svid_prefetch = True

        # Same entry written differently: reordered lists, scheme on the trust domain. Preview
        # (check + diff) must find nothing to do and must not touch the server.
        before = target.round_trips()
        same = _props(
            target,
            selectors=list(reversed(props["selectors"])),
            federates_with=["spiffe://partner.org"],
            x509_svid_ttl=0,
            hint=None,
        )
        checked, diff = host.preview_change("api", state, same)
        assert checked.failures == [] and diff.changes == "DIFF_NONE"
        assert target.round_trips() == before

        changed = _props(
            target, x509_svid_ttl=900, jwt_svid_ttl=300, dns_names=["api.payments.internal", "api"], hint="api"
        )
        checked, diff = host.preview_change("api", state, changed)
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        assert target.round_trips() == before
        state2, _ = host.change("api", state, changed)
        assert state2.id == state.id
        stored = server.get(state.id)
        assert stored is not None
        assert (stored.x509_svid_ttl, stored.jwt_svid_ttl, stored.hint) == (900, 300, "api")
        assert list(stored.dns_names) == ["api.payments.internal", "api"]
        assert stored.revision_number == 1 and state2.outputs["revision_number"] == 1
        # Not ours, so untouched (gRPC: the input mask; CLI: carried over from a read).
        assert stored.expires_at == 4102444800
        assert stored.additional_attributes.disable_x509_svid_prefetch is True

        refreshed = host.refresh("api", state2)
        assert refreshed is not None and refreshed.outputs == state2.outputs
        assert refreshed.inputs["x509_svid_ttl"] == 900 and refreshed.inputs["connection"] == target.connection

        host.delete("api", state2.id, state2.outputs)
        assert server.entries == {}
        host.delete("api", state2.id, state2.outputs)  # already gone: success
        assert host.refresh("api", state2) is None

    def test_refresh_after_create_keeps_the_programs_list_order(
        self, host: DynamicProviderHost, target: SpireTarget
    ) -> None:
        # SPIRE answers a create or update with the selectors sorted and a read in insertion
        # order (found against the real server, tests/real/test_spire_fidelity.py); the outputs
        # follow the program's order either way, so a refresh right after `up` changes nothing.
        props = _props(target, selectors=["unix:uid:1000", "docker:label:a:b"], dns_names=["b.internal", "a.internal"])
        state = host.up("api", props)
        assert state.outputs["selectors"] == props["selectors"]
        assert target.server.get(state.id).selectors[0].type == "unix"  # type: ignore[union-attr]
        refreshed = host.refresh("api", state)
        assert refreshed is not None and refreshed.outputs == state.outputs
        assert refreshed.inputs["selectors"] == props["selectors"]
        assert refreshed.inputs["dns_names"] == props["dns_names"]

    def test_only_the_connection_changed_updates_without_calling_the_server(
        self, host: DynamicProviderHost, target: SpireTarget
    ) -> None:
        state = host.up("api", _props(target))
        moved = {**target.connection, "timeout_seconds": 45}
        before = target.round_trips()
        new_state, diff = host.change("api", state, _props(target, connection=moved))
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        assert target.round_trips() == before
        assert new_state.outputs["connection"] == moved and new_state.outputs["entry_id"] == state.id

    def test_new_selectors_replace_create_before_delete(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        state = host.up("api", _props(target))
        new_props = _props(target, selectors=["unix:uid:2000"])
        new_state, diff = host.change("api", state, new_props)
        assert diff.replaces == ["selectors"] and diff.delete_before_replace is False
        assert new_state.id == _our_id(new_props) != state.id
        assert list(target.server.entries) == [new_state.id]

    def test_vanished_entry_is_recreated_under_the_same_id_on_update(
        self, host: DynamicProviderHost, target: SpireTarget
    ) -> None:
        state = host.up("api", _props(target))
        target.server.entries.clear()  # deleted by hand, or pruned after expires_at
        new_state, _ = host.change("api", state, _props(target, hint="back"))
        assert new_state.id == state.id
        stored = target.server.get(state.id)
        assert stored is not None and stored.hint == "back"

    def test_expired_entry_reads_as_gone(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        state = host.up("api", _props(target))
        target.server.get(state.id).expires_at = 1  # type: ignore[union-attr]
        assert target.server.prune() == [state.id]
        assert host.refresh("api", state) is None


class TestOwnership:
    def test_our_similar_entry_is_adopted(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        props = _props(target, x509_svid_ttl=600)
        legacy_id = PREFIX + "from-an-earlier-run"
        target.server.seed(entry(props["spiffe_id"], AGENT, reversed(props["selectors"]), entry_id=legacy_id))
        state = host.up("api", props)
        assert state.id == legacy_id
        assert list(target.server.entries) == [legacy_id]
        stored = target.server.get(legacy_id)
        assert stored is not None and stored.x509_svid_ttl == 600 and list(stored.federates_with) == ["partner.org"]

    def test_foreign_similar_entry_is_refused_by_name(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        props = _props(target)
        foreign = target.server.seed(
            entry(props["spiffe_id"], AGENT, props["selectors"], entry_id="4f1c8d2e-controller-manager", hint="theirs")
        )
        with pytest.raises(ProviderCallError) as err:
            host.up("api", props)
        assert "4f1c8d2e-controller-manager" in err.value.details and "does not own" in err.value.details
        assert list(target.server.entries) == [foreign.id] and target.server.get(foreign.id).hint == "theirs"  # type: ignore[union-attr]

    def test_another_stacks_entry_is_foreign(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        props = _props(target)
        other = owner_prefix("identity-platform", "staging") + "abc"
        target.server.seed(entry(props["spiffe_id"], AGENT, props["selectors"], entry_id=other))
        with pytest.raises(ProviderCallError, match="does not own"):
            host.up("api", props)

    def test_id_collision_is_reported_without_side_effects(
        self, host: DynamicProviderHost, target: SpireTarget
    ) -> None:
        props = _props(target)
        ours = _our_id(props)
        target.server.seed(entry(f"spiffe://{TD}/edited/by/hand", AGENT, ["unix:uid:0"], entry_id=ours))
        with pytest.raises(ProviderCallError) as err:
            host.up("api", props)
        assert "collision" in err.value.details and ours in err.value.details
        assert "spiffe://example.org/edited/by/hand" in err.value.details
        assert list(target.server.entries) == [ours]


class TestFaults:
    def test_lost_create_response_leaves_one_entry(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        target.server.inject("BatchCreateEntry", after=True)  # applied, then the answer is lost
        state = host.up("api", _props(target))
        assert list(target.server.entries) == [state.id]

    def test_crash_before_the_state_write_is_recovered(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        props = _props(target)
        host.up("api", props)  # the engine died before recording this
        state = host.up("api", props)  # the next `pulumi up` creates again
        assert list(target.server.entries) == [state.id]

    def test_server_unavailable_then_back(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        target.server.inject("GetEntry", times=1)
        target.server.inject("BatchCreateEntry", times=1)
        state = host.up("api", _props(target))
        assert host.refresh("api", state) is not None

    def test_delete_failure_keeps_the_resource(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        state = host.up("api", _props(target))
        target.server.inject("BatchDeleteEntry", grpc.StatusCode.PERMISSION_DENIED)
        with pytest.raises(ProviderCallError, match="PERMISSION_DENIED"):
            host.delete("api", state.id, state.outputs)
        assert state.id in target.server.entries

    def test_server_rejection_is_reported(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        # A trust domain with no bundle on the server passes check (it cannot know) and fails create.
        with pytest.raises(ProviderCallError, match="unable to find federated bundle"):
            host.up("api", _props(target, federates_with=["unknown.org"]))
        assert target.server.entries == {}


class TestPreview:
    def test_unknown_inputs_are_planned_not_checked(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        state = host.up("api", _props(target))
        before = target.round_trips()
        checked = host.check("api", state.inputs, _props(target, selectors=rpc.UNKNOWN, hint=rpc.UNKNOWN))
        assert checked.failures == []
        diff = host.diff("api", state.id, state.outputs, checked.inputs)
        assert diff.changes == "DIFF_SOME" and diff.replaces == ["selectors"]
        assert target.round_trips() == before

    def test_check_failures_come_back_named(self, host: DynamicProviderHost, target: SpireTarget) -> None:
        checked = host.check("api", {}, _props(target, spiffe_id=f"spiffe://{TD}/spire/x", x509_svid_ttl=-1))
        assert sorted(p for p, _ in checked.failures) == ["spiffe_id", "x509_svid_ttl"]
        assert target.round_trips() == 0


def test_provider_pickles_by_reference(dynamic_host: Callable[..., DynamicProviderHost]) -> None:
    host = dynamic_host(SpireEntryProvider(), resource_type=TYPE)
    assert host.serialized_size < 400, host.serialized_size


class TestExecTransportsReachTheRightPlace:
    @pytest.fixture(params=["docker-exec"])
    def target(self, request: pytest.FixtureRequest, server: FakeSpireServer, tmp_path: Path) -> SpireTarget:
        return make_target(request.param, server, tmp_path / "world")

    def test_docker_host_and_swarm_service(
        self, dynamic_host: Callable[..., DynamicProviderHost], target: SpireTarget
    ) -> None:
        # The operator's shell points elsewhere; the connection's docker_host must win.
        env = {**target.env, "DOCKER_HOST": "unix:///var/run/other.sock", "DOCKER_CONTEXT": "laptop"}
        host = dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=env)
        host.up("api", _props(target))
        execs = target.world.execs("docker")
        assert execs and all(e["DOCKER_HOST"] == DOCKER_HOST for e in execs)
        assert (
            execs[0]["argv"][:2] == ["ps", "--filter"]
            and f"label=com.docker.swarm.service.name={SERVICE}" in (execs[0]["argv"])
        )
        assert execs[1]["argv"][:3] == ["exec", f"{SERVICE}.1.p4k2x9f0d1c3", "/opt/spire/bin/spire-server"]

    def test_named_container_skips_the_lookup(
        self, dynamic_host: Callable[..., DynamicProviderHost], target: SpireTarget
    ) -> None:
        # No docker_host in the connection: the provider's DOCKER_HOST picks the engine.
        connection = {**target.connection, "docker_host": None, "service": None}
        connection["container"] = f"{SERVICE}.1.p4k2x9f0d1c3"
        host = dynamic_host(SpireEntryProvider(), resource_type=TYPE, env={**target.env, "DOCKER_HOST": DOCKER_HOST})
        host.up("api", _props(target, connection=connection))
        execs = target.world.execs("docker")
        assert [e["argv"][0] for e in execs] == ["exec"] and execs[0]["DOCKER_HOST"] == DOCKER_HOST

    def test_unreachable_engine_is_an_error_not_a_missing_entry(
        self, dynamic_host: Callable[..., DynamicProviderHost], target: SpireTarget
    ) -> None:
        host = dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=target.env)
        state = host.up("api", _props(target))
        gone = {**target.connection, "docker_host": "ssh://root@10.9.9.9"}
        outputs = {**state.outputs, "connection": gone}
        with pytest.raises(ProviderCallError, match=re.escape("ssh://root@10.9.9.9")):
            host.read("api", state.id, outputs)
        assert state.id in target.server.entries

    def test_kubectl_context_and_namespace(
        self, dynamic_host: Callable[..., DynamicProviderHost], server: FakeSpireServer, tmp_path: Path
    ) -> None:
        target = make_target("kubectl-exec", server, tmp_path / "kube")
        host = dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=target.env)
        host.up("api", _props(target))
        execs = target.world.execs("kubectl")
        assert execs and all((e["context"], e["namespace"]) == (KUBE_CONTEXT, "spire-server") for e in execs)
        argv = execs[0]["argv"]
        assert argv[0] == "exec" and argv[argv.index("--container") - 1] == "spire-server-0"


class TestSdkStyleConstructor:
    """`SpireEntry(resource_name, *, <issue's inputs>, connection, opts=None)` under the mock engine."""

    def test_inputs_named_as_in_the_issue_and_owner_filled_in(self) -> None:
        connection = {"transport": "grpc", "socket_path": "/run/spire/api.sock", "trust_domain": TD}

        def body() -> None:
            e = SpireEntry(
                "api",
                spiffe_id=f"spiffe://{TD}/ns/a",
                parent_id=AGENT,
                selectors=["unix:uid:0"],
                x509_svid_ttl=600,
                jwt_svid_ttl=300,
                dns_names=["a.internal"],
                federates_with=["partner.org"],
                admin=True,
                downstream=False,
                hint="a",
                store_svid=True,
                connection=connection,
            )
            SpireEntry(
                "from-output",
                spiffe_id=f"spiffe://{TD}/ns/b",
                parent_id=AGENT,
                selectors=["unix:uid:1"],
                connection=pulumi.Output.from_input({**connection, "stack": "explicit"}),
            )
            pulumi.export("entryId", e.entry_id)

        r = run(body, stack="prod")
        api = r.get(TYPE, "api").inputs
        assert {k: api[k] for k in ("x509_svid_ttl", "jwt_svid_ttl", "admin", "store_svid", "hint")} == {
            "x509_svid_ttl": 600,
            "jwt_svid_ttl": 300,
            "admin": True,
            "store_svid": True,
            "hint": "a",
        }
        assert api["connection"] == {**connection, "project": "identity-platform", "stack": "prod"}
        other = r.get(TYPE, "from-output").inputs
        assert other["connection"]["stack"] == "explicit" and other["connection"]["project"] == "identity-platform"
        # Inputs left out are not sent (each would be one more Output per entry); the provider's
        # check fills in their defaults, and what it returns is what the engine stores.
        assert not {"dns_names", "hint", "x509_svid_ttl"} & set(other)
        checked = SpireEntryProvider().check({}, dict(other)).inputs
        assert checked["dns_names"] == [] and checked["hint"] == "" and checked["x509_svid_ttl"] == 0
        # The filled-in connection passes check as it is.
        assert SpireEntryProvider().check({}, dict(api)).failures == []
