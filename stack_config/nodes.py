"""Swarm nodes: the named map every per-node resource (agent containers, providers) iterates."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from stack_config.base import Model

_HOST_RE = re.compile(r"^(unix://|ssh://|tcp://)\S+$")
_NODE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class NodeSpec(Model):
    """One Docker engine of the Swarm, reached from the machine running `pulumi up`."""

    docker_host: str = Field(
        description="Docker host URL for this node: unix:///var/run/docker.sock, ssh://root@10.0.0.2 or tcp://host:2376."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Swarm node labels used in placement constraints (e.g. zt.db=true for stateful services).",
    )
    manager: bool = Field(default=False, description="True for the Swarm manager the stacks are deployed through.")

    @field_validator("docker_host")
    @classmethod
    def _host_url(cls, v: str) -> str:
        if not _HOST_RE.match(v):
            raise ValueError(
                f"{v!r} is not a Docker host URL: use unix:///var/run/docker.sock, ssh://user@host or tcp://host:port"
            )
        return v


def validate_node_names(nodes: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
    """Node names become resource-name suffixes and SPIFFE path segments: keep them DNS-label safe."""
    for name in nodes:
        if not _NODE_NAME_RE.match(name):
            raise ValueError(f"nodes.{name}: node name {name!r} must be a lowercase DNS label (a-z, 0-9, '-')")
    return nodes
