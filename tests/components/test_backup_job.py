"""BackupJob: the rclone volume, the first-start restore, the backup loop and its freshness check,
for SPIRE (SQLite), the Ziti controller and Keycloak's PostgreSQL, as the prod stack builds them;
the freshness check and the volume's placement are also checked on a job alone."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pytest

from components.backup_job import BackupJob, BackupJobArgs, Backups, Restore
from components.storage import SpacesBucket
from components.swarm_nodes import SwarmNodes, SwarmNodesArgs
from tests.components._platform import (
    CONTAINER,
    PLUGIN,
    VOLUME,
    is_secret,
    platform,
    provider_of_node,
    provider_urn,
    services,
    spec,
    unwrap,
)
from tests.harness.mock_engine import ProgramRun, run

JOB = "identity-platform:storage:BackupJob"
STACK = "urn:pulumi:prod::identity-platform::pulumi:pulumi:Stack"
# job resource -> (its Swarm service, its rclone volume, the service it backs up, the bucket's path,
#                  the component that held these resources before BackupJob existed)
JOBS = {
    "spire-backup": ("spire-backup", "spire-backup", "spire-server", "backups/spire-server",
                     f"{STACK}$identity-platform:spire:SpireStack::spire"),
    "ziti-backup": ("ziti-backup", "ziti-backup", "ziti-controller", "backups/ziti-controller",
                    f"{STACK}$identity-platform:ziti:ZitiStack::ziti"),
    "keycloak-db-backup": (
        "keycloak-postgres-backup", "keycloak-postgres-backup", "keycloak-postgres", "backups/keycloak-postgres",
        "urn:pulumi:prod::identity-platform::identity-platform:keycloak:KeycloakStack$identity-platform:db:Postgres"
        "::keycloak-db",
    ),
}  # fmt: skip
RESTORE = {"storage": {"noncurrentVersionDays": 30, "backupIntervalMinutes": 15, "restoreOnFirstStart": True}}


@pytest.fixture(scope="module")
def prod() -> ProgramRun:
    return platform("prod")[0]


@pytest.fixture(scope="module")
def prod_restore() -> ProgramRun:
    return platform("prod", config=RESTORE)[0]


@pytest.mark.parametrize("job", sorted(JOBS))
class TestEachStatefulServiceHasOneJob:
    def test_volume_on_the_stateful_node_after_the_plugin_with_secret_options(self, prod: ProgramRun, job: str) -> None:
        _, volume_name, _, path, _ = JOBS[job]
        vol = prod.get(VOLUME, f"{job}-volume")
        assert vol.parent == prod.get(JOB, job).urn
        assert provider_urn(vol) == provider_of_node(prod, "manager-1"), "the stateful node holds the plugin"
        (plugin,) = prod.of_type(PLUGIN)
        assert plugin.urn in vol.dependencies, "the driver must be installed before the volume"
        assert vol.inputs["name"] == volume_name and vol.inputs["driver"] == "rclone"
        assert vol.delete_before_replace, "a fixed name: the old volume goes first"
        assert "driverOpts" in vol.additional_secret_outputs and is_secret(vol.inputs["driverOpts"])
        opts = unwrap(vol.inputs["driverOpts"])
        assert opts["path"].endswith(f"/{path}")

    def test_loop_starts_after_its_service_with_the_freshness_check(self, prod: ProgramRun, job: str) -> None:
        name, volume_name, backed_up, _, _ = JOBS[job]
        svc = services(prod)[name]
        assert services(prod)[backed_up].urn in svc.dependencies
        cs = spec(svc)
        assert cs["env"]["BACKUP_INTERVAL_SECONDS"] == "900" and cs["env"]["BACKUP_DIR"] == "/backup"
        test = cs["healthcheck"]["tests"]
        assert test[:3] == ["CMD", "sh", "-c"] and test[4:] == ["fresh", "/tmp/last-success", "2100"]
        backup = next(m for m in cs["mounts"] if m["target"] == "/backup")
        assert backup["source"] == volume_name and backup["volumeOptions"]["driverName"] == "rclone"
        assert svc.inputs["taskSpec"]["placement"]["constraints"] == ["node.labels.zt.db==true"]

    def test_state_follows_the_move_under_the_job(self, prod: ProgramRun, job: str) -> None:
        """Aliases to the former parent (and the loop's former name): an existing stack keeps its
        volume and service."""
        name, *_, former = JOBS[job]
        assert prod.get(VOLUME, f"{job}-volume").alias_parents == (former,)
        svc = services(prod)[name]
        assert svc.name == f"{job}-service" and svc.alias_parents == (former,)
        assert svc.alias_names == (job,)


class TestRestoreOnFirstStart:
    @pytest.mark.parametrize(
        ("job", "container", "server"),
        [("spire-backup", "spire-server-restore", "spire-server"),
         ("ziti-backup", "ziti-controller-restore", "ziti-controller")],
    )  # fmt: skip
    def test_runs_once_before_the_server(self, prod_restore: ProgramRun, job: str, container: str, server: str) -> None:
        restore = prod_restore.get(CONTAINER, f"{job}-restore")
        assert restore.inputs["name"] == container
        assert restore.inputs["attach"] is True and restore.inputs["mustRun"] is False
        assert provider_urn(restore) == provider_of_node(prod_restore, "manager-1")
        assert restore.urn in services(prod_restore)[server].dependencies
        vols = {v["containerPath"]: v for v in restore.inputs["volumes"]}
        assert vols["/backup"]["volumeName"] == JOBS[job][1] and vols["/backup"]["readOnly"] is True
        assert "/data" in vols

    def test_no_restore_container_without_the_flag(self, prod: ProgramRun) -> None:
        assert not [c for c in prod.of_type(CONTAINER) if c.name.endswith("-restore")]


class TestFreshnessCheck:
    """The check as a container runs it (`sh -c SCRIPT fresh MARKER MAX_AGE`), against a marker file."""

    def check(self, marker: Path) -> int:
        (job,) = [r for r in services(platform("prod")[0]).values() if r.inputs["name"] == "ziti-backup"]
        test = [marker.as_posix() if a == "/tmp/last-success" else a for a in spec(job)["healthcheck"]["tests"]]
        return subprocess.run(test[1:], check=False).returncode

    def test_fresh_old_and_missing(self, tmp_path: Path) -> None:
        marker = tmp_path / "last-success"
        assert self.check(marker) != 0, "no success yet"
        marker.write_text(str(int(time.time()) - 60))
        assert self.check(marker) == 0
        marker.write_text(str(int(time.time()) - 2101))
        assert self.check(marker) != 0, "older than two intervals plus five minutes"


def test_a_job_alone_mounts_what_it_is_given() -> None:
    """Outside a stack: the job's own names, its command and env as given, the mounts it adds."""

    def body() -> None:
        swarm = SwarmNodes(
            "swarm",
            SwarmNodesArgs(
                docker_hosts={"db": "ssh://root@db", "w1": "ssh://root@w1"},
                manager_node="w1",
                stateful_node="db",
                rclone_plugin_image="rclone/docker-volume-rclone:amd64-1.71.2",
            ),
        )
        bucket = SpacesBucket("b", bucket_name="acme-prod-x", region="fra1", noncurrent_version_days=30)
        data = docker.Volume("x-data", name="x-data", opts=pulumi.ResourceOptions(provider=swarm.db))
        job = BackupJob(
            "x-backup",
            BackupJobArgs(
                name="x-backup",
                backups=Backups(bucket, interval_minutes=5, restore_on_first_start=True),
                bucket_path="backups/x",
                image="docker.io/library/alpine:3.22.1",
                command=["/bin/sh", "-c", "true"],
                env={"X": "1"},
                placement=swarm.placement,
                restore=Restore("x-restore", "docker.io/library/alpine:3.22.1", "true", data),
            ),
        )
        job.start(after=[])

    r = run(body, stack="prod")
    vol = r.get(VOLUME, "x-backup-volume")
    assert provider_urn(vol) == r.get("pulumi:providers:docker", "swarm-db").urn
    assert unwrap(vol.inputs["driverOpts"])["path"] == "acme-prod-x/backups/x"
    cs = spec(services(r)["x-backup"])
    assert cs["commands"] == ["/bin/sh", "-c", "true"]
    assert cs["env"] == {"X": "1", "BACKUP_DIR": "/backup", "BACKUP_INTERVAL_SECONDS": "300"}
    assert cs["healthcheck"]["tests"][4:] == ["fresh", "/tmp/last-success", "900"]
    restore = r.get(CONTAINER, "x-backup-restore")
    assert restore.inputs["name"] == "x-restore" and restore.inputs["command"] == ["true"]
    assert restore.inputs["entrypoints"] == ["/bin/sh", "-c"]
    assert {v["containerPath"]: v["volumeName"] for v in restore.inputs["volumes"]} == {
        "/data": "x-data", "/backup": "x-backup"
    }
