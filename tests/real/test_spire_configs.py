"""The SPIRE configs the stacks render meet the real `spire-server` / `spire-agent` (pinned in
`stack_config/versions.py`): they validate (dev and prod stack files), the dev ones start and the
agent attests with x509pop; an SVID fetched from the agent chains to the program's root CA; the
stack's SQLite backup script runs against the live datastore and a server starts from the
restored copy with its entries; the PostgreSQL variant's connection string (password only in
the libpq password file) works against the real PostgreSQL.

The text checked is the text the program ships: the Swarm config `spire-server-conf` and the
agents' uploaded `agent.conf` from `__main__.py` under the mock engine equal the models
`servers/spire.py` renders (before remapping container paths and ports onto this machine).
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from components import spire_stack
from components.docker_helpers import SECRETS_DIR
from components.scripts import script as script_text
from servers import spire
from servers.process import Run
from tests.conftest import program_run
from tests.real.conftest import RealServers

SQLITE_BACKUP = script_text("spire_sqlite_backup.py")
SQLITE_RESTORE = script_text("spire-sqlite-restore.sh")

CONFIG = "docker:index/serviceConfig:ServiceConfig"
CONTAINER = "docker:index/container:Container"


def _cli(bins: Path, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / tool), *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def bins() -> Path:
    return spire.bin_dir()


@pytest.mark.parametrize("stack", ["dev", "prod"])
class TestRenderedConfigs:
    def test_the_program_ships_what_servers_spire_renders(self, stack: str) -> None:
        r = program_run(stack, False)
        config = spire.stack_config(stack)
        shipped = r.get(CONFIG, "spire-server-conf").inputs["dataRaw"]
        assert shipped == spire_stack.build_server_conf(config.spire, spire_stack.sqlite_datastore()).render()
        agents = [c for c in r.of_type(CONTAINER) if c.inputs.get("name") == "spire-agent"]
        assert len(agents) == len(config.nodes)
        for agent in agents:
            uploads = agent.inputs["uploads"]
            uploads = uploads.get("value", uploads) if isinstance(uploads, dict) else uploads
            conf = next(u for u in uploads if u["file"].endswith("/agent.conf"))
            assert conf["content"] == spire_stack.build_agent_conf(config.spire.trust_domain).render()

    def test_server_and_agent_configs_validate(self, stack: str, bins: Path, tmp_path: Path) -> None:
        layout = spire.prepare(tmp_path / stack, stack)
        done = _cli(bins, "spire-server", "validate", "-config", str(layout.server_conf))
        assert done.returncode == 0, done.stderr
        assert "SPIRE server configuration file is valid." in done.stdout
        done = _cli(bins, "spire-agent", "validate", "-config", str(layout.agent_conf))
        assert done.returncode == 0, done.stderr
        assert "SPIRE agent configuration file is valid." in done.stdout

    def test_validate_is_not_a_rubber_stamp(self, stack: str, bins: Path, tmp_path: Path) -> None:
        """What `validate` does check (it does not catch everything: a wrong datastore type, a
        missing UpstreamAuthority key or node certificate, or the agent_path_template without a
        leading slash all pass it, which is why the dev configs are also started below)."""
        layout = spire.prepare(tmp_path / stack, stack)
        server_doc, agent_doc = json.loads(layout.server_conf.read_text()), json.loads(layout.agent_conf.read_text())
        no_bundle = json.loads(json.dumps(server_doc))
        no_bundle["plugins"]["NodeAttestor"][0]["x509pop"]["plugin_data"]["ca_bundle_path"] = "/nonexistent.pem"
        unknown = {**server_doc, "server": {**server_doc["server"], "no_such_setting": 1}}
        broken = {"ca_bundle": no_bundle, "unknown_key": unknown}
        for name, doc in broken.items():
            bad = layout.server_conf.with_name(f"{name}.conf")
            bad.write_text(json.dumps(doc))
            done = _cli(bins, "spire-server", "validate", "-config", str(bad))
            assert done.returncode == 1 and "file is valid" not in done.stdout, (name, done.stdout)
        bad = layout.agent_conf.with_name("broken.conf")
        bad.write_text(json.dumps({**agent_doc, "agent": {**agent_doc["agent"], "no_such_setting": 1}}))
        done = _cli(bins, "spire-agent", "validate", "-config", str(bad))
        assert done.returncode == 1 and "unknown configuration" in done.stderr, done.stderr


class TestDevStackStarts:
    def test_server_ready_and_agent_attested_by_x509pop(self, real_servers: RealServers) -> None:
        s = real_servers("spire")
        bins = Path(s["bin_dir"])
        assert s["agent_spiffe_id"] == f"spiffe://{s['trust_domain']}/spire/agent/x509pop/local"
        done = _cli(bins, "spire-server", "agent", "list", "-socketPath", s["admin_socket"])
        assert done.returncode == 0, done.stderr
        assert s["agent_spiffe_id"] in done.stdout and "x509pop" in done.stdout
        assert _cli(bins, "spire-agent", "healthcheck", "-socketPath", s["agent_socket"]).returncode == 0
        # The server's trust bundle is the program's root CA (UpstreamAuthority "disk").
        root = Path(s["x509pop"]["root_cert"]).read_text().strip()
        assert root in s["bundle_pem"]

    def test_a_workload_svid_chains_to_the_root(self, real_servers: RealServers, tmp_path: Path) -> None:
        s = real_servers("spire")
        bins = Path(s["bin_dir"])
        spiffe_id = f"spiffe://{s['trust_domain']}/test/svid-chain"
        done = _cli(bins, "spire-server", "entry", "create", "-socketPath", s["admin_socket"], "-parentID",
                    s["agent_spiffe_id"], "-spiffeID", spiffe_id, "-selector", f"unix:uid:{os.getuid()}",
                    "-entryID", "test.svid-chain")
        assert done.returncode == 0, done.stderr
        try:
            deadline = time.monotonic() + 60  # the agent syncs its entries every few seconds
            while True:
                done = _cli(bins, "spire-agent", "api", "fetch", "x509", "-socketPath", s["agent_socket"],
                            "-write", str(tmp_path), timeout=30)
                if done.returncode == 0 and spiffe_id in done.stdout:
                    break
                assert time.monotonic() < deadline, f"no SVID for {spiffe_id}: {done.stdout}{done.stderr}"
                time.sleep(1)
            svid = x509.load_pem_x509_certificates((tmp_path / "svid.0.pem").read_bytes())
            bundle = x509.load_pem_x509_certificates((tmp_path / "bundle.0.pem").read_bytes())
            root = x509.load_pem_x509_certificate(Path(s["x509pop"]["root_cert"]).read_bytes())
            san = svid[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert san.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe_id]
            assert root in bundle
            chain = [*svid, root]
            for child, parent in itertools.pairwise(chain):
                child.verify_directly_issued_by(parent)
        finally:
            _cli(bins, "spire-server", "entry", "delete", "-socketPath", s["admin_socket"], "-entryID",
                 "test.svid-chain")


class TestBackupAndRestore:
    """`components/scripts/spire_sqlite_backup.py` (the prod `spire-backup` job) against the
    real server's live datastore, then `spire-sqlite-restore.sh` into an empty data dir and a real server
    started from it."""

    def test_backup_of_the_live_datastore_restores_into_a_working_server(
        self, real_servers: RealServers, tmp_path: Path, bins: Path
    ) -> None:
        s = real_servers("spire")
        marker = f"spiffe://{s['trust_domain']}/test/survives-restore"
        done = _cli(bins, "spire-server", "entry", "create", "-socketPath", s["admin_socket"], "-parentID",
                    s["agent_spiffe_id"], "-spiffeID", marker, "-selector", "unix:uid:4242", "-entryID",
                    "test.survives-restore", "-hint", "restored")
        assert done.returncode == 0, done.stderr
        backup, state = tmp_path / "backup", tmp_path / "state"
        backup.mkdir()
        state.mkdir()
        env = {**os.environ, "DATA_DIR": s["server_data"], "BACKUP_DIR": str(backup), "STATE_DIR": str(state),
               "BACKUP_INTERVAL_SECONDS": "3600"}
        job = subprocess.Popen([sys.executable, "-c", SQLITE_BACKUP], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not (state / "last-success").exists():
                assert job.poll() is None, job.stdout.read() if job.stdout else ""
                assert time.monotonic() < deadline, "the backup job wrote no backup within 60 s"
                time.sleep(0.2)
        finally:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait(10)
        assert sorted(p.name for p in backup.iterdir()) == ["datastore.sqlite3", "keys.json"]
        _cli(bins, "spire-server", "entry", "delete", "-socketPath", s["admin_socket"], "-entryID",
             "test.survives-restore")

        # A new server home whose data dir is empty, restored by the stack's restore script.
        pki = spire.Pki(**{k: Path(v) if k != "node" else v for k, v in s["x509pop"].items()})
        layout = spire.prepare(tmp_path / "restored", "dev", pki=pki)
        assert not any(layout.server_data.iterdir())
        script = SQLITE_RESTORE
        out = subprocess.run(["sh", "-c", script], env={**os.environ, "DATA_DIR": str(layout.server_data),
                             "BACKUP_DIR": str(backup)}, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert "restored the SPIRE datastore" in out.stdout

        run = Run(root=tmp_path / "run")
        try:
            spire.start_server(run, layout, bins, name="restored-server")
            shown = _cli(bins, "spire-server", "entry", "show", "-socketPath", str(layout.admin_socket), "-entryID",
                         "test.survives-restore", "-output", "json")
            assert shown.returncode == 0, shown.stderr
            (restored,) = json.loads(shown.stdout)["entries"]
            assert restored["spiffe_id"]["path"] == marker.split(s["trust_domain"], 1)[1]
            assert restored["hint"] == "restored"
            agents = _cli(bins, "spire-server", "agent", "list", "-socketPath", str(layout.admin_socket))
            assert s["agent_spiffe_id"] in agents.stdout, "the attested agent is in the restored datastore too"
        finally:
            run.stop()


class TestPostgresDatastore:
    """`spire.datastore: postgres`: the stack's connection string (`passfile=`, no password in
    server.conf) against the real PostgreSQL of the pin table; SPIRE creates its schema there."""

    def test_server_runs_on_postgres_with_the_password_only_in_the_passfile(
        self, real_servers: RealServers, tmp_path: Path, bins: Path
    ) -> None:
        pg = real_servers("postgres")
        psql = [f"{pg['bin_dir']}/psql", "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["superuser"], "-v",
                "ON_ERROR_STOP=1", "-qtAc"]
        pg_env = {**os.environ, "PGPASSWORD": pg["password"]}
        password = secrets.token_urlsafe(18)
        for sql in ("DROP DATABASE IF EXISTS spire", "DROP ROLE IF EXISTS spire",
                    f"CREATE ROLE spire LOGIN PASSWORD '{password}'", "CREATE DATABASE spire OWNER spire"):
            done = subprocess.run([*psql, sql], env=pg_env, capture_output=True, text=True, check=False)
            assert done.returncode == 0, done.stderr

        plugin = spire_stack.postgres_datastore()
        conn = plugin.data["connection_string"]
        assert isinstance(conn, str) and password not in conn
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir(mode=0o700)
        local = conn.replace(f"host={spire_stack.SPIRE_DB_SERVICE} port=5432", f"host={pg['host']} port={pg['port']}")
        local = local.replace(f"{SECRETS_DIR}/", f"{secrets_dir}/")
        assert local != conn and str(secrets_dir) in local
        # The line PostgresDatabase writes (components/postgres.py), for this host and port.
        passfile = secrets_dir / spire_stack.SPIRE_DB_PGPASS
        passfile.write_text(f"{pg['host']}:{pg['port']}:spire:spire:{password}\n")
        passfile.chmod(0o600)  # libpq ignores a password file others can read

        layout = spire.prepare(tmp_path / "pg", "dev", datastore=spire_stack.Plugin(
            name="sql", data={"database_type": "postgres", "connection_string": local}))
        assert password not in layout.server_conf.read_text()
        assert _cli(bins, "spire-server", "validate", "-config", str(layout.server_conf)).returncode == 0
        run = Run(root=tmp_path / "run")
        try:
            spire.start_server(run, layout, bins, name="server-postgres")
            done = _cli(bins, "spire-server", "entry", "create", "-socketPath", str(layout.admin_socket), "-parentID",
                        layout.agent_spiffe_id, "-spiffeID", f"spiffe://{layout.trust_domain}/test/on-postgres",
                        "-selector", "unix:uid:7", "-entryID", "test.on-postgres")
            assert done.returncode == 0, done.stderr
            rows = subprocess.run([*psql, "SELECT entry_id FROM registered_entries", "-d", "spire"], env=pg_env,
                                  capture_output=True, text=True, check=False)
            assert rows.returncode == 0 and rows.stdout.split() == ["test.on-postgres"], rows.stderr
        finally:
            run.stop()
