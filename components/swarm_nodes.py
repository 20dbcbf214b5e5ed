"""SwarmNodes: one `docker.Provider` per configured node, and the rclone volume plugin (prod).

Swarm-level objects (services, networks, secrets, configs) go through the manager's provider;
per-node objects (SPIRE agent containers, node-local volumes, one-shot restore containers) go
through the provider of the node they belong to. The node map is a named map, so adding or
reordering nodes never renames another node's resources.

The rclone plugin is installed only where rclone volumes live: on the stateful node (`zt.db=true`),
which runs every service that mounts one. Host prerequisites the plugin cannot create itself
(FUSE, `/var/lib/docker-plugins/rclone/{config,cache}`) are documented in docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from components.docker_helpers import Placement, stateful_node
from stack_config import NodeSpec


class SwarmNodes(pulumi.ComponentResource):
    """The Docker engines of the Swarm, as Pulumi providers."""

    providers: dict[str, docker.Provider]
    manager_node: str
    db_node: str
    rclone_plugin: docker.Plugin | None

    def __init__(
        self,
        resource_name: str,
        *,
        nodes: Mapping[str, NodeSpec],
        manager_node: str,
        rclone_plugin_image: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("identity-platform:swarm:Nodes", resource_name, None, opts)
        if manager_node not in nodes:
            raise ValueError(f"manager node {manager_node!r} is not in the node map {sorted(nodes)}")
        self.manager_node = manager_node
        self.db_node = stateful_node(nodes)
        self.providers = {
            node: docker.Provider(
                f"{resource_name}-{node}",
                host=spec.docker_host,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node, spec in sorted(nodes.items())
        }
        self.rclone_plugin = None
        if rclone_plugin_image is not None:
            # `args=-v`: the plugin breaks with empty args (rclone docs). Upstream reads plugin
            # args back incompletely, so `envs` would diff forever; it is fixed at install.
            self.rclone_plugin = docker.Plugin(
                f"{resource_name}-rclone-{self.db_node}",
                name=rclone_plugin_image,
                alias="rclone",
                enabled=True,
                grant_all_permissions=True,
                envs=["args=-v"],
                opts=pulumi.ResourceOptions(
                    parent=self, provider=self.providers[self.db_node], ignore_changes=["envs"]
                ),
            )
        self.register_outputs(
            {"manager_node": self.manager_node, "db_node": self.db_node, "nodes": sorted(self.providers)}
        )

    @property
    def manager(self) -> docker.Provider:
        """The provider for Swarm-level resources."""
        return self.providers[self.manager_node]

    @property
    def db(self) -> docker.Provider:
        """The provider of the node that holds the node-local database volumes."""
        return self.providers[self.db_node]

    @property
    def placement(self) -> Placement:
        """The manager, the stateful node and its rclone plugin, for components that place by role."""
        return Placement(self.manager, self.db, self.rclone_plugin)
