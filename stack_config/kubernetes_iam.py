"""`kubernetes.iam`: Keycloak on CloudNativePG behind Istio, in the cluster of `platform: kubernetes`.

Present: the program deploys the IAM design (components/kubernetes/iam.py) into the one cluster of
the topology: the CloudNativePG operator, a CNPG `Cluster`, Keycloak (clustered), Istio STRICT
mTLS with the CNPG status port PERMISSIVE, default-deny network policies, and, when enabled,
observability and an ArgoCD ApplicationSet. Absent: the cluster gets SPIRE alone.

Sizes follow `environment` and are not settings: dev runs one PostgreSQL instance and one Keycloak
replica, prod three instances (a primary and two standbys, one per node) and two Keycloak replicas
(clustered through their shared database). An SRE who needs other sizes changes the table
`REPLICAS` in one place, which the tests pin.

The cluster's Istio is the user's (its control plane, its ingress gateway): the program writes the
mesh policies and routes, never installs istiod. Strict mode refuses what only a laptop cluster
gets away with: a placeholder or local host name, a Gateway without TLS, a plain-http admin URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final, Literal

from pydantic import Field, field_validator

from stack_config.base import (
    Hostname,
    Model,
    ScalarText,
    checked,
    formatted,
    is_local_host,
    is_placeholder_domain,
    whole_number,
)
from stack_config.systems import HttpUrl, keycloak_url_problem

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_LABEL_KEY_FORMAT = (
    "a Kubernetes label key: [prefix/]name, the name 1-63 letters, digits, '-', '_' or '.', starting and ending "
    "with a letter or digit, e.g. app.kubernetes.io/name"
)
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _dns_label_problem(v: str) -> str | None:
    if not _DNS_LABEL.match(v):
        return "is not a Kubernetes object name: 1-63 lowercase letters, digits or '-', starting and ending with one"
    return None


DnsLabel = Annotated[str, checked(_dns_label_problem, lambda v, p: f"{v!r} {p}")]
LabelKey = Annotated[str, Field(pattern=formatted(_LABEL_KEY.pattern, _LABEL_KEY_FORMAT))]


@dataclass(frozen=True)
class Replicas:
    """How many PostgreSQL instances (CNPG) and Keycloak pods one environment runs."""

    postgres: int
    keycloak: int


REPLICAS: Final[dict[Literal["dev", "prod"], Replicas]] = {
    "dev": Replicas(postgres=1, keycloak=1),
    # A primary and two standbys (synchronous quorum possible, one per node); two Keycloak pods
    # so a drain or a crash never takes logins down (the PodDisruptionBudget keeps one).
    "prod": Replicas(postgres=3, keycloak=2),
}


@dataclass(frozen=True)
class ObservabilityStorage:
    """Loki's and Prometheus's volumes and how long each keeps data, per environment."""

    logs_storage: str  # Loki's PersistentVolumeClaim, a Kubernetes quantity
    metrics_storage: str  # Prometheus's
    logs_retention_days: int
    metrics_retention_days: int


OBSERVABILITY_STORAGE: Final[dict[Literal["dev", "prod"], ObservabilityStorage]] = {
    "dev": ObservabilityStorage(logs_storage="2Gi", metrics_storage="2Gi", logs_retention_days=3,
                                metrics_retention_days=3),
    # A month of logs for audits of logins (Keycloak's events) and of the database's own log.
    "prod": ObservabilityStorage(logs_storage="20Gi", metrics_storage="20Gi", logs_retention_days=30,
                                 metrics_retention_days=30),
}


class GitOpsSettings(Model):
    """Where ArgoCD reads the rendered manifests from (the ApplicationSet's git generator)."""

    repo_url: HttpUrl = Field(description="Git repository ArgoCD syncs from, e.g. https://git.acme.net/platform/iam.")
    revision: ScalarText = Field(default="main", min_length=1, description="Branch, tag or commit ArgoCD follows.")
    path: str = Field(
        default="deploy/iam", min_length=1, pattern=formatted(
            r"^[^/].*[^/]$|^[^/]$", "a relative directory, without a leading or trailing '/', e.g. deploy/iam"
        ),
        description="Directory of the repository that holds one sub-directory per application (istio, gateway, "
        "cnpg, iam, observability), relative, without leading or trailing '/'.",
    )
    namespace: DnsLabel = Field(default="argocd", description="Namespace ArgoCD runs in (the ApplicationSet's).")


class IamSettings(Model):
    hostname: Hostname = Field(
        description="Public host name of Keycloak on the Istio ingress gateway (the Gateway's host and "
        "KC_HOSTNAME), e.g. auth.acme.net.",
    )
    admin_url: Annotated[HttpUrl, checked(keycloak_url_problem, lambda v, p: f"{v!r} {p}")] | None = Field(
        default=None,
        description="URL the program reaches Keycloak's admin API at (default: https://<hostname>, in dev "
        "http://<hostname>): the realm and the Ziti client are written through it.",
    )
    tls_credential: DnsLabel | None = Field(
        default=None,
        description="Secret (in the ingress gateway's namespace) holding the Gateway's TLS certificate for "
        "`hostname`; unset: the Gateway serves plain HTTP on port 80 (refused in strict mode).",
    )
    gateway_namespace: DnsLabel = Field(
        default="istio-system", description="Namespace of the Istio ingress gateway (its pods and service account)."
    )
    gateway_selector: dict[LabelKey, ScalarText] = Field(
        default_factory=lambda: {"istio": "ingressgateway"},
        min_length=1,
        description="Labels of the ingress gateway's pods (the Gateway's selector).",
    )
    gateway_service_account: DnsLabel = Field(
        default="istio-ingressgateway-service-account",
        description="Service account of the ingress gateway: the only caller Keycloak's AuthorizationPolicy "
        "admits from outside iam-system.",
    )
    database_storage: str = Field(
        default="5Gi", description="Size of each CloudNativePG instance's volume, a Kubernetes quantity."
    )
    observability: bool = Field(
        default=True,
        description="Loki (single binary), Promtail on every node and Grafana with Loki provisioned, in "
        "the `observability` namespace; Keycloak and SPIRE metrics scraped.",
    )
    logs_storage: str | None = Field(
        default=None,
        description="Size of Loki's volume (a PersistentVolumeClaim of `kubernetes.storageClass`), a Kubernetes "
        "quantity; default 2Gi in dev, 20Gi in prod.",
    )
    metrics_storage: str | None = Field(
        default=None,
        description="Size of Prometheus's volume, a Kubernetes quantity; default 2Gi in dev, 20Gi in prod.",
    )
    logs_retention_days: Annotated[int, whole_number("a number of days", 30)] | None = Field(
        default=None, ge=1, le=3650,
        description="Days Loki keeps logs (its compactor deletes older ones); default 3 in dev, 30 in prod.",
    )
    metrics_retention_days: Annotated[int, whole_number("a number of days", 30)] | None = Field(
        default=None, ge=1, le=3650,
        description="Days Prometheus keeps samples; default 3 in dev, 30 in prod.",
    )
    gitops: GitOpsSettings | None = Field(
        default=None,
        description="Also render an ArgoCD ApplicationSet (sync waves Istio -> Gateway -> CNPG -> IAM and "
        "observability, automated prune, 5 retries) for clusters synced by ArgoCD.",
    )

    @field_validator("database_storage", "logs_storage", "metrics_storage")
    @classmethod
    def _quantity(cls, v: str | None) -> str | None:
        if v is not None and not _QUANTITY.match(v):
            raise ValueError(f"{v!r} is not a Kubernetes quantity: write e.g. 5Gi or 500Mi")
        return v

    def observability_storage(self, *, prod: bool) -> ObservabilityStorage:
        """The environment's defaults (`OBSERVABILITY_STORAGE`) with what the stack sets."""
        base = OBSERVABILITY_STORAGE["prod" if prod else "dev"]
        return ObservabilityStorage(
            logs_storage=self.logs_storage or base.logs_storage,
            metrics_storage=self.metrics_storage or base.metrics_storage,
            logs_retention_days=self.logs_retention_days or base.logs_retention_days,
            metrics_retention_days=self.metrics_retention_days or base.metrics_retention_days,
        )

    def admin_base_url(self, *, prod: bool) -> str:
        """Where the program's Keycloak providers send their requests."""
        if self.admin_url is not None:
            return self.admin_url.rstrip("/")
        return f"https://{self.hostname}" if prod or self.tls_credential else f"http://{self.hostname}"

    def admin_url_problem(self, *, prod: bool) -> str | None:
        """`kubernetes.iam.hostname: ...` when the admin URL the program derives (no `adminUrl`) is one
        the Keycloak provider refuses: plain http (no TLS credential) to a host other than this one."""
        url = self.admin_base_url(prod=prod)
        if self.admin_url is not None or keycloak_url_problem(url) is None:
            return None
        return (
            "kubernetes.iam.hostname: without kubernetes.iam.tlsCredential the Gateway serves plain http, so the "
            f"program would write the realm through {url!r}, which the Keycloak provider refuses to a host other "
            "than this machine: name the Gateway's TLS Secret, or use a name under .localhost, or set "
            "kubernetes.iam.adminUrl to an https URL "
            "(fix: `pulumi config set --path 'kubernetes.iam.tlsCredential' <secret>`)"
        )

    def public_url(self) -> str:
        """Keycloak's hostname (v2, a full URL): the issuer every token carries."""
        return f"{'https' if self.tls_credential else 'http'}://{self.hostname}"

    def strict_problems(self) -> list[str]:
        """`kubernetes.iam.<key>: ...` lines strict mode adds."""
        out = []
        if is_placeholder_domain(self.hostname) or is_local_host(self.hostname):
            out.append(
                f"kubernetes.iam.hostname: {self.hostname!r} is a placeholder or local name: users and the Ziti "
                "controller verify tokens issued for it; use the real name (strict mode)"
            )
        if self.tls_credential is None:
            out.append(
                "kubernetes.iam.tlsCredential: the Gateway would serve Keycloak (passwords, tokens) over plain "
                "HTTP: name the TLS Secret in the gateway's namespace (strict mode) "
                "(fix: `pulumi config set --path 'kubernetes.iam.tlsCredential' <secret>`)"
            )
        if self.admin_url is not None and not self.admin_url.startswith("https://"):
            out.append(
                f"kubernetes.iam.adminUrl: {self.admin_url!r} is plain http: the admin password would cross "
                "the network in clear; use https (strict mode)"
            )
        return out
