"""Pinned container images. Defaults live here, in one place, so upgrades are one reviewed diff."""

from __future__ import annotations

from pydantic import Field, field_validator

from stack_config.base import Model, check_pinned_image


class Images(Model):
    """Every image the platform runs, each pinned to an explicit version."""

    spire_server: str = Field(default="ghcr.io/spiffe/spire-server:1.15.3")
    spire_agent: str = Field(default="ghcr.io/spiffe/spire-agent:1.15.3")
    spiffe_helper: str = Field(default="ghcr.io/spiffe/spiffe-helper:0.11.0")
    postgres: str = Field(default="docker.io/library/postgres:17.6")
    keycloak: str = Field(default="quay.io/keycloak/keycloak:26.6.2")
    ziti_controller: str = Field(default="docker.io/openziti/ziti-controller:2.0.1")
    ziti_router: str = Field(default="docker.io/openziti/ziti-router:2.0.1")
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
