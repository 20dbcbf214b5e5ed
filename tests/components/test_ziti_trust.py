"""ZitiTrust under Pulumi's mock engine, in preview and update mode: the SPIRE root registered as a
verified SPIFFE CA, the Keycloak signer and user policy, the edge router, one identity per workload
matched by SPIFFE ID, the default policies, and secrets that stay secret."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi.runtime import rpc

from dynamic_providers.ziti.provider import IdentityProvider
from tests.fakes.ziti import make_ca
from tests.harness.mock_engine import ProgramRun, Registered, run

CERT, KEY = make_ca()
DYN = "pulumi-python:dynamic/ziti:"
WORKLOADS = {
    "payments-api": ("spiffe://prod.example/ns/payments/sa/api", ["payments", "api"]),
    "web": ("spiffe://prod.example/ns/web/sa/frontend", []),
}


def build(workloads: dict[str, Any] | None = None, name: str = "ziti-trust") -> Any:
    from components.ziti_trust import ZitiTrust, ZitiTrustArgs

    holder: dict[str, Any] = {}

    def body() -> None:
        import pulumi

        holder["trust"] = trust = ZitiTrust(name, ZitiTrustArgs(
            connection={
                "url": "https://ziti.example.com:1280",
                "username": "admin",
                "password": "plain-admin-password",
                "ca_bundle_pem": CERT,
            },
            root_ca_cert_pem=CERT,
            root_ca_key_pem=KEY,
            keycloak_issuer="https://auth.example.com/realms/platform",
            keycloak_jwks_url="https://auth.example.com/realms/platform/protocol/openid-connect/certs",
            keycloak_audience="openziti",
            keycloak_client_id="openziti",
            router_name="edge-router-1",
            workloads=workloads if workloads is not None else WORKLOADS,
        ))
        pulumi.export("routerJwt", trust.router_enrollment_jwt)
        pulumi.export("identityIds", trust.identity_ids)
        pulumi.export("caId", trust.ca_id)

    return body


@pytest.fixture(params=[True, False], ids=["preview", "update"])
def program(request: pytest.FixtureRequest) -> ProgramRun:
    return run(build(), stack="dev", preview=request.param)


def secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def only(r: ProgramRun, type_: str) -> Registered:
    [res] = r.of_type(DYN + type_)
    return res


class TestShape:
    def test_every_child_is_parented_and_named_after_the_component(self, program: ProgramRun) -> None:
        [trust] = program.of_type("identity-platform:ziti:ZitiTrust")
        children = program.children(trust)
        assert {c.type for c in children} == {
            DYN + t
            for t in (
                "CertificateAuthority",
                "AuthPolicy",
                "ExternalJwtSigner",
                "EdgeRouter",
                "Identity",
                "EdgeRouterPolicy",
                "ServiceEdgeRouterPolicy",
            )
        }
        assert len(children) == len(program.resources) - 1
        assert all(c.name.startswith("ziti-trust-") for c in children)

    def test_the_spire_root_is_a_verified_spiffe_ca_with_auth_enabled(self, program: ProgramRun) -> None:
        ca = only(program, "CertificateAuthority")
        assert ca.name == "ziti-trust-spire-ca"
        assert ca.inputs["cert_pem"] == CERT
        assert ca.inputs["is_auth_enabled"] is True
        assert ca.inputs["is_auto_ca_enrollment_enabled"] is False
        assert ca.inputs["external_id_claim"] == {
            "location": "SAN_URI",
            "matcher": "SCHEME",
            "matcher_criteria": "spiffe",
            "parser": "NONE",
            "parser_criteria": "",
            "index": 0,
        }
        assert secret(ca.inputs["ca_key_pem"]) and secret(ca.inputs["connection"])
        assert set(ca.additional_secret_outputs) == {"connection", "ca_key_pem", "enrollment_jwt"}

    def test_keycloak_signer_and_a_policy_that_admits_only_it(self, program: ProgramRun) -> None:
        signer = only(program, "ExternalJwtSigner")
        assert signer.inputs["issuer"] == "https://auth.example.com/realms/platform"
        assert signer.inputs["jwks_endpoint"].endswith("/protocol/openid-connect/certs")
        assert (signer.inputs["audience"], signer.inputs["client_id"]) == ("openziti", "openziti")
        assert signer.inputs["use_external_id"] is True
        users = program.get(DYN + "AuthPolicy", "ziti-trust-user-policy")
        assert users.inputs["primary"]["ext_jwt"]["allowed"] is True
        assert users.inputs["primary"]["cert"]["allowed"] is False
        assert signer.urn in users.dependencies
        if not program.preview:
            assert users.inputs["primary"]["ext_jwt"]["allowed_signers"] == ["ziti-trust-keycloak-signer-id"]

    def test_one_identity_per_workload_matched_by_spiffe_id_under_a_cert_only_policy(self, program: ProgramRun) -> None:
        identities = {r.inputs["name"]: r for r in program.of_type(DYN + "Identity")}
        assert set(identities) == set(WORKLOADS)
        workload_policy = program.get(DYN + "AuthPolicy", "ziti-trust-workload-policy")
        assert workload_policy.inputs["primary"]["cert"]["allowed"] is True
        assert workload_policy.inputs["primary"]["ext_jwt"]["allowed"] is False
        for key, (spiffe_id, attributes) in WORKLOADS.items():
            ident = identities[key]
            assert ident.name == f"ziti-trust-identity-{key}"
            assert ident.inputs["external_id"] == spiffe_id
            assert ident.inputs["role_attributes"] == attributes
            checked = IdentityProvider().check({}, dict(ident.inputs)).inputs  # what the engine stores
            assert checked["type"] == "Default" and checked["is_admin"] is False
            assert workload_policy.urn in ident.dependencies
            assert only(program, "CertificateAuthority").urn in ident.dependencies

    def test_router_and_default_policies(self, program: ProgramRun) -> None:
        router = only(program, "EdgeRouter")
        assert router.inputs["name"] == "edge-router-1"
        assert "enrollment_jwt" in router.additional_secret_outputs
        erp = only(program, "EdgeRouterPolicy")
        assert (erp.inputs["identity_roles"], erp.inputs["edge_router_roles"]) == (["#all"], ["#all"])
        serp = only(program, "ServiceEdgeRouterPolicy")
        assert (serp.inputs["service_roles"], serp.inputs["edge_router_roles"]) == (["#all"], ["#all"])

    def test_the_admin_password_is_never_a_plain_input(self, program: ProgramRun) -> None:
        for r in program.resources:
            if "connection" in r.inputs:
                assert secret(r.inputs["connection"]), r.name
            for key, value in r.inputs.items():
                if key != "connection" and not secret(value):
                    assert "plain-admin-password" not in repr(value), (r.name, key)

    def test_outputs(self, program: ProgramRun) -> None:
        assert program.exports["routerJwt"].secret
        if not program.preview:
            ids = program.exports["identityIds"].value
            assert ids == {k: f"ziti-trust-identity-{k}-id" for k in WORKLOADS}
            assert program.exports["caId"].value == "ziti-trust-spire-ca-id"


class TestStableNames:
    def test_workload_order_does_not_change_names(self) -> None:
        forward = run(build(dict(WORKLOADS)), stack="dev")
        backward = run(build(dict(reversed(list(WORKLOADS.items())))), stack="dev")
        assert sorted(r.urn for r in forward.resources) == sorted(r.urn for r in backward.resources)

    def test_no_workloads_still_builds_the_trust(self) -> None:
        r = run(build({}), stack="dev")
        assert r.of_type(DYN + "Identity") == [] and len(r.of_type(DYN + "CertificateAuthority")) == 1

    def test_workloads_as_dataclasses(self) -> None:
        from components.ziti_trust import ZitiWorkload

        r = run(build({"svc": ZitiWorkload("spiffe://td/svc", ("a",))}), stack="dev")
        [ident] = r.of_type(DYN + "Identity")
        assert (ident.inputs["external_id"], ident.inputs["role_attributes"]) == ("spiffe://td/svc", ["a"])
