"""The stack configuration, parsed once from `pulumi.Config` into a frozen pydantic tree.

`load()` is the only place the program reads configuration. It applies environment defaults
(dev: one local engine, localhost URLs; prod: strict mode on) and turns every validation error
into one message naming the config key and how to set it, raised before any resource exists,
so `pulumi preview` fails fast.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pulumi
from pydantic import Field, ValidationError, model_validator

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
from stack_config.systems import (
    KeycloakSettings,
    SpireSettings,
    SpireTransport,
    StorageSettings,
    Workload,
    ZitiSettings,
)

__all__ = [
    "PROJECT",
    "ConfigError",
    "Images",
    "KeycloakSettings",
    "NodeSpec",
    "SpireSettings",
    "SpireTransport",
    "StackConfig",
    "StorageSettings",
    "Workload",
    "ZitiSettings",
    "load",
]

# Keys of the structured config objects (camelCase in YAML), in the order they are read.
STRUCTURED_KEYS = ("nodes", "images", "spire", "keycloak", "ziti", "storage", "workloads")
SCALAR_KEYS = ("environment", "domain", "region", "strict")

LOCAL_ENGINE = "unix:///var/run/docker.sock"


class StackConfig(Model):
    """Everything the program needs to know about one stack."""

    environment: Literal["dev", "prod"] = Field(description="dev = one local Docker host; prod = DigitalOcean Swarm.")
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

    @model_validator(mode="before")
    @classmethod
    def _environment_defaults(cls, data: Any) -> Any:
        """dev needs nothing but `environment`: one local node and localhost names."""
        if not isinstance(data, dict) or data.get("environment") != "dev":
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
        validate_node_names(self.nodes)
        if not self.nodes:
            raise ValueError("nodes: the node map is empty: add at least one node (name -> {dockerHost, labels})")
        if self.spire.trust_domain == self.ziti.cluster_trust_domain:
            raise ValueError(
                "ziti.clusterTrustDomain: must differ from spire.trustDomain, or Ziti's controller SVIDs would collide "
                "with workload SPIFFE IDs"
            )
        for wname, w in self.workloads.items():
            if w.node not in self.nodes:
                raise ValueError(f"workloads.{wname}.node: {w.node!r} is not a key of `nodes` ({sorted(self.nodes)})")
        t = self.spire.transport
        if t.kind == "docker-exec" and t.node is not None and t.node not in self.nodes:
            raise ValueError(f"spire.transport.node: {t.node!r} is not a key of `nodes` ({sorted(self.nodes)})")
        if t.kind == "grpc" and not t.socket_path:
            raise ValueError("spire.transport.socketPath: required when spire.transport.kind is grpc")
        if self.is_strict:
            self._strict_checks()
        return self

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

    def _strict_checks(self) -> None:
        """Strict mode: placeholders that work on a laptop are mistakes in prod."""
        names = {
            "domain": self.domain,
            "spire.trustDomain": self.spire.trust_domain,
            "ziti.clusterTrustDomain": self.ziti.cluster_trust_domain,
            "keycloak.hostname": self.keycloak.hostname,
            "ziti.advertisedAddress": self.ziti.advertised_address,
            "ziti.routerAdvertisedAddress": self.ziti.router_advertised_address,
        }
        for key, value in names.items():
            if is_placeholder_domain(value):
                raise ValueError(f"{key}: {value!r} is a placeholder (example.*): set your real domain (strict mode)")
            if is_localhost(value) or value == "localhost":
                raise ValueError(f"{key}: {value!r} points at localhost: set a name reachable by clients (strict mode)")
        for nname, node in self.nodes.items():
            if is_localhost(node.docker_host):
                raise ValueError(
                    f"nodes.{nname}.dockerHost: {node.docker_host!r} is local: "
                    "use the node's ssh:// or tcp:// URL (strict mode)"
                )


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
    """Validate a raw config dict (camelCase keys) into the frozen model, or raise ConfigError."""
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, {})) from None


def load(cfg: pulumi.Config | None = None) -> StackConfig:
    """Read and validate this stack's configuration (the program's only config read)."""
    return parse(_read_raw(cfg or pulumi.Config(PROJECT)))
