"""SpireStack: the SPIRE server as a Swarm service and one SPIRE agent container per node.

Trust: pulumi-tls makes the root CA; the server uses it as `UpstreamAuthority "disk"`, so every
SVID chains to a root this program owns (the same root the Ziti provider registers and verifies as
a third-party CA). The root key reaches the server only as a Swarm secret.

Agents: Swarm services cannot join the host PID namespace (moby/swarmkit#1605), and the `docker`
workload attestor needs host PIDs to map a caller to its container. So each node runs the agent as
a plain container (`pid_mode="host"`, the Docker socket, `/run/spire/sockets` bind-mounted for
workloads) through that node's Docker provider. Agents attest with `x509pop`: each node gets a
certificate (CN = node name) from a separate pulumi-tls CA, and `agent_path_template` makes the
agent ID `spiffe://<td>/spire/agent/x509pop/<node>` — stable and known at preview, no join tokens.

Storage: the datastore (SQLite, or PostgreSQL when configured) and the KeyManager's keys live on a
node-local volume on the stateful node. In prod a sidecar takes SQLite online backups every
`storage.backupIntervalMinutes` onto the stack's rclone volume, and `storage.restoreOnFirstStart`
restores the latest one into an empty volume before the server starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_tls as tls

from components.backup_job import BackupJob, BackupJobArgs, Backups, Restore
from components.docker_helpers import (
    SECRETS_DIR,
    Placement,
    after,
    config_file,
    config_mount,
    healthcheck,
    key_pair_secrets,
    limits,
    network_attachment,
    secret_mount,
    self_signed_ca,
    service,
    volume_mount,
)
from components.postgres import PostgresArgs, PostgresDatabase
from components.scripts import script
from components.spire_conf import AgentConf, AgentSection, HealthChecks, Plugin, ServerConf, ServerSection
from stack_config import PROJECT, Images, SpireSettings

SERVER_SERVICE = "spire-server"
SERVER_UID = "1000"  # the spire-server image runs as 1000:1000
SERVER_DATA = "/var/lib/spire/server"
SERVER_SOCKET_DIR = "/tmp/spire-server/private"  # noqa: S108 - the image's admin socket directory
SERVER_CONF_PATH = "/etc/spire/server/server.conf"
X509POP_CA_PATH = "/etc/spire/server/x509pop-ca.pem"
UPSTREAM_CERT = "spire-upstream-ca.pem"
UPSTREAM_KEY = "spire-upstream-ca.key"
AGENT_SOCKET_DIR = "/run/spire/sockets"
AGENT_CONF_DIR = "/etc/spire/agent"
# SPIRE builds the agent ID as spiffe://<td>/spire/agent + this path, which must start with "/"
# (1.15 refuses attestation otherwise: "invalid agent path suffix ...: path must have a leading slash").
AGENT_PATH_TEMPLATE = "/{{ .PluginName }}/{{ .Subject.CommonName }}"
NODE_CERT_HOURS = 8760
NODE_CERT_EARLY_RENEWAL_HOURS = 720
SERVER_SOCKET_PATH = f"{SERVER_SOCKET_DIR}/api.sock"
AGENT_SOCKET_PATH = f"{AGENT_SOCKET_DIR}/agent.sock"
SPIRE_DB_SERVICE = "spire-db"
SPIRE_DB_PGPASS = "spire-db.pgpass"
ROOT_CA_CN = "{trust_domain} root CA"
X509POP_CA_CN = "{trust_domain} node attestation CA"

def sqlite_datastore() -> Plugin:
    """The `sql` DataStore on SQLite in the server's data volume (`spire.datastore: sqlite3`)."""
    return Plugin(
        name="sql", data={"database_type": "sqlite3", "connection_string": f"{SERVER_DATA}/datastore.sqlite3"}
    )


def postgres_datastore() -> Plugin:
    """The `sql` DataStore on the stack's `spire-db` PostgreSQL (`spire.datastore: postgres`): the
    password reaches SPIRE as a libpq password file (`passfile=`), never in server.conf."""
    conn = (
        f"dbname=spire user=spire host={SPIRE_DB_SERVICE} port=5432 sslmode=disable "
        f"passfile={SECRETS_DIR}/{SPIRE_DB_PGPASS}"
    )
    return Plugin(name="sql", data={"database_type": "postgres", "connection_string": conn})


def build_server_conf(spire: SpireSettings, datastore: Plugin) -> ServerConf:
    """The server's `server.conf` for the `spire` settings, with container paths (pure: no resources).

    `scripts/servers start spire` and the real-server tests render the same model and remap its
    paths and ports; the Swarm service ships `render()` of it as a config.
    """
    return ServerConf(
        server=ServerSection(
            trust_domain=spire.trust_domain,
            data_dir=SERVER_DATA,
            socket_path=SERVER_SOCKET_PATH,
            ca_ttl=spire.ca_ttl,
            default_x509_svid_ttl=spire.default_x509_svid_ttl,
            default_jwt_svid_ttl=spire.default_jwt_svid_ttl,
        ),
        data_store=datastore,
        key_manager=Plugin(name="disk", data={"keys_path": f"{SERVER_DATA}/keys.json"}),
        node_attestors=[
            Plugin(
                name="x509pop",
                data={"ca_bundle_path": X509POP_CA_PATH, "agent_path_template": AGENT_PATH_TEMPLATE},
            )
        ],
        upstream_authority=Plugin(
            name="disk",
            data={
                "cert_file_path": f"{SECRETS_DIR}/{UPSTREAM_CERT}",
                "key_file_path": f"{SECRETS_DIR}/{UPSTREAM_KEY}",
            },
        ),
        health_checks=HealthChecks(),
    )


def build_agent_conf(trust_domain: str) -> AgentConf:
    """Every node's `agent.conf` (container paths; pure, like `server_conf`)."""
    return AgentConf(
        agent=AgentSection(
            server_address=SERVER_SERVICE,
            trust_domain=trust_domain,
            socket_path=AGENT_SOCKET_PATH,
            trust_bundle_path=f"{AGENT_CONF_DIR}/bootstrap.pem",
        ),
        node_attestor=Plugin(
            name="x509pop",
            data={
                "private_key_path": f"{AGENT_CONF_DIR}/node.key",
                "certificate_path": f"{AGENT_CONF_DIR}/node.pem",
            },
        ),
        key_manager=Plugin(name="disk", data={"directory": "/var/lib/spire/agent"}),
        workload_attestors=[
            Plugin(name="docker", data={"docker_socket_path": "unix:///var/run/docker.sock"}),
            Plugin(name="unix"),
        ],
    )


@dataclass(frozen=True)
class SpireStackArgs:
    """What the SPIRE stack needs: its settings, images and where it runs."""

    spire: SpireSettings
    images: Images
    prod: bool
    placement: Placement
    # Every node runs an agent (its key in the placement's node providers).
    nodes: Sequence[str]
    # prod: the stack's bucket and schedule; None (dev): no backups.
    backups: Backups | None = None
    # (certificate PEM, key PEM): the user's CA; None generates the root.
    brought_root_ca: tuple[str, pulumi.Input[str]] | None = None


class SpireStack(pulumi.ComponentResource):
    """SPIRE server (Swarm service) + per-node agents (containers) + the Pulumi-owned root CA."""

    trust_domain: str
    root_ca_cert_pem: pulumi.Output[str]
    root_ca_key_pem: pulumi.Output[str]
    agent_spiffe_ids: dict[str, str]
    server_node: str
    server_service: docker.Service
    backup_service: docker.Service | None
    server_service_name: str
    server_socket_path: str
    agent_socket_dir: str
    agent_socket_path: str
    agents: dict[str, docker.Container]
    network: docker.Network
    server_conf: ServerConf
    agent_conf: AgentConf

    def __init__(self, resource_name: str, args: SpireStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:spire:SpireStack", resource_name, None, opts)
        name = resource_name
        spire, images, prod, place = args.spire, args.images, args.prod, args.placement
        wait = after(opts)
        self.trust_domain = spire.trust_domain
        self.server_node = place.stateful_node_name
        self.server_service_name = SERVER_SERVICE
        self.server_socket_path = SERVER_SOCKET_PATH
        self.agent_socket_dir = AGENT_SOCKET_DIR
        self.agent_socket_path = AGENT_SOCKET_PATH
        on_manager = pulumi.ResourceOptions(parent=self, provider=place.manager)
        on_db = pulumi.ResourceOptions(parent=self, provider=place.stateful_node)

        # --- PKI (pulumi-tls; keys are secret outputs) ---------------------------------------
        if args.brought_root_ca is not None:
            self.root_ca_cert_pem = pulumi.Output.from_input(args.brought_root_ca[0])
            self.root_ca_key_pem = pulumi.Output.secret(args.brought_root_ca[1])
        else:
            root_key, root = self_signed_ca(
                f"{name}-root-ca",
                common_name=ROOT_CA_CN.format(trust_domain=self.trust_domain),
                validity_hours=spire.root_ca_validity_hours,
                parent=self,
                protect=prod,
            )
            self.root_ca_cert_pem = root.cert_pem
            self.root_ca_key_pem = pulumi.Output.secret(root_key.private_key_pem)

        pop_key, pop_ca = self_signed_ca(
            f"{name}-x509pop-ca",
            common_name=X509POP_CA_CN.format(trust_domain=self.trust_domain),
            validity_hours=spire.root_ca_validity_hours,
            parent=self,
        )

        # --- network, configs, secrets ------------------------------------------------------
        # Attachable: the per-node agent containers (not Swarm tasks) join it to reach the server.
        self.network = docker.Network(
            f"{name}-network", name="spire", driver="overlay", attachable=True, opts=on_manager
        )

        datastore, db_secrets, db = self._datastore(name, args, wait)
        self.server_conf = build_server_conf(spire, datastore)
        server_conf = config_file(
            f"{name}-server-conf",
            base="spire-server-conf",
            content=self.server_conf.render(),
            parent=self,
            provider=place.manager,
        )
        pop_bundle_cfg = config_file(
            f"{name}-x509pop-ca", base="spire-x509pop-ca", content=pop_ca.cert_pem, parent=self, provider=place.manager
        )
        upstream_cert, upstream_key = key_pair_secrets(
            f"{name}-upstream",
            base="spire-upstream-ca",
            cert_pem=self.root_ca_cert_pem,
            key_pem=self.root_ca_key_pem,
            parent=self,
            provider=place.manager,
        )

        # --- server ----------------------------------------------------------------------------
        data_volume = docker.Volume(
            f"{name}-server-data",
            name="spire-server-data",
            driver="local",
            opts=pulumi.ResourceOptions(parent=self, provider=place.stateful_node, retain_on_delete=prod),
        )
        # The admin API socket on its own volume: tools on the server's node can mount it.
        socket_volume = docker.Volume(f"{name}-server-socket", name="spire-server-socket", driver="local", opts=on_db)

        backup: BackupJob | None = None
        if args.backups is not None and spire.datastore == "sqlite3":
            backup = BackupJob(
                f"{name}-backup",
                BackupJobArgs(
                    name="spire-backup",
                    backups=args.backups,
                    bucket_path="backups/spire-server",
                    image=images.sqlite_backup,
                    command=["python3", "-c", script("spire_sqlite_backup.py")],
                    env={"PYTHONUNBUFFERED": "1"},
                    mounts=[volume_mount(data_volume.name, "/data")],
                    placement=place,
                    restore=Restore(
                        "spire-server-restore", images.backup, script("spire-sqlite-restore.sh"), data_volume
                    ),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=wait),
            )
        server_deps: list[pulumi.Resource] = [*wait, *([db.service] if db else [])]
        server_deps += backup.restored if backup else []

        self.server_service = service(
            f"{name}-server",
            name=SERVER_SERVICE,
            stateful=True,
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=images.spire_server,
                args=["-config", SERVER_CONF_PATH],
                configs=[
                    config_mount(server_conf, SERVER_CONF_PATH, uid=SERVER_UID),
                    config_mount(pop_bundle_cfg, X509POP_CA_PATH, uid=SERVER_UID),
                ],
                secrets=[
                    secret_mount(upstream_cert, UPSTREAM_CERT, uid=SERVER_UID, mode=0o444),
                    secret_mount(upstream_key, UPSTREAM_KEY, uid=SERVER_UID),
                    *db_secrets,
                ],
                mounts=[
                    volume_mount(data_volume.name, SERVER_DATA),
                    volume_mount(socket_volume.name, SERVER_SOCKET_DIR),
                ],
                # The image is FROM scratch (no shell, no curl): probe through the CLI, which asks
                # the server's health subsystem over the admin socket. The HTTP listener on 8080
                # (/live, /ready) is for external probes and load balancers.
                healthcheck=healthcheck(
                    ["CMD", "/opt/spire/bin/spire-server", "healthcheck", "-socketPath", self.server_socket_path],
                    interval="10s",
                    start_period="60s",
                ),
                stop_grace_period="30s",
            ),
            networks=[network_attachment(self.network.id)],
            resources=limits(prod, memory_mb=512, cpus=1.0),
            opts=on_manager.merge(pulumi.ResourceOptions(depends_on=server_deps)),
        )

        if backup is not None:
            self.backup_service = backup.start(after=[self.server_service])
        else:
            self.backup_service = db.backup_service if db else None

        # --- agents: one container per node ----------------------------------------------------
        self.agent_conf = build_agent_conf(spire.trust_domain)
        agent_conf_text = self.agent_conf.render()
        self.agent_spiffe_ids = {}
        self.agents = {}
        for node in sorted(args.nodes):
            self.agent_spiffe_ids[node] = f"spiffe://{self.trust_domain}/spire/agent/x509pop/{node}"
            self.agents[node] = self._agent(
                name, node, place, images.spire_agent, agent_conf_text, pop_key, pop_ca, self.root_ca_cert_pem, prod
            )

        self.register_outputs(
            {
                "trust_domain": self.trust_domain,
                "root_ca_cert_pem": self.root_ca_cert_pem,
                "root_ca_key_pem": self.root_ca_key_pem,
                "agent_spiffe_ids": self.agent_spiffe_ids,
                "server_node": self.server_node,
                "server_service_name": self.server_service_name,
            }
        )

    def _datastore(
        self, name: str, args: SpireStackArgs, wait: list[pulumi.Resource]
    ) -> tuple[Plugin, list[docker.ServiceTaskSpecContainerSpecSecretArgs], PostgresDatabase | None]:
        """SQLite on the server's volume, or a dedicated PostgreSQL whose password reaches SPIRE as
        a libpq password file (`passfile=`), so the rendered server.conf holds no credential."""
        if args.spire.datastore == "sqlite3":
            return sqlite_datastore(), [], None
        db = PostgresDatabase(
            f"{name}-db",
            PostgresArgs(
                service_name=SPIRE_DB_SERVICE,
                database="spire",
                user="spire",
                image=args.images.postgres,
                network=self.network,
                placement=args.placement,
                prod=args.prod,
                backups=args.backups,
                pgpass=True,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=wait),
        )
        if db.pgpass_secret is None:
            raise RuntimeError("PostgresDatabase did not create the password file it was asked for")
        return (
            postgres_datastore(),
            [secret_mount(db.pgpass_secret, SPIRE_DB_PGPASS, uid=SERVER_UID)],
            db,
        )

    def _agent(
        self,
        name: str,
        node: str,
        place: Placement,
        image: str,
        agent_conf: str,
        pop_key: tls.PrivateKey,
        pop_ca: tls.SelfSignedCert,
        bundle_pem: pulumi.Output[str],
        prod: bool,
    ) -> docker.Container:
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-agent-key-{node}", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        csr = tls.CertRequest(
            f"{name}-agent-csr-{node}",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=node, organization=PROJECT),
            opts=child,
        )
        # Renewed by `pulumi up` inside the early-renewal window; the agent container is then
        # replaced with the new certificate and re-attests under the same agent ID (CN = node).
        cert = tls.LocallySignedCert(
            f"{name}-agent-cert-{node}",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=pop_key.private_key_pem,
            ca_cert_pem=pop_ca.cert_pem,
            validity_period_hours=NODE_CERT_HOURS,
            early_renewal_hours=NODE_CERT_EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "key_encipherment", "client_auth"],
            opts=child,
        )
        provider = place.nodes[node]
        data = docker.Volume(
            f"{name}-agent-data-{node}",
            name="spire-agent-data",
            driver="local",
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        return docker.Container(
            f"{name}-agent-{node}",
            name="spire-agent",
            image=image,
            command=["-config", f"{AGENT_CONF_DIR}/agent.conf"],
            pid_mode="host",
            restart="unless-stopped",
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=self.network.name)],
            volumes=[
                docker.ContainerVolumeArgs(
                    host_path="/var/run/docker.sock", container_path="/var/run/docker.sock", read_only=True
                ),
                docker.ContainerVolumeArgs(host_path=AGENT_SOCKET_DIR, container_path=AGENT_SOCKET_DIR),
                docker.ContainerVolumeArgs(volume_name=data.name, container_path="/var/lib/spire/agent"),
            ],
            uploads=[
                docker.ContainerUploadArgs(file=f"{AGENT_CONF_DIR}/agent.conf", content=agent_conf),
                docker.ContainerUploadArgs(file=f"{AGENT_CONF_DIR}/bootstrap.pem", content=bundle_pem),
                docker.ContainerUploadArgs(file=f"{AGENT_CONF_DIR}/node.pem", content=cert.cert_pem),
                docker.ContainerUploadArgs(
                    file=f"{AGENT_CONF_DIR}/node.key",
                    content=pulumi.Output.secret(key.private_key_pem),
                    permissions="0600",
                ),
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "/opt/spire/bin/spire-agent", "healthcheck", "-socketPath", self.agent_socket_path],
                interval="15s",
                timeout="5s",
                start_period="30s",
                retries=5,
            ),
            labels=[docker.ContainerLabelArgs(label="zt.role", value="spire-agent")],
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "5"},
            memory=256 if prod else None,
            # Waits until the agent is healthy, i.e. attested to the (healthy) server.
            wait=True,
            wait_timeout=300,
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.server_service]),
        )
