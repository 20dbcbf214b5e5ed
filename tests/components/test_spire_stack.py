"""SpireStack: rendered configs parse and agree with what is mounted; the root CA reaches the
server only as a secret; one x509pop-attested agent per node with a predictable SPIFFE ID; the
datastore variants; backups and restore (the scripts are run for real against SQLite)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from components.backup_job import freshness_check
from components.scripts import script
from components.spire_stack import AGENT_PATH_TEMPLATE
from stack_config import ConfigError
from tests.components._platform import (
    CONFIG,
    CONTAINER,
    SECRET,
    VOLUME,
    is_secret,
    platform,
    provider_of_node,
    provider_urn,
    secret_payload,
    services,
    spec,
    unwrap,
)
from tests.components.test_spire_conf import parse, plugins
from tests.harness.mock_engine import ProgramRun


@pytest.fixture(scope="module", params=["dev", "prod"])
def built(request: pytest.FixtureRequest) -> tuple[ProgramRun, dict[str, Any]]:
    return platform(request.param)


def server_conf(r: ProgramRun) -> dict[str, Any]:
    return parse(r.get(CONFIG, "spire-server-conf").inputs["dataRaw"])


def uploads(container: Any) -> dict[str, dict[str, Any]]:
    return {u["file"]: u for u in unwrap(container.inputs["uploads"])}


class TestServerConfig:
    def test_parses_with_the_required_blocks_and_plugins(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, objs = built
        doc = server_conf(r)
        assert doc["server"]["trust_domain"] == objs["spire"].trust_domain
        assert plugins(doc, "DataStore")["sql"]["database_type"] == "sqlite3"
        assert set(plugins(doc, "KeyManager")) == {"disk"}
        # SPIRE's text/template over the x509pop attestation data: /<plugin>/<subject CN>.
        template = plugins(doc, "NodeAttestor")["x509pop"]["agent_path_template"]
        assert template == "/{{ .PluginName }}/{{ .Subject.CommonName }}"
        assert set(plugins(doc, "UpstreamAuthority")) == {"disk"}
        assert doc["health_checks"]["bind_port"] == "8080"

    def test_every_path_it_names_is_mounted(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        doc = server_conf(r)
        cs = spec(services(r)["spire-server"])
        secret_files = {f"/run/secrets/{s['fileName']}": s for s in cs["secrets"]}
        config_files = {c["fileName"]: c for c in cs["configs"]}
        mounts = {m["target"] for m in cs["mounts"]}
        upstream = plugins(doc, "UpstreamAuthority")["disk"]
        assert secret_files[upstream["key_file_path"]]["fileMode"] == 0o400
        assert secret_files[upstream["key_file_path"]]["fileUid"] == "1000"  # the server's user
        assert upstream["cert_file_path"] in secret_files
        assert plugins(doc, "NodeAttestor")["x509pop"]["ca_bundle_path"] in config_files
        assert cs["args"] == ["-config", next(k for k in config_files if k.endswith("server.conf"))]
        assert doc["server"]["data_dir"] in mounts
        assert os.path.dirname(doc["server"]["socket_path"]) in mounts, "the admin socket is on a volume"
        assert os.path.dirname(plugins(doc, "DataStore")["sql"]["connection_string"]) in mounts

    def test_config_name_changes_with_content(self) -> None:
        a, _ = platform("dev")
        b, _ = platform("dev", config={"spire": {"trustDomain": "other.zt.internal"}})
        name_a = a.get(CONFIG, "spire-server-conf").inputs["name"]
        name_b = b.get(CONFIG, "spire-server-conf").inputs["name"]
        assert name_a.startswith("spire-server-conf-") and name_a != name_b
        assert platform("dev")[0].get(CONFIG, "spire-server-conf").inputs["name"] == name_a, "deterministic"


class TestRootCA:
    def test_root_is_a_ca_owned_by_the_program(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        root = r.get("tls:index/selfSignedCert:SelfSignedCert", "spire-root-ca")
        assert root.inputs["isCaCertificate"] is True
        assert "cert_signing" in root.inputs["allowedUses"]
        assert not root.inputs.get("earlyRenewalHours"), "a silent root rotation would re-key the trust chain"

    def test_key_reaches_the_server_only_as_a_secret(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        assert r.exports["spire.root_ca_key_pem"].secret
        key = r.exports["spire.root_ca_key_pem"].value
        secret = r.get(SECRET, "spire-upstream-key")
        assert is_secret(secret.inputs["data"])
        assert secret_payload(secret) == key
        assert r.exports["spireBundlePem"].value == r.exports["spire.root_ca_cert_pem"].value
        assert not r.exports["spireBundlePem"].secret


class TestAgents:
    def test_ids_are_stable_and_follow_the_template(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, objs = built
        spire = objs["spire"]
        nodes = r.exports["nodes"].value
        assert set(spire.agent_spiffe_ids) == set(nodes)
        for node in nodes:
            csr = r.get("tls:index/certRequest:CertRequest", f"spire-agent-csr-{node}")
            cn = csr.inputs["subject"]["commonName"]
            # What SPIRE's text/template makes of the template: /<plugin>/<subject CN>, appended to
            # /spire/agent (the leading slash is required: tests/real/test_spire_configs.py attests).
            path = AGENT_PATH_TEMPLATE.replace("{{ .PluginName }}", "x509pop").replace("{{ .Subject.CommonName }}", cn)
            assert path.startswith("/")
            assert spire.agent_spiffe_ids[node] == f"spiffe://{spire.trust_domain}/spire/agent{path}"
            assert cn == node

    def test_node_certificates_come_from_the_attestation_ca(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        pop_ca = r.get("tls:index/selfSignedCert:SelfSignedCert", "spire-x509pop-ca")
        root = r.get("tls:index/selfSignedCert:SelfSignedCert", "spire-root-ca")
        for node in r.exports["nodes"].value:
            cert = r.get("tls:index/locallySignedCert:LocallySignedCert", f"spire-agent-cert-{node}")
            assert pop_ca.urn in cert.dependencies and root.urn not in cert.dependencies
            assert "client_auth" in cert.inputs["allowedUses"]
            assert cert.inputs["earlyRenewalHours"] < cert.inputs["validityPeriodHours"]

    def test_agent_conf_parses_and_matches_the_uploaded_files(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, objs = built
        for node in r.exports["nodes"].value:
            agent = r.get(CONTAINER, f"spire-agent-{node}")
            assert provider_urn(agent) == provider_of_node(r, node)
            files = uploads(agent)
            conf_path = agent.inputs["command"][1]
            doc = parse(files[conf_path]["content"])
            section = doc["agent"]
            assert section["trust_domain"] == objs["spire"].trust_domain
            assert section["server_address"] == "spire-server"
            assert section["socket_path"] == objs["spire"].agent_socket_path
            assert section["trust_bundle_path"] in files
            pop = plugins(doc, "NodeAttestor")["x509pop"]
            assert pop["certificate_path"] in files and pop["private_key_path"] in files
            assert files[pop["private_key_path"]]["permissions"] == "0600"
            assert set(plugins(doc, "WorkloadAttestor")) == {"docker", "unix"}
            assert is_secret(agent.inputs["uploads"]), "the node key is a secret in state"
            if not r.preview:
                assert files[section["trust_bundle_path"]]["content"] == r.exports["spireBundlePem"].value


class TestPostgresDatastore:
    def test_dedicated_database_and_no_password_in_the_config(self) -> None:
        r, _ = platform("prod", config={"spire": {"trustDomain": "zt.acme-identity.net", "datastore": "postgres"}})
        svcs = services(r)
        assert {"spire-db", "spire-db-backup"} <= set(svcs)
        ds = plugins(server_conf(r), "DataStore")["sql"]
        assert ds["database_type"] == "postgres"
        assert "password=" not in ds["connection_string"]
        assert "passfile=/run/secrets/spire-db.pgpass" in ds["connection_string"]
        mount = next(s for s in spec(svcs["spire-server"])["secrets"] if s["fileName"] == "spire-db.pgpass")
        assert (mount["fileUid"], mount["fileMode"]) == ("1000", 0o400), "libpq ignores group/world-readable files"
        line = secret_payload(r.get(SECRET, "spire-db-pgpass"))
        assert line.startswith("spire-db:5432:spire:spire:mock-secret-value-password-")
        assert svcs["spire-db"].urn in svcs["spire-server"].dependencies
        assert "spire-backup" not in svcs, "pg_dump replaces the SQLite backup job"


class TestPlacementAndTransport:
    def test_server_node_is_the_stateful_node(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, objs = built
        node = objs["spire"].server_node
        assert node == objs["swarm"].db_node
        assert provider_urn(r.get(VOLUME, "spire-server-data")) == provider_of_node(r, node)

    def test_transport_node_must_run_the_server(self) -> None:
        spire = {"trustDomain": "zt.acme-identity.net", "transport": {"kind": "docker-exec", "node": "worker-1"}}
        with pytest.raises(ConfigError, match=r"spire\.transport\.node.*manager-1"):
            platform("prod", config={"spire": spire})


class TestBackupAndRestore:
    def test_prod_backs_up_to_the_rclone_volume(self) -> None:
        r, _ = platform("prod", preview=True)
        svc = services(r)["spire-backup"]
        mounts = {m["target"]: m for m in spec(svc)["mounts"]}
        assert mounts["/backup"]["volumeOptions"]["driverName"] == "rclone"
        assert mounts["/data"]["source"] == "spire-server-data"

    def test_restore_without_a_bucket_is_a_config_error(self) -> None:
        storage = {"restoreOnFirstStart": True}
        with pytest.raises(ConfigError, match=r"storage\.restoreOnFirstStart"):
            platform("dev", config={"storage": storage})


class TestSqliteBackupScriptRuns:
    """The sidecar's Python, run against a real SQLite database in a temporary directory."""

    def test_consistent_copy_is_published_and_health_follows(self, tmp_path: Path) -> None:
        data, backup, state = (tmp_path / d for d in ("data", "backup", "state"))
        for d in (data, backup, state):
            d.mkdir()
        db = sqlite3.connect(data / "datastore.sqlite3")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE entries (id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO entries VALUES (?)", [(f"e{i}",) for i in range(100)])
        db.commit()
        (data / "keys.json").write_text('{"keys": []}')
        env = {**os.environ, "DATA_DIR": str(data), "BACKUP_DIR": str(backup), "STATE_DIR": str(state),
               "BACKUP_INTERVAL_SECONDS": "3600"}  # fmt: skip
        proc = subprocess.Popen([sys.executable, "-c", script("spire_sqlite_backup.py")], env=env)
        try:
            deadline = time.time() + 30
            while not (state / "last-success").exists() and time.time() < deadline:
                time.sleep(0.1)
            assert (state / "last-success").exists(), "no backup within 30s"
        finally:
            proc.kill()
            proc.wait()
            db.close()
        copy = sqlite3.connect(backup / "datastore.sqlite3")
        assert copy.execute("SELECT count(*) FROM entries").fetchone()[0] == 100
        copy.close()
        assert (backup / "keys.json").read_text() == '{"keys": []}'
        assert not list(backup.glob("*.partial"))
        marker = str(state / "last-success")
        check = freshness_check(60, marker=marker)
        assert subprocess.run(check[1:], check=False).returncode == 0
        Path(marker).write_text(str(int(time.time()) - 3600))
        assert subprocess.run(check[1:], check=False).returncode == 1

    def test_missing_datastore_is_reported_and_retried(self, tmp_path: Path) -> None:
        env = {**os.environ, "DATA_DIR": str(tmp_path), "BACKUP_DIR": str(tmp_path), "STATE_DIR": str(tmp_path),
               "BACKUP_INTERVAL_SECONDS": "3600"}  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-c", script("spire_sqlite_backup.py")], env=env, stderr=subprocess.PIPE, text=True
        )
        time.sleep(1.5)
        proc.kill()
        _, err = proc.communicate()
        assert "backup failed" in err and "retrying" in err
        assert not (tmp_path / "last-success").exists()


class TestSqliteRestoreScriptRuns:
    @staticmethod
    def restore(tmp_path: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "BACKUP_DIR": str(tmp_path / "backup")}
        return subprocess.run(
            ["sh", "-c", script("spire-sqlite-restore.sh")], env=env, capture_output=True, text=True, check=False
        )

    @pytest.fixture
    def dirs(self, tmp_path: Path) -> Path:
        (tmp_path / "data").mkdir()
        (tmp_path / "backup").mkdir()
        return tmp_path

    @pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns to the server's uid")
    def test_restores_into_an_empty_volume(self, dirs: Path) -> None:
        (dirs / "backup" / "datastore.sqlite3").write_bytes(b"backup")
        (dirs / "backup" / "keys.json").write_text("{}")
        out = self.restore(dirs)
        assert out.returncode == 0, out.stderr
        assert (dirs / "data" / "datastore.sqlite3").read_bytes() == b"backup"
        assert (dirs / "data" / "keys.json").stat().st_uid == 1000

    @pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns to the server's uid")
    def test_never_overwrites_a_live_datastore(self, dirs: Path) -> None:
        (dirs / "data" / "datastore.sqlite3").write_bytes(b"live")
        (dirs / "backup" / "datastore.sqlite3").write_bytes(b"backup")
        out = self.restore(dirs)
        assert out.returncode == 0 and "nothing to restore" in out.stdout
        assert (dirs / "data" / "datastore.sqlite3").read_bytes() == b"live"

    @pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns to the server's uid")
    def test_no_backup_starts_empty(self, dirs: Path) -> None:
        out = self.restore(dirs)
        assert out.returncode == 0 and "starts empty" in out.stderr
        assert not list((dirs / "data").iterdir())
