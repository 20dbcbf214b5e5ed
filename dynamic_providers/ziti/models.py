"""The OpenZiti resources' inputs: the controller's own rules, checked offline, and their Edge
Management API bodies (camelCase, `api_body`); see docs/providers/ziti.md."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import types as key_types
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from dynamic_providers._kernel import contains_unknown, is_unknown, rule

API_PATH = "/edge/management/v1"
OWNER_STACK_TAG = "pulumi.stack"
OWNER_NAME_TAG = "pulumi.name"

TagValue = str | bool | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiModel(_Model):
    """Snake_case in Python and in Pulumi props, camelCase on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


# --- connection and ownership -----------------------------------------------------------------------


def _known(check: Callable[[Any], object]) -> AfterValidator:
    """`check` (raising ValueError) a value known at preview time; the value is kept as given."""

    def run(v: Any) -> Any:
        if not is_unknown(v):
            check(v)
        return v

    return AfterValidator(run)


def controller_url_rule(v: str) -> str:
    """The controller URL the connection accepts (https, no query, the base or management API
    path), returned as given; public because stack_config applies it to ziti.controllerUrl."""
    parts = urlsplit(v)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{v!r} must be an https:// URL with a host (the controller only serves TLS)")
    if parts.query or parts.fragment:
        raise ValueError(f"{v!r} must not carry a query or fragment")
    if parts.path.rstrip("/") not in ("", API_PATH):
        raise ValueError(f"{v!r}: give the controller base URL (https://host:port) or its {API_PATH} URL")
    return v


def _password(v: SecretStr) -> None:
    if not v.get_secret_value():
        raise ValueError("the admin password is empty")


def _pem_bundle(v: str) -> None:
    try:
        certs = x509.load_pem_x509_certificates(v.encode())
    except ValueError as e:
        raise ValueError(f"not a PEM certificate bundle ({e})") from None
    if not certs:
        raise ValueError("contains no certificate")


def plain_hex(fingerprint: object) -> str:
    """A fingerprint as it is compared: lowercase hex without colons (the controller writes SHA-1s
    that way; the swagger only says string)."""
    return str(fingerprint).replace(":", "").lower()


def _sha256_hex(v: str) -> str:
    """The fingerprint as the client compares it."""
    if is_unknown(v):
        return v
    hexed = plain_hex(v)
    if not re.fullmatch(r"[0-9a-f]{64}", hexed):
        raise ValueError("must be the SHA-256 of the root CA certificate: 64 hex digits (colons allowed)")
    return hexed


class ZitiConnection(_Model):
    """How the provider reaches the controller's Edge Management API, and how it trusts it."""

    url: Annotated[str, _known(controller_url_rule)] = Field(
        description="Controller base URL, e.g. https://ziti.example.com:1280."
    )
    username: str = Field(min_length=1, description="Admin user (password authentication).")
    password: Annotated[SecretStr, _known(_password)] = Field(description="Admin password (a Pulumi secret).")
    ca_bundle_pem: Annotated[str, _known(_pem_bundle)] | None = Field(
        default=None, description="PEM certificates that sign the controller's TLS cert."
    )
    ca_fingerprint: Annotated[str, AfterValidator(_sha256_hex)] | None = Field(
        default=None, description="SHA-256 of the controller's root CA (DER), hex, colons optional."
    )
    timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds per request.")
    ready_timeout: float = Field(
        default=120.0, ge=0, le=1800, description="Seconds to wait for a controller that still refuses connections."
    )

    @model_validator(mode="after")
    def _one_trust_source(self) -> ZitiConnection:
        if self.ca_bundle_pem is not None and self.ca_fingerprint is not None:
            raise rule("ca_fingerprint", "set either ca_bundle_pem or ca_fingerprint, not both")
        return self

    @property
    def api_url(self) -> str:
        base = self.url.rstrip("/")
        return base if base.endswith(API_PATH) else base + API_PATH

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"


class Ownership(_Model):
    """Who created an entity: written into its `tags`, checked before any write to it."""

    stack: str = Field(min_length=1, description="<project>/<stack>")
    name: str | None = Field(default=None, min_length=1, description="The Pulumi resource name.")

    def tags(self) -> dict[str, TagValue]:
        return {OWNER_STACK_TAG: self.stack, **({OWNER_NAME_TAG: self.name} if self.name is not None else {})}

    def owns(self, tags: Mapping[str, Any] | None) -> bool:
        """Same stack, and the same resource when both sides record one."""
        tags = tags or {}
        theirs = tags.get(OWNER_NAME_TAG)
        return tags.get(OWNER_STACK_TAG) == self.stack and (theirs is None or self.name is None or theirs == self.name)


# --- the controller's field rules, as annotated types ---------------------------------------------------


def _bare(values: list[str], info: ValidationInfo) -> list[str]:
    for v in values:
        if is_unknown(v):
            continue
        if not v:
            raise ValueError(f"{info.field_name} contains an empty string")
        if v.startswith(("#", "@")):
            raise ValueError(f"{v!r}: role attributes may not start with '#' or '@' (write the bare attribute)")
    return values


def _prefixed(values: list[str]) -> list[str]:
    for v in values:
        if not is_unknown(v) and (not v.startswith(("#", "@")) or len(v) < 2):
            raise ValueError(f"{v!r}: a policy role is '#<attribute>', '#all' or '@<entity id>'")
    return values


def _filled(message: str, *, strip: bool = False) -> AfterValidator:
    """Refuses an empty string (`strip`: or one of blanks) with `message`: the controller would store it."""

    def check(v: str) -> None:
        if not (v.strip() if strip else v):
            raise ValueError(message)

    return _known(check)


def _no_owner_tags(v: dict[str, TagValue]) -> dict[str, TagValue]:
    reserved = {OWNER_STACK_TAG, OWNER_NAME_TAG} & set(v)
    if reserved:
        raise ValueError(f"tags {sorted(reserved)} are reserved for the ownership marker")
    return v


Attributes = Annotated[list[str], AfterValidator(_bare), Field(default_factory=list)]
Roles = Annotated[list[str], AfterValidator(_prefixed), Field(default_factory=list)]


class _Named(ApiModel):
    # Fields the controller takes only on create (it ignores them on update).
    create_only: ClassVar[frozenset[str]] = frozenset()

    name: Annotated[str, _filled("the name is empty", strip=True)] = Field(description="Unique name on the controller.")
    tags: Annotated[dict[str, TagValue], AfterValidator(_no_owner_tags)] = Field(
        default_factory=dict, description="User tags (ownership tags are added)."
    )

    def api_body(self, owner: Ownership | None, *, create: bool) -> dict[str, Any]:
        """The create/update body: every field in camelCase, user tags plus the ownership tags."""
        body = self.model_dump(by_alias=True, exclude={"tags", *(() if create else self.create_only)})
        return {**body, "tags": {**self.tags, **(owner.tags() if owner is not None else {})}}


# --- certificate authorities ------------------------------------------------------------------------


class ExternalIdClaim(ApiModel):
    """Where the controller finds an identity's externalId in a client certificate.

    For SPIFFE: `location=SAN_URI, matcher=SCHEME, matcher_criteria="spiffe"`.
    """

    location: Literal["COMMON_NAME", "SAN_URI", "SAN_EMAIL"]
    matcher: Literal["ALL", "PREFIX", "SUFFIX", "SCHEME"]
    matcher_criteria: str = ""
    parser: Literal["NONE", "SPLIT"] = "NONE"
    parser_criteria: str = ""
    index: int = 0

    @model_validator(mode="after")
    def _server_rules(self) -> ExternalIdClaim:
        if contains_unknown(self.model_dump()):
            return self
        if self.index < 0:
            raise rule("index", f"index {self.index} is negative: use 0 for the first matching value")
        if self.matcher == "SCHEME" and self.location != "SAN_URI":
            raise rule(
                "matcher",
                f"matcher SCHEME only applies to location SAN_URI, not {self.location}: use ALL, PREFIX or SUFFIX",
            )
        if self.matcher in ("SCHEME", "PREFIX", "SUFFIX") and not self.matcher_criteria:
            raise rule("matcher_criteria", f"matcher {self.matcher} needs matcher_criteria (e.g. 'spiffe' for SCHEME)")
        if self.parser == "SPLIT" and not self.parser_criteria:
            raise rule("parser_criteria", "parser SPLIT needs parser_criteria (the separator)")
        return self


def first_pem_certificate(pem: str) -> x509.Certificate:
    """The first certificate of a PEM text: the only one the controller reads."""
    try:
        return x509.load_pem_x509_certificates(pem.encode())[0]
    except (ValueError, IndexError) as e:
        raise ValueError(f"not a PEM certificate ({e})") from None


def load_private_key(pem: str) -> key_types.PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not an unencrypted PEM private key ({e})") from None


def sha1_fingerprint(cert: x509.Certificate) -> str:
    """The controller's CA fingerprint: lowercase hex SHA-1 of the DER certificate."""
    return cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 (the controller's identifier, not a security check)


def _ca_certificate(v: str) -> None:
    cert = first_pem_certificate(v)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        subject = cert.subject.rfc4514_string()
        raise ValueError(f"the first certificate ({subject}) is not a CA (no basicConstraints CA:TRUE)")
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc <= now:
        raise ValueError(f"the CA certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}: renew it")
    if cert.not_valid_before_utc > now:
        raise ValueError(f"the CA certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z")


def _public_der(key: Any) -> bytes:
    der: bytes = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return der


class CertificateAuthorityArgs(_Named):
    """A third-party CA (`POST /cas`), verified by the provider with `ca_key_pem`."""

    create_only = frozenset({"cert_pem"})

    cert_pem: Annotated[str, _known(_ca_certificate)] = Field(
        description="The CA certificate; only the first PEM block is registered."
    )
    ca_key_pem: SecretStr = Field(exclude=True, description="Signs the verification certificate; never sent.")
    is_auth_enabled: bool = True
    is_auto_ca_enrollment_enabled: bool = False
    is_ott_ca_enrollment_enabled: bool = False
    identity_roles: Attributes
    identity_name_format: str = "[caName]-[commonName]"
    # The controller's schema has no null claim: an unset claim is left out of the body.
    external_id_claim: ExternalIdClaim | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("ca_key_pem")
    @classmethod
    def _key(cls, v: SecretStr, info: ValidationInfo) -> SecretStr:
        key_pem = v.get_secret_value()
        if is_unknown(key_pem):
            return v
        key = load_private_key(key_pem)
        cert_pem = info.data.get("cert_pem")  # absent when it failed its own validation
        if isinstance(cert_pem, str) and not is_unknown(cert_pem):
            if _public_der(key.public_key()) != _public_der(first_pem_certificate(cert_pem).public_key()):
                raise ValueError("the key does not belong to the first certificate of cert_pem")
        return v


# --- external JWT signers and auth policies -----------------------------------------------------------


def _issuer(v: str) -> None:
    if not v:
        raise ValueError("the issuer is empty")
    if v.endswith("/"):
        raise ValueError(f"{v!r} ends with '/': tokens carry the issuer without it; use {v.rstrip('/')!r}")


def _http_url(v: str) -> None:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{v!r} is not an http(s) URL")


HttpUrl = Annotated[str, _known(_http_url)]


class ExternalJwtSignerArgs(_Named):
    """An external JWT signer (`POST /external-jwt-signers`), e.g. a Keycloak realm."""

    issuer: Annotated[str, _known(_issuer)] = Field(description="Exact `iss` of the tokens, no trailing slash.")
    audience: Annotated[
        str, _filled("the audience is empty: set the `aud` the tokens carry (e.g. the Keycloak client id)")
    ] = Field(description="Required `aud` of the tokens.")
    jwks_endpoint: HttpUrl | None = None
    cert_pem: Annotated[str, _known(first_pem_certificate)] | None = None
    kid: str | None = None
    claims_property: Annotated[str, _filled("claims_property is empty (the default is 'sub')")] = "sub"
    use_external_id: bool = False
    external_auth_url: HttpUrl | None = None
    client_id: str | None = None
    scopes: list[str] = Field(default_factory=list)
    target_token: Literal["ACCESS", "ID"] = "ACCESS"  # noqa: S105 (a token type, not a secret)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_key_source(self) -> ExternalJwtSignerArgs:
        if is_unknown(self.jwks_endpoint) or is_unknown(self.cert_pem):
            return self
        if (self.jwks_endpoint is None) == (self.cert_pem is None):
            raise rule("jwks_endpoint", "set exactly one of jwks_endpoint (e.g. Keycloak's .../certs) or cert_pem")
        if self.cert_pem is not None and not self.kid:
            raise rule("kid", "cert_pem needs the kid the tokens carry in their header")
        return self


class AuthPolicyCert(ApiModel):
    allowed: bool = False
    allow_expired_certs: bool = False


class AuthPolicyExtJwt(ApiModel):
    allowed: bool = False
    allowed_signers: list[str] = Field(default_factory=list, description="Signer ids; empty = any enabled signer.")


class AuthPolicyUpdb(ApiModel):
    allowed: bool = False
    min_password_length: int = Field(default=5, ge=0)
    require_special_char: bool = False
    require_number_char: bool = False
    require_mixed_case: bool = False
    max_attempts: int = Field(default=0, ge=0, description="0 = unlimited.")
    lockout_duration_minutes: int = Field(default=0, ge=0, description="0 = until an admin unlocks.")


class AuthPolicyPrimary(ApiModel):
    cert: AuthPolicyCert = Field(default_factory=AuthPolicyCert)
    ext_jwt: AuthPolicyExtJwt = Field(default_factory=AuthPolicyExtJwt)
    updb: AuthPolicyUpdb = Field(default_factory=AuthPolicyUpdb)


class AuthPolicySecondary(ApiModel):
    require_totp: bool = False
    require_ext_jwt_signer: str | None = None


class AuthPolicyArgs(_Named):
    """An authentication policy (`POST /auth-policies`); every block is sent in full."""

    primary: AuthPolicyPrimary
    secondary: AuthPolicySecondary = Field(default_factory=AuthPolicySecondary)

    @model_validator(mode="after")
    def _something_allowed(self) -> AuthPolicyArgs:
        p = self.primary
        if not (p.cert.allowed or p.ext_jwt.allowed or p.updb.allowed):
            raise rule("primary", "no primary method is allowed: set cert, ext_jwt or updb `allowed: true`")
        return self


# --- identities, routers, policies ----------------------------------------------------------------------


class IdentityArgs(_Named):
    """An identity (`POST /identities`); with `external_id` = a SPIFFE ID it logs in with its SVID."""

    type: Literal["Default", "Router"] = "Default"
    is_admin: bool = False
    external_id: Annotated[str, _filled("external_id is empty: omit it instead", strip=True)] | None = None
    auth_policy_id: Annotated[str, _filled("auth_policy_id is empty (the built-in policy is 'default')")] = "default"
    role_attributes: Attributes


class EdgeRouterArgs(_Named):
    """An edge router (`POST /edge-routers`); its one-time enrollment JWT is an output."""

    role_attributes: Attributes
    is_tunneler_enabled: bool = False


class _Policy(_Named):
    semantic: Literal["AllOf", "AnyOf"] = "AllOf"


class ServicePolicyArgs(_Policy):
    """Which identities may dial or bind which services (`POST /service-policies`)."""

    type: Literal["Dial", "Bind"]
    service_roles: Roles
    identity_roles: Roles
    posture_check_roles: Roles


class EdgeRouterPolicyArgs(_Policy):
    """Which identities may use which edge routers (`POST /edge-router-policies`)."""

    edge_router_roles: Roles
    identity_roles: Roles


class ServiceEdgeRouterPolicyArgs(_Policy):
    """Which services are reachable through which edge routers (`POST /service-edge-router-policies`)."""

    edge_router_roles: Roles
    service_roles: Roles


# --- nested models (canonical forms recurse into them) ------------------------------------------------


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field annotation (`X`, `X | None`), if any."""
    for c in getattr(annotation, "__args__", None) or (annotation,):
        if isinstance(c, type) and issubclass(c, BaseModel):
            return c
    return None
