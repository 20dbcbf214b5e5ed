"""PostgresDatabase: pg_dump backups onto the rclone volume (prod) and the first-start restore. The
backup loop and the init script are executed for real with `pg_dump`/`pg_restore` test doubles."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from components import postgres
from components.backup_job import freshness_check
from components.scripts import script
from stack_config import ConfigError
from tests.components._platform import CONFIG, SECRET, platform, secret_payload, services, spec


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(0o755)


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate(timeout=10)


class TestBackupWiring:
    def test_prod_backup_service(self) -> None:
        r, _ = platform("prod")
        cs = spec(services(r)["keycloak-postgres-backup"])
        env = cs["env"]
        (secret,) = cs["secrets"]
        assert env["PGPASSFILE"] == f"/run/secrets/{secret['fileName']}"
        assert secret["fileMode"] == 0o400, "libpq ignores a password file others can read"
        assert env["PGHOST"] == "keycloak-postgres" and env["BACKUP_INTERVAL_SECONDS"] == "900"
        line = secret_payload(next(s for s in r.of_type(SECRET) if s.name == "keycloak-db-pgpass"))
        assert line.startswith("keycloak-postgres:5432:keycloak:keycloak:mock-secret-value-password-")
        (mount,) = cs["mounts"]
        assert mount["volumeOptions"]["driverName"] == "rclone" and mount["target"] == "/backup"
        assert cs["healthcheck"]["tests"] == freshness_check(900)

    def test_dev_has_no_backup_and_no_password_file(self) -> None:
        r, _ = platform("dev")
        assert "keycloak-postgres-backup" not in services(r)
        assert not [s for s in r.of_type(SECRET) if s.name.endswith("pgpass")]

    def test_restore_script_only_with_the_flag(self) -> None:
        storage = {"noncurrentVersionDays": 30, "backupIntervalMinutes": 5, "restoreOnFirstStart": True}
        r, _ = platform("prod", config={"storage": storage})
        cs = spec(services(r)["keycloak-postgres"])
        (cfg,) = cs["configs"]
        assert cfg["fileName"] == "/docker-entrypoint-initdb.d/50-restore.sh" and cfg["fileMode"] == 0o555
        assert r.get(CONFIG, "keycloak-db-restore-script").inputs["dataRaw"] == postgres.RESTORE_SCRIPT
        backup = next(m for m in cs["mounts"] if m["target"] == "/backup")
        assert backup["readOnly"] is True
        assert spec(services(r)["keycloak-postgres-backup"])["env"]["BACKUP_INTERVAL_SECONDS"] == "300"
        plain, _ = platform("prod")
        assert not spec(services(plain)["keycloak-postgres"]).get("configs")

    def test_restore_needs_a_bucket(self) -> None:
        with pytest.raises(ConfigError, match="restoreOnFirstStart"):
            platform("dev", config={"storage": {"restoreOnFirstStart": True}})


class TestBackupLoopRuns:
    def run_loop(self, tmp_path: Path, pg_dump: str, seconds: float) -> tuple[subprocess.Popen[str], Path]:
        fake_tool(tmp_path / "bin", "pg_dump", pg_dump)
        state, backup = tmp_path / "state", tmp_path / "backup"
        state.mkdir()
        backup.mkdir()
        env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "STATE_DIR": str(state),
               "BACKUP_DIR": str(backup), "PGDATABASE": "keycloak", "BACKUP_INTERVAL_SECONDS": "3600",
               "RETRY_SECONDS": "1"}  # fmt: skip
        # Own process group: `stop` must also end the loop's `sleep`, which holds the pipes open.
        proc = subprocess.Popen(
            ["sh", "-c", script("postgres-backup.sh")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        deadline = time.time() + seconds
        while time.time() < deadline and not (state / "last-success").exists():
            time.sleep(0.1)
        return proc, tmp_path

    def test_a_dump_is_published_whole(self, tmp_path: Path) -> None:
        # The double writes what --file names, like pg_dump does.
        proc, _ = self.run_loop(
            tmp_path, 'for a; do case "$a" in --file=*) echo dump > "${a#--file=}";; esac; done', 20
        )
        try:
            assert (tmp_path / "state" / "last-success").exists()
        finally:
            stop(proc)
        assert (tmp_path / "backup" / "keycloak.dump").read_text() == "dump\n"
        assert not list((tmp_path / "backup").glob("*.partial"))
        marker = tmp_path / "state" / "last-success"
        test = freshness_check(60, marker=str(marker))
        assert subprocess.run(test[1:], check=False).returncode == 0
        marker.write_text(str(int(time.time()) - 3600))
        assert subprocess.run(test[1:], check=False).returncode != 0

    def test_a_failed_dump_publishes_nothing_and_retries(self, tmp_path: Path) -> None:
        proc, _ = self.run_loop(tmp_path, "echo 'connection refused' >&2; exit 1", 2.5)
        _, err = stop(proc)
        assert err.count("pg_dump to") >= 2, err
        assert not (tmp_path / "state" / "last-success").exists()
        assert not list((tmp_path / "backup").iterdir())


class TestRestoreScriptRuns:
    def restore(self, tmp_path: Path, with_dump: bool) -> subprocess.CompletedProcess[str]:
        fake_tool(tmp_path / "bin", "pg_restore", 'echo "pg_restore $*"')
        (tmp_path / "backup").mkdir()
        if with_dump:
            (tmp_path / "backup" / "keycloak.dump").write_text("dump")
        env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "BACKUP_DIR": str(tmp_path / "backup"),
               "POSTGRES_DB": "keycloak", "POSTGRES_USER": "keycloak"}  # fmt: skip
        return subprocess.run(["bash", "-c", postgres.RESTORE_SCRIPT], env=env, capture_output=True, text=True)

    def test_restores_the_latest_dump(self, tmp_path: Path) -> None:
        out = self.restore(tmp_path, with_dump=True)
        assert out.returncode == 0, out.stderr
        assert "--dbname=keycloak" in out.stdout and out.stdout.strip().endswith("keycloak.dump")
        assert "--exit-on-error" in out.stdout

    def test_without_a_dump_the_database_starts_empty(self, tmp_path: Path) -> None:
        out = self.restore(tmp_path, with_dump=False)
        assert out.returncode == 0 and "starting with an empty database" in out.stderr
        assert "pg_restore" not in out.stdout
