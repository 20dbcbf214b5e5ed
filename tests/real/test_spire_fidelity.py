"""Fake fidelity: the Entry API calls and `spire-server entry` commands the provider makes are
replayed against the fakes (`tests/fakes/spire_server.py`, `tests/fakes/spire_cli`) and against the
real server at the pinned version; status codes, messages and response shapes must match.

Generated values (`created_at`, the opaque page token) are blanked; every entry id is
client-chosen, so ids compare as they are. A difference here is fixed in the fake (or, when the
product relied on the fake's behaviour, in the product), never by loosening the comparison.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from dynamic_providers.spire._proto import entry_pb2, entry_pb2_grpc, types_pb2
from tests.fakes.spire_cli import BIN as FAKE_BIN
from tests.fakes.spire_server import FakeSpireServer, entry
from tests.real.conftest import RealServers
from tests.real.spire_targets import emptied, federate_with

FEDERATED = {"partner.org"}
MASK = types_pb2.EntryMask(
    x509_svid_ttl=True, jwt_svid_ttl=True, dns_names=True, federates_with=True, admin=True, downstream=True,
    hint=True, store_svid=True,
)


@pytest.fixture(scope="module")
def real(real_servers: RealServers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    s = real_servers("spire")
    federate_with(s, "partner.org", tmp_path_factory.mktemp("fidelity"))
    return s


@pytest.fixture
def clean(real: dict[str, Any]) -> Iterator[None]:
    with emptied(real):
        yield


@pytest.fixture
def fake(real: dict[str, Any]) -> Iterator[FakeSpireServer]:
    with FakeSpireServer(trust_domain=real["trust_domain"], federated_bundles=FEDERATED) as srv:
        yield srv


def _norm(msg: Message | None) -> Any:
    if msg is None:
        return None
    d = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return _blank(d)


def _blank(value: Any) -> Any:
    if isinstance(value, dict):
        # created_at is a clock reading; a page token is opaque (the real one is the last row's
        # id in the datastore, the fake's an offset): only whether one is there is compared.
        return {k: ("<t>" if k == "created_at" or (k == "next_page_token" and v) else _blank(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return value


Step = Callable[[Any], Any]


def grpc_transcript(socket: str, td: str, agent: str) -> list[tuple[str, Any]]:
    """The provider's Entry API calls (client.GrpcEntryClient) in the situations it handles."""
    out: list[tuple[str, Any]] = []
    sid = f"spiffe://{td}/fidelity/api"
    sels = ["unix:uid:1000", "unix:gid:1000"]
    with grpc.insecure_channel(f"unix:{socket}") as ch:
        stub = entry_pb2_grpc.EntryStub(ch)

        def call(name: str, fn: Callable[[], Message]) -> None:
            try:
                resp = fn()
            except grpc.RpcError as e:
                assert isinstance(e, grpc.Call)
                out.append((name, {"rpc_error": e.code().name, "details": e.details()}))
                return
            out.append((name, _norm(resp)))

        def create(*entries: types_pb2.Entry) -> Message:
            return stub.BatchCreateEntry(entry_pb2.BatchCreateEntryRequest(entries=list(entries)), timeout=10)

        call("create", lambda: create(entry(sid, agent, sels, entry_id="pulumi.fidelity.a", dns_names=["a.internal"],
                                            federates_with=["spiffe://partner.org"], x509_svid_ttl=600)))
        call("create-similar", lambda: create(entry(sid, agent, reversed(sels), entry_id="pulumi.fidelity.b")))
        call("create-retry-same-id", lambda: create(entry(sid, agent, sels, entry_id="pulumi.fidelity.a")))
        call("create-id-collision", lambda: create(entry(f"spiffe://{td}/other", agent, ["unix:uid:1"],
                                                         entry_id="pulumi.fidelity.a")))
        call("create-unknown-bundle", lambda: create(entry(f"spiffe://{td}/fed", agent, ["unix:uid:2"],
                                                           entry_id="pulumi.fidelity.f",
                                                           federates_with=["unknown.org"])))
        call("create-reserved-path", lambda: create(entry(f"spiffe://{td}/spire/x", agent, ["unix:uid:3"])))
        call("create-bad-id", lambda: create(entry(f"spiffe://{td}/bad", agent, ["unix:uid:4"], entry_id="no spaces")))
        call("get", lambda: stub.GetEntry(entry_pb2.GetEntryRequest(id="pulumi.fidelity.a"), timeout=10))
        call("get-missing", lambda: stub.GetEntry(entry_pb2.GetEntryRequest(id="pulumi.fidelity.none"), timeout=10))
        flt = entry_pb2.ListEntriesRequest.Filter(
            by_spiffe_id=entry(sid, agent, sels).spiffe_id,
            by_parent_id=entry(sid, agent, sels).parent_id,
            by_selectors=types_pb2.SelectorMatch(selectors=entry(sid, agent, sels).selectors,
                                                 match=types_pb2.SelectorMatch.MATCH_EXACT),
        )
        call("list-similar", lambda: stub.ListEntries(entry_pb2.ListEntriesRequest(filter=flt, page_size=200),
                                                      timeout=10))
        upd = entry(sid, agent, sels, entry_id="pulumi.fidelity.a", x509_svid_ttl=900, jwt_svid_ttl=300,
                    dns_names=["b.internal"], hint="h", admin=True, store_svid=True)
        upd = types_pb2.Entry(id=upd.id, **{f: getattr(upd, f) for f in
                                             ("x509_svid_ttl", "jwt_svid_ttl", "dns_names", "federates_with", "admin",
                                              "downstream", "hint", "store_svid")})
        call("update-masked", lambda: stub.BatchUpdateEntry(
            entry_pb2.BatchUpdateEntryRequest(entries=[upd], input_mask=MASK), timeout=10))
        unknown = types_pb2.Entry(id="pulumi.fidelity.a", federates_with=["unknown.org"])
        call("update-unknown-bundle", lambda: stub.BatchUpdateEntry(
            entry_pb2.BatchUpdateEntryRequest(entries=[unknown], input_mask=MASK), timeout=10))
        gone = types_pb2.Entry(id="pulumi.fidelity.none", hint="x")
        call("update-missing", lambda: stub.BatchUpdateEntry(
            entry_pb2.BatchUpdateEntryRequest(entries=[gone], input_mask=MASK), timeout=10))
        call("delete", lambda: stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=["pulumi.fidelity.a"]),
                                                     timeout=10))
        call("delete-missing", lambda: stub.BatchDeleteEntry(
            entry_pb2.BatchDeleteEntryRequest(ids=["pulumi.fidelity.a"]), timeout=10))
    return out


def cli_transcript(cli: list[str], socket: str, td: str, agent: str) -> list[tuple[str, Any]]:
    """The provider's `spire-server entry ... -output json` commands (client.ExecEntryClient)."""
    out: list[tuple[str, Any]] = []
    sid = f"spiffe://{td}/fidelity/cli"
    ident = [f"-spiffeID={sid}", f"-parentID={agent}", "-selector=unix:uid:1000", "-selector=unix:gid:1000"]

    def run(name: str, *args: str) -> None:
        done = subprocess.run([*cli, *args, "-output", "json", "-socketPath", socket], capture_output=True, text=True,
                              timeout=60, check=False, env={**os.environ, "SPIRE_FAKE_PYTHON": sys.executable})
        try:
            stdout: Any = _blank(json.loads(done.stdout)) if done.stdout.strip() else ""
        except json.JSONDecodeError:
            stdout = done.stdout
        out.append((name, {"exit": done.returncode, "stdout": stdout, "stderr": done.stderr.strip()}))

    run("create", "entry", "create", "-entryID=pulumi.cli.a", *ident, "-x509SVIDTTL=600", "-jwtSVIDTTL=0",
        "-dns=a.internal", "-federatesWith=spiffe://partner.org")
    run("create-similar", "entry", "create", "-entryID=pulumi.cli.b", *ident, "-x509SVIDTTL=0", "-jwtSVIDTTL=0")
    run("create-id-collision", "entry", "create", "-entryID=pulumi.cli.a", f"-spiffeID=spiffe://{td}/other",
        f"-parentID={agent}", "-selector=unix:uid:1", "-x509SVIDTTL=0", "-jwtSVIDTTL=0")
    run("create-unknown-bundle", "entry", "create", "-entryID=pulumi.cli.f", f"-spiffeID=spiffe://{td}/fed",
        f"-parentID={agent}", "-selector=unix:uid:2", "-federatesWith=spiffe://unknown.org")
    run("show-id", "entry", "show", "-entryID=pulumi.cli.a")
    run("show-missing", "entry", "show", "-entryID=pulumi.cli.none")
    run("show-similar", "entry", "show", f"-spiffeID={sid}", f"-parentID={agent}")
    run("update", "entry", "update", "-entryID=pulumi.cli.a", *ident, "-x509SVIDTTL=900", "-jwtSVIDTTL=300",
        "-dns=b.internal", "-hint=h", "-admin", "-storeSVID", "-entryExpiry=4102444800", "-disableX509SVIDPrefetch")
    run("update-missing", "entry", "update", "-entryID=pulumi.cli.none", *ident, "-x509SVIDTTL=0", "-jwtSVIDTTL=0")
    run("delete", "entry", "delete", "-entryID=pulumi.cli.a")
    run("delete-missing", "entry", "delete", "-entryID=pulumi.cli.a")
    return out


def _compare(fake: list[tuple[str, Any]], real: list[tuple[str, Any]]) -> None:
    assert [n for n, _ in fake] == [n for n, _ in real]
    diffs = [f"{n}:\n  fake: {f}\n  real: {r}" for (n, f), (_, r) in zip(fake, real, strict=True) if f != r]
    assert not diffs, "fake and real server differ:\n" + "\n".join(diffs)


def test_entry_api_calls_match(real: dict[str, Any], fake: FakeSpireServer, clean: None) -> None:
    td, agent = real["trust_domain"], real["agent_spiffe_id"]
    assert fake.socket_path is not None
    _compare(grpc_transcript(fake.socket_path, td, agent), grpc_transcript(real["admin_socket"], td, agent))


def test_cli_commands_match(real: dict[str, Any], fake: FakeSpireServer, clean: None, tmp_path: Path) -> None:
    td, agent = real["trust_domain"], real["agent_spiffe_id"]
    assert fake.socket_path is not None
    fake_cli = [str(FAKE_BIN / "spire-server")]
    real_cli = [f"{real['bin_dir']}/spire-server"]
    _compare(cli_transcript(fake_cli, fake.socket_path, td, agent), cli_transcript(real_cli, real["admin_socket"],
                                                                                       td, agent))
