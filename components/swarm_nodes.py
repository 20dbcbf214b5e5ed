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
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker_helpers import Placement


@dataclass(frozen=True)
class SwarmNodesArgs:
    """The node map as the providers need it (the configuration has checked it)."""

    # node name -> the URL of its Docker engine (unix://, ssh://, tcp://)
    docker_hosts: Mapping[str, str]
    manager_node: str
    # The one node labelled zt.db=true: databases and rclone volumes live there.
    stateful_node: str
    # prod: the rclone volume plugin to install on the stateful node; None: no plugin.
    rclone_plugin_image: str | None = None


class SwarmNodes(pulumi.ComponentResource):
    """The Docker engines of the Swarm, as Pulumi providers."""

    providers: dict[str, docker.Provider]
    manager_node: str
    db_node: str
    rclone_plugin: docker.Plugin | None

    def __init__(self, resource_name: str, args: SwarmNodesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:swarm:Nodes", resource_name, None, opts)
        self.manager_node = args.manager_node
        self.db_node = args.stateful_node
        self.providers = {
            node: docker.Provider(
                f"{resource_name}-{node}",
                host=host,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for node, host in sorted(args.docker_hosts.items())
        }
        self.rclone_plugin = None
        if args.rclone_plugin_image is not None:
            # `args=-v`: the plugin breaks with empty args (rclone docs). Upstream reads plugin
            # args back incompletely, so `envs` would diff forever; it is fixed at install.
            self.rclone_plugin = docker.Plugin(
                f"{resource_name}-rclone-{self.db_node}",
                name=args.rclone_plugin_image,
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
        return Placement(self.manager, self.db, self.db_node, dict(self.providers), self.rclone_plugin)
