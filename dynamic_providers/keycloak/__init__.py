"""Keycloak realms and OIDC clients as Pulumi dynamic-provider resources.

`client.py` is the typed Admin REST client (tokens, retries, one error class), `models.py` the
inputs and payloads, `provider.py` the providers and the `KeycloakRealm` / `KeycloakClient`
resource classes. Importing this package has no side effects: the provider process imports it.
"""

from dynamic_providers.keycloak.client import KeycloakAdmin, KeycloakApiError, RetryPolicy
from dynamic_providers.keycloak.models import Connection
from dynamic_providers.keycloak.provider import (
    ConnectionArgs,
    KeycloakClient,
    KeycloakClientProvider,
    KeycloakRealm,
    KeycloakRealmProvider,
)

__all__ = [
    "Connection",
    "ConnectionArgs",
    "KeycloakAdmin",
    "KeycloakApiError",
    "KeycloakClient",
    "KeycloakClientProvider",
    "KeycloakRealm",
    "KeycloakRealmProvider",
    "RetryPolicy",
]
