"""How the SPIRE provider reaches a stack's server: `spire.transport` as `SpireEntry`'s connection.

Pure (no resources): the assembly gives it to `SpireRegistrations`, `ops` health reaches the
server with it, and the crd-free Kubernetes topology registers its node alias through it, so the
three agree. The configuration has checked the transport (its fields, and on swarm that a set
`spire.transport.node` is the stateful node).
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.spire_stack import SERVER_SERVICE, SERVER_SOCKET_PATH
from stack_config import StackConfig


def spire_connection(config: StackConfig) -> dict[str, Any]:
    """The `connection` of `SpireEntry` from `spire.transport`, owned by this project and stack.

    swarm: docker-exec runs the CLI in the running task of the `spire-server` service on the
    stateful node (where SpireStack places it), through that node's `dockerHost` (an ssh:// URL in
    prod). external: docker-exec names the engine and the container or service of your server.
    grpc dials `spire.transport.socketPath` (the admin socket, local or forwarded); kubectl-exec
    runs the CLI in `namespace`/`pod` (the helm chart's defaults unless set). `ops` reaches the
    server with the same connection."""
    t = config.spire.transport
    base: dict[str, Any] = {
        "trust_domain": config.spire.trust_domain,
        "project": pulumi.get_project(),
        "stack": pulumi.get_stack(),
    }
    if t.kind == "grpc":
        return {"transport": "grpc", "socket_path": t.socket_path, **base}
    if t.kind == "kubectl-exec":
        where = {k: v for k, v in (("namespace", t.namespace), ("pod", t.pod)) if v is not None}
        return {"transport": "kubectl-exec", **where, **base}
    if config.platform != "swarm":  # the user's server (external, or kubernetes crd-free)
        target = {"container": t.container} if t.container else {"service": t.service}
        return {"transport": "docker-exec", "docker_host": t.docker_host, **target, **base}
    # The configuration has checked that a set `spire.transport.node` is the stateful node.
    node = t.node or config.stateful_nodes[0]
    return {
        "transport": "docker-exec",
        "docker_host": config.nodes[node].docker_host,
        "service": SERVER_SERVICE,
        "socket_path": SERVER_SOCKET_PATH,
        **base,
    }
