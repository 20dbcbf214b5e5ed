"""Logins and requests per provider operation, against the fakes and the real servers, next to the floor.

Every Keycloak, OpenZiti and SPIRE resource kind goes through its provider's own create, read,
update and delete (the Ziti CA's create verifies it), in this process, which plays the engine's
provider process. Requests are counted on the wire, below the transport's retry layer (a retry
counts), so the figures are what a server sees: HTTP requests, and for SPIRE the Entry API's gRPC
calls on the admin socket. Logins are the token-endpoint and `/authenticate` requests (SPIRE has
none: the admin socket authorizes local callers).

The floor: one login per server for the whole process; one request per operation, except a CA
created with verification, which needs three (POST /cas, GET the verification token, POST
/cas/{id}/verify), and a Ziti signer's create, which needs two: the controller (1.7.2) drops the
tags of a signer's create, so no single request makes a tagged signer (POST, then PATCH the tags;
the provider reads the rename back, docs/providers/ziti.md). The verdict column says whether the
operation is within one request of it.
SPIRE's exec'd-CLI transports (docker/kubectl exec) are counted in bench/spire_bench.py.

    .venv/bin/python bench/requests_per_operation.py [--no-real]

The real servers are the pinned ones of `scripts/servers` (installed with `scripts/servers
install`; started here on loopback, stopped afterwards).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from dynamic_providers._transport import RetryTransport, forget_sessions
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from dynamic_providers.spire import client as spire_client
from dynamic_providers.spire.provider import SpireEntryProvider
from dynamic_providers.ziti import provider as zp
from tests.fakes import ziti as fake_ziti
from tests.fakes.keycloak import KeycloakFake
from tests.fakes.spire_server import FakeSpireServer
from tests.harness.loopback import LoopbackServer
from tests.real._ziti import Admin
from tests.real.test_ziti_resources import CASES

LOGIN_PATHS = ("/authenticate", "/protocol/openid-connect/token")
OWNER = "identity-platform/bench"

SENT: list[tuple[str, str, str]] = []  # (origin, method, path) of every request on the wire


class _Counting(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        SENT.append((f"{request.url.scheme}://{request.url.netloc.decode()}", request.method, request.url.path))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


_PLAIN_INIT = RetryTransport.__init__


def _counting_init(self: RetryTransport, inner: httpx.BaseTransport) -> None:
    _PLAIN_INIT(self, _Counting(inner))


RetryTransport.__init__ = _counting_init  # type: ignore[method-assign]

_PLAIN_CALL = spire_client.GrpcEntryClient._call


def _counting_call(self: spire_client.GrpcEntryClient, method: str, *args: Any) -> Any:
    SENT.append((f"unix:{self.connection.socket_path}", "RPC", f"/{method}"))  # one gRPC call, retries apart
    return _PLAIN_CALL(self, method, *args)


spire_client.GrpcEntryClient._call = _counting_call  # type: ignore[method-assign,assignment]


Row = tuple[str, str, str, int, int, int, str]  # system, kind, operation, requests, logins, floor, what was sent


def route(path: str) -> str:
    """The path without the API prefix, ids and names as {id}."""
    parts = path.removeprefix("/edge/management/v1").removeprefix("/admin").strip("/").split("/")
    return "/" + "/".join("{id}" if any(c.isdigit() or c.isupper() for c in s) else s for s in parts)


def measure(rows: list[Row], system: str, kind: str, op: str, fn: Callable[[], Any], floor: int = 1) -> Any:
    start = len(SENT)
    result = fn()
    sent = SENT[start:]
    calls = [path[1:] if method == "RPC" else f"{method} {route(path)}"
             for _, method, path in sent if not path.endswith(LOGIN_PATHS)]
    rows.append((system, kind, op, len(calls), len(sent) - len(calls), floor, ", ".join(calls)))
    return result


def crud(rows: list[Row], system: str, kind: str, provider: Any, props: dict[str, Any], change: dict[str, Any],
         create_floor: int = 1) -> None:
    inputs = provider.check({}, props).inputs
    created = measure(rows, system, kind, "create", lambda: provider.create(inputs), create_floor)
    outs = dict(created.outs)
    measure(rows, system, kind, "read", lambda: provider.read(created.id, outs))
    news = provider.check(outs, {**props, **change}).inputs
    updated = measure(rows, system, kind, "update", lambda: provider.update(created.id, outs, news))
    measure(rows, system, kind, "delete", lambda: provider.delete(created.id, {**outs, **dict(updated.outs)}))


# --- the systems --------------------------------------------------------------------------------


def keycloak(rows: list[Row], system: str, connection: dict[str, Any]) -> None:
    realm = f"bench-{uuid.uuid4().hex[:6]}"
    crud(rows, system, "realm", KeycloakRealmProvider(),
         {"realm": realm, "connection": connection, "owner": OWNER}, {"display_name": "Bench"})
    holder = KeycloakRealmProvider()  # the clients' realm, made outside the counted operations
    made = holder.create(holder.check({}, {"realm": realm, "connection": connection, "owner": OWNER}).inputs)
    try:
        client = {"realm": realm, "client_id": "bench", "access_type": "PUBLIC", "standard_flow_enabled": True,
                  "pkce_method": "S256", "redirect_uris": ["https://app.bench.internal/cb"],
                  "connection": connection, "owner": OWNER}
        crud(rows, system, "client", KeycloakClientProvider(), client,
             {"redirect_uris": ["https://app.bench.internal/cb", "https://app.bench.internal/cb2"]})
    finally:
        holder.delete(made.id, dict(made.outs))


def ziti(rows: list[Row], system: str, section: dict[str, Any]) -> None:
    connection = {"url": section["url"], "username": section["admin_user"], "password": section["admin_password"],
                  "ca_bundle_pem": section["ca_pem"]}
    admin = Admin(section)  # arranges what the props refer to (a signer for the auth policy); not counted
    try:
        cert, key = fake_ziti.make_ca(f"bench root {uuid.uuid4().hex[:6]}")
        ca = {"name": f"bench-ca-{uuid.uuid4().hex[:6]}", "cert_pem": cert, "ca_key_pem": key,
              "identity_roles": ["bench"], "connection": connection,
              "external_id_claim": {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"}}
        crud(rows, system, "ca (verified)", zp.CertificateAuthorityProvider(),
             {**ca, "owner": fake_ziti.owner("bench-ca", OWNER)}, {"identity_roles": ["bench", "more"]},
             create_floor=3)
        for kind, (provider, make, change, _, _) in sorted(CASES.items()):
            name = f"bench-{kind}-{uuid.uuid4().hex[:6]}"
            props = {**make(admin, name), "connection": connection, "owner": fake_ziti.owner(name, OWNER)}
            crud(rows, system, kind, provider(), props, change, create_floor=2 if provider.tags_after_create else 1)
    finally:
        admin.close()


def spire(rows: list[Row], system: str, section: dict[str, Any]) -> None:
    td = section["trust_domain"]
    connection = {"transport": "grpc", "socket_path": section["admin_socket"], "trust_domain": td,
                  "project": "identity-platform", "stack": "bench"}
    props = {"spiffe_id": f"spiffe://{td}/ns/bench/sa/{uuid.uuid4().hex[:6]}", "parent_id": section["agent_spiffe_id"],
             "selectors": ["unix:uid:1000"], "connection": connection}
    crud(rows, system, "entry", SpireEntryProvider(), props, {"x509_svid_ttl": 900})


# --- where they run -----------------------------------------------------------------------------


Sections = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]  # Keycloak connection, Ziti and SPIRE servers


@contextmanager
def fakes() -> Iterator[Sections]:
    servers: list[LoopbackServer] = []

    def loopback(app: Any, **kw: Any) -> LoopbackServer:
        servers.append(LoopbackServer(app, **kw).start())
        return servers[-1]

    kc = KeycloakFake()
    kc.serve(loopback)
    zf = fake_ziti.ZitiController()
    srv = zf.serve(loopback)
    spire_fake = FakeSpireServer(trust_domain="bench.internal").start()
    spire_section = {"trust_domain": "bench.internal", "admin_socket": spire_fake.socket_path,
                     "agent_spiffe_id": "spiffe://bench.internal/spire/agent/x509pop/node-1"}
    try:
        yield kc.connection(), {"url": srv.url, "admin_user": zf.username, "admin_password": zf.password,
                                "ca_pem": srv.ca_pem}, spire_section
    finally:
        spire_fake.stop()
        for s in servers:
            s.stop()


@contextmanager
def real() -> Iterator[Sections]:
    import servers
    from servers.process import Run

    with tempfile.TemporaryDirectory() as tmp:
        run = Run(root=Path(tmp))
        try:
            servers.start(["keycloak", "ziti", "spire"], run=run)
            kc = run.servers["keycloak"]
            yield ({"url": kc["url"], "username": kc["admin_user"], "password": kc["admin_password"], "timeout": 30},
                   run.servers["ziti"], run.servers["spire"])
        finally:
            run.stop()


def bench(label: str, where: Callable[[], Any]) -> list[Row]:
    rows: list[Row] = []
    forget_sessions()  # a provider process starts without sessions
    SENT.clear()
    with where() as (kc_connection, ziti_section, spire_section):
        keycloak(rows, f"keycloak ({label})", kc_connection)
        ziti(rows, f"ziti ({label})", ziti_section)
        spire(rows, f"spire ({label})", spire_section)
    logins = Counter(origin for origin, _, path in SENT if path.endswith(LOGIN_PATHS))
    print(f"\n== {label}: logins per server in this provider process (floor: 1 each) ==")
    for origin, n in sorted(logins.items()):
        print(f"  {origin:<40} {n:>3}  {'ok' if n <= 1 else 'ABOVE THE FLOOR'}")
    forget_sessions()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-real", action="store_true", help="the fakes only")
    args = parser.parse_args()
    rows = bench("fakes", fakes)
    if not args.no_real:
        rows += bench("real", real)
    print(f"\n{'system':<18} {'kind':<28} {'operation':<9} {'requests':>8} {'logins':>6} {'floor':>5}  verdict")
    for system, kind, op, sent, logins, floor, calls in rows:
        verdict = "at the floor" if sent <= floor else "within one" if sent == floor + 1 else f"+{sent - floor}"
        print(f"{system:<18} {kind:<28} {op:<9} {sent:>8} {logins:>6} {floor:>5}  {verdict:<12}  {calls}")
    over = [r for r in rows if r[3] > r[5] + 1]
    print(f"\n{len(rows) - len(over)} of {len(rows)} operations within one request of the floor; "
          f"logins are counted apart (floor: one per server per process, above).")


if __name__ == "__main__":
    main()
