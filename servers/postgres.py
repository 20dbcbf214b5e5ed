"""PostgreSQL from Debian's `postgresql-15` package, the version the stacks' image pins.

Started as the `postgres` system user when running as root (the server refuses root), with
SCRAM password authentication on 127.0.0.1 and one database + owner per client (`keycloak`)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from servers import toolchain
from servers.errors import ServerError
from servers.process import Run
from stack_config import versions

MAJOR = versions.POSTGRES.split(".")[0]
BIN = Path(f"/usr/lib/postgresql/{MAJOR}/bin")
DATABASES = ("keycloak",)
READY_SECONDS = 60


def _user() -> str | None:
    return "postgres" if os.geteuid() == 0 else None


class Postgres:
    name: ClassVar[str] = "postgres"
    version: ClassVar[str] = versions.POSTGRES
    requires: ClassVar[tuple[str, ...]] = ()

    def install(self) -> None:
        toolchain.debian_package(self.name, f"postgresql-{MAJOR}", versions.POSTGRES_DEBIAN, BIN / "postgres")

    def path_entries(self) -> list[Path]:
        return [BIN]

    def reported_version(self) -> str:
        try:
            out = subprocess.run([str(BIN / "postgres"), "--version"], capture_output=True, text=True,
                                 check=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            raise ServerError(self.name, f"{BIN / 'postgres'} does not run: {e}") from e
        m = re.search(r"(\d+\.\d+)", out)
        return m.group(1) if m else out.strip()

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        user = _user()
        if user is not None and not _traversable(run.root):
            # The server user cannot reach a run directory under a private parent (pytest's
            # /tmp/pytest-of-root is 0700): keep the cluster in its own directory, linked from the run.
            home = run.scratch_dir("identity-platform-postgres-")
            os.chmod(home, 0o755)  # noqa: S103 - owned by the server user below
            (run.root / "postgres").symlink_to(home)
        else:
            home = run.dir("postgres")
        data, sockets = home / "data", home / "sockets"
        sockets.mkdir(exist_ok=True)
        password = secrets.token_urlsafe(24)
        pwfile = home / "superuser-password"
        pwfile.write_text(password + "\n")
        if user is not None:
            os.chmod(run.root, 0o755)  # noqa: S103 - the server user must reach its data dir
            for p in (home, sockets, pwfile):
                os.chown(p, _uid(user), _gid(user))
            os.chmod(pwfile, 0o600)
        initdb = [str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256",
                  f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C"]
        run.run(self.name, "initdb", initdb, user=user)
        pwfile.unlink()
        port = run.port(self.name)
        argv = [str(BIN / "postgres"), "-D", str(data), "-p", str(port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}"]
        proc = run.spawn(self.name, "server", argv, user=user)
        env = {"PGPASSWORD": password}

        def ready() -> bool:
            return subprocess.run([str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
                                  capture_output=True, check=False).returncode == 0

        run.wait_ready(proc, ready, timeout=READY_SECONDS, what=f"accepting connections on 127.0.0.1:{port}")
        dbs: dict[str, dict[str, str]] = {}
        for db in DATABASES:
            pw = secrets.token_urlsafe(18)
            psql = [str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-qv", "ON_ERROR_STOP=1"]
            run.run(self.name, f"create-{db}-role", psql, env=env, stdin=f"CREATE ROLE {db} LOGIN PASSWORD '{pw}';")
            run.run(self.name, f"create-{db}", [*psql, "-c", f"CREATE DATABASE {db} OWNER {db}"], env=env)
            dbs[db] = {"user": db, "password": pw, "url": f"postgresql://127.0.0.1:{port}/{db}"}
        return {
            "host": "127.0.0.1",
            "port": port,
            "superuser": "postgres",
            "password": password,
            "databases": dbs,
            "bin_dir": str(BIN),
            "data_dir": str(data),
            "pid": proc.pid,
            "log": proc.log,
        }


def _traversable(path: Path) -> bool:
    """Every directory from / down to `path` lets other users through (o+x)."""
    return all(p.stat().st_mode & 0o001 for p in (path, *path.parents))


def _uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def _gid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


SERVER = Postgres()
