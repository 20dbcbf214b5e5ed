"""What the checks need about one deployed stack, read through the Automation API.

- the outputs: `StackOutputs.from_stack` (`stack output --json --show-secrets`, validated);
- the config: `pulumi config --json --show-secrets` (what the CLI resolves, so ESC environments
  count), parsed with the program's own model (`stack_config.parse`); the admin passwords of
  platform external are the secret keys `keycloakAdminPassword` / `zitiAdminPassword`;
- platform swarm only, from the state (`stack export`): the CA that signs the Ziti controller's
  TLS certificate (the `ZitiStack` component's `controller_ca_pem`, not an output) and the names
  of the Swarm services the stack deployed. Nothing else of the state is kept.

Secrets stay `SecretStr` here; `Target.secret_values()` lists them so the report can be scrubbed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi import automation as auto
from pydantic import SecretStr

import stack_config
from ops.errors import ExitCode, OpsError
from ops.outputs import OutputsContractError, StackOutputs
from ops.workspace import PROJECT_ROOT, classify_command_error, open_stack
from stack_config.secrets import SECRET_KEYS

SERVICE_TYPE = "docker:index/service:Service"
ZITI_STACK_TYPE = "identity-platform:ziti:ZitiStack"
# The components that run a controller (swarm, kubernetes.ziti): each keeps its own root CA's PEM.
ZITI_CONTROLLER_TYPES = (ZITI_STACK_TYPE, "identity-platform:kubernetes:ZitiController")


@dataclass(frozen=True)
class Options:
    """How to check: per-call timeout, where Keycloak's health is, the certificate warning window."""

    timeout: float = 10.0
    keycloak_health_url: str | None = None
    expiry_warning_days: int = 30


@dataclass(frozen=True)
class Target:
    """One deployed stack as the checks see it."""

    stack: str  # the short stack name (the SPIRE entries' ownership prefix uses it)
    project: str
    config: stack_config.StackConfig
    outputs: StackOutputs
    keycloak_admin_password: SecretStr | None = None
    ziti_admin_password: SecretStr | None = None
    # Verifies the controller's TLS: external `ziti.caBundle` (None: the system store); swarm: the
    # stack's own controller root CA from the state.
    ziti_ca_pem: str | None = None
    # swarm: the Swarm services the stack deployed (names), from the state.
    swarm_services: tuple[str, ...] = ()

    @property
    def platform(self) -> str:
        return self.config.platform

    @property
    def keycloak_ca_pem(self) -> str | None:
        return self.config.keycloak.ca_bundle

    @property
    def manager_docker_host(self) -> str | None:
        if self.config.platform != "swarm" or not self.config.nodes:
            return None
        return self.config.nodes[self.config.manager_node].docker_host

    def secret_values(self) -> list[str]:
        """Every secret value this target holds (to scrub from anything printed)."""
        values = [self.keycloak_admin_password, self.ziti_admin_password]
        for key in StackOutputs.secret_keys():
            name = next((n for n, f in StackOutputs.model_fields.items() if (f.alias or n) == key), key)
            values.append(getattr(self.outputs, name, None))
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]


def short_name(stack: str) -> str:
    """`org/project/stack` -> `stack` (what `pulumi.get_stack()` returns to the program)."""
    return stack.rsplit("/", 1)[-1]


def raw_from_cli_config(config: Mapping[str, auto.ConfigValue], project: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(raw model input, secret key -> value) from `pulumi config --json --show-secrets`.

    Mirrors `stack_config._read_raw`: the CLI gives structured keys as JSON text."""
    raw: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for full, value in config.items():
        ns, _, key = full.rpartition(":")
        if ns != project:
            continue
        if key in SECRET_KEYS:
            secrets[key] = value.value
        elif key == "strict":
            raw[key] = value.value.strip().lower() == "true"
        elif key in stack_config.STRUCTURED_KEYS:
            try:
                raw[key] = json.loads(value.value)
            except json.JSONDecodeError as e:
                raise OpsError(ExitCode.CONFIG_ERROR, f"{project}:{key}: not a YAML/JSON object ({e.msg})",
                               kind="config_invalid") from None
        elif key in stack_config.SCALAR_KEYS:
            raw[key] = value.value
    return raw, secrets


def from_deployment(deployment: Mapping[str, Any] | None) -> tuple[str | None, tuple[str, ...]]:
    """(controller CA PEM, Swarm service names) from a `stack export` deployment."""
    ca: str | None = None
    services: list[str] = []
    for res in (deployment or {}).get("resources") or []:
        outputs = res.get("outputs") or {}
        if res.get("type") == SERVICE_TYPE and isinstance(outputs.get("name"), str):
            services.append(outputs["name"])
        elif res.get("type") in ZITI_CONTROLLER_TYPES and isinstance(outputs.get("controller_ca_pem"), str):
            ca = outputs["controller_ca_pem"]
    return ca, tuple(sorted(set(services)))


def load_target(stack: str, *, root: Path = PROJECT_ROOT, environ: Mapping[str, str] | None = None,
                command: auto.PulumiCommand | None = None) -> Target:
    """Read a deployed stack's outputs, config and (swarm) state; OpsError with an exit code otherwise."""
    try:
        outputs = StackOutputs.from_stack(stack, root=root, environ=environ, command=command)
    except OutputsContractError as e:
        raise OpsError(ExitCode.OUTPUTS_INVALID, str(e), "redeploy with a program that honours the contract") from None
    st = open_stack(stack, create=False, root=root, environ=environ, command=command)
    try:
        project = st.workspace.project_settings().name or stack_config.PROJECT
        raw, secrets = raw_from_cli_config(st.get_all_config(), project)
        try:
            config = stack_config.parse(raw)
        except stack_config.ConfigError as e:
            raise OpsError(ExitCode.CONFIG_ERROR, str(e), kind="config_invalid") from None
        ca_pem: str | None = None
        services: tuple[str, ...] = ()
        if config.platform == "swarm" or (config.kubernetes is not None and config.kubernetes.ziti is not None):
            ca_pem, services = from_deployment(st.export_stack().deployment)
    except auto.CommandError as e:
        raise classify_command_error(e) from None
    external = config.platform == "external"
    return Target(
        stack=short_name(stack),
        project=project,
        config=config,
        outputs=outputs,
        keycloak_admin_password=_secret(secrets.get("keycloakAdminPassword")) if external
        else outputs.keycloak_admin_password,
        ziti_admin_password=_secret(secrets.get("zitiAdminPassword")) if external else outputs.ziti_admin_password,
        ziti_ca_pem=config.ziti.ca_bundle if external else ca_pem,
        swarm_services=services,
    )


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None
