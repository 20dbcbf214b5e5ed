"""The stack outputs contract: what `__main__.py` exports, typed, for tools that consume a stack.

`StackOutputs` has exactly one field per export (camelCase aliases are the export keys) and
forbids unknown keys, so an export added, renamed or dropped in the program breaks the contract
test instead of a consumer. Secret exports (admin passwords) are `SecretStr`: they do not show up
in reprs, logs or `model_dump()` unless revealed on purpose.

Loaders:
- `StackOutputs.from_stack("prod")` reads a deployed stack through the Automation API
  (`stack output --json --show-secrets` under the hood); `from_stack("prod", secrets=False)` reads
  them masked (`stack output --json`: no passphrase needed, secret fields hold `[secret]`);
- `StackOutputs.from_json(text)` parses the JSON of `pulumi stack output --json --show-secrets`.

The committed JSON Schema (`schema/stack-outputs.schema.json`) is generated from this model by
`python -m ops schema`; a test fails when it is stale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from pulumi import automation as auto

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema" / "stack-outputs.schema.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# How the Pulumi CLI prints a secret output without --show-secrets.
MASKED = "[secret]"

NonEmpty = Annotated[str, Field(min_length=1)]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", json_schema_extra={"format": "uri"})]
Secret = Annotated[SecretStr, Field(min_length=1)]


# Exports only one platform has: the servers' admin credentials and console exist only where the
# program runs the servers; a generated root's key and a router's enrollment token are handed to
# the user only where the user runs the servers. The router id is optional there (routerName).
SWARM_ONLY = {"keycloakAdminPassword", "zitiConsoleUrl", "zitiAdminPassword", "zitiRouterId"}
EXTERNAL_ONLY = {"spireUpstreamCaKeyPem", "zitiRouterEnrollmentJwt"}
EXTERNAL_OPTIONAL = {"zitiRouterId"}
# platform kubernetes: where SPIRE runs, always; Keycloak's outputs with kubernetes.iam and Ziti's
# with kubernetes.ziti, each section whole or not at all (the program runs the servers: their admin
# credentials and the console are exported, as on Swarm; there are no buckets).
KUBERNETES_ONLY = {"kubernetesTopology", "kubernetesClusters", "spireServerAddress"}
KUBERNETES_BASE = {"environment", "platform", "nodes", "spireTrustDomain", "spireBundlePem", "spireEntryIds"}
KUBERNETES_SECTIONS = {
    "kubernetes.iam": {"keycloakUrl", "keycloakAdminUser", "keycloakAdminPassword", "keycloakIssuerUrl",
                       "keycloakJwksUrl", "keycloakRealmId", "keycloakZitiClientId"},
    "kubernetes.ziti": {"zitiControllerUrl", "zitiConsoleUrl", "zitiAdminUser", "zitiAdminPassword", "zitiCaId",
                        "zitiCaFingerprint", "zitiExtJwtSignerId", "zitiAuthPolicyId", "zitiIdentityIds",
                        "zitiUserIdentityIds", "zitiRouterId"},
}


class OutputsContractError(ValueError):
    """The outputs of a stack do not match `StackOutputs` (one line per problem)."""


def _title(name: str, _field: Any) -> str:
    return to_camel(name)


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        field_title_generator=_title,
    )


class Bucket(_Model):
    """One Spaces bucket (prod): where a role's backups or PKI files live."""

    name: NonEmpty = Field(description="Bucket name (globally unique in the region).")
    region: NonEmpty = Field(description="DigitalOcean region, e.g. fra1.")
    endpoint: NonEmpty = Field(description="S3 endpoint of the region, e.g. https://fra1.digitaloceanspaces.com.")


class StackOutputs(_Model):
    """Everything one stack of the identity platform exports (`pulumi stack output`)."""

    model_config = ConfigDict(title="StackOutputs")

    environment: Literal["dev", "prod"] = Field(description="Which environment this stack is.")
    platform: Literal["swarm", "external", "kubernetes"] = Field(
        description="swarm: the program runs the servers; external: the trust chain on servers the user runs; "
        "kubernetes: SPIRE (and with kubernetes.iam/ziti Keycloak and Ziti) in the clusters."
    )
    nodes: list[NonEmpty] = Field(
        description="Swarm node names (keys of the `nodes` config map), sorted; empty on the other platforms."
    )
    spire_trust_domain: str = Field(
        pattern=r"^[a-z0-9._-]+$", description="SPIFFE trust domain of the SPIRE server (no scheme)."
    )
    spire_bundle_pem: str = Field(
        pattern=r"-----BEGIN CERTIFICATE-----",
        description="Root CA certificate (PEM) every SVID chains to; also registered as the Ziti third-party CA.",
    )
    keycloak_url: Url | None = Field(default=None, description="Public base URL of Keycloak.")
    keycloak_issuer_url: Url | None = Field(
        default=None, description="OIDC issuer of the platform realm (`iss` of its tokens)."
    )
    keycloak_jwks_url: Url | None = Field(
        default=None, description="JWKS endpoint of the platform realm (verifies its tokens)."
    )
    keycloak_admin_user: NonEmpty | None = Field(default=None, description="Keycloak bootstrap admin user name.")
    keycloak_admin_password: Secret | None = Field(
        default=None,
        description="Keycloak bootstrap admin password (secret; swarm and kubernetes: external ones are yours).",
    )
    keycloak_realm_id: NonEmpty | None = Field(default=None, description="Keycloak id of the platform realm.")
    keycloak_ziti_client_id: NonEmpty | None = Field(default=None, description="Keycloak UUID of the Ziti OIDC client.")
    ziti_controller_url: Url | None = Field(default=None, description="Ziti controller edge API base URL.")
    ziti_console_url: Url | None = Field(default=None, description="Ziti admin console (ZAC) URL (swarm, kubernetes).")
    ziti_admin_user: NonEmpty | None = Field(default=None, description="Ziti default admin user name.")
    ziti_admin_password: Secret | None = Field(
        default=None, description="Ziti default admin password (secret; swarm and kubernetes: external ones are yours)."
    )
    ziti_ca_id: NonEmpty | None = Field(
        default=None, description="Ziti id of the verified third-party CA (the SPIRE root)."
    )
    ziti_ca_fingerprint: NonEmpty | None = Field(default=None, description="Fingerprint Ziti computed for that CA.")
    ziti_ext_jwt_signer_id: NonEmpty | None = Field(
        default=None, description="Ziti id of the external JWT signer (Keycloak)."
    )
    ziti_auth_policy_id: NonEmpty | None = Field(
        default=None, description="Ziti id of the auth policy accepting Keycloak JWTs."
    )
    ziti_router_id: NonEmpty | None = Field(
        default=None, description="Ziti id of the edge router (external: only when ziti.routerName is set)."
    )
    ziti_router_enrollment_jwt: Secret | None = Field(
        default=None,
        description="One-time enrollment JWT of that router (secret; external only: enroll your router with it).",
    )
    ziti_identity_ids: dict[str, NonEmpty] | None = Field(
        default=None, description="Workload name -> Ziti identity id."
    )
    ziti_user_identity_ids: dict[str, NonEmpty] | None = Field(
        default=None, description="User name (`users`) -> Ziti identity id."
    )
    spire_upstream_ca_key_pem: Secret | None = Field(
        default=None,
        description="Key of the generated root CA (secret; external only, when the root is not brought): your "
        "SPIRE server's UpstreamAuthority \"disk\" key.",
    )
    spire_entry_ids: dict[str, NonEmpty] = Field(description="Workload name -> SPIRE registration entry id.")
    buckets: dict[str, Bucket] | None = Field(
        default=None, description="Storage role -> Spaces bucket (empty in dev; swarm and external only)."
    )
    kubernetes_topology: Literal["basic", "enterprise", "crd-free"] | None = Field(
        default=None, description="The Kubernetes topology (kubernetes only)."
    )
    kubernetes_clusters: list[NonEmpty] | None = Field(
        default=None, description="Names of the clusters (keys of `kubernetes.clusters`), sorted (kubernetes only)."
    )
    spire_server_address: NonEmpty | None = Field(
        default=None, description="host:port the SPIRE agents dial (kubernetes only)."
    )

    @model_validator(mode="after")
    def _platform_keys(self) -> StackOutputs:
        """Each platform exports its own keys: present where required, absent where foreign."""
        present = {type(self).model_fields[n].alias or n for n in self.model_fields_set
                   if getattr(self, n) is not None}
        problems = type(self).platform_problems(self.platform, present)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def platform_problems(cls, platform: str, present: set[str]) -> list[str]:
        """`<key>: ...` for each key `platform` requires but lacks, or has but does not export."""
        if platform not in ("swarm", "external", "kubernetes"):
            return []  # the field itself reports it
        required = cls.export_keys(platform)
        known = {f.alias or n for n, f in cls.model_fields.items()}
        allowed = required | cls.optional_keys(platform)
        problems = [f"{k}: required with platform {platform}" for k in sorted(required - present)]
        problems += [f"{k}: not exported with platform {platform}" for k in sorted((present & known) - allowed)]
        if platform == "kubernetes":
            for section, keys in KUBERNETES_SECTIONS.items():
                if present & keys:  # a section is exported whole
                    problems += [f"{k}: required with {section} (its other outputs are there)"
                                 for k in sorted(keys - present)]
        return problems

    # -- loaders -----------------------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, masked: bool = False) -> StackOutputs:
        """Validate plain export values (keys as exported); raise OutputsContractError. With
        `masked`, the values are the CLI's masked print: secret fields may hold `[secret]`, and an
        output masked where the contract has plain text is named as such."""
        hidden = sorted(k for k in data if data[k] == MASKED)
        if masked:
            plain = [k for k in hidden if k not in cls.secret_keys()]
            if plain:
                raise OutputsContractError(
                    f"outputs the contract has as plain text are secrets in the stack ({', '.join(plain)}): "
                    "the program must export them with pulumi.Output.unsecret, or the contract type them SecretStr"
                )
        elif hidden := [k for k in hidden if k in cls.secret_keys()]:
            raise OutputsContractError(
                f"secret outputs are masked ({', '.join(hidden)} = {MASKED!r}): "
                "read them with `pulumi stack output --json --show-secrets`"
            )
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            # Field errors stop the model's own platform check: add it, so every problem is named.
            platform = str(data.get("platform", "swarm"))
            present = {k for k, v in data.items() if v is not None}
            checked = any(not x["loc"] for x in e.errors())
            extra = [] if checked else [
                p for p in cls.platform_problems(platform, present) if p.split(":")[0] not in _locs(e)
            ]
            raise OutputsContractError(_render(e, extra)) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> StackOutputs:
        """Parse the JSON printed by `pulumi stack output --json --show-secrets`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise OutputsContractError(f"stack outputs are not JSON: {e}") from None
        if not isinstance(data, dict):
            raise OutputsContractError(f"stack outputs must be a JSON object, got {type(data).__name__}")
        return cls.from_mapping(data)

    @classmethod
    def from_output_map(cls, outputs: Mapping[str, auto.OutputValue]) -> StackOutputs:
        """Validate an Automation API `OutputMap` (`stack.outputs()`, `UpResult.outputs`)."""
        return cls.from_mapping({k: v.value for k, v in outputs.items()})

    @classmethod
    def from_stack(cls, stack: str, *, secrets: bool = True, **workspace_args: Any) -> StackOutputs:
        """Read a deployed stack's outputs through the Automation API: secrets included, or, with
        `secrets=False`, masked and without the stack's passphrase.

        Raises `ops.errors.OpsError` (exit-code carrying) when the CLI is missing or the stack
        does not exist or has no outputs, `OutputsContractError` when the outputs do not match.
        `workspace_args` go to `ops.workspace.open_stack` (root, environ, command).
        """
        from pulumi import automation as auto

        from ops.errors import ExitCode, OpsError
        from ops.workspace import classify_command_error, open_stack, read_masked

        st = open_stack(stack, create=False, secrets=secrets, **workspace_args)
        data: Mapping[str, Any]
        if secrets:
            try:
                data = {k: v.value for k, v in st.outputs().items()}
            except auto.CommandError as e:
                raise classify_command_error(e) from None
        else:
            data = read_masked(st, "stack", "output", "--json")
        if not data:
            raise OpsError(
                ExitCode.STACK_NOT_FOUND,
                f"stack {stack!r} has no outputs: it has never been deployed",
                f"python -m ops up --stack {stack} --yes",
                kind="not_deployed",
            )
        if not isinstance(data, Mapping):
            raise OutputsContractError(f"stack outputs must be a JSON object, got {type(data).__name__}")
        return cls.from_mapping(data, masked=not secrets)

    # -- views -------------------------------------------------------------------------------------

    @classmethod
    def export_keys(cls, platform: str = "swarm") -> set[str]:
        """The export keys (camelCase) a stack of `platform` always has."""
        if platform == "kubernetes":
            return KUBERNETES_BASE | KUBERNETES_ONLY
        keys = {f.alias or name for name, f in cls.model_fields.items()} - KUBERNETES_ONLY
        return keys - EXTERNAL_ONLY - (SWARM_ONLY if platform == "external" else set())

    @classmethod
    def optional_keys(cls, platform: str = "swarm") -> set[str]:
        """Export keys a stack of `platform` has only in some configurations."""
        if platform == "kubernetes":
            return set().union(*KUBERNETES_SECTIONS.values())
        return EXTERNAL_ONLY | EXTERNAL_OPTIONAL if platform == "external" else set()

    @classmethod
    def secret_keys(cls) -> set[str]:
        """Export keys whose values are secrets."""
        return {f.alias or n for n, f in cls.model_fields.items() if _is_secret(f.annotation)}

    def to_exports(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """The outputs as exported (camelCase), secrets as `[secret]` unless `show_secrets`."""
        data: dict[str, Any] = self.model_dump(mode="json", by_alias=True)
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None and name not in self.model_fields_set:
                data.pop(field.alias or name, None)
            elif isinstance(value, SecretStr):
                data[field.alias or name] = value.get_secret_value() if show_secrets else MASKED
        return data


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(a) for a in get_args(annotation))


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of `StackOutputs`, as committed in schema/.

    A platform-specific export is absent, never null, where it does not apply; which keys each
    platform requires and forbids is said with if/then on `platform`."""
    schema = StackOutputs.model_json_schema(by_alias=True, mode="validation")
    for prop in schema["properties"].values():
        options = prop.get("anyOf") or []
        if len(options) == 2 and {"type": "null"} in options:
            prop.pop("anyOf")
            prop.pop("default", None)
            prop.update(next(o for o in options if o != {"type": "null"}))
    platforms = get_args(StackOutputs.model_fields["platform"].annotation)
    schema["required"] = sorted(set.intersection(*(StackOutputs.export_keys(p) for p in platforms)))
    branches = []
    for platform in platforms:
        allowed = StackOutputs.export_keys(platform) | StackOutputs.optional_keys(platform)
        foreign = sorted(set(schema["properties"]) - allowed)
        whole = {k: sorted(keys - {k}) for keys in KUBERNETES_SECTIONS.values() for k in sorted(keys)}
        branches.append({
            "if": {"properties": {"platform": {"const": platform}}, "required": ["platform"]},
            "then": {
                "required": sorted(StackOutputs.export_keys(platform)),
                **({"not": {"anyOf": [{"required": [k]} for k in foreign]}} if foreign else {}),
                **({"dependentRequired": whole} if platform == "kubernetes" else {}),
            },
        })
    return {"$schema": JSON_SCHEMA_DIALECT, **schema, "allOf": branches}


def render_schema() -> str:
    """The schema file's exact text."""
    return json.dumps(json_schema(), indent=2) + "\n"


def _locs(err: ValidationError) -> set[str]:
    return {str(e["loc"][0]) for e in err.errors() if e["loc"]}


def _render(err: ValidationError, extra: list[str] | None = None) -> str:
    lines = list(extra or [])
    for e in err.errors():
        if not e["loc"]:  # the platform check: "<key>: problem; <key>: problem"
            lines += e["msg"].removeprefix("Value error, ").split("; ")
            continue
        loc = ".".join(str(p) for p in e["loc"])
        msg = "unexpected output: the contract does not have it" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"{loc}: {msg}")
    return "stack outputs do not match the StackOutputs contract:\n  " + "\n  ".join(lines)
