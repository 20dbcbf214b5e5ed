"""Typed SPIRE `server.conf`, `agent.conf` and spiffe-helper `helper.conf`, rendered as JSON.

Pure code, no resources: the SPIRE components build these models and ship the rendered text as
Swarm configs (server) or container uploads (agents, helpers); `servers/spire.py` starts the real
server and agent from the same models. SPIRE and spiffe-helper read their files with HashiCorp HCL
v1, whose decoder takes JSON as well (a file that starts with `{`), as spiffe/helm-charts-hardened
ships `server.conf`. JSON has one escaping, so any string is written exactly, with nothing of our
own to get wrong; `tests/real/test_spire_configs.py` has the real `spire-server validate` and
`spire-agent validate` read what is rendered, and starts both from it. Plugins are written as the
chart writes them: `"plugins": {"NodeAttestor": [{"x509pop": {"plugin_data": {...}}}]}`.

Field names follow the SPIRE docs (`doc/spire_server.md`, `doc/spire_agent.md`, plugin docs) and
spiffe-helper's README; values SPIRE documents as quoted strings (ports) stay strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stack_config.base import GoDuration

ScalarValue = Union[str, int, bool, list[str]]  # noqa: UP007 - pydantic needs the runtime Union
# A map of named objects, such as k8s_psat's `"clusters": {"<name>": {...}}`.
PluginValue = Union[ScalarValue, dict[str, dict[str, ScalarValue]]]  # noqa: UP007

_PORT = r"^[0-9]{1,5}$"


def render(document: Mapping[str, Any]) -> str:
    """The file's text: indented JSON, keys in the models' order, non-ASCII written as is."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class ConfModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Plugin(ConfModel):
    """One plugin instance: its name (the block label) and its `plugin_data`."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Plugin name, the block label, e.g. x509pop.")
    data: dict[str, PluginValue] = Field(default_factory=dict, description="The plugin_data attributes.")

    def entry(self) -> dict[str, Any]:
        """`{"<name>": {"plugin_data": {...}}}`: one item of a plugin type's list.

        A map of two or more named objects is written as a list of one-key objects
        (`"clusters": [{"a": {...}}, {"b": {...}}]`), which HCL v1 decodes into the same map: as one
        JSON object, its decoder flattens the nested objects into one plugin block per key, and SPIRE
        refuses the file ('plugin "NodeAttestor"/"k8s_psat" declared more than once', the real
        `spire-server validate` in tests/real/test_kubernetes_enterprise.py)."""
        data = {k: [{name: v[name]} for name in v] if isinstance(v, dict) and len(v) > 1 else v
                for k, v in self.data.items()}
        return {self.name: {"plugin_data": data}}


class HealthChecks(ConfModel):
    """The HTTP health listener (`/live`, `/ready`); probes and load balancers use it."""

    listener_enabled: bool = True
    bind_address: str = "0.0.0.0"  # noqa: S104 - the listener serves the container network, by design
    bind_port: str = Field(default="8080", pattern=_PORT)
    live_path: str = "/live"
    ready_path: str = "/ready"


class Prometheus(ConfModel):
    host: str = "0.0.0.0"  # noqa: S104
    port: int = Field(default=9988, ge=1, le=65535)


class Telemetry(ConfModel):
    prometheus: Prometheus = Field(default_factory=Prometheus)

    def document(self) -> dict[str, Any]:
        return {"Prometheus": self.prometheus.model_dump()}


def _plugins(groups: Mapping[str, Sequence[Plugin]]) -> dict[str, Any]:
    return {plugin_type: [p.entry() for p in plugins] for plugin_type, plugins in groups.items()}


def _unique(kind: str, plugins: Sequence[Plugin]) -> None:
    names = [p.name for p in plugins]
    if len(names) != len(set(names)):
        raise ValueError(f"{kind}: plugin names must be unique, got {names}")


class BundleEndpoint(ConfModel):
    """The server's SPIFFE bundle endpoint (federation), authenticated with the server's own SVID
    (profile `https_spiffe`): peers that federate with this trust domain fetch its bundle here."""

    address: str = "0.0.0.0"  # noqa: S104 - peers in other networks fetch the bundle
    port: int = Field(default=8443, ge=1, le=65535)
    refresh_hint: GoDuration = Field(default="5m", description="How often peers should fetch the bundle again.")

    def document(self) -> dict[str, Any]:
        return {**self.model_dump(), "profile": {"https_spiffe": {}}}


class FederatesWith(ConfModel):
    """A trust domain this server keeps the bundle of, fetched from that domain's bundle endpoint,
    which must present `endpoint_spiffe_id` (its SPIRE server); its bundle is seeded once by hand
    (`bundle show` there, `bundle set` here), as https_spiffe requires."""

    bundle_endpoint_url: str = Field(pattern=r"^https://[^\s]+$")
    endpoint_spiffe_id: str = Field(pattern=r"^spiffe://[a-z0-9._-]+/spire/server$")

    def document(self) -> dict[str, Any]:
        return {
            "bundle_endpoint_url": self.bundle_endpoint_url,
            "bundle_endpoint_profile": {"https_spiffe": {"endpoint_spiffe_id": self.endpoint_spiffe_id}},
        }


class Federation(ConfModel):
    """`server.federation`: the bundle endpoint this server serves and the domains it federates with."""

    bundle_endpoint: BundleEndpoint | None = None
    federates_with: dict[str, FederatesWith] = Field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bundle_endpoint is not None:
            out["bundle_endpoint"] = self.bundle_endpoint.document()
        if self.federates_with:
            out["federates_with"] = {td: f.document() for td, f in self.federates_with.items()}
        return out


class ServerSection(ConfModel):
    bind_address: str = "0.0.0.0"  # noqa: S104
    bind_port: str = Field(default="8081", pattern=_PORT)
    socket_path: str = "/tmp/spire-server/private/api.sock"  # noqa: S108 - the image's admin socket path
    trust_domain: str = Field(pattern=r"^[a-z0-9._-]{1,255}$")
    data_dir: str = "/var/lib/spire/server"
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "json"
    # Go durations, checked by the config's own rule (`stack_config.base.GoDuration`): 1h30m is one.
    ca_ttl: GoDuration = "24h"
    default_x509_svid_ttl: GoDuration = "1h"
    default_jwt_svid_ttl: GoDuration = "5m"
    federation: Federation | None = None

    def document(self) -> dict[str, Any]:
        out = self.model_dump(exclude={"federation"})
        if self.federation is not None:
            out["federation"] = self.federation.document()
        return out


class ServerConf(ConfModel):
    """`server.conf`: exactly one DataStore and KeyManager, at least one NodeAttestor, at most one
    UpstreamAuthority (SPIRE refuses to start otherwise)."""

    server: ServerSection
    data_store: Plugin
    key_manager: Plugin
    node_attestors: list[Plugin] = Field(min_length=1)
    upstream_authority: Plugin | None = None
    health_checks: HealthChecks = Field(default_factory=HealthChecks)
    telemetry: Telemetry = Field(default_factory=Telemetry)

    @field_validator("node_attestors")
    @classmethod
    def _distinct(cls, v: list[Plugin]) -> list[Plugin]:
        _unique("NodeAttestor", v)
        return v

    @model_validator(mode="after")
    def _datastore_is_sql(self) -> ServerConf:
        if self.data_store.name != "sql":
            raise ValueError(f"DataStore {self.data_store.name!r}: SPIRE ships only the 'sql' datastore")
        return self

    def document(self) -> dict[str, Any]:
        groups: dict[str, list[Plugin]] = {
            "DataStore": [self.data_store],
            "KeyManager": [self.key_manager],
            "NodeAttestor": list(self.node_attestors),
        }
        if self.upstream_authority is not None:
            groups["UpstreamAuthority"] = [self.upstream_authority]
        return {
            "server": self.server.document(),
            "plugins": _plugins(groups),
            "health_checks": self.health_checks.model_dump(),
            "telemetry": self.telemetry.document(),
        }

    def render(self) -> str:
        return render(self.document())


class AgentSection(ConfModel):
    data_dir: str = "/var/lib/spire/agent"
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "json"
    server_address: str = Field(min_length=1)
    server_port: str = Field(default="8081", pattern=_PORT)
    socket_path: str = "/run/spire/sockets/agent.sock"
    trust_domain: str = Field(pattern=r"^[a-z0-9._-]{1,255}$")
    trust_bundle_path: str = Field(description="PEM bundle the agent trusts when it first dials the server.")


class AgentConf(ConfModel):
    """`agent.conf`: one NodeAttestor (matching the server's), one KeyManager, workload attestors."""

    agent: AgentSection
    node_attestor: Plugin
    key_manager: Plugin
    workload_attestors: list[Plugin] = Field(min_length=1)
    health_checks: HealthChecks = Field(default_factory=HealthChecks)
    telemetry: Telemetry = Field(default_factory=Telemetry)

    @field_validator("workload_attestors")
    @classmethod
    def _distinct(cls, v: list[Plugin]) -> list[Plugin]:
        _unique("WorkloadAttestor", v)
        return v

    def document(self) -> dict[str, Any]:
        return {
            "agent": self.agent.model_dump(),
            "plugins": _plugins(
                {
                    "NodeAttestor": [self.node_attestor],
                    "KeyManager": [self.key_manager],
                    "WorkloadAttestor": list(self.workload_attestors),
                }
            ),
            "health_checks": self.health_checks.model_dump(),
            "telemetry": self.telemetry.document(),
        }

    def render(self) -> str:
        return render(self.document())


class HelperConf(ConfModel):
    """spiffe-helper's `helper.conf` (v0.11): fetch the caller's X.509 SVID into `cert_dir` and
    keep it renewed (`daemon_mode`)."""

    agent_address: str
    cert_dir: str
    svid_file_name: str = "svid.pem"
    svid_key_file_name: str = "svid.key"
    svid_bundle_file_name: str = "bundle.pem"
    add_intermediates_to_bundle: bool = False
    cert_file_mode: int = Field(default=0o644, ge=0, le=0o777)
    key_file_mode: int = Field(default=0o640, ge=0, le=0o777)
    daemon_mode: bool = True

    def render(self) -> str:
        return render(self.model_dump())
