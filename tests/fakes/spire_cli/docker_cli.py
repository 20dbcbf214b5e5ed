"""A fake `docker` CLI: `docker [global opts] exec ...` and `docker ps ...` against the fake world.

The engine is chosen like the real CLI does: `-H/--host`, else `DOCKER_HOST`, else the default
`unix:///var/run/docker.sock`; an engine missing from the world fails with the real CLI's
connection error for that scheme (exit 1). `exec` looks the container up by name, id or id
prefix ("No such container", "is not running"), fails for an executable the container does not
have (OCI runtime error, exit 127), and otherwise runs the fake `spire-server` in the
container's file system view, passing its output and exit status through.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from typing import Any

from tests.fakes.spire_cli import SERVER_BINARY, load_world, log_exec, server_cli

DEFAULT_HOST = "unix:///var/run/docker.sock"
_GLOBAL_VALUE_OPTS = {"-H", "--host", "-c", "--context", "--config", "-l", "--log-level", "--tlscacert"}
_GLOBAL_VALUE_OPTS |= {"--tlscert", "--tlskey"}
_GLOBAL_BOOL_OPTS = {"-D", "--debug", "--tls", "--tlsverify"}
_EXEC_VALUE_OPTS = {"-u", "--user", "-w", "--workdir", "-e", "--env", "--env-file", "--detach-keys"}
_EXEC_BOOL_CHARS = set("itd")


def _connect_error(host: str, what: str) -> str:
    if host.startswith("ssh://"):
        target = host[len("ssh://") :]
        user, _, hostport = target.rpartition("@")
        hostname = hostport.split(":")[0]
        login = f"-l {user} " if user else ""
        return (
            f'error during connect: Get "http://docker.example.com/v1.50/{what}": command [ssh -o '
            f"ConnectTimeout=30 -T {login}-- {hostname} docker system dial-stdio] has exited with exit status "
            "255, make sure the URL is valid, and Docker 18.09 or later is installed on the remote host: "
            f"stderr=ssh: connect to host {hostname} port 22: Connection refused"
        )
    return f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running?"


def _find(containers: list[dict[str, Any]], ref: str) -> dict[str, Any] | None:
    for c in containers:
        if ref in (c["name"], c["id"]):
            return c
    matches = [c for c in containers if len(ref) >= 1 and c["id"].startswith(ref)]
    return matches[0] if len(matches) == 1 else None


def _exec(engine: dict[str, Any], args: list[str], stdout: Any, stderr: Any) -> int:
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        opt = args[i]
        name = opt.split("=", 1)[0]
        if name in _EXEC_VALUE_OPTS and "=" not in opt:
            i += 2
            continue
        if name in _EXEC_VALUE_OPTS or name in ("--privileged", "--interactive", "--tty", "--detach"):
            i += 1
            continue
        if name.startswith("-") and not name.startswith("--") and set(name[1:]) <= _EXEC_BOOL_CHARS:
            i += 1
            continue
        stderr.write(f"unknown flag: {opt}\nSee 'docker exec --help'.\n")
        return 125
    rest = args[i:]
    if len(rest) < 2:
        stderr.write("\"docker exec\" requires at least 2 arguments.\nSee 'docker exec --help'.\n")
        return 1
    ref, command = rest[0], rest[1:]
    container = _find(engine["containers"], ref)
    if container is None:
        stderr.write(f"Error response from daemon: No such container: {ref}\n")
        return 1
    if not container["running"]:
        stderr.write(f"Error response from daemon: container {container['id']} is not running\n")
        return 1
    if command[0] not in container["executables"]:
        stderr.write(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: "
            f'"{command[0]}": stat {command[0]}: no such file or directory: unknown\n'
        )
        return 127
    if command[0] != SERVER_BINARY and not command[0].endswith("/spire-server"):
        stderr.write(f"fake docker: cannot run {command[0]!r} in the fake container\n")
        return 126
    return server_cli.main(command[1:], server_cli.Env(stdout, stderr, container["files"]))


def _ps(engine: dict[str, Any], args: list[str], stdout: Any, stderr: Any) -> int:
    filters: list[tuple[str, str]] = []
    fmt = None
    quiet = show_all = False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-f", "--filter", "--format") and i + 1 < len(args):
            if a == "--format":
                fmt = args[i + 1]
            else:
                key, _, value = args[i + 1].partition("=")
                filters.append((key, value))
            i += 2
            continue
        if a.startswith("--filter="):
            key, _, value = a[len("--filter=") :].partition("=")
            filters.append((key, value))
        elif a.startswith("--format="):
            fmt = a[len("--format=") :]
        elif a in ("-q", "--quiet"):
            quiet = True
        elif a in ("-a", "--all"):
            show_all = True
        else:
            stderr.write(f"unknown flag: {a}\nSee 'docker ps --help'.\n")
            return 125
        i += 1
    rows = []
    for c in engine["containers"]:
        status = "running" if c["running"] else "exited"
        ok = show_all or c["running"]
        for key, value in filters:
            if key == "label":
                lk, has_value, lv = value.partition("=")
                ok = ok and lk in c["labels"] and (not has_value or c["labels"][lk] == lv)
            elif key == "status":
                ok = ok and status == value
            elif key == "name":
                ok = ok and value in c["name"]
            else:
                stderr.write(f"Error response from daemon: invalid filter '{key}'\n")
                return 1
        if ok:
            rows.append(c)
    for c in rows:
        if quiet or fmt == "{{.ID}}":
            stdout.write(c["id"][:12] + "\n")
        elif fmt == "{{.Names}}":
            stdout.write(c["name"] + "\n")
        else:
            stdout.write(f"{c['id'][:12]}   spire-server   {c['name']}\n")
    return 0


def main(argv: Sequence[str]) -> int:
    world = load_world()
    args = list(argv)
    host = os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    while args and args[0].startswith("-"):
        opt = args.pop(0)
        name, eq, value = opt.partition("=")
        if name in _GLOBAL_VALUE_OPTS:
            if not eq:
                value = args.pop(0) if args else ""
            if name in ("-H", "--host"):
                host = value
        elif name not in _GLOBAL_BOOL_OPTS:
            sys.stderr.write(f"unknown flag: {opt}\n")
            return 125
    stdout, stderr = io.StringIO(), io.StringIO()
    record = {"tool": "docker", "argv": list(argv), "DOCKER_HOST": os.environ.get("DOCKER_HOST"), "host": host}
    if not args or args[0] not in ("exec", "ps"):
        stderr.write(f"docker: '{args[0] if args else ''}' is not a docker command (fake docker: exec, ps).\n")
        rc = 1
    elif host not in world["docker"]:
        stderr.write(_connect_error(host, "containers/json") + "\n")
        rc = 1
    elif args[0] == "exec":
        rc = _exec(world["docker"][host], args[1:], stdout, stderr)
    else:
        rc = _ps(world["docker"][host], args[1:], stdout, stderr)
    log_exec(world, {**record, "rc": rc})
    sys.stdout.write(stdout.getvalue())
    sys.stderr.write(stderr.getvalue())
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
