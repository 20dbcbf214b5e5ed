"""`SpireEntry` through the engine's own provider host (`python -m pulumi.dynamic`) against the
REAL SPIRE server (`real_servers("spire")`, the pinned version), over the gRPC admin socket and
through the real `spire-server entry` CLI (docker-exec and kubectl-exec transports via the
`docker` / `kubectl` shims described in `tests/real/spire_targets.py`). The scenarios of
`tests/dynamic_providers/test_spire_provider.py` that a real server can play; assertions read the
server's state with raw Entry API calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dynamic_providers.spire._proto import types_pb2
from dynamic_providers.spire.models import entry_id_for, owner_prefix
from dynamic_providers.spire.provider import SpireEntryProvider
from tests.fakes.spire_server import entry
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.real.conftest import RealServers
from tests.real.spire_targets import TASK, Admin, RealTarget, emptied, federate_with, make_target

TYPE = "pulumi-python:dynamic/spire:Entry"
PREFIX = owner_prefix("identity-platform", "test")
FEDERATED = ("partner.org", "third.org")


@pytest.fixture(scope="module")
def state(real_servers: RealServers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The server, with bundles for the trust domains the scenarios federate with."""
    s = real_servers("spire")
    d = tmp_path_factory.mktemp("bundles")
    for td in FEDERATED:
        federate_with(s, td, d)
    return s


@pytest.fixture
def admin(state: dict[str, Any]) -> Iterator[Admin]:
    with emptied(state) as a:
        yield a


@pytest.fixture(params=["grpc", "docker-exec", "kubectl-exec"])
def target(request: pytest.FixtureRequest, state: dict[str, Any], tmp_path: Path) -> RealTarget:
    return make_target(request.param, state, tmp_path)


@pytest.fixture
def host(dynamic_host: Callable[..., DynamicProviderHost], target: RealTarget) -> DynamicProviderHost:
    return dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=target.env)


def _props(state: dict[str, Any], target: RealTarget, **overrides: Any) -> dict[str, Any]:
    td = state["trust_domain"]
    props: dict[str, Any] = {
        "spiffe_id": f"spiffe://{td}/ns/payments/sa/api",
        "parent_id": state["agent_spiffe_id"],
        "selectors": ["unix:uid:1000", "unix:gid:1000"],  # one type, so store_svid can be set
        "dns_names": ["api.payments.internal"],
        "federates_with": ["partner.org"],
        "connection": target.connection,
    }
    props.update(overrides)
    return props


def _our_id(props: dict[str, Any]) -> str:
    return entry_id_for(PREFIX, props["spiffe_id"], props["parent_id"], props["selectors"])


def _sid(e: types_pb2.Entry) -> str:
    return f"spiffe://{e.spiffe_id.trust_domain}{e.spiffe_id.path}"


class TestLifecycle:
    def test_create_refresh_noop_update_every_field_delete(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        props = _props(state, target)
        st = host.up("api", props)
        assert st.id == _our_id(props) and st.id.startswith(PREFIX)
        stored = admin.get(st.id)
        assert stored is not None and admin.ids() == [st.id]
        assert _sid(stored) == props["spiffe_id"]
        assert sorted(f"{s.type}:{s.value}" for s in stored.selectors) == sorted(props["selectors"])
        assert list(stored.dns_names) == ["api.payments.internal"] and list(stored.federates_with) == ["partner.org"]
        assert (stored.x509_svid_ttl, stored.jwt_svid_ttl, stored.hint) == (0, 0, "")
        assert st.outputs["entry_id"] == st.id and st.outputs["revision_number"] == stored.revision_number == 0
        assert st.outputs["created_at"] == stored.created_at > 0

        # Refresh reads the entry as the real server stores it (its defaults included); the
        # program's inputs, written differently, must then diff as nothing to do: no flap.
        refreshed = host.refresh("api", st)
        assert refreshed is not None and refreshed.outputs == st.outputs
        same = _props(state, target, selectors=list(reversed(props["selectors"])),
                      federates_with=["spiffe://partner.org"], x509_svid_ttl=0, hint=None)
        for base in (st, refreshed):
            checked, diff = host.preview_change("api", base, same)
            assert checked.failures == [] and diff.changes == "DIFF_NONE"

        # Fields this provider does not manage, set by someone else on the server.
        extra = types_pb2.Entry(id=st.id, expires_at=4102444800)
        extra.additional_attributes.disable_x509_svid_prefetch = True
        result = admin.update(extra, types_pb2.EntryMask(expires_at=True, additional_attributes=True))
        assert result.status.code == 0, result.status.message

        changed = _props(state, target, x509_svid_ttl=900, jwt_svid_ttl=300, dns_names=["api.payments.internal", "api"],
                         federates_with=["third.org", "partner.org"], hint="api", admin=True, downstream=True,
                         store_svid=True)
        _, diff = host.preview_change("api", st, changed)
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        st2, _ = host.change("api", st, changed)
        assert st2.id == st.id
        stored = admin.get(st.id)
        assert stored is not None
        assert (stored.x509_svid_ttl, stored.jwt_svid_ttl, stored.hint) == (900, 300, "api")
        assert (stored.admin, stored.downstream, stored.store_svid) == (True, True, True)
        assert sorted(stored.dns_names) == ["api", "api.payments.internal"]
        assert sorted(stored.federates_with) == ["partner.org", "third.org"]
        assert stored.revision_number == st2.outputs["revision_number"] == 2  # ours + the edit above
        assert stored.expires_at == 4102444800, "unowned field kept"
        assert stored.additional_attributes.disable_x509_svid_prefetch is True, "unowned field kept"
        refreshed2 = host.refresh("api", st2)
        assert refreshed2 is not None
        _, diff = host.preview_change("api", refreshed2, changed)
        assert diff.changes == "DIFF_NONE"

        # Back to the defaults: every managed field cleared on the server.
        st3, _ = host.change("api", st2, _props(state, target, dns_names=[], federates_with=[]))
        stored = admin.get(st.id)
        assert stored is not None
        assert (stored.x509_svid_ttl, stored.jwt_svid_ttl, stored.hint, list(stored.dns_names),
                list(stored.federates_with), stored.admin, stored.downstream, stored.store_svid) == (
            0, 0, "", [], [], False, False, False)
        assert stored.expires_at == 4102444800

        host.delete("api", st3.id, st3.outputs)
        assert admin.get(st.id) is None and admin.ids() == []
        host.delete("api", st3.id, st3.outputs)  # already gone: success
        assert host.refresh("api", st3) is None

    def test_only_the_connection_changed_sends_nothing(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        st = host.up("api", _props(state, target))
        revision = admin.get(st.id).revision_number  # type: ignore[union-attr]
        calls = len(target.execs())
        moved = {**target.connection, "timeout_seconds": 45}
        new, diff = host.change("api", st, _props(state, target, connection=moved))
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        assert new.outputs["connection"] == moved and admin.get(st.id).revision_number == revision  # type: ignore[union-attr]
        assert len(target.execs()) == calls

    def test_new_selectors_replace(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        st = host.up("api", _props(state, target))
        new_props = _props(state, target, selectors=["unix:uid:2000"])
        new, diff = host.change("api", st, new_props)
        assert diff.replaces == ["selectors"] and diff.delete_before_replace is False
        assert new.id == _our_id(new_props) != st.id
        assert admin.ids() == [new.id]

    def test_vanished_entry_is_recreated_under_the_same_id(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        st = host.up("api", _props(state, target))
        admin.delete_all()  # deleted by hand
        assert host.refresh("api", st) is None
        new, _ = host.change("api", st, _props(state, target, hint="back"))
        assert new.id == st.id and admin.get(st.id).hint == "back"  # type: ignore[union-attr]


class TestOwnership:
    def test_our_similar_entry_is_adopted(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        props = _props(state, target, x509_svid_ttl=600)
        legacy = PREFIX + "from-an-earlier-run"
        seeded = admin.create(entry(props["spiffe_id"], props["parent_id"], reversed(props["selectors"]),
                                    entry_id=legacy))
        assert seeded.status.code == 0, seeded.status.message
        st = host.up("api", props)
        assert st.id == legacy and admin.ids() == [legacy]
        stored = admin.get(legacy)
        assert stored is not None and stored.x509_svid_ttl == 600 and list(stored.federates_with) == ["partner.org"]

    def test_retried_create_adopts_what_it_made(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        props = _props(state, target)
        host.up("api", props)  # the engine died before recording this
        st = host.up("api", props)  # the next `pulumi up` creates again: ALREADY_EXISTS, ours
        assert admin.ids() == [st.id] == [_our_id(props)]

    def test_a_replacement_made_before_the_delete_keeps_the_entry(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        """`pulumi up --replace` of an entry: the new resource is created first, under the same id;
        it writes the entry (the real server moves its revision on), and the old one's delete leaves it."""
        props = _props(state, target)
        old = host.up("api", props)
        new = host.up("api", props)  # the replacement
        stored = admin.get(old.id)
        assert new.id == old.id and stored is not None
        assert stored.revision_number == new.outputs["revision_number"] > old.outputs["revision_number"]
        host.delete("api", old.id, old.outputs)
        assert admin.ids() == [new.id]
        host.delete("api", new.id, new.outputs)
        assert admin.ids() == []

    @pytest.mark.parametrize("foreign_id", ["4f1c8d2e-controller-manager", owner_prefix("identity-platform",
                                                                                          "staging") + "abc"])
    def test_foreign_similar_entry_is_refused_by_name(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin, foreign_id: str
    ) -> None:
        props = _props(state, target)
        seeded = admin.create(entry(props["spiffe_id"], props["parent_id"], props["selectors"], entry_id=foreign_id,
                                    hint="theirs"))
        assert seeded.status.code == 0, seeded.status.message
        with pytest.raises(ProviderCallError) as err:
            host.up("api", props)
        assert foreign_id in err.value.details and "does not own" in err.value.details
        assert admin.ids() == [foreign_id] and admin.get(foreign_id).hint == "theirs"  # type: ignore[union-attr]

    def test_id_collision_is_reported_without_side_effects(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        props = _props(state, target)
        ours = _our_id(props)
        edited = f"spiffe://{state['trust_domain']}/edited/by/hand"
        seeded = admin.create(entry(edited, props["parent_id"], ["unix:uid:0"], entry_id=ours))
        assert seeded.status.code == 0, seeded.status.message
        with pytest.raises(ProviderCallError) as err:
            host.up("api", props)
        assert "collision" in err.value.details and ours in err.value.details and edited in err.value.details
        assert admin.ids() == [ours] and _sid(admin.get(ours)) == edited  # type: ignore[arg-type]

    def test_server_rejection_is_reported(
        self, host: DynamicProviderHost, target: RealTarget, state: dict[str, Any], admin: Admin
    ) -> None:
        # A trust domain with no bundle on the server passes check (it cannot know) and fails create.
        with pytest.raises(ProviderCallError, match="unable to find federated bundle"):
            host.up("api", _props(state, target, federates_with=["unknown.org"]))
        assert admin.ids() == []


def test_docker_shim_is_what_the_exec_transport_used(
    dynamic_host: Callable[..., DynamicProviderHost], state: dict[str, Any], tmp_path: Path, admin: Admin
) -> None:
    """The exec path really went through `docker ps` + `docker exec <task> spire-server entry ...`."""
    target = make_target("docker-exec", state, tmp_path)
    host = dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=target.env)
    st = host.up("api", _props(state, target))
    calls = target.execs()
    assert calls[0].startswith("ps --filter label=com.docker.swarm.service.name=")
    assert any(c.startswith(f"exec {TASK} /opt/spire/bin/spire-server entry create") for c in calls)
    assert admin.ids() == [st.id]


def test_kubectl_shim_is_what_the_kubectl_transport_used(
    dynamic_host: Callable[..., DynamicProviderHost], state: dict[str, Any], tmp_path: Path, admin: Admin
) -> None:
    target = make_target("kubectl-exec", state, tmp_path)
    host = dynamic_host(SpireEntryProvider(), resource_type=TYPE, env=target.env)
    st = host.up("api", _props(state, target))
    calls = target.execs()
    assert calls and calls[0].startswith("exec --context kind-spire --namespace spire-server spire-server-0 "
                                         "--container spire-server -- /opt/spire/bin/spire-server entry create")
    assert admin.ids() == [st.id]
