"""Shared building blocks for the Swarm stacks: service defaults, content-named secrets and
configs, placement of stateful services, ordering. No resources are created at import time.

Conventions every stack follows (and the tests check):
- every `docker.Service` has a healthcheck, `converge_config` (so `pulumi up` waits until its tasks
  are healthy), `update_config` and `rollback_config`, an explicit restart policy (explicit
  `delay`/`window` also avoid pulumi-docker#1285's perpetual diff) and rotated json-file logs;
- stateful services are placed on the node labelled `zt.db=true`, run one replica and update
  stop-first, because two tasks must never open the same node-local database;
- Swarm secrets and configs are immutable, so their names carry a hash of their content: a change
  creates a new object, the service switches to it, and the old one is deleted afterwards.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import pulumi_tls as tls

from stack_config import PROJECT

DB_LABEL = "zt.db"
DB_CONSTRAINT = f"node.labels.{DB_LABEL}==true"

# Secrets are mounted by the Swarm at /run/secrets/<file_name>.
SECRETS_DIR = "/run/secrets"


@dataclass(frozen=True)
class Placement:
    """Where a stack's resources go: the manager's provider (Swarm objects), the stateful node's
    (node-local and rclone volumes, one-shot containers) and the rclone plugin there (prod), and
    every node's provider by node name (per-node containers)."""

    manager: docker.Provider
    stateful_node: docker.Provider
    stateful_node_name: str
    nodes: Mapping[str, docker.Provider]
    rclone_plugin: docker.Plugin | None = None


def content_name(base: str, content: str) -> str:
    """`<base>-<12 hex of sha256(content)>`: a new name whenever the content changes."""
    return f"{base}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def after(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """The resources a component was told to wait for (its `depends_on`).

    Children do not inherit a component's `depends_on`, so each stack passes this list to the
    children that start workloads; that is what makes SPIRE -> Keycloak -> OpenZiti real.
    """
    if opts is None or opts.depends_on is None:
        return []
    deps = opts.depends_on
    if isinstance(deps, pulumi.Resource):
        return [deps]
    if isinstance(deps, Sequence):
        return [d for d in deps if isinstance(d, pulumi.Resource)]
    raise TypeError("depends_on must be a Resource or a list of Resources when passed to a stack component")


def config_file(
    resource_name: str,
    *,
    base: str,
    content: pulumi.Input[str],
    parent: pulumi.Resource,
    provider: docker.Provider,
) -> docker.ServiceConfig:
    """A Swarm config with a content-hashed name (immutable objects roll out by replacement)."""
    name: pulumi.Input[str]
    if isinstance(content, str):
        name = content_name(base, content)
    else:
        name = pulumi.Output.from_input(content).apply(lambda c: content_name(base, c))  # type: ignore[arg-type]
    return docker.ServiceConfig(
        resource_name,
        name=name,
        data_raw=content,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider),
    )


def secret_file(
    resource_name: str,
    *,
    base: str,
    content: pulumi.Input[str],
    parent: pulumi.Resource,
    provider: docker.Provider,
) -> docker.Secret:
    """A Swarm secret whose name carries a hash of its (secret) content.

    The name is a truncated SHA-256 of a high-entropy value, so it reveals nothing; it is
    unmarked as a secret on purpose so that plans show which secret a service switches to.
    """
    value = pulumi.Output.secret(content)
    return docker.Secret(
        resource_name,
        name=pulumi.Output.unsecret(value.apply(lambda v: content_name(base, v))),
        data=value.apply(lambda v: base64.b64encode(v.encode()).decode()),
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, additional_secret_outputs=["data"]),
    )


def secret_mount(
    secret: docker.Secret, file_name: str, *, uid: str = "0", mode: int = 0o400
) -> docker.ServiceTaskSpecContainerSpecSecretArgs:
    return docker.ServiceTaskSpecContainerSpecSecretArgs(
        secret_id=secret.id,
        secret_name=secret.name,
        file_name=file_name,
        file_uid=uid,
        file_gid=uid,
        file_mode=mode,
    )


def config_mount(
    cfg: docker.ServiceConfig, file_name: str, *, uid: str = "0", mode: int = 0o444
) -> docker.ServiceTaskSpecContainerSpecConfigArgs:
    return docker.ServiceTaskSpecContainerSpecConfigArgs(
        config_id=cfg.id,
        config_name=cfg.name,
        file_name=file_name,
        file_uid=uid,
        file_gid=uid,
        file_mode=mode,
    )


def volume_mount(
    source: pulumi.Input[str], target: str, *, read_only: bool = False, driver: str | None = None
) -> docker.ServiceTaskSpecContainerSpecMountArgs:
    """A named-volume mount. `driver` pins the volume driver (e.g. `rclone`), so a task that
    somehow lands on a node without the pre-created volume fails instead of silently getting an
    empty local one."""
    return docker.ServiceTaskSpecContainerSpecMountArgs(
        type="volume",
        source=source,
        target=target,
        read_only=read_only,
        volume_options=docker.ServiceTaskSpecContainerSpecMountVolumeOptionsArgs(driver_name=driver)
        if driver
        else None,
    )


def healthcheck(
    test: Sequence[str], *, interval: str = "15s", timeout: str = "5s", start_period: str = "30s", retries: int = 5
) -> docker.ServiceTaskSpecContainerSpecHealthcheckArgs:
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        raise ValueError(f"healthcheck test must start with CMD or CMD-SHELL, got {list(test)!r}")
    return docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
        tests=list(test), interval=interval, timeout=timeout, start_period=start_period, retries=retries
    )


def limits(prod: bool, *, memory_mb: int, cpus: float) -> docker.ServiceTaskSpecResourcesArgs | None:
    """Resource limits in prod (a runaway task must not starve the node); none on a laptop."""
    if not prod:
        return None
    return docker.ServiceTaskSpecResourcesArgs(
        limits=docker.ServiceTaskSpecResourcesLimitsArgs(
            memory_bytes=memory_mb * 1024 * 1024, nano_cpus=int(cpus * 1e9)
        )
    )


def network_attachment(
    network: pulumi.Input[str], aliases: Sequence[str] = ()
) -> docker.ServiceTaskSpecNetworksAdvancedArgs:
    """Attach by network id (attaching by name makes pulumi-docker replace the service every run)."""
    return docker.ServiceTaskSpecNetworksAdvancedArgs(id=network, aliases=list(aliases) or None)


Order = Literal["stop-first", "start-first"]


def service(
    resource_name: str,
    *,
    name: str,
    container_spec: docker.ServiceTaskSpecContainerSpecArgs,
    networks: Sequence[docker.ServiceTaskSpecNetworksAdvancedArgs],
    stateful: bool,
    resources: docker.ServiceTaskSpecResourcesArgs | None,
    opts: pulumi.ResourceOptions,
    ports: Sequence[docker.ServiceEndpointSpecPortArgs] = (),
    labels: Mapping[str, str] | None = None,
    converge_timeout: str = "5m",
) -> docker.Service:
    """A replicated Swarm service with the platform's defaults (see the module docstring)."""
    if container_spec.healthcheck is None:
        raise ValueError(f"service {name}: every service needs a healthcheck (converge_config waits on it)")
    order: Order = "stop-first" if stateful else "start-first"
    return docker.Service(
        resource_name,
        name=name,
        mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=1)),
        labels=[docker.ServiceLabelArgs(label=k, value=v) for k, v in sorted((labels or {}).items())] or None,
        task_spec=docker.ServiceTaskSpecArgs(
            container_spec=container_spec,
            networks_advanceds=list(networks),
            placement=docker.ServiceTaskSpecPlacementArgs(constraints=[DB_CONSTRAINT], max_replicas=1)
            if stateful
            else None,
            resources=resources,
            restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                condition="any", delay="5s", max_attempts=0, window="2m"
            ),
            log_driver=docker.ServiceTaskSpecLogDriverArgs(
                name="json-file", options={"max-size": "10m", "max-file": "5"}
            ),
        ),
        endpoint_spec=docker.ServiceEndpointSpecArgs(ports=list(ports)) if ports else None,
        update_config=docker.ServiceUpdateConfigArgs(
            parallelism=1, delay="10s", failure_action="rollback", monitor="30s", order=order
        ),
        rollback_config=docker.ServiceRollbackConfigArgs(
            parallelism=1, delay="5s", failure_action="pause", monitor="30s", order=order
        ),
        converge_config=docker.ServiceConvergeConfigArgs(delay="7s", timeout=converge_timeout),
        opts=opts,
    )


def self_signed_ca(
    resource_name: str,
    *,
    common_name: str,
    validity_hours: int,
    parent: pulumi.Resource,
    uris: Sequence[str] | None = None,
    protect: bool = False,
) -> tuple[tls.PrivateKey, tls.SelfSignedCert]:
    """A P-384 root CA made by pulumi-tls: the key (`<resource_name>-key`, a secret output) and
    the self-signed certificate (`<resource_name>`). No early renewal: a new root re-keys every
    chain under it, so that must be a deliberate change. `protect` keeps the key from `pulumi
    destroy` and from replacement (prod: every SVID and the Ziti CA hang on it)."""
    opts = pulumi.ResourceOptions(parent=parent)
    key = tls.PrivateKey(
        f"{resource_name}-key",
        algorithm="ECDSA",
        ecdsa_curve="P384",
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
    cert = tls.SelfSignedCert(
        resource_name,
        private_key_pem=key.private_key_pem,
        is_ca_certificate=True,
        set_subject_key_id=True,
        validity_period_hours=validity_hours,
        allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
        uris=list(uris) if uris else None,
        subject=tls.SelfSignedCertSubjectArgs(common_name=common_name, organization=PROJECT),
        opts=opts,
    )
    return key, cert


def generated_password(
    resource_name: str, *, base: str, parent: pulumi.Resource, provider: docker.Provider
) -> tuple[pulumi.Output[str], docker.Secret]:
    """A 32-character password made by pulumi-random (alphanumeric: it goes into connection
    strings and shell wrappers unquoted) as a Pulumi secret, and the Swarm secret that delivers
    it. Both resources are named `resource_name`."""
    password = random.RandomPassword(
        resource_name, length=32, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    value: pulumi.Output[str] = pulumi.Output.secret(password.result)
    return value, secret_file(resource_name, base=base, content=value, parent=parent, provider=provider)


def key_pair_secrets(
    resource_name: str,
    *,
    base: str,
    cert_pem: pulumi.Input[str],
    key_pem: pulumi.Input[str],
    parent: pulumi.Resource,
    provider: docker.Provider,
) -> tuple[docker.Secret, docker.Secret]:
    """A certificate and its private key as two Swarm secrets (`<resource_name>-cert`/`-key`,
    content-named `<base>-cert-…`/`<base>-key-…`); the key never leaves Pulumi secrets."""
    cert = secret_file(f"{resource_name}-cert", base=f"{base}-cert", content=cert_pem, parent=parent, provider=provider)
    key = secret_file(f"{resource_name}-key", base=f"{base}-key", content=key_pem, parent=parent, provider=provider)
    return cert, key
