"""The harness itself: the dynamic-provider host drives a provider over gRPC, the loopback
server injects faults and counts requests, and the mock engine sees the real stack files."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError
from tests.harness.loopback import App, LoopbackServer, Response
from tests.harness.mock_engine import SECRET_PREFIX, stack_config, stack_files
from tests.harness.sample_provider import FileDocumentProvider


class TestDynamicHostDrivesEveryMethod:
    def test_full_lifecycle_over_grpc(self, dynamic_host, tmp_path: Path) -> None:
        host: DynamicProviderHost = dynamic_host(FileDocumentProvider())
        props = {"name": "doc", "content": "v1", "directory": str(tmp_path)}

        checked = host.check("doc", {}, props)
        assert checked.failures == []
        id_, outs = host.create("doc", checked.inputs)
        stored = tmp_path / f"{id_}.json"
        assert json.loads(stored.read_text()) == {"name": "doc", "content": "v1"}
        assert outs["doc_id"] == id_

        rid, routs, rinputs = host.read("doc", id_, outs)
        assert rid == id_ and routs["content"] == "v1" and rinputs == props

        assert host.diff("doc", id_, outs, checked.inputs).changes == "DIFF_NONE"
        news = {**props, "content": "v2"}
        diff = host.diff("doc", id_, outs, news)
        assert (diff.changes, diff.replaces) == ("DIFF_SOME", [])
        outs2 = host.update("doc", id_, outs, news)
        assert outs2["content"] == "v2"
        assert json.loads(stored.read_text())["content"] == "v2"

        host.delete("doc", id_, outs2)
        assert not stored.exists()
        gone_id, _, _ = host.read("doc", id_, outs2)
        assert gone_id == ""
        assert host.calls == ["Configure", "Check", "Create", "Read", "Diff", "Diff", "Update", "Delete", "Read"]

    def test_check_failures_come_back_named(self, dynamic_host, tmp_path: Path) -> None:
        host = dynamic_host(FileDocumentProvider())
        checked = host.check("doc", {}, {"name": " ", "directory": str(tmp_path)})
        assert checked.failures == [("name", "name must be a non-empty string")]

    def test_replacement_follows_delete_before_replace(self, dynamic_host, tmp_path: Path) -> None:
        host = dynamic_host(FileDocumentProvider())
        state = host.up("a", {"name": "a", "content": "x", "directory": str(tmp_path)})
        new_state, diff = host.change("a", state, {"name": "b", "content": "x", "directory": str(tmp_path)})
        assert diff.replaces == ["name"] and diff.delete_before_replace
        assert new_state.id != state.id
        assert [p.name for p in tmp_path.iterdir()] == [f"{new_state.id}.json"]

    def test_provider_errors_surface_with_traceback(self, dynamic_host, tmp_path: Path) -> None:
        host = dynamic_host(FileDocumentProvider())
        with pytest.raises(ProviderCallError) as err:
            host.create("doc", {"name": "x", "directory": str(tmp_path / "missing")})
        assert "FileNotFoundError" in err.value.details

    def test_serialized_provider_is_a_module_reference(self, dynamic_host) -> None:
        host = dynamic_host(FileDocumentProvider())
        # By reference (importable module) the blob stays small; by value it would carry bytecode.
        assert host.serialized_size < 400, host.serialized_size


class TestLoopbackServer:
    @staticmethod
    def _app() -> App:
        app = App()
        hits: list[str] = []

        @app.route("POST", "/things/{name}")
        def create(req):
            hits.append(req.params["name"])
            return Response(201, {"name": req.params["name"], "n": len(hits)})

        app.hits = hits  # type: ignore[attr-defined]
        return app

    def _post(self, srv: LoopbackServer, path: str) -> tuple[int, bytes]:
        ctx = ssl.create_default_context(cadata=srv.ca_pem)
        req = urllib.request.Request(srv.url + path, data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_tls_routes_and_counts(self, loopback) -> None:
        srv = loopback(self._app())
        assert self._post(srv, "/things/a")[0] == 201
        assert self._post(srv, "/nowhere")[0] == 404
        assert srv.count("POST", "/things/{name}") == 1
        assert srv.counts()["POST /nowhere"] == 1

    def test_injected_status_skips_handler(self, loopback) -> None:
        app = self._app()
        srv = loopback(app)
        srv.inject("POST", "/things/{name}", status=503, headers={"Retry-After": "1"}, times=2)
        assert [self._post(srv, "/things/a")[0] for _ in range(3)] == [503, 503, 201]
        assert app.hits == ["a"]

    def test_reset_after_runs_handler_then_drops(self, loopback) -> None:
        app = self._app()
        srv = loopback(app)
        srv.inject("POST", "/things/{name}", reset_after=True)
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            self._post(srv, "/things/lost")
        assert app.hits == ["lost"]

    def test_unverified_client_is_refused(self, loopback) -> None:
        srv = loopback(self._app())
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(srv.url + "/things/x", data=b"{}", timeout=5)


class TestMockEngineConfig:
    def test_every_stack_file_is_found(self) -> None:
        assert {"dev", "prod"} <= set(stack_files())

    def test_secure_values_are_replaced_and_marked_secret(self) -> None:
        values, secret_keys = stack_config("prod")
        assert "digitalocean:token" in secret_keys
        assert values["digitalocean:token"].startswith(SECRET_PREFIX)
        assert json.loads(values["identity-platform:nodes"])["manager-1"]["manager"] is True

    def test_project_defaults_apply(self) -> None:
        values, _ = stack_config("dev")
        assert values["identity-platform:region"] == "fra1"
