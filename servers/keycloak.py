"""Keycloak from Maven Central (`org.keycloak:keycloak-quarkus-dist`, zip), on the local PostgreSQL.

`install` unpacks the distribution into the cache and runs `kc.sh build` with the build-time
options the stack sets (`components/keycloak_stack.py`: `BUILD_TIME_OPTIONS` of `keycloak_env`), so
every start is `kc.sh start --optimized` (seconds, not the minute a first `start` spends building).
The cache entry is keyed on the version and those options.

`start` runs the stack's own entrypoint wrapper (`ENTRYPOINT_WRAPPER`, which reads the database and
bootstrap-admin passwords from secret files into the environment and execs `kc.sh`) with the
stack's environment (`keycloak_env`), remapped for loopback: the database URL points at the local
PostgreSQL, HTTP and the management interface listen on free 127.0.0.1 ports, and the dev hostname
becomes `http://127.0.0.1:<port>`. No password is in an argv or a log.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

import stack_config
from components import keycloak_stack
from components.docker_helpers import SECRETS_DIR
from servers import cache, toolchain
from servers.errors import ServerError
from servers.process import Run
from stack_config import KeycloakSettings, versions

COORDINATES = f"org.keycloak:keycloak-quarkus-dist:{versions.KEYCLOAK}:zip"
READY_SECONDS = 420  # two cores shared with Go builds: ~2 min on an empty database (schema), under 1 min after
TOKEN_LIFESPAN_ENV = "IDENTITY_PLATFORM_KEYCLOAK_TOKEN_LIFESPAN"  # noqa: S105 - a variable name
"""Seconds for the master realm's access tokens, set through the admin API after start (tests of
token expiry); Keycloak's bootstrap value (60 s) when unset."""


def build_options() -> dict[str, str]:
    """The stack's build-time options, as `keycloak_env` sets them (same for dev and prod)."""
    envs = [
        keycloak_stack.keycloak_env(KeycloakSettings(hostname="localhost", published_port=8080), prod=False),
        keycloak_stack.keycloak_env(KeycloakSettings(hostname="auth.example.org"), prod=True),
    ]
    opts = {k: envs[0][k] for k in keycloak_stack.BUILD_TIME_OPTIONS}
    if any({k: e[k] for k in keycloak_stack.BUILD_TIME_OPTIONS} != opts for e in envs):
        raise ServerError("keycloak", "dev and prod set different build-time options; one build cannot serve both")
    return opts


def home() -> Path:
    """The unpacked, built distribution (its cache entry)."""
    opts = build_options()
    digest = cache.key(versions.KEYCLOAK, *(f"{k}={v}" for k, v in sorted(opts.items())))
    return cache.entry("keycloak", versions.KEYCLOAK, digest) / f"keycloak-{versions.KEYCLOAK}"


def _unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            if not target.resolve().is_relative_to(dest.resolve()):
                raise ServerError("keycloak", f"{archive} holds a path outside its root: {info.filename}")
            zf.extract(info, dest)
            mode = info.external_attr >> 16
            if mode and not info.is_dir():
                os.chmod(target, stat.S_IMODE(mode))


class Keycloak:
    name: ClassVar[str] = "keycloak"
    version: ClassVar[str] = versions.KEYCLOAK
    requires: ClassVar[tuple[str, ...]] = ("postgres",)

    def install(self) -> None:
        dist = home()
        entry = dist.parent
        if cache.is_complete(entry):
            return
        java = toolchain.java_home(versions.JAVA_FOR_KEYCLOAK)
        archive = toolchain.maven_artifact(self.name, COORDINATES)
        with cache.building(entry) as must_build:
            if not must_build:
                return
            _unzip(archive, entry)
            if not (dist / "bin" / "kc.sh").is_file():
                raise ServerError(self.name, f"{archive} has no keycloak-{self.version}/bin/kc.sh")
            _build(dist, java, entry / "build.log")

    def path_entries(self) -> list[Path]:
        return [home() / "bin"]

    def reported_version(self) -> str:
        kc = home() / "bin" / "kc.sh"
        if not kc.is_file():
            raise ServerError(self.name, f"not installed ({kc} is missing); run scripts/servers install keycloak")
        java = toolchain.java_home(versions.JAVA_FOR_KEYCLOAK)
        try:
            out = subprocess.run(
                [str(kc), "--version"],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
                env={**os.environ, "JAVA_HOME": str(java)},
            ).stdout
        except (OSError, subprocess.SubprocessError) as e:
            raise ServerError(self.name, f"{kc} --version does not run: {e}") from e
        m = re.search(r"Keycloak (\d+\.\d+\.\d+)", out)
        return m.group(1) if m else out.strip()

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        lifespan = os.environ.get(TOKEN_LIFESPAN_ENV)
        section = start_keycloak(run, deps["postgres"])
        if lifespan:
            set_master_token_lifespan(section, int(lifespan))
        return section


def dev_settings() -> KeycloakSettings:
    """The dev stack's Keycloak settings (the defaults `stack_config` applies to `environment: dev`)."""
    return stack_config.parse({"environment": "dev"}).keycloak


def start_keycloak(
    run: Run,
    postgres: dict[str, Any],
    *,
    settings: KeycloakSettings | None = None,
    prod: bool = False,
    name: str = "server",
    database: str = "keycloak",
    timeout: float = READY_SECONDS,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Start Keycloak with the stack's environment for `settings` (default: the dev stack's).

    The stack's environment is used as it is, except what a loopback run must change (`remapped` in
    the section): the database URL, the HTTP port and, for dev, the published `localhost:8080`
    hostname, which becomes `127.0.0.1:<free port>`; prod keeps its public `https://` hostname
    and proxy settings. `local` adds loopback binds for HTTP, the management interface and
    Infinispan's transport. `database` is a database of the local PostgreSQL owned by role
    `keycloak` (the restore test starts on a restored copy). `extra_env`: runtime options another
    platform's Keycloak adds to the stack's (the Kubernetes Deployment's event logging). Returns the
    state section."""
    dist = home()
    if not (dist / "bin" / "kc.sh").is_file():
        raise ServerError("keycloak", f"not installed ({dist} is missing); run scripts/servers install keycloak")
    java = toolchain.java_home(versions.JAVA_FOR_KEYCLOAK)
    http_port, mgmt_port = run.port("keycloak"), run.port("keycloak")
    settings = settings or dev_settings()
    stack_env = keycloak_stack.keycloak_env(settings, prod=prod)
    db = postgres["databases"]["keycloak"]
    remapped = {
        "KC_DB_URL": f"jdbc:postgresql://{postgres['host']}:{postgres['port']}/{database}",
        "KC_HTTP_PORT": str(http_port),
    }
    if not prod:
        local_url = keycloak_stack.keycloak_public_url(
            settings.model_copy(update={"hostname": "127.0.0.1", "published_port": http_port}), prod=False
        )
        remapped["KC_HOSTNAME"] = local_url
    missing = [k for k in remapped if k not in stack_env]
    if missing or stack_env["KC_DB_USERNAME"] != db["user"]:
        raise ServerError(
            "keycloak",
            f"the stack's environment changed (no {missing} or another database user); update servers/keycloak.py",
        )
    local = {
        # Loopback only, and the management interface (health, metrics) on its own free port.
        "KC_HTTP_HOST": "127.0.0.1",
        "KC_HTTP_MANAGEMENT_PORT": str(mgmt_port),
        "KC_HTTP_MANAGEMENT_HOST": "127.0.0.1",
        # The embedded Infinispan's JGroups transport: loopback, a free port (the default 7800 may be taken).
        "KC_CACHE_EMBEDDED_NETWORK_BIND_ADDRESS": "127.0.0.1",
        "KC_CACHE_EMBEDDED_NETWORK_BIND_PORT": str(run.port("keycloak")),
    }
    env = {**stack_env, **(extra_env or {}), **remapped, **local, "JAVA_HOME": str(java)}

    kdir = run.dir("keycloak")
    secrets_dir = kdir / "secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    # The bootstrap admin exists once the master realm does: every later start on this run's
    # databases (a restart, a restored copy) must use the password of the first.
    admin_file = secrets_dir / keycloak_stack.ADMIN_PASSWORD_FILE
    if not admin_file.exists():
        admin_file.write_text(secrets.token_urlsafe(24))
    admin_password = admin_file.read_text()
    db_file = secrets_dir / keycloak_stack.DB_PASSWORD_FILE
    db_file.write_text(db["password"])
    for path in (admin_file, db_file):
        os.chmod(path, 0o600)
    wrapper = keycloak_stack.ENTRYPOINT_WRAPPER.replace(SECRETS_DIR, str(secrets_dir)).replace(
        "/opt/keycloak/bin/kc.sh", str(dist / "bin" / "kc.sh")
    )
    if str(secrets_dir) not in wrapper or str(dist) not in wrapper:
        raise ServerError("keycloak", "the stack's ENTRYPOINT_WRAPPER changed its paths; update servers/keycloak.py")
    t0 = time.monotonic()
    proc = run.spawn(
        "keycloak",
        name,
        ["/bin/bash", "-c", wrapper, "kc.sh", "start", "--optimized"],
        env=env,
        cwd=run.dir("keycloak", name),
    )
    ready_url = f"http://127.0.0.1:{mgmt_port}/health/ready"

    def ready() -> bool:
        return httpx.get(ready_url, timeout=2).status_code == 200

    run.wait_ready(proc, ready, timeout=timeout, what=f"200 from {ready_url}", interval=2.0)
    return {
        "url": f"http://127.0.0.1:{http_port}",
        "public_url": env["KC_HOSTNAME"],
        "admin_user": settings.admin_user,
        "admin_password": admin_password,
        "token_realm": "master",
        "management_url": f"http://127.0.0.1:{mgmt_port}",
        "database": database,
        "prod": prod,
        "stack_env": stack_env,
        "remapped": remapped,
        "local": local,
        "java_home": str(java),
        "home": str(dist),
        "start_seconds": round(time.monotonic() - t0, 1),
        "pid": proc.pid,
        "log": proc.log,
    }


def _build(dist: Path, java: Path, log: Path) -> None:
    """`kc.sh build` with the stack's build-time options; output to `log`."""
    opts = build_options()
    argv = [str(dist / "bin" / "kc.sh"), "build"]
    with open(log, "a") as out:
        out.write(f"$ {' '.join(f'{k}={v}' for k, v in opts.items())} {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(
                argv,
                cwd=dist,
                env={**os.environ, "JAVA_HOME": str(java), **opts},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=1200,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise ServerError("keycloak", "kc.sh build did not finish in 1200 s", log) from e
    if done.returncode != 0:
        raise ServerError("keycloak", f"kc.sh build failed (exit {done.returncode})", log)


def admin_token(section: dict[str, Any]) -> str:
    """A master-realm access token of the bootstrap admin (password grant with `admin-cli`)."""
    r = httpx.post(
        f"{section['url']}/realms/master/protocol/openid-connect/token",
        timeout=30,
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": section["admin_user"],
            "password": section["admin_password"],
        },
    )
    if r.status_code != 200:
        raise ServerError("keycloak", f"admin login failed: HTTP {r.status_code} {r.text[:200]}", Path(section["log"]))
    return str(r.json()["access_token"])


def set_master_token_lifespan(section: dict[str, Any], seconds: int) -> None:
    """Set the master realm's `accessTokenLifespan` (admin tokens) through the admin API."""
    r = httpx.put(
        f"{section['url']}/admin/realms/master",
        json={"accessTokenLifespan": seconds},
        timeout=30,
        headers={"Authorization": f"Bearer {admin_token(section)}"},
    )
    if r.status_code != 204:
        raise ServerError(
            "keycloak",
            f"setting the master token lifespan failed: HTTP {r.status_code} {r.text[:200]}",
            Path(section["log"]),
        )


SERVER = Keycloak()
