"""PostgresDatabase: one PostgreSQL service on the stateful node, its generated password, and (prod)
scheduled `pg_dump` backups to the stack's bucket with an optional restore on first start.

The data directory is a node-local volume (never an rclone mount: PostgreSQL needs working fsync
and locks). Backups are custom-format dumps written to a local temp file, then moved onto the
rclone volume as one closed file, so rclone uploads a complete archive; the bucket's versioning
keeps older dumps until the lifecycle rule expires them. With `restore_on_first_start`, an
init script restores the latest dump when PostgreSQL initialises an empty data directory —
the image runs `/docker-entrypoint-initdb.d` scripts only then, so a populated database is never
overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.backup_job import BACKUP_MOUNT, BackupJob, BackupJobArgs, Backups
from components.docker_helpers import (
    SECRETS_DIR,
    Placement,
    after,
    config_file,
    config_mount,
    generated_password,
    healthcheck,
    limits,
    network_attachment,
    secret_file,
    secret_mount,
    service,
    volume_mount,
)
from components.scripts import script

PGDATA_MOUNT = "/var/lib/postgresql/data"
POSTGRES_UID = "999"  # the postgres user of the official Debian-based image
# An init script (/docker-entrypoint-initdb.d): restores the latest dump from BACKUP_MOUNT.
RESTORE_SCRIPT = script("postgres-restore.sh")


@dataclass(frozen=True)
class PostgresArgs:
    """One database: its service, names, image and network; where it runs; its backups (prod)."""

    service_name: str
    database: str
    user: str
    image: str
    network: docker.Network
    placement: Placement
    prod: bool
    backups: Backups | None = None
    # A libpq password file as well (clients without a password variable: SPIRE); backups make one too.
    pgpass: bool = False


class PostgresDatabase(pulumi.ComponentResource):
    """A single-node PostgreSQL for one stack (Keycloak's, or SPIRE's when configured)."""

    host: str
    port: int
    database: str
    user: str
    password: pulumi.Output[str]
    password_secret: docker.Secret
    pgpass_secret: docker.Secret | None
    service: docker.Service
    backup_service: docker.Service | None

    def __init__(self, resource_name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:db:Postgres", resource_name, None, opts)
        # depends_on is not inherited through `parent`: the service waits for what this waits for.
        wait = after(opts)
        service_name, database, user, image = args.service_name, args.database, args.user, args.image
        network, place, prod, backups = args.network, args.placement, args.prod, args.backups
        swarm_opts = pulumi.ResourceOptions(parent=self, provider=place.manager)
        self.host, self.port, self.database, self.user = service_name, 5432, database, user

        self.password, self.password_secret = generated_password(
            f"{resource_name}-password", base=f"{service_name}-password", parent=self, provider=place.manager
        )
        # A libpq password file, for clients that take no password variable (backups, SPIRE).
        self.pgpass_secret = None
        if args.pgpass or backups is not None:
            line = self.password.apply(lambda p: f"{service_name}:5432:{database}:{user}:{p}\n")
            self.pgpass_secret = secret_file(
                f"{resource_name}-pgpass",
                base=f"{service_name}-pgpass",
                content=line,
                parent=self,
                provider=place.manager,
            )
        # Node-local data; kept when the stack is destroyed (a database is not a cache).
        self.data_volume = docker.Volume(
            f"{resource_name}-data",
            name=f"{service_name}-data",
            driver="local",
            opts=pulumi.ResourceOptions(parent=self, provider=place.stateful_node, retain_on_delete=prod),
        )

        backup: BackupJob | None = None
        if backups is not None and self.pgpass_secret is not None:
            backup = BackupJob(
                f"{resource_name}-backup",
                BackupJobArgs(
                    name=f"{service_name}-backup",
                    backups=backups,
                    bucket_path=f"backups/{service_name}",
                    image=image,
                    command=["/bin/sh", "-c", script("postgres-backup.sh")],
                    env={
                        "PGHOST": service_name,
                        "PGPORT": "5432",
                        "PGDATABASE": database,
                        "PGUSER": user,
                        "PGPASSFILE": f"{SECRETS_DIR}/{service_name}.pgpass",
                    },
                    # libpq ignores a password file that group or others can read.
                    secrets=[secret_mount(self.pgpass_secret, f"{service_name}.pgpass", mode=0o400)],
                    network_ids=[network.id],
                    placement=place,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=wait),
            )

        mounts = [volume_mount(self.data_volume.name, PGDATA_MOUNT)]
        configs: list[docker.ServiceTaskSpecContainerSpecConfigArgs] = []
        if backups is not None and backups.restore_on_first_start and backup is not None:
            # The image runs /docker-entrypoint-initdb.d scripts only when it initialises an empty
            # data directory, so a populated database is never overwritten.
            restore = config_file(
                f"{resource_name}-restore-script",
                base=f"{service_name}-restore",
                content=RESTORE_SCRIPT,
                parent=self,
                provider=place.manager,
            )
            configs.append(config_mount(restore, "/docker-entrypoint-initdb.d/50-restore.sh", mode=0o555))
            mounts.append(volume_mount(backup.volume.name, BACKUP_MOUNT, read_only=True, driver="rclone"))

        self.service = service(
            f"{resource_name}-service",
            name=service_name,
            stateful=True,
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=image,
                env={
                    "POSTGRES_DB": database,
                    "POSTGRES_USER": user,
                    "POSTGRES_PASSWORD_FILE": f"{SECRETS_DIR}/{service_name}-password",
                },
                # The entrypoint re-reads the file after dropping to the postgres user (uid 999).
                secrets=[secret_mount(self.password_secret, f"{service_name}-password", uid=POSTGRES_UID)],
                configs=configs or None,
                mounts=mounts,
                healthcheck=healthcheck(
                    ["CMD", "pg_isready", "--username", user, "--dbname", database], interval="10s", start_period="60s"
                ),
                stop_grace_period="60s",
                stop_signal="SIGINT",  # "fast shutdown": roll back open transactions, checkpoint, exit
            ),
            networks=[network_attachment(network.id)],
            resources=limits(prod, memory_mb=1024, cpus=1.0),
            opts=swarm_opts.merge(pulumi.ResourceOptions(depends_on=wait)),
        )

        self.backup_service = backup.start(after=[self.service]) if backup else None
        self.register_outputs(
            {"host": self.host, "database": self.database, "user": self.user, "password": self.password}
        )
