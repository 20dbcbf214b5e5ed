"""KeycloakStack: production-mode Keycloak on PostgreSQL, credentials only through Swarm secret
files (the entrypoint wrapper and the readiness probe are executed for real with bash), Caddy in
prod and a published port in dev."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import keycloak_stack
from components.keycloak_stack import ENTRYPOINT_WRAPPER, READY_PROBE
from tests.components._platform import SECRET, attached_networks, platform, secret_payload, services, spec
from tests.harness.mock_engine import ProgramRun


@pytest.fixture(scope="module", params=["dev", "prod"])
def built(request: pytest.FixtureRequest) -> tuple[ProgramRun, dict[str, Any]]:
    return platform(request.param)


class TestKeycloakService:
    def test_production_mode_with_postgres(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        cs = spec(services(r)["keycloak"])
        assert cs["image"].startswith("quay.io/keycloak/keycloak:26.")
        assert cs["args"] == ["start"], "production mode, not start-dev"
        env = cs["env"]
        assert env["KC_DB"] == "postgres"
        assert env["KC_DB_URL"] == "jdbc:postgresql://keycloak-postgres:5432/keycloak"
        assert env["KC_HTTP_ENABLED"] == "true" and env["KC_HEALTH_ENABLED"] == "true"
        assert env["KC_METRICS_ENABLED"] == "true"
        assert not {"KC_DB_PASSWORD", "KC_BOOTSTRAP_ADMIN_PASSWORD", "KEYCLOAK_ADMIN_PASSWORD"} & set(env)
        if r.stack == "prod":
            assert env["KC_HOSTNAME"] == "https://auth.zt.acme-identity.net"
            assert env["KC_PROXY_HEADERS"] == "xforwarded"
        else:
            assert env["KC_HOSTNAME"] == "http://localhost:8080"
            assert "KC_PROXY_HEADERS" not in env, "no proxy in dev: forwarded headers would be spoofable"

    def test_health_on_the_management_port(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        hc = spec(services(r)["keycloak"])["healthcheck"]
        assert hc["tests"] == ["CMD", "/bin/bash", "-c", READY_PROBE, "ready", "9000"]
        # Keycloak serves /health on its management interface, port 9000 unless KC_HTTP_MANAGEMENT_PORT says otherwise.
        assert spec(services(r)["keycloak"])["env"].get("KC_HTTP_MANAGEMENT_PORT", "9000") == "9000"
        assert "/health/ready" in READY_PROBE

    def test_the_wrapper_reads_the_mounted_secrets(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        cs = spec(services(r)["keycloak"])
        files = {s["fileName"] for s in cs["secrets"]}
        script = cs["commands"][2]
        for f in files:
            assert f"/run/secrets/{f}" in script
        assert all(s["fileUid"] == "1000" and s["fileMode"] == 0o400 for s in cs["secrets"])

    def test_prod_is_behind_caddy_and_dev_publishes_a_port(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        svc = services(r)["keycloak"]
        labels = {lbl["label"]: lbl["value"] for lbl in svc.inputs.get("labels") or []}
        if r.stack == "prod":
            assert labels == {"caddy": "auth.zt.acme-identity.net", "caddy.reverse_proxy": "{{upstreams 8080}}"}
            assert "caddy_caddy-id" in attached_networks(r, svc)
            assert not svc.inputs.get("endpointSpec")
        else:
            assert not labels
            (port,) = svc.inputs["endpointSpec"]["ports"]
            assert (port["targetPort"], port["publishedPort"]) == (8080, 8080)

    def test_urls_and_credentials(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, objs = built
        kc = objs["keycloak"]
        assert kc.admin_user == "admin"
        assert kc.internal_url == "http://keycloak:8080"
        assert r.exports["keycloak.admin_password"].secret
        assert r.exports["keycloak.url"].value == ("https://auth.zt.acme-identity.net" if r.stack == "prod"
                                                    else "http://localhost:8080")  # fmt: skip
        admin = next(s for s in r.of_type(SECRET) if s.name == "keycloak-admin-password")
        assert secret_payload(admin) == r.exports["keycloak.admin_password"].value


class TestPostgresService:
    def test_password_file_and_placement(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        cs = spec(services(r)["keycloak-postgres"])
        (secret,) = cs["secrets"]
        assert cs["env"]["POSTGRES_PASSWORD_FILE"] == f"/run/secrets/{secret['fileName']}"
        assert (secret["fileUid"], secret["fileMode"]) == ("999", 0o400)
        assert cs["healthcheck"]["tests"][:2] == ["CMD", "pg_isready"]
        assert cs["image"].startswith("docker.io/library/postgres:")
        (mount,) = cs["mounts"]
        assert mount["target"] == "/var/lib/postgresql/data" and mount["type"] == "volume"

    def test_keycloak_and_postgres_share_one_generated_password(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        kc = {s["fileName"]: s["secretId"] for s in spec(services(r)["keycloak"])["secrets"]}
        (pg,) = spec(services(r)["keycloak-postgres"])["secrets"]
        assert kc["keycloak-db-password"] == pg["secretId"]


class TestWrapperRuns:
    """ENTRYPOINT_WRAPPER executed by bash, with the secret directory and kc.sh swapped for test doubles."""

    @staticmethod
    def wrapper(tmp_path: Path) -> str:
        kc = tmp_path / "kc.sh"
        kc.write_text(
            '#!/bin/bash\necho "args=$*"\necho "db=$KC_DB_PASSWORD"\necho "admin=$KC_BOOTSTRAP_ADMIN_PASSWORD"\n'
        )
        kc.chmod(0o755)
        return ENTRYPOINT_WRAPPER.replace("/run/secrets", str(tmp_path)).replace("/opt/keycloak/bin/kc.sh", str(kc))

    def test_exports_both_passwords_and_passes_the_arguments(self, tmp_path: Path) -> None:
        (tmp_path / keycloak_stack.DB_PASSWORD_FILE).write_text("db-pw")
        (tmp_path / keycloak_stack.ADMIN_PASSWORD_FILE).write_text("admin-pw")
        out = subprocess.run(
            ["bash", "-c", self.wrapper(tmp_path), "kc.sh", "start"], capture_output=True, text=True, check=True
        )
        assert out.stdout.splitlines() == ["args=start", "db=db-pw", "admin=admin-pw"]

    def test_a_missing_secret_stops_the_start(self, tmp_path: Path) -> None:
        (tmp_path / keycloak_stack.DB_PASSWORD_FILE).write_text("db-pw")
        out = subprocess.run(["bash", "-c", self.wrapper(tmp_path), "kc.sh", "start"], capture_output=True, text=True)
        assert out.returncode != 0 and "args=" not in out.stdout


class _Health(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # what Keycloak answers a 1.1 request with
    status = 200

    def do_GET(self) -> None:
        code = 200 if self.path == "/health/ready" and type(self).status == 200 else 503
        body = b'{"status": "UP"}' if code == 200 else b'{"status": "DOWN"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[int, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], handler
    srv.shutdown()


class TestReadinessProbeRuns:
    def probe(self, port: int) -> int:
        return subprocess.run(["bash", "-c", READY_PROBE, "ready", str(port)], timeout=10, check=False).returncode

    def test_ready_is_healthy(self, health_server: tuple[int, type[_Health]]) -> None:
        port, _ = health_server
        assert self.probe(port) == 0

    def test_not_ready_is_unhealthy(self, health_server: tuple[int, type[_Health]]) -> None:
        port, handler = health_server
        handler.status = 503
        assert self.probe(port) != 0

    def test_nothing_listening_is_unhealthy(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        assert self.probe(port) != 0
