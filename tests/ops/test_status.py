"""`python -m ops status`: scoring, the table and the JSON document, exit codes, and every check
against loopback fakes — the Ziti controller (tests/fakes/ziti.py), Keycloak
(tests/fakes/keycloak.py), the SPIRE Entry API (tests/fakes/spire_server.py), a TLS listener
serving a certificate made here, and a fake Docker Engine API serving `/version`, `/services` and
`/tasks` in the shapes of the Engine API reference (docs.docker.com, API 1.47).

A healthy world first (every row ok, score 100), then one thing broken at a time: the row that
names it fails (or warns) and no other row moves.
"""

from __future__ import annotations

import datetime
import io
import json
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

import ops.health
import stack_config
from dynamic_providers.spire.models import entry_id_for, owner_prefix
from ops.cli import main
from ops.errors import ExitCode, OpsError
from ops.health import Options, Target, collect
from ops.health.checks import PROBES, Context, certificate_rows, expiry, keycloak_health, swarm_rows
from ops.health.inputs import from_deployment, raw_from_cli_config, short_name
from ops.health.model import Check, StatusReport
from ops.health.swarm import fetch
from ops.outputs import StackOutputs
from tests.fakes import ziti as ziti_fake
from tests.fakes.keycloak import KeycloakFake
from tests.fakes.spire_server import FakeSpireServer, entry
from tests.harness.loopback import App, LoopbackServer, Request, Response

Loopback = Callable[..., LoopbackServer]
TD = "example.org"
AGENT = f"spiffe://{TD}/spire/agent/x509pop/local"
STACK = "status-test"
PROJECT = "identity-platform"
NOW = datetime.datetime.now(datetime.UTC)


def make_ca(common_name: str, *, not_before: datetime.datetime, not_after: datetime.datetime) -> tuple[str, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


def make_leaf(ca_key: Any, ca_pem: str, *, not_after: datetime.datetime) -> tuple[bytes, bytes]:
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_after - datetime.timedelta(days=400)).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


ROOT_PEM, _ = make_ca("status root CA", not_before=NOW - datetime.timedelta(days=1),
                      not_after=NOW + datetime.timedelta(days=3650))


# --- the world: three fakes holding exactly what the stack made ---------------------------------


@dataclass
class World:
    spire: FakeSpireServer
    kc: KeycloakFake
    kc_health: App
    kc_health_srv: LoopbackServer
    zt: ziti_fake.ZitiController
    zt_srv: LoopbackServer
    ids: dict[str, str]
    target: Target
    health_status: dict[str, Any]

    def options(self, **kw: Any) -> Options:
        # The loopback servers' certificates live one day: no expiry warning for them unless asked.
        return Options(**{"timeout": 5.0, "keycloak_health_url": f"{self.kc_health_srv.url}/health/ready",
                          "expiry_warning_days": 0, **kw})

    def run(self, **kw: Any) -> StatusReport:
        return collect(self.target, self.options(**kw))


def _outputs(platform: str, **values: Any) -> StackOutputs:
    base: dict[str, Any] = {
        "environment": "dev", "platform": platform, "nodes": [] if platform == "external" else ["local"],
        "spireTrustDomain": TD, "spireBundlePem": ROOT_PEM,
        "keycloakUrl": "https://localhost:1", "keycloakIssuerUrl": "https://localhost:1/realms/platform",
        "keycloakJwksUrl": "https://localhost:1/realms/platform/protocol/openid-connect/certs",
        "keycloakAdminUser": "admin", "keycloakRealmId": "r", "keycloakZitiClientId": "c",
        "zitiControllerUrl": "https://localhost:2", "zitiAdminUser": "admin", "zitiCaId": "ca",
        "zitiCaFingerprint": "fp", "zitiExtJwtSignerId": "s", "zitiAuthPolicyId": "p",
        "zitiIdentityIds": {}, "zitiUserIdentityIds": {}, "spireEntryIds": {}, "buckets": {},
    }
    if platform == "swarm":
        base.update(keycloakAdminPassword="kc-admin-secret", zitiAdminPassword="zt-admin-secret",
                    zitiConsoleUrl="https://localhost:2/zac/", zitiRouterId="router")
    base.update(values)
    return StackOutputs.from_mapping(base)


def _external_config(spire: FakeSpireServer, kc: KeycloakFake, zt_url: str, zt_ca: str) -> stack_config.StackConfig:
    return stack_config.parse({
        "environment": "dev", "platform": "external", "strict": False,
        "spire": {"trustDomain": TD, "transport": {"kind": "grpc", "socketPath": spire.socket_path},
                  "agents": {"local": AGENT}},
        "keycloak": {"url": kc.url, "adminUser": "admin", "caBundle": kc.server.ca_pem if kc.server else None},
        "ziti": {"controllerUrl": zt_url, "adminUser": "admin", "caBundle": zt_ca},
        "workloads": {"api": {"spiffePath": "/api", "node": "local", "selectors": ["unix:uid:1000"]}},
        "users": {"alice": {"email": "alice@acme-identity.net"}},
    })


@pytest.fixture
def world(loopback: Loopback) -> Iterator[World]:
    spire = FakeSpireServer(trust_domain=TD).start()
    prefix = owner_prefix(PROJECT, STACK)
    entry_id = entry_id_for(prefix, f"spiffe://{TD}/api", AGENT, ["unix:uid:1000"])
    spire.seed(entry(f"spiffe://{TD}/api", AGENT, ["unix:uid:1000"], entry_id=entry_id))
    spire.seed(entry(f"spiffe://{TD}/other", AGENT, ["unix:uid:1"], entry_id="someone-elses"))

    kc = KeycloakFake()
    kc.serve(loopback)
    realm = kc.seed_realm("platform")
    client_uuid = kc.seed_client("platform", {"clientId": "openziti", "publicClient": True})

    @kc.app.route("GET", "/realms/{realm}/protocol/openid-connect/certs")
    def certs(req: Request) -> Response:
        return Response(200, {"keys": [{"kid": "k1", "kty": "RSA", "alg": "RS256", "use": "sig"}]})

    health_status: dict[str, Any] = {"code": 200, "status": "UP"}
    kc_health = App()

    @kc_health.route("GET", "/health/ready")
    def ready(req: Request) -> Response:
        return Response(health_status["code"], {"status": health_status["status"], "checks": [
            {"name": "Keycloak database connections health check", "status": health_status["status"]}]})

    kc_health_srv = loopback(kc_health, tls=False)

    zt, zt_srv = ziti_fake.start(loopback)
    ca_id = zt.put_entity("cas", {"name": f"{STACK}-ziti-trust-spire", "isVerified": True, "isAuthEnabled": True,
                                  "fingerprint": "f00d", "certPem": ROOT_PEM})
    issuer = f"{kc.url}/realms/platform"
    signer_id = zt.put_entity("external-jwt-signers", {"name": f"{STACK}-keycloak", "enabled": True,
                                                       "issuer": issuer})
    policy_id = zt.put_entity("auth-policies", {"name": f"{STACK}-spiffe-workloads"})
    api_id = zt.put_entity("identities", {"name": f"{STACK}-api", "type": "Default", "authPolicyId": policy_id})
    alice_id = zt.put_entity("identities", {"name": f"{STACK}-alice", "type": "Default", "authPolicyId": policy_id})
    assert zt.tls_ca_pem is not None

    outputs = _outputs(
        "external", keycloakUrl=kc.url, keycloakIssuerUrl=issuer,
        keycloakJwksUrl=f"{issuer}/protocol/openid-connect/certs", keycloakRealmId=realm["id"],
        keycloakZitiClientId=client_uuid, zitiControllerUrl=zt_srv.url, zitiCaId=ca_id, zitiCaFingerprint="f00d",
        zitiExtJwtSignerId=signer_id, zitiAuthPolicyId=policy_id, zitiIdentityIds={"api": api_id},
        zitiUserIdentityIds={"alice": alice_id}, spireEntryIds={"api": entry_id},
    )
    target = Target(stack=STACK, project=PROJECT, config=_external_config(spire, kc, zt_srv.url, zt.tls_ca_pem),
                    outputs=outputs, keycloak_admin_password=SecretStr("admin-password"),
                    ziti_admin_password=SecretStr(zt.password), ziti_ca_pem=zt.tls_ca_pem)
    ids = {"entry": entry_id, "ca": ca_id, "signer": signer_id, "policy": policy_id, "api": api_id,
           "alice": alice_id, "client": client_uuid}
    yield World(spire, kc, kc_health, kc_health_srv, zt, zt_srv, ids, target, health_status)
    spire.stop()


def rows(report: StatusReport) -> dict[tuple[str, str], Check]:
    return {(c.component, c.check): c for c in report.checks}


def not_ok(report: StatusReport) -> dict[tuple[str, str], str]:
    return {k: f"{c.status}: {c.detail}" for k, c in rows(report).items() if c.status != "ok"}


EXTERNAL_ROWS = {
    ("spire", "server ready"), ("spire", "entries"),
    ("keycloak", "health"), ("keycloak", "issuer"), ("keycloak", "jwks"), ("keycloak", "realm"),
    ("ziti", "health"), ("ziti", "ca"), ("ziti", "ext-jwt signer"), ("ziti", "auth policy"), ("ziti", "identities"),
    ("certificates", "root CA"), ("certificates", "controller TLS"),
}


# --- scoring and rendering -------------------------------------------------------------------------


def _report(*statuses: tuple[str, str]) -> StatusReport:
    checks = tuple(Check(component, f"check {i}", status, f"detail {i}")  # type: ignore[arg-type]
                   for i, (component, status) in enumerate(statuses))
    return StatusReport("s", "external", checks, datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))


def test_score_is_the_mean_of_component_means_rounded_down() -> None:
    assert _report(("spire", "ok"), ("ziti", "ok")).score == 100
    # spire 1/2 (one fail of two), ziti 1: (0.5 + 1) / 2
    assert _report(("spire", "ok"), ("spire", "fail"), ("ziti", "ok")).score == 75
    # each component weighs the same however many rows it has: ziti's ten rows count as one spire row
    assert _report(("spire", "fail"), *[("ziti", "ok")] * 10).score == 50
    # a warn is worth half; 100 only when every row is ok (99.9... rounds down)
    assert _report(("spire", "warn"), ("ziti", "ok")).score == 75
    assert _report(*[("ziti", "ok")] * 199, ("ziti", "warn")).score == 99
    assert _report(("spire", "fail"), ("ziti", "fail")).score == 0
    assert _report().score == 0
    r = _report(("spire", "ok"), ("spire", "warn"), ("ziti", "fail"))
    assert r.component_scores() == {"spire": 75, "ziti": 0} and r.status == "fail"
    assert r.counts() == {"ok": 1, "warn": 1, "fail": 1}


def test_unhealthy_means_a_failure_or_with_strict_a_warning() -> None:
    assert not _report(("spire", "ok")).unhealthy() and not _report(("spire", "ok")).unhealthy(strict=True)
    assert not _report(("spire", "warn")).unhealthy() and _report(("spire", "warn")).unhealthy(strict=True)
    assert _report(("spire", "fail")).unhealthy()


def test_json_document_shape_is_stable() -> None:
    r = _report(("ziti", "ok"), ("spire", "warn"), ("custom", "fail"))
    doc = r.as_json()
    assert list(doc) == ["schemaVersion", "platform", "checkedAt", "status", "healthy", "score", "counts",
                         "components", "checks"]
    assert doc["schemaVersion"] == 1 and doc["checkedAt"] == "2026-01-02T03:04:05Z"
    assert doc["status"] == "fail" and doc["healthy"] is False and doc["score"] == 50
    assert doc["components"] == {"spire": {"status": "warn", "score": 50}, "ziti": {"status": "ok", "score": 100},
                                 "custom": {"status": "fail", "score": 0}}
    # rows grouped by component in the fixed order; each row has exactly these keys
    assert [c["component"] for c in doc["checks"]] == ["spire", "ziti", "custom"]
    assert all(list(c) == ["component", "check", "status", "detail", "target"] for c in doc["checks"])
    json.dumps(doc)


def test_table_has_a_header_a_line_per_row_and_a_summary() -> None:
    r = StatusReport("prod", "swarm", (
        Check("ziti", "ca", "ok", "CA verified", "https://ziti:1280"),
        Check("spire", "entries", "fail", "missing: api", "unix:/s.sock"),
        Check("spire", "server ready", "warn", "slow"),
    ), datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC))
    lines = r.render_table().splitlines()
    assert lines[0] == "stack prod (platform swarm) at 2026-01-02 00:00:00 UTC"
    assert lines[2].split() == ["COMPONENT", "CHECK", "STATUS", "DETAIL"]
    assert lines[3].split()[:4] == ["spire", "entries", "FAIL", "missing:"] and lines[3].endswith("[unix:/s.sock]")
    assert lines[4].split()[:4] == ["spire", "server", "ready", "WARN"]
    assert lines[5].split()[:3] == ["ziti", "ca", "ok"]
    # the columns line up
    assert len({line.index(word) for line, word in zip(lines[3:6], ["FAIL", "WARN", "ok"], strict=True)}) == 1
    assert lines[-1] == "score 62/100, unhealthy: 1 ok, 1 warn, 1 fail"


def test_a_secret_value_is_scrubbed_from_every_detail_and_target() -> None:
    r = StatusReport("s", "external", (Check("ziti", "ca", "fail", "login as admin/hunter22 refused",
                                             "https://admin:hunter22@ziti"),))
    clean = r.redacted(["hunter22", "", "x"])
    assert clean.checks[0].detail == "login as admin/[secret] refused"
    assert clean.checks[0].target == "https://admin:[secret]@ziti"


# --- the healthy world, through collect() and the CLI ----------------------------------------------


def test_every_row_is_ok_against_a_healthy_world(world: World) -> None:
    report = world.run()
    assert not_ok(report) == {}
    assert set(rows(report)) == EXTERNAL_ROWS
    assert report.score == 100 and report.status == "ok" and not report.unhealthy()
    r = rows(report)
    assert r[("spire", "entries")].detail.startswith(
        f"entries owned by this stack (pulumi.{PROJECT}.{STACK}.*): 1; in spireEntryIds: 1")
    assert r[("spire", "server ready")].detail == "Entry API answers; entries on the server: 2"
    assert r[("spire", "server ready")].target == f"unix:{world.spire.socket_path}"
    assert r[("ziti", "identities")].detail == "identities present: all 2 (workloads: 1, users: 1)"
    assert r[("ziti", "health")].detail.startswith("management API answers")  # the fake binds no health-checks API
    assert r[("keycloak", "issuer")].target == f"{world.kc.url}/realms/platform/.well-known/openid-configuration"


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _load_as(monkeypatch: pytest.MonkeyPatch, target: Target | Exception, seen: list[Any] | None = None) -> None:
    def load(stack: str, **kw: Any) -> Target:
        if seen is not None:
            seen.append((stack, kw))
        if isinstance(target, Exception):
            raise target
        return target

    monkeypatch.setattr(ops.health, "load_target", load)


def test_cli_json_exit_0_when_healthy_and_9_when_a_row_fails(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    _load_as(monkeypatch, world.target, seen)
    health = ["--keycloak-health-url", f"{world.kc_health_srv.url}/health/ready", "--expiry-warning-days", "0"]
    code, out, _ = _cli(["status", "--stack", "dev", "--json", *health])
    doc = json.loads(out)
    assert code == ExitCode.OK == doc["exitCode"] and doc["ok"] is True
    assert doc["command"] == "status" and doc["stack"] == "dev" and doc["score"] == 100
    assert seen[0][0] == "dev"

    world.zt.entities["cas"][world.ids["ca"]]["isVerified"] = False
    code, out, _ = _cli(["status", "--stack", "dev", "--json", *health])
    doc = json.loads(out)
    assert code == ExitCode.UNHEALTHY == doc["exitCode"] == 9 and doc["ok"] is False and doc["healthy"] is False
    assert [(c["component"], c["check"]) for c in doc["checks"] if c["status"] != "ok"] == [("ziti", "ca")]

    code, out, _ = _cli(["status", "--stack", "dev", *health])
    assert code == 9 and "ziti          ca" in out and "FAIL" in out and out.rstrip().endswith("12 ok, 0 warn, 1 fail")


def test_cli_warnings_exit_0_unless_strict(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _load_as(monkeypatch, world.target)
    world.zt.put_entity("edge-routers", {"id": "r1", "name": "router", "isOnline": False, "isVerified": False})
    monkeypatch.setattr(world, "target", replace(world.target, outputs=world.target.outputs.model_copy(
        update={"ziti_router_id": "r1"})))
    _load_as(monkeypatch, world.target)
    health = ["--keycloak-health-url", f"{world.kc_health_srv.url}/health/ready", "--expiry-warning-days", "0"]
    code, out, _ = _cli(["status", "--stack", "dev", "--json", *health])
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "warn" and doc["healthy"] is True
    router = next(c for c in doc["checks"] if c["check"] == "edge router")
    assert router["status"] == "warn" and "not enrolled yet" in router["detail"]
    code, out, _ = _cli(["status", "--stack", "dev", "--json", "--strict", *health])
    assert code == 9 and json.loads(out)["healthy"] is False


def test_cli_a_stack_that_cannot_be_read_exits_with_its_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    _load_as(monkeypatch, OpsError(ExitCode.STACK_NOT_FOUND, "stack 'x' does not exist in file:///s", "deploy it"))
    code, out, _ = _cli(["status", "--stack", "x", "--json"])
    doc = json.loads(out)
    assert code == 4 and doc == {"command": "status", "stack": "x", "ok": False, "exitCode": 4, "error": {
        "kind": "stack_not_found", "message": "stack 'x' does not exist in file:///s", "hint": "deploy it"}}
    code, out, err = _cli(["status", "--stack", "x"])
    assert code == 4 and out == "" and "error: stack 'x' does not exist" in err
    code, _, err = _cli(["status"])
    assert code == ExitCode.USAGE and "--stack" in err


def test_status_help_documents_the_exit_codes() -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit):
        import contextlib

        with contextlib.redirect_stdout(out):
            main(["status", "--help"])
    assert "  9    a health check failed (--strict: or warned)" in out.getvalue()
    assert "--keycloak-health-url" in out.getvalue()


def test_no_secret_is_ever_printed(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when a server echoes a credential back in an error, neither output carries it."""
    password = world.zt.password
    world.zt_srv.inject("GET", f"{ziti_fake.API}/cas/{{id}}", status=500, body={"error": {
        "code": "UNHANDLED", "message": f"boom for password {password}"}}, times=10)
    target = replace(world.target, keycloak_admin_password=SecretStr("kc-" + password))
    _load_as(monkeypatch, target)
    health = ["--keycloak-health-url", f"{world.kc_health_srv.url}/health/ready", "--expiry-warning-days", "0"]
    for argv in (["--json"], []):
        code, out, err = _cli(["status", "--stack", "dev", *argv, *health])
        assert code == 9
        assert password not in out + err and "[secret]" in out


# --- each check's failure modes ---------------------------------------------------------------------


def test_spire_entry_deleted_fails_entries_only(world: World) -> None:
    del world.spire.entries[world.ids["entry"]]
    report = world.run()
    assert set(not_ok(report)) == {("spire", "entries")}
    row = rows(report)[("spire", "entries")]
    assert row.status == "fail" and "owned by this stack (pulumi.identity-platform.status-test.*): 0;" in row.detail
    assert "missing on the server: api" in row.detail
    # A plain `up` sees no change (the state still has the entry): only a refresh makes it again.
    assert f"`python -m ops up --stack {STACK} --refresh` makes them again" in row.detail


def test_spire_owned_entries_the_stack_does_not_know_warn(world: World) -> None:
    stray = owner_prefix(PROJECT, STACK) + "0123456789abcdef01234567"
    world.spire.seed(entry(f"spiffe://{TD}/stray", AGENT, ["unix:uid:7"], entry_id=stray))
    row = rows(world.run())[("spire", "entries")]
    assert row.status == "warn" and stray in row.detail and "status-test.*): 2;" in row.detail


def test_spire_server_down_fails_both_rows_and_nothing_else(world: World) -> None:
    world.spire.stop()
    report = world.run(timeout=2.0)
    assert set(not_ok(report)) == {("spire", "server ready"), ("spire", "entries")}
    assert "the Entry API did not answer" in rows(report)[("spire", "server ready")].detail


def test_ziti_controller_down_claims_no_wait(world: World) -> None:
    """The checks wait for nothing (ready_timeout 0): "not reachable within 0s" would be nonsense."""
    world.zt_srv.stop()
    report = world.run(timeout=2.0)
    details = [c.detail for c in report.checks if c.component == "ziti"]
    assert details and all("within 0s" not in d for d in details)
    assert any("cannot log in" in d for d in details)


def test_wrong_issuer_fails_the_issuer_row(world: World) -> None:
    world.kc.frontend_url = "https://auth.elsewhere.example"
    report = world.run()
    assert set(not_ok(report)) == {("keycloak", "issuer")}
    detail = rows(report)[("keycloak", "issuer")].detail
    assert "'https://auth.elsewhere.example/realms/platform'" in detail and world.target.outputs.keycloak_issuer_url \
        in detail


def test_keycloak_health_down_fails_and_not_exposed_warns(world: World) -> None:
    world.health_status.update(code=503, status="DOWN")
    row = rows(world.run())[("keycloak", "health")]
    assert row.status == "fail" and "HTTP 503 DOWN" in row.detail and "database connections" in row.detail
    # Without --keycloak-health-url: the public URL answers 404, port 9000 of its host refuses.
    report = world.run(keycloak_health_url=None)
    row = rows(report)[("keycloak", "health")]
    assert row.status == "warn" and "not exposed" in row.detail and "--keycloak-health-url" in row.detail
    assert f"{world.kc.url}/health/ready (HTTP 404)" in row.detail and "localhost:9000/health/ready" in row.detail
    assert set(not_ok(report)) == {("keycloak", "health")} and report.score == 96 and not report.unhealthy()


def test_keycloak_health_on_the_public_url_is_used_when_exposed(world: World) -> None:
    @world.kc.app.route("GET", "/health/ready")
    def ready(req: Request) -> Response:
        return Response(200, {"status": "UP", "checks": []})

    row = rows(world.run(keycloak_health_url=None))[("keycloak", "health")]
    assert row.status == "ok" and row.target == f"{world.kc.url}/health/ready"


def test_keycloak_realm_and_client_made_again_or_gone_fail_the_realm_row(world: World) -> None:
    with world.kc.lock:
        del world.kc.realms["platform"].clients[world.ids["client"]]
    row = rows(world.run())[("keycloak", "realm")]
    assert row.status == "fail" and f"the Ziti client {world.ids['client']} is gone" in row.detail
    with world.kc.lock:
        del world.kc.realms["platform"]
    report = world.run()
    assert rows(report)[("keycloak", "realm")].detail == "realm platform does not exist"
    assert rows(report)[("keycloak", "issuer")].status == "fail"  # discovery: 404 for a realm that is gone


def test_jwks_without_keys_fails(world: World) -> None:
    world.kc.app.routes[:] = [r for r in world.kc.app.routes if not r.pattern.endswith("/certs")]

    @world.kc.app.route("GET", "/realms/{realm}/protocol/openid-connect/certs")
    def certs(req: Request) -> Response:
        return Response(200, {"keys": []})

    row = rows(world.run())[("keycloak", "jwks")]
    assert row.status == "fail" and "no keys published" in row.detail


def test_unverified_ca_fails_the_ca_row(world: World) -> None:
    world.zt.entities["cas"][world.ids["ca"]].update(isVerified=False)
    report = world.run()
    assert set(not_ok(report)) == {("ziti", "ca")}
    assert "not verified" in rows(report)[("ziti", "ca")].detail
    world.zt.entities["cas"][world.ids["ca"]].update(isVerified=True, isAuthEnabled=False, fingerprint="beef")
    detail = rows(world.run())[("ziti", "ca")].detail
    assert "authentication disabled" in detail and "fingerprint beef is not the stack's f00d" in detail
    del world.zt.entities["cas"][world.ids["ca"]]
    assert "not on the controller" in rows(world.run())[("ziti", "ca")].detail


def test_disabled_or_foreign_signer_fails_the_signer_row(world: World) -> None:
    world.zt.entities["external-jwt-signers"][world.ids["signer"]].update(enabled=False)
    report = world.run()
    assert set(not_ok(report)) == {("ziti", "ext-jwt signer")}
    assert "disabled" in rows(report)[("ziti", "ext-jwt signer")].detail
    world.zt.entities["external-jwt-signers"][world.ids["signer"]].update(enabled=True, issuer="https://other")
    assert "issuer 'https://other' is not Keycloak's" in rows(world.run())[("ziti", "ext-jwt signer")].detail


def test_missing_identity_fails_the_identities_row(world: World) -> None:
    del world.zt.entities["identities"][world.ids["alice"]]
    report = world.run()
    assert set(not_ok(report)) == {("ziti", "identities")}
    assert rows(report)[("ziti", "identities")].detail == "identities present: 1/2; missing: user alice"


def test_missing_auth_policy_and_wrong_password(world: World) -> None:
    for ident in (world.ids["api"], world.ids["alice"]):
        world.zt.entities["identities"][ident]["authPolicyId"] = "default"
    del world.zt.entities["auth-policies"][world.ids["policy"]]
    assert rows(world.run())[("ziti", "auth policy")].status == "fail"
    world.target = replace(world.target, ziti_admin_password=SecretStr("wrong"))
    report = world.run()
    for name in ("ca", "ext-jwt signer", "auth policy", "identities"):
        row = rows(report)[("ziti", name)]
        assert row.status == "fail" and "cannot log in" in row.detail
    assert rows(report)[("ziti", "health")].status == "ok"


def test_ziti_health_checks_api_when_bound(world: World) -> None:
    state = {"healthy": True}

    @world.zt.app.route("GET", "/health-checks")
    def health(req: Request) -> Response:
        return Response(200, {"data": {"healthy": state["healthy"], "checks": [
            {"id": "bolt.read", "healthy": state["healthy"], "lastCheckDuration": "0s"}]}, "meta": {}})

    row = rows(world.run())[("ziti", "health")]
    assert row.status == "ok" and row.detail == "healthy, checks: 1"
    assert row.target == f"{world.zt_srv.url}/health-checks"
    state["healthy"] = False
    row = rows(world.run())[("ziti", "health")]
    assert row.status == "fail" and "bolt.read" in row.detail


def test_controller_tls_untrusted_fails_health_and_management(world: World) -> None:
    other, _ = make_ca("not the controller's CA", not_before=NOW - datetime.timedelta(days=1),
                       not_after=NOW + datetime.timedelta(days=10))
    world.target = replace(world.target, ziti_ca_pem=other)
    report = world.run()
    assert rows(report)[("ziti", "health")].status == "fail"
    assert "TLS verification failed" in rows(report)[("ziti", "health")].detail
    assert rows(report)[("ziti", "ca")].status == "fail"
    assert rows(report)[("certificates", "controller TLS")].status == "ok"  # its dates are still readable


def test_expired_and_expiring_root_ca(world: World) -> None:
    expired, _ = make_ca("old root", not_before=NOW - datetime.timedelta(days=400),
                         not_after=NOW - datetime.timedelta(days=1))
    world.target = replace(world.target, outputs=world.target.outputs.model_copy(update={"spire_bundle_pem": expired}))
    row = rows(world.run(expiry_warning_days=30))[("certificates", "root CA")]
    assert row.status == "fail" and "CN=old root expired on" in row.detail
    soon, _ = make_ca("soon root", not_before=NOW - datetime.timedelta(days=1),
                      not_after=NOW + datetime.timedelta(days=10, hours=1))
    world.target = replace(world.target, outputs=world.target.outputs.model_copy(update={"spire_bundle_pem": soon}))
    row = rows(world.run(expiry_warning_days=30))[("certificates", "root CA")]
    assert row.status == "warn" and "expires in 10 days" in row.detail
    assert rows(world.run(expiry_warning_days=5))[("certificates", "root CA")].status == "ok"


def test_expiry_rules() -> None:
    def cert(before: datetime.timedelta, after: datetime.timedelta) -> x509.Certificate:
        return x509.load_pem_x509_certificate(make_ca("c", not_before=NOW + before, not_after=NOW + after)[0].encode())

    day = datetime.timedelta(days=1)
    assert expiry([cert(-day, 100 * day)], 30, NOW)[0] == "ok"
    assert expiry([cert(-day, 29 * day)], 30, NOW)[0] == "warn"
    assert expiry([cert(-2 * day, -day)], 30, NOW)[0] == "fail"
    start = NOW + day
    assert expiry([cert(day, 100 * day)], 30, NOW) == ("fail", f"CN=c is not valid before {start:%Y-%m-%d %H:%M} UTC")
    # a bundle is as good as its first certificate to expire
    assert expiry([cert(-day, 100 * day), cert(-day, 2 * day)], 30, NOW)[0] == "warn"
    assert expiry([], 30, NOW)[0] == "fail"


class ExpiredTlsServer:
    """A TLS listener presenting a leaf that expired yesterday (signed by its own CA)."""

    def __init__(self, not_after: datetime.datetime) -> None:
        ca_pem, ca_key = make_ca("tls test CA", not_before=NOW - datetime.timedelta(days=800), not_after=NOW + 3 * (
            datetime.timedelta(days=365)))
        cert, key = make_leaf(ca_key, ca_pem, not_after=not_after)
        self.dir = tempfile.TemporaryDirectory()
        d = Path(self.dir.name)
        (d / "cert.pem").write_bytes(cert)
        (d / "key.pem").write_bytes(key)
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
        self.dir.cleanup()


def test_expired_controller_certificate_fails_its_row(world: World) -> None:
    srv = ExpiredTlsServer(NOW - datetime.timedelta(days=1))
    try:
        url = f"https://localhost:{srv.port}"
        target = replace(world.target, outputs=world.target.outputs.model_copy(update={"ziti_controller_url": url}))
        got = {c.check: c for c in certificate_rows(target, world.options(expiry_warning_days=30), Context())}
        assert got["controller TLS"].status == "fail" and "CN=localhost expired on" in got["controller TLS"].detail
        assert got["controller TLS"].target == url
        assert got["root CA"].status == "ok"
    finally:
        srv.close()


def test_a_slow_server_costs_one_timeout_and_the_other_rows_still_come(world: World) -> None:
    world.kc.server.latency = 3.0  # type: ignore[union-attr]
    t0 = time.monotonic()
    report = world.run(timeout=0.5)
    elapsed = time.monotonic() - t0
    slow = {k for k, v in not_ok(report).items()}
    assert slow == {("keycloak", "issuer"), ("keycloak", "jwks"), ("keycloak", "realm")}, not_ok(report)
    assert all("timed out" in rows(report)[k].detail.lower() or "timeout" in rows(report)[k].detail.lower()
               for k in slow), not_ok(report)
    assert elapsed < 2.9, elapsed  # probes run side by side, each call bounded by the timeout
    assert set(rows(report)) == EXTERNAL_ROWS


def test_a_crashing_probe_becomes_a_failing_row(world: World) -> None:
    def boom(*_: Any) -> list[Check]:
        raise RuntimeError("kaputt")

    report = collect(world.target, world.options(), probes=[("ziti", "health", boom), *PROBES[:1]])
    assert rows(report)[("ziti", "health")].detail == "the check itself failed: RuntimeError: kaputt"
    assert rows(report)[("spire", "entries")].status == "ok"


# --- platform swarm: the fake Docker Engine API ----------------------------------------------------

API_VERSION = "1.47"
# Status.Message as the engine sets it for a task in that state (Err carries a failure's cause).
MESSAGES = {"running": "started", "failed": "started", "pending": "pending task scheduling",
            "rejected": "preparing", "shutdown": "shutdown"}


class FakeEngine:
    """`GET /version`, `/v<api>/services` and `/v<api>/tasks` of a Swarm manager, in the Engine API's
    shapes: a Service has `ID`, `Version.Index`, `Spec.Name`, `Spec.Mode` (`Replicated.Replicas` or
    `Global`), `Spec.TaskTemplate`, `Endpoint`; a Task has `ID`, `ServiceID`, `NodeID`, `Slot`,
    `DesiredState`, `Status` (`Timestamp`, `State`, `Message`, `Err`, `ContainerStatus`). `filters`
    is the JSON map of lists the API takes (`service`, `desired-state`, `node`, `id`, `name`)."""

    def __init__(self) -> None:
        self.services: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []
        self.manager = True
        self.calls: list[str] = []
        self.app = App()
        self.app.route("GET", "/version")(self._version)
        self.app.route("GET", "/{api}/version")(self._version)
        self.app.route("GET", "/{api}/services")(self._services)
        self.app.route("GET", "/{api}/tasks")(self._tasks)

    def service(self, name: str, *, replicas: int | None = 1) -> str:
        sid = f"{name}-svc-id"
        mode: dict[str, Any] = {"Replicated": {"Replicas": replicas}} if replicas is not None else {"Global": {}}
        self.services.append({
            "ID": sid, "Version": {"Index": 12}, "CreatedAt": "2026-01-01T00:00:00.000000000Z",
            "UpdatedAt": "2026-01-01T00:00:00.000000000Z",
            "Spec": {"Name": name, "Labels": {}, "TaskTemplate": {"ContainerSpec": {"Image": f"{name}:1"},
                                                                  "RestartPolicy": {"Condition": "any"}},
                     "Mode": mode, "EndpointSpec": {"Mode": "vip"}},
            "Endpoint": {"Spec": {"Mode": "vip"}, "VirtualIPs": []},
        })
        return sid

    def task(self, service: str, state: str, *, desired: str = "running", err: str | None = None,
             at: str = "2026-01-01T00:01:00.000000000Z", slot: int = 1) -> None:
        status: dict[str, Any] = {"Timestamp": at, "State": state, "Message": MESSAGES.get(state, state),
                                  "ContainerStatus": {"ContainerID": "c" * 64, "PID": 42, "ExitCode": 0}}
        if err:
            status.update(Err=err, ContainerStatus={"ContainerID": "c" * 64, "PID": 0, "ExitCode": 1})
        self.tasks.append({"ID": f"task-{len(self.tasks)}", "Version": {"Index": 20}, "ServiceID": f"{service}-svc-id",
                           "NodeID": "node-1", "Slot": slot, "Labels": {}, "Spec": {}, "Status": status,
                           "DesiredState": desired, "CreatedAt": at, "UpdatedAt": at})

    def _version(self, req: Request) -> Response:
        self.calls.append(req.path)
        return Response(200, {"Platform": {"Name": "Docker Engine - Community"}, "Version": "27.3.1",
                              "ApiVersion": API_VERSION, "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
                              "KernelVersion": "6.1.0", "GoVersion": "go1.22.7", "GitCommit": "41ca978"})

    def _not_manager(self) -> Response | None:
        if self.manager:
            return None
        return Response(503, {"message": "This node is not a swarm manager. Use \"docker swarm init\" or "
                                         "\"docker swarm join\" to connect this node to swarm and try again."})

    def _filters(self, req: Request) -> dict[str, list[str]]:
        raw = req.arg("filters")
        return json.loads(raw) if raw else {}

    def _services(self, req: Request) -> Response:
        self.calls.append(req.path)
        assert req.params["api"] == f"v{API_VERSION}", req.path
        return self._not_manager() or Response(200, self.services)

    def _tasks(self, req: Request) -> Response:
        self.calls.append(req.path)
        if (denied := self._not_manager()) is not None:
            return denied
        flt = self._filters(req)
        names = {s["ID"]: s["Spec"]["Name"] for s in self.services}
        out = list(self.tasks)
        if "service" in flt:  # a service filter matches its ID or its name
            out = [t for t in out if {t["ServiceID"], names.get(t["ServiceID"])} & set(flt["service"])]
        for key, field in (("desired-state", "DesiredState"), ("node", "NodeID"), ("id", "ID")):
            if key in flt:
                out = [t for t in out if t[field] in flt[key]]
        return Response(200, out)


@pytest.fixture
def engine(loopback: Loopback) -> tuple[FakeEngine, str]:
    fake = FakeEngine()
    srv = loopback(fake.app, tls=False)
    return fake, f"tcp://127.0.0.1:{srv.port}"


def _swarm_target(host: str, services: tuple[str, ...]) -> Target:
    config = stack_config.parse({"environment": "dev", "platform": "swarm", "strict": False,
                                 "nodes": {"local": {"dockerHost": host, "labels": {"zt.db": "true"},
                                                     "manager": True}}})
    # Keycloak on a loopback address where nothing listens: port 9000 of that host refuses.
    outputs = _outputs("swarm", keycloakUrl="http://127.0.0.3:8080")
    return Target(stack="dev", project=PROJECT, config=config, outputs=outputs, swarm_services=services)


def test_the_fake_engine_answers_the_documented_filters(engine: tuple[FakeEngine, str]) -> None:
    import docker

    fake, host = engine
    fake.service("keycloak")
    fake.task("keycloak", "running")
    fake.task("keycloak", "shutdown", desired="shutdown")
    api = docker.APIClient(base_url=host, version="auto", timeout=5)
    try:
        assert api.api_version == API_VERSION
        running = api.tasks(filters={"service": "keycloak", "desired-state": "running"})  # type: ignore[no-untyped-call]
        stopped = api.tasks(filters={"desired-state": "shutdown"})  # type: ignore[no-untyped-call]
        assert len(running) == 1 and len(stopped) == 1
        assert len(api.tasks()) == 2  # type: ignore[no-untyped-call]
        assert api.services()[0]["Spec"]["Name"] == "keycloak"  # type: ignore[no-untyped-call]
    finally:
        api.close()


def test_swarm_rows_running_against_desired(engine: tuple[FakeEngine, str]) -> None:
    fake, host = engine
    for name in ("spire-server", "keycloak", "ziti-controller"):
        fake.service(name)
    fake.service("spire-agent-helper", replicas=None)  # global
    fake.service("someone-elses")
    fake.task("spire-server", "running")
    fake.task("keycloak", "failed", err="task: non-zero exit (1)", at="2026-01-01T00:02:00.000000000Z")
    fake.task("keycloak", "rejected", err="no suitable node", at="2026-01-01T00:01:00.000000000Z", slot=1)
    fake.task("ziti-controller", "starting", at="2026-01-01T00:03:00.000000000Z")
    fake.task("spire-agent-helper", "running")
    fake.task("spire-agent-helper", "running")
    fake.task("spire-agent-helper", "shutdown", desired="shutdown")
    target = _swarm_target(host, ("keycloak", "missing-service", "spire-agent-helper", "spire-server",
                                  "ziti-controller"))
    got = {c.check: c for c in swarm_rows(target, Options(timeout=5), Context(lambda: fetch(host, 5)))}
    assert got["engine"].status == "ok" and got["engine"].detail == \
        "Swarm manager answers: Docker 27.3.1 (API 1.47), 5 services"
    assert got["engine"].target == host
    assert (got["spire-server"].status, got["spire-server"].detail) == ("ok", "1/1 tasks running (replicated)")
    assert got["keycloak"].status == "fail"
    assert got["keycloak"].detail == \
        "0/1 tasks running (replicated); newest other task: failed: task: non-zero exit (1)"
    assert got["ziti-controller"].status == "fail" and "starting" in got["ziti-controller"].detail
    assert (got["spire-agent-helper"].status, got["spire-agent-helper"].detail) == ("ok", "2/2 tasks running (global)")
    assert got["missing-service"].status == "fail" and "not found on the Swarm" in got["missing-service"].detail
    assert "someone-elses" not in got
    assert [c for c in fake.calls if c.endswith(("/services", "/tasks"))] == [
        f"/v{API_VERSION}/services", f"/v{API_VERSION}/tasks"]


def test_swarm_partly_running_or_scaled_to_zero_warns(engine: tuple[FakeEngine, str]) -> None:
    fake, host = engine
    fake.service("api", replicas=3)
    fake.service("idle", replicas=0)
    fake.task("api", "running", slot=1)
    fake.task("api", "running", slot=2)
    fake.task("api", "pending", slot=3)
    got = {c.check: c for c in swarm_rows(_swarm_target(host, ("api", "idle")), Options(), Context(
        lambda: fetch(host, 5)))}
    assert (got["api"].status, got["api"].detail) == ("warn", "2/3 tasks running (replicated); newest other task: "
                                                              "pending: pending task scheduling")
    assert got["idle"].status == "warn" and got["idle"].detail == "scaled to 0 tasks"


def test_swarm_engine_unreachable_or_not_a_manager(engine: tuple[FakeEngine, str]) -> None:
    fake, host = engine
    fake.manager = False
    (row,) = swarm_rows(_swarm_target(host, ("keycloak",)), Options(), Context(lambda: fetch(host, 5)))
    assert row.check == "engine" and row.status == "fail"
    assert "not a swarm manager" in row.detail and "must be a manager" in row.detail
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    dead = f"tcp://127.0.0.1:{port}"
    (row,) = swarm_rows(_swarm_target(dead, ("keycloak",)), Options(), Context(lambda: fetch(dead, 2)))
    assert row.status == "fail" and row.detail.startswith("cannot reach the Docker engine") and row.target == dead


def test_keycloak_health_on_swarm_falls_back_to_the_swarm_healthcheck(engine: tuple[FakeEngine, str]) -> None:
    fake, host = engine
    fake.service("keycloak")
    fake.task("keycloak", "running")
    target = _swarm_target(host, ("keycloak",))
    (row,) = keycloak_health(target, Options(timeout=2), Context(lambda: fetch(host, 5)))
    assert row.status == "ok" and "not reachable from here" in row.detail and "1/1 tasks running" in row.detail
    fake.tasks.clear()
    (row,) = keycloak_health(target, Options(timeout=2), Context(lambda: fetch(host, 5)))
    assert row.status == "fail"
    (row,) = keycloak_health(target, Options(timeout=2), Context())  # no Swarm to ask
    assert row.status == "warn" and "127.0.0.3:9000/health/ready" in row.detail


def test_a_whole_swarm_run_fetches_the_engine_once(engine: tuple[FakeEngine, str]) -> None:
    fake, host = engine
    fake.service("keycloak")
    fake.task("keycloak", "running")
    report = collect(_swarm_target(host, ("keycloak",)), Options(timeout=1))
    assert rows(report)[("swarm", "keycloak")].status == "ok"
    assert rows(report)[("keycloak", "health")].status == "ok"
    assert fake.calls.count(f"/v{API_VERSION}/tasks") == 1


# --- inputs ---------------------------------------------------------------------------------------


def test_cli_config_to_the_model_input() -> None:
    from pulumi import automation as auto

    raw, secrets = raw_from_cli_config({
        f"{PROJECT}:platform": auto.ConfigValue("external"),
        f"{PROJECT}:strict": auto.ConfigValue("false"),
        f"{PROJECT}:spire": auto.ConfigValue(json.dumps({"trustDomain": TD})),
        f"{PROJECT}:zitiAdminPassword": auto.ConfigValue("pw", secret=True),
        "docker:host": auto.ConfigValue("unix:///x"),
    }, PROJECT)
    assert raw == {"platform": "external", "strict": False, "spire": {"trustDomain": TD}}
    assert secrets == {"zitiAdminPassword": "pw"}
    with pytest.raises(OpsError) as e:
        raw_from_cli_config({f"{PROJECT}:spire": auto.ConfigValue("{nope")}, PROJECT)
    assert e.value.code == ExitCode.CONFIG_ERROR


def test_state_gives_the_controller_ca_and_the_service_names() -> None:
    deployment = {"resources": [
        {"type": "pulumi:pulumi:Stack", "urn": "urn:...", "outputs": {}},
        {"type": "docker:index/service:Service", "outputs": {"name": "keycloak"}},
        {"type": "docker:index/service:Service", "outputs": {"name": "spire-server"}},
        {"type": "identity-platform:ziti:ZitiStack", "outputs": {"controller_ca_pem": ROOT_PEM,
                                                                 "admin_password": "never-kept"}},
    ]}
    assert from_deployment(deployment) == (ROOT_PEM, ("keycloak", "spire-server"))
    assert from_deployment(None) == (None, ())
    assert short_name("acme/identity-platform/prod") == "prod" and short_name("dev") == "dev"


def test_target_lists_every_secret_it_holds() -> None:
    outputs = _outputs("swarm")
    target = Target(stack="dev", project=PROJECT, config=_swarm_target("unix:///x", ()).config, outputs=outputs,
                    keycloak_admin_password=outputs.keycloak_admin_password,
                    ziti_admin_password=outputs.ziti_admin_password)
    assert sorted(target.secret_values()) == sorted(["kc-admin-secret", "zt-admin-secret"] * 2)
