"""The project's own program under the real engine: a `platform: external` stack against the
real SPIRE, Keycloak and OpenZiti of `scripts/servers`, configured as a user would
(`scripts/servers configure`: plain settings in the stack file, secrets with `--secret`).

One stack's life, in order: `preview` (zero requests reach the servers: recording proxies sit
between our providers and every server), `up`, the identity chain proven for real (a workload
attested by the real agent logs in to Ziti with its SVID; a Keycloak user logs in through the
program's PKCE client and reaches Ziti with the token), `preview` and `refresh` with no changes,
an update in place (role attributes, an SVID TTL), a replacement (another root CA: the Ziti CA is
replaced, the old one deleted), the state file searched for every secret, `destroy` leaving none
of our objects on any server.
"""

from __future__ import annotations

import datetime
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ops.outputs import StackOutputs
from servers.process import Run
from servers.stack import external_settings, set_secrets, write_stack_file
from tests.engine.cli import REPO, Cli
from tests.harness import chain
from tests.harness.fault_proxy import GrpcFaultProxy, http_proxy
from tests.harness.loopback import LoopbackServer
from tests.real._ziti import Admin as ZitiAdmin
from tests.real.conftest import RealServers
from tests.real.keycloak_support import RealKeycloak
from tests.real.spire_targets import Admin as SpireAdmin

PROJECT = "identity-platform"
REDIRECT = "http://127.0.0.1:20314/auth/callback"
ZITI_COLLECTIONS = ("identities", "cas", "auth-policies", "external-jwt-signers", "edge-routers",
                    "edge-router-policies", "service-edge-router-policies")


class Recorders:
    """Recording proxies in front of each server: what our providers sent, and when."""

    def __init__(self, kc: dict[str, Any], zt: dict[str, Any], spire: dict[str, Any]) -> None:
        self.kc_server, self.kc = http_proxy(kc["url"])
        self.zt_server, self.zt = http_proxy(zt["url"], ca_pem=zt["ca_pem"])
        self.spire = GrpcFaultProxy(spire["admin_socket"]).start()

    def counts(self) -> dict[str, int]:
        return {"keycloak": len(self.kc.forwarded), "ziti": len(self.zt.forwarded), "spire": len(self.spire.calls)}

    def stop(self) -> None:
        for server, app in ((self.kc_server, self.kc), (self.zt_server, self.zt)):
            server.stop()
            app.close()
        self.spire.stop()


def _ca_pem(server: LoopbackServer) -> str:
    assert server.ca_pem is not None
    return server.ca_pem


def another_root(common_name: str) -> tuple[str, str]:
    """A second root CA (certificate, key) for the replacement step."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@pytest.fixture
def servers(real_servers: RealServers) -> Iterator[dict[str, Any]]:
    state = {"spire": real_servers("spire"), "keycloak": real_servers("keycloak"), "ziti": real_servers("ziti")}
    yield state


def test_an_external_stack_lives_and_dies_under_the_real_engine(
    engine_bin: Path, servers: dict[str, Any], tmp_path: Path
) -> None:
    spire, kc, zt = servers["spire"], servers["keycloak"], servers["ziti"]
    tag = secrets.token_hex(3)
    stack = f"ext-{tag}"
    cli = Cli(engine_bin, tmp_path, stack)
    for name in ("__main__.py", "Pulumi.yaml"):
        (cli.dir / name).write_text((REPO / name).read_text())
    (cli.dir / ".venv").symlink_to(REPO / ".venv")

    rec = Recorders(kc, zt, spire)
    spire_admin = SpireAdmin(spire["admin_socket"])
    ziti_admin = ZitiAdmin(zt)
    kc_admin = RealKeycloak(kc)
    try:
        # -- configure as `scripts/servers configure` does, through the recording proxies ---------
        plain, secret_values = external_settings(servers)
        workload, user, realm = f"shell-{tag}", f"alice-{tag}", f"engine-{tag}"
        email = f"{user}@Acme-Identity.net"  # Keycloak keeps it lowercased: so must the identity
        plain["spire"]["transport"]["socketPath"] = rec.spire.socket_path
        plain["keycloak"].update(url=rec.kc_server.url, caBundle=_ca_pem(rec.kc_server), realm=realm)
        plain["ziti"].update(controllerUrl=rec.zt_server.url, caBundle=_ca_pem(rec.zt_server),
                             routerName=f"router-{tag}")
        plain["workloads"] = {workload: {**plain["workloads"]["local-shell"], "spiffePath": f"/engine/{tag}/shell"}}
        plain["users"] = {user: {"email": email, "zitiRoleAttributes": ["operators"]}}
        cli("stack", "init")
        write_stack_file(cli.dir, stack, plain)
        set_secrets(secret_values, stack=stack, cwd=cli.dir, env=cli.env)
        stack_file = (cli.dir / f"Pulumi.{stack}.yaml").read_text()
        for value in secret_values.values():
            assert value.strip() not in stack_file, "a secret reached the stack file in plain text"

        # -- preview: the plan, and not one request to any server -----------------------------
        before = rec.counts()
        preview = cli("preview", "--diff")
        assert rec.counts() == before == {"keycloak": 0, "ziti": 0, "spire": 0}, rec.counts()
        for kind in ("spire:Entry", "keycloak:Realm", "keycloak:Client", "ziti:CertificateAuthority",
                     "ziti:ExternalJwtSigner", "ziti:Identity", "ziti:EdgeRouter"):
            assert f"pulumi-python:dynamic/{kind}" in preview.stdout, (kind, preview.stdout)
        assert "docker:" not in preview.stdout and "tls:" not in preview.stdout

        # -- up ------------------------------------------------------------------------------
        cli("up", "--yes")
        assert rec.counts()["keycloak"] > 0 and rec.counts()["ziti"] > 0 and rec.counts()["spire"] > 0
        outputs = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)
        outs = StackOutputs.from_mapping(outputs)
        assert outs.platform == "external" and outs.nodes == []
        spiffe_id = f"spiffe://{spire['trust_domain']}/engine/{tag}/shell"
        entry = spire_admin.get(outputs["spireEntryIds"][workload])
        assert entry is not None and entry.spiffe_id.path == f"/engine/{tag}/shell"
        assert ziti_admin.get(f"/identities/{outputs['zitiIdentityIds'][workload]}")["externalId"] == spiffe_id
        assert ziti_admin.get(f"/identities/{outputs['zitiUserIdentityIds'][user]}")["externalId"] == email.lower()
        ca = ziti_admin.get(f"/cas/{outputs['zitiCaId']}")
        assert ca is not None and ca["isVerified"] is True and ca["name"] == f"{stack}-ziti-trust-spire"
        assert kc_admin.realm(realm) is not None
        assert outputs["zitiRouterEnrollmentJwt"].count(".") == 2

        # -- the chain, for real --------------------------------------------------------------
        svid = chain.fetch_x509_svid(spire["bin_dir"], spire["agent_socket"], tmp_path / "svid", spiffe_id=spiffe_id)
        assert svid.spiffe_id == spiffe_id
        session = chain.ziti_cert_login(zt["url"], zt["ca_pem"], svid, within=30)
        assert session["identity"]["id"] == outputs["zitiIdentityIds"][workload]
        password = secrets.token_urlsafe(12)
        chain.create_keycloak_user(kc["url"], kc["admin_user"], kc["admin_password"], realm, user, email, password)
        token = chain.keycloak_pkce_login(kc["url"], realm, "openziti", REDIRECT, user, password)
        assert chain.jwt_claims(token)["iss"] == outputs["keycloakIssuerUrl"]
        session = chain.ziti_jwt_login(zt["url"], zt["ca_pem"], token, within=30)
        assert session["identity"]["id"] == outputs["zitiUserIdentityIds"][user]

        # -- nothing to do ------------------------------------------------------------------------
        cli("preview", "--expect-no-changes")
        cli("refresh", "--yes", "--expect-no-changes")

        # -- update in place ----------------------------------------------------------------------
        plain["workloads"][workload].update(zitiRoleAttributes=["local", "shell"], x509SvidTtl=900)
        write_stack_file(cli.dir, stack, plain)
        preview = cli("preview", "--diff")
        assert "~ pulumi-python:dynamic/ziti:Identity: (update)" in preview.stdout, preview.stdout
        ops = plan(cli)
        assert ops == {f"ziti-trust-identity-{workload}": "update", f"spire-entries-entry-{workload}": "update"}, ops
        cli("up", "--yes")
        after = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)
        assert after["zitiIdentityIds"] == outputs["zitiIdentityIds"]
        assert after["spireEntryIds"] == outputs["spireEntryIds"]
        assert sorted(ziti_admin.get(f"/identities/{after['zitiIdentityIds'][workload]}")["roleAttributes"]) == [
            "local", "shell"]
        entry = spire_admin.get(after["spireEntryIds"][workload])
        assert entry is not None and entry.x509_svid_ttl == 900

        # -- replace: another root CA -----------------------------------------------------------
        cert_pem, key_pem = another_root(f"{stack} replacement root")
        plain["rootCa"] = {"certificate": cert_pem}
        write_stack_file(cli.dir, stack, plain)
        set_secrets({"rootCaKey": key_pem}, stack=stack, cwd=cli.dir, env=cli.env)
        ops = plan(cli)
        assert ops.get("ziti-trust-spire-ca") == "replace", ops
        cli("up", "--yes")
        replaced = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)
        assert replaced["zitiCaId"] != outputs["zitiCaId"]
        assert ziti_admin.get(f"/cas/{outputs['zitiCaId']}") is None, "the replaced CA is still on the controller"
        new_ca = ziti_admin.get(f"/cas/{replaced['zitiCaId']}")
        assert new_ca is not None and new_ca["isVerified"] is True
        assert x509.load_pem_x509_certificate(new_ca["certPem"].encode()).subject == \
            x509.load_pem_x509_certificate(cert_pem.encode()).subject
        assert replaced["spireBundlePem"].strip() == cert_pem.strip()

        # -- take over an identity made outside the program (`imports`) -----------------------
        legacy = f"legacy-{tag}"
        existing = ziti_admin.create("identities", {
            "name": f"{stack}-{legacy}", "type": "Default", "isAdmin": False, "roleAttributes": ["legacy"],
            "externalId": f"spiffe://{spire['trust_domain']}/engine/{tag}/legacy",
        })
        plain["workloads"][legacy] = {"spiffePath": f"/engine/{tag}/legacy", "node": "local",
                                      "selectors": ["unix:uid:4242"], "zitiRoleAttributes": ["legacy"]}
        plain["imports"] = {f"ziti-trust-identity-{legacy}": existing}
        write_stack_file(cli.dir, stack, plain)
        ops = plan(cli)
        assert ops == {f"ziti-trust-identity-{legacy}": "create", f"spire-entries-entry-{legacy}": "create"}, ops
        cli("up", "--yes")
        taken = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)
        assert taken["zitiIdentityIds"][legacy] == existing
        assert [o["id"] for o in ziti_admin.find("identities", f"{stack}-{legacy}")] == [existing]  # no duplicate
        detail = ziti_admin.get(f"/identities/{existing}")
        assert detail["tags"]["pulumi.stack"] == f"{PROJECT}/{stack}"
        (policy,) = ziti_admin.find("auth-policies", f"{stack}-ziti-trust-spiffe-workloads")
        assert detail["authPolicyId"] == policy["id"]
        del plain["imports"]
        write_stack_file(cli.dir, stack, plain)
        cli("preview", "--expect-no-changes")
        replaced["zitiIdentityIds"] = taken["zitiIdentityIds"]

        # -- the state file holds no secret in plain text ------------------------------------
        state = cli.state_text()
        assert replaced["zitiCaId"] in state  # the state we searched is the stack's
        for what, value in {
            "Keycloak admin password": kc["admin_password"], "Ziti admin password": zt["admin_password"],
            "first root CA key": secret_values["rootCaKey"], "second root CA key": key_pem,
            "router enrollment JWT": replaced["zitiRouterEnrollmentJwt"],
        }.items():
            body = "".join(value.strip().splitlines()[1:-1]) if value.startswith("-----") else value
            assert body[:40] not in state, f"the state file holds the {what} in plain text"

        # -- destroy: none of our objects remains -------------------------------------------
        cli("destroy", "--yes")
        for coll in ZITI_COLLECTIONS:
            left = [name for name in _names(ziti_admin, coll) if name.startswith(stack)]
            assert left == [], (coll, left)
        for key in ("zitiIdentityIds", "zitiUserIdentityIds"):
            for id_ in replaced[key].values():
                assert ziti_admin.get(f"/identities/{id_}") is None
        assert ziti_admin.get(f"/cas/{replaced['zitiCaId']}") is None
        assert ziti_admin.find("edge-routers", f"router-{tag}") == []
        assert spire_admin.get(replaced["spireEntryIds"][workload]) is None
        assert kc_admin.realm(realm) is None
        assert json.loads(cli("stack", "output", "--json").stdout) == {}
    finally:
        rec.stop()
        spire_admin.close()
        ziti_admin.close()


def plan(cli: Cli) -> dict[str, str]:
    """`pulumi preview --json`: resource name -> step op, for every step that changes something."""
    doc = json.loads(cli("preview", "--json").stdout)
    return {step["urn"].rsplit("::", 1)[1]: step["op"] for step in doc.get("steps", []) if step["op"] != "same"}


def _names(admin: ZitiAdmin, collection: str) -> list[str]:
    """Every object name in a management API collection."""
    r = admin.request("GET", f"/{collection}", params={"limit": 500})
    r.raise_for_status()
    return [str(o.get("name", "")) for o in r.json()["data"]]


def test_the_quick_start_configure_command_makes_a_stack_the_cli_previews(
    engine_bin: Path, servers: dict[str, Any], servers_run: Run, tmp_path: Path
) -> None:
    """README's quick start as written: `pulumi stack init`, then `scripts/servers configure STACK`
    from the project directory (the wrapper itself, not the function), then `pulumi preview`."""
    stack = f"qs-{secrets.token_hex(3)}"
    cli = Cli(engine_bin, tmp_path, stack)
    for name in ("__main__.py", "Pulumi.yaml"):
        (cli.dir / name).write_text((REPO / name).read_text())
    (cli.dir / ".venv").symlink_to(REPO / ".venv")
    cli("stack", "init")
    argv = [str(REPO / "scripts" / "servers"), "configure", stack, "--state", str(servers_run.state_path)]
    done = subprocess.run(argv, cwd=cli.dir, env=cli.env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (cli.dir / f"Pulumi.{stack}.yaml").read_text()
    assert "identity-platform:platform: external" in text and "certificate: |" in text
    assert servers["ziti"]["admin_password"] not in text and servers["keycloak"]["admin_password"] not in text
    assert text.count("secure: ") == 3  # the two admin passwords and the root CA key
    preview = cli("preview")
    assert "+ 15 to create" in preview.stdout, preview.stdout
