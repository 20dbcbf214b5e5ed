"""KeycloakIdentity under the mock engine, and its resources' inputs driven against the loopback Keycloak."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks as pmocks

from components.keycloak_identity import KeycloakIdentity, KeycloakIdentityArgs
from dynamic_providers.keycloak.client import RetryPolicy, forget_tokens
from dynamic_providers.keycloak.provider import KeycloakClientProvider, KeycloakRealmProvider
from tests.fakes.keycloak import KeycloakFake
from tests.harness.dynamic_host import DynamicProviderHost
from tests.harness.loopback import LoopbackServer
from tests.harness.mock_engine import DefaultMocks, ProgramRun, Registered, run

COMPONENT = "identity-platform:keycloak:KeycloakIdentity"
REALM = "pulumi-python:dynamic/keycloak:Realm"
CLIENT = "pulumi-python:dynamic/keycloak:Client"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
PASSWORD = "admin-password"


@pytest.fixture
def fake(loopback: Callable[..., LoopbackServer]) -> KeycloakFake:
    forget_tokens()
    kc = KeycloakFake(admin_password=PASSWORD)
    kc.serve(loopback)
    return kc


class KeycloakMocks(DefaultMocks):
    """What the providers would return: the realm's discovery URLs, the client's audience."""

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        rid, state = super().new_resource(args)
        if args.typ == REALM and not self.preview:
            issuer = f"https://auth.acme.net/realms/{args.inputs['realm']}"
            state.update(issuer_url=issuer, jwks_url=f"{issuer}/protocol/openid-connect/certs")
            rid = "realm-uuid"
        if args.typ == CLIENT and not self.preview:
            rid = "client-uuid"
        return rid, state


def build(fake: KeycloakFake | None = None, **kwargs: Any) -> Callable[[], None]:
    def body() -> None:
        args: dict[str, Any] = {
            "url": fake.url if fake else "https://auth.acme.net",
            "admin_user": "admin",
            "admin_password": pulumi.Output.secret(PASSWORD),
            "realm": "platform",
            "ziti_client_id": "openziti",
            "audience": "openziti",
            "ca_bundle_pem": fake.server.ca_pem if fake and fake.server else None,
        }
        args.update(kwargs)
        identity = KeycloakIdentity("keycloak", KeycloakIdentityArgs(**args))
        for key in ("realm_id", "client_uuid", "client_id", "issuer_url", "jwks_url", "audience"):
            pulumi.export(key, getattr(identity, key))

    return body


def unwrap(value: Any) -> Any:
    """Registered inputs keep secrets wrapped in Pulumi's secret signature; the engine unwraps them."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return unwrap(value["value"])
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def children(result: ProgramRun) -> tuple[Registered, Registered, Registered]:
    component = result.get(COMPONENT, "keycloak")
    return component, result.get(REALM, "keycloak-realm"), result.get(CLIENT, "keycloak-ziti-client")


class TestStructure:
    @pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
    def test_children_are_named_typed_and_parented(self, preview: bool) -> None:
        result = run(build(), preview=preview, mocks=KeycloakMocks(preview))
        component, realm, client = children(result)
        assert realm.parent == component.urn and client.parent == component.urn
        assert {r.name for r in result.children(component)} == {"keycloak-realm", "keycloak-ziti-client"}
        assert realm.urn in client.dependencies  # the client's realm comes from the realm resource

    def test_the_ziti_client_is_public_with_pkce_and_the_audience_mapper(self) -> None:
        _, _, client = children(run(build(), mocks=KeycloakMocks(False)))
        inputs = client.inputs
        assert inputs["access_type"] == "PUBLIC"
        assert inputs["pkce_method"] == "S256"
        assert inputs["standard_flow_enabled"] is True
        assert inputs["implicit_flow_enabled"] is False and inputs["direct_access_grants_enabled"] is False
        assert inputs["service_accounts_enabled"] is False
        # The OpenZiti tunnelers' OIDC callback listens on loopback port 20314.
        assert inputs["redirect_uris"] == [
            "http://localhost:20314/auth/callback",
            "http://127.0.0.1:20314/auth/callback",
        ]
        assert inputs["audience"] == "openziti" and inputs["client_id"] == "openziti"
        assert inputs["owner"] == "identity-platform/dev"

    def test_the_realm_gets_explicit_token_lifespans(self) -> None:
        _, realm, _ = children(run(build(access_token_lifespan=120), mocks=KeycloakMocks(False)))
        assert realm.inputs["realm"] == "platform"
        assert realm.inputs["access_token_lifespan"] == 120
        assert realm.inputs["sso_session_idle_timeout"] == 1800

    def test_admin_credentials_are_secret_in_inputs_and_outputs(self) -> None:
        result = run(build(admin_password=PASSWORD), mocks=KeycloakMocks(False))  # even when given as plain str
        _, realm, client = children(result)
        for resource in (realm, client):
            assert resource.inputs["connection"].get(SECRET_SIG), f"{resource.name}: connection is not secret"
            assert "connection" in resource.additional_secret_outputs
        assert "client_secret" in client.additional_secret_outputs
        for key, export in result.exports.items():
            assert PASSWORD not in repr(export.value), key

    def test_outputs_come_from_the_realm_and_the_client(self) -> None:
        exports = run(build(), mocks=KeycloakMocks(False)).exports
        assert exports["realm_id"].value == "realm-uuid"
        assert exports["client_uuid"].value == "client-uuid"
        assert exports["client_id"].value == "openziti"
        assert exports["issuer_url"].value == "https://auth.acme.net/realms/platform"
        assert exports["jwks_url"].value == "https://auth.acme.net/realms/platform/protocol/openid-connect/certs"
        assert exports["audience"].value == "openziti"


class TestAgainstKeycloak:
    def test_preview_makes_zero_requests(
        self, fake: KeycloakFake, dynamic_host: Callable[..., DynamicProviderHost]
    ) -> None:
        # The mock engine never runs providers, so drive what a first `pulumi preview` runs (check,
        # on the inputs the program registers, Unknowns included) through the real provider host.
        _, realm_reg, client_reg = children(run(build(fake), preview=True, mocks=KeycloakMocks(True)))
        strip = {"__provider", "issuer_url", "jwks_url", "client_secret"}
        for provider, reg, typ in (
            (KeycloakRealmProvider(), realm_reg, REALM),
            (KeycloakClientProvider(), client_reg, CLIENT),
        ):
            inputs = {k: unwrap(v) for k, v in reg.inputs.items() if k not in strip}
            checked = dynamic_host(provider, resource_type=typ).check(reg.name, {}, inputs)
            assert checked.failures == [], (reg.name, checked.failures)
        assert fake.server is not None and fake.server.count() == 0

    def test_the_registered_inputs_create_a_working_realm_and_client(
        self, fake: KeycloakFake, dynamic_host: Callable[..., DynamicProviderHost]
    ) -> None:
        _, realm_reg, client_reg = children(run(build(fake), mocks=KeycloakMocks(False)))
        retry = RetryPolicy(attempts=3, base_delay=0.01)
        realms = dynamic_host(KeycloakRealmProvider(retry=retry), resource_type=REALM)
        clients = dynamic_host(KeycloakClientProvider(retry=retry), resource_type=CLIENT)

        strip = {"__provider", "issuer_url", "jwks_url", "client_secret"}
        realm_inputs = {k: unwrap(v) for k, v in realm_reg.inputs.items() if k not in strip}
        realm = realms.up("keycloak-realm", realm_inputs)
        client_inputs = {k: unwrap(v) for k, v in client_reg.inputs.items() if k not in strip}
        client_inputs["realm"] = realm.outputs["realm"]
        client = clients.up("keycloak-ziti-client", client_inputs)

        rep = fake.client_by_client_id("platform", "openziti")
        assert rep is not None and rep["id"] == client.id
        assert rep["publicClient"] is True and rep["directAccessGrantsEnabled"] is False
        assert rep["attributes"]["pkce.code.challenge.method"] == "S256"
        assert rep["attributes"]["pulumi.stack"] == "identity-platform/dev"
        assert rep["protocolMappers"][0]["config"]["included.custom.audience"] == "openziti"
        assert realm.outputs["issuer_url"] == f"{fake.url}/realms/platform"
        assert fake.realms["platform"].rep["accessTokenLifespan"] == 300
        assert fake.invalid_bodies == []
        # A second `pulumi preview` / `up` with the same program: nothing to do, and no request.
        assert fake.server is not None
        fake.server.reset_log()
        assert realms.preview_change("keycloak-realm", realm, realm_inputs)[1].changes == "DIFF_NONE"
        assert clients.preview_change("keycloak-ziti-client", client, client_inputs)[1].changes == "DIFF_NONE"
        assert fake.server.count() == 0
