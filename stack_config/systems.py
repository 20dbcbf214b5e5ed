"""Per-system settings: SPIRE, Keycloak, OpenZiti, storage and workloads.

Each section owns the defaults its component needs; environment-dependent checks (strict mode)
live in `stack_config.StackConfig`, which sees the whole tree.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from stack_config.base import Model

_TRUST_DOMAIN_RE = re.compile(r"^[a-z0-9._-]{1,255}$")


def _trust_domain(v: str) -> str:
    if not _TRUST_DOMAIN_RE.match(v):
        raise ValueError(
            f"{v!r} is not a SPIFFE trust domain: use lowercase letters, digits, '.', '-' and '_' without a scheme"
        )
    return v


class SpireTransport(Model):
    """How the provider reaches the SPIRE Server API for registration entries."""

    kind: Literal["docker-exec", "grpc", "kubectl-exec"] = Field(
        default="docker-exec",
        description="docker-exec runs `spire-server entry ...` in the server container on `node`; "
        "grpc dials `socket_path`.",
    )
    node: str | None = Field(default=None, description="Node (key of `nodes`) whose engine runs the SPIRE server.")
    socket_path: str | None = Field(default=None, description="Admin API Unix socket forwarded to this machine (grpc).")


class SpireSettings(Model):
    trust_domain: str = Field(description="SPIFFE trust domain of the SPIRE server, e.g. prod.acme.net.")
    datastore: Literal["sqlite3", "postgres"] = Field(default="sqlite3")
    ca_ttl: str = Field(default="24h", description="TTL of SPIRE's intermediate CA signed by the root CA.")
    default_x509_svid_ttl: str = Field(default="1h")
    default_jwt_svid_ttl: str = Field(default="5m")
    root_ca_validity_hours: int = Field(default=87600, gt=24, description="Validity of the Pulumi-owned root CA.")
    transport: SpireTransport = Field(default_factory=SpireTransport)

    @field_validator("trust_domain")
    @classmethod
    def _td(cls, v: str) -> str:
        return _trust_domain(v)


class KeycloakSettings(Model):
    hostname: str = Field(description="Public host name of Keycloak (KC_HOSTNAME), e.g. auth.acme.net.")
    realm: str = Field(default="platform", min_length=1, description="Realm the platform's users live in.")
    admin_user: str = Field(default="admin", min_length=1, description="Bootstrap admin user name.")
    ziti_client_id: str = Field(default="openziti", min_length=1, description="OIDC client Ziti users log in with.")
    published_port: int | None = Field(default=None, ge=1, le=65535, description="Host port (dev); prod uses Caddy.")
    proxy_network: str = Field(
        default="caddy_caddy",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="External overlay network of caddy-docker-proxy that Keycloak joins in prod.",
    )


class ZitiSettings(Model):
    advertised_address: str = Field(description="Host name clients and routers use to reach the controller.")
    advertised_port: int = Field(default=1280, ge=1, le=65535)
    cluster_trust_domain: str = Field(description="Trust domain of the controller cluster; must differ from SPIRE's.")
    admin_user: str = Field(default="admin", min_length=1)
    router_name: str = Field(default="edge-router-1", min_length=1)
    router_advertised_address: str = Field(description="Host name the edge router advertises to clients.")
    router_port: int = Field(default=3022, ge=1, le=65535)

    @field_validator("cluster_trust_domain")
    @classmethod
    def _td(cls, v: str) -> str:
        return _trust_domain(v)


class StorageSettings(Model):
    noncurrent_version_days: int = Field(default=30, ge=1, description="Days before old object versions expire.")
    backup_interval_minutes: int = Field(
        default=15, ge=1, le=15, description="Backup period of live databases; the RPO is at most this."
    )
    restore_on_first_start: bool = Field(
        default=False, description="Restore the latest bucket backup into an empty data volume before first start."
    )


class Workload(Model):
    """A workload that gets a SPIFFE ID from SPIRE and a Ziti identity whose externalId is that ID."""

    spiffe_path: str = Field(description="Path of the SPIFFE ID, e.g. /ns/payments/sa/api.")
    node: str = Field(description="Node (key of `nodes`) whose agent attests the workload.")
    selectors: list[str] = Field(
        min_length=1, description='Workload selectors, "type:value", e.g. docker:label:app:api.'
    )
    ziti_role_attributes: list[str] = Field(default_factory=list)
    dns_names: list[str] = Field(default_factory=list)
    x509_svid_ttl: int = Field(default=0, ge=0, description="Seconds; 0 = server default.")
    svid_helper: bool = Field(
        default=False,
        description="Run a spiffe-helper container on the workload's node that keeps its X.509 SVID in the "
        "tmpfs volume svid-<name>; the helper carries the workload's docker:label selectors as its labels.",
    )

    @field_validator("svid_helper")
    @classmethod
    def _helper_selectors(cls, v: bool, info: ValidationInfo) -> bool:
        """The helper fetches the SVID as itself, so the entry's selectors must match the helper."""
        if not v:
            return v
        for sel in info.data.get("selectors") or []:
            parts = sel.split(":", 3)
            if len(parts) != 4 or parts[:2] != ["docker", "label"] or not parts[2]:
                raise ValueError(
                    f"needs docker:label:<key>:<value> selectors (the helper container carries them as labels), "
                    f"but selector {sel!r} is not one: change the workload's selectors or set svidHelper false"
                )
            if parts[2].startswith("com.docker.swarm."):
                raise ValueError(
                    f"selector {sel!r} uses a label the Swarm sets itself and a container cannot carry: "
                    "use your own label key in the workload's selectors or set svidHelper false"
                )
        return v

    def helper_labels(self) -> dict[str, str]:
        """The labels that make the spiffe-helper container match this workload's selectors."""
        return {sel.split(":", 3)[2]: sel.split(":", 3)[3] for sel in self.selectors}

    @field_validator("spiffe_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or v.endswith("/") or "//" in v:
            raise ValueError(f"{v!r} must start with '/', have no empty segments and no trailing '/'")
        return v
