"""Pinned container images. The server versions come from `stack_config/versions.py`, the pin table
the test suites build their real servers from, so what is deployed is what the tests ran."""

from __future__ import annotations

from pydantic import Field, field_validator

from stack_config import versions
from stack_config.base import Model, check_pinned_image


class Images(Model):
    """Every image the platform runs, each pinned to an explicit version."""

    spire_server: str = Field(default=f"ghcr.io/spiffe/spire-server:{versions.SPIRE}", description="SPIRE server.")
    spire_agent: str = Field(default=f"ghcr.io/spiffe/spire-agent:{versions.SPIRE}", description="SPIRE agent.")
    spiffe_helper: str = Field(
        default="ghcr.io/spiffe/spiffe-helper:0.11.0", description="spiffe-helper (workloads with svidHelper)."
    )
    spiffe_csi_driver: str = Field(
        default="ghcr.io/spiffe/spiffe-csi-driver:0.2.3",
        description="SPIFFE CSI driver (platform kubernetes): mounts the Workload API socket into pods.",
    )
    csi_node_driver_registrar: str = Field(
        default="registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.6.2",
        description="Registers the SPIFFE CSI driver with each node's kubelet (platform kubernetes).",
    )
    spire_controller_manager: str = Field(
        default=f"ghcr.io/spiffe/spire-controller-manager:{versions.SPIRE_CONTROLLER_MANAGER}",
        description="spire-controller-manager beside the enterprise topology's downstream server (platform "
        "kubernetes): registers pods from ClusterSPIFFEID resources.",
    )
    cnpg_postgres: str = Field(
        default=f"ghcr.io/cloudnative-pg/postgresql:{versions.CNPG_POSTGRES}-system-trixie",
        description="PostgreSQL of the CloudNativePG cluster Keycloak uses (platform kubernetes, kubernetes.iam): "
        "a CNPG operand image.",
    )
    loki: str = Field(default=f"docker.io/grafana/loki:{versions.LOKI}", description="Loki (kubernetes.iam).")
    promtail: str = Field(
        default=f"docker.io/grafana/promtail:{versions.LOKI}", description="Promtail (kubernetes.iam)."
    )
    prometheus: str = Field(
        default=f"docker.io/prom/prometheus:v{versions.PROMETHEUS}", description="Prometheus (kubernetes.iam)."
    )
    grafana: str = Field(
        default=f"docker.io/grafana/grafana:{versions.GRAFANA}", description="Grafana (kubernetes.iam)."
    )
    postgres: str = Field(
        default=f"docker.io/library/postgres:{versions.POSTGRES}-bookworm", description="PostgreSQL (Keycloak, SPIRE)."
    )
    keycloak: str = Field(default=f"quay.io/keycloak/keycloak:{versions.KEYCLOAK}", description="Keycloak.")
    ziti_controller: str = Field(
        default=f"docker.io/openziti/ziti-controller:{versions.ZITI}", description="OpenZiti controller."
    )
    ziti_router: str = Field(
        default=f"docker.io/openziti/ziti-router:{versions.ZITI}", description="OpenZiti edge router."
    )
    backup: str = Field(
        default="docker.io/rclone/rclone:1.71.2",
        description="Shell image for one-shot restore containers (restoreOnFirstStart).",
    )
    sqlite_backup: str = Field(
        default="docker.io/library/python:3.13.7-alpine",
        description="Runs SQLite's online backup API against SPIRE's datastore (prod backups).",
    )
    rclone_plugin: str = Field(
        default="rclone/docker-volume-rclone:amd64-1.71.2",
        description="The rclone Docker volume plugin installed on the stateful node (prod); named as "
        "`docker plugin ls` shows it, so the provider reads back the same name.",
    )

    @field_validator("*")
    @classmethod
    def _pinned(cls, v: str) -> str:
        return check_pinned_image(v)
