"""The real SPIRE server (`real_servers("spire")`) reached over the provider's transports.

- grpc: the server's admin Unix socket, dialled by the provider directly.
- docker-exec: there is no Docker engine here, so `docker exec` cannot run. A tiny `docker` shim
  (a shell script written into a temp dir put first on PATH) stands in for the engine: `docker ps
  --filter label=com.docker.swarm.service.name=<svc>` prints one task name, and `docker exec
  <task> /opt/spire/bin/spire-server ARGS...` runs the REAL `spire-server` binary with ARGS and
  `-socketPath <the real admin socket>` (last, so it wins over the in-container path). It
  refuses any other container or binary, like a real engine would, and logs every call, so
  tests can count round trips. Everything the provider parses comes from the real CLI.
- kubectl-exec: the same for `kubectl exec --context kind-spire --namespace spire-server
  spire-server-0 --container spire-server -- /opt/spire/bin/spire-server ARGS...` (the helm
  chart's names), or one real server per context (`sockets`, e.g. the enterprise topology's two
  clusters); any other context, pod, container or binary is refused.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from components.spire_conf import HealthChecks, Plugin, Prometheus, ServerConf, ServerSection, Telemetry
from dynamic_providers.spire._proto import entry_pb2, entry_pb2_grpc, types_pb2
from servers.process import Run, free_port

SERVICE = "spire_spire-server"
TASK = f"{SERVICE}.1.realshim0001"
DOCKER_HOST = "ssh://root@10.0.0.2"
SERVER_BINARY = "/opt/spire/bin/spire-server"
SERVER_READY_SECONDS = 90

_SHIM = """#!/bin/sh
# docker shim for the real-server tests (tests/real/spire_targets.py): no engine, the real CLI.
printf '%s\\n' "$*" >> {log}
case "$1" in
  ps)
    case "$*" in
      *"label=com.docker.swarm.service.name={service}"*) echo {task} ;;
    esac
    exit 0 ;;
  exec)
    if [ "$2" != {task} ]; then
      echo "Error response from daemon: No such container: $2" >&2; exit 1
    fi
    if [ "$3" != {binary} ]; then
      echo "OCI runtime exec failed: exec failed: unable to start container process: exec: \\"$3\\": no such file" >&2
      exit 126
    fi
    shift 3
    exec {server} "$@" -socketPath {socket} ;;
esac
echo "docker shim: unsupported command: $*" >&2
exit 2
"""

_KUBECTL_SHIM = """#!/bin/sh
# kubectl shim for the real-server tests (tests/real/spire_targets.py): no cluster, the real CLI.
printf '%s\\n' "$*" >> {log}
[ "$1" = exec ] || {{ echo "kubectl shim: unsupported command: $*" >&2; exit 2; }}
shift
ns= pod= container= context=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case "$1" in
    --namespace|-n) ns=$2; shift 2 ;;
    --container|-c) container=$2; shift 2 ;;
    --context) context=$2; shift 2 ;;
    --kubeconfig) shift 2 ;;
    -*) echo "error: unknown flag: $1" >&2; exit 1 ;;
    *) pod=$1; shift ;;
  esac
done
shift
case "$context" in
{routes}
  *) echo "error: context \\"$context\\" does not exist" >&2; exit 1 ;;
esac
if [ "$ns/$pod" != {namespace}/{pod} ]; then
  echo "Error from server (NotFound): pods \\"$pod\\" not found" >&2; exit 1
fi
if [ "$container" != {container} ]; then
  echo "error: container $container is not valid for pod $pod" >&2; exit 1
fi
[ "$1" = {binary} ] || {{ echo "exec: \\"$1\\": no such file" >&2; exit 126; }}
shift
exec {server} "$@" -socketPath "$socket"
"""
KUBE_CONTEXT = "kind-spire"


@dataclass
class RealTarget:
    kind: str
    connection: dict[str, Any]
    env: dict[str, str]
    log: Path | None = None

    def execs(self) -> list[str]:
        if self.log is None or not self.log.exists():
            return []
        return self.log.read_text().splitlines()


def make_target(kind: str, state: dict[str, Any], directory: Path, *, stack: str = "test",
                context: str = KUBE_CONTEXT, sockets: Mapping[str, str] | None = None) -> RealTarget:
    """The connection input and environment for `kind`. kubectl-exec: `context` reaches the real
    server of `state`, or (`sockets`: kubectl context -> admin socket) each context its own server."""
    base = {"trust_domain": state["trust_domain"], "project": "identity-platform", "stack": stack}
    if kind == "grpc":
        return RealTarget(kind, {"transport": "grpc", "socket_path": state["admin_socket"], **base}, {})
    shim_dir = directory / "shim-bin"
    shim_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "binary": shlex.quote(SERVER_BINARY),
        "server": shlex.quote(str(Path(state["bin_dir"]) / "spire-server")),
        "socket": shlex.quote(state["admin_socket"]),
    }
    if kind == "docker-exec":
        log = directory / "docker-calls.log"
        shim = shim_dir / "docker"
        shim.write_text(_SHIM.format(log=shlex.quote(str(log)), service=SERVICE, task=shlex.quote(TASK), **common))
        connection = {"transport": "docker-exec", "docker_host": DOCKER_HOST, "service": SERVICE, **base}
    elif kind == "kubectl-exec":
        log = directory / "kubectl-calls.log"
        shim = shim_dir / "kubectl"
        routes = "\n".join(f"  {shlex.quote(ctx)}) socket={shlex.quote(sock)} ;;"
                            for ctx, sock in (sockets or {context: state["admin_socket"]}).items())
        shim.write_text(_KUBECTL_SHIM.format(log=shlex.quote(str(log)), routes=routes, namespace="spire-server",
                                             pod="spire-server-0", container="spire-server", **common))
        connection = {"transport": "kubectl-exec", "context": context, **base}  # the helm chart's defaults
    else:
        raise ValueError(kind)
    shim.chmod(0o755)
    env = {"PATH": os.pathsep.join([str(shim_dir), str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    return RealTarget(kind, connection, env, log)


class Admin:
    """Raw Entry API calls on the real server's admin socket, independent of the provider's
    client: seeding foreign entries, editing fields behind the provider's back, reading state."""

    def __init__(self, socket_path: str) -> None:
        self.channel = grpc.insecure_channel(f"unix:{socket_path}")
        self.stub = entry_pb2_grpc.EntryStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def get(self, entry_id: str) -> types_pb2.Entry | None:
        try:
            return self.stub.GetEntry(entry_pb2.GetEntryRequest(id=entry_id), timeout=10)
        except grpc.RpcError as e:
            if isinstance(e, grpc.Call) and e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def ids(self) -> list[str]:
        resp = self.stub.ListEntries(entry_pb2.ListEntriesRequest(), timeout=10)
        return sorted(e.id for e in resp.entries)

    def create(self, entry: types_pb2.Entry) -> Any:
        (result,) = self.stub.BatchCreateEntry(entry_pb2.BatchCreateEntryRequest(entries=[entry]), timeout=10).results
        return result

    def update(self, entry: types_pb2.Entry, mask: types_pb2.EntryMask) -> Any:
        req = entry_pb2.BatchUpdateEntryRequest(entries=[entry], input_mask=mask)
        (result,) = self.stub.BatchUpdateEntry(req, timeout=10).results
        return result

    def delete_all(self) -> None:
        ids = self.ids()
        if ids:
            self.stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=ids), timeout=10)


def cli_json(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    return data


@contextmanager
def emptied(state: dict[str, Any]) -> Iterator[Admin]:
    """An admin client of the real server with no entries before and after the block."""
    admin = Admin(state["admin_socket"])
    admin.delete_all()
    try:
        yield admin
    finally:
        admin.delete_all()
        admin.close()


def federate_with(state: dict[str, Any], trust_domain: str, directory: Path) -> None:
    """Give the real server a bundle for `trust_domain` (a fresh CA) with the real CLI, so
    entries may federate with it."""
    from servers import spire

    _, ca = spire.self_signed_ca(f"{trust_domain} test CA", 48)
    pem = directory / f"{trust_domain}.pem"
    pem.write_text(spire._pem(ca))
    done = subprocess.run([f"{state['bin_dir']}/spire-server", "bundle", "set", "-format", "pem", "-id",
                           f"spiffe://{trust_domain}", "-path", str(pem), "-socketPath", state["admin_socket"]],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def server_conf(home: Path, trust_domain: str, upstream_authority: Plugin | None = None) -> ServerConf:
    """A server.conf with what SPIRE needs and nothing of a stack's: SQLite and disk keys under
    `home/data`, the admin socket `home/api.sock`, a join-token attestor, loopback ports; its own
    CA unless `upstream_authority` is given. Makes `home/data`."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    return ServerConf(
        server=ServerSection(trust_domain=trust_domain, bind_address="127.0.0.1", bind_port=str(free_port()),
                             socket_path=str(home / "api.sock"), data_dir=str(home / "data")),
        data_store=Plugin(name="sql", data={"database_type": "sqlite3",
                                            "connection_string": str(home / "data" / "datastore.sqlite3")}),
        key_manager=Plugin(name="disk", data={"keys_path": str(home / "data" / "keys.json")}),
        node_attestors=[Plugin(name="join_token")],
        upstream_authority=upstream_authority,
        health_checks=HealthChecks(bind_address="127.0.0.1", bind_port=str(free_port())),
        telemetry=Telemetry(prometheus=Prometheus(host="127.0.0.1", port=free_port())),
    )


def start_server(run: Run, home: Path, trust_domain: str, name: str) -> dict[str, Any]:
    """Another real SPIRE server, of `trust_domain`, on its own (SQLite, disk keys, its own CA):
    an Entry API to register on, as each cluster's server is; stopped with `run`. Returns the
    keys of `real_servers("spire")` the helpers here read (`trust_domain`, `admin_socket`, `bin_dir`),
    and its process (`proc`).
    `home` must be short: the admin socket's path is limited to 108 bytes."""
    from servers import spire

    bins = spire.bin_dir()
    conf = server_conf(home, trust_domain)
    (home / "server.conf").write_text(conf.render())
    proc = run.spawn("spire", name, [str(bins / "spire-server"), "run", "-config", str(home / "server.conf")],
                     cwd=home)
    socket = str(home / "api.sock")
    healthcheck = [str(bins / "spire-server"), "healthcheck", "-socketPath", socket]
    run.wait_ready(proc, lambda: subprocess.run(healthcheck, capture_output=True, timeout=15).returncode == 0,
                   timeout=SERVER_READY_SECONDS, what=f"{trust_domain} healthcheck on {socket}")
    return {"trust_domain": trust_domain, "admin_socket": socket, "bin_dir": str(bins), "proc": proc}
