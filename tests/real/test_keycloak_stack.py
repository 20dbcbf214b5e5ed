"""The Keycloak stack's own options and scripts against the real Keycloak and PostgreSQL.

* The dev stack's environment (`components/keycloak_stack.keycloak_env`, read from Pulumi.dev.yaml)
  started the session's Keycloak through the stack's entrypoint wrapper; the Swarm healthcheck's
  probe (`READY_PROBE`) passes against it.
* The prod stack's environment (Pulumi.prod.yaml: public https hostname, `xforwarded` proxy
  headers) starts Keycloak too, and the issuer it writes is the public URL.
* `components/postgres.py`'s backup loop (`pg_dump`) and restore script (`pg_restore`) run against
  the real PostgreSQL holding Keycloak's data, and Keycloak starts on the restored database with
  the realm and client intact (the provider's refresh sees no change).

One Keycloak at a time: the tests that start their own stop the session's first (it is started
again, on the same database and with the same admin password, if a later test asks for it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from components import keycloak_stack, postgres
from components.scripts import script as script_text
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from servers import keycloak as kc_server
from servers.process import Run, free_port, stop_procs
from stack_config import STRUCTURED_KEYS, StackConfig, parse
from tests.harness.dynamic_host import DynamicProviderHost, State
from tests.harness.mock_engine import PROJECT, stack_config
from tests.real.keycloak_support import OWNER, RealKeycloak, admin, kc  # noqa: F401 - fixtures

PG_BACKUP = script_text("postgres-backup.sh")

Host = Callable[..., DynamicProviderHost]


def stack(name: str) -> StackConfig:
    """The validated config of `Pulumi.<name>.yaml`, as the program would load it."""
    values, _ = stack_config(name)
    raw: dict[str, Any] = {}
    for full, value in values.items():
        project, _, key = full.partition(":")
        if project == PROJECT:
            raw[key] = json.loads(value) if key in STRUCTURED_KEYS else value
    return parse(raw)


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def ready_probe(management_url: str, *, retries: int = 5, interval: float = 3.0) -> int:
    """The stack's Swarm healthcheck command (bash `/dev/tcp`), pointed at this management port:
    0 as soon as one run passes; else the last exit status after `retries` runs. Swarm, too, marks
    the task unhealthy only after that many failures in a row (`healthcheck(retries=5)`): a probe
    that lands while Keycloak's readiness check re-runs (e.g. its database check on a loaded
    machine) is not a failed healthcheck."""
    port = management_url.rsplit(":", 1)[1]
    probe = ["/bin/bash", "-c", keycloak_stack.READY_PROBE, "ready", port]
    rc = 1
    for attempt in range(retries):
        if attempt:
            time.sleep(interval)
        rc = subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode
        if rc == 0:
            return rc
    return rc


def json_log_messages(log: str) -> list[str]:
    out = []
    for line in Path(log).read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line)["message"])
    return out


def stop_keycloaks(run: Run) -> None:
    """Stop every Keycloak of the run (one JVM at a time on these machines)."""
    procs = [p for p in run.procs if p.server == "keycloak"]
    stop_procs(procs, timeout=60)
    run.servers.pop("keycloak", None)
    run.save()


def psql(pg: dict[str, Any], sql: str, db: str = "postgres") -> str:
    return subprocess.run(
        [
            f"{pg['bin_dir']}/psql",
            "-h",
            pg["host"],
            "-p",
            str(pg["port"]),
            "-U",
            pg["superuser"],
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atqc",
            sql,
        ],
        env={**os.environ, "PGPASSWORD": pg["password"]},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


class TestDevStack:
    def test_the_dev_stacks_environment_started_keycloak_through_its_wrapper(self, kc: dict[str, Any]) -> None:
        dev = stack("dev")
        assert kc["stack_env"] == keycloak_stack.keycloak_env(dev.keycloak, prod=False)
        # Only what a loopback run must change: database, port, and the published localhost:8080 URL.
        assert set(kc["remapped"]) == {"KC_DB_URL", "KC_HTTP_PORT", "KC_HOSTNAME"}
        assert dev.keycloak.hostname == "localhost" and kc["remapped"]["KC_HOSTNAME"] == kc["url"]
        env = environ(kc["pid"])
        for key, value in {**kc["stack_env"], **kc["remapped"], **kc["local"]}.items():
            assert env.get(key) == value, key
        # The wrapper read both passwords from their secret files into the environment...
        assert env["KC_DB_PASSWORD"] and env["KC_BOOTSTRAP_ADMIN_PASSWORD"] == kc["admin_password"]
        # ... and no password is in an argument list or in the log.
        cmdline = Path(f"/proc/{kc['pid']}/cmdline").read_bytes().decode()
        log = Path(kc["log"]).read_text(errors="replace")
        for secret in (env["KC_DB_PASSWORD"], kc["admin_password"]):
            assert secret not in cmdline and secret not in log

        messages = json_log_messages(kc["log"])  # KC_LOG_CONSOLE_OUTPUT=json
        assert any(m.startswith(f"Keycloak {kc['version']} on JVM") for m in messages)
        assert "Profile prod activated. " in messages  # `start`: production mode, as the stack runs it
        assert not any("differ from what is persisted" in m for m in messages)  # the build matched the stack

        issuer = httpx.get(f"{kc['url']}/realms/master/.well-known/openid-configuration").json()["issuer"]
        assert issuer == f"{kc['url']}/realms/master"
        metrics = httpx.get(f"{kc['management_url']}/metrics")  # KC_METRICS_ENABLED on the management port
        assert metrics.status_code == 200 and "# TYPE" in metrics.text
        assert ready_probe(kc["management_url"]) == 0  # the Swarm healthcheck passes
        closed = f"http://127.0.0.1:{free_port()}"
        assert ready_probe(closed, retries=1) != 0  # and fails where nothing answers


@pytest.fixture
def pg(real_servers: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    return dict(real_servers("postgres"))


class TestBackupAndRestore:
    def test_pg_dump_backup_then_restore_and_keycloak_starts_on_it_with_the_realm(
        self,
        kc: dict[str, Any],
        admin: RealKeycloak,
        pg: dict[str, Any],
        servers_run: Run,
        dynamic_host: Host,
        tmp_path: Path,
    ) -> None:
        realm = f"restored-{int(time.time()) % 10**6}"
        realms = dynamic_host(KeycloakRealmProvider(), resource_type="pulumi-python:dynamic/keycloak:Realm")
        clients = dynamic_host(KeycloakClientProvider(), resource_type="pulumi-python:dynamic/keycloak:Client")
        conn = admin.connection()
        realm_state = realms.up(realm, {"realm": realm, "display_name": "Restored", "connection": conn, "owner": OWNER})
        client_props = {
            "realm": realm,
            "client_id": "svc",
            "access_type": "CONFIDENTIAL",
            "redirect_uris": ["https://svc.acme.net/cb"],
            "audience": "svc",
            "connection": conn,
            "owner": OWNER,
        }
        client_state = clients.up("svc", client_props)

        # The stack's backup loop, against the real pg_dump and PostgreSQL (one iteration, then stopped).
        backup_dir, state_dir = tmp_path / "backup", tmp_path / "state"
        backup_dir.mkdir()
        state_dir.mkdir()
        db = pg["databases"]["keycloak"]
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"{pg['host']}:{pg['port']}:keycloak:{db['user']}:{db['password']}\n")
        passfile.chmod(0o600)
        env = {
            **os.environ,
            "PATH": f"{pg['bin_dir']}:{os.environ['PATH']}",
            "PGHOST": pg["host"],
            "PGPORT": str(pg["port"]),
            "PGDATABASE": "keycloak",
            "PGUSER": db["user"],
            "PGPASSFILE": str(passfile),
            "BACKUP_DIR": str(backup_dir),
            "BACKUP_INTERVAL_SECONDS": "3600",
            "STATE_DIR": str(state_dir),
        }
        env.pop("PGPASSWORD", None)
        loop = subprocess.Popen(
            ["/bin/sh", "-c", PG_BACKUP],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while not (state_dir / "last-success").exists():
                assert loop.poll() is None, loop.stderr.read() if loop.stderr else ""
                assert time.monotonic() < deadline, "the backup loop wrote no dump in 180 s"
                time.sleep(0.5)
        finally:
            os.killpg(loop.pid, signal.SIGTERM)
            out, err = loop.communicate(timeout=30)
        dump = backup_dir / "keycloak.dump"
        assert f"backup: wrote {dump}" in out, err
        assert not list(backup_dir.glob("*.partial"))
        listing = subprocess.run(
            [f"{pg['bin_dir']}/pg_restore", "--list", str(dump)], capture_output=True, text=True, check=True
        ).stdout
        assert "TABLE DATA public realm " in listing and "TABLE DATA public client " in listing

        # One Keycloak at a time: stop the session's before starting one on the restored copy.
        stop_keycloaks(servers_run)

        # Disaster: the database is lost. The stack's restore script (docker-entrypoint-initdb.d, run
        # when PostgreSQL initialises an empty data directory) restores the latest dump into the new,
        # empty `keycloak` database, as the image's entrypoint would with POSTGRES_DB / POSTGRES_USER.
        psql(pg, "DROP DATABASE keycloak")
        psql(pg, f"CREATE DATABASE keycloak OWNER {db['user']}")
        assert psql(pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db="keycloak").strip() == "0"
        renv = {**env, "POSTGRES_DB": "keycloak", "POSTGRES_USER": db["user"], "PGPASSWORD": db["password"]}
        for k in ("PGDATABASE", "PGPASSFILE"):
            renv.pop(k)
        script = tmp_path / "50-restore.sh"
        script.write_text(postgres.RESTORE_SCRIPT)
        script.chmod(0o755)
        done = subprocess.run([str(script)], env=renv, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        assert f"restoreOnFirstStart: restoring {dump}" in done.stdout
        assert realm in psql(pg, "SELECT name FROM realm", db="keycloak").split()

        section = kc_server.start_keycloak(servers_run, pg, name="server-restored")
        try:
            helper = RealKeycloak(section)
            rep = helper.realm(realm)
            assert rep is not None and rep["id"] == realm_state.id and rep["displayName"] == "Restored"
            client = helper.client(realm, "svc")
            assert client["id"] == client_state.id
            assert helper.secret(realm, client["id"]) == client_state.outputs["client_secret"]
            assert [m["name"] for m in client["protocolMappers"]] == ["pulumi-audience"]
            # The provider, pointed at the restored Keycloak, sees the same objects with no change.
            for host, name, state in ((realms, realm, realm_state), (clients, "svc", client_state)):
                moved = State(
                    state.id,
                    {**state.inputs, "connection": helper.connection()},
                    {**state.outputs, "connection": helper.connection()},
                )
                refreshed = host.refresh(name, moved)
                assert refreshed is not None and refreshed.id == state.id
                assert host.preview_change(name, refreshed, moved.inputs)[1].changes == "DIFF_NONE"
            helper.delete_realm(realm)
        finally:
            stop_keycloaks(servers_run)


class TestProdStack:
    def test_the_prod_stacks_environment_starts_keycloak_and_issues_for_the_public_hostname(
        self, pg: dict[str, Any], servers_run: Run, dynamic_host: Host
    ) -> None:
        prod = stack("prod")
        stop_keycloaks(servers_run)
        section = kc_server.start_keycloak(servers_run, pg, settings=prod.keycloak, prod=True, name="server-prod")
        try:
            assert section["stack_env"] == keycloak_stack.keycloak_env(prod.keycloak, prod=True)
            assert section["stack_env"]["KC_PROXY_HEADERS"] == "xforwarded"
            assert set(section["remapped"]) == {"KC_DB_URL", "KC_HTTP_PORT"}  # hostname and proxy kept
            public = f"https://{prod.keycloak.hostname}"
            env = environ(section["pid"])
            assert env["KC_HOSTNAME"] == public and env["KC_PROXY_HEADERS"] == "xforwarded"
            # Reached over loopback, as Caddy reaches it: the issuer and the front channel are the
            # public hostname; back-channel endpoints follow the request (KC_HOSTNAME_BACKCHANNEL_DYNAMIC),
            # and with KC_PROXY_HEADERS=xforwarded the request is what the proxy's headers say.
            oidc = "realms/master/protocol/openid-connect"
            url = f"{section['url']}/realms/master/.well-known/openid-configuration"
            direct = httpx.get(url).json()
            proxied = httpx.get(
                url,
                headers={
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "proxy.example.org",
                    "X-Forwarded-Port": "8443",
                },
            ).json()
            for disc in (direct, proxied):
                assert disc["issuer"] == f"{public}/realms/master"
                assert disc["authorization_endpoint"] == f"{public}/{oidc}/auth"
            assert direct["token_endpoint"] == f"{section['url']}/{oidc}/token"
            assert proxied["token_endpoint"] == f"https://proxy.example.org:8443/{oidc}/token"  # headers honoured
            assert ready_probe(section["management_url"]) == 0

            helper = RealKeycloak(section)
            realms = dynamic_host(KeycloakRealmProvider(), resource_type="pulumi-python:dynamic/keycloak:Realm")
            name = f"prod-{int(time.time()) % 10**6}"
            try:
                state = realms.up(name, {"realm": name, "connection": helper.connection(), "owner": OWNER})
                assert state.outputs["issuer_url"] == f"{public}/realms/{name}"
                # JWKS is a back-channel endpoint: with KC_HOSTNAME_BACKCHANNEL_DYNAMIC (the stack's
                # setting) it follows the URL the provider used, here loopback; the issuer never does.
                assert state.outputs["jwks_url"] == f"{section['url']}/realms/{name}/protocol/openid-connect/certs"
            finally:
                helper.delete_realm(name)
        finally:
            stop_keycloaks(servers_run)
