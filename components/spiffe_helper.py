"""SpiffeHelper: keeps one workload's X.509 SVID fresh in a shared tmpfs volume on its node.

The sidecar pattern for Swarm, where a service has one container and no pod to share: the helper
runs as a plain container on the workload's node (that node's agent serves its Workload API
socket) and writes `svid.pem`, `svid.key` and `bundle.pem` into the named volume `svid-<workload>`,
a node-local tmpfs volume, so keys never touch disk. The workload's service mounts that volume
(read-only) on the same node and authenticates to OpenZiti with the SVID, whose URI SAN is the
identity's `externalId`: no Ziti enrollment is needed.

SPIRE attests the process that calls the Workload API, i.e. the helper, so the helper carries the
workload's `docker:label` selectors as its own labels and the workload's registration entry
matches it. Its healthcheck runs the helper once (`-daemon-mode=false`) into a scratch tmpfs: it
passes only if an SVID can be fetched right now (the image is FROM scratch, no shell).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_docker as docker

from components.spire_conf import HelperConf

SVID_DIR = "/svid"
PROBE_DIR = "/probe"
CONF_PATH = "/etc/spiffe-helper/helper.conf"
PROBE_CONF_PATH = "/etc/spiffe-helper/probe.conf"


def volume_name(workload: str) -> str:
    return f"svid-{workload}"


class SpiffeHelper(pulumi.ComponentResource):
    """spiffe-helper container + tmpfs volume for one workload on one node."""

    volume_name: str
    conf: HelperConf
    container: docker.Container
    volume: docker.Volume

    def __init__(
        self,
        resource_name: str,
        *,
        workload: str,
        image: str,
        labels: Mapping[str, str],
        agent_socket_dir: str,
        agent_socket_path: str,
        provider: docker.Provider,
        agent: pulumi.Resource | None = None,
        memory_mb: int | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("identity-platform:spire:SpiffeHelper", resource_name, None, opts)
        self.volume_name = volume_name(workload)
        self.conf = HelperConf(agent_address=agent_socket_path, cert_dir=SVID_DIR)
        probe = HelperConf(agent_address=agent_socket_path, cert_dir=PROBE_DIR, daemon_mode=False)
        self.volume = docker.Volume(
            f"{resource_name}-volume",
            name=self.volume_name,
            driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=0755"},
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.container = docker.Container(
            f"{resource_name}-container",
            name=f"spiffe-helper-{workload}",
            image=image,
            command=["-config", CONF_PATH],
            restart="unless-stopped",
            # Talks only to the agent's Unix socket.
            network_mode="none",
            labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())],
            volumes=[
                docker.ContainerVolumeArgs(host_path=agent_socket_dir, container_path=agent_socket_dir, read_only=True),
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=SVID_DIR),
            ],
            tmpfs={PROBE_DIR: "size=1m"},
            uploads=[
                docker.ContainerUploadArgs(file=CONF_PATH, content=self.conf.render()),
                docker.ContainerUploadArgs(file=PROBE_CONF_PATH, content=probe.render()),
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "/spiffe-helper", "-config", PROBE_CONF_PATH, "-daemon-mode=false"],
                interval="60s",
                timeout="15s",
                start_period="30s",
                retries=3,
            ),
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "3"},
            memory=memory_mb,  # prod sets a limit; the helper needs a few MB
            # Not `wait`: the SVID exists only once the workload's SPIRE entry does (a later resource).
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[agent] if agent else []),
        )
        self.register_outputs({"volume_name": self.volume_name})
