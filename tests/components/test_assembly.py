"""The trust chain `components/assembly.py` wires, as `__main__.py` builds it, for every stack
file in preview and update mode: what each provider resource is connected to and waits for."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.components._platform import SECRET, unwrap
from tests.conftest import program_run
from tests.harness.mock_engine import COMPUTED, ProgramRun, Registered, stack_config, swarm_stack_files

DYN = "pulumi-python:dynamic/"
SERVICE = "docker:index/service:Service"
CERT = "tls:index/selfSignedCert:SelfSignedCert"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


@pytest.fixture(params=[(s, p) for s in swarm_stack_files() for p in (True, False)], ids=lambda sp: f"{sp[0]}-{sp[1]}")
def run(request: pytest.FixtureRequest) -> ProgramRun:
    stack, preview = request.param
    return program_run(stack, preview)


def services(r: ProgramRun) -> dict[str, Registered]:
    return {x.inputs["name"]: x for x in r.of_type(SERVICE)}


def dynamic(r: ProgramRun, kind: str) -> list[Registered]:
    return r.of_type(DYN + kind)


def workloads(r: ProgramRun) -> dict[str, Any]:
    import json

    values, _ = stack_config(r.stack)
    return json.loads(values.get("identity-platform:workloads", "{}"))


def trust_domain(r: ProgramRun) -> str:
    return r.exports["spireTrustDomain"].value


class TestEveryProviderResourceWaitsForItsServer:
    @pytest.mark.parametrize(
        ("kind", "service"),
        [
            ("spire:Entry", "spire-server"),
            ("keycloak:Realm", "keycloak"),
            ("keycloak:Client", "keycloak"),
            ("ziti:CertificateAuthority", "ziti-controller"),
            ("ziti:ExternalJwtSigner", "ziti-controller"),
            ("ziti:AuthPolicy", "ziti-controller"),
            ("ziti:Identity", "ziti-controller"),
            ("ziti:EdgeRouter", "ziti-controller"),
            ("ziti:EdgeRouterPolicy", "ziti-controller"),
            ("ziti:ServiceEdgeRouterPolicy", "ziti-controller"),
        ],
    )
    def test_depends_on_the_service(self, run: ProgramRun, kind: str, service: str) -> None:
        resources = dynamic(run, kind)
        assert resources, f"no {kind} registered"
        svc = services(run)[service]
        for res in resources:
            assert svc.urn in res.dependencies, f"{res.name} does not wait for {service}"

    @pytest.mark.parametrize(
        ("kind", "expected"),
        [
            ("spire:Entry", {"spire-server"}),
            (
                "ziti:Identity",
                {"ziti-controller", "ziti-trust-spire-ca", "ziti-trust-workload-policy", "ziti-admin-password",
                 "ziti-pki-root"},
            ),
        ],
    )
    def test_per_workload_resources_wait_for_the_service_not_the_stack(
        self, run: ProgramRun, kind: str, expected: set[str]
    ) -> None:
        """depends_on a stack component would make the SDK expand its child tree for every workload
        (seconds at 1,000 workloads): each waits for the one service it talks to, plus its inputs."""
        for res in dynamic(run, kind):
            if kind == "ziti:Identity" and "-user-" in res.name:
                continue  # users: under the Keycloak signer's policy
            names = {urn.rsplit("::", 1)[1] for urn in res.dependencies}
            assert names == expected, res.name

    def test_router_service_waits_for_the_edge_router_resource(self, run: ProgramRun) -> None:
        (edge_router,) = dynamic(run, "ziti:EdgeRouter")
        jwt_secret = run.get(SECRET, "ziti-router-jwt")
        assert edge_router.urn in jwt_secret.dependencies
        router = services(run)["ziti-router"]
        assert jwt_secret.urn in router.dependencies
        assert services(run)["ziti-controller"].urn in router.dependencies


class TestConnectionsComeFromTheStacks:
    def test_every_connection_with_credentials_is_secret(self, run: ProgramRun) -> None:
        """Keycloak and Ziti connections carry admin passwords; SPIRE's (docker exec) carries none."""
        for res in run.resources:
            if res.type.startswith((DYN + "keycloak:", DYN + "ziti:")):
                assert is_secret(res.inputs["connection"]) or (
                    is_secret(unwrap_plain(res.inputs["connection"]).get("password"))
                ), f"{res.name}: the connection (with its credentials) must be a Pulumi secret"

    def test_ziti_is_verified_against_the_controller_pki_root(self, run: ProgramRun) -> None:
        root = run.get(CERT, "ziti-pki-root")
        for res in run.resources:
            if res.type.startswith(DYN + "ziti:"):
                assert root.urn in res.dependencies, res.name
                if run.preview:
                    continue  # PEMs and passwords are unknown until the tls/random resources exist
                conn = unwrap(res.inputs["connection"])
                assert conn["url"] == run.exports["zitiControllerUrl"].value
                assert conn["ca_bundle_pem"] == root_cert_pem(run, root), res.name
                assert conn["password"] == run.exports["zitiAdminPassword"].value

    def test_keycloak_resources_use_the_stack_url_and_admin(self, run: ProgramRun) -> None:
        for res in dynamic(run, "keycloak:Realm") + dynamic(run, "keycloak:Client"):
            conn = unwrap(res.inputs["connection"])
            assert conn["url"] == run.exports["keycloakUrl"].value
            assert conn["username"] == run.exports["keycloakAdminUser"].value

    def test_spire_entries_exec_into_the_server(self, run: ProgramRun) -> None:
        for res in dynamic(run, "spire:Entry"):
            conn = unwrap(res.inputs["connection"])
            assert conn["transport"] == "docker-exec"
            assert conn["service"] == "spire-server"
            assert conn["trust_domain"] == trust_domain(run)


class TestTheTrustChain:
    def test_spire_root_is_the_verified_ziti_ca(self, run: ProgramRun) -> None:
        (ca,) = dynamic(run, "ziti:CertificateAuthority")
        assert ca.inputs["is_auth_enabled"] is True
        assert ca.inputs["external_id_claim"]["location"] == "SAN_URI"
        assert ca.inputs["external_id_claim"]["matcher"] == "SCHEME"
        assert ca.inputs["external_id_claim"]["matcher_criteria"] == "spiffe"
        assert is_secret(ca.inputs["ca_key_pem"]), "the root CA key stays a secret"
        spire_root = run.get(CERT, "spire-root-ca")
        assert spire_root.urn in ca.dependencies
        if not run.preview:
            assert ca.inputs["cert_pem"] == run.exports["spireBundlePem"].value

    def test_each_workload_has_an_entry_and_an_identity_with_the_same_spiffe_id(self, run: ProgramRun) -> None:
        td = trust_domain(run)
        entries = {e.name.rsplit("-entry-", 1)[1]: e for e in dynamic(run, "spire:Entry")}
        identities = {i.name.rsplit("-identity-", 1)[1]: i for i in dynamic(run, "ziti:Identity")}
        expected = workloads(run)
        assert set(entries) == set(identities) == set(expected)
        for wname, spec in expected.items():
            spiffe_id = f"spiffe://{td}{spec['spiffePath']}"
            assert entries[wname].inputs["spiffe_id"] == spiffe_id
            assert entries[wname].inputs["parent_id"] == f"spiffe://{td}/spire/agent/x509pop/{spec['node']}"
            assert identities[wname].inputs["external_id"] == spiffe_id
            assert set(identities[wname].inputs["role_attributes"]) == set(spec.get("zitiRoleAttributes", []))

    def test_keycloak_realm_feeds_the_ext_jwt_signer(self, run: ProgramRun) -> None:
        (signer,) = dynamic(run, "ziti:ExternalJwtSigner")
        (realm,) = dynamic(run, "keycloak:Realm")
        (client,) = dynamic(run, "keycloak:Client")
        assert realm.urn in signer.dependencies and client.urn in signer.dependencies
        assert signer.inputs["audience"] == client.inputs["audience"] == client.inputs["client_id"]
        assert signer.inputs["jwks_endpoint"] == "http://keycloak:8080/realms/platform/protocol/openid-connect/certs"
        if not run.preview:
            assert signer.inputs["issuer"] == run.exports["keycloakIssuerUrl"].value
            assert signer.inputs["issuer"] == f"{run.exports['keycloakUrl'].value}/realms/platform"

    def test_users_policy_admits_only_the_keycloak_signer(self, run: ProgramRun) -> None:
        (signer,) = dynamic(run, "ziti:ExternalJwtSigner")
        users = run.get(DYN + "ziti:AuthPolicy", "ziti-trust-user-policy")
        assert signer.urn in users.dependencies
        primary = users.inputs["primary"]
        assert primary["ext_jwt"]["allowed"] is True
        assert primary["updb"]["allowed"] is False and primary["cert"]["allowed"] is False


def unwrap_plain(value: Any) -> dict[str, Any]:
    out = unwrap(value)
    return out if isinstance(out, dict) else {}


def root_cert_pem(run: ProgramRun, cert: Registered) -> str:
    """The certPem the mock engine answered for this SelfSignedCert (what the program passes on)."""
    args = SimpleNamespace(typ=cert.type, name=cert.name, inputs=cert.inputs)
    return str(COMPUTED[CERT](args)["certPem"])  # type: ignore[arg-type]


class TestProdDataIsProtected:
    """`pulumi destroy` (and a replacement) must not take prod's root CA key or its backups."""

    @pytest.mark.parametrize("preview", [True, False])
    def test_root_key_and_buckets_protected_in_prod_only(self, preview: bool) -> None:
        prod, dev = program_run("prod", preview), program_run("dev", preview)
        key = "tls:index/privateKey:PrivateKey"
        bucket = "digitalocean:index/spacesBucket:SpacesBucket"
        assert [r.name for r in prod.of_type(key) if r.protect] == ["spire-root-ca-key"]
        assert sorted(r.name for r in prod.of_type(bucket) if r.protect) == [
            "bucket-keycloak-bucket", "bucket-spire-bucket", "bucket-ziti-bucket"]
        assert not any(r.protect for r in dev.resources)
