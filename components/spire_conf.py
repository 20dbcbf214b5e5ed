"""Typed SPIRE `server.conf`, `agent.conf` and spiffe-helper `helper.conf`, rendered to HCL.

Pure code, no resources: the SPIRE components build these models and ship the rendered text as
Swarm configs (server) or container uploads (agents, helpers). SPIRE parses its files with
HashiCorp HCL v1 and spiffe-helper with HCL as well, so the renderer emits only the subset both HCL
v1 and HCL2 read identically: quoted strings, numbers, booleans, lists of strings, nested blocks and
labelled plugin blocks (`NodeAttestor "x509pop" { plugin_data { ... } }`). Template sequences
(`${`, `%{`) and control characters are rejected instead of escaped, because the two HCL versions
escape them differently.

Field names follow the SPIRE docs (`doc/spire_server.md`, `doc/spire_agent.md`, plugin docs) and
spiffe-helper's README; values SPIRE documents as quoted strings (ports) stay strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stack_config.base import GoDuration

PluginValue = Union[str, int, bool, list[str]]  # noqa: UP007 - pydantic needs the runtime Union
HclValue = Union[str, int, bool, Sequence[str], "HclBody"]
HclBody = Mapping[str, HclValue]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PORT = r"^[0-9]{1,5}$"


class HclError(ValueError):
    """A value cannot be written as HCL that SPIRE (HCL v1) and HCL2 read the same way."""


def _quote(value: str) -> str:
    if "${" in value or "%{" in value:
        raise HclError(f"{value!r}: template sequences ('${{', '%{{') are not allowed in generated SPIRE config")
    if any(ord(c) < 0x20 and c != "\t" for c in value):
        raise HclError(f"{value!r}: control characters are not allowed in generated SPIRE config")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scalar(value: str | int | bool | Sequence[str]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    return "[" + ", ".join(_quote(v) for v in value) + "]"


def _key(key: str) -> str:
    if not _IDENT.match(key):
        raise HclError(f"{key!r} is not an HCL identifier")
    return key


def render_body(body: HclBody, indent: int = 0) -> str:
    """Render attributes first, then blocks, each block on its own lines.

    A mapping value is a nested block (`health_checks { ... }`); a key of the form
    `Type "label"` (see `labelled`) is a labelled block.
    """
    pad = "  " * indent
    lines: list[str] = []
    blocks: list[tuple[str, HclBody]] = []
    for key, value in body.items():
        if isinstance(value, Mapping):
            blocks.append((key, value))
        else:
            lines.append(f"{pad}{_key(key)} = {_scalar(value)}")
    for key, value in blocks:
        head = key if " " in key else _key(key)
        inner = render_body(value, indent + 1)
        lines.append(f"{pad}{head} {{" + (f"\n{inner}\n{pad}}}" if inner else "}"))
    return "\n".join(lines)


def labelled(block_type: str, label: str) -> str:
    """The key for a labelled block: `labelled("NodeAttestor", "x509pop")` -> `NodeAttestor "x509pop"`."""
    return f"{_key(block_type)} {_quote(label)}"


class HclModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Plugin(HclModel):
    """One plugin instance: its name (the block label) and its `plugin_data`."""

    name: str = Field(pattern=r"^[a-z0-9_]+$", description="Plugin name, the block label, e.g. x509pop.")
    data: dict[str, PluginValue] = Field(default_factory=dict, description="The plugin_data attributes.")

    def body(self) -> HclBody:
        return {"plugin_data": dict(self.data)}


class HealthChecks(HclModel):
    """The HTTP health listener (`/live`, `/ready`); probes and load balancers use it."""

    listener_enabled: bool = True
    bind_address: str = "0.0.0.0"  # noqa: S104 - the listener serves the container network, by design
    bind_port: str = Field(default="8080", pattern=_PORT)
    live_path: str = "/live"
    ready_path: str = "/ready"


class Prometheus(HclModel):
    host: str = "0.0.0.0"  # noqa: S104
    port: int = Field(default=9988, ge=1, le=65535)


class Telemetry(HclModel):
    prometheus: Prometheus = Field(default_factory=Prometheus)

    def body(self) -> HclBody:
        return {"Prometheus": self.prometheus.model_dump()}


def _plugins_body(groups: Mapping[str, Sequence[Plugin]]) -> HclBody:
    out: dict[str, HclValue] = {}
    for block_type, plugins in groups.items():
        for p in plugins:
            out[labelled(block_type, p.name)] = p.body()
    return out


def _unique(kind: str, plugins: Sequence[Plugin]) -> None:
    names = [p.name for p in plugins]
    if len(names) != len(set(names)):
        raise ValueError(f"{kind}: plugin names must be unique, got {names}")


class ServerSection(HclModel):
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


class ServerConf(HclModel):
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

    def render(self) -> str:
        groups: dict[str, list[Plugin]] = {
            "DataStore": [self.data_store],
            "KeyManager": [self.key_manager],
            "NodeAttestor": list(self.node_attestors),
        }
        if self.upstream_authority is not None:
            groups["UpstreamAuthority"] = [self.upstream_authority]
        body: dict[str, HclValue] = {
            "server": self.server.model_dump(),
            "plugins": _plugins_body(groups),
            "health_checks": self.health_checks.model_dump(),
            "telemetry": self.telemetry.body(),
        }
        return render_body(body) + "\n"


class AgentSection(HclModel):
    data_dir: str = "/var/lib/spire/agent"
    log_level: Literal["DEBUG", "INFO", "WARN", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "json"
    server_address: str = Field(min_length=1)
    server_port: str = Field(default="8081", pattern=_PORT)
    socket_path: str = "/run/spire/sockets/agent.sock"
    trust_domain: str = Field(pattern=r"^[a-z0-9._-]{1,255}$")
    trust_bundle_path: str = Field(description="PEM bundle the agent trusts when it first dials the server.")


class AgentConf(HclModel):
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

    def render(self) -> str:
        body: dict[str, HclValue] = {
            "agent": self.agent.model_dump(),
            "plugins": _plugins_body(
                {
                    "NodeAttestor": [self.node_attestor],
                    "KeyManager": [self.key_manager],
                    "WorkloadAttestor": list(self.workload_attestors),
                }
            ),
            "health_checks": self.health_checks.model_dump(),
            "telemetry": self.telemetry.body(),
        }
        return render_body(body) + "\n"


class HelperConf(HclModel):
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
        return render_body(self.model_dump()) + "\n"
