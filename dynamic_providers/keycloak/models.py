"""Pydantic models for the Keycloak providers: the connection, the resource inputs, the Admin REST payloads.

Three groups, deliberately separate:

* `Connection`: how a provider call reaches the Admin REST API. It arrives as the resource input
  `connection` (its secret parts are Pulumi secrets in the program; the engine unwraps them before
  calling the provider), so it is rebuilt in every provider call and never kept on the provider.
* `ClientSpec` / `RealmSpec`: the user's inputs, snake_case, exactly as the resource classes take
  them. `None` means "not managed": Keycloak keeps (or defaults) the value and diff ignores it.
* `*Representation`: request and response bodies of the Admin REST API (Keycloak 26, the
  OpenAPI file in shared/specs). They keep unknown server fields (`extra="allow"`), because an
  update is GET -> overlay the managed fields -> PUT, and Keycloak's PUT merges field by field.

Rules that need no network (flows vs access type, URI syntax, PKCE method...) live here as
`client_problems` / `realm_problems` so `check` can report every problem at `pulumi preview`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from pulumi.runtime.rpc import UNKNOWN
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from dynamic_providers._kernel import contains_unknown, is_unknown

AccessType = Literal["CONFIDENTIAL", "PUBLIC", "BEARER-ONLY"]
PkceMethod = Literal["", "plain", "S256"]

# Attribute keys the provider owns: the ownership marker and the attributes behind first-class inputs.
OWNER_ATTRIBUTE = "pulumi.stack"
PKCE_ATTRIBUTE = "pkce.code.challenge.method"
POST_LOGOUT_ATTRIBUTE = "post.logout.redirect.uris"
RESERVED_ATTRIBUTES = {
    OWNER_ATTRIBUTE: "it is the ownership marker the provider sets from the stack name",
    PKCE_ATTRIBUTE: "set pkce_method instead",
    POST_LOGOUT_ATTRIBUTE: "set post_logout_redirect_uris instead",
}
AUDIENCE_MAPPER_NAME = "pulumi-audience"
AUDIENCE_MAPPER_TYPE = "oidc-audience-mapper"
OIDC = "openid-connect"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_REALM_FORBIDDEN = re.compile(r"[/\\#?%\s]")


def is_loopback_host(host: str) -> bool:
    """True for localhost names and loopback addresses: the only hosts plain http is allowed to."""
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- connection -------------------------------------------------------------------------------


class Connection(BaseModel):
    """Where and as whom a provider call talks to Keycloak.

    Authentication is the password grant when `username`/`password` are set (client `admin-cli`
    unless `client_id` names another), otherwise the client-credentials grant with
    `client_id`/`client_secret` (for example Keycloak 26's bootstrap admin service account).
    TLS verification is always on; `ca_bundle_pem` adds a private CA. Plain `http://` is accepted
    only for loopback hosts (dev publishes Keycloak on http://localhost:8080).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    url: str = Field(description="Base URL of Keycloak as this machine reaches it, e.g. https://auth.acme.net.")
    base_path: str = Field(default="", description='"" for Keycloak >= 17, "/auth" for the legacy layout.')
    token_realm: str = Field(default="master", min_length=1, description="Realm the admin credentials live in.")
    username: str | None = Field(default=None, description="Admin user (password grant).")
    password: SecretStr | None = Field(default=None, description="Admin password (password grant); a secret.")
    client_id: str | None = Field(default=None, description="Client for the grant; admin-cli for passwords.")
    client_secret: SecretStr | None = Field(default=None, description="Client secret (client credentials).")
    ca_bundle_pem: str | None = Field(default=None, description="PEM CA bundle trusted in addition to none.")
    timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds per HTTP request.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        parts = urlsplit(v)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http(s) URL: use e.g. https://auth.example.net")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                f"{v!r} uses plain http to a non-loopback host: use https (trust a private CA with "
                "connection.ca_bundle_pem); http is only accepted for localhost"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"{v!r} must not carry a query or fragment")
        return v

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, v: str) -> str:
        v = v.strip()
        if v in ("", "/"):
            return ""
        if not v.startswith("/") or "//" in v or any(c in v for c in "?#"):
            raise ValueError(f'{v!r} must be "" or a path like "/auth"')
        return v.rstrip("/")

    @field_validator("ca_bundle_pem")
    @classmethod
    def _ca(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if "-----BEGIN CERTIFICATE-----" not in v:
            raise ValueError("must be PEM text containing at least one '-----BEGIN CERTIFICATE-----' block")
        try:
            x509.load_pem_x509_certificates(v.encode())
        except ValueError as e:
            raise ValueError(f"is not a readable PEM certificate bundle ({e})") from None
        return v

    def credential_problem(self) -> str | None:
        """Why the credentials cannot log in, or None."""
        if self.username or self.password:
            if not (self.username and self.password):
                return "set both connection.username and connection.password (password grant)"
            return None
        if self.client_id and self.client_secret:
            return None
        return (
            "set connection.username/password (password grant with admin-cli) or "
            "connection.client_id/client_secret (client-credentials grant)"
        )

    @property
    def server(self) -> str:
        """`url` plus `base_path`: the root every Admin API and realm path hangs off."""
        return f"{self.url}{self.base_path}"

    @property
    def grant(self) -> Literal["password", "client_credentials"]:
        return "password" if self.username else "client_credentials"

    @property
    def grant_client_id(self) -> str:
        return self.client_id or "admin-cli"

    def issuer_url(self, realm: str) -> str:
        return f"{self.server}/realms/{realm}"


# --- inputs -----------------------------------------------------------------------------------


def attribute_text(value: Any) -> str:
    """Keycloak attribute values are strings: booleans become "true"/"false", numbers their text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError(f"attribute values must be strings, booleans or numbers, not {type(value).__name__}")


def environment_owner() -> str | None:
    """`<project>/<stack>` from the provider process's PULUMI_PROJECT / PULUMI_STACK (the engine sets them)."""
    project, stack = os.environ.get("PULUMI_PROJECT"), os.environ.get("PULUMI_STACK")
    return f"{project}/{stack}" if project and stack else None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    connection: Connection
    owner: str = Field(min_length=3, pattern=r"^[^/\s]+/[^/\s]+$", description="<project>/<stack>: the marker.")

    @model_validator(mode="before")
    @classmethod
    def _default_owner(cls, data: Any) -> Any:
        """The resource classes pass `owner`; a provider driven without it uses the host's stack."""
        if isinstance(data, Mapping) and data.get("owner") is None and (owner := environment_owner()):
            return {**data, "owner": owner}
        return data


class ClientSpec(_Spec):
    """Inputs of `KeycloakClient`, mirroring ClientRepresentation in snake_case."""

    realm: str = Field(min_length=1)
    client_id: str = Field(min_length=1, max_length=255)
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    access_type: AccessType = "CONFIDENTIAL"
    standard_flow_enabled: bool | None = None
    implicit_flow_enabled: bool | None = None
    direct_access_grants_enabled: bool | None = None
    service_accounts_enabled: bool | None = None
    redirect_uris: list[str] | None = None
    web_origins: list[str] | None = None
    post_logout_redirect_uris: list[str] | None = None
    root_url: str | None = None
    base_url: str | None = None
    pkce_method: PkceMethod | None = None
    attributes: dict[str, str] | None = None
    default_client_scopes: list[str] | None = None
    optional_client_scopes: list[str] | None = None
    audience: str | None = None
    rotate_secret_trigger: str | None = None

    @field_validator("attributes", mode="before")
    @classmethod
    def _attrs(cls, v: Any) -> Any:
        if isinstance(v, Mapping):  # an unknown value stays one: `check` skips it
            return {str(k): val if is_unknown(val) else attribute_text(val) for k, val in v.items()}
        return v

    @field_validator("rotate_secret_trigger", mode="before")
    @classmethod
    def _trigger(cls, v: Any) -> Any:
        return None if v is None else v if is_unknown(v) else attribute_text(v)

    @property
    def public(self) -> bool:
        return self.access_type == "PUBLIC"

    @property
    def bearer_only(self) -> bool:
        return self.access_type == "BEARER-ONLY"

    @property
    def confidential(self) -> bool:
        return self.access_type == "CONFIDENTIAL"


class RealmSpec(_Spec):
    """Inputs of `KeycloakRealm`: the realm and the token lifespans the platform relies on (seconds)."""

    realm: str = Field(min_length=1, max_length=255)
    enabled: bool = True
    display_name: str | None = None
    access_token_lifespan: int | None = Field(default=None, ge=1)
    access_code_lifespan: int | None = Field(default=None, ge=1)
    sso_session_idle_timeout: int | None = Field(default=None, ge=1)
    sso_session_max_lifespan: int | None = Field(default=None, ge=1)
    offline_session_idle_timeout: int | None = Field(default=None, ge=1)


CLIENT_INPUTS = tuple(ClientSpec.model_fields)
REALM_INPUTS = tuple(RealmSpec.model_fields)
# Realm input -> RealmRepresentation field.
REALM_FIELDS = {
    "enabled": "enabled",
    "display_name": "displayName",
    "access_token_lifespan": "accessTokenLifespan",
    "access_code_lifespan": "accessCodeLifespan",
    "sso_session_idle_timeout": "ssoSessionIdleTimeout",
    "sso_session_max_lifespan": "ssoSessionMaxLifespan",
    "offline_session_idle_timeout": "offlineSessionIdleTimeout",
}


# --- validation with Unknowns ----------------------------------------------------------------


Problem = tuple[str, str]  # (input property path, actionable reason)


# --- cross-field and syntax rules ------------------------------------------------------------

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FORBIDDEN_SCHEMES = {"javascript", "data", "vbscript"}


def uri_problem(uri: str, *, relative_ok: bool, kind: str) -> str | None:
    """Why `uri` is not a redirect-style URI Keycloak accepts (ClientValidator rules), or None."""
    if not uri or uri != uri.strip() or any(c.isspace() for c in uri):
        return f"{kind} {uri!r} is empty or contains whitespace"
    if uri in ("*", "+"):
        return None
    if "#" in uri:
        return f"{kind} {uri!r} contains a fragment ('#'), which OAuth 2.0 forbids in redirect URIs"
    if uri.startswith("/"):
        return None if relative_ok else f"{kind} {uri!r} is relative: set root_url or give an absolute URI"
    if not _SCHEME_RE.match(uri):
        return f"{kind} {uri!r} is not an absolute URI (scheme://host/path) or a path under root_url"
    scheme = uri.split(":", 1)[0].lower()
    if scheme in _FORBIDDEN_SCHEMES:
        return f"{kind} {uri!r} uses the forbidden scheme {scheme!r}"
    if scheme in ("http", "https"):
        host = urlsplit(uri.replace("*", "x")).hostname
        if not host:
            return f"{kind} {uri!r} has no host"
    return None


def web_origin_problem(origin: str) -> str | None:
    if origin in ("+", "*"):
        return None
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"web origin {origin!r} must be '+', '*' or an origin like https://app.example.net"
    if parts.path or parts.query or parts.fragment:
        return f"web origin {origin!r} must be an origin only (scheme://host[:port]) without a path or trailing '/'"
    return None


def url_problem(url: str, field: str, *, relative_ok: bool) -> str | None:
    if relative_ok and url.startswith("/"):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return f"{field} {url!r} is not a valid http(s) URL" + (" or a path starting with '/'" if relative_ok else "")
    return None


def realm_name_problem(realm: str) -> str | None:
    if not realm.strip():
        return "realm must be a non-empty realm name"
    if _REALM_FORBIDDEN.search(realm):
        return f"realm {realm!r} contains whitespace or one of / \\ # ? % (it is used in URL paths): rename it"
    return None


def client_problems(values: Mapping[str, Any]) -> list[Problem]:
    """Rules across inputs (TF's ValidateOpenidClient plus URI syntax); Unknown inputs skip their rules."""

    def known(*keys: str) -> bool:
        return all(not contains_unknown(values.get(k)) for k in keys)

    out: list[Problem] = []
    access = values.get("access_type") or "CONFIDENTIAL"
    flows = (
        "standard_flow_enabled",
        "implicit_flow_enabled",
        "direct_access_grants_enabled",
        "service_accounts_enabled",
    )
    if known("realm") and isinstance(values.get("realm"), str):
        problem = realm_name_problem(values["realm"])
        if problem:
            out.append(("realm", problem))
    if known("client_id") and isinstance(values.get("client_id"), str) and not values["client_id"].strip():
        out.append(("client_id", "client_id must be a non-empty string"))
    if known("access_type", *flows) and access == "BEARER-ONLY":
        on = [f for f in flows if values.get(f) is True]
        if on:
            out.append(
                (
                    "access_type",
                    f"a BEARER-ONLY client accepts tokens but logs nobody in; it cannot have {', '.join(on)}: "
                    "set them to False or choose access_type CONFIDENTIAL/PUBLIC",
                )
            )
    if known("access_type", "service_accounts_enabled") and access == "PUBLIC":
        if values.get("service_accounts_enabled") is True:
            out.append(
                (
                    "service_accounts_enabled",
                    "a PUBLIC client has no secret, so it cannot use service accounts (client credentials): "
                    "set access_type CONFIDENTIAL or service_accounts_enabled False",
                )
            )
    if known("access_type", "standard_flow_enabled", "implicit_flow_enabled", "redirect_uris", "root_url"):
        if access != "BEARER-ONLY" and not values.get("redirect_uris") and not values.get("root_url"):
            # Only flows the program turns on (as terraform's ValidateOpenidClient): an unset
            # standard flow is Keycloak's default, which Keycloak itself accepts without redirects.
            on = [f for f in ("standard_flow_enabled", "implicit_flow_enabled") if values.get(f) is True]
            if on:
                out.append(
                    (
                        "redirect_uris",
                        f"{' and '.join(on)} is on but redirect_uris is empty, so no login can complete: "
                        f"add redirect URIs (or root_url) or set {on[0]}=False",
                    )
                )
    relative_ok = bool(values.get("root_url")) and known("root_url")
    for key, kind in (("redirect_uris", "redirect URI"), ("post_logout_redirect_uris", "post-logout redirect URI")):
        uris = values.get(key)
        if isinstance(uris, list):
            for i, uri in enumerate(uris):
                if isinstance(uri, str) and not is_unknown(uri):
                    if key == "redirect_uris" and uri == "+":
                        out.append((f"{key}[{i}]", "'+' is only meaningful for web_origins / post-logout URIs"))
                        continue
                    problem = uri_problem(uri, relative_ok=relative_ok, kind=kind)
                    if problem:
                        out.append((f"{key}[{i}]", problem))
    origins = values.get("web_origins")
    if isinstance(origins, list):
        for i, origin in enumerate(origins):
            if isinstance(origin, str) and not is_unknown(origin):
                problem = web_origin_problem(origin)
                if problem:
                    out.append((f"web_origins[{i}]", problem))
    for key, rel in (("root_url", False), ("base_url", True)):
        url = values.get(key)
        if isinstance(url, str) and url and not is_unknown(url):
            problem = url_problem(url, key, relative_ok=rel)
            if problem:
                out.append((key, problem))
    pkce = values.get("pkce_method")
    if isinstance(pkce, str) and not is_unknown(pkce) and pkce not in ("", "plain", "S256"):
        out.append(("pkce_method", f"unknown PKCE method {pkce!r}: use 'S256' (or 'plain', or '' to turn PKCE off)"))
    attrs = values.get("attributes")
    if isinstance(attrs, Mapping):
        for key in attrs:
            if key in RESERVED_ATTRIBUTES:
                out.append(
                    (f"attributes.{key}", f"attribute {key!r} is managed by the provider: {RESERVED_ATTRIBUTES[key]}")
                )
    default_scopes, optional_scopes = values.get("default_client_scopes"), values.get("optional_client_scopes")
    for key in ("default_client_scopes", "optional_client_scopes"):
        scopes = values.get(key)
        if isinstance(scopes, list):
            for i, s in enumerate(scopes):
                if isinstance(s, str) and not s.strip():
                    out.append((f"{key}[{i}]", "client scope names must be non-empty"))
    if isinstance(default_scopes, list) and isinstance(optional_scopes, list):
        both = sorted(
            {s for s in default_scopes if isinstance(s, str)}
            & {s for s in optional_scopes if isinstance(s, str)} - {UNKNOWN}
        )
        if both:
            out.append(
                (
                    "optional_client_scopes",
                    f"scope(s) {', '.join(both)} are listed as both default and optional: keep one",
                )
            )
    audience = values.get("audience")
    if isinstance(audience, str) and not is_unknown(audience) and not audience.strip():
        out.append(("audience", "audience must be non-empty, or leave it unset for no audience mapper"))
    if access == "BEARER-ONLY" and known("access_type", "audience") and values.get("audience"):
        out.append(("audience", "a BEARER-ONLY client issues no tokens, so an audience mapper on it has no effect"))
    return out


def realm_problems(values: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    realm = values.get("realm")
    if isinstance(realm, str) and not is_unknown(realm):
        problem = realm_name_problem(realm)
        if problem:
            out.append(("realm", problem))
    return out


def connection_problems(conn: Any) -> list[Problem]:
    """Credential rule for a connection whose fields may be Unknown."""
    if not isinstance(conn, Mapping):
        return []
    keys = ("username", "password", "client_id", "client_secret")
    if any(contains_unknown(conn.get(k)) for k in keys):
        return []
    values = {k: conn.get(k) for k in keys}
    if values["username"] or values["password"]:
        if not (values["username"] and values["password"]):
            return [("connection", "set both connection.username and connection.password (password grant)")]
        return []
    if values["client_id"] and values["client_secret"]:
        return []
    return [
        (
            "connection",
            "no credentials: set connection.username/password (password grant with admin-cli) or "
            "connection.client_id/client_secret (client-credentials grant)",
        )
    ]


# --- Admin REST payloads (camelCase on the wire) --------------------------------------------


class Representation(BaseModel):
    """A Keycloak representation: camelCase on the wire, unknown fields kept for GET-overlay-PUT."""

    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)

    def payload(self, *, drop: Iterable[str] = ()) -> dict[str, Any]:
        body = self.model_dump(by_alias=True, exclude_none=True)
        for key in drop:
            body.pop(key, None)
        return body


class ProtocolMapperRepresentation(Representation):
    id: str | None = None
    name: str | None = None
    protocol: str | None = None
    protocol_mapper: str | None = None
    config: dict[str, str] = Field(default_factory=dict)


class ClientRepresentation(Representation):
    id: str | None = None
    client_id: str | None = None
    name: str | None = None
    description: str | None = None
    root_url: str | None = None
    admin_url: str | None = None
    base_url: str | None = None
    enabled: bool | None = None
    client_authenticator_type: str | None = None
    secret: str | None = None
    redirect_uris: list[str] | None = None
    web_origins: list[str] | None = None
    bearer_only: bool | None = None
    standard_flow_enabled: bool | None = None
    implicit_flow_enabled: bool | None = None
    direct_access_grants_enabled: bool | None = None
    service_accounts_enabled: bool | None = None
    authorization_services_enabled: bool | None = None
    public_client: bool | None = None
    protocol: str | None = None
    attributes: dict[str, str] | None = None
    protocol_mappers: list[ProtocolMapperRepresentation] | None = None
    default_client_scopes: list[str] | None = None
    optional_client_scopes: list[str] | None = None

    @property
    def access_type(self) -> AccessType:
        if self.bearer_only:
            return "BEARER-ONLY"
        return "PUBLIC" if self.public_client else "CONFIDENTIAL"

    @property
    def owner(self) -> str | None:
        return (self.attributes or {}).get(OWNER_ATTRIBUTE) or None

    def audience_mapper(self) -> ProtocolMapperRepresentation | None:
        for m in self.protocol_mappers or []:
            if m.name == AUDIENCE_MAPPER_NAME:
                return m
        return None


class RealmRepresentation(Representation):
    id: str | None = None
    realm: str | None = None
    display_name: str | None = None
    enabled: bool | None = None
    access_token_lifespan: int | None = None
    access_code_lifespan: int | None = None
    sso_session_idle_timeout: int | None = None
    sso_session_max_lifespan: int | None = None
    offline_session_idle_timeout: int | None = None
    attributes: dict[str, str] | None = None

    @property
    def owner(self) -> str | None:
        return (self.attributes or {}).get(OWNER_ATTRIBUTE) or None


class CredentialRepresentation(Representation):
    type: str | None = None
    value: str | None = None


class ClientScopeRepresentation(Representation):
    id: str | None = None
    name: str | None = None
    protocol: str | None = None


class TokenResponse(BaseModel):
    """The token endpoint's answer (RFC 6749 §5.1 plus Keycloak's refresh_expires_in)."""

    model_config = ConfigDict(extra="ignore")

    access_token: str
    expires_in: int = Field(ge=0)
    refresh_token: str | None = None
    refresh_expires_in: int | None = None
    token_type: str = "Bearer"  # noqa: S105 (a token type name, not a password)


def audience_mapper(audience: str) -> ProtocolMapperRepresentation:
    """The audience mapper: puts `audience` into `aud` of access and ID tokens (Ziti checks it)."""
    return ProtocolMapperRepresentation(
        name=AUDIENCE_MAPPER_NAME,
        protocol=OIDC,
        protocol_mapper=AUDIENCE_MAPPER_TYPE,
        config={
            "included.custom.audience": audience,
            "access.token.claim": "true",
            "id.token.claim": "true",
            "introspection.token.claim": "true",
        },
    )
