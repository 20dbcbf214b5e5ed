"""Readers over a `ProgramRun` for the Swarm platform: services, containers, networks, secrets.

Bridged resources arrive in camelCase (`taskSpec.containerSpec`), exactly as the engine sees them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
from pulumi.output import Unknown

import stack_config
from components import assembly
from tests.harness.mock_engine import SECRET_PREFIX, ProgramRun, Registered, run

SERVICE = "docker:index/service:Service"
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
SECRET = "docker:index/secret:Secret"
CONFIG = "docker:index/serviceConfig:ServiceConfig"
VOLUME = "docker:index/volume:Volume"
PLUGIN = "docker:index/plugin:Plugin"
PROVIDER = "pulumi:providers:docker"


# How `rpc.deserialize_properties` keeps a secret value: {SECRET_SIG: SECRET_MARK, "value": ...}.
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def unwrap(value: Any) -> Any:
    """The value with every secret wrapper removed (secretness is asserted separately)."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def services(r: ProgramRun) -> dict[str, Registered]:
    """Swarm services by their Swarm name."""
    return {s.inputs["name"]: s for s in r.of_type(SERVICE)}


def containers(r: ProgramRun) -> list[Registered]:
    return r.of_type(CONTAINER)


def spec(svc: Registered) -> dict[str, Any]:
    return svc.inputs["taskSpec"]["containerSpec"]


def provider_urn(r: Registered) -> str:
    return r.provider.rsplit("::", 1)[0]


def provider_of_node(run_: ProgramRun, node: str) -> str:
    return run_.get(PROVIDER, f"swarm-{node}").urn


def walk_strings(value: Any, *, into_secrets: bool = True) -> Iterator[str]:
    """Every string anywhere in a nested input value (unknowns skipped); with `into_secrets` False,
    only those outside secret values (what the state keeps in plain text)."""
    if isinstance(value, str):
        yield value
    elif is_secret(value):
        if into_secrets:
            yield from walk_strings(value.get("value"))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from walk_strings(v, into_secrets=into_secrets)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from walk_strings(v, into_secrets=into_secrets)


def secret_values(r: ProgramRun) -> list[str]:
    """Known secret values: the stack's `secure:` config and every computed secret in the mocks."""
    values = list(r.secret_values)
    for res in r.resources:
        for s in walk_strings(res.inputs):
            if SECRET_PREFIX in s:
                values.append(s)
        if res.type == SECRET and isinstance(unwrap(res.inputs.get("data")), str):
            values.append(secret_payload(res).strip())
    for export in r.exports.values():
        if export.secret:
            values.extend(walk_strings(export.value))
    return [v for v in values if v]


def env_of(res: Registered) -> dict[str, str]:
    """Environment of a service (dict) or container (`KEY=VALUE` list)."""
    if res.type == SERVICE:
        return dict(spec(res).get("env") or {})
    out = {}
    for item in res.inputs.get("envs") or []:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def network_names(r: ProgramRun) -> dict[str, str]:
    """Mock network id -> Swarm network name (update mode: ids are `<resource name>-id`)."""
    ids = {f"{n.name}-id": n.inputs["name"] for n in r.of_type(NETWORK)}
    # External networks looked up by the invoke mock: `<name>-id`.
    return ids


def attached_networks(r: ProgramRun, svc: Registered) -> list[Any]:
    return [a.get("id") for a in svc.inputs["taskSpec"].get("networksAdvanceds") or []]


def secret_payload(res: Registered) -> str:
    """The decoded data of a docker.Secret (known in update mode)."""
    return base64.b64decode(unwrap(res.inputs["data"])).decode()


def is_unknown(value: Any) -> bool:
    return isinstance(value, Unknown)


def build_platform() -> Callable[[], None]:
    """The stacks exactly as `__main__.py` builds them (the same `build_platform`), returned as a
    mock-engine body, so tests can reach the component objects (attributes) as well as the
    registrations."""

    def body() -> None:
        config = stack_config.load()
        p = assembly.build_swarm(config, stack_config.load_secrets(config))
        BUILT.update(
            swarm=p.swarm,
            spire=p.spire,
            keycloak=p.keycloak,
            ziti=p.ziti,
            buckets=p.buckets,
            router=p.router,
            trust=p.ziti_trust,
        )
        pulumi.export("nodes", sorted(config.nodes))
        pulumi.export("spireBundlePem", p.spire.root_ca_cert_pem)
        # Component attributes that are Outputs, readable (with secretness) as exports.
        pulumi.export("spire.root_ca_cert_pem", p.spire.root_ca_cert_pem)
        pulumi.export("spire.root_ca_key_pem", p.spire.root_ca_key_pem)
        pulumi.export("keycloak.url", p.keycloak.url)
        pulumi.export("keycloak.admin_password", p.keycloak.admin_password)
        pulumi.export("ziti.controller_url", p.ziti.controller_url)
        pulumi.export("ziti.console_url", p.ziti.console_url)
        pulumi.export("ziti.admin_password", p.ziti.admin_password)
        pulumi.export("ziti.controller_ca_pem", p.ziti.controller_ca_pem)
        pulumi.export("trust.router_enrollment_jwt", p.ziti_trust.router_enrollment_jwt)
        for role, b in p.buckets.items():
            pulumi.export(f"bucket.{role}.secret_key", b.secret_key)
            pulumi.export(f"bucket.{role}.access_key_id", b.access_key_id)

    return body


BUILT: dict[str, Any] = {}


def platform(
    stack: str = "dev", preview: bool = False, config: dict[str, Any] | None = None
) -> tuple[ProgramRun, dict[str, Any]]:
    """Run the platform with config overrides (`{"spire": {...}}` -> `identity-platform:spire`)."""
    BUILT.clear()
    raw = {f"identity-platform:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in (config or {}).items()}
    result = run(build_platform(), stack=stack, preview=preview, config=raw)
    return result, dict(BUILT)
