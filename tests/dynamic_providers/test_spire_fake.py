"""The fake SPIRE server and CLI behave like SPIRE (spire.md §1-2), checked with a raw gRPC stub
and the fake binaries, independent of the provider's client."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from dynamic_providers.spire._proto import entry_pb2, entry_pb2_grpc, types_pb2
from tests.fakes.spire_env import DOCKER_HOST, SERVICE, make_target
from tests.fakes.spire_server import FakeSpireServer, entry

TD = "example.org"
AGENT = f"spiffe://{TD}/spire/agent/x509pop/n1"


@pytest.fixture
def server() -> Iterator[FakeSpireServer]:
    with FakeSpireServer(trust_domain=TD, federated_bundles={"partner.org"}) as srv:
        yield srv


@pytest.fixture
def stub(server: FakeSpireServer) -> Iterator[entry_pb2_grpc.EntryStub]:
    with grpc.insecure_channel(f"unix:{server.socket_path}") as channel:
        yield entry_pb2_grpc.EntryStub(channel)


def _create(stub: Any, *entries: types_pb2.Entry) -> list[Any]:
    return list(stub.BatchCreateEntry(entry_pb2.BatchCreateEntryRequest(entries=list(entries))).results)


class TestCreate:
    def test_similar_entry_comes_back_with_already_exists(self, stub: Any) -> None:
        (first,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["unix:uid:0", "unix:gid:0"], x509_svid_ttl=60))
        assert first.status.code == 0 and first.entry.id
        (again,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["unix:gid:0", "unix:uid:0"], entry_id="mine"))
        assert (again.status.code, again.status.message) == (6, "similar entry already exists")
        assert again.entry.id == first.entry.id and again.entry.x509_svid_ttl == 60

    def test_custom_id_collision_has_no_entry(self, stub: Any) -> None:
        _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["unix:uid:0"], entry_id="fixed"))
        (clash,) = _create(stub, entry(f"spiffe://{TD}/b", AGENT, ["unix:uid:0"], entry_id="fixed"))
        assert clash.status.code == 6 and not clash.HasField("entry") and "UNIQUE" in clash.status.message

    @pytest.mark.parametrize(
        ("spiffe_id", "parent_id", "selectors", "message"),
        [
            (f"spiffe://{TD}/spire/x", AGENT, ["a:b"], "reserved namespace"),
            ("spiffe://other.org/a", AGENT, ["a:b"], 'is not a member of trust domain "example.org"'),
            (f"spiffe://{TD}/a", f"spiffe://{TD}", ["a:b"], "path is empty"),
            (f"spiffe://{TD}/a", AGENT, [], "selector list is empty"),
            (f"spiffe://{TD}/a", AGENT, [":b"], "missing selector type"),
        ],
    )
    def test_conversion_errors(
        self, stub: Any, spiffe_id: str, parent_id: str, selectors: list[str], message: str
    ) -> None:
        (result,) = _create(stub, entry(spiffe_id, parent_id, selectors))
        assert result.status.code == 3 and message in result.status.message and not result.HasField("entry")

    def test_entry_id_rules_and_generated_ids(self, stub: Any) -> None:
        (bad,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], entry_id="no spaces"))
        assert bad.status.code == 3 and "invalid characters" in bad.status.message
        (long,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], entry_id="x" * 256))
        assert long.status.code == 3 and "too long" in long.status.message
        (ok,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"]))
        assert len(ok.entry.id) == 36  # a UUID

    def test_federation_needs_a_bundle(self, stub: Any) -> None:
        (missing,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], federates_with=["spiffe://nope.org"]))
        assert missing.status.code == 13 and "unable to find federated bundle" in missing.status.message
        (ok,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], federates_with=["spiffe://partner.org"]))
        assert list(ok.entry.federates_with) == ["partner.org"]  # returned without the scheme


class TestUpdate:
    def test_without_a_mask_every_field_is_replaced(self, stub: Any, server: FakeSpireServer) -> None:
        (r,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], hint="h", expires_at=4102444800))
        stored = server.get(r.entry.id)
        assert stored is not None
        stored.additional_attributes.disable_x509_svid_prefetch = True
        update = entry(f"spiffe://{TD}/a", AGENT, ["a:b"], entry_id=r.entry.id, x509_svid_ttl=5)
        (u,) = stub.BatchUpdateEntry(entry_pb2.BatchUpdateEntryRequest(entries=[update])).results
        assert u.status.code == 0 and u.entry.x509_svid_ttl == 5 and u.entry.revision_number == 1
        assert u.entry.hint == "" and u.entry.expires_at == 0 and not u.entry.HasField("additional_attributes")

    def test_with_a_mask_only_masked_fields_change(self, stub: Any) -> None:
        (r,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], hint="h", expires_at=4102444800))
        req = entry_pb2.BatchUpdateEntryRequest(
            entries=[types_pb2.Entry(id=r.entry.id, x509_svid_ttl=5)],
            input_mask=types_pb2.EntryMask(x509_svid_ttl=True),
        )
        (u,) = stub.BatchUpdateEntry(req).results
        assert (u.entry.x509_svid_ttl, u.entry.hint, u.entry.expires_at) == (5, "h", 4102444800)

    def test_missing_id_is_not_found_and_no_similarity_check(self, stub: Any) -> None:
        req = entry_pb2.BatchUpdateEntryRequest(
            entries=[types_pb2.Entry(id="nope", hint="x")], input_mask=types_pb2.EntryMask(hint=True)
        )
        (u,) = stub.BatchUpdateEntry(req).results
        assert u.status.code == 5 and not u.HasField("entry")
        _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"]))
        (b,) = _create(stub, entry(f"spiffe://{TD}/b", AGENT, ["a:b"]))
        dup = entry(f"spiffe://{TD}/a", AGENT, ["a:b"], entry_id=b.entry.id)
        (u,) = stub.BatchUpdateEntry(entry_pb2.BatchUpdateEntryRequest(entries=[dup])).results
        assert u.status.code == 0  # SPIRE lets an update create a duplicate triple


class TestReadAndDelete:
    def test_get_and_delete_status(self, stub: Any) -> None:
        with pytest.raises(grpc.RpcError) as err:
            stub.GetEntry(entry_pb2.GetEntryRequest(id="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details() == "entry not found"
        with pytest.raises(grpc.RpcError) as err:
            stub.GetEntry(entry_pb2.GetEntryRequest(id=""))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        (d,) = stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=["nope"])).results
        assert (d.status.code, d.status.message, d.id) == (5, "entry not found", "nope")

    def test_output_mask_keeps_the_id(self, stub: Any) -> None:
        (r,) = _create(stub, entry(f"spiffe://{TD}/a", AGENT, ["a:b"], hint="h"))
        got = stub.GetEntry(entry_pb2.GetEntryRequest(id=r.entry.id, output_mask=types_pb2.EntryMask(hint=True)))
        assert got.id == r.entry.id and got.hint == "h" and not got.HasField("spiffe_id") and not got.selectors

    def test_list_pages_and_filters(self, stub: Any) -> None:
        for i in range(5):
            _create(stub, entry(f"spiffe://{TD}/w{i}", AGENT, ["a:b", f"n:{i}"], downstream=i == 0))
        page = stub.ListEntries(entry_pb2.ListEntriesRequest(page_size=2))
        tokens, seen = [], len(page.entries)
        while page.next_page_token:
            tokens.append(page.next_page_token)
            page = stub.ListEntries(entry_pb2.ListEntriesRequest(page_size=2, page_token=page.next_page_token))
            seen += len(page.entries)
        assert seen == 5 and len(tokens) == 3 and len(page.entries) == 0  # the last page is empty

        def count(**flt: Any) -> int:
            return len(
                stub.ListEntries(
                    entry_pb2.ListEntriesRequest(filter=entry_pb2.ListEntriesRequest.Filter(**flt))
                ).entries
            )

        assert count(by_downstream={"value": False}) == 5  # false does not filter
        assert count(by_downstream={"value": True}) == 1
        sel = [types_pb2.Selector(type="a", value="b")]
        assert (
            count(by_selectors=types_pb2.SelectorMatch(selectors=sel, match=types_pb2.SelectorMatch.MATCH_EXACT)) == 0
        )
        assert (
            count(by_selectors=types_pb2.SelectorMatch(selectors=sel, match=types_pb2.SelectorMatch.MATCH_SUPERSET))
            == 5
        )
        with pytest.raises(grpc.RpcError) as err:
            count(by_selectors=types_pb2.SelectorMatch(selectors=[]))
        assert "empty selector set" in err.value.details()


class TestCli:
    def _run(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "exec", f"{SERVICE}.1.p4k2x9f0d1c3", "/opt/spire/bin/spire-server", *args]
        return subprocess.run(
            argv, env={**env, "DOCKER_HOST": DOCKER_HOST}, capture_output=True, text=True, check=False
        )

    def test_update_replaces_fields_left_out(self, server: FakeSpireServer, tmp_path: Path) -> None:
        env = make_target("docker-exec", server, tmp_path / "w").env
        base = ["-spiffeID", f"spiffe://{TD}/a", "-parentID", AGENT, "-selector", "unix:uid:0"]
        created = self._run(
            env, "entry", "create", "-entryID", "e1", "-hint", "h", "-x509SVIDTTL", "60", *base, "-output", "json"
        )
        assert created.returncode == 0, created.stderr
        updated = self._run(env, "entry", "update", "-entryID", "e1", *base, "-output", "json")
        result = json.loads(updated.stdout)["results"][0]
        assert result["entry"]["hint"] == "" and result["entry"]["x509_svid_ttl"] == 0
        assert result["entry"]["revision_number"] == "1"

    def test_errors_and_exit_codes(self, server: FakeSpireServer, tmp_path: Path) -> None:
        env = make_target("docker-exec", server, tmp_path / "w").env
        missing = self._run(env, "entry", "show", "-entryID", "nope", "-output", "json")
        assert missing.returncode == 1 and missing.stdout == ""
        assert (
            missing.stderr == "Error: error fetching entry ID nope: rpc error: code = NotFound desc = entry not found\n"
        )
        no_selector = self._run(env, "entry", "create", "-spiffeID", f"spiffe://{TD}/a", "-parentID", AGENT)
        assert (no_selector.returncode, no_selector.stderr) == (1, "Error: at least one selector is required\n")
        bad_flag = self._run(env, "entry", "show", "-nope")
        assert bad_flag.returncode == 1 and bad_flag.stderr.startswith("flag provided but not defined: -nope\n")
        gone = self._run(env, "entry", "delete", "-entryID", "nope", "-output", "json")
        assert gone.returncode == 0
        assert json.loads(gone.stdout) == {
            "results": [{"status": {"code": 5, "message": "entry not found"}, "id": "nope"}]
        }
