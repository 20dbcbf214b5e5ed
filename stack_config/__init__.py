"""The stack configuration, parsed once from `pulumi.Config` into a frozen pydantic tree.

`load()` is the only place the program reads configuration. It applies environment defaults
(dev: one local engine, localhost URLs; prod: strict mode on) and turns every validation error
into one message naming the config key and how to set it, raised before any resource exists,
so `pulumi preview` fails fast.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pulumi
from pydantic import Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from stack_config.base import (
    PROJECT,
    ConfigError,
    Model,
    format_validation_error,
    is_localhost,
    is_placeholder_domain,
)
from stack_config.images import Images
from stack_config.nodes import NodeSpec, validate_node_names
from stack_config.secrets import StackSecrets, read_secrets, secret_problems
from stack_config.systems import (
    KeycloakSettings,
    RootCaSettings,
    SpireSettings,
    SpireTransport,
    StorageSettings,
    Workload,
    ZitiSettings,
    ZitiUser,
)

__all__ = [
    "PROJECT",
    "ConfigError",
    "Images",
    "KeycloakSettings",
    "NodeSpec",
    "RootCaSettings",
    "SpireSettings",
    "SpireTransport",
    "StackConfig",
    "StackSecrets",
    "StorageSettings",
    "Workload",
    "ZitiSettings",
    "ZitiUser",
    "load",
    "load_secrets",
]

# Keys of the structured config objects (camelCase in YAML), in the order they are read.
STRUCTURED_KEYS = (
    "nodes", "images", "spire", "keycloak", "ziti", "storage", "workloads", "users", "rootCa", "imports",
)
SCALAR_KEYS = ("environment", "platform", "domain", "region", "strict")

LOCAL_ENGINE = "unix:///var/run/docker.sock"


class StackConfig(Model):
    """Everything the program needs to know about one stack."""

    environment: Literal["dev", "prod"] = Field(description="dev = one local Docker host; prod = DigitalOcean Swarm.")
    platform: Literal["swarm", "external"] = Field(
        default="swarm",
        description="swarm: the program runs SPIRE, Keycloak and OpenZiti as Swarm stacks; external: the trust "
        "chain alone, against servers you already run (connections in spire/keycloak/ziti).",
    )
    domain: str = Field(default="localhost")
    region: str = Field(default="fra1", pattern=r"^[a-z]{3}[0-9]$")
    strict: bool | None = Field(default=None, description="Defaults to true in prod, false in dev.")
    nodes: dict[str, NodeSpec] = Field(default_factory=dict)
    images: Images = Field(default_factory=Images)
    spire: SpireSettings
    keycloak: KeycloakSettings
    ziti: ZitiSettings
    storage: StorageSettings = Field(default_factory=StorageSettings)
    workloads: dict[str, Workload] = Field(default_factory=dict)
    users: dict[str, ZitiUser] = Field(
        default_factory=dict, description="Keycloak users by name who reach Ziti with their token (one identity each)."
    )
    root_ca: RootCaSettings | None = Field(
        default=None, description="A root CA you bring (certificate; key in rootCaKey). Unset: generated."
    )
    imports: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        default_factory=dict,
        description="Existing server objects to take over: resource name (as `pulumi stack --show-urns` or "
        "`pulumi preview` names it) -> the object's id on its server. The next `pulumi up` imports each "
        "instead of creating it (the program's settings must match the object); remove the entry afterwards.",
    )

    @model_validator(mode="before")
    @classmethod
    def _environment_defaults(cls, data: Any) -> Any:
        """swarm dev needs nothing but `environment`: one local node and localhost names."""
        if not isinstance(data, dict) or data.get("environment") != "dev" or data.get("platform", "swarm") != "swarm":
            return data
        data = dict(data)
        data.setdefault("nodes", {"local": {"dockerHost": LOCAL_ENGINE, "labels": {"zt.db": "true"}, "manager": True}})
        data.setdefault("spire", {"trustDomain": "dev.zt.internal"})
        data.setdefault("keycloak", {"hostname": "localhost", "publishedPort": 8080})
        data.setdefault(
            "ziti",
            {
                "advertisedAddress": "localhost",
                "clusterTrustDomain": "ctrl.dev.zt.internal",
                "routerAdvertisedAddress": "localhost",
            },
        )
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> StackConfig:
        """Checks across sections, all reported at once ("key: problem" lines)."""
        problems = self._swarm_problems() if self.platform == "swarm" else self._external_problems()
        agents = self.agent_names
        for wname, w in self.workloads.items():
            if w.node not in agents:
                where = "`nodes`" if self.platform == "swarm" else "`spire.agents`"
                problems.append(f"workloads.{wname}.node: {w.node!r} is not a key of {where} ({sorted(agents)})")
        t = self.spire.transport
        if t.kind == "grpc" and not t.socket_path:
            problems.append("spire.transport.socketPath: required when spire.transport.kind is grpc")
        if self.is_strict:
            problems += self._strict_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _swarm_problems(self) -> list[str]:
        problems = []
        try:
            validate_node_names(self.nodes)
        except ValueError as e:
            problems.append(str(e))
        if not self.nodes:
            problems.append("nodes: the node map is empty: add at least one node (name -> {dockerHost, labels})")
        for section, fields in (("keycloak", ("hostname",)),
                                ("ziti", ("advertised_address", "cluster_trust_domain", "router_advertised_address"))):
            for f in fields:
                if getattr(getattr(self, section), f) is None:
                    problems.append(f"{section}.{to_camel(f)}: required: set it")
        if self.spire.trust_domain == self.ziti.cluster_trust_domain:
            problems.append(
                "ziti.clusterTrustDomain: must differ from spire.trustDomain, or Ziti's controller SVIDs would "
                "collide with workload SPIFFE IDs"
            )
        if self.spire.agents:
            problems.append(
                "spire.agents: swarm runs one agent per node (keys of `nodes`): remove it "
                "(fix: `pulumi config rm --path 'spire.agents'`)"
            )
        problems += _set_fields("keycloak", self.keycloak, KeycloakSettings.EXTERNAL_ONLY, "platform swarm")
        problems += _set_fields("ziti", self.ziti, ZitiSettings.EXTERNAL_ONLY, "platform swarm")
        t = self.spire.transport
        if t.kind == "docker-exec" and t.node is not None and t.node not in self.nodes:
            problems.append(f"spire.transport.node: {t.node!r} is not a key of `nodes` ({sorted(self.nodes)})")
        problems += _set_fields("spire.transport", t, ("docker_host", "container", "service"), "platform swarm")
        return problems

    def _external_problems(self) -> list[str]:
        why = "platform external (your own servers)"
        prefix = f"spiffe://{self.spire.trust_domain}/"
        problems = [
            f"spire.agents.{name}: {spiffe_id!r} is not a SPIFFE ID in the trust domain {self.spire.trust_domain!r}: "
            f"use the agent's ID as `spire-server agent list` shows it ({prefix}...)"
            for name, spiffe_id in self.spire.agents.items()
            if not spiffe_id.startswith(prefix) or spiffe_id == prefix
        ]
        problems += [
            f"{to_camel(k)}: the program deploys nothing with {why}: remove it (fix: `pulumi config rm {to_camel(k)}`)"
            for k in ("nodes", "images", "storage")
            if k in self.model_fields_set
        ]
        problems += _set_fields("spire", self.spire, SpireSettings.DEPLOYED_ONLY, why)
        problems += _set_fields("keycloak", self.keycloak, KeycloakSettings.DEPLOYED_ONLY, why)
        problems += _set_fields("ziti", self.ziti, ZitiSettings.DEPLOYED_ONLY, why)
        problems += [
            f"workloads.{w}.svidHelper: the helper is a Swarm container the program runs; with {why} run "
            "spiffe-helper next to your workload (fix: `pulumi config rm --path 'workloads." + w + ".svidHelper'`)"
            for w, spec in self.workloads.items()
            if spec.svid_helper
        ]
        if self.keycloak.url is None:
            problems.append("keycloak.url: required with platform external: your Keycloak's base URL")
        if self.ziti.controller_url is None:
            problems.append("ziti.controllerUrl: required with platform external: your controller's edge API URL")
        if self.workloads and not self.spire.agents:
            problems.append("spire.agents: required for workloads with platform external: name -> agent SPIFFE ID")
        t = self.spire.transport
        if t.node is not None:
            problems.append(
                "spire.transport.node: names a Swarm node; with platform external use dockerHost "
                "(fix: `pulumi config rm --path 'spire.transport.node'`)"
            )
        if t.kind == "docker-exec":
            if t.docker_host is None:
                problems.append("spire.transport.dockerHost: required for docker-exec with platform external")
            if (t.container is None) == (t.service is None):
                problems.append("spire.transport.container: set exactly one of container or service (docker-exec)")
        return problems

    @property
    def agent_names(self) -> set[str]:
        """What a workload's `node` may name: Swarm nodes, or the external server's agents."""
        return set(self.nodes) if self.platform == "swarm" else set(self.spire.agents)

    @property
    def makes_router(self) -> bool:
        """swarm runs an edge router; external makes the entity only when `ziti.routerName` is set."""
        return self.platform == "swarm" or "router_name" in self.ziti.model_fields_set

    @property
    def is_strict(self) -> bool:
        return self.strict if self.strict is not None else self.environment == "prod"

    @property
    def is_prod(self) -> bool:
        return self.environment == "prod"

    @property
    def manager_node(self) -> str:
        """The node stacks are deployed through: the one marked manager, else the first by name."""
        managers = sorted(n for n, s in self.nodes.items() if s.manager)
        return managers[0] if managers else sorted(self.nodes)[0]

    def _strict_problems(self) -> list[str]:
        """Strict mode: placeholders that work on a laptop are mistakes in prod."""
        problems = []
        names = {
            "domain": self.domain,
            "spire.trustDomain": self.spire.trust_domain,
            "ziti.clusterTrustDomain": self.ziti.cluster_trust_domain,
            "keycloak.hostname": self.keycloak.hostname,
            "keycloak.url": self.keycloak.url,
            "ziti.advertisedAddress": self.ziti.advertised_address,
            "ziti.routerAdvertisedAddress": self.ziti.router_advertised_address,
            "ziti.controllerUrl": self.ziti.controller_url,
        }
        if self.platform == "external":
            del names["domain"]  # nothing is published under it
        for key, value in names.items():
            if value is None:
                continue
            if is_placeholder_domain(urlsplit(value).hostname or "" if "://" in value else value):
                problems.append(f"{key}: {value!r} is a placeholder (example.*): set your real domain (strict mode)")
            elif is_localhost(value) or value == "localhost":
                problems.append(f"{key}: {value!r} points at localhost: set a name reachable by clients (strict mode)")
        for key, value in {"keycloak.url": self.keycloak.url, "ziti.controllerUrl": self.ziti.controller_url}.items():
            if value is not None and not value.startswith("https://"):
                problems.append(f"{key}: {value!r} is plain http: admin credentials would cross the network "
                                "in clear; use https (strict mode)")
        for nname, node in self.nodes.items():
            if is_localhost(node.docker_host):
                problems.append(
                    f"nodes.{nname}.dockerHost: {node.docker_host!r} is local: "
                    "use the node's ssh:// or tcp:// URL (strict mode)"
                )
        return problems


def _set_fields(section: str, model: Model, fields: tuple[str, ...], why: str) -> list[str]:
    """One problem per field of `fields` set explicitly in `section`, which `why` does not use."""
    return [
        f"{section}.{to_camel(f)}: not used with {why}: remove it "
        f"(fix: `pulumi config rm --path '{section}.{to_camel(f)}'`)"
        for f in fields
        if f in model.model_fields_set
    ]


def _read_raw(cfg: pulumi.Config) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for key in SCALAR_KEYS:
        value = cfg.get(key)
        if value is None:
            continue
        if key == "strict":
            raw[key] = cfg.get_bool(key)
        else:
            raw[key] = value
    for key in STRUCTURED_KEYS:
        text = cfg.get(key)
        if text is None:
            continue
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{PROJECT}:{key}: not a YAML/JSON object ({e.msg}); check Pulumi.<stack>.yaml") from e
    return raw


def parse(raw: dict[str, Any]) -> StackConfig:
    """Validate a raw config dict (camelCase keys) into the frozen model, or raise ConfigError.

    Pydantic skips the cross-section checks when a field fails; so they run once more without the
    sections that failed, and their problems join the field errors: one preview names them all."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as e:
        message = format_validation_error(e, {})
        failed = {str(err["loc"][0]) for err in e.errors() if err["loc"]}
        if failed:
            try:
                StackConfig.model_validate({k: v for k, v in raw.items() if k not in failed})
            except ValidationError as rest:
                cross = [err for err in rest.errors() if not err["loc"]]
                if cross:
                    extra = format_validation_error(rest, {}).split("\n  ")[1:]
                    keep = [line for line in extra if not any(line.startswith(f"{PROJECT}:{k}") for k in failed)]
                    lines = message.split("\n  ")[1:]
                    message = "invalid stack configuration:\n  " + "\n  ".join(
                        lines + [line for line in keep if line not in lines]
                    )
        raise ConfigError(message) from None


def _plain(key: str) -> str | None:
    """A config value as the program receives it (secrets decrypted); only the checks see it."""
    value = pulumi.runtime.get_config(f"{PROJECT}:{key}")
    return None if value is None else str(value)


def _is_secret(full_key: str) -> bool:
    return pulumi.runtime.is_config_secret(full_key)


def load(cfg: pulumi.Config | None = None) -> StackConfig:
    """Read and validate this stack's configuration (the program's only config read).

    The model and the secret keys are checked together, so one preview reports every problem."""
    raw = _read_raw(cfg or pulumi.Config(PROJECT))
    lines: list[str] = []
    config: StackConfig | None = None
    try:
        config = parse(raw)
    except ConfigError as e:
        lines += str(e).split("\n  ")[1:]
    root = raw.get("rootCa")
    cert = root.get("certificate") if isinstance(root, dict) and isinstance(root.get("certificate"), str) else None
    lines += secret_problems(_plain, _is_secret, platform=str(raw.get("platform", "swarm")), root_ca_cert=cert)
    if lines or config is None:
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(lines))
    return config


def load_secrets(config: StackConfig) -> StackSecrets:
    """The stack's secret keys, checked by `load`, as secret Outputs."""
    return read_secrets(_plain, platform=config.platform, brought_root=config.root_ca is not None)
