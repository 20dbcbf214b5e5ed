"""`python -m ops status` against the REAL servers: a `platform: external` stack brought up by the
real engine exactly as tests/engine/test_external_stack.py does it (`scripts/servers configure`'s
settings, secrets with `--secret`), then the status command through its Python entry point with
that CLI's environment (backend, passphrase, PULUMI_HOME, PATH).

Healthy: every row ok, score 100, exit 0. Without `--keycloak-health-url` the real Keycloak (health
on its management port only) is named "not exposed": a warning, exit 0. Then things are broken on
the servers behind the stack's back, one at a time: the SPIRE entry deleted, the Ziti signer
disabled; each time that row fails and the exit code is 9, while every other row stays ok. Without
the passphrase, `ops outputs` (masked) and `ops diagram` still read the stack; `--show-secrets` is exit 3.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynamic_providers.spire._proto import entry_pb2
from ops.cli import main
from ops.errors import ExitCode
from ops.outputs import StackOutputs
from tests.engine.cli import external_stack
from tests.real._ziti import Admin as ZitiAdmin
from tests.real.conftest import RealServers
from tests.real.spire_targets import Admin as SpireAdmin

ROWS = {
    ("spire", "server ready"), ("spire", "entries"),
    ("keycloak", "health"), ("keycloak", "issuer"), ("keycloak", "jwks"), ("keycloak", "realm"),
    ("ziti", "health"), ("ziti", "ca"), ("ziti", "ext-jwt signer"), ("ziti", "auth policy"), ("ziti", "identities"),
    ("certificates", "root CA"), ("certificates", "controller TLS"),
}


@pytest.fixture
def servers(real_servers: RealServers) -> Iterator[dict[str, Any]]:
    yield {"spire": real_servers("spire"), "keycloak": real_servers("keycloak"), "ziti": real_servers("ziti")}


def _rows(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["component"], c["check"]): c for c in doc["checks"]}


def _not_ok(doc: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {k: f"{c['status']}: {c['detail']}" for k, c in _rows(doc).items() if c["status"] != "ok"}


def test_ops_status_on_a_live_external_stack_and_after_breaking_it(
    engine_bin: Path, servers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spire, kc, zt = servers["spire"], servers["keycloak"], servers["ziti"]
    # `ops` runs the CLI through the Automation API, which inherits this process's environment.
    ext = external_stack(engine_bin, tmp_path, servers, "status", monkeypatch)
    cli, stack, workload, secret_values = ext.cli, ext.stack, ext.workload, ext.secret_values
    spire_admin = SpireAdmin(spire["admin_socket"])
    ziti_admin = ZitiAdmin(zt)

    def status(*extra: str) -> tuple[int, dict[str, Any], str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["status", "--stack", stack, "--json", *extra], stdout=out, stderr=err, environ=cli.env,
                    root=cli.dir)
        text = out.getvalue()
        assert text.strip(), err.getvalue()
        return code, json.loads(text), text + err.getvalue()

    health = ("--keycloak-health-url", f"{kc['management_url']}/health/ready")
    try:
        cli("up", "--yes")
        outputs = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)

        # -- healthy: every row ok ------------------------------------------------------------
        code, doc, text = status(*health)
        assert _not_ok(doc) == {}, _not_ok(doc)
        assert code == ExitCode.OK and doc["ok"] is True and doc["exitCode"] == 0
        assert doc["score"] == 100 and doc["status"] == "ok" and doc["healthy"] is True
        assert set(_rows(doc)) == ROWS
        assert doc["platform"] == "external" and doc["command"] == "status" and doc["stack"] == stack
        assert _rows(doc)[("spire", "entries")]["detail"].startswith(
            f"entries owned by this stack (pulumi.identity-platform.{stack}.*): 1; in spireEntryIds: 1")
        assert "identities present: all 2 " in _rows(doc)[("ziti", "identities")]["detail"]
        assert _rows(doc)[("spire", "server ready")]["target"] == f"unix:{spire['admin_socket']}"
        for what, value in {"Keycloak admin password": kc["admin_password"],
                            "Ziti admin password": zt["admin_password"],
                            "root CA key": "".join(secret_values["rootCaKey"].strip().splitlines()[1:-1])[:40],
                            "router JWT": outputs.get("zitiRouterEnrollmentJwt") or "no-router-jwt"}.items():
            assert value not in text, f"ops status printed the {what}"

        # -- without the passphrase: masked outputs and the state's graph, not the secrets ----------
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("PULUMI_CONFIG_PASSPHRASE")
            bare = {k: v for k, v in cli.env.items() if k != "PULUMI_CONFIG_PASSPHRASE"}
            out = io.StringIO()
            code = main(["outputs", "--stack", stack, "--json"], stdout=out, stderr=io.StringIO(), environ=bare,
                        root=cli.dir)
            doc = json.loads(out.getvalue())
            assert code == ExitCode.OK, doc
            assert doc["outputs"]["spireEntryIds"] == outputs["spireEntryIds"]
            assert doc["outputs"]["keycloakIssuerUrl"] == outputs["keycloakIssuerUrl"]
            assert all(doc["outputs"][k] == "[secret]" for k in StackOutputs.secret_keys() & set(outputs))
            out = io.StringIO()
            code = main(["diagram", "--stack", stack], stdout=out, stderr=io.StringIO(), environ=bare, root=cli.dir)
            assert code == ExitCode.OK and workload in out.getvalue(), out.getvalue()
            out = io.StringIO()
            code = main(["outputs", "--stack", stack, "--json", "--show-secrets"], stdout=out, stderr=io.StringIO(),
                        environ=bare, root=cli.dir)
            assert code == ExitCode.CONFIG_ERROR and "PULUMI_CONFIG_PASSPHRASE" in out.getvalue()

        # -- Keycloak's health not named: not exposed on the public URL, a warning ----------------
        code, doc, _ = status()
        assert code == ExitCode.OK and doc["status"] == "warn" and doc["score"] < 100
        row = _rows(doc)[("keycloak", "health")]
        assert row["status"] == "warn" and "not exposed" in row["detail"] and "--keycloak-health-url" in row["detail"]
        assert set(_not_ok(doc)) == {("keycloak", "health")}
        code, doc, _ = status("--strict")
        assert code == ExitCode.UNHEALTHY and doc["healthy"] is False

        # -- the SPIRE entry deleted out of band ----------------------------------------------
        entry_id = outputs["spireEntryIds"][workload]
        spire_admin.stub.BatchDeleteEntry(entry_pb2.BatchDeleteEntryRequest(ids=[entry_id]), timeout=10)
        assert spire_admin.get(entry_id) is None
        code, doc, _ = status(*health)
        assert code == ExitCode.UNHEALTHY and doc["ok"] is False and doc["exitCode"] == 9
        assert set(_not_ok(doc)) == {("spire", "entries")}, _not_ok(doc)
        row = _rows(doc)[("spire", "entries")]
        assert row["status"] == "fail" and f"missing on the server: {workload}" in row["detail"]
        assert doc["status"] == "fail" and doc["components"]["spire"]["score"] == 50 and doc["score"] == 87

        # -- and the Ziti signer disabled -----------------------------------------------------
        ziti_admin.patch("external-jwt-signers", outputs["zitiExtJwtSignerId"], {"enabled": False})
        code, doc, _ = status(*health)
        assert code == ExitCode.UNHEALTHY
        assert set(_not_ok(doc)) == {("spire", "entries"), ("ziti", "ext-jwt signer")}, _not_ok(doc)
        assert "disabled" in _rows(doc)[("ziti", "ext-jwt signer")]["detail"]

        # -- the table, for people ------------------------------------------------------------
        out = io.StringIO()
        code = main(["status", "--stack", stack, *health], stdout=out, stderr=io.StringIO(), environ=cli.env,
                    root=cli.dir)
        table = out.getvalue()
        assert code == ExitCode.UNHEALTHY
        assert "COMPONENT" in table and "FAIL" in table and "unhealthy: 11 ok, 0 warn, 2 fail" in table, table
        print(table)
    finally:
        cli("destroy", "--yes", ok=False)
        spire_admin.close()
        ziti_admin.close()
    assert json.loads(cli("stack", "output", "--json").stdout) == {}
