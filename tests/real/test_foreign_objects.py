"""Ownership on every write, against the REAL servers: an update or a delete that finds a foreign
object at the address in its state is refused, and the object is left as it was.

The provider talks to each server through a recording proxy (tests/harness/fault_proxy.py), whose
log proves that no request that could write reached the server; the object is compared before and
after with the servers' own admin APIs. The cases: a Keycloak realm deleted and re-created under
its name by someone else, or handed to another stack; a Keycloak client handed to another stack,
or re-created under the same id; a Ziti identity and edge router policy re-tagged for another
stack; a SPIRE entry re-created under our id with other identity fields, and an entry of another
stack at the state's id. The fake-based version for every kind: tests/dynamic_providers/
test_foreign_objects.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dynamic_providers.spire._proto import entry_pb2
from dynamic_providers.spire.models import entry_id_for, owner_prefix
from dynamic_providers.spire.provider import DEFAULTS, SpireEntryProvider
from dynamic_providers.ziti.provider import EdgeRouterPolicyProvider, IdentityProvider
from tests.fakes.spire_server import entry
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError, State
from tests.harness.fault_proxy import GrpcFaultProxy, ProxyApp, http_proxy
from tests.harness.loopback import LoopbackServer
from tests.real._ziti import API, Admin, admin_client, connection, owner, unique, ziti_section
from tests.real.conftest import RealServers
from tests.real.keycloak_support import (  # noqa: F401 - fixtures
    OWNER,
    RealKeycloak,
    admin,
    clients,
    kc,
    realm,
    realms,
)
from tests.real.spire_targets import Admin as SpireAdmin
from tests.real.spire_targets import emptied

OTHER = "identity-platform/prod"
Host = Callable[..., DynamicProviderHost]


def refused(call: Callable[[], Any], *fragments: str) -> None:
    with pytest.raises(ProviderCallError) as err:
        call()
    details = err.value.details
    assert "ForeignObjectError" in details and "Nothing was changed" in details, details
    for fragment in fragments:
        assert fragment in details, f"{fragment!r} not in {details}"


def http_writes(app: ProxyApp, *, login: str) -> list[tuple[str, str, int]]:
    """Forwarded requests other than reads and logins."""
    return [f for f in app.forwarded if f[0] != "GET" and not f[1].endswith(login)]


# --- Keycloak ---------------------------------------------------------------------------------------

KC_LOGIN = "/protocol/openid-connect/token"


@pytest.fixture
def kc_proxy(admin: RealKeycloak) -> Iterator[tuple[LoopbackServer, ProxyApp]]:
    srv, app = http_proxy(admin.url, tls=False)
    yield srv, app
    srv.stop()
    app.close()


@pytest.fixture
def realm_name(admin: RealKeycloak) -> Iterator[str]:
    name = f"t-foreign-{uuid.uuid4().hex[:8]}"
    yield name
    admin.delete_realm(name)


class TestKeycloak:
    @pytest.mark.parametrize("case", ["recreated-by-another-stack", "handed-to-another-stack"])
    def test_a_foreign_realm_with_the_states_name_is_refused_untouched(
        self,
        admin: RealKeycloak,
        realms: DynamicProviderHost,
        kc_proxy: tuple[LoopbackServer, ProxyApp],
        realm_name: str,
        case: str,
    ) -> None:
        srv, app = kc_proxy
        props = {"realm": realm_name, "display_name": "Ours", "connection": admin.connection(url=srv.url)}
        state = realms.up("realm", {**props, "owner": OWNER})
        if case == "recreated-by-another-stack":
            admin.delete_realm(realm_name)
            admin.seed_realm(realm_name, {"pulumi.stack": OTHER})
        else:
            admin.call(
                "PUT", f"/admin/realms/{realm_name}", json={"attributes": {"pulumi.stack": OTHER}}, expected=(204,)
            )
        before = admin.realm(realm_name)
        assert before is not None and (before["id"] != state.id) == (case == "recreated-by-another-stack")
        app.forwarded.clear()

        found = f"Keycloak realm {realm_name!r} (id {before['id']})"
        refused(
            lambda: realms.change("realm", state, {**props, "owner": OWNER, "display_name": "Changed"}),
            f"refusing to update {found}",
            f"pulumi.stack attribute is {OTHER!r}",
        )
        refused(lambda: realms.delete("realm", state.id, state.outputs), f"refusing to delete {found}")
        assert admin.realm(realm_name) == before
        assert http_writes(app, login=KC_LOGIN) == []
        assert realms.refresh("realm", state) is None

    @pytest.mark.parametrize("case", ["handed-to-another-stack", "recreated-with-the-same-id"])
    def test_a_foreign_client_at_the_states_id_is_refused_untouched(
        self,
        admin: RealKeycloak,
        clients: DynamicProviderHost,
        kc_proxy: tuple[LoopbackServer, ProxyApp],
        realm: str,
        case: str,
    ) -> None:
        srv, app = kc_proxy
        props = {
            "realm": realm,
            "client_id": "billing",
            "redirect_uris": ["https://billing.acme.net/cb"],
            "connection": admin.connection(url=srv.url),
            "owner": OWNER,
        }
        state = clients.up("billing", props)
        if case == "handed-to-another-stack":
            admin.put_client(realm, state.id, {"attributes": {"pulumi.stack": OTHER}})
        else:
            admin.delete_client(realm, state.id)
            admin.seed_client(realm, {"id": state.id, "clientId": "billing", "attributes": {"pulumi.stack": OTHER}})
        before = admin.client(realm, "billing")
        assert before["id"] == state.id
        app.forwarded.clear()

        found = f"Keycloak client 'billing' in realm {realm!r} (id {state.id})"
        refused(
            lambda: clients.change("billing", state, {**props, "redirect_uris": ["https://billing.acme.net/x"]}),
            f"refusing to update {found}",
            f"pulumi.stack attribute is {OTHER!r}",
        )
        refused(lambda: clients.delete("billing", state.id, state.outputs), f"refusing to delete {found}")
        assert admin.client(realm, "billing") == before
        assert http_writes(app, login=KC_LOGIN) == []
        assert clients.refresh("billing", state) is None


# --- Ziti -------------------------------------------------------------------------------------------

ziti = pytest.fixture(scope="module")(ziti_section)
ziti_admin = pytest.fixture(scope="module")(admin_client)

ZITI_KINDS: dict[str, tuple[Any, Callable[[str], dict[str, Any]], dict[str, Any]]] = {
    "identity": (
        IdentityProvider,
        lambda name: {"name": name, "external_id": f"spiffe://example.org/{name}", "role_attributes": ["a"]},
        {"role_attributes": ["a", "b"]},
    ),
    "edge-router-policy": (
        EdgeRouterPolicyProvider,
        lambda name: {"name": name, "identity_roles": [f"#{name}"], "edge_router_roles": ["#all"]},
        {"identity_roles": ["#someone-else"]},
    ),
}


@pytest.fixture
def ziti_proxy(ziti: dict[str, Any]) -> Iterator[tuple[LoopbackServer, ProxyApp]]:
    srv, app = http_proxy(ziti["url"], ca_pem=ziti["ca_pem"])
    yield srv, app
    srv.stop()
    app.close()


@pytest.mark.parametrize("kind", sorted(ZITI_KINDS))
def test_a_ziti_entity_retagged_for_another_stack_is_refused_untouched(
    ziti: dict[str, Any],
    ziti_admin: Admin,
    ziti_proxy: tuple[LoopbackServer, ProxyApp],
    dynamic_host: Host,
    kind: str,
) -> None:
    provider, make, change = ZITI_KINDS[kind]
    srv, app = ziti_proxy
    host = dynamic_host(provider(), resource_type=f"pulumi-python:dynamic/ziti:{provider.__name__}")
    name = unique(f"foreign-{kind}")
    props = {
        **make(name),
        "connection": connection(ziti, url=srv.url, ca_bundle_pem=srv.ca_pem),
        "owner": owner("ziti-resource"),
    }
    state = host.up("r", props)
    collection = provider.collection
    try:
        ziti_admin.patch(collection, state.id, {"tags": {"pulumi.stack": OTHER, "pulumi.name": "ziti-resource"}})
        before = ziti_admin.get(f"/{collection}/{state.id}")
        app.forwarded.clear()

        found = f"Ziti {provider.label} {name!r} (id {state.id})"
        refused(
            lambda: host.change("r", state, {**props, **change}),
            f"refusing to update {found}",
            f"its tags name stack {OTHER!r}",
        )
        refused(lambda: host.delete("r", state.id, state.outputs), f"refusing to delete {found}")
        assert ziti_admin.get(f"/{collection}/{state.id}") == before
        assert http_writes(app, login=f"{API}/authenticate") == []
        assert host.refresh("r", state) is None
    finally:
        ziti_admin.delete(collection, state.id)


# --- SPIRE ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spire_state(real_servers: RealServers) -> dict[str, Any]:
    return real_servers("spire")


@pytest.fixture
def spire_admin(spire_state: dict[str, Any]) -> Iterator[SpireAdmin]:
    with emptied(spire_state) as a:
        yield a


@pytest.fixture
def grpc_proxy(spire_state: dict[str, Any]) -> Iterator[GrpcFaultProxy]:
    p = GrpcFaultProxy(spire_state["admin_socket"]).start()
    yield p
    p.stop()


WRITES = ("BatchCreateEntry", "BatchUpdateEntry", "BatchDeleteEntry")


class TestSpire:
    @pytest.fixture
    def host(self, dynamic_host: Host) -> DynamicProviderHost:
        return dynamic_host(SpireEntryProvider(), resource_type="pulumi-python:dynamic/spire:Entry")

    @staticmethod
    def props(spire_state: dict[str, Any], proxy: GrpcFaultProxy) -> dict[str, Any]:
        td = spire_state["trust_domain"]
        return {
            "spiffe_id": f"spiffe://{td}/ns/payments/sa/api",
            "parent_id": spire_state["agent_spiffe_id"],
            "selectors": ["unix:uid:1000"],
            "connection": {
                "transport": "grpc",
                "socket_path": proxy.socket_path,
                "trust_domain": td,
                "project": "identity-platform",
                "stack": "test",
            },
        }

    def test_an_entry_recreated_under_our_id_with_other_identity_fields_is_refused(
        self,
        host: DynamicProviderHost,
        spire_state: dict[str, Any],
        spire_admin: SpireAdmin,
        grpc_proxy: GrpcFaultProxy,
    ) -> None:
        props = self.props(spire_state, grpc_proxy)
        state = host.up("api", props)
        td = spire_state["trust_domain"]
        spire_admin.stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=[state.id]), timeout=10)
        made = spire_admin.create(
            entry(f"spiffe://{td}/someone/else", props["parent_id"], ["unix:uid:0"], entry_id=state.id, hint="theirs")
        )
        assert made.status.code == 0, made.status.message
        self.assert_refused_untouched(host, state, props, spire_admin, grpc_proxy, "this stack's prefix")

    def test_another_stacks_entry_at_the_states_id_is_refused(
        self,
        host: DynamicProviderHost,
        spire_state: dict[str, Any],
        spire_admin: SpireAdmin,
        grpc_proxy: GrpcFaultProxy,
    ) -> None:
        props = self.props(spire_state, grpc_proxy)
        theirs = entry_id_for(
            owner_prefix("identity-platform", "prod"), props["spiffe_id"], props["parent_id"], props["selectors"]
        )
        made = spire_admin.create(entry(props["spiffe_id"], props["parent_id"], props["selectors"], entry_id=theirs))
        assert made.status.code == 0, made.status.message
        outputs = {**props, **DEFAULTS, "entry_id": theirs}
        state = State(theirs, props, outputs)  # e.g. a state copied from the prod stack
        self.assert_refused_untouched(host, state, props, spire_admin, grpc_proxy, "stack 'prod'")

    @staticmethod
    def assert_refused_untouched(
        host: DynamicProviderHost,
        state: State,
        props: dict[str, Any],
        spire_admin: SpireAdmin,
        proxy: GrpcFaultProxy,
        holder: str,
    ) -> None:
        before = spire_admin.get(state.id)
        assert before is not None
        proxy.calls.clear()
        refused(
            lambda: host.change("api", state, {**props, "x509_svid_ttl": 600, "hint": "ours"}),
            f"refusing to update SPIRE entry spiffe://{before.spiffe_id.trust_domain}{before.spiffe_id.path}",
            f"(id {state.id})",
            holder,
        )
        refused(lambda: host.delete("api", state.id, state.outputs), "refusing to delete", f"(id {state.id})")
        assert spire_admin.get(state.id) == before
        assert [m for m, _ in proxy.calls if m.rsplit("/", 1)[-1] in WRITES] == []
        assert host.refresh("api", state) is None
