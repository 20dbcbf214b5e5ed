"""BackupJob: backups of one stateful service to its stack's bucket, and the restore that starts an
empty data volume from the latest of them (prod; `storage.*`). SPIRE (SQLite), the Ziti controller
and every PostgreSQL use it; what differs between them is the job's image and script.

What it makes:
- the rclone volume `<name>` on the stateful node: `<bucket>/<bucket_path>`, holding only
  files the job writes whole and renames into place (rclone uploads a file once it is closed;
  live databases never run on it: docs/architecture.md, "Storage policy");
- with `restore`, a one-shot container on the stateful node that runs the restore script with the
  data volume at `/data` and the backups at `/backup` (read-only) and exits; the stateful service
  waits for it (`restored`). The script must leave a volume that already holds data alone;
- the backup loop, a Swarm service on the stateful node (where the data volume and the rclone
  volume are) that starts after the stateful service (`start`). Its healthcheck fails when the last
  success is older than two intervals plus five minutes, so a stalled backup shows in `docker
  service ls` and fails `pulumi up` (converge_config).

Two steps because the stateful service sits between them: the restore runs before it, the loop
after it. Backups exist only where a bucket does, so a restore without one is refused by the
configuration (`storage.restoreOnFirstStart` in dev), never here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi
import pulumi_docker as docker

from components.docker_helpers import Placement, after, healthcheck, limits, network_attachment, service, volume_mount
from components.scripts import script

BACKUP_MOUNT = "/backup"
RESTORE_DATA_MOUNT = "/data"
# Each job script writes the epoch seconds of its last success here (its STATE_DIR default).
LAST_SUCCESS = "/tmp/last-success"  # noqa: S108 - inside the job's container
FRESHNESS_SLACK_SECONDS = 300


def freshness_check(interval_seconds: int, marker: str = LAST_SUCCESS) -> list[str]:
    """The job's healthcheck: healthy while `marker` is younger than two intervals plus slack."""
    max_age = 2 * interval_seconds + FRESHNESS_SLACK_SECONDS
    return ["CMD", "sh", "-c", script("backup-fresh.sh"), "fresh", marker, str(max_age)]


class Bucket(Protocol):
    """Where the backups go (`components.storage.SpacesBucket`)."""

    def rclone_driver_options(self, path: str) -> pulumi.Output[dict[str, str]]: ...


@dataclass(frozen=True)
class Backups:
    """A stack's backups (prod, `storage.*`): its bucket, the period (the RPO) and whether an empty
    data volume starts from the latest backup."""

    bucket: Bucket
    interval_minutes: int
    restore_on_first_start: bool = False


@dataclass(frozen=True)
class Restore:
    """How to restore into an empty `data_volume`: `script` (a file of components/scripts) runs in
    `image` with `/bin/sh`, in a container named `container_name`."""

    container_name: str
    image: str
    script: str
    data_volume: docker.Volume


@dataclass(frozen=True)
class BackupJobArgs:
    """One job: where its backups go, what runs it, what it reads."""

    # The job's Swarm service, and its rclone volume.
    name: str
    backups: Backups
    # Where in the bucket this job's files go.
    bucket_path: str
    image: str
    command: Sequence[str]
    placement: Placement
    env: Mapping[str, str] = field(default_factory=dict)
    mounts: Sequence[docker.ServiceTaskSpecContainerSpecMountArgs] = ()
    secrets: Sequence[docker.ServiceTaskSpecContainerSpecSecretArgs] = ()
    network_ids: Sequence[pulumi.Input[str]] = ()
    # How to restore; it runs when `backups.restore_on_first_start` asks for it.
    restore: Restore | None = None


class BackupJob(pulumi.ComponentResource):
    """The rclone volume, the optional first-start restore and (after `start`) the backup loop."""

    volume: docker.Volume
    restored: list[pulumi.Resource]
    service: docker.Service | None

    def __init__(self, resource_name: str, args: BackupJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:storage:BackupJob", resource_name, None, opts)
        self._name, self._args = resource_name, args
        # depends_on is not inherited through `parent`: the restore waits for what the job was told to.
        self._after = after(opts)
        # The volume and the loop were children of the stack component before this one existed (the
        # loop then had this component's name): aliases keep an existing stack's volume and service.
        former = opts.parent if opts is not None else None
        self._moved = [pulumi.Alias(parent=former)] if former is not None else []
        self._moved_service = [pulumi.Alias(name=resource_name, parent=former)] if former is not None else []
        self.volume = docker.Volume(
            f"{resource_name}-volume",
            name=args.name,
            driver="rclone",
            driver_opts=args.backups.bucket.rclone_driver_options(args.bucket_path),
            labels=[docker.VolumeLabelArgs(label="zt.storage", value="rclone")],
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.placement.stateful_node,
                depends_on=[args.placement.rclone_plugin] if args.placement.rclone_plugin else [],
                # Volume options are immutable: a key rotation replaces the volume (its name is fixed).
                delete_before_replace=True,
                additional_secret_outputs=["driver_opts"],
                aliases=self._moved,
            ),
        )
        self.restored = []
        if args.restore is not None and args.backups.restore_on_first_start:
            self.restored.append(self._restore_container(args.restore))
        self.service = None

    def _restore_container(self, restore: Restore) -> docker.Container:
        """Attached and `must_run=False`: `pulumi up` waits until it has exited."""
        return docker.Container(
            f"{self._name}-restore",
            name=restore.container_name,
            image=restore.image,
            entrypoints=["/bin/sh", "-c"],
            command=[restore.script],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=restore.data_volume.name, container_path=RESTORE_DATA_MOUNT),
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=BACKUP_MOUNT, read_only=True),
            ],
            network_mode="none",
            attach=True,
            must_run=False,
            healthcheck=docker.ContainerHealthcheckArgs(tests=["NONE"]),
            opts=pulumi.ResourceOptions(
                parent=self, provider=self._args.placement.stateful_node, depends_on=self._after
            ),
        )

    def start(self, *, after: Sequence[pulumi.Resource]) -> docker.Service:
        """The backup loop, once the service it backs up (`after`) is running."""
        args = self._args
        interval = args.backups.interval_minutes * 60
        self.service = service(
            f"{self._name}-service",
            name=args.name,
            # On the stateful node: the data volume and the rclone volume are there.
            stateful=True,
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=args.image,
                commands=list(args.command),
                env={**args.env, "BACKUP_DIR": BACKUP_MOUNT, "BACKUP_INTERVAL_SECONDS": str(interval)},
                secrets=list(args.secrets) or None,
                mounts=[*args.mounts, volume_mount(self.volume.name, BACKUP_MOUNT, driver="rclone")],
                healthcheck=healthcheck(freshness_check(interval), interval="60s", start_period="5m", retries=3),
            ),
            networks=[network_attachment(n) for n in args.network_ids],
            # A job exists only in prod (buckets): always within limits.
            resources=limits(True, memory_mb=256, cpus=0.5),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.placement.manager, depends_on=list(after), aliases=self._moved_service
            ),
        )
        self.register_outputs({"name": args.name})
        return self.service
