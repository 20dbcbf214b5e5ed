"""ZitiStack: the OpenZiti controller (console at `/zac`), its backups, and the spiffe-helper
sidecars of workloads that authenticate to Ziti with their SVIDs.

Controller: the `openziti/ziti-controller` image at the pinned version (`stack_config/versions.py`,
1.7.2: no 2.x release is served by the Go module proxy the tests build `ziti` from, and what users
deploy is what the tests ran) bootstraps its own PKI, config and bbolt database from `ZITI_*`
variables on first start (`bootstrap.bash` of the image, run by its `entrypoint.bash`). 1.7.2's
bootstrap has no cluster mode: one controller with the database file `ZITI_CTRL_DATABASE_FILE`
in its volume. The admin password comes from a Swarm secret through a wrapper (exported as
`ZITI_PWD` inside the process only). The console is the controller-hosted ZAC at
`https://<advertised>:<port>/zac/`; the standalone `openziti/zac` image is deprecated and the Helm
console chart was removed, so none is deployed. On the `ziti` network the controller is aliased
by its advertised name, so routers and the backup job reach it inside the Swarm under the name its
certificate carries.

Controller PKI: the program owns the controller's root CA (pulumi-tls, URI SAN
`spiffe://<ziti.clusterTrustDomain>`, which the controller takes as its trust domain), delivered
as two Swarm secrets that the wrapper copies to `pki/root/{certs/root.cert,keys/root.key}` before
the image's bootstrap runs; the bootstrap issues the intermediate and server certificates only
when missing and keeps an existing root. So the program knows the CA that signs the controller's
TLS certificate before the controller exists, and the Ziti provider verifies the controller
against it (`controller_ca_pem`) in the same `up`. `servers/ziti.py` starts the real controller
this way (same wrapper, same image scripts, same variables) for the tests.

The edge router is `components/ziti_router.py`: its one-time JWT comes from the `ZitiEdgeRouter`
resource, which needs this controller running, so it cannot be built inside this component.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker
import pulumi_tls as tls

from components.backup_job import BackupJob, BackupJobArgs, Backups, Restore
from components.docker_helpers import (
    SECRETS_DIR,
    Placement,
    after,
    generated_password,
    healthcheck,
    key_pair_secrets,
    limits,
    network_attachment,
    secret_mount,
    self_signed_ca,
    service,
    volume_mount,
)
from components.scripts import script
from components.spiffe_helper import SpiffeHelper
from stack_config import Images, ZitiSettings
from stack_config.base import is_localhost, required

CONTROLLER_SERVICE = "ziti-controller"
ZITI_UID = "2171"  # user `ziggy` in the ziti images
CONTROLLER_HOME = "/ziti-controller"
ADMIN_PASSWORD_FILE = "ziti-admin-password"  # noqa: S105 - a file name
PKI_ROOT_CERT_FILE = "ziti-pki-root.cert"
PKI_ROOT_KEY_FILE = "ziti-pki-root.key"
DATABASE_FILE = "bbolt.db"  # relative to CONTROLLER_HOME (the image's default, set explicitly)

# The controller's command (`bash -c CONTROLLER_WRAPPER entrypoint run config.yml`): the PKI root
# on an empty volume, the admin password from its secret, then the image's own entrypoint.
CONTROLLER_WRAPPER = script("ziti-controller-wrapper.bash")

def controller_env(zt: ZitiSettings) -> dict[str, str]:
    """The controller's `ZITI_*` environment: what the image's bootstrap makes on first start."""
    return {
        "ZITI_CTRL_ADVERTISED_ADDRESS": required(zt.advertised_address, "ziti.advertisedAddress"),
        "ZITI_CTRL_ADVERTISED_PORT": str(zt.advertised_port),
        "ZITI_USER": zt.admin_user,
        "ZITI_BOOTSTRAP": "true",
        "ZITI_BOOTSTRAP_PKI": "true",
        "ZITI_BOOTSTRAP_CONFIG": "true",
        "ZITI_BOOTSTRAP_DATABASE": "true",
        "ZITI_BOOTSTRAP_CONSOLE": "true",
        "ZITI_CTRL_DATABASE_FILE": DATABASE_FILE,
        "ZITI_AUTO_RENEW_CERTS": "true",
        "ZITI_HOME": CONTROLLER_HOME,
    }


def controller_pki_root(
    resource_name: str, zt: ZitiSettings, validity_hours: int, *, parent: pulumi.Resource
) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
    """The controller's own PKI root (pulumi-tls), distinct from SPIRE's root: its URI SAN
    `spiffe://<ziti.clusterTrustDomain>` is the trust domain the controller takes."""
    return self_signed_ca(
        resource_name,
        common_name=f"{zt.cluster_trust_domain} controller root CA",
        validity_hours=validity_hours,
        uris=[f"spiffe://{zt.cluster_trust_domain}"],
        parent=parent,
    )


def _is_internal_name(host: str) -> bool:
    """Names that cannot be aliased on an overlay network (they resolve to the container itself)."""
    return host == "localhost" or is_localhost(host)


@dataclass(frozen=True)
class SvidHelperSpec:
    """A workload's spiffe-helper: the node it runs on and the labels its SPIRE entry selects."""

    node: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class ZitiStackArgs:
    """What the OpenZiti stack needs: its settings, images, where it runs, its backups (prod), and
    from the other stacks the SPIRE agents' sockets (for SVID helpers) and Keycloak's network."""

    ziti: ZitiSettings
    images: Images
    prod: bool
    placement: Placement
    # Validity of the controller's PKI root (the same as SPIRE's root).
    pki_validity_hours: int
    backups: Backups | None = None
    svid_helpers: Mapping[str, SvidHelperSpec] = field(default_factory=dict)
    # node -> the SPIRE agent container the node's helpers wait for
    agents: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    agent_socket_dir: str = ""
    agent_socket_path: str = ""
    keycloak_network_id: pulumi.Input[str] | None = None


class ZitiStack(pulumi.ComponentResource):
    """Controller + backups + SVID helpers, after SPIRE and Keycloak (the router: `ZitiRouter`)."""

    controller_url: pulumi.Output[str]
    console_url: pulumi.Output[str]
    admin_user: str
    admin_password: pulumi.Output[str]
    network: docker.Network
    controller_ca_pem: pulumi.Output[str]
    controller_service: docker.Service
    backup_service: docker.Service | None
    svid_helpers: dict[str, SpiffeHelper]

    def __init__(self, resource_name: str, args: ZitiStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:ziti:ZitiStack", resource_name, None, opts)
        name = resource_name
        zt, images, prod, place = args.ziti, args.images, args.prod, args.placement
        wait = after(opts)
        on_manager = pulumi.ResourceOptions(parent=self, provider=place.manager)
        self.admin_user = zt.admin_user
        advertised = required(zt.advertised_address, "ziti.advertisedAddress")
        self.controller_url = pulumi.Output.from_input(f"https://{advertised}:{zt.advertised_port}")
        self.console_url = self.controller_url.apply(lambda u: f"{u}/zac/")

        self.network = docker.Network(f"{name}-network", name="ziti", driver="overlay", opts=on_manager)
        aliases = [] if _is_internal_name(advertised) else [advertised]

        self.admin_password, admin_secret = generated_password(
            f"{name}-admin-password", base="ziti-admin-password", parent=self, provider=place.manager
        )
        # The controller's own PKI root (distinct from SPIRE's root: different trust domains).
        pki_key, pki_root = controller_pki_root(f"{name}-pki-root", zt, args.pki_validity_hours, parent=self)
        self.controller_ca_pem = pki_root.cert_pem
        pki_cert_secret, pki_key_secret = key_pair_secrets(
            f"{name}-pki-root",
            base="ziti-pki-root",
            cert_pem=pki_root.cert_pem,
            key_pem=pki_key.private_key_pem,
            parent=self,
            provider=place.manager,
        )
        ctrl_env = controller_env(zt)

        data_volume = docker.Volume(
            f"{name}-controller-data",
            name="ziti-controller-data",
            driver="local",
            opts=pulumi.ResourceOptions(parent=self, provider=place.stateful_node, retain_on_delete=prod),
        )
        backup: BackupJob | None = None
        if args.backups is not None:
            backup = BackupJob(
                f"{name}-backup",
                BackupJobArgs(
                    name="ziti-backup",
                    backups=args.backups,
                    bucket_path="backups/ziti-controller",
                    image=images.ziti_controller,
                    command=["/bin/bash", "-c", script("ziti-backup.bash")],
                    env={
                        "ZITI_CTRL_ADVERTISED_ADDRESS": advertised,
                        "ZITI_CTRL_ADVERTISED_PORT": str(zt.advertised_port),
                        "ZITI_USER": zt.admin_user,
                        "ZITI_PWD_FILE": f"{SECRETS_DIR}/{ADMIN_PASSWORD_FILE}",
                        "ZITI_HOME": CONTROLLER_HOME,
                    },
                    secrets=[secret_mount(admin_secret, ADMIN_PASSWORD_FILE, uid=ZITI_UID)],
                    # It reads the snapshot the controller writes next to its database.
                    mounts=[volume_mount(data_volume.name, CONTROLLER_HOME)],
                    network_ids=[self.network.id],
                    placement=place,
                    restore=Restore(
                        "ziti-controller-restore", images.backup, script("ziti-controller-restore.sh"), data_volume
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=wait),
            )
        controller_deps: list[pulumi.Resource] = [*wait, *(backup.restored if backup else [])]

        networks = [network_attachment(self.network.id, aliases)]
        if args.keycloak_network_id is not None:
            # Fetch Keycloak's JWKS over the internal network (ext-JWT signer), not via the proxy.
            networks.append(network_attachment(args.keycloak_network_id))
        self.controller_service = service(
            f"{name}-controller",
            name=CONTROLLER_SERVICE,
            stateful=True,
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=images.ziti_controller,
                commands=["/bin/bash", "-c", CONTROLLER_WRAPPER, "entrypoint"],
                args=["run", "config.yml"],
                env=ctrl_env,
                secrets=[
                    secret_mount(admin_secret, ADMIN_PASSWORD_FILE, uid=ZITI_UID),
                    secret_mount(pki_cert_secret, PKI_ROOT_CERT_FILE, uid=ZITI_UID),
                    secret_mount(pki_key_secret, PKI_ROOT_KEY_FILE, uid=ZITI_UID),
                ],
                mounts=[volume_mount(data_volume.name, CONTROLLER_HOME)],
                healthcheck=healthcheck(
                    ["CMD", "ziti", "agent", "stats"], interval="10s", timeout="5s", start_period="90s"
                ),
                stop_grace_period="30s",
            ),
            networks=networks,
            ports=[
                docker.ServiceEndpointSpecPortArgs(
                    name="ctrl", target_port=zt.advertised_port, published_port=zt.advertised_port, protocol="tcp"
                )
            ],
            resources=limits(prod, memory_mb=1024, cpus=1.0),
            converge_timeout="10m",
            opts=on_manager.merge(pulumi.ResourceOptions(depends_on=controller_deps)),
        )

        self.backup_service = backup.start(after=[self.controller_service]) if backup else None

        self.svid_helpers = {}
        for wname, helper in sorted(args.svid_helpers.items()):
            self.svid_helpers[wname] = SpiffeHelper(
                f"{name}-svid-{wname}",
                workload=wname,
                image=images.spiffe_helper,
                labels=helper.labels,
                agent_socket_dir=args.agent_socket_dir,
                agent_socket_path=args.agent_socket_path,
                provider=place.nodes[helper.node],
                agent=args.agents.get(helper.node),
                memory_mb=64 if prod else None,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.register_outputs(
            {
                "controller_url": self.controller_url,
                "console_url": self.console_url,
                "admin_user": self.admin_user,
                "admin_password": self.admin_password,
                "controller_ca_pem": self.controller_ca_pem,
            }
        )
