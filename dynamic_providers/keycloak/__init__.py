"""Keycloak realms and OIDC clients as Pulumi dynamic-provider resources.

`client.py` is the typed Admin REST client (on the shared transport), `models.py` the inputs and
payloads, `provider.py` the providers and the `KeycloakRealm` / `KeycloakClient` resource classes.
Importing this package has no side effects: the provider process imports it.
"""

from dynamic_providers.keycloak.provider import KeycloakClient, KeycloakRealm

__all__ = ["KeycloakClient", "KeycloakRealm"]
