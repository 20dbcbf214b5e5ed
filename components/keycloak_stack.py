"""KeycloakStack: Keycloak 26 in production mode (`start`) on PostgreSQL, as Swarm services.

Keycloak has no `*_FILE` variants for its options (keycloak/keycloak#10816 is open), so a small
bash wrapper reads the database and bootstrap-admin passwords from Swarm secret files into the
process environment and execs `kc.sh`; no credential appears in the service spec. TLS ends at
Caddy in prod (caddy-docker-proxy labels, the external `caddy_caddy` network; `KC_HTTP_ENABLED`,
`KC_PROXY_HEADERS=xforwarded`); dev publishes the HTTP port on localhost. Health and metrics are
served on the management port 9000 (`/health/ready`, `/metrics`), which the Swarm healthcheck
probes with bash's `/dev/tcp` because the image has no curl.

The bootstrap admin is created only when the master realm is first created; rotating the
generated password afterwards does not change the existing admin (Keycloak's documented
behaviour) — change it in Keycloak, then in the stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.backup_job import Backups
from components.docker_helpers import (
    Placement,
    after,
    generated_password,
    healthcheck,
    limits,
    network_attachment,
    secret_mount,
    service,
)
from components.postgres import PostgresArgs, PostgresDatabase
from components.scripts import script
from stack_config import Images, KeycloakSettings
from stack_config.base import required

KEYCLOAK_SERVICE = "keycloak"
DB_SERVICE = "keycloak-postgres"
KEYCLOAK_UID = "1000"
HTTP_PORT = 8080
MANAGEMENT_PORT = 9000
DB_PASSWORD_FILE = "keycloak-db-password"  # noqa: S105 - file names, not passwords
ADMIN_PASSWORD_FILE = "keycloak-admin-password"  # noqa: S105

# `bash -c ENTRYPOINT_WRAPPER kc.sh start`: the passwords from their secret files, then kc.sh.
ENTRYPOINT_WRAPPER = script("keycloak-wrapper.bash")
# The healthcheck: 200 from /health/ready on the management port (bash's /dev/tcp; no curl).
READY_PROBE = script("keycloak-ready.bash")


BUILD_TIME_OPTIONS = ("KC_DB", "KC_HEALTH_ENABLED", "KC_METRICS_ENABLED")
"""The options of `keycloak_env` that Keycloak bakes in at build time (`kc.sh build`): the image's
`start` builds with them on first boot; `scripts/servers install` builds the local dist with them."""


def keycloak_public_url(kc: KeycloakSettings, *, prod: bool) -> str:
    """The URL users and the program reach Keycloak at (and the issuer's base)."""
    if prod:
        return f"https://{kc.hostname}"
    if kc.published_port is not None:
        return f"http://{kc.hostname}:{kc.published_port}"
    raise ValueError("keycloak.publishedPort is required outside prod: dev reaches Keycloak on localhost")


def keycloak_env(kc: KeycloakSettings, *, prod: bool) -> dict[str, str]:
    """The service's environment (no secrets: the wrapper adds the passwords from secret files).

    `servers/keycloak.py` starts the real Keycloak with exactly this mapping, remapping only the
    database URL, the HTTP port and (for a loopback run) nothing else."""
    env = {
        "KC_DB": "postgres",
        "KC_DB_URL": f"jdbc:postgresql://{DB_SERVICE}:5432/keycloak",
        "KC_DB_USERNAME": "keycloak",
        # Hostname v2 with a full URL: tokens carry this issuer whatever URL a caller used.
        "KC_HOSTNAME": keycloak_public_url(kc, prod=prod),
        # Back-channel calls from inside the Swarm may use the internal URL.
        "KC_HOSTNAME_BACKCHANNEL_DYNAMIC": "true",
        "KC_HTTP_ENABLED": "true",
        "KC_HTTP_PORT": str(HTTP_PORT),
        "KC_HEALTH_ENABLED": "true",
        "KC_METRICS_ENABLED": "true",
        "KC_BOOTSTRAP_ADMIN_USERNAME": kc.admin_user,
        "KC_LOG": "console",
        "KC_LOG_CONSOLE_OUTPUT": "json",
    }
    if prod:
        env["KC_PROXY_HEADERS"] = "xforwarded"
    return env


@dataclass(frozen=True)
class KeycloakStackArgs:
    """What the Keycloak stack needs: its settings, images, where it runs, its backups (prod)."""

    keycloak: KeycloakSettings
    images: Images
    prod: bool
    placement: Placement
    backups: Backups | None = None


class KeycloakStack(pulumi.ComponentResource):
    """PostgreSQL + Keycloak, reachable at `url` by the program and its providers."""

    url: pulumi.Output[str]
    internal_url: str
    admin_user: str
    admin_password: pulumi.Output[str]
    network: docker.Network
    service: docker.Service
    database: PostgresDatabase

    def __init__(self, resource_name: str, args: KeycloakStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:keycloak:KeycloakStack", resource_name, None, opts)
        name = resource_name
        kc, prod, place = args.keycloak, args.prod, args.placement
        wait = after(opts)
        on_manager = pulumi.ResourceOptions(parent=self, provider=place.manager)
        self.admin_user = kc.admin_user
        public_url = keycloak_public_url(kc, prod=prod)
        self.url = pulumi.Output.from_input(public_url)
        # Other services on the `keycloak` network (e.g. the Ziti controller fetching JWKS).
        self.internal_url = f"http://{KEYCLOAK_SERVICE}:{HTTP_PORT}"

        self.network = docker.Network(f"{name}-network", name="keycloak", driver="overlay", opts=on_manager)
        self.database = PostgresDatabase(
            f"{name}-db",
            PostgresArgs(
                service_name=DB_SERVICE,
                database="keycloak",
                user="keycloak",
                image=args.images.postgres,
                network=self.network,
                placement=place,
                prod=prod,
                backups=args.backups,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=wait),
        )

        self.admin_password, admin_secret = generated_password(
            f"{name}-admin-password", base="keycloak-admin-password", parent=self, provider=place.manager
        )

        env = keycloak_env(kc, prod=prod)

        networks = [network_attachment(self.network.id)]
        labels: dict[str, str] = {}
        ports: list[docker.ServiceEndpointSpecPortArgs] = []
        if prod:
            proxy = docker.get_network_output(
                name=kc.proxy_network, opts=pulumi.InvokeOutputOptions(parent=self, provider=place.manager)
            )
            networks.append(network_attachment(proxy.id))
            # caddy-docker-proxy reads these service labels and terminates TLS for the hostname.
            labels = {
                "caddy": required(kc.hostname, "keycloak.hostname"),
                "caddy.reverse_proxy": f"{{{{upstreams {HTTP_PORT}}}}}",
            }
        if kc.published_port is not None:
            ports.append(
                docker.ServiceEndpointSpecPortArgs(
                    name="http", target_port=HTTP_PORT, published_port=kc.published_port, protocol="tcp"
                )
            )

        self.service = service(
            f"{name}-service",
            name=KEYCLOAK_SERVICE,
            stateful=False,
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=args.images.keycloak,
                commands=["/bin/bash", "-c", ENTRYPOINT_WRAPPER, "kc.sh"],
                args=["start"],
                env=env,
                secrets=[
                    secret_mount(self.database.password_secret, DB_PASSWORD_FILE, uid=KEYCLOAK_UID),
                    secret_mount(admin_secret, ADMIN_PASSWORD_FILE, uid=KEYCLOAK_UID),
                ],
                healthcheck=healthcheck(
                    ["CMD", "/bin/bash", "-c", READY_PROBE, "ready", str(MANAGEMENT_PORT)],
                    interval="15s",
                    timeout="5s",
                    start_period="180s",
                ),
                stop_grace_period="30s",
            ),
            networks=networks,
            ports=ports,
            labels=labels,
            resources=limits(prod, memory_mb=1536, cpus=2.0),
            converge_timeout="10m",  # the first `start` builds the Quarkus app before serving
            opts=on_manager.merge(pulumi.ResourceOptions(depends_on=[*wait, self.database.service])),
        )
        self.register_outputs(
            {
                "url": self.url,
                "internal_url": self.internal_url,
                "admin_user": self.admin_user,
                "admin_password": self.admin_password,
            }
        )
