"""`__main__.py` for `platform: external` under the mock engine, in preview and update mode:
nothing deployed, exactly the trust chain against the configured servers, the root CA generated
(its key exported only as a secret) or brought (no tls resource, the key a secret end to end),
and no secret value in any plain input or export.

Two stacks: Pulumi.external.yaml as it is (with the admin passwords the operator sets with
`--secret`), and CUSTOM: the same file with a brought root CA, a docker-exec transport, other
agents, users, URLs, CA bundles, a JWKS override and `ziti.routerName`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest

from tests.components._platform import is_secret, unwrap
from tests.conftest import program_run
from tests.harness import mock_engine
from tests.harness.mock_engine import ProgramRun, Registered, mock_cert_pem, run_program
from tests.test_config_external import make_pem

DYN = "pulumi-python:dynamic/"
ROOT_CA = "identity-platform:pki:RootCa"
TLS_KEY = "tls:index/privateKey:PrivateKey"
TLS_CERT = "tls:index/selfSignedCert:SelfSignedCert"
KC_PASSWORD = "mock-secret-value-identity-platform-keycloakAdminPassword"
ZT_PASSWORD = "mock-secret-value-identity-platform-zitiAdminPassword"

# The brought root CA and the servers' CA bundles of CUSTOM (made once: the runs are cached).
BROUGHT = make_pem()
KC_BUNDLE = make_pem().cert
ZT_BUNDLE = make_pem().cert
AGENT = "spiffe://zt.acme-identity.net/spire/agent/k8s_psat/cluster-a/node-7"
JWKS = "https://sso-internal.acme-identity.net:8443/realms/ops/protocol/openid-connect/certs"
CUSTOM = {
    "spire": {
        "trustDomain": "zt.acme-identity.net",
        "transport": {"kind": "docker-exec", "dockerHost": "ssh://root@10.1.0.5", "container": "spire-server"},
        "agents": {"node-7": AGENT},
    },
    "workloads": {
        "ledger": {"spiffePath": "/ns/payments/sa/ledger", "node": "node-7", "selectors": ["k8s:ns:payments"]},
    },
    "keycloak": {
        "url": "https://sso.acme-identity.net:8443",
        "realm": "ops",
        "adminUser": "kc-operator",
        "caBundle": KC_BUNDLE,
        "jwksUrl": JWKS,
    },
    "ziti": {
        "controllerUrl": "https://ctrl.acme-identity.net:1280",
        "adminUser": "ziti-operator",
        "caBundle": ZT_BUNDLE,
        "routerName": "edge-gw-1",
    },
    "users": {"bob": {"email": "bob.ops@acme-identity.net", "zitiRoleAttributes": ["oncall"]}},
    "rootCa": {"certificate": BROUGHT.cert},
}

_RUNS: dict[bool, ProgramRun] = {}


def custom_run(preview: bool) -> ProgramRun:
    """`__main__.py` for CUSTOM; the operator also set rootCaKey with `--secret`."""
    if preview not in _RUNS:
        values = {f"identity-platform:{k}": json.dumps(v) for k, v in CUSTOM.items()}
        values["identity-platform:rootCaKey"] = BROUGHT.key
        keys = ("keycloakAdminPassword", "zitiAdminPassword", "rootCaKey")
        # Full keys, as mock_engine.OPERATOR_SECRETS names them.
        operator = {"platform external": tuple(f"identity-platform:{k}" for k in keys)}
        with mock.patch.dict(mock_engine.OPERATOR_SECRETS, operator, clear=True):
            _RUNS[preview] = run_program("external", preview, config=values)
    return _RUNS[preview]


@dataclass(frozen=True)
class Expected:
    """What a stack's configuration says the trust chain must be, written out."""

    registered: list[tuple[str, str, str | None]]  # besides CHAIN: (type, name, parent's name)
    exports: set[str]  # besides CHAIN_EXPORTS
    entry: tuple[str, str, str, list[str], dict[str, str]]  # resource, SPIFFE ID, parent ID, selectors, transport
    keycloak: dict[str, str]  # connection fields of the realm and the client
    ziti: dict[str, str]  # connection fields of every Ziti object
    identities: list[tuple[str, str, list[str], str]]  # resource, externalId, role attributes, auth policy


USERS, WORKLOADS = "ziti-trust-user-policy", "ziti-trust-workload-policy"
EXPECTED = {
    "example": Expected(
        registered=[
            (DYN + "spire:Entry", "spire-entries-entry-payments-api", "spire-entries"),
            (DYN + "ziti:Identity", "ziti-trust-identity-payments-api", "ziti-trust"),
            (DYN + "ziti:Identity", "ziti-trust-user-alice", "ziti-trust"),
            (TLS_KEY, "root-ca-key", "root-ca"),
            (TLS_CERT, "root-ca", "root-ca"),
        ],
        exports={"spireUpstreamCaKeyPem"},
        entry=("spire-entries-entry-payments-api", "spiffe://zt.acme-identity.net/ns/payments/sa/api",
               "spiffe://zt.acme-identity.net/spire/agent/x509pop/worker-1", ["unix:uid:1001"],
               {"transport": "grpc", "socket_path": "/run/user/1000/spire-admin.sock"}),
        keycloak={"url": "https://auth.zt.acme-identity.net", "username": "admin", "password": KC_PASSWORD},
        ziti={"url": "https://ziti.zt.acme-identity.net:1280", "username": "admin", "password": ZT_PASSWORD},
        identities=[
            ("ziti-trust-user-alice", "alice@acme-identity.net", ["operators"], USERS),
            ("ziti-trust-identity-payments-api", "spiffe://zt.acme-identity.net/ns/payments/sa/api", ["payments"],
             WORKLOADS),
        ],
    ),
    "custom": Expected(
        registered=[
            (DYN + "spire:Entry", "spire-entries-entry-ledger", "spire-entries"),
            (DYN + "ziti:Identity", "ziti-trust-identity-ledger", "ziti-trust"),
            (DYN + "ziti:Identity", "ziti-trust-user-bob", "ziti-trust"),
            (DYN + "ziti:EdgeRouter", "ziti-trust-router", "ziti-trust"),
        ],
        exports={"zitiRouterId", "zitiRouterEnrollmentJwt"},
        entry=("spire-entries-entry-ledger", "spiffe://zt.acme-identity.net/ns/payments/sa/ledger", AGENT,
               ["k8s:ns:payments"],
               {"transport": "docker-exec", "docker_host": "ssh://root@10.1.0.5", "container": "spire-server"}),
        keycloak={"url": "https://sso.acme-identity.net:8443", "username": "kc-operator", "password": KC_PASSWORD,
                  "ca_bundle_pem": KC_BUNDLE},
        ziti={"url": "https://ctrl.acme-identity.net:1280", "username": "ziti-operator", "password": ZT_PASSWORD,
              "ca_bundle_pem": ZT_BUNDLE},
        identities=[
            ("ziti-trust-user-bob", "bob.ops@acme-identity.net", ["oncall"], USERS),
            ("ziti-trust-identity-ledger", "spiffe://zt.acme-identity.net/ns/payments/sa/ledger", [], WORKLOADS),
        ],
    ),
}  # fmt: skip


def stack_run(variant: str, preview: bool) -> ProgramRun:
    return program_run("external", preview) if variant == "example" else custom_run(preview)


VARIANTS = [pytest.param((v, p), id=f"{v}-{m}") for v in EXPECTED for p, m in ((True, "preview"), (False, "update"))]


@pytest.fixture(params=VARIANTS)
def both(request: pytest.FixtureRequest) -> tuple[ProgramRun, Expected]:
    """Either stack, in either mode, with what it must build."""
    variant, preview = request.param
    return stack_run(variant, preview), EXPECTED[variant]


@pytest.fixture(params=[True, False], ids=["preview", "update"])
def example(request: pytest.FixtureRequest) -> ProgramRun:
    return stack_run("example", request.param)


@pytest.fixture(params=[True, False], ids=["preview", "update"])
def custom(request: pytest.FixtureRequest) -> ProgramRun:
    return stack_run("custom", request.param)


def parent_name(r: ProgramRun, res: Registered) -> str | None:
    return None if res.parent.endswith("::identity-platform-external") else r.by_urn(res.parent).name


def one(r: ProgramRun, kind: str, name: str) -> Registered:
    return r.get(DYN + kind, name)


def plain_text(value: Any) -> str:
    """`value` as JSON with every secret wrapper replaced by null: what a reader sees in clear."""
    return json.dumps(json.loads(json.dumps(value, default=str), object_hook=lambda d: None if is_secret(d) else d))


CHAIN = [
    ("identity-platform:keycloak:KeycloakIdentity", "keycloak-identity", None),
    ("identity-platform:spire:SpireRegistrations", "spire-entries", None),
    ("identity-platform:ziti:ZitiTrust", "ziti-trust", None),
    (ROOT_CA, "root-ca", None),
    (DYN + "keycloak:Client", "keycloak-identity-ziti-client", "keycloak-identity"),
    (DYN + "keycloak:Realm", "keycloak-identity-realm", "keycloak-identity"),
    (DYN + "ziti:AuthPolicy", USERS, "ziti-trust"),
    (DYN + "ziti:AuthPolicy", WORKLOADS, "ziti-trust"),
    (DYN + "ziti:CertificateAuthority", "ziti-trust-spire-ca", "ziti-trust"),
    (DYN + "ziti:EdgeRouterPolicy", "ziti-trust-all-routers", "ziti-trust"),
    (DYN + "ziti:ExternalJwtSigner", "ziti-trust-keycloak-signer", "ziti-trust"),
    (DYN + "ziti:ServiceEdgeRouterPolicy", "ziti-trust-all-services", "ziti-trust"),
]
CHAIN_EXPORTS = {
    "environment", "platform", "nodes", "spireTrustDomain", "spireBundlePem", "spireEntryIds", "keycloakIssuerUrl",
    "keycloakJwksUrl", "keycloakRealmId", "keycloakZitiClientId", "zitiCaId", "zitiCaFingerprint",
    "zitiExtJwtSignerId", "zitiAuthPolicyId", "zitiIdentityIds", "zitiUserIdentityIds", "keycloakUrl",
    "keycloakAdminUser", "zitiControllerUrl", "zitiAdminUser", "buckets",
}  # fmt: skip
GENERATED_KEY = "-----BEGIN PRIVATE KEY-----\nmock-secret-value-tls-key-root-ca-key\n-----END PRIVATE KEY-----\n"
GENERATED_CERT = mock_cert_pem("root-ca")


class TestTheTrustChainAlone:
    def test_nothing_is_deployed(self, both: tuple[ProgramRun, Expected]) -> None:
        r, _ = both
        kinds = {res.type for res in r.resources}
        assert not {k for k in kinds if k.startswith(("docker:", "digitalocean:", "random:", "pulumi:providers:"))}
        assert r.exports["nodes"].value == [] and r.exports["buckets"].value == {}
        assert r.exports["platform"].value == "external"

    def test_exactly_the_trust_chain(self, both: tuple[ProgramRun, Expected]) -> None:
        r, expected = both
        assert sorted((res.type, res.name, parent_name(r, res)) for res in r.resources) == sorted(
            CHAIN + expected.registered
        )
        assert set(r.exports) == CHAIN_EXPORTS | expected.exports

    def test_one_entry_per_workload_under_the_configured_agent(self, both: tuple[ProgramRun, Expected]) -> None:
        r, expected = both
        name, spiffe_id, parent_id, selectors, transport = expected.entry
        entry = one(r, "spire:Entry", name)
        assert (entry.inputs["spiffe_id"], entry.inputs["parent_id"], entry.inputs["selectors"]) == (
            spiffe_id, parent_id, selectors)  # fmt: skip
        base = {"trust_domain": "zt.acme-identity.net", "project": "identity-platform", "stack": "external"}
        assert unwrap(entry.inputs["connection"]) == {**transport, **base}

    @pytest.mark.parametrize("server", ["keycloak", "ziti"])
    def test_every_object_on_the_configured_server_with_a_secret_password(
        self, both: tuple[ProgramRun, Expected], server: str
    ) -> None:
        r, expected = both
        resources = [res for res in r.resources if res.type.startswith(f"{DYN}{server}:")]
        # keycloak: realm and client; ziti: CA, signer, 2 auth policies, 2 identities, 2 default policies, router?
        assert len(resources) == {"keycloak": 2, "ziti": 8 + ("zitiRouterId" in expected.exports)}[server]
        fields: dict[str, str] = getattr(expected, server)
        for res in resources:
            conn = res.inputs["connection"]
            assert {k: unwrap(conn).get(k) for k in fields} == fields, res.name
            assert is_secret(conn) or is_secret(conn.get("password")), f"{res.name}: the password is not a secret"
        user = "keycloakAdminUser" if server == "keycloak" else "zitiAdminUser"
        url = "keycloakUrl" if server == "keycloak" else "zitiControllerUrl"
        assert (r.exports[url].value, r.exports[user].value) == (fields["url"], fields["username"])

    def test_identities_matched_by_email_and_by_spiffe_id(self, both: tuple[ProgramRun, Expected]) -> None:
        r, expected = both
        for name, external_id, roles, policy in expected.identities:
            identity = one(r, "ziti:Identity", name)
            assert (identity.inputs["external_id"], identity.inputs["role_attributes"]) == (external_id, roles)
            assert one(r, "ziti:AuthPolicy", policy).urn in identity.dependencies, name
            if not r.preview:
                assert identity.inputs["auth_policy_id"] == f"{policy}-id", name

    def test_users_log_in_only_through_the_keycloak_signer(self, both: tuple[ProgramRun, Expected]) -> None:
        r, _ = both
        signer = one(r, "ziti:ExternalJwtSigner", "ziti-trust-keycloak-signer")
        assert (signer.inputs["claims_property"], signer.inputs["use_external_id"]) == ("email", True)
        primary = one(r, "ziti:AuthPolicy", USERS).inputs["primary"]
        assert (primary["cert"]["allowed"], primary["updb"]["allowed"], primary["ext_jwt"]["allowed"]) == (
            False, False, True)  # fmt: skip
        if not r.preview:
            assert primary["ext_jwt"]["allowed_signers"] == ["ziti-trust-keycloak-signer-id"]


class TestTheExampleStack:
    def test_no_edge_router_without_router_name(self, example: ProgramRun) -> None:
        assert example.of_type(DYN + "ziti:EdgeRouter") == []
        assert "zitiRouterId" not in example.exports and "zitiRouterEnrollmentJwt" not in example.exports

    def test_the_generated_root_is_a_tls_ca_under_root_ca(self, example: ProgramRun) -> None:
        cert = example.get(TLS_CERT, "root-ca")
        assert example.by_urn(cert.parent).type == ROOT_CA
        assert cert.inputs["isCaCertificate"] is True
        assert cert.inputs["subject"]["commonName"] == "zt.acme-identity.net root CA"
        ca = one(example, "ziti:CertificateAuthority", "ziti-trust-spire-ca")
        assert is_secret(ca.inputs["ca_key_pem"])
        if not example.preview:
            assert ca.inputs["cert_pem"] == example.exports["spireBundlePem"].value == GENERATED_CERT
            assert unwrap(ca.inputs["ca_key_pem"]) == GENERATED_KEY

    def test_the_generated_key_is_exported_only_as_the_secret_upstream_ca_key(self, example: ProgramRun) -> None:
        assert example.exports["spireUpstreamCaKeyPem"].secret is True
        if example.preview:
            return
        assert example.exports["spireUpstreamCaKeyPem"].value == GENERATED_KEY
        holders = [k for k, e in example.exports.items() if "tls-key-root-ca-key" in json.dumps(e.value, default=str)]
        assert holders == ["spireUpstreamCaKeyPem"]

    def test_the_signer_takes_the_realms_jwks_url_without_an_override(self, example: ProgramRun) -> None:
        signer = one(example, "ziti:ExternalJwtSigner", "ziti-trust-keycloak-signer")
        assert one(example, "keycloak:Realm", "keycloak-identity-realm").urn in signer.dependencies
        if not example.preview:
            assert signer.inputs["jwks_endpoint"] == (
                "https://auth.zt.acme-identity.net/realms/platform/protocol/openid-connect/certs")  # fmt: skip


class TestACustomStack:
    def test_the_router_name_makes_one_router_whose_jwt_is_a_secret_export(self, custom: ProgramRun) -> None:
        (router,) = custom.of_type(DYN + "ziti:EdgeRouter")
        assert router.inputs["name"] == "edge-gw-1"
        jwt = custom.exports["zitiRouterEnrollmentJwt"]
        assert jwt.secret is True and custom.exports["zitiRouterId"].secret is False
        if not custom.preview:
            assert jwt.value == "mock-secret-value-router-jwt-ziti-trust-router"
            assert custom.exports["zitiRouterId"].value == "ziti-trust-router-id"

    def test_a_brought_root_makes_no_tls_resource_and_reaches_ziti_as_is(self, custom: ProgramRun) -> None:
        assert [r for r in custom.resources if r.type.startswith("tls:")] == []
        (root,) = custom.of_type(ROOT_CA)
        assert custom.children(root) == []
        ca = one(custom, "ziti:CertificateAuthority", "ziti-trust-spire-ca")
        assert ca.inputs["cert_pem"] == BROUGHT.cert
        assert custom.exports["spireBundlePem"].value == BROUGHT.cert
        assert is_secret(ca.inputs["ca_key_pem"]) and unwrap(ca.inputs["ca_key_pem"]) == BROUGHT.key
        assert "spireUpstreamCaKeyPem" not in custom.exports

    def test_the_jwks_override_reaches_the_signer(self, custom: ProgramRun) -> None:
        signer = one(custom, "ziti:ExternalJwtSigner", "ziti-trust-keycloak-signer")
        assert signer.inputs["jwks_endpoint"] == JWKS
        if not custom.preview:
            # The realm's own issuer stays the issuer (what Keycloak writes into `iss`).
            assert signer.inputs["issuer"] == "https://sso.acme-identity.net:8443/realms/ops"


class TestSecretsStaySecret:
    def test_no_secret_in_a_plain_input_or_export(self, both: tuple[ProgramRun, Expected]) -> None:
        r, _ = both
        leaks = ("mock-secret-value-", BROUGHT.key.splitlines()[1])
        for res in r.resources:
            text = plain_text(res.inputs)
            assert not any(x in text for x in leaks), f"{res.type} {res.name} has a secret in a plain input"
        for key, export in r.exports.items():
            if not export.secret:
                assert not any(x in plain_text(export.value) for x in leaks), f"plain export {key} carries a secret"
        assert not {"keycloakAdminPassword", "zitiAdminPassword"} & set(r.exports), "the user's passwords are theirs"

    def test_the_secrets_did_reach_the_program(self, both: tuple[ProgramRun, Expected]) -> None:
        """The search above proves nothing if the secrets never reached the resources."""
        texts = [json.dumps(unwrap(res.inputs), default=str) for res in both[0].resources]
        assert any(KC_PASSWORD in t for t in texts) and any(ZT_PASSWORD in t for t in texts)
