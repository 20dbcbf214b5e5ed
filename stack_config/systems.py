"""Per-system settings: SPIRE, Keycloak, OpenZiti, storage and workloads.

Each section owns the defaults its component needs; environment-dependent checks (strict mode)
live in `stack_config.StackConfig`, which sees the whole tree.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator

from dynamic_providers.keycloak.models import connection_url_rule as keycloak_connection_url_rule
from dynamic_providers.keycloak.models import is_loopback_host
from dynamic_providers.ziti.models import controller_url_rule as ziti_controller_url_rule
from stack_config.base import (
    GoDuration,
    Hostname,
    Model,
    ObjectName,
    RealmName,
    formatted,
    go_duration_seconds,
    port_number,
    whole_number,
)
from stack_config.nodes import DockerHost
from stack_config.spiffe import DnsName, Selector, SpiffeId, SpiffePath, TrustDomain

MAX_INT32 = 2**31 - 1  # SPIRE's entry TTLs are int32 seconds
MAX_UNIX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes including the terminating NUL
_K8S_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a namespace
_K8S_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a pod


def _no_repeats(values: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{what} {v!r} is listed more than once: remove the repeat")
        seen.add(v)


def _seconds(v: object) -> object:
    """Whole seconds as a number or its digits; a Go duration (`1h`) is refused with its seconds."""
    if not isinstance(v, str) or v.strip().isdigit():
        return v
    try:
        seconds = go_duration_seconds(v.strip())
    except ValueError:
        raise ValueError(
            f"{v!r} is not a number of seconds: x509SvidTtl is whole seconds, e.g. 3600 for an hour "
            "(0: the server's default)"
        ) from None
    raise ValueError(f"{v!r} is a duration, but x509SvidTtl is whole seconds: write {int(seconds)}")


def _role_attribute(v: str) -> str:
    """Ziti's rule for role attributes (the provider's check): bare, non-empty names."""
    if not v:
        raise ValueError("a role attribute is empty: remove it")
    if v.startswith(("#", "@")):
        raise ValueError(f"{v!r}: write the bare attribute, without '#' or '@' (policies add the '#')")
    return v


RoleAttribute = Annotated[str, AfterValidator(_role_attribute)]


def _socket_path(v: str | None) -> str | None:
    """An absolute path to a Unix socket on this machine (gRPC's unix:// target forms accepted)."""
    if v is None:
        return v
    path = v.removeprefix("unix://") if v.startswith("unix:///") else v.removeprefix("unix:")
    if not path.startswith("/"):
        raise ValueError(
            f"{v!r} must be an absolute path to the forwarded admin socket (e.g. /run/user/1000/spire.sock)"
        )
    if len(path.encode()) > MAX_UNIX_SOCKET_PATH_BYTES:
        raise ValueError(
            f"{v!r} is longer than {MAX_UNIX_SOCKET_PATH_BYTES} bytes, the Unix socket limit: forward the socket "
            "to a shorter path"
        )
    return v


def _k8s_name(v: str | None, rule: re.Pattern[str], what: str) -> str | None:
    if v is not None and not rule.match(v.split("/", 1)[-1]):
        raise ValueError(f"{v!r} is not a Kubernetes {what}")
    return v


class SpireTransport(Model):
    """How the provider reaches the SPIRE Server API for registration entries."""

    kind: Literal["docker-exec", "grpc", "kubectl-exec"] = Field(
        default="docker-exec",
        description="docker-exec runs `spire-server entry ...` in the server container on `node`; "
        "grpc dials `socket_path`; kubectl-exec runs the CLI in `namespace`/`pod`.",
    )
    node: str | None = Field(default=None, description="Node (key of `nodes`) whose engine runs the SPIRE server.")
    socket_path: str | None = Field(default=None, description="Admin API Unix socket forwarded to this machine (grpc).")
    docker_host: DockerHost | None = Field(
        default=None,
        description="platform external, docker-exec: the Docker host URL of the engine that runs your SPIRE server.",
    )
    container: ObjectName | None = Field(
        default=None, description="platform external, docker-exec: the SPIRE server's container name."
    )
    service: ObjectName | None = Field(
        default=None, description="platform external, docker-exec: the SPIRE server's Swarm service name."
    )
    namespace: str | None = Field(default=None, description="kubectl-exec: the server's namespace (spire-server).")
    pod: str | None = Field(default=None, description="kubectl-exec: the server pod (spire-server-0).")

    # The fields each transport reads; a field set for another transport is refused (StackConfig).
    FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "grpc": ("socket_path",),
        "docker-exec": ("node", "docker_host", "container", "service"),
        "kubectl-exec": ("namespace", "pod"),
    }

    @field_validator("socket_path")
    @classmethod
    def _socket(cls, v: str | None) -> str | None:
        return _socket_path(v)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        return _k8s_name(v, _K8S_LABEL, "namespace name (lowercase letters, digits and '-', at most 63)")

    @field_validator("pod")
    @classmethod
    def _pod(cls, v: str | None) -> str | None:
        return _k8s_name(v, _K8S_SUBDOMAIN, "pod name (lowercase letters, digits, '-' and '.'), or TYPE/NAME")


class SpireSettings(Model):
    trust_domain: TrustDomain = Field(description="SPIFFE trust domain of the SPIRE server, e.g. prod.acme.net.")
    datastore: Literal["sqlite3", "postgres"] = Field(
        default="sqlite3", description="SPIRE server datastore (swarm): SQLite on its volume, or PostgreSQL."
    )
    ca_ttl: GoDuration = Field(
        default="24h",
        description="TTL of SPIRE's intermediate CA signed by the root CA (the servers the program runs: swarm, "
        "kubernetes).",
    )
    default_x509_svid_ttl: GoDuration = Field(
        default="1h",
        description="Default X.509 SVID lifetime (swarm, kubernetes); at most a sixth of caTtl and 7 days.",
    )
    default_jwt_svid_ttl: GoDuration = Field(
        default="5m",
        description="Default JWT SVID lifetime (swarm, kubernetes); at most a sixth of caTtl and 7 days.",
    )
    root_ca_validity_hours: Annotated[int, whole_number("a number of hours", 87600)] = Field(
        default=87600, gt=24, description="Validity of the Pulumi-owned root CA."
    )
    transport: SpireTransport = Field(
        default_factory=SpireTransport, description="How registration entries reach the SPIRE server."
    )
    agents: dict[str, SpiffeId] = Field(
        default_factory=dict,
        description="platform external: agent name -> the SPIFFE ID your server gave that agent; a workload's "
        "`node` names the agent that attests it (swarm: the agents are the nodes, not set here).",
    )

    # Settings of the SPIRE server this program deploys; with platform external, yours configures itself.
    DEPLOYED_ONLY: ClassVar[tuple[str, ...]] = ("datastore", "ca_ttl", "default_x509_svid_ttl", "default_jwt_svid_ttl")


def _pem_bundle(v: str) -> str:
    if "-----BEGIN CERTIFICATE-----" not in v:
        raise ValueError("not a PEM certificate bundle: paste the CA certificate(s), -----BEGIN CERTIFICATE----- ...")
    return v


def _http_url(v: str) -> str:
    u = urlsplit(v)
    if u.username is not None or u.password is not None:  # the URL is not quoted: it holds the password
        bare = u._replace(netloc=u.netloc.rpartition("@")[2]).geturl()
        raise ValueError(
            "carries credentials (user:password@), which would be stored in the state and the stack outputs in the "
            f"clear: give the bare URL ({bare}) and the credentials as the admin secrets"
        )
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment:
        raise ValueError(f"{v!r} is not an http(s) URL without query: use e.g. https://host:port")
    return v.rstrip("/")


def _jwks_url(v: str) -> str:
    """The realm's signing keys: whoever can rewrite them in transit can forge tokens Ziti accepts."""
    u = urlsplit(v)
    if u.scheme == "http" and not is_loopback_host(u.hostname or ""):
        raise ValueError(
            f"{v!r} is plain http to a host other than this machine: anyone on the path could swap the realm's "
            "signing keys and forge tokens Ziti accepts; use https (plain http only to localhost)"
        )
    return v


def keycloak_url_problem(url: str) -> str | None:
    """Why the Keycloak provider would refuse `url` as its connection URL (its own rule,
    `Connection.url`: plain http only to a loopback host), in the configuration's words; or None."""
    try:
        keycloak_connection_url_rule(url)
    except ValueError as e:
        if "plain http" not in str(e):
            return str(e)
        return (
            "is plain http to a host other than this machine, which the Keycloak provider refuses: use https "
            "(plain http only to localhost)"
        )
    return None


def _keycloak_url(v: str) -> str:
    """keycloak.url: the base URL the Keycloak provider accepts, not a realm's issuer URL."""
    path = urlsplit(v).path
    realm = re.search(r"/realms/([^/]+)$", path)
    if realm:
        base = v[: v.rindex("/realms/")]
        raise ValueError(
            f"{v!r} is a realm's issuer URL: give the base URL, without /realms/{realm.group(1)} (e.g. {base})"
        )
    problem = keycloak_url_problem(v)
    if problem:
        raise ValueError(f"{v!r} {problem}; a private CA goes in keycloak.caBundle")
    return v


def _ziti_controller_url(v: str) -> str:
    """ziti.controllerUrl: https, and the base or the management API URL (the Ziti provider's rule)."""
    return ziti_controller_url_rule(v)


# The external servers' endpoints: an http(s) URL without query (no trailing slash), a PEM bundle.
HttpUrl = Annotated[str, AfterValidator(_http_url)]
PemBundle = Annotated[str, AfterValidator(_pem_bundle)]


class KeycloakSettings(Model):
    hostname: Hostname | None = Field(
        default=None, description="swarm: public host name of Keycloak (KC_HOSTNAME), e.g. auth.acme.net."
    )
    url: Annotated[HttpUrl, AfterValidator(_keycloak_url)] | None = Field(
        default=None,
        description="platform external: base URL of your Keycloak (admin API and realms), e.g. https://auth.acme.net, "
        "not a realm's issuer URL; plain http only to localhost (the Keycloak provider's rule).",
    )
    ca_bundle: PemBundle | None = Field(
        default=None,
        description="platform external: PEM CA bundle that verifies `url` (default: the system trust store).",
    )
    jwks_url: Annotated[HttpUrl, AfterValidator(_jwks_url)] | None = Field(
        default=None,
        description="platform external: the realm's JWKS URL as your Ziti controller reaches it "
        "(default: the one in the realm's discovery document).",
    )
    realm: RealmName = Field(default="platform", min_length=1, description="Realm the platform's users live in.")
    admin_user: str = Field(default="admin", min_length=1, description="Bootstrap admin user name.")
    ziti_client_id: str = Field(default="openziti", min_length=1, description="OIDC client Ziti users log in with.")
    published_port: Annotated[int, port_number(8080)] | None = Field(
        default=None, ge=1, le=65535, description="Host port (dev); prod uses Caddy."
    )
    proxy_network: str = Field(
        default="caddy_caddy",
        pattern=formatted(
            r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            "a Docker network name: letters, digits, '_', '.' or '-', starting with a letter or digit (caddy_caddy)",
        ),
        description="External overlay network of caddy-docker-proxy that Keycloak joins in prod.",
    )


    # Settings of the Keycloak this program deploys (swarm).
    DEPLOYED_ONLY: ClassVar[tuple[str, ...]] = ("hostname", "published_port", "proxy_network")
    EXTERNAL_ONLY: ClassVar[tuple[str, ...]] = ("url", "ca_bundle", "jwks_url")


class ZitiSettings(Model):
    advertised_address: Hostname | None = Field(
        default=None, description="swarm: host name clients and routers use to reach the controller."
    )
    advertised_port: Annotated[int, port_number(1280)] = Field(
        default=1280, ge=1, le=65535, description="Controller edge API port (swarm)."
    )
    cluster_trust_domain: TrustDomain | None = Field(
        default=None, description="swarm: trust domain of the controller cluster; must differ from SPIRE's."
    )
    admin_user: str = Field(default="admin", min_length=1, description="Ziti admin user the providers log in as.")
    router_name: ObjectName = Field(
        default="edge-router-1",
        description="The edge router entity. platform external: made only when set; its one-time enrollment "
        "JWT is the secret output zitiRouterEnrollmentJwt.",
    )
    router_advertised_address: Hostname | None = Field(
        default=None, description="swarm: host name the edge router advertises to clients."
    )
    router_port: Annotated[int, port_number(3022)] = Field(
        default=3022, ge=1, le=65535, description="Edge router port clients dial (swarm)."
    )
    controller_url: Annotated[HttpUrl, AfterValidator(_ziti_controller_url)] | None = Field(
        default=None,
        description="platform external: your controller's edge API, e.g. https://ziti.acme.net:1280 (https "
        "always; no path, or /edge/management/v1).",
    )
    ca_bundle: PemBundle | None = Field(
        default=None,
        description="platform external: PEM CA bundle that verifies `controllerUrl` (the controller's edge CA; "
        "`ziti edge login` shows it).",
    )


    DEPLOYED_ONLY: ClassVar[tuple[str, ...]] = (
        "advertised_address",
        "advertised_port",
        "cluster_trust_domain",
        "router_advertised_address",
        "router_port",
    )
    EXTERNAL_ONLY: ClassVar[tuple[str, ...]] = ("controller_url", "ca_bundle")


class StorageSettings(Model):
    noncurrent_version_days: Annotated[int, whole_number("a number of days", 30)] = Field(
        default=30, ge=1, description="Days before old object versions expire."
    )
    backup_interval_minutes: Annotated[int, whole_number("a number of minutes", 15)] = Field(
        default=15, ge=1, le=15, description="Backup period of live databases; the RPO is at most this."
    )
    restore_on_first_start: bool = Field(
        default=False, description="Restore the latest bucket backup into an empty data volume before first start."
    )


class Workload(Model):
    """A workload that gets a SPIFFE ID from SPIRE and a Ziti identity whose externalId is that ID."""

    spiffe_path: SpiffePath = Field(description="Path of the SPIFFE ID, e.g. /ns/payments/sa/api.")
    node: str = Field(description="Node (key of `nodes`) whose agent attests the workload.")
    selectors: list[Selector] = Field(
        min_length=1, description='Workload selectors, "type:value", e.g. docker:label:app:api.'
    )
    ziti_role_attributes: list[RoleAttribute] = Field(
        default_factory=list, description="Role attributes of its Ziti identity (selected by Ziti policies)."
    )
    dns_names: list[DnsName] = Field(default_factory=list, description="DNS SANs of its X.509 SVID.")
    x509_svid_ttl: Annotated[int, BeforeValidator(_seconds), whole_number("a number of seconds", 3600)] = Field(
        default=0,
        ge=0,
        le=MAX_INT32,
        description="Whole seconds (3600: an hour); 0 = server default. Where the program runs the server (swarm, "
        "kubernetes except crd-free): at most a sixth of spire.caTtl and 7 days.",
    )
    federates_with: list[TrustDomain] = Field(
        default_factory=list,
        description="Federated trust domains whose bundles the workload receives with its SVID, so it can "
        "authenticate their workloads (platform kubernetes, enterprise topology: the other side's trust domain).",
    )
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

    @field_validator("selectors")
    @classmethod
    def _distinct_selectors(cls, v: list[str]) -> list[str]:
        _no_repeats(v, "selector")
        return v

    @field_validator("dns_names")
    @classmethod
    def _distinct_dns_names(cls, v: list[str]) -> list[str]:
        _no_repeats(v, "DNS name")
        return v


class RootCaSettings(Model):
    """A root CA the user brings (an enterprise root usually exists): the certificate here, its
    private key as the secret `identity-platform:rootCaKey`. Without this section the program
    generates the root with pulumi-tls."""

    certificate: str = Field(description="PEM certificate of your root (or intermediate) CA; its key is rootCaKey.")

    @field_validator("certificate")
    @classmethod
    def _ca_certificate(cls, v: str) -> str:
        problem = ca_certificate_problem(v)
        if problem:
            raise ValueError(problem)
        return v


def ca_certificate_problem(pem: str) -> str | None:
    """Why `pem` cannot sign SPIRE's intermediate and be a Ziti third-party CA, or None."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return "not one PEM certificate: paste the CA certificate, -----BEGIN CERTIFICATE----- ..."
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        return "is not a CA certificate (basicConstraints CA:TRUE is missing): bring the CA, not a leaf"
    try:
        if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
            return "may not sign certificates (keyUsage lacks keyCertSign): bring a signing CA"
    except x509.ExtensionNotFound:
        pass
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        return f"expired on {cert.not_valid_after_utc:%Y-%m-%d}: bring a valid CA certificate"
    return None


class ZitiUser(Model):
    """A Keycloak user who reaches Ziti with a token: a Ziti identity whose externalId is the
    claim the signer matches (the user's email), under the auth policy that admits only Keycloak."""

    # Keycloak stores an email lowercased, and its tokens carry it so: the identity's externalId,
    # which Ziti compares with the claim as it is, is that form.
    email: Annotated[str, AfterValidator(str.lower)] = Field(
        pattern=formatted(
            r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an email address: name@domain with a dot in the domain, e.g. alice@acme.net"
        ),
        description="The user's email in Keycloak (the `email` claim Ziti matches to this identity; Keycloak "
        "keeps it lowercased, and so does the identity's externalId).",
    )
    ziti_role_attributes: list[RoleAttribute] = Field(
        default_factory=list, description="Role attributes for Ziti policies."
    )
