"""Faults between `SpireEntry` and the REAL SPIRE server: a gRPC fault proxy on its own Unix
socket (tests/harness/fault_proxy.py) forwards the Entry API to the server's admin socket and
aborts a call before the server saw it, or after the server ran it (the answer is lost). The
guarantees of the fake-based fault tests, against SPIRE's own answers (its ALREADY_EXISTS, its
NOT_FOUND on delete): one entry, nothing orphaned, nothing lost, after at most one re-run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from dynamic_providers.spire.provider import SpireEntryProvider
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.harness.fault_proxy import GrpcFaultProxy, with_one_rerun
from tests.real.conftest import RealServers
from tests.real.spire_targets import Admin, emptied

TYPE = "pulumi-python:dynamic/spire:Entry"
SVC = "/spire.api.server.entry.v1.Entry/"


@pytest.fixture(scope="module")
def state(real_servers: RealServers) -> dict[str, Any]:
    return real_servers("spire")


@pytest.fixture
def admin(state: dict[str, Any]) -> Iterator[Admin]:
    with emptied(state) as a:
        yield a


@pytest.fixture
def proxy(state: dict[str, Any]) -> Iterator[GrpcFaultProxy]:
    p = GrpcFaultProxy(state["admin_socket"]).start()
    yield p
    p.stop()


@pytest.fixture
def host(dynamic_host: Callable[..., DynamicProviderHost]) -> DynamicProviderHost:
    return dynamic_host(SpireEntryProvider(), resource_type=TYPE)


def props(state: dict[str, Any], proxy: GrpcFaultProxy, **overrides: Any) -> dict[str, Any]:
    td = state["trust_domain"]
    return {
        "spiffe_id": f"spiffe://{td}/ns/payments/sa/api",
        "parent_id": state["agent_spiffe_id"],
        "selectors": ["unix:uid:1000"],
        "connection": {"transport": "grpc", "socket_path": proxy.socket_path, "trust_domain": td,
                       "project": "identity-platform", "stack": "test"},
        **overrides,
    }



class TestCreate:
    def test_a_lost_create_answer_leaves_one_entry(self, state, admin, proxy, host) -> None:
        proxy.inject(SVC + "BatchCreateEntry", before=False)  # SPIRE created it; the answer is lost
        st = with_one_rerun(lambda: host.up("api", props(state, proxy)))
        assert admin.ids() == [st.id]
        assert any("after the server ran it" in outcome for _, outcome in proxy.calls)

    def test_a_crash_before_the_state_write_is_recovered(self, state, admin, proxy, host) -> None:
        p = props(state, proxy)
        host.up("api", p)  # the engine died before recording this
        st = host.up("api", p)  # the next `pulumi up` creates again
        assert admin.ids() == [st.id]

    def test_unavailable_before_the_server_is_retried(self, state, admin, proxy, host) -> None:
        proxy.inject(SVC + "BatchCreateEntry")
        st = with_one_rerun(lambda: host.up("api", props(state, proxy)))
        assert admin.ids() == [st.id]
        assert host.refresh("api", st) is not None


class TestUpdateAndDelete:
    def test_a_lost_update_answer_is_applied_once(self, state, admin, proxy, host) -> None:
        p = props(state, proxy)
        st = host.up("api", p)
        proxy.inject(SVC + "BatchUpdateEntry", before=False)
        new = {**p, "dns_names": ["api.payments.internal"]}
        with_one_rerun(lambda: host.change("api", st, new))
        stored = admin.get(st.id)
        assert stored is not None and list(stored.dns_names) == ["api.payments.internal"]
        assert admin.ids() == [st.id]

    def test_a_lost_delete_answer_leaves_nothing(self, state, admin, proxy, host) -> None:
        st = host.up("api", props(state, proxy))
        proxy.inject(SVC + "BatchDeleteEntry", before=False)
        with_one_rerun(lambda: host.delete("api", st.id, st.outputs))  # SPIRE answers NOT_FOUND: already done
        assert admin.ids() == []

    def test_a_refused_delete_keeps_the_resource(self, state, admin, proxy, host) -> None:
        st = host.up("api", props(state, proxy))
        proxy.inject(SVC + "BatchDeleteEntry", code=grpc.StatusCode.PERMISSION_DENIED, times=10)
        with pytest.raises(ProviderCallError, match="PERMISSION_DENIED"):
            host.delete("api", st.id, st.outputs)
        assert admin.ids() == [st.id]

    def test_refresh_never_reports_gone_on_an_error(self, state, admin, proxy, host) -> None:
        st = host.up("api", props(state, proxy))
        proxy.inject(SVC + "GetEntry", code=grpc.StatusCode.INTERNAL, times=10)
        proxy.inject(SVC + "ListEntries", code=grpc.StatusCode.INTERNAL, times=10)
        with pytest.raises(ProviderCallError):
            host.refresh("api", st)
        assert admin.ids() == [st.id]
