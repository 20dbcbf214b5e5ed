"""KeycloakIdentity: the platform realm and the OIDC client OpenZiti users log in with.

Two dynamic resources under one component, reached with the Keycloak stack's URL and admin
credentials (the password stays a Pulumi secret end to end):

* `{name}-realm` (`KeycloakRealm`): the realm users live in, with explicit token lifespans.
* `{name}-ziti-client` (`KeycloakClient`): a **public** client with the authorization-code flow
  and PKCE S256 only. Ziti users log in from ziti-edge-tunnel / ZAC-style apps that cannot keep a
  secret, so a confidential client would only spread a shared secret to every laptop; PKCE binds
  each code to the app that asked for it. Direct password grants and the implicit flow are off.
  The `pulumi-audience` mapper puts `audience` into the `aud` claim of access and ID tokens,
  which is what the Ziti external JWT signer checks.

Outputs feed `ZitiExternalJwtSigner`: `issuer_url` and `jwks_url` come from the realm's OpenID
discovery document (what Keycloak really writes into `iss`, which follows its configured hostname,
not the URL this program uses), `audience` and `client_id` from the client. The component makes no
requests itself; during `pulumi preview` the providers only run check/diff, which are offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi import Input, Output, ResourceOptions

from components.docker_helpers import after
from dynamic_providers.keycloak import KeycloakClient, KeycloakRealm

# The OpenZiti tunnelers' loopback callback for the authorization-code + PKCE login.
DEFAULT_ZITI_REDIRECT_URIS = (
    "http://localhost:20314/auth/callback",
    "http://127.0.0.1:20314/auth/callback",
)


@dataclass(frozen=True)
class KeycloakIdentityArgs:
    """Where Keycloak is and who administers it (the password stays a Pulumi secret), the realm and
    the Ziti client; the rest are the realm's and client's settings with their defaults."""

    url: Input[str]
    admin_user: str
    admin_password: Input[str]
    realm: str
    ziti_client_id: str
    # The tokens' `aud`: the Ziti signer expects exactly this (the assembly uses the client id).
    audience: str
    redirect_uris: Sequence[str] = DEFAULT_ZITI_REDIRECT_URIS
    post_logout_redirect_uris: Sequence[str] | None = None
    web_origins: Sequence[str] | None = None
    ca_bundle_pem: Input[str] | None = None
    base_path: str = ""
    display_name: str | None = None
    access_token_lifespan: int = 300
    sso_session_idle_timeout: int = 1800
    sso_session_max_lifespan: int = 36000


class KeycloakIdentity(pulumi.ComponentResource):
    """The platform realm plus the OpenZiti OIDC client (public, PKCE S256, audience mapper)."""

    realm_id: Output[str]
    realm_name: Output[str]
    client_uuid: Output[str]
    client_id: Output[str]
    issuer_url: Output[str]
    jwks_url: Output[str]
    audience: Output[str]

    def __init__(self, name: str, args: KeycloakIdentityArgs, opts: ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:keycloak:KeycloakIdentity", name, None, opts)
        a = args
        connection = {
            "url": a.url,
            "base_path": a.base_path,
            "token_realm": "master",
            "username": a.admin_user,
            "password": Output.secret(a.admin_password),
            "ca_bundle_pem": a.ca_bundle_pem,
        }
        # depends_on is not inherited through `parent`: realm and client wait for the Keycloak stack.
        child = ResourceOptions(parent=self, depends_on=after(opts))
        self.realm = KeycloakRealm(
            f"{name}-realm",
            realm=a.realm,
            display_name=a.display_name,
            access_token_lifespan=a.access_token_lifespan,
            sso_session_idle_timeout=a.sso_session_idle_timeout,
            sso_session_max_lifespan=a.sso_session_max_lifespan,
            connection=connection,
            opts=child,
        )
        self.client = KeycloakClient(
            f"{name}-ziti-client",
            # From the realm's output, so the client waits for the realm and follows a rename.
            realm=self.realm.realm,
            client_id=a.ziti_client_id,
            name="OpenZiti",
            description="OpenZiti users: ziti-edge-tunnel / ZAC login (authorization code + PKCE S256)",
            access_type="PUBLIC",
            standard_flow_enabled=True,
            implicit_flow_enabled=False,
            direct_access_grants_enabled=False,
            service_accounts_enabled=False,
            pkce_method="S256",
            redirect_uris=list(a.redirect_uris),
            post_logout_redirect_uris=list(a.post_logout_redirect_uris) if a.post_logout_redirect_uris else None,
            web_origins=list(a.web_origins) if a.web_origins is not None else None,
            audience=a.audience,
            connection=connection,
            opts=child,
        )
        self.realm_id = self.realm.id
        self.realm_name = self.realm.realm
        self.client_uuid = self.client.id
        self.client_id = self.client.client_id
        self.issuer_url = self.realm.issuer_url
        self.jwks_url = self.realm.jwks_url
        self.audience = self.client.audience.apply(lambda aud: aud or a.audience)
        self.register_outputs(
            {
                "realm_id": self.realm_id,
                "realm_name": self.realm_name,
                "client_uuid": self.client_uuid,
                "client_id": self.client_id,
                "issuer_url": self.issuer_url,
                "jwks_url": self.jwks_url,
                "audience": self.audience,
            }
        )
