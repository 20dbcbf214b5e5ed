"""Swarm nodes: the named map every per-node resource (agent containers, providers) iterates."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from stack_config.base import Model, ScalarText, checked

_NODE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
DB_LABEL = "zt.db"
"""The node label (value "true") of the one node that runs the stateful services."""
DOCKER_HOST_HINT = "use unix:///var/run/docker.sock, ssh://user@host or tcp://host:port"


def docker_host_problem(v: str) -> str | None:
    """Why `v` is not a Docker host URL the docker provider and CLI can dial, or None."""
    scheme, sep, rest = v.partition("://")
    if not sep or scheme not in ("unix", "ssh", "tcp") or not rest or any(c.isspace() for c in v):
        return f"is not a Docker host URL: {DOCKER_HOST_HINT}"
    if scheme == "unix":
        return None if rest.startswith("/") else "is not a Docker host URL: a unix:// socket needs an absolute path"
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError:
        return f"is not a Docker host URL (bad host or port): {DOCKER_HOST_HINT}"
    if not parts.hostname:
        return f"is not a Docker host URL (no host): {DOCKER_HOST_HINT}"
    if scheme == "tcp" and port is None:
        return "is not a Docker host URL: tcp:// needs the port (2376 with TLS)"
    return None


DockerHost = Annotated[str, checked(docker_host_problem, lambda v, p: f"{v!r} {p}")]
"""A Docker host URL: unix:///path, ssh://[user@]host[:port] or tcp://host:port."""


class NodeSpec(Model):
    """One Docker engine of the Swarm, reached from the machine running `pulumi up`."""

    docker_host: DockerHost = Field(
        description="Docker host URL for this node: unix:///var/run/docker.sock, ssh://root@10.0.0.2 or tcp://host:2376."
    )
    labels: dict[str, ScalarText] = Field(
        default_factory=dict,
        description="Swarm node labels used in placement constraints (e.g. zt.db=true for stateful services).",
    )
    manager: bool = Field(default=False, description="True for the Swarm manager the stacks are deployed through.")


def _node_name(name: str) -> str:
    """Node names become resource-name suffixes and SPIFFE path segments: keep them DNS-label safe."""
    if not _NODE_NAME_RE.match(name):
        raise ValueError(f"node name {name!r} must be a lowercase DNS label (a-z, 0-9, '-'; at most 63)")
    return name


NodeName = Annotated[str, AfterValidator(_node_name)]
