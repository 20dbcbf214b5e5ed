"""The SPIRE entry client on its own: what goes over each transport, error mapping, retries.

The fake server records every gRPC request and the fake world every docker/kubectl execution,
so these tests look at the requests themselves (masks, flags, DOCKER_HOST), not only results.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from dynamic_providers.spire._proto import types_pb2
from dynamic_providers.spire.client import (
    BatchResult,
    EntryClient,
    ExecEntryClient,
    SpireError,
    go_code_name,
    open_client,
)
from dynamic_providers.spire.models import Entry, EntryFields, parse_connection
from tests.fakes.spire_env import TRANSPORTS, SpireTarget, make_target
from tests.fakes.spire_server import FakeSpireServer, entry

TD = "example.org"
AGENT = f"spiffe://{TD}/spire/agent/x509pop/worker-1"
FIELDS = EntryFields(
    spiffe_id=f"spiffe://{TD}/ns/demo/sa/api",
    parent_id=AGENT,
    selectors=("docker:label:app:api", "unix:uid:1000"),
    dns_names=("api.demo.internal",),
    federates_with=("partner.org",),
)


@pytest.fixture
def server() -> Iterator[FakeSpireServer]:
    with FakeSpireServer(trust_domain=TD, federated_bundles={"partner.org"}) as srv:
        yield srv


@pytest.fixture(params=TRANSPORTS)
def target(
    request: pytest.FixtureRequest, server: FakeSpireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SpireTarget:
    t = make_target(request.param, server, tmp_path / "world")
    for key, value in t.env.items():
        monkeypatch.setenv(key, value)
    return t


def _client(target: SpireTarget) -> Any:
    client = open_client(parse_connection(target.connection))
    return client


class TestBothTransportsAgree:
    def test_same_entry_same_answers(self, target: SpireTarget) -> None:
        with _client(target) as client:
            client.sleep = lambda _s: None
            created = client.create(FIELDS)
            assert created.id == client.entry_id_for(FIELDS)
            assert created.fields() == FIELDS
            assert client.get(created.id) == created
            assert client.get("pulumi.nothing.here") is None
            assert client.delete(created.id) is True
            assert client.delete(created.id) is False

    def test_persistent_outage_is_retried_then_reported(self, target: SpireTarget) -> None:
        target.server.inject("GetEntry", times=10)
        with _client(target) as client:
            client.sleep = lambda _s: None
            with pytest.raises(SpireError) as err:
                client.get("x")
        assert err.value.code == "UNAVAILABLE" and err.value.transient
        assert target.server.calls["GetEntry"] == 4  # the transport's policy: 4 attempts

    def test_rejections_are_not_retried(self, target: SpireTarget) -> None:
        target.server.inject("BatchDeleteEntry", grpc.StatusCode.PERMISSION_DENIED, times=10)
        with _client(target) as client:
            with pytest.raises(SpireError) as err:
                client.delete("x")
        assert err.value.code == "PERMISSION_DENIED" and "PERMISSION_DENIED" in str(err.value)
        assert target.server.calls["BatchDeleteEntry"] == 1


class TestUpdateLeavesWhatWeDoNotOwn:
    def _stored_with_extras(self, server: FakeSpireServer, entry_id: str) -> types_pb2.Entry:
        stored = server.get(entry_id)
        assert stored is not None
        stored.expires_at = 4102444800
        stored.additional_attributes.disable_x509_svid_prefetch = True
        stored.additional_attributes.jwt_svid_include_jti = True
        return stored

    def test_grpc_sends_an_input_mask_of_owned_fields_only(self, server: FakeSpireServer) -> None:
        conn = parse_connection(
            {"transport": "grpc", "socket_path": server.socket_path, "trust_domain": TD, "project": "p", "stack": "s"}
        )
        with open_client(conn) as client:
            created = client.create(FIELDS)
            self._stored_with_extras(server, created.id)
            updated = client.update(created.id, FIELDS.model_copy(update={"hint": "h", "dns_names": ()}))
        method, request = server.requests[-1]
        assert method == "BatchUpdateEntry"
        mask = {f.name for f in types_pb2.EntryMask.DESCRIPTOR.fields if getattr(request.input_mask, f.name)}
        assert mask == {
            "x509_svid_ttl",
            "jwt_svid_ttl",
            "dns_names",
            "federates_with",
            "admin",
            "downstream",
            "hint",
            "store_svid",
        }
        sent = request.entries[0]
        assert not sent.HasField("spiffe_id") and not sent.HasField("parent_id") and not sent.selectors
        assert updated.hint == "h" and updated.dns_names == ()
        assert updated.expires_at == 4102444800
        assert updated.disable_x509_svid_prefetch and updated.jwt_svid_include_jti
        assert updated.revision_number == 1

    @pytest.mark.parametrize("kind", ["docker-exec", "kubectl-exec"])
    def test_cli_carries_unowned_fields_over(
        self, kind: str, server: FakeSpireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        t = make_target(kind, server, tmp_path / "w")
        for key, value in t.env.items():
            monkeypatch.setenv(key, value)
        with _client(t) as client:
            created = client.create(FIELDS)
            self._stored_with_extras(server, created.id)
            updated = client.update(created.id, FIELDS.model_copy(update={"x509_svid_ttl": 60}))
        update_argv = next(e["argv"] for e in t.world.execs() if "update" in e["argv"])
        assert "-entryExpiry=4102444800" in update_argv
        assert "-disableX509SVIDPrefetch" in update_argv and "-jwtSVIDIncludeJTI" in update_argv
        assert updated.x509_svid_ttl == 60 and updated.expires_at == 4102444800
        assert updated.disable_x509_svid_prefetch and updated.jwt_svid_include_jti

    def test_update_of_a_missing_entry_is_not_found(self, target: SpireTarget) -> None:
        with _client(target) as client:
            with pytest.raises(SpireError) as err:
                client.update("pulumi.identity-platform.test.gone", FIELDS)
        assert err.value.code == "NOT_FOUND"


def test_an_already_exists_entry_that_is_not_similar_is_never_adopted() -> None:
    """Adoption needs the same (spiffe_id, parent_id, selectors); otherwise it is an id collision."""
    ours_by_prefix = Entry(id="pulumi.p.s.x", spiffe_id=f"spiffe://{TD}/other", parent_id=AGENT, selectors=("a:b",))

    class Scripted(EntryClient):
        updates: list[str] = []

        def _get(self, entry_id: str) -> Entry | None:
            return ours_by_prefix

        def _create(self, fields: EntryFields, entry_id: str) -> BatchResult:
            return BatchResult("ALREADY_EXISTS", "failed to create entry", ours_by_prefix)

        def _update(self, entry_id: str, fields: EntryFields, current: Entry | None) -> BatchResult:
            self.updates.append(entry_id)
            return BatchResult("OK", "", ours_by_prefix)

        def _delete(self, entry_id: str) -> BatchResult:
            return BatchResult("OK", "")

    conn = parse_connection(
        {"transport": "grpc", "socket_path": "/x.sock", "trust_domain": TD, "project": "p", "stack": "s"}
    )
    with pytest.raises(SpireError, match="collision"):
        Scripted(conn).create(FIELDS)
    assert Scripted.updates == []


@pytest.mark.parametrize("form", ["unix://{}", "unix:{}"])
def test_grpc_target_forms_of_the_socket_path(server: FakeSpireServer, form: str) -> None:
    raw = {"transport": "grpc", "socket_path": form.format(server.socket_path), "trust_domain": TD}
    conn = parse_connection({**raw, "project": "p", "stack": "s"})
    assert conn.socket_path == server.socket_path
    with open_client(conn) as client:
        created = client.create(FIELDS)
    assert server.get(created.id) is not None


def test_id_checked_before_similarity_still_finds_our_entry(server: FakeSpireServer) -> None:
    """A server answering a re-sent create with the bare unique-index ALREADY_EXISTS (no entry)."""
    conn = parse_connection(
        {"transport": "grpc", "socket_path": server.socket_path, "trust_domain": TD, "project": "p", "stack": "s"}
    )
    with open_client(conn) as client:
        first = client.create(FIELDS)
        real_create = client._create

        def id_first(fields: EntryFields, entry_id: str) -> BatchResult:
            if server.get(entry_id) is not None:
                return BatchResult("ALREADY_EXISTS", "UNIQUE constraint failed: registered_entries.entry_id", None)
            return real_create(fields, entry_id)

        client._create = id_first  # type: ignore[method-assign]
        again = client.create(FIELDS.model_copy(update={"hint": "second run"}))
    assert again.id == first.id and list(server.entries) == [first.id]
    stored = server.get(first.id)
    assert stored is not None and stored.hint == "second run"


class TestCliQuirks:
    def test_already_exists_exits_zero_and_echoes_the_request(self, server: FakeSpireServer, tmp_path: Path) -> None:
        """`-output json` reports ALREADY_EXISTS with exit 0 and the *request* as the entry."""
        t = make_target("docker-exec", server, tmp_path / "w")
        server.seed(entry(FIELDS.spiffe_id, AGENT, FIELDS.selectors, entry_id="theirs", x509_svid_ttl=77))
        argv = ["docker", "exec", "spire_spire-server.1.p4k2x9f0d1c3", "/opt/spire/bin/spire-server"]
        argv += ["entry", "create", "-entryID=ours", f"-spiffeID={FIELDS.spiffe_id}", f"-parentID={AGENT}"]
        argv += [f"-selector={s}" for s in FIELDS.selectors] + ["-output", "json"]
        proc = subprocess.run(
            argv, env={**t.env, "DOCKER_HOST": "ssh://root@10.0.0.2"}, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)["results"][0]
        assert result["status"] == {"code": 6, "message": "similar entry already exists"}
        assert result["entry"]["id"] == "ours" and result["entry"]["x509_svid_ttl"] == 0
        assert result["entry"]["created_at"] == "0"  # int64 as a JSON string

        pretty = subprocess.run(
            argv[:-2], env={**t.env, "DOCKER_HOST": "ssh://root@10.0.0.2"}, capture_output=True, text=True, check=False
        )
        assert pretty.returncode == 1
        assert pretty.stderr.endswith("Error: failed to create one or more entries\n")

    def test_client_looks_up_the_similar_entry_instead_of_trusting_the_echo(
        self, server: FakeSpireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        t = make_target("kubectl-exec", server, tmp_path / "w")
        for key, value in t.env.items():
            monkeypatch.setenv(key, value)
        # Same IDs but other selector sets (a superset, a subset) are not similar: only "theirs" is.
        server.seed(entry(FIELDS.spiffe_id, AGENT, [*FIELDS.selectors, "unix:gid:0"], entry_id="pulumi.p.s.superset"))
        server.seed(entry(FIELDS.spiffe_id, AGENT, FIELDS.selectors[:1], entry_id="pulumi.p.s.subset"))
        server.seed(entry(FIELDS.spiffe_id, AGENT, FIELDS.selectors, entry_id="theirs"))
        with _client(t) as client:
            with pytest.raises(SpireError, match="'theirs'") as err:
                client.create(FIELDS)
        assert err.value.entry_id == "theirs"
        show = [e["argv"] for e in t.world.execs() if "show" in e["argv"]]
        assert len(show) == 1
        assert f"-spiffeID={FIELDS.spiffe_id}" in show[0] and f"-parentID={AGENT}" in show[0]
        assert len(server.entries) == 3

    def test_our_entry_is_adopted_only_with_the_exact_selector_set(
        self, server: FakeSpireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        t = make_target("docker-exec", server, tmp_path / "w")
        for key, value in t.env.items():
            monkeypatch.setenv(key, value)
        prefix = parse_connection(t.connection).owner_prefix
        server.seed(entry(FIELDS.spiffe_id, AGENT, [*FIELDS.selectors, "unix:gid:0"], entry_id=prefix + "wider"))
        server.seed(entry(FIELDS.spiffe_id, AGENT, list(reversed(FIELDS.selectors)), entry_id=prefix + "same"))
        with _client(t) as client:
            adopted = client.create(FIELDS)
        assert adopted.id == prefix + "same"
        stored = server.get(prefix + "same")
        assert stored is not None and list(stored.dns_names) == list(FIELDS.dns_names)
        wider = server.get(prefix + "wider")
        assert wider is not None and list(wider.dns_names) == [] and wider.revision_number == 0

    def test_delete_reported_as_a_not_found_error_is_success(self) -> None:
        """Builds that print "Error: ... NotFound" (exit 1) instead of a per-id result."""

        def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
            err = "Error: rpc error: code = NotFound desc = entry not found\n"
            return subprocess.CompletedProcess(argv, 1, "", err)

        conn = parse_connection(
            {"transport": "docker-exec", "container": "spire", "trust_domain": TD, "project": "p", "stack": "s"}
        )
        assert ExecEntryClient(conn, runner=runner).delete("pulumi.p.s.gone") is False

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ({"code": 0, "message": "OK"}, True),
            ({"message": "OK"}, True),  # protojson without unpopulated fields drops code 0
            ({"code": 5, "message": "entry not found"}, False),
        ],
    )
    def test_delete_status_in_json(self, status: dict[str, Any], expected: bool) -> None:
        def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(argv, 0, json.dumps({"results": [{"status": status, "id": "x"}]}), "")

        conn = parse_connection(
            {"transport": "docker-exec", "container": "spire", "trust_domain": TD, "project": "p", "stack": "s"}
        )
        assert ExecEntryClient(conn, runner=runner).delete("x") is expected

    def test_a_result_without_status_is_not_success(self) -> None:
        def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
            return subprocess.CompletedProcess(argv, 0, json.dumps({"results": [{"id": "x"}]}), "")

        conn = parse_connection(
            {"transport": "docker-exec", "container": "spire", "trust_domain": TD, "project": "p", "stack": "s"}
        )
        with pytest.raises(SpireError, match="no status") as err:
            ExecEntryClient(conn, runner=runner).delete("x")
        assert err.value.code == "UNKNOWN"

    @pytest.mark.parametrize(
        ("stderr", "rc", "code"),
        [
            ("Error response from daemon: No such container: spire\n", 1, "UNAVAILABLE"),
            (
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n",
                1,
                "UNAVAILABLE",
            ),
            (
                'OCI runtime exec failed: exec failed: exec: "/opt/spire/bin/spire-server": stat: no such file\n',
                127,
                "UNAVAILABLE",
            ),
            ("Error: error fetching entry ID x: rpc error: code = NotFound desc = entry not found\n", 1, "NOT_FOUND"),
            ("Error: rpc error: code = Unavailable desc = connection error\n", 1, "UNAVAILABLE"),
            ("Error: rpc error: code = PermissionDenied desc = denied\n", 1, "PERMISSION_DENIED"),
            ("flag provided but not defined: -output\nUsage of entry show:\n", 1, "UNAVAILABLE"),
        ],
    )
    def test_only_the_cli_can_say_not_found(self, stderr: str, rc: int, code: str) -> None:
        """An engine or runtime failure must never read as "entry gone" (that would drop state)."""
        calls: list[list[str]] = []

        def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
            calls.append(argv)
            return subprocess.CompletedProcess(argv, rc, "", stderr)

        conn = parse_connection(
            {"transport": "docker-exec", "container": "spire", "trust_domain": TD, "project": "p", "stack": "s"}
        )
        client = ExecEntryClient(conn, runner=runner)
        client.sleep = lambda _s: None
        if code == "NOT_FOUND":
            assert client.get("x") is None
            return
        with pytest.raises(SpireError) as err:
            client.get("x")
        assert err.value.code == code
        assert len(calls) == (4 if code == "UNAVAILABLE" else 1)

    def test_results_json_wins_over_a_nonzero_exit(self) -> None:
        """A build that exits 1 for failed results (as the pretty printer does) reads the same."""
        foreign = {
            "id": "theirs",
            "spiffe_id": {"trust_domain": TD, "path": "/ns/demo/sa/api"},
            "parent_id": {"trust_domain": TD, "path": "/spire/agent/x509pop/worker-1"},
            "selectors": [{"type": t, "value": v} for t, _, v in (s.partition(":") for s in FIELDS.selectors)],
            "revision_number": 3,
        }

        def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
            if "create" in argv:
                out = {"results": [{"status": {"code": 6, "message": "similar entry already exists"}, "entry": {}}]}
                return subprocess.CompletedProcess(
                    argv, 1, json.dumps(out), "Error: failed to create one or more entries\n"
                )
            return subprocess.CompletedProcess(argv, 0, json.dumps({"entries": [foreign]}), "")

        conn = parse_connection(
            {"transport": "docker-exec", "container": "spire", "trust_domain": TD, "project": "p", "stack": "s"}
        )
        with pytest.raises(SpireError, match="'theirs', which this stack does not own") as err:
            ExecEntryClient(conn, runner=runner).create(FIELDS)
        assert err.value.code == "ALREADY_EXISTS" and err.value.entry_id == "theirs"

    def test_missing_cli_binary_is_actionable(self) -> None:
        def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
            raise FileNotFoundError(argv[0])

        conn = parse_connection({"transport": "kubectl-exec", "trust_domain": TD, "project": "p", "stack": "s"})
        with pytest.raises(SpireError, match="'kubectl' is not on PATH") as err:
            ExecEntryClient(conn, runner=runner).get("x")
        assert err.value.code == "FAILED_PRECONDITION"

    def test_exec_timeout_is_transient(self) -> None:
        attempts: list[float] = []

        def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
            attempts.append(kw["timeout"])
            raise subprocess.TimeoutExpired(argv, kw["timeout"])

        conn = parse_connection(
            {
                "transport": "docker-exec",
                "container": "c",
                "trust_domain": TD,
                "project": "p",
                "stack": "s",
                "timeout_seconds": 7,
            }
        )
        client = ExecEntryClient(conn, runner=runner)
        client.sleep = lambda _s: None
        with pytest.raises(SpireError) as err:
            client.delete("x")
        assert err.value.code == "DEADLINE_EXCEEDED" and attempts == [7, 7, 7, 7]

    def test_argv_and_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        seen: list[tuple[list[str], dict[str, str]]] = []

        def runner(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
            seen.append((argv, kw["env"]))
            return subprocess.CompletedProcess(argv, 0, '{"entries":[],"next_page_token":""}\n', "")

        monkeypatch.setenv("DOCKER_HOST", "unix:///somewhere/else.sock")
        monkeypatch.setenv("DOCKER_CONTEXT", "laptop")
        local = parse_connection(
            {
                "transport": "docker-exec",
                "container": "spire-server",
                "socket_path": "/run/spire/server/private/api.sock",
                "trust_domain": TD,
                "project": "p",
                "stack": "s",
            }
        )
        assert ExecEntryClient(local, runner=runner).get("id-1") is None
        argv, env = seen[-1]
        assert argv == [
            "docker",
            "exec",
            "spire-server",
            "/opt/spire/bin/spire-server",
            "entry",
            "show",
            "-entryID=id-1",
            "-output",
            "json",
            "-socketPath",
            "/run/spire/server/private/api.sock",
        ]
        # No docker_host: the environment's engine, as plain `docker` would use it.
        assert env["DOCKER_HOST"] == "unix:///somewhere/else.sock" and env["DOCKER_CONTEXT"] == "laptop"

        remote = parse_connection({**local.model_dump(), "docker_host": "ssh://root@10.0.0.9"})
        ExecEntryClient(remote, runner=runner).get("id-1")
        argv, env = seen[-1]
        assert env["DOCKER_HOST"] == "ssh://root@10.0.0.9" and "DOCKER_CONTEXT" not in env

        kube = parse_connection(
            {
                "transport": "kubectl-exec",
                "kubeconfig": "/home/op/.kube/prod",
                "context": "prod",
                "namespace": "spire",
                "pod": "sts/spire-server",
                "trust_domain": TD,
                "project": "p",
                "stack": "s",
            }
        )
        ExecEntryClient(kube, runner=runner).get("id-2")
        argv, _ = seen[-1]
        assert argv[:11] == [
            "kubectl",
            "exec",
            "--kubeconfig",
            "/home/op/.kube/prod",
            "--context",
            "prod",
            "--namespace",
            "spire",
            "sts/spire-server",
            "--container",
            "spire-server",
        ]
        assert argv[11:13] == ["--", "/opt/spire/bin/spire-server"]

    def test_values_that_look_like_flags_stay_values(self, target: SpireTarget) -> None:
        with _client(target) as client:
            created = client.create(FIELDS.model_copy(update={"hint": "-admin", "selectors": ("unix:-x",)}))
        stored = target.server.get(created.id)
        assert stored is not None and stored.hint == "-admin" and not stored.admin
        assert [(s.type, s.value) for s in stored.selectors] == [("unix", "-x")]


def test_go_code_names() -> None:
    assert go_code_name("NotFound") == "NOT_FOUND"
    assert go_code_name("AlreadyExists") == "ALREADY_EXISTS"
    assert go_code_name("Canceled") == "CANCELLED"
    assert go_code_name("OK") == "OK"
    assert {go_code_name("".join(p.title() for p in c.name.split("_"))) for c in grpc.StatusCode} - {
        "OK",
        "CANCELLED",
    } == {c.name for c in grpc.StatusCode} - {"OK", "CANCELLED"}


class TestAnOkWithoutTheEntry:
    """A write answered OK whose result carries no entry (an `output_mask` of nothing, a proxy that
    trims the answer): the entry was written, so the client reads it back by its id instead of
    failing a step that changed the server."""

    @staticmethod
    def _trimmed(client: Any, name: str) -> None:
        real = getattr(client, name)

        def without_entry(*args: Any) -> BatchResult:
            result = real(*args)
            return BatchResult(result.code, result.message, None) if result.code == "OK" else result

        setattr(client, name, without_entry)

    def test_create_reads_the_entry_back(self, target: SpireTarget) -> None:
        with _client(target) as client:
            client.sleep = lambda _s: None
            self._trimmed(client, "_create")
            created = client.create(FIELDS)
            assert created.id == client.entry_id_for(FIELDS)
            assert created.fields() == FIELDS
        assert list(target.server.entries) == [created.id]

    def test_update_reads_the_entry_back(self, target: SpireTarget) -> None:
        with _client(target) as client:
            client.sleep = lambda _s: None
            created = client.create(FIELDS)
            self._trimmed(client, "_update")
            updated = client.update(created.id, FIELDS.model_copy(update={"hint": "read back"}))
        assert updated.id == created.id and updated.hint == "read back"

    def test_an_ok_create_whose_entry_cannot_be_found_is_an_error(self) -> None:
        class Vanishing(EntryClient):
            def _get(self, entry_id: str) -> Entry | None:
                return None

            def _create(self, fields: EntryFields, entry_id: str) -> BatchResult:
                return BatchResult("OK", "OK")

            def _update(self, entry_id: str, fields: EntryFields, current: Entry | None) -> BatchResult:
                raise AssertionError("no update after a create")

            def _delete(self, entry_id: str) -> BatchResult:
                raise AssertionError("no delete after a create")

        conn = parse_connection(
            {"transport": "grpc", "socket_path": "/x.sock", "trust_domain": TD, "project": "p", "stack": "s"}
        )
        with pytest.raises(SpireError, match="answered OK but") as err:
            Vanishing(conn).create(FIELDS)
        assert err.value.entry_id == Vanishing(conn).entry_id_for(FIELDS)


def test_a_transient_status_of_the_created_entry_is_retried(target: SpireTarget) -> None:
    """A per-entry UNAVAILABLE in a create's batch result is retried as update's is; the derived id
    makes a create that landed anyway be found and adopted, never made twice."""
    with _client(target) as client:
        client.sleep = lambda _s: None
        real, answers = client._create, []

        def busy_once(fields: EntryFields, entry_id: str) -> BatchResult:
            result = real(fields, entry_id)  # applied: the answer is the one lost
            answers.append(result.code)
            return BatchResult("UNAVAILABLE", "datastore busy", None) if len(answers) == 1 else result

        client._create = busy_once
        created = client.create(FIELDS)
    assert answers == ["OK", "ALREADY_EXISTS"]
    assert list(target.server.entries) == [created.id] and created.fields() == FIELDS


@pytest.mark.parametrize(
    "answer",
    [
        {"results": [{"status": {"code": 0}, "entry": {"id": "x", "revision_number": "not a number"}}]},
        {"results": [{"status": {"code": "zero"}}]},
        {"entries": [{"id": "x", "selectors": "not a list"}]},
    ],
)
def test_a_malformed_cli_answer_is_a_spire_error(answer: dict[str, Any]) -> None:
    """JSON that is not the Entry API's shape fails as a SpireError naming the command, never as a
    protobuf or ValueError trace."""

    def runner(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, json.dumps(answer), "")

    conn = parse_connection(
        {"transport": "docker-exec", "container": "spire", "trust_domain": TD, "project": "p", "stack": "s"}
    )
    client = ExecEntryClient(conn, runner=runner)
    with pytest.raises(SpireError, match="spire-server entry") as err:
        if "entries" in answer:
            client.get("x")
        else:
            client.update("x", FIELDS, current=Entry(id="x", **FIELDS.model_dump()))
    assert err.value.code == "UNKNOWN"
