"""One fake SPIRE server reachable over each of the provider's transports (tests and bench).

`make_target(kind, server, directory)` returns the `connection` input for that transport and the
environment the provider process needs (the fake `docker` / `kubectl` first on PATH):

- grpc: the fake server's admin socket, dialled directly;
- docker-exec: a Swarm task container of service `spire_spire-server` on the engine at
  `ssh://root@10.0.0.2`, whose /tmp/spire-server/private/api.sock is the fake server's socket;
- kubectl-exec: pod `spire-server-0` (container `spire-server`) in namespace `spire-server` of
  context `kind-spire`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.spire_cli import FakeWorld
from tests.fakes.spire_server import FakeSpireServer

TRANSPORTS = ("grpc", "docker-exec", "kubectl-exec")
DOCKER_HOST = "ssh://root@10.0.0.2"
SERVICE = "spire_spire-server"
KUBE_CONTEXT = "kind-spire"


@dataclass
class SpireTarget:
    kind: str
    server: FakeSpireServer
    world: FakeWorld
    connection: dict[str, Any]
    env: dict[str, str]

    def round_trips(self) -> int:
        """Requests that left the provider: gRPC calls, or docker/kubectl executions."""
        if self.kind == "grpc":
            return self.server.round_trips()
        return len(self.world.execs())


def make_target(
    kind: str,
    server: FakeSpireServer,
    directory: Path,
    *,
    project: str = "identity-platform",
    stack: str = "test",
) -> SpireTarget:
    assert server.socket_path is not None, "start the server first"
    world = FakeWorld(directory)
    world.add_container(
        DOCKER_HOST,
        f"{SERVICE}.1.p4k2x9f0d1c3",
        server.socket_path,
        labels={"com.docker.swarm.service.name": SERVICE, "com.docker.stack.namespace": "spire"},
    )
    world.add_pod(KUBE_CONTEXT, "spire-server", "spire-server-0", "spire-server", server.socket_path)
    base = {"trust_domain": server.trust_domain, "project": project, "stack": stack}
    connection: dict[str, Any]
    if kind == "grpc":
        connection = {"transport": "grpc", "socket_path": server.socket_path, **base}
    elif kind == "docker-exec":
        connection = {"transport": "docker-exec", "docker_host": DOCKER_HOST, "service": SERVICE, **base}
    elif kind == "kubectl-exec":
        connection = {"transport": "kubectl-exec", "context": KUBE_CONTEXT, "namespace": "spire-server", **base}
    else:
        raise ValueError(kind)
    return SpireTarget(kind, server, world, connection, world.env())
