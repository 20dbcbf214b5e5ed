"""How the components fit together: the stacks in order and the trust chain between them.

`__main__.py` calls `build_platform(config, secrets)` and exports what it returns; tests call the
same function, so what they assert is exactly what `pulumi up` builds. No resources here are
created at import time.

platform swarm — order and data flow (each arrow is a `depends_on` or an Output passed as an input):

    SpireStack ──► KeycloakStack ──► ZitiStack (controller)
        │ root CA (cert + key)              │ controller CA, URL, admin password
        │ agent SPIFFE IDs                  ▼
        ├──► SpireRegistrations ──► ZitiTrust ◄── KeycloakIdentity (realm, Ziti client)
        │       (SPIFFE IDs)          │  CA verified, signer, policies, identities
        └───────────────────────────► │  edge router ─ one-time JWT ─► ZitiRouter

platform external — the same trust-chain components against servers the user runs, with the
connections from stack config:

    RootCa (generated or brought) ──► ZitiTrust ◄── KeycloakIdentity
    SpireRegistrations (entries under spire.agents) ──► ZitiTrust (workload identities)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from components.backup_job import Backups
from components.keycloak_identity import KeycloakIdentity, KeycloakIdentityArgs
from components.keycloak_stack import KeycloakStack, KeycloakStackArgs
from components.kubernetes.basic import BasicTopology, BasicTopologyArgs
from components.kubernetes.cluster import cluster_provider
from components.kubernetes.crd_free import AgentsOnlyTopology, AgentsOnlyTopologyArgs
from components.kubernetes.enterprise import EnterpriseTopology, EnterpriseTopologyArgs
from components.kubernetes.gitops import IamGitOpsArgs
from components.kubernetes.iam import HTTP_PORT, IAM_NAMESPACE, KEYCLOAK, KeycloakOnCnpgArgs
from components.kubernetes.iam_stack import IamStack, IamStackArgs
from components.kubernetes.mesh import OBSERVABILITY_NAMESPACE, IamMeshArgs
from components.kubernetes.observability import ObservabilityArgs
from components.kubernetes.ziti_controller import ZITI_NAMESPACE, ZitiController, ZitiControllerArgs
from components.kubernetes.ziti_edge_router import ZitiEdgeRouterPod, ZitiEdgeRouterPodArgs
from components.moves import Moves
from components.root_ca import RootCa, RootCaArgs
from components.spire_connection import spire_connection
from components.spire_registrations import Registration, SpireRegistrations, SpireRegistrationsArgs
from components.spire_stack import AGENT_SOCKET_DIR, AGENT_SOCKET_PATH, ROOT_CA_CN, SpireStack, SpireStackArgs
from components.storage import SpacesBucket, bucket_name
from components.swarm_nodes import SwarmNodes, SwarmNodesArgs
from components.ziti_router import ZitiRouter, ZitiRouterArgs
from components.ziti_stack import SvidHelperSpec, ZitiStack, ZitiStackArgs
from components.ziti_trust import (
    ZitiTrust,
    ZitiTrustArgs,
    ZitiUserSpec,
    ZitiWorkload,
)
from stack_config import PROJECT, USER_IDENTITY, WORKLOAD_IDENTITY, ZITI_TRUST, StackConfig, StackSecrets
from stack_config.kubernetes_iam import REPLICAS, IamSettings

BUCKET_ROLES = ("spire", "keycloak", "ziti")

# The providers wait this long for a service created in the same `pulumi up` to answer.
SERVER_READY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class SwarmPlatform:
    """Every component of one swarm stack, for exports and tests."""

    swarm: SwarmNodes
    buckets: dict[str, SpacesBucket]
    spire: SpireStack
    keycloak: KeycloakStack
    ziti: ZitiStack
    registrations: SpireRegistrations
    keycloak_identity: KeycloakIdentity
    ziti_trust: ZitiTrust
    router: ZitiRouter
    config: StackConfig

    def exports(self) -> dict[str, Any]:
        """The stack outputs (the contract `ops/outputs.py` types), by export key."""
        p, config = self, self.config
        return {
            "environment": config.environment,
            "platform": config.platform,
            "nodes": sorted(config.nodes),
            **_chain_exports(p.spire.trust_domain, p.spire.root_ca_cert_pem, p.registrations.entry_ids,
                             p.keycloak_identity, p.ziti_trust),
            "keycloakUrl": p.keycloak.url,
            "keycloakAdminUser": p.keycloak.admin_user,
            "keycloakAdminPassword": pulumi.Output.secret(p.keycloak.admin_password),
            "zitiControllerUrl": p.ziti.controller_url,
            "zitiConsoleUrl": p.ziti.console_url,
            "zitiAdminUser": p.ziti.admin_user,
            "zitiAdminPassword": pulumi.Output.secret(p.ziti.admin_password),
            "buckets": {
                role: {"name": b.bucket_name, "region": b.region, "endpoint": b.endpoint}
                for role, b in p.buckets.items()
            },
        }


@dataclass(frozen=True)
class ExternalPlatform:
    """The trust chain alone against the user's servers (platform external)."""

    root_ca: RootCa
    registrations: SpireRegistrations
    keycloak_identity: KeycloakIdentity
    ziti_trust: ZitiTrust
    config: StackConfig

    def exports(self) -> dict[str, Any]:
        """The stack outputs; no admin password (they are the user's), no console, no buckets."""
        p, config = self, self.config
        outputs: dict[str, Any] = {
            "environment": config.environment,
            "platform": config.platform,
            "nodes": [],
            **_chain_exports(config.spire.trust_domain, p.root_ca.cert_pem, p.registrations.entry_ids,
                             p.keycloak_identity, p.ziti_trust),
            "keycloakUrl": config.keycloak.url,
            "keycloakAdminUser": config.keycloak.admin_user,
            "zitiControllerUrl": config.ziti.controller_url,
            "zitiAdminUser": config.ziti.admin_user,
            "buckets": {},
        }
        if p.root_ca.generated:
            # The user's SPIRE server needs this key as its UpstreamAuthority "disk" key_file_path.
            outputs["spireUpstreamCaKeyPem"] = p.root_ca.key_pem
        if p.ziti_trust.router_enrollment_jwt is not None:
            outputs["zitiRouterEnrollmentJwt"] = p.ziti_trust.router_enrollment_jwt
        return outputs


@dataclass(frozen=True)
class KubernetesPlatform:
    """SPIRE in a Kubernetes cluster and its workloads' entries (platform kubernetes)."""

    topology: BasicTopology | AgentsOnlyTopology | EnterpriseTopology
    bundle_pem: pulumi.Input[str]
    # Cluster name -> the entries of the workloads its server attests (one cluster but enterprise).
    registrations: Mapping[str, SpireRegistrations]
    config: StackConfig
    # kubernetes.iam: Keycloak on CNPG in the cluster, and the realm and client written to it.
    iam: IamStack | None = None
    keycloak_identity: KeycloakIdentity | None = None
    # kubernetes.ziti: the controller and router in the cluster, and the Ziti side of the chain.
    ziti: ZitiController | None = None
    ziti_trust: ZitiTrust | None = None
    router: ZitiEdgeRouterPod | None = None

    def entry_ids(self) -> dict[str, pulumi.Output[str]]:
        """Workload -> SPIRE entry id, over every cluster's server."""
        return {w: i for regs in self.registrations.values() for w, i in regs.entry_ids.items()}

    def exports(self) -> dict[str, Any]:
        """The SPIRE side of the chain and where the server runs; Keycloak's with kubernetes.iam,
        the Ziti side (the same keys as on Swarm) with kubernetes.ziti."""
        config = self.config
        k8s = config.kubernetes
        if k8s is None:
            raise AssertionError("stack_config refuses platform kubernetes without its `kubernetes` section")
        keycloak: dict[str, Any] = {}
        if self.iam is not None and self.keycloak_identity is not None:
            identity = self.keycloak_identity
            keycloak = {
                "keycloakUrl": self.iam.public_url,
                "keycloakAdminUser": config.keycloak.admin_user,
                "keycloakAdminPassword": pulumi.Output.secret(self.iam.keycloak.admin_password),
                "keycloakIssuerUrl": identity.issuer_url,
                "keycloakJwksUrl": identity.jwks_url,
                "keycloakRealmId": identity.realm_id,
                "keycloakZitiClientId": identity.client_uuid,
            }
        ziti: dict[str, Any] = {}
        if self.ziti is not None and self.ziti_trust is not None and self.keycloak_identity is not None:
            ziti = {
                **_chain_exports(config.spire.trust_domain, self.bundle_pem, self.entry_ids(),
                                 self.keycloak_identity, self.ziti_trust),
                "zitiControllerUrl": self.ziti.controller_url,
                "zitiConsoleUrl": self.ziti.controller_url.apply(lambda u: f"{u}/zac/"),
                "zitiAdminUser": self.ziti.admin_user,
                "zitiAdminPassword": pulumi.Output.secret(self.ziti.admin_password),
            }
        return keycloak | ziti | {
            "environment": config.environment,
            "platform": config.platform,
            "nodes": [],
            "spireTrustDomain": config.spire.trust_domain,
            "spireBundlePem": self.bundle_pem,
            "spireEntryIds": self.entry_ids(),
            "kubernetesTopology": k8s.topology,
            "kubernetesClusters": sorted(k8s.clusters),
            "spireServerAddress": self.topology.server_address,
        }


Platform = SwarmPlatform | ExternalPlatform | KubernetesPlatform


def _chain_exports(
    trust_domain: str,
    bundle_pem: pulumi.Input[str],
    entry_ids: Mapping[str, pulumi.Output[str]],
    identity: KeycloakIdentity,
    trust: ZitiTrust,
) -> dict[str, Any]:
    """The trust chain's outputs, the same on every platform."""
    outputs: dict[str, Any] = {
        "spireTrustDomain": trust_domain,
        "spireBundlePem": bundle_pem,
        "spireEntryIds": entry_ids,
        "keycloakIssuerUrl": identity.issuer_url,
        "keycloakJwksUrl": identity.jwks_url,
        "keycloakRealmId": identity.realm_id,
        "keycloakZitiClientId": identity.client_uuid,
        "zitiCaId": trust.ca_id,
        "zitiCaFingerprint": trust.ca_fingerprint,
        "zitiExtJwtSignerId": trust.ext_jwt_signer_id,
        "zitiAuthPolicyId": trust.auth_policy_id,
        "zitiIdentityIds": trust.identity_ids,
        "zitiUserIdentityIds": trust.user_identity_ids,
    }
    if trust.router_id is not None:
        outputs["zitiRouterId"] = trust.router_id
    return outputs


def build_platform(config: StackConfig, secrets: StackSecrets) -> Platform:
    """The stack for `config.platform`; `imports` are taken over instead of created, and objects a
    renamed key moved keep their resources (`Moves`: the previous deployment, read once)."""
    moves = Moves.of_this_stack()
    if config.imports or moves.held:  # `imports` names only Ziti resources: StackConfig checked each name
        _import_existing(config.imports, moves)
    platform: Platform
    try:
        if config.platform == "kubernetes":
            platform = build_kubernetes(config, secrets)
        elif config.platform == "external":
            platform = build_external(config, secrets)
        else:
            platform = build_swarm(config, secrets)
    finally:
        conflict = moves.settle(_stack_file_key)  # aliases and orderings, now that every name is known
    if conflict is not None:
        raise conflict
    return platform


IMPORTABLE = "pulumi-python:dynamic/ziti:"


def _stack_file_key(resource_name: str) -> str:
    """The stack-file key a workload's or user's identity comes from (`Moves`' messages name it)."""
    for pattern, section in ((WORKLOAD_IDENTITY, "workloads"), (USER_IDENTITY, "users")):
        prefix = pattern.format(name=ZITI_TRUST, key="")
        if resource_name.startswith(prefix):
            return f"{PROJECT}:{section}.{resource_name.removeprefix(prefix)}"
    return resource_name


def _import_existing(imports: Mapping[str, str], moves: Moves) -> None:
    """Hand each existing object named in `imports` to the resource of that name, and each object
    a renamed key moved to its resource's new name (`Moves`).

    Pulumi cannot import a Python dynamic resource (`pulumi import` or the `import` option: its
    provider host finds no serialized provider without state, pulumi/pulumi#16175). So the id
    goes in as the input `import_id`, and the provider's create takes the object over (writes its
    ownership and the declared settings) instead of creating one; its connection is the stack's."""

    def transformation(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        props, opts = args.props, args.opts
        if args.name in imports and args.type_.startswith(IMPORTABLE):
            props = {**props, "import_id": imports[args.name]}
        moved = moves.options(args.resource, args.type_, args.name, props)
        if moved is not None:  # components/moves.py: an object or a value that changes resource
            opts = pulumi.ResourceOptions.merge(opts, moved)
        return None if props is args.props and opts is args.opts else pulumi.ResourceTransformationResult(props, opts)

    pulumi.runtime.register_stack_transformation(transformation)


def registrations(config: StackConfig, agent_ids: Mapping[str, str]) -> dict[str, Registration]:
    """Each workload's SPIRE entry, under the agent of its node (`agent_ids`: node -> agent ID; the
    workloads of other nodes are left out), in the trust domain of that node's server."""
    return {
        wname: Registration(
            spiffe_id=f"spiffe://{config.workload_trust_domain(w.node)}{w.spiffe_path}",
            parent_id=agent_ids[w.node],
            selectors=tuple(w.selectors),
            x509_svid_ttl=w.x509_svid_ttl,
            dns_names=tuple(w.dns_names),
            federates_with=tuple(w.federates_with),
        )
        for wname, w in sorted(config.workloads.items())
        if w.node in agent_ids
    }


@dataclass(frozen=True)
class ChainEnds:
    """Where the trust chain connects: the only thing a platform changes about it."""

    root_ca_cert_pem: pulumi.Input[str]
    root_ca_key_pem: pulumi.Input[str]
    agent_spiffe_ids: Mapping[str, str]
    keycloak_url: pulumi.Input[str]
    keycloak_admin_password: pulumi.Input[str]
    keycloak_ca_bundle_pem: str | None
    # The JWKS URL as the controller reaches it; None: the one the realm advertises.
    keycloak_jwks_url: pulumi.Input[str] | None
    ziti_connection: Mapping[str, pulumi.Input[Any]]
    router_name: str | None
    # Prefix of the Ziti objects' names: None on a controller the stack owns.
    ziti_name_scope: str | None = None
    # What each part waits for (the servers the program starts; nothing for external ones).
    spire_after: Sequence[pulumi.Resource] = ()
    keycloak_after: Sequence[pulumi.Resource] = ()
    ziti_after: Sequence[pulumi.Resource] = ()


def _trust_chain(config: StackConfig, ends: ChainEnds) -> tuple[SpireRegistrations, KeycloakIdentity, ZitiTrust]:
    """SPIRE entries, the Keycloak realm and client, and the Ziti side: the same on every platform."""
    kc = config.keycloak
    entries = SpireRegistrations(
        "spire-entries",
        SpireRegistrationsArgs(
            entries=registrations(config, ends.agent_spiffe_ids), connection=spire_connection(config)
        ),
        opts=pulumi.ResourceOptions(depends_on=list(ends.spire_after)),
    )
    identity = KeycloakIdentity(
        "keycloak-identity",
        KeycloakIdentityArgs(
            url=ends.keycloak_url,
            admin_user=kc.admin_user,
            admin_password=ends.keycloak_admin_password,
            realm=kc.realm,
            ziti_client_id=kc.ziti_client_id,
            # Tokens for Ziti carry the Ziti client's id as audience; the signer expects exactly that.
            audience=kc.ziti_client_id,
            ca_bundle_pem=ends.keycloak_ca_bundle_pem,
        ),
        opts=pulumi.ResourceOptions(depends_on=list(ends.keycloak_after)),
    )
    trust = ziti_trust(
        config, entries, identity, connection=ends.ziti_connection, root_ca_cert_pem=ends.root_ca_cert_pem,
        root_ca_key_pem=ends.root_ca_key_pem, jwks_url=ends.keycloak_jwks_url, router_name=ends.router_name,
        name_scope=ends.ziti_name_scope, after=ends.ziti_after,
    )
    return entries, identity, trust


def ziti_trust(
    config: StackConfig, entries: SpireRegistrations, identity: KeycloakIdentity, *,
    connection: Mapping[str, pulumi.Input[Any]], root_ca_cert_pem: pulumi.Input[str],
    root_ca_key_pem: pulumi.Input[str], jwks_url: pulumi.Input[str] | None, router_name: str | None,
    name_scope: str | None = None, after: Sequence[pulumi.Resource] = (),
) -> ZitiTrust:
    """The Ziti side of the chain: SPIRE's root as a verified CA, an identity per workload by
    SPIFFE ID, the realm as the external JWT signer (its issuer; its JWKS where the controller
    reaches it, None: the one the realm advertises), the policies and the router entity. The same
    on every platform; `after`: the controller's resources the providers talk to."""
    return ZitiTrust(
        ZITI_TRUST,
        ZitiTrustArgs(
            connection=connection,
            root_ca_cert_pem=root_ca_cert_pem,
            root_ca_key_pem=root_ca_key_pem,
            keycloak_issuer=identity.issuer_url,
            keycloak_jwks_url=jwks_url if jwks_url is not None else identity.jwks_url,
            keycloak_audience=identity.audience,
            keycloak_client_id=identity.client_id,
            router_name=router_name,
            name_scope=name_scope,
            workloads={
                wname: ZitiWorkload(entries.spiffe_ids[wname], tuple(w.ziti_role_attributes))
                for wname, w in sorted(config.workloads.items())
            },
            users={name: ZitiUserSpec(u.email, tuple(u.ziti_role_attributes)) for name, u in config.users.items()},
        ),
        opts=pulumi.ResourceOptions(depends_on=list(after)),
    )


def realm_jwks_url(keycloak_base_url: str, realm: str) -> str:
    """A realm's JWKS under a Keycloak base URL (the one the controller reaches, not the public one)."""
    return f"{keycloak_base_url}/realms/{realm}/protocol/openid-connect/certs"


def kubernetes_jwks_url(keycloak_internal_url: str, realm: str) -> str:
    """kubernetes.ziti: the realm's JWKS through Keycloak's cluster Service (`keycloak.iam-system.svc`),
    which the controller's sidecar reaches over the mesh's mTLS."""
    return realm_jwks_url(keycloak_internal_url, realm)


def build_external(config: StackConfig, secrets: StackSecrets) -> ExternalPlatform:
    """The trust chain against the user's SPIRE, Keycloak and OpenZiti (connections from config)."""
    spire, kc, zt = config.spire, config.keycloak, config.ziti
    if kc.url is None or zt.controller_url is None or secrets.keycloak_admin_password is None or (
        secrets.ziti_admin_password is None
    ):
        raise AssertionError("stack_config.load refuses an external stack without its connections")
    root_ca = RootCa(
        "root-ca",
        RootCaArgs(
            common_name=ROOT_CA_CN.format(trust_domain=spire.trust_domain),
            validity_hours=spire.root_ca_validity_hours,
            certificate=config.root_ca.certificate if config.root_ca else None,
            key=secrets.root_ca_key,
            protect=config.is_prod,
        ),
    )
    entries, identity, trust = _trust_chain(
        config,
        ChainEnds(
            root_ca_cert_pem=root_ca.cert_pem,
            root_ca_key_pem=root_ca.key_pem,
            agent_spiffe_ids=spire.agents,
            keycloak_url=kc.url,
            keycloak_admin_password=secrets.keycloak_admin_password,
            keycloak_ca_bundle_pem=kc.ca_bundle,
            keycloak_jwks_url=kc.jwks_url,
            ziti_connection={
                "url": zt.controller_url,
                "username": zt.admin_user,
                "password": secrets.ziti_admin_password,
                "ca_bundle_pem": zt.ca_bundle,
            },
            router_name=zt.router_name if config.makes_router else None,
            # Your controller may serve several stacks: their objects' names must not collide.
            ziti_name_scope=pulumi.get_stack(),
        ),
    )
    return ExternalPlatform(root_ca, entries, identity, trust, config)


def build_swarm(config: StackConfig, secrets: StackSecrets) -> SwarmPlatform:
    """Build the three stacks (SPIRE -> Keycloak -> OpenZiti) and wire the trust chain."""
    prod = config.is_prod
    swarm = SwarmNodes(
        "swarm",
        SwarmNodesArgs(
            docker_hosts={name: node.docker_host for name, node in config.nodes.items()},
            manager_node=config.manager_node,
            stateful_node=config.stateful_nodes[0],
            rclone_plugin_image=config.images.rclone_plugin if prod else None,
        ),
    )
    place = swarm.placement
    # prod: one private bucket (and key) per stack; dev: local volumes only.
    buckets = (
        {
            role: SpacesBucket(
                f"bucket-{role}",
                bucket_name=bucket_name(config.domain, pulumi.get_stack(), role),
                region=config.region,
                noncurrent_version_days=config.storage.noncurrent_version_days,
            )
            for role in BUCKET_ROLES
        }
        if prod
        else {}
    )
    storage = config.storage
    backups = {
        role: Backups(bucket, storage.backup_interval_minutes, storage.restore_on_first_start)
        for role, bucket in buckets.items()
    }

    brought = (
        (config.root_ca.certificate, secrets.root_ca_key)
        if config.root_ca is not None and secrets.root_ca_key is not None
        else None
    )
    spire = SpireStack(
        "spire",
        SpireStackArgs(
            spire=config.spire,
            images=config.images,
            prod=prod,
            placement=place,
            nodes=sorted(config.nodes),
            backups=backups.get("spire"),
            brought_root_ca=brought,
        ),
    )
    keycloak = KeycloakStack(
        "keycloak",
        KeycloakStackArgs(
            keycloak=config.keycloak, images=config.images, prod=prod, placement=place, backups=backups.get("keycloak")
        ),
        opts=pulumi.ResourceOptions(depends_on=[spire]),
    )
    ziti = ZitiStack(
        "ziti",
        ZitiStackArgs(
            ziti=config.ziti,
            images=config.images,
            prod=prod,
            placement=place,
            pki_validity_hours=config.spire.root_ca_validity_hours,
            backups=backups.get("ziti"),
            svid_helpers={
                wname: SvidHelperSpec(w.node, w.helper_labels())
                for wname, w in config.workloads.items()
                if w.svid_helper
            },
            agents=spire.agents,
            agent_socket_dir=AGENT_SOCKET_DIR,
            agent_socket_path=AGENT_SOCKET_PATH,
            # The controller fetches Keycloak's JWKS over the `keycloak` network.
            keycloak_network_id=keycloak.network.id,
        ),
        opts=pulumi.ResourceOptions(depends_on=[keycloak]),
    )
    entries, identity, trust = _trust_chain(
        config,
        ChainEnds(
            root_ca_cert_pem=spire.root_ca_cert_pem,
            root_ca_key_pem=spire.root_ca_key_pem,
            agent_spiffe_ids=spire.agent_spiffe_ids,
            keycloak_url=keycloak.url,
            keycloak_admin_password=keycloak.admin_password,
            keycloak_ca_bundle_pem=None,
            # The controller fetches the JWKS itself, over the `keycloak` overlay network.
            keycloak_jwks_url=realm_jwks_url(keycloak.internal_url, config.keycloak.realm),
            ziti_connection={
                "url": ziti.controller_url,
                "username": ziti.admin_user,
                "password": ziti.admin_password,
                "ca_bundle_pem": ziti.controller_ca_pem,
                "ready_timeout": SERVER_READY_TIMEOUT_SECONDS,
            },
            router_name=config.ziti.router_name,
            # The one service each part talks to, not its stack component: depending on a component
            # makes the SDK expand its whole child tree for every workload's resources.
            spire_after=[spire.server_service],
            keycloak_after=[keycloak.service],
            ziti_after=[ziti.controller_service],
        ),
    )
    if trust.router_enrollment_jwt is None:
        raise AssertionError("swarm always makes the edge router entity")
    router = ZitiRouter(
        "ziti-router",
        ZitiRouterArgs(
            ziti=config.ziti,
            image=config.images.ziti_router,
            prod=prod,
            placement=place,
            controller=ziti.controller_service,
            network_id=ziti.network.id,
            enrollment_jwt=trust.router_enrollment_jwt,
        ),
        opts=pulumi.ResourceOptions(depends_on=[ziti]),
    )
    return SwarmPlatform(swarm, buckets, spire, keycloak, ziti, entries, identity, trust, router, config)


def iam_stack_args(config: StackConfig, iam: IamSettings, storage_class: str | None) -> IamStackArgs:
    """kubernetes.iam as the IAM parts' args: sizes from the environment, names from the config."""
    scrapers = (OBSERVABILITY_NAMESPACE,) if iam.observability else ()
    # The Ziti controller fetches the realm's JWKS from Keycloak's Service (kubernetes.ziti).
    http_clients = (ZITI_NAMESPACE,) if config.kubernetes is not None and config.kubernetes.ziti else ()
    images = config.images
    return IamStackArgs(
        keycloak=KeycloakOnCnpgArgs(
            replicas=REPLICAS[config.environment],
            public_url=iam.public_url(),
            admin_user=config.keycloak.admin_user,
            keycloak_image=config.images.keycloak,
            postgres_image=config.images.cnpg_postgres,
            database_storage=iam.database_storage,
            storage_class=storage_class,
            prod=config.is_prod,
            gateway_namespace=iam.gateway_namespace,
            gateway_selector=dict(iam.gateway_selector),
            scrapers=scrapers,
            http_clients=http_clients,
        ),
        mesh=IamMeshArgs(
            hostname=iam.hostname,
            tls_credential=iam.tls_credential,
            gateway_service_account=iam.gateway_service_account,
            mesh_namespaces=(IAM_NAMESPACE, *scrapers),
            scrapers=scrapers,
            http_clients=http_clients,
            gateway_namespace=iam.gateway_namespace,
            gateway_selector=dict(iam.gateway_selector),
        ),
        admin_url=iam.admin_base_url(prod=config.is_prod),
        gitops=IamGitOpsArgs(repo_url=iam.gitops.repo_url, revision=iam.gitops.revision, path=iam.gitops.path,
                             namespace=iam.gitops.namespace) if iam.gitops is not None else None,
        observability=ObservabilityArgs(loki_image=images.loki, promtail_image=images.promtail,
                                        prometheus_image=images.prometheus, grafana_image=images.grafana,
                                        storage=iam.observability_storage(prod=config.is_prod),
                                        storage_class=storage_class)
        if iam.observability else None,
    )


def kubernetes_root_ca(config: StackConfig, secrets: StackSecrets) -> RootCa:
    """The root the (top) server chains to: generated, or `rootCa` with its key."""
    return RootCa(
        "root-ca",
        RootCaArgs(
            common_name=ROOT_CA_CN.format(trust_domain=config.spire.trust_domain),
            validity_hours=config.spire.root_ca_validity_hours,
            certificate=config.root_ca.certificate if config.root_ca else None,
            key=secrets.root_ca_key,
            protect=config.is_prod,
        ),
    )


def build_enterprise(config: StackConfig, secrets: StackSecrets) -> KubernetesPlatform:
    """Both clusters of the enterprise topology, each through its provider, and per cluster an
    entry per workload its server attests (through `kubectl exec` into that server)."""
    k8s = config.kubernetes
    if k8s is None:
        raise AssertionError("stack_config refuses platform kubernetes without its `kubernetes` section")
    root_ca = kubernetes_root_ca(config, secrets)
    topology = EnterpriseTopology(
        "enterprise",
        EnterpriseTopologyArgs(
            spire=config.spire,
            kubernetes=k8s,
            images=config.images,
            workloads=config.workloads,
            accesses=k8s.clusters,
            providers={name: cluster_provider(name, access) for name, access in sorted(k8s.clusters.items())},
            root_ca_cert_pem=root_ca.cert_pem,
            root_ca_key_pem=root_ca.key_pem,
        ),
    )
    entries = {
        cluster: SpireRegistrations(
            f"spire-entries-{cluster}",
            SpireRegistrationsArgs(entries=registrations(config, {cluster: alias_id}),
                                   connection=topology.connections[cluster]),
            opts=pulumi.ResourceOptions(depends_on=[side.alias_entry for side in topology.sides.values()]),
        )
        for cluster, alias_id in sorted(topology.alias_ids.items())
    }
    return KubernetesPlatform(topology, root_ca.cert_pem, entries, config)


def build_kubernetes(config: StackConfig, secrets: StackSecrets) -> KubernetesPlatform:
    """The topology in its one cluster, and an entry per workload under the cluster's agents."""
    k8s = config.kubernetes
    if k8s is None:
        raise AssertionError("stack_config refuses platform kubernetes without its `kubernetes` section")
    if k8s.topology == "enterprise":
        return build_enterprise(config, secrets)
    (cluster, access), = k8s.clusters.items()  # basic and crd-free: exactly one (stack_config)
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster_provider(cluster, access)})
    topology: BasicTopology | AgentsOnlyTopology
    bundle: pulumi.Input[str]
    root_ca: RootCa | None = None
    if k8s.topology == "crd-free":
        topology = AgentsOnlyTopology(
            f"agents-{cluster}",
            AgentsOnlyTopologyArgs(
                trust_domain=config.spire.trust_domain,
                kubernetes=k8s,
                images=config.images,
                workloads=config.workloads,
                cluster=cluster,
                # Entries reach the external server through `spire.transport`, as ops does.
                connection=spire_connection(config),
            ),
            opts=on_cluster,
        )
        bundle = topology.bundle_pem
    else:
        root_ca = kubernetes_root_ca(config, secrets)
        topology = BasicTopology(
            f"spire-{cluster}",
            BasicTopologyArgs(
                spire=config.spire,
                kubernetes=k8s,
                images=config.images,
                workloads=config.workloads,
                cluster=cluster,
                cluster_access=access,
                root_ca_cert_pem=root_ca.cert_pem,
                root_ca_key_pem=root_ca.key_pem,
            ),
            opts=on_cluster,
        )
        bundle = root_ca.cert_pem
    entries = {cluster: SpireRegistrations(
        "spire-entries",
        SpireRegistrationsArgs(
            entries=registrations(config, {cluster: topology.alias_id}), connection=topology.connection
        ),
        opts=pulumi.ResourceOptions(depends_on=[topology.alias_entry]),
    )}
    if k8s.iam is None:
        return KubernetesPlatform(topology, bundle, entries, config)
    iam = IamStack("iam", iam_stack_args(config, k8s.iam, k8s.storage_class), opts=on_cluster)
    kc = config.keycloak
    identity = KeycloakIdentity(
        "keycloak-identity",
        KeycloakIdentityArgs(
            url=iam.admin_url,
            admin_user=kc.admin_user,
            admin_password=iam.keycloak.admin_password,
            realm=kc.realm,
            ziti_client_id=kc.ziti_client_id,
            audience=kc.ziti_client_id,
        ),
        opts=pulumi.ResourceOptions(depends_on=iam.ready),
    )
    if k8s.ziti is None or root_ca is None:  # crd-free has no root of the program's (stack_config)
        return KubernetesPlatform(topology, bundle, entries, config, iam, identity)
    controller, trust, router = build_kubernetes_ziti(config, on_cluster, root_ca, entries[cluster], identity,
                                                      keycloak_url=iam.keycloak.internal_url)
    return KubernetesPlatform(topology, bundle, entries, config, iam, identity, controller, trust, router)


def build_kubernetes_ziti(
    config: StackConfig, on_cluster: pulumi.ResourceOptions, root_ca: RootCa, entries: SpireRegistrations,
    identity: KeycloakIdentity, *, keycloak_url: str,
) -> tuple[ZitiController, ZitiTrust, ZitiEdgeRouterPod]:
    """kubernetes.ziti: the controller, the Ziti side of the chain against it (the realm's JWKS
    through Keycloak's cluster Service), and the router enrolled with the JWT it yields."""
    k8s, zt = config.kubernetes, config.ziti
    if k8s is None or k8s.ziti is None:
        raise AssertionError("called only with kubernetes.ziti")
    zk = k8s.ziti
    controller = ZitiController(
        "ziti",
        ZitiControllerArgs(
            ziti=zt, image=config.images.ziti_controller, pki_validity_hours=config.spire.root_ca_validity_hours,
            service_type=zk.service_type, node_port=zk.controller_node_port, storage=zk.database_storage,
            storage_class=k8s.storage_class, prod=config.is_prod,
            keycloak_namespace=IAM_NAMESPACE, keycloak_app=KEYCLOAK, keycloak_port=HTTP_PORT,
        ),
        opts=on_cluster,
    )
    trust = ziti_trust(
        config, entries, identity,
        connection={
            "url": controller.controller_url,
            "username": controller.admin_user,
            "password": controller.admin_password,
            "ca_bundle_pem": controller.controller_ca_pem,
            "ready_timeout": SERVER_READY_TIMEOUT_SECONDS,
        },
        root_ca_cert_pem=root_ca.cert_pem,
        root_ca_key_pem=root_ca.key_pem,
        # The issuer stays the realm's own (the public URL every token carries, which the
        # controller compares); the keys it fetches from Keycloak's Service inside the cluster.
        jwks_url=kubernetes_jwks_url(keycloak_url, config.keycloak.realm),
        router_name=zt.router_name,
        # The StatefulSet (awaited Ready) and the Service the program reaches it through.
        after=[controller.stateful_set, controller.service],
    )
    if trust.router_enrollment_jwt is None:
        raise AssertionError("kubernetes.ziti always makes the edge router entity")
    router = ZitiEdgeRouterPod(
        "ziti-router",
        ZitiEdgeRouterPodArgs(
            ziti=zt, image=config.images.ziti_router, namespace=controller.namespace_name,
            controller_service=controller.service, enrollment_jwt=trust.router_enrollment_jwt,
            service_type=zk.service_type, node_port=zk.router_node_port, storage=zk.router_storage,
            storage_class=k8s.storage_class, prod=config.is_prod,
        ),
        opts=on_cluster.merge(pulumi.ResourceOptions(depends_on=[controller.stateful_set])),
    )
    return controller, trust, router
