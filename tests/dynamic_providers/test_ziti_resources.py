"""A full engine-path CRUD cycle for every Ziti resource besides the CA, plus what is particular
to each: the router's one-time JWT, identities matched by SPIFFE ID, a signer switching key source."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dynamic_providers.ziti import provider as zp
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, BodyRecorder, ZitiController, make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError

ISSUER = "https://auth.example.com/realms/platform"
JWKS = ISSUER + "/protocol/openid-connect/certs"


@pytest.fixture
def ziti(loopback) -> tuple[ZitiController, Any]:
    return fake_ziti.start(loopback)


@dataclass
class Case:
    provider: type[zp.ZitiProvider]
    props: Callable[[ZitiController], dict[str, Any]]
    change: dict[str, Any]
    server: dict[str, Any]  # expected camelCase fields on the server after create
    server_after: dict[str, Any]  # ... and after the change

    @property
    def type(self) -> str:
        return f"pulumi-python:dynamic/ziti:{self.provider.__name__.removesuffix('Provider')}"


def _signer_id(fake: ZitiController) -> str:
    return fake.put_entity(
        "external-jwt-signers",
        {"name": "pre", "issuer": "https://pre", "audience": "a", "jwksEndpoint": "https://pre/jwks", "enabled": True},
    )


CASES = {
    "external-jwt-signer": Case(
        zp.ExternalJwtSignerProvider,
        lambda fake: {
            "name": "keycloak",
            "issuer": ISSUER,
            "audience": "openziti",
            "jwks_endpoint": JWKS,
            "client_id": "openziti",
            "external_auth_url": ISSUER,
            "scopes": ["openid", "email"],
            "claims_property": "email",
            "use_external_id": True,
        },
        {"scopes": ["email", "openid", "profile"], "enabled": False},
        {"issuer": ISSUER, "jwksEndpoint": JWKS, "claimsProperty": "email", "useExternalId": True, "certPem": None},
        {"scopes": ["email", "openid", "profile"], "enabled": False},
    ),
    "auth-policy": Case(
        zp.AuthPolicyProvider,
        lambda fake: {
            "name": "keycloak-users",
            "primary": {"ext_jwt": {"allowed": True, "allowed_signers": [_signer_id(fake)]}},
        },
        {"secondary": {"require_totp": True}},
        {"secondary": {"requireTotp": False, "requireExtJwtSigner": None}},
        {"secondary": {"requireTotp": True, "requireExtJwtSigner": None}},
    ),
    "identity": Case(
        zp.IdentityProvider,
        lambda fake: {
            "name": "payments-api",
            "external_id": "spiffe://prod.example/ns/payments/sa/api",
            "role_attributes": ["payments"],
        },
        {"role_attributes": ["payments", "pci"], "is_admin": True},
        {"externalId": "spiffe://prod.example/ns/payments/sa/api", "type": "Default", "authPolicyId": "default"},
        {"roleAttributes": ["payments", "pci"], "isAdmin": True},
    ),
    "edge-router": Case(
        zp.EdgeRouterProvider,
        lambda fake: {"name": "edge-router-1", "role_attributes": ["public"]},
        {"is_tunneler_enabled": True},
        {"roleAttributes": ["public"], "isTunnelerEnabled": False, "isVerified": False},
        {"isTunnelerEnabled": True},
    ),
    "service-policy": Case(
        zp.ServicePolicyProvider,
        lambda fake: {
            "name": "payments-dial",
            "type": "Dial",
            "service_roles": ["#payments"],
            "identity_roles": ["#web"],
        },
        {"type": "Bind", "identity_roles": ["#payments"]},
        {"type": "Dial", "semantic": "AllOf", "serviceRoles": ["#payments"], "postureCheckRoles": []},
        {"type": "Bind", "identityRoles": ["#payments"]},
    ),
    "edge-router-policy": Case(
        zp.EdgeRouterPolicyProvider,
        lambda fake: {"name": "all", "semantic": "AnyOf", "identity_roles": ["#all"], "edge_router_roles": ["#all"]},
        {"identity_roles": ["#users"]},
        {"semantic": "AnyOf", "identityRoles": ["#all"], "edgeRouterRoles": ["#all"]},
        {"identityRoles": ["#users"]},
    ),
    "service-edge-router-policy": Case(
        zp.ServiceEdgeRouterPolicyProvider,
        lambda fake: {"name": "all", "service_roles": ["#all"], "edge_router_roles": ["#all"]},
        {"semantic": "AnyOf"},
        {"semantic": "AllOf", "serviceRoles": ["#all"]},
        {"semantic": "AnyOf"},
    ),
}


def full(props: dict[str, Any], fake: ZitiController, srv: Any, name: str) -> dict[str, Any]:
    return {**props, "connection": fake_ziti.connection(srv, fake), "owner": fake_ziti.owner(name)}


def subset(entity: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {k: entity.get(k) for k in expected}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_full_crud_cycle(kind: str, ziti, dynamic_host) -> None:
    fake, srv = ziti
    case = CASES[kind]
    collection = case.provider.collection
    host: DynamicProviderHost = dynamic_host(case.provider(), resource_type=case.type)
    recorder = BodyRecorder()
    fake.on_request = recorder
    props = full(case.props(fake), fake, srv, f"r-{kind}")

    state = host.up("r", props)
    entity = fake.entities[collection][state.id]
    assert subset(entity, case.server) == case.server
    assert entity["tags"] == {"pulumi.stack": "identity-platform/test", "pulumi.name": f"r-{kind}"}
    assert state.outputs["name"] == props["name"]

    srv.reset_log()
    assert host.preview_change("r", state, props)[1].changes == "DIFF_NONE"
    assert srv.counts() == {}

    changed = {**props, **case.change}
    new_state, diff = host.change("r", state, changed)
    assert (diff.changes, diff.replaces, new_state.id) == ("DIFF_SOME", [], state.id)
    assert srv.count("PATCH") == 1 and srv.count("POST") <= 1  # at most the login
    patch = recorder.bodies("PATCH")[-1]
    assert set(patch) == {_camel(k) for k in case.change}  # only what changed
    entity = fake.entities[collection][state.id]
    assert subset(entity, case.server_after) == case.server_after

    refreshed = host.refresh("r", new_state)
    assert refreshed is not None and refreshed.id == state.id
    assert host.preview_change("r", refreshed, changed)[1].changes == "DIFF_NONE"  # no perpetual drift

    host.delete("r", state.id, refreshed.outputs)
    assert state.id not in fake.entities[collection]
    host.delete("r", state.id, refreshed.outputs)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


class TestEdgeRouter:
    @pytest.fixture
    def host(self, dynamic_host) -> DynamicProviderHost:
        return dynamic_host(zp.EdgeRouterProvider(), resource_type="pulumi-python:dynamic/ziti:EdgeRouter")

    def test_enrollment_jwt_is_the_routers_one_time_token(self, ziti, host) -> None:
        fake, srv = ziti
        state = host.up("r", full({"name": "edge-router-1"}, fake, srv, "router"))
        router = fake.entities["edge-routers"][state.id]
        assert state.outputs["enrollment_jwt"] == router["enrollmentJwt"]
        assert state.outputs["enrollment_expires_at"] == router["enrollmentExpiresAt"]
        assert state.outputs["is_verified"] is False

    def test_after_enrollment_the_used_token_stays_so_the_router_secret_does_not_churn(self, ziti, host) -> None:
        fake, srv = ziti
        props = full({"name": "edge-router-1"}, fake, srv, "router")
        state = host.up("r", props)
        fake.enroll_router(state.id)
        refreshed = host.refresh("r", state)
        assert refreshed is not None and refreshed.outputs["is_verified"] is True
        assert refreshed.outputs["enrollment_jwt"] == state.outputs["enrollment_jwt"]
        assert host.preview_change("r", refreshed, props)[1].changes == "DIFF_NONE"

    def test_an_expired_unused_token_is_renewed_by_the_next_up(self, ziti, host) -> None:
        fake, srv = ziti
        props = full({"name": "edge-router-1"}, fake, srv, "router")
        state = host.up("r", props)
        past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        fake.entities["edge-routers"][state.id]["enrollmentExpiresAt"] = past
        state = host.refresh("r", state)
        assert state is not None
        new_state, diff = host.change("r", state, props)
        assert diff.changes == "DIFF_SOME" and diff.replaces == []
        assert srv.count("POST", f"{API}/edge-routers/{{id}}/re-enroll") == 1
        assert new_state.outputs["enrollment_jwt"] != state.outputs["enrollment_jwt"]
        assert new_state.outputs["enrollment_jwt"] == fake.entities["edge-routers"][state.id]["enrollmentJwt"]

    def test_an_enrolled_router_is_never_re_enrolled(self, ziti, host) -> None:
        fake, srv = ziti
        props = full({"name": "edge-router-1"}, fake, srv, "router")
        state = host.up("r", props)
        fake.enroll_router(state.id)  # enrolled, but the state still says unverified and expired
        past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)).isoformat()
        state.outputs["enrollment_expires_at"] = past
        new_state, _ = host.change("r", state, props)
        assert srv.count("POST", f"{API}/edge-routers/{{id}}/re-enroll") == 0
        assert new_state.outputs["is_verified"] is True


class TestIdentity:
    @pytest.fixture
    def host(self, dynamic_host) -> DynamicProviderHost:
        return dynamic_host(zp.IdentityProvider(), resource_type="pulumi-python:dynamic/ziti:Identity")

    def test_a_spiffe_id_held_by_another_identity_is_a_clear_error(self, ziti, host) -> None:
        fake, srv = ziti
        spiffe = "spiffe://prod.example/ns/payments/sa/api"
        fake.put_entity(
            "identities",
            {"name": "old", "type": "Default", "isAdmin": False, "externalId": spiffe, "authPolicyId": "default"},
        )
        with pytest.raises(ProviderCallError) as err:
            host.up("w", full({"name": "payments-api", "external_id": spiffe}, fake, srv, "w"))
        assert "another entity already holds a unique value" in err.value.details
        assert "externalId" in err.value.details and spiffe in err.value.details

    def test_a_type_reference_without_entity_reads_as_its_id(self, ziti, host, monkeypatch) -> None:
        """The swagger's entityRef requires none of its keys, and its own identity example renders
        `type` as {_links, id, name, urlName}: read as the type's id, it is no drift."""
        fake, srv = ziti
        detail = ZitiController._detail

        def spec_example(self: ZitiController, collection: str, entity: dict[str, Any]) -> dict[str, Any]:
            d = detail(self, collection, entity)
            if collection == "identities":
                d["type"] = {"_links": {}, "id": d["typeId"], "name": d["typeId"], "urlName": "identity-types"}
            return d

        monkeypatch.setattr(ZitiController, "_detail", spec_example)
        props = full({"name": "w", "type": "Router"}, fake, srv, "w")
        state = host.up("w", props)
        assert state.outputs["type"] == "Router"
        refreshed = host.refresh("w", state)
        assert refreshed is not None and refreshed.outputs["type"] == "Router"
        assert host.preview_change("w", refreshed, props)[1].changes == "DIFF_NONE"

    def test_a_missing_auth_policy_is_reported_with_the_controllers_message(self, ziti, host) -> None:
        fake, srv = ziti
        with pytest.raises(ProviderCallError) as err:
            host.up("w", full({"name": "w", "auth_policy_id": "nope"}, fake, srv, "w"))
        # As the real 1.7.2 controller answers it: 404 NOT_FOUND, the cause naming the policy.
        assert "NOT_FOUND" in err.value.details and "authPolicy with id nope not found" in err.value.details
        assert fake.all("identities") == []


class TestExternalJwtSigner:
    def test_switching_from_jwks_to_a_certificate_clears_the_endpoint(self, ziti, dynamic_host) -> None:
        fake, srv = ziti
        host = dynamic_host(
            zp.ExternalJwtSignerProvider(), resource_type="pulumi-python:dynamic/ziti:ExternalJwtSigner"
        )
        props = full({"name": "kc", "issuer": ISSUER, "audience": "openziti", "jwks_endpoint": JWKS}, fake, srv, "s")
        state = host.up("s", props)
        cert, _ = make_ca("keycloak signing key")
        new_props = {**props, "jwks_endpoint": None, "cert_pem": cert, "kid": "kid-1"}
        new_props = {k: v for k, v in new_props.items() if v is not None}
        new_state, diff = host.change("s", state, new_props)
        assert diff.replaces == []
        signer = fake.entities["external-jwt-signers"][state.id]
        assert signer["jwksEndpoint"] is None and signer["certPem"] == cert and signer["kid"] == "kid-1"
        assert new_state.outputs.get("jwks_endpoint") is None and new_state.outputs["kid"] == "kid-1"


class TestResourceClasses:
    """The SDK-style constructors under the mock engine: typed models are accepted as inputs (the
    connection's `SecretStr` password included) and travel only inside a Pulumi secret."""

    def test_pydantic_connection_and_blocks_are_accepted_and_stay_secret(self) -> None:
        from pulumi.runtime import rpc

        from dynamic_providers.ziti.models import AuthPolicyExtJwt, AuthPolicyPrimary, ZitiConnection
        from tests.harness import mock_engine
        from tests.harness.mock_engine import run

        cert, key = make_ca()
        conn = ZitiConnection(url="https://ziti.example.com:1280", username="admin", password="typed-admin-pw")

        def body() -> None:
            zp.ZitiAuthPolicy(
                "users",
                name="users",
                primary=AuthPolicyPrimary(ext_jwt=AuthPolicyExtJwt(allowed=True, allowed_signers=["s1"])),
                connection=conn,
            )
            zp.ZitiCertificateAuthority("ca", name="spire", cert_pem=cert, ca_key_pem=key, connection=conn)

        program = run(body)
        [policy] = program.of_type("pulumi-python:dynamic/ziti:AuthPolicy")
        [ca] = program.of_type("pulumi-python:dynamic/ziti:CertificateAuthority")
        assert policy.inputs["primary"]["ext_jwt"] == {"allowed": True, "allowed_signers": ["s1"]}
        assert policy.inputs["owner"] == {"stack": f"{mock_engine.PROJECT}/dev", "name": "users"}
        for r in (policy, ca):
            wrapped = r.inputs["connection"]
            assert wrapped[rpc._special_sig_key] == rpc._special_secret_sig
            assert wrapped["value"]["password"] == "typed-admin-pw"
            outside = {k: v for k, v in r.inputs.items() if k != "connection"}
            assert "typed-admin-pw" not in repr(outside)
        assert ca.inputs["ca_key_pem"][rpc._special_sig_key] == rpc._special_secret_sig
        assert {"connection", "ca_key_pem", "enrollment_jwt"} <= set(ca.additional_secret_outputs)
