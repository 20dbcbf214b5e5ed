"""Keycloak realms and OIDC clients as Pulumi dynamic resources (docs/providers/keycloak.md). Importing
this package has no side effects: the provider process imports it."""

from dynamic_providers.keycloak.provider import KeycloakClient, KeycloakRealm

__all__ = ["KeycloakClient", "KeycloakRealm"]
