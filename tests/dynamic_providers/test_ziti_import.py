"""Taking over an existing Ziti entity by id (`import_id`, from `identity-platform:imports`)
through the engine's own provider host against the loopback controller.

Create with `import_id` never POSTs: it GETs the entity, refuses one another owner's tags name
(left as it was), writes the declared settings and our ownership tags, and returns that id.
`import_id` passes check and is never a diff. The kinds with their own write or adoption rules
are covered too: the CA (the certificate must match; verified with its key), the auth policy
(written by PUT), the edge router (an enrolled one is not re-enrolled) and the external JWT
signer (its own `create`)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from cryptography import x509

from dynamic_providers.ziti import provider as zp
from dynamic_providers.ziti.models import sha1_fingerprint
from tests.fakes import ziti as fake_ziti
from tests.fakes.ziti import API, BodyRecorder, ZitiController, make_ca
from tests.harness.dynamic_host import DynamicProviderHost, ProviderCallError

STACK = "identity-platform/test"
SPIFFE_ID = "spiffe://prod.example/ns/payments/sa/api"
SPIFFE_CLAIM = {"location": "SAN_URI", "matcher": "SCHEME", "matcher_criteria": "spiffe"}
ISSUER = "https://auth.example.com/realms/platform"
JWKS = ISSUER + "/protocol/openid-connect/certs"


@pytest.fixture
def ziti(loopback) -> tuple[ZitiController, Any]:
    fake, srv = fake_ziti.start(loopback)
    fake.on_request = BodyRecorder()
    return fake, srv


def host_for(dynamic_host, provider: type[zp.ZitiProvider]) -> DynamicProviderHost:
    kind = provider.__name__.removesuffix("Provider")
    return dynamic_host(provider(), resource_type=f"pulumi-python:dynamic/ziti:{kind}")


def ours(name: str) -> dict[str, str]:
    return {"pulumi.stack": STACK, "pulumi.name": name}


def writes(fake: ZitiController, srv: Any, collection: str) -> dict[str, int]:
    """Requests that could change `collection`: POST (create), PUT, PATCH, DELETE."""
    return {
        "POST": srv.count("POST", f"{API}/{collection}"),
        "PUT": srv.count("PUT", f"{API}/{collection}/{{id}}"),
        "PATCH": srv.count("PATCH", f"{API}/{collection}/{{id}}"),
        "DELETE": srv.count("DELETE", f"{API}/{collection}/{{id}}"),
    }


NO_WRITES = {"POST": 0, "PUT": 0, "PATCH": 0, "DELETE": 0}


# --- identities: the common contract ----------------------------------------------------------------


RESOURCE = "ziti-trust-identity-payments-api"


def existing_identity(fake: ZitiController, tags: dict[str, Any], **fields: Any) -> str:
    return fake.put_entity(
        "identities",
        {
            "name": "payments-api",
            "type": "Default",
            "isAdmin": False,
            "authPolicyId": "default",
            "externalId": None,
            "roleAttributes": ["legacy"],
            "tags": tags,
            **fields,
        },
    )


def identity_props(fake: ZitiController, srv: Any, import_id: str | None, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "name": "payments-api",
        "external_id": SPIFFE_ID,
        "role_attributes": ["payments", "pci"],
        "connection": fake_ziti.connection(srv, fake),
        "owner": fake_ziti.owner(RESOURCE),
        **extra,
    }
    if import_id is not None:
        props["import_id"] = import_id
    return props


class TestIdentityTakeOver:
    @pytest.fixture
    def host(self, dynamic_host) -> DynamicProviderHost:
        return host_for(dynamic_host, zp.IdentityProvider)

    def test_an_untagged_identity_is_taken_over_without_a_post(self, ziti, host) -> None:
        fake, srv = ziti
        theirs = existing_identity(fake, {"team": "payments"})
        state = host.up("w", identity_props(fake, srv, theirs))
        assert state.id == theirs
        [identity] = fake.all("identities")  # exactly one: nothing was created next to it
        assert identity["id"] == theirs and identity["name"] == "payments-api"
        assert srv.count("POST", f"{API}/identities") == 0
        assert not any(m == "POST" and p.endswith("/identities") for m, p, _ in fake.on_request.requests)
        # The declared settings and our ownership tags (PATCH replaces the tags as a whole).
        assert sorted(identity["roleAttributes"]) == ["payments", "pci"]
        assert identity["externalId"] == SPIFFE_ID
        assert identity["tags"] == ours(RESOURCE)
        assert writes(fake, srv, "identities") == {**NO_WRITES, "PATCH": 1}
        # The outputs are the server's entity, as after a create.
        assert state.outputs["name"] == "payments-api" and state.outputs["external_id"] == SPIFFE_ID
        assert sorted(state.outputs["role_attributes"]) == ["payments", "pci"]
        assert "import_id" not in state.outputs

    def test_the_declared_name_is_written_over_the_entitys_own(self, ziti, host) -> None:
        fake, srv = ziti
        theirs = existing_identity(fake, {}, name="legacy-payments")
        state = host.up("w", identity_props(fake, srv, theirs))
        assert state.id == theirs
        assert [i["name"] for i in fake.all("identities")] == ["payments-api"]

    def test_an_identity_of_another_stack_is_refused_and_left_unchanged(self, ziti, host) -> None:
        fake, srv = ziti
        prod = {"pulumi.stack": "identity-platform/prod", "pulumi.name": RESOURCE}
        theirs = existing_identity(fake, prod)
        before = copy.deepcopy(fake.all("identities"))
        with pytest.raises(ProviderCallError) as err:
            host.up("w", identity_props(fake, srv, theirs))
        assert f"identity 'payments-api' (id {theirs}) belongs to stack 'identity-platform/prod'" in err.value.details
        assert f"resource {RESOURCE!r}" in err.value.details
        assert fake.all("identities") == before  # tags and fields as they were
        assert writes(fake, srv, "identities") == NO_WRITES

    def test_an_identity_of_another_resource_of_this_stack_is_refused(self, ziti, host) -> None:
        fake, srv = ziti
        theirs = existing_identity(fake, ours("ziti-trust-identity-ledger"))
        before = copy.deepcopy(fake.all("identities"))
        with pytest.raises(ProviderCallError) as err:
            host.up("w", identity_props(fake, srv, theirs))
        assert "resource 'ziti-trust-identity-ledger'" in err.value.details
        assert fake.all("identities") == before
        assert writes(fake, srv, "identities") == NO_WRITES

    def test_a_missing_id_fails_naming_it_and_creates_nothing(self, ziti, host) -> None:
        fake, srv = ziti
        with pytest.raises(ProviderCallError) as err:
            host.up("w", identity_props(fake, srv, "no-such-id"))
        assert "no identity with id 'no-such-id'" in err.value.details
        assert "identity-platform:imports" in err.value.details
        assert fake.all("identities") == []
        assert writes(fake, srv, "identities") == NO_WRITES

    @pytest.mark.parametrize(
        "tags",
        [
            pytest.param(ours(RESOURCE), id="this-resource"),
            pytest.param({"pulumi.stack": STACK}, id="this-stack-no-resource-name"),
        ],
    )
    def test_an_identity_already_ours_is_taken_over(self, ziti, host, tags) -> None:
        fake, srv = ziti
        theirs = existing_identity(fake, tags)
        state = host.up("w", identity_props(fake, srv, theirs))
        assert state.id == theirs
        [identity] = fake.all("identities")
        assert identity["tags"] == ours(RESOURCE)
        assert sorted(identity["roleAttributes"]) == ["payments", "pci"] and identity["externalId"] == SPIFFE_ID
        assert srv.count("POST", f"{API}/identities") == 0

    def test_without_import_id_the_same_entity_would_be_refused_as_foreign(self, ziti, host) -> None:
        # The contrast: adoption by name needs our tags; the import is what takes an untagged one.
        fake, srv = ziti
        existing_identity(fake, {})
        with pytest.raises(ProviderCallError) as err:
            host.up("w", identity_props(fake, srv, None))
        assert "created outside this program" in err.value.details
        assert len(fake.all("identities")) == 1


class TestImportIdIsNoSetting:
    @pytest.fixture
    def host(self, dynamic_host) -> DynamicProviderHost:
        return host_for(dynamic_host, zp.IdentityProvider)

    def test_check_accepts_import_id_and_keeps_it_for_create(self, ziti, host) -> None:
        fake, srv = ziti
        checked = host.check("w", {}, identity_props(fake, srv, "abc123"))
        assert checked.failures == []
        assert checked.inputs["import_id"] == "abc123"

    def test_check_still_refuses_a_misspelt_import_key(self, ziti, host) -> None:
        fake, srv = ziti
        props = {**identity_props(fake, srv, None), "importId": "abc123"}
        failures = host.check("w", {}, props).failures
        assert [p for p, _ in failures] == ["importId"]

    def test_import_id_is_never_a_diff_in_either_direction(self, ziti, host) -> None:
        fake, srv = ziti
        theirs = existing_identity(fake, {})
        props = identity_props(fake, srv, theirs)
        state = host.up("w", props)
        without = {k: v for k, v in props.items() if k != "import_id"}
        srv.reset_log()
        # olds with import_id (as recorded when the entry was still set), news without (removed).
        checked = host.check("w", state.inputs, without)
        diff = host.diff("w", state.id, {**state.outputs, "import_id": theirs}, checked.inputs)
        assert diff.changes == "DIFF_NONE" and diff.replaces == []
        # ... and the entry left in the config: news with it, olds without.
        assert host.preview_change("w", state, props)[1].changes == "DIFF_NONE"
        assert host.preview_change("w", state, without)[1].changes == "DIFF_NONE"
        # Another id is no diff either: the object is this resource's now.
        assert host.preview_change("w", state, {**props, "import_id": "other"})[1].changes == "DIFF_NONE"
        assert srv.counts() == {}

    def test_after_the_take_over_a_refresh_shows_no_drift(self, ziti, host) -> None:
        fake, srv = ziti
        theirs = existing_identity(fake, {})
        props = identity_props(fake, srv, theirs)
        state = host.up("w", props)
        refreshed = host.refresh("w", state)
        assert refreshed is not None and refreshed.id == theirs
        without = {k: v for k, v in props.items() if k != "import_id"}
        assert host.preview_change("w", refreshed, without)[1].changes == "DIFF_NONE"
        host.delete("w", refreshed.id, refreshed.outputs)  # then it is ours to delete like any other
        assert fake.all("identities") == []


# --- certificate authorities: the certificate must match; verified with its key ---------------------------


def existing_ca(fake: ZitiController, cert_pem: str, *, verified: bool, tags: dict[str, Any] | None = None) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return fake.put_entity(
        "cas",
        {
            "name": "spire-by-hand",
            "certPem": cert_pem,
            "fingerprint": sha1_fingerprint(cert),
            "isVerified": verified,
            "verificationToken": str(uuid.uuid4()),
            "isAuthEnabled": False,
            "isAutoCaEnrollmentEnabled": False,
            "isOttCaEnrollmentEnabled": False,
            "identityRoles": [],
            "identityNameFormat": "[caName]-[commonName]",
            "externalIdClaim": None,
            "tags": tags or {},
        },
    )


def ca_props(fake: ZitiController, srv: Any, cert: tuple[str, str], import_id: str) -> dict[str, Any]:
    cert_pem, key_pem = cert
    return {
        "name": "spire",
        "cert_pem": cert_pem,
        "ca_key_pem": key_pem,
        "is_auth_enabled": True,
        "identity_roles": ["spire"],
        "external_id_claim": SPIFFE_CLAIM,
        "connection": fake_ziti.connection(srv, fake),
        "owner": fake_ziti.owner("ziti-trust-spire-ca"),
        "import_id": import_id,
    }


class TestCertificateAuthorityTakeOver:
    @pytest.fixture
    def host(self, dynamic_host) -> DynamicProviderHost:
        return host_for(dynamic_host, zp.CertificateAuthorityProvider)

    def test_an_unverified_ca_with_the_same_certificate_is_taken_over_and_verified(self, ziti, host) -> None:
        fake, srv = ziti
        cert = make_ca()
        theirs = existing_ca(fake, cert[0], verified=False)
        state = host.up("ca", ca_props(fake, srv, cert, theirs))
        assert state.id == theirs
        [ca] = fake.all("cas")
        assert ca["id"] == theirs and ca["name"] == "spire" and ca["isVerified"] is True
        assert ca["identityRoles"] == ["spire"] and ca["isAuthEnabled"] is True
        assert ca["externalIdClaim"]["matcherCriteria"] == "spiffe"
        assert ca["tags"] == ours("ziti-trust-spire-ca")
        # The claim goes by PUT (the CA's own `_write`), never a POST of a second CA.
        assert writes(fake, srv, "cas") == {**NO_WRITES, "PUT": 1}
        assert srv.count("POST", f"{API}/cas/{{id}}/verify") == 1
        assert state.outputs["is_verified"] is True and state.outputs["fingerprint"] == ca["fingerprint"]

    def test_a_verified_ca_is_not_verified_again(self, ziti, host) -> None:
        fake, srv = ziti
        cert = make_ca()
        theirs = existing_ca(fake, cert[0], verified=True)
        state = host.up("ca", ca_props(fake, srv, cert, theirs))
        assert state.id == theirs and state.outputs["is_verified"] is True
        assert srv.count("POST", f"{API}/cas/{{id}}/verify") == 0
        assert srv.count("POST", f"{API}/cas") == 0

    def test_a_ca_with_another_certificate_is_refused_and_left_unchanged(self, ziti, host) -> None:
        fake, srv = ziti
        theirs = existing_ca(fake, make_ca("hand made root")[0], verified=True)
        before = copy.deepcopy(fake.all("cas"))
        declared = make_ca()
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(fake, srv, declared, theirs))
        assert "registers a different certificate" in err.value.details
        assert f"(id {theirs})" in err.value.details
        assert fake.all("cas") == before
        assert writes(fake, srv, "cas") == NO_WRITES

    def test_a_ca_of_another_stack_is_refused_even_with_the_same_certificate(self, ziti, host) -> None:
        fake, srv = ziti
        cert = make_ca()
        prod = {"pulumi.stack": "identity-platform/prod", "pulumi.name": "ziti-trust-spire-ca"}
        theirs = existing_ca(fake, cert[0], verified=True, tags=prod)
        before = copy.deepcopy(fake.all("cas"))
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(fake, srv, cert, theirs))
        assert "belongs to stack 'identity-platform/prod'" in err.value.details
        assert fake.all("cas") == before
        assert writes(fake, srv, "cas") == NO_WRITES

    def test_a_failed_verification_leaves_the_operators_ca_in_place(self, ziti, host) -> None:
        import datetime

        fake, srv = ziti
        cert = make_ca()
        theirs = existing_ca(fake, cert[0], verified=False)
        fake.clock_skew = datetime.timedelta(hours=2)  # the verification certificate is not yet valid
        with pytest.raises(ProviderCallError) as err:
            host.up("ca", ca_props(fake, srv, cert, theirs))
        assert "CERTIFICATE_FAILED_VALIDATION" in err.value.details
        assert [c["id"] for c in fake.all("cas")] == [theirs]  # not ours to delete: it existed before
        assert srv.count("DELETE") == 0


# --- auth policies: written by PUT ------------------------------------------------------------------------


class TestAuthPolicyTakeOver:
    def test_the_primary_block_is_written_by_put_in_full(self, ziti, dynamic_host) -> None:
        fake, srv = ziti
        host = host_for(dynamic_host, zp.AuthPolicyProvider)
        # A policy made by hand: the controller's default one under another name and id.
        default = copy.deepcopy(fake.entities["auth-policies"][fake_ziti.DEFAULT_AUTH_POLICY_ID])
        hand_made = {k: v for k, v in default.items() if k not in ("id", "isSystem")}
        theirs = fake.put_entity("auth-policies", {**hand_made, "name": "users-by-hand"})
        assert fake.entities["auth-policies"][theirs]["primary"]["updb"]["minPasswordLength"] == 5
        props = {
            "name": "keycloak-users",
            "primary": {"updb": {"allowed": True, "min_password_length": 12}},
            "connection": fake_ziti.connection(srv, fake),
            "owner": fake_ziti.owner("ziti-trust-user-policy"),
            "import_id": theirs,
        }
        state = host.up("p", props)
        assert state.id == theirs
        policy = fake.entities["auth-policies"][theirs]
        assert policy["name"] == "keycloak-users" and policy["tags"] == ours("ziti-trust-user-policy")
        # PATCH would keep minPasswordLength (the controller's quirk): PUT applied all of it.
        assert policy["primary"]["updb"]["minPasswordLength"] == 12
        assert policy["primary"]["cert"]["allowed"] is False
        assert writes(fake, srv, "auth-policies") == {**NO_WRITES, "PUT": 1}
        assert len(fake.all("auth-policies")) == 2  # the built-in default and this one


# --- edge routers: an enrolled router keeps its enrollment -------------------------------------------------


class TestEdgeRouterTakeOver:
    def test_an_enrolled_router_is_taken_over_and_not_re_enrolled(self, ziti, dynamic_host) -> None:
        fake, srv = ziti
        host = host_for(dynamic_host, zp.EdgeRouterProvider)
        theirs = fake.put_entity(
            "edge-routers",
            {"name": "edge-router-1", "roleAttributes": [], "isTunnelerEnabled": False, "isVerified": False},
        )
        fake.enroll_router(theirs)
        props = {
            "name": "edge-router-1",
            "role_attributes": ["public"],
            "connection": fake_ziti.connection(srv, fake),
            "owner": fake_ziti.owner("ziti-trust-router"),
            "import_id": theirs,
        }
        state = host.up("r", props)
        assert state.id == theirs and state.outputs["is_verified"] is True
        router = fake.entities["edge-routers"][theirs]
        assert router["roleAttributes"] == ["public"] and router["tags"] == ours("ziti-trust-router")
        assert router["isVerified"] is True
        assert srv.count("POST", f"{API}/edge-routers/{{id}}/re-enroll") == 0
        assert writes(fake, srv, "edge-routers") == {**NO_WRITES, "PATCH": 1}


# --- external JWT signers: a `create` of their own --------------------------------------------------------


class TestExternalJwtSignerTakeOver:
    @pytest.mark.parametrize("existing_name", ["keycloak", "keycloak-by-hand"])
    def test_an_untagged_signer_is_taken_over_without_a_post(self, ziti, dynamic_host, existing_name) -> None:
        fake, srv = ziti
        host = host_for(dynamic_host, zp.ExternalJwtSignerProvider)
        theirs = fake.put_entity(
            "external-jwt-signers",
            {
                "name": existing_name,
                "issuer": ISSUER + "-old",
                "audience": "old",
                "jwksEndpoint": JWKS,
                "enabled": True,
                "claimsProperty": "sub",
                "useExternalId": False,
                "targetToken": "ACCESS",
                "scopes": [],
            },
        )
        props = {
            "name": "keycloak",
            "issuer": ISSUER,
            "audience": "openziti",
            "jwks_endpoint": JWKS,
            "claims_property": "email",
            "use_external_id": True,
            "connection": fake_ziti.connection(srv, fake),
            "owner": fake_ziti.owner("ziti-trust-keycloak-signer"),
            "import_id": theirs,
        }
        state = host.up("s", props)  # today: refused as foreign ("keycloak") or POSTed anew (the other name)
        assert srv.count("POST", f"{API}/external-jwt-signers") == 0
        assert state.id == theirs
        [signer] = fake.all("external-jwt-signers")
        assert signer["issuer"] == ISSUER and signer["claimsProperty"] == "email"
        assert signer["tags"] == ours("ziti-trust-keycloak-signer")
