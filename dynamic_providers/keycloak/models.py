"""Pydantic models of the Keycloak providers: the connection, the inputs (every rule `check` applies) and
the Admin REST bodies over the generated `_generated.py`. See docs/providers/keycloak.md."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dynamic_providers._kernel import environment_stack, is_unknown, rule
from dynamic_providers.keycloak import _generated as wire

AccessType = Literal["CONFIDENTIAL", "PUBLIC", "BEARER-ONLY"]

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
OIDC = "openid-connect"
FLOWS = ("standard_flow_enabled", "implicit_flow_enabled", "direct_access_grants_enabled", "service_accounts_enabled")

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_REALM_FORBIDDEN = re.compile(r"[/\\#?%\s]")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FORBIDDEN_SCHEMES = {"javascript", "data", "vbscript"}


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


def connection_url_rule(v: str) -> str:
    """`Connection.url`'s rule: an http(s) URL without query, plain http only to a loopback host;
    returns it without surrounding space and trailing '/'. Public because stack_config applies it
    to keycloak.url and kubernetes.iam.adminUrl."""
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


class Connection(BaseModel):
    """Where and as whom a provider call talks to Keycloak (docs/providers/keycloak.md, `connection`).
    An input, rebuilt in every call and never kept on the provider."""

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
        return connection_url_rule(v)

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

    @model_validator(mode="after")
    def _credentials(self) -> Connection:
        """One grant's credentials, complete (reported as the property `connection`)."""
        if self.username or self.password:
            if not (self.username and self.password):
                raise ValueError("set both connection.username and connection.password (password grant)")
        elif not (self.client_id and self.client_secret):
            raise ValueError(
                "no credentials: set connection.username/password (password grant with admin-cli) or "
                "connection.client_id/client_secret (client-credentials grant)"
            )
        return self

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


def _realm_name(realm: str) -> str:
    if not realm.strip():
        raise ValueError("realm must be a non-empty realm name")
    if _REALM_FORBIDDEN.search(realm):
        raise ValueError(f"realm {realm!r} contains whitespace or one of / \\ # ? % (it is used in URL paths): "
                         "rename it")
    return realm


def _uri(uri: str, info: ValidationInfo) -> str:
    """A redirect-style URI Keycloak accepts (ClientValidator); a path needs `root_url`."""
    kind = "redirect URI" if info.field_name == "redirect_uris" else "post-logout redirect URI"
    if not uri or uri != uri.strip() or any(c.isspace() for c in uri):
        raise ValueError(f"{kind} {uri!r} is empty or contains whitespace")
    if uri == "+" and info.field_name == "redirect_uris":
        raise ValueError("'+' is only meaningful for web_origins / post-logout URIs")
    if uri in ("*", "+"):
        return uri
    if "#" in uri:
        raise ValueError(f"{kind} {uri!r} contains a fragment ('#'), which OAuth 2.0 forbids in redirect URIs")
    if uri.startswith("/"):
        if not info.data.get("root_url"):
            raise ValueError(f"{kind} {uri!r} is relative: set root_url or give an absolute URI")
        return uri
    if not _SCHEME_RE.match(uri):
        raise ValueError(f"{kind} {uri!r} is not an absolute URI (scheme://host/path) or a path under root_url")
    scheme = uri.split(":", 1)[0].lower()
    if scheme in _FORBIDDEN_SCHEMES:
        raise ValueError(f"{kind} {uri!r} uses the forbidden scheme {scheme!r}")
    if scheme in ("http", "https") and not urlsplit(uri.replace("*", "x")).hostname:
        raise ValueError(f"{kind} {uri!r} has no host")
    return uri


def _origin(origin: str) -> str:
    if origin in ("+", "*"):
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"web origin {origin!r} must be '+', '*' or an origin like https://app.example.net")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"web origin {origin!r} must be an origin only (scheme://host[:port]) without a path or "
                         "trailing '/'")
    return origin


def _url(url: str | None, info: ValidationInfo) -> str | None:
    """`root_url` is an http(s) URL; `base_url` may also be a path under it."""
    if not url or (info.field_name == "base_url" and url.startswith("/")):
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        path = " or a path starting with '/'" if info.field_name == "base_url" else ""
        raise ValueError(f"{info.field_name} {url!r} is not a valid http(s) URL{path}")
    return url


def _scope(name: str) -> str:
    if not name.strip():
        raise ValueError("client scope names must be non-empty")
    return name


Uri = Annotated[str, AfterValidator(_uri)]
Origin = Annotated[str, AfterValidator(_origin)]
Scope = Annotated[str, AfterValidator(_scope)]
Url = Annotated[str | None, AfterValidator(_url)]
OWNER_FIX = (
    "no ownership marker: the resource classes set owner to '<project>/<stack>' and a provider run by the engine "
    "takes it from PULUMI_PROJECT/PULUMI_STACK; pass owner='<project>/<stack>'"
)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    connection: Connection
    # The resource classes pass the program's stack; a provider driven without it uses the host's.
    owner: Annotated[str, StringConstraints(min_length=3, pattern=r"^[^/\s]+/[^/\s]+$")] = Field(
        default_factory=environment_stack, validate_default=True, description="<project>/<stack>: the marker."
    )
    realm: Annotated[str, AfterValidator(_realm_name)]

    @field_validator("owner", mode="before")
    @classmethod
    def _owner(cls, v: Any) -> Any:
        if v is None:
            raise ValueError(OWNER_FIX)
        return v


def _reserved(attributes: dict[str, str] | None, _: Any) -> None:
    for key in attributes or {}:
        if key in RESERVED_ATTRIBUTES:
            raise rule(key, f"attribute {key!r} is managed by the provider: {RESERVED_ATTRIBUTES[key]}")


def _both(optional: list[str] | None, before: dict[str, Any]) -> str | None:
    both = sorted(set(optional or ()) & set(before.get("default_client_scopes") or ()))
    return f"scope(s) {', '.join(both)} are listed as both default and optional: keep one" if both else None


# The rules of one client input: each gives the failure of a value, None when it passes, given the
# inputs declared before it (what pydantic hands a field validator).
_CLIENT_RULES: dict[str, tuple[Callable[[Any, dict[str, Any]], str | None], ...]] = {
    "client_id": (lambda v, _: None if v.strip() else "client_id must be a non-empty string",),
    "pkce_method": (lambda v, _: None if v in (None, "", "plain", "S256") else
                    f"unknown PKCE method {v!r}: use 'S256' (or 'plain', or '' to turn PKCE off)",),
    "attributes": (_reserved,),
    "service_accounts_enabled": (lambda v, before: (
        "a PUBLIC client has no secret, so it cannot use service accounts (client credentials): set access_type "
        "CONFIDENTIAL or service_accounts_enabled False") if v and before.get("access_type") == "PUBLIC" else None,),
    "optional_client_scopes": (_both,),
    "audience": (
        lambda v, _: "audience must be non-empty, or leave it unset for no audience mapper"
        if v is not None and not v.strip() else None,
        lambda v, before: "a BEARER-ONLY client issues no tokens, so an audience mapper on it has no effect"
        if v and before.get("access_type") == "BEARER-ONLY" else None,
    ),
}


class ClientSpec(_Spec):
    """Inputs of `KeycloakClient`, mirroring ClientRepresentation in snake_case."""

    client_id: str = Field(max_length=255)
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    access_type: AccessType = "CONFIDENTIAL"
    root_url: Url = None
    base_url: Url = None
    standard_flow_enabled: bool | None = None
    implicit_flow_enabled: bool | None = None
    direct_access_grants_enabled: bool | None = None
    service_accounts_enabled: bool | None = None
    redirect_uris: list[Uri] | None = None
    web_origins: list[Origin] | None = None
    post_logout_redirect_uris: list[Uri] | None = None
    pkce_method: str | None = None
    attributes: dict[str, str] | None = None
    default_client_scopes: list[Scope] | None = None
    optional_client_scopes: list[Scope] | None = None
    audience: str | None = None
    rotate_secret_trigger: str | None = None

    @field_validator("attributes", mode="before")
    @classmethod
    def _attribute_texts(cls, v: Any) -> Any:
        if isinstance(v, Mapping):  # an unknown value stays one: `check` skips it
            return {str(k): val if is_unknown(val) else attribute_text(val) for k, val in v.items()}
        return v

    @field_validator("rotate_secret_trigger", mode="before")
    @classmethod
    def _trigger(cls, v: Any) -> Any:
        return v if v is None or is_unknown(v) else attribute_text(v)

    @field_validator(*_CLIENT_RULES)
    @classmethod
    def _rules(cls, v: Any, info: ValidationInfo) -> Any:
        """The field's rules (`_CLIENT_RULES`), given the fields declared before it."""
        for message in _CLIENT_RULES[str(info.field_name)]:
            if text := message(v, info.data):
                raise ValueError(text)
        return v

    @model_validator(mode="after")
    def _flows(self) -> ClientSpec:
        """Flows against the access type and the redirect URIs (terraform's ValidateOpenidClient)."""
        on = [f for f in FLOWS if getattr(self, f) is True]
        bearer_only = self.access_type == "BEARER-ONLY"
        if bearer_only and on:
            raise rule("access_type", f"a BEARER-ONLY client accepts tokens but logs nobody in; it cannot have "
                                      f"{', '.join(on)}: set them to False or choose access_type CONFIDENTIAL/PUBLIC")
        # Only flows the program turns on: an unset standard flow is Keycloak's default, which
        # Keycloak itself accepts without redirects.
        logins = [f for f in on if f in ("standard_flow_enabled", "implicit_flow_enabled")]
        if logins and not bearer_only and not self.redirect_uris and not self.root_url:
            raise rule("redirect_uris", f"{' and '.join(logins)} is on but redirect_uris is empty, so no login can "
                                        f"complete: add redirect URIs (or root_url) or set {logins[0]}=False")
        return self


class RealmSpec(_Spec):
    """Inputs of `KeycloakRealm`: the realm and the token lifespans the platform relies on (seconds)."""

    realm: Annotated[str, Field(max_length=255), AfterValidator(_realm_name)]
    enabled: bool = True
    display_name: str | None = None
    access_token_lifespan: int | None = Field(default=None, ge=1)
    access_code_lifespan: int | None = Field(default=None, ge=1)
    sso_session_idle_timeout: int | None = Field(default=None, ge=1)
    sso_session_max_lifespan: int | None = Field(default=None, ge=1)
    offline_session_idle_timeout: int | None = Field(default=None, ge=1)


# Inputs that are the RealmRepresentation / ClientRepresentation field of the same name.
REALM_FIELDS = tuple(f for f in RealmSpec.model_fields if f not in _Spec.model_fields)
CLIENT_FIELDS = ("name", "description", "root_url", "base_url", "redirect_uris", "web_origins", *FLOWS)


# --- Admin REST payloads (camelCase on the wire; the fields are generated from the OpenAPI file) ----


class Representation(BaseModel):
    """A request or response body (`_generated`: unknown fields kept, for GET-overlay-PUT)."""

    def payload(self, *, drop: Iterable[str] = ()) -> dict[str, Any]:
        body = self.model_dump(by_alias=True, exclude_none=True)
        for key in drop:
            body.pop(key, None)
        return body

    @property
    def owner(self) -> str | None:
        return (getattr(self, "attributes", None) or {}).get(OWNER_ATTRIBUTE) or None


class ProtocolMapperRepresentation(Representation, wire.ProtocolMapperRepresentation):
    pass


class ClientRepresentation(Representation, wire.ClientRepresentation):
    @property
    def access_type(self) -> AccessType:
        if self.bearer_only:
            return "BEARER-ONLY"
        return "PUBLIC" if self.public_client else "CONFIDENTIAL"

    def audience_mapper(self) -> wire.ProtocolMapperRepresentation | None:
        return next((m for m in self.protocol_mappers or [] if m.name == AUDIENCE_MAPPER_NAME), None)


class RealmRepresentation(Representation, wire.RealmRepresentation):
    pass


class CredentialRepresentation(Representation, wire.CredentialRepresentation):
    pass


class ClientScopeRepresentation(Representation, wire.ClientScopeRepresentation):
    pass


class TokenResponse(BaseModel):
    """The token endpoint's answer (RFC 6749 §5.1 plus Keycloak's refresh_expires_in)."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    access_token: str
    expires_in: int | None = Field(default=None, ge=0)  # RFC 6749 §5.1: recommended, not required
    refresh_token: str | None = None
    refresh_expires_in: int | None = None


def audience_mapper(audience: str) -> ProtocolMapperRepresentation:
    """The audience mapper: puts `audience` into `aud` of access and ID tokens (Ziti checks it)."""
    return ProtocolMapperRepresentation(
        name=AUDIENCE_MAPPER_NAME,
        protocol=OIDC,
        protocol_mapper="oidc-audience-mapper",
        config={
            "included.custom.audience": audience,
            "access.token.claim": "true",
            "id.token.claim": "true",
            "introspection.token.claim": "true",
        },
    )
