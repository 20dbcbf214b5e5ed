"""ZitiStack: controller bootstrap without a password in the environment, a Pulumi-owned controller
PKI root, console at /zac, the router (ZitiRouter) enrolled with the edge-router resource's JWT
delivered as a Swarm secret, spiffe-helper sidecars, and the controller backup/restore scripts (run
for real with a `ziti` CLI double)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import stack_config
from components import ziti_router, ziti_stack
from components.scripts import script as script_text
from components.spiffe_helper import SVID_DIR
from policy import validators as policy_rules
from stack_config import ConfigError, versions
from tests.components._platform import (
    CONTAINER,
    SECRET,
    VOLUME,
    attached_networks,
    network_names,
    platform,
    provider_of_node,
    provider_urn,
    secret_payload,
    services,
    spec,
    unwrap,
)
from tests.components.test_spire_conf import parse
from tests.harness.mock_engine import SECRET_PREFIX, ProgramRun, run_program

ZITI_RESTORE = script_text("ziti-controller-restore.sh")
ZITI_BACKUP = script_text("ziti-backup.bash")

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyb3V0ZXIifQ.c2lnbmF0dXJl"


@pytest.fixture(scope="module", params=["dev", "prod"])
def built(request: pytest.FixtureRequest) -> tuple[ProgramRun, dict[str, Any]]:
    return platform(request.param)


class TestController:
    def test_bootstrap_environment(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        cs = spec(services(r)["ziti-controller"])
        env = cs["env"]
        assert cs["image"] == f"docker.io/openziti/ziti-controller:{versions.ZITI}"
        # The pinned image's bootstrap has no cluster mode: no ZITI_BOOTSTRAP_CLUSTER/ZITI_CLUSTER_*.
        assert not [k for k in env if "CLUSTER" in k]
        assert env["ZITI_BOOTSTRAP_CONSOLE"] == "true" and env["ZITI_BOOTSTRAP_DATABASE"] == "true"
        assert env["ZITI_CTRL_DATABASE_FILE"] == "bbolt.db"  # the image's default, under the persisted home
        # The same function renders what servers/ziti.py starts for real.
        assert set(env) == set(ziti_stack.controller_env(stack_config.parse({"environment": "dev"}).ziti))
        assert env["ZITI_CTRL_ADVERTISED_PORT"] == "1280"
        assert "ZITI_PWD" not in env
        secret = next(s for s in cs["secrets"] if s["fileName"] == ziti_stack.ADMIN_PASSWORD_FILE)
        assert f"/run/secrets/{secret['fileName']}" in cs["commands"][2]
        assert cs["args"] == ["run", "config.yml"]
        assert cs["healthcheck"]["tests"] == ["CMD", "ziti", "agent", "stats"]
        (port,) = services(r)["ziti-controller"].inputs["endpointSpec"]["ports"]
        assert port["publishedPort"] == port["targetPort"] == 1280

    def test_urls_and_console(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        host = "localhost" if r.stack == "dev" else "ziti.zt.acme-identity.net"
        assert r.exports["ziti.controller_url"].value == f"https://{host}:1280"
        assert r.exports["ziti.console_url"].value == f"https://{host}:1280/zac/"
        assert r.exports["ziti.admin_password"].secret
        images = [spec(s)["image"] for s in services(r).values()] + [c.inputs["image"] for c in r.of_type(CONTAINER)]
        assert not [i for i in images if "/zac" in i or "ziti-console" in i], "the standalone console is deprecated"

    def test_aliased_by_its_advertised_name_in_prod(self, built: tuple[ProgramRun, dict[str, Any]]) -> None:
        r, _ = built
        nets = services(r)["ziti-controller"].inputs["taskSpec"]["networksAdvanceds"]
        ziti = next(n for n in nets if network_names(r).get(n["id"]) == "ziti")
        if r.stack == "prod":
            assert ziti["aliases"] == ["ziti.zt.acme-identity.net"]
        else:
            assert not ziti.get("aliases"), "localhost cannot be an overlay alias"
        assert {network_names(r)[i] for i in attached_networks(r, services(r)["ziti-controller"])} == {
            "ziti",
            "keycloak",
        }


class TestRouter:
    def test_router_is_enrolled_with_the_edge_router_resources_jwt(self) -> None:
        r, _ = platform("prod")
        svc = services(r)["ziti-router"]
        cs = spec(svc)
        (secret,) = cs["secrets"]
        assert cs["env"]["ZITI_ENROLL_TOKEN"] == f"/run/secrets/{secret['fileName']}"
        jwt = r.exports["trust.router_enrollment_jwt"]
        assert jwt.secret and jwt.value.startswith(SECRET_PREFIX), "the JWT comes from ZitiEdgeRouter"
        assert jwt.value not in str(cs["env"])
        jwt_secret = next(s for s in r.of_type(SECRET) if s.name == "ziti-router-jwt")
        assert secret_payload(jwt_secret) == jwt.value
        edge_router = r.get("pulumi-python:dynamic/ziti:EdgeRouter", "ziti-trust-router")
        assert edge_router.urn in jwt_secret.dependencies, "the secret waits for the edge-router resource"
        assert cs["env"]["ZITI_ROUTER_ADVERTISED_ADDRESS"] == "router.zt.acme-identity.net"
        # The router image's bootstrap stops before enrolling without the controller's address.
        assert cs["env"]["ZITI_CTRL_ADVERTISED_ADDRESS"] == "ziti.zt.acme-identity.net"
        assert cs["env"]["ZITI_CTRL_ADVERTISED_PORT"] == "1280"
        assert cs["image"] == f"docker.io/openziti/ziti-router:{versions.ZITI}"
        (port,) = svc.inputs["endpointSpec"]["ports"]
        assert port["publishedPort"] == 3022
        assert services(r)["ziti-controller"].urn in svc.dependencies
        assert r.get(VOLUME, "ziti-router-data").inputs["driver"] == "local", "the enrolled identity persists"

    def test_main_builds_the_router(self) -> None:
        r = run_program("dev", False)
        assert "ziti-router" in services(r)

    def test_controller_pki_root_is_pulumi_owned_and_delivered_as_secrets(
        self, built: tuple[ProgramRun, dict[str, Any]]
    ) -> None:
        r, _ = built
        cs = spec(services(r)["ziti-controller"])
        files = {s["fileName"] for s in cs["secrets"]}
        assert {ziti_stack.PKI_ROOT_CERT_FILE, ziti_stack.PKI_ROOT_KEY_FILE} <= files
        cert = r.get("tls:index/selfSignedCert:SelfSignedCert", "ziti-pki-root")
        assert cert.inputs["isCaCertificate"] is True
        cluster_td = "ctrl.zt.acme-identity.net" if r.stack == "prod" else "ctrl.dev.zt.internal"
        assert cert.inputs["uris"] == [f"spiffe://{cluster_td}"]
        key_secret = r.get(SECRET, "ziti-pki-root-key")
        assert "data" in key_secret.additional_secret_outputs
        # The wrapper installs the root only on an empty volume, before the image's bootstrap.
        wrapper = cs["commands"][2]
        assert wrapper.index("root.cert") < wrapper.index("exec /entrypoint.bash")
        assert 'if [[ ! -s "$root/certs/root.cert" ]]' in wrapper


class TestSvidHelper:
    def test_dev_demo_workload_gets_a_helper(self) -> None:
        r, objs = platform("dev")
        helper = r.get(CONTAINER, "ziti-svid-demo-api-container")
        labels = {lbl["label"]: lbl["value"] for lbl in helper.inputs["labels"]}
        assert labels == {"com.docker.compose.service": "demo-api"}, "the workload's selectors match the helper"
        assert helper.inputs["networkMode"] == "none"
        assert provider_urn(helper) == provider_of_node(r, "local")
        assert r.get(CONTAINER, "spire-agent-local").urn in helper.dependencies
        vols = {v["containerPath"]: v for v in helper.inputs["volumes"]}
        assert vols["/run/spire/sockets"]["readOnly"] is True
        assert vols[SVID_DIR]["volumeName"] == "svid-demo-api"
        volume = r.get(VOLUME, "ziti-svid-demo-api-volume")
        assert volume.inputs["driverOpts"]["type"] == "tmpfs", "keys never touch disk"
        files = {u["file"]: u["content"] for u in unwrap(helper.inputs["uploads"])}
        conf = parse(files[helper.inputs["command"][1]])
        assert conf["agent_address"] == objs["spire"].agent_socket_path and conf["cert_dir"] == SVID_DIR
        probe_conf = helper.inputs["healthcheck"]["tests"][3]
        assert parse(files[probe_conf])["daemon_mode"] is False
        assert helper.inputs["healthcheck"]["tests"][-1] == "-daemon-mode=false"

    def test_dev_helper_has_no_limit_and_prod_helper_has_one(self) -> None:
        dev, _ = platform("dev")
        assert not dev.get(CONTAINER, "ziti-svid-demo-api-container").inputs.get("memory")
        workload = {
            "spiffePath": "/ns/edge/sa/gw",
            "node": "worker-1",
            "selectors": ["docker:label:acme.workload:edge-gw"],
            "svidHelper": True,
        }
        r, objs = platform("prod", config={"workloads": {"edge-gw": workload}})
        helper = r.get(CONTAINER, "ziti-svid-edge-gw-container")
        assert helper.inputs["memory"] > 0, "resource limits in prod, for every long-running container"
        assert provider_urn(helper) == provider_of_node(r, "worker-1")
        assert set(objs["ziti"].svid_helpers) == {"edge-gw"}
        triples = [(x.urn, x.type, x.inputs) for x in r.resources if x.custom]
        assert policy_rules.check_stack(triples, "prod") == [], "the policy pack accepts the prod helper"

    def test_prod_workloads_without_the_flag_get_none(self) -> None:
        r, objs = platform("prod")
        assert objs["ziti"].svid_helpers == {}
        assert not [c for c in r.of_type(CONTAINER) if "svid" in c.name]


class TestBackupWiring:
    def test_prod_backup_job(self) -> None:
        r, _ = platform("prod")
        cs = spec(services(r)["ziti-backup"])
        assert cs["env"]["ZITI_PWD_FILE"].startswith("/run/secrets/")
        mounts = {m["target"]: m for m in cs["mounts"]}
        assert mounts["/backup"]["volumeOptions"]["driverName"] == "rclone"
        assert "/ziti-controller" in mounts

    def test_restore_in_dev_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="restoreOnFirstStart"):
            platform("dev", config={"storage": {"restoreOnFirstStart": True}})



ZITI_DOUBLE = r"""#!/bin/bash
# `ziti` test double: checks the login arguments, writes a snapshot like the controller does.
echo "ziti $*" >> "$CALLS"
case "$1 $2" in
  "edge login")
    [[ "$*" == *"--ca $ZITI_HOME/pki/root/certs/root.cert"* ]] || exit 3
    [[ "$*" == *"--password s3cret"* ]] || exit 4 ;;
  "edge db")
    echo snapshot > "$ZITI_HOME/bbolt.db-20260101-120000" ;;  # where the real 1.7.2 controller writes it
esac
"""


class TestControllerBackupRuns:
    def test_snapshot_config_and_pki_are_published(self, tmp_path: Path) -> None:
        home, backup, state, bin_ = (tmp_path / d for d in ("home", "backup", "state", "bin"))
        for d in (home / "pki" / "root" / "certs", backup, state, bin_):
            d.mkdir(parents=True)
        (home / "pki" / "root" / "certs" / "root.cert").write_text("ROOT")
        (home / "config.yml").write_text("v: 3\n")
        (tmp_path / "pwd").write_text("s3cret")
        (bin_ / "ziti").write_text(ZITI_DOUBLE)
        (bin_ / "ziti").chmod(0o755)
        env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "ZITI_HOME": str(home), "STATE_DIR": str(state),
               "BACKUP_DIR": str(backup), "ZITI_PWD_FILE": str(tmp_path / "pwd"), "ZITI_USER": "admin",
               "ZITI_CTRL_ADVERTISED_ADDRESS": "ziti.acme.net", "ZITI_CTRL_ADVERTISED_PORT": "1280",
               "BACKUP_INTERVAL_SECONDS": "3600", "CALLS": str(tmp_path / "calls"),
               "SNAPSHOT_WAIT_SECONDS": "0"}  # fmt: skip
        proc = subprocess.Popen(
            ["bash", "-c", ZITI_BACKUP], env=env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.time() + 30
            while time.time() < deadline and not (state / "last-success").exists():
                time.sleep(0.1)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate(timeout=10)
        assert (state / "last-success").exists(), err
        assert (backup / "ctrl.db").read_text() == "snapshot\n"
        assert (backup / "config.yml").read_text() == "v: 3\n"
        assert (backup / "pki" / "root" / "certs" / "root.cert").read_text() == "ROOT"
        assert not (home / "bbolt.db-20260101-120000").exists(), "local snapshot cleaned up"
        calls = (tmp_path / "calls").read_text().splitlines()
        assert calls[0].startswith("ziti edge login https://ziti.acme.net:1280 ")
        assert calls[1] == "ziti edge db snapshot"


class TestControllerRestoreRuns:
    @pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns to the controller's uid")
    def test_restores_pki_config_and_the_database_where_config_names_it(self, tmp_path: Path) -> None:
        data, backup = tmp_path / "data", tmp_path / "backup"
        (backup / "pki" / "root").mkdir(parents=True)
        data.mkdir()
        (backup / "pki" / "root" / "root.cert").write_text("ROOT")
        config = 'v: 3\ndb:                     "/ziti-controller/bbolt.db"\n'  # as `ziti create config` writes it
        (backup / "config.yml").write_text(config)
        (backup / "ctrl.db").write_text("snapshot")
        env = {**os.environ, "DATA_DIR": str(data), "BACKUP_DIR": str(backup)}
        out = subprocess.run(["sh", "-c", ZITI_RESTORE], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert (data / "pki" / "root" / "root.cert").read_text() == "ROOT"
        assert (data / "bbolt.db").read_text() == "snapshot"
        assert (data / "config.yml").read_text() == config
        assert (data / "config.yml").stat().st_uid == 2171
        again = subprocess.run(["sh", "-c", ZITI_RESTORE], env=env, capture_output=True, text=True)
        assert "nothing to restore" in again.stdout

    @pytest.mark.skipif(os.geteuid() != 0, reason="the script chowns to the controller's uid")
    def test_a_config_without_a_database_under_the_volume_is_refused(self, tmp_path: Path) -> None:
        data, backup = tmp_path / "data", tmp_path / "backup"
        (backup / "pki").mkdir(parents=True)
        data.mkdir()
        (backup / "config.yml").write_text('db: "/elsewhere/bbolt.db"\n')
        (backup / "ctrl.db").write_text("snapshot")
        env = {**os.environ, "DATA_DIR": str(data), "BACKUP_DIR": str(backup)}
        out = subprocess.run(["sh", "-c", ZITI_RESTORE], env=env, capture_output=True, text=True)
        assert out.returncode != 0 and "names no database under /ziti-controller" in out.stderr
        assert not (data / "config.yml").exists()


class TestControllerWrapperRuns:
    @staticmethod
    def _run(tmp_path: Path) -> subprocess.CompletedProcess[str]:
        secrets, home = tmp_path / "secrets", tmp_path / "home"
        entry = tmp_path / "entrypoint.bash"
        entry.write_text('#!/bin/bash\necho "$* pwd=$ZITI_PWD"\n')
        entry.chmod(0o755)
        script = (
            ziti_stack.CONTROLLER_WRAPPER.replace("/run/secrets", str(secrets))
            .replace(ziti_stack.CONTROLLER_HOME, str(home))
            .replace("/entrypoint.bash", str(entry))
        )
        return subprocess.run(
            ["bash", "-c", script, "entrypoint", "run", "config.yml"], capture_output=True, text=True, check=False
        )

    @staticmethod
    def _secrets(tmp_path: Path, cert: str = "ROOT CERT") -> None:
        secrets = tmp_path / "secrets"
        secrets.mkdir(exist_ok=True)
        (secrets / ziti_stack.ADMIN_PASSWORD_FILE).write_text("pw")
        (secrets / ziti_stack.PKI_ROOT_CERT_FILE).write_text(cert)
        (secrets / ziti_stack.PKI_ROOT_KEY_FILE).write_text("ROOT KEY")

    def test_password_reaches_the_entrypoint_only(self, tmp_path: Path) -> None:
        self._secrets(tmp_path)
        out = self._run(tmp_path)
        assert out.stdout.strip() == "run config.yml pwd=pw", out.stderr

    def test_pulumi_root_is_installed_on_an_empty_volume_only(self, tmp_path: Path) -> None:
        self._secrets(tmp_path)
        assert self._run(tmp_path).returncode == 0
        root = tmp_path / "home" / "pki" / "root"
        assert (root / "certs" / "root.cert").read_text() == "ROOT CERT"
        assert (root / "keys" / "root.key").read_text() == "ROOT KEY"
        assert oct((root / "keys" / "root.key").stat().st_mode & 0o777) == "0o400"
        # The CA directory as `ziti pki` makes it (store.InitCADir), so the bootstrap can sign with it.
        assert (root / "index.txt").read_text() == ""
        assert (root / "serial").read_text() == (root / "crlnumber").read_text() == "01\n"
        assert (root / "index.txt.attr").read_text() == "unique_subject = no\n"
        assert (root / "crls").is_dir()
        # A later start with a different secret leaves the controller's existing PKI alone.
        self._secrets(tmp_path, cert="ROTATED")
        assert self._run(tmp_path).returncode == 0
        assert (root / "certs" / "root.cert").read_text() == "ROOT CERT"


class TestRouterWrapperRuns:
    """The router's wrapper, run for real: first start, restart, and a re-created edge router."""

    @staticmethod
    def _start(tmp_path: Path, jwt: str) -> subprocess.CompletedProcess[str]:
        secrets, home = tmp_path / "secrets", tmp_path / "home"
        secrets.mkdir(exist_ok=True)
        home.mkdir(exist_ok=True)
        (secrets / ziti_router.ENROLLMENT_JWT_FILE).write_text(jwt)
        entry = tmp_path / "entrypoint.bash"
        # Stands in for the image's bootstrap: enroll (write the identity) only when it is missing.
        entry.write_text(
            "#!/bin/bash\n"
            f"[[ -s {home}/identity.cert ]] || cp {secrets}/{ziti_router.ENROLLMENT_JWT_FILE} {home}/identity.cert\n"
            'echo "$*"\n'
        )
        entry.chmod(0o755)
        script = (
            ziti_router.ROUTER_WRAPPER.replace("/run/secrets", str(secrets))
            .replace(f'home="{ziti_router.ROUTER_HOME}"', f'home="{home}"')
            .replace("/entrypoint.bash", str(entry))
        )
        return subprocess.run(
            ["bash", "-c", script, "entrypoint", "run", "config.yml"], capture_output=True, text=True, check=False
        )

    def test_first_start_and_restart_keep_the_identity(self, tmp_path: Path) -> None:
        first = self._start(tmp_path, "jwt-1")
        assert first.returncode == 0 and first.stdout.strip() == "run config.yml", first.stderr
        identity = tmp_path / "home" / "identity.cert"
        assert identity.read_text() == "jwt-1"
        again = self._start(tmp_path, "jwt-1")
        assert again.returncode == 0 and "token changed" not in again.stdout
        assert identity.read_text() == "jwt-1"
        assert not list((tmp_path / "home").glob(".replaced-*"))

    def test_a_new_token_moves_the_old_identity_aside_and_enrolls_again(self, tmp_path: Path) -> None:
        assert self._start(tmp_path, "jwt-1").returncode == 0
        (tmp_path / "home" / "config.yml").write_text("old router config")
        out = self._start(tmp_path, "jwt-2")
        assert out.returncode == 0 and "enrollment token changed" in out.stdout, out.stderr
        home = tmp_path / "home"
        assert (home / "identity.cert").read_text() == "jwt-2", "enrolled with the new token"
        (old,) = home.glob(".replaced-*")
        assert (old / "identity.cert").read_text() == "jwt-1" and (old / "config.yml").exists()
        assert not (home / "config.yml").exists(), "the bootstrap writes a fresh config"
        assert "jwt-1" not in out.stdout + out.stderr and "jwt-2" not in out.stdout + out.stderr, "no token printed"

    def test_the_service_runs_the_wrapper(self) -> None:
        r, _ = platform("dev")
        cs = spec(services(r)["ziti-router"])
        assert cs["commands"] == ["/bin/bash", "-c", ziti_router.ROUTER_WRAPPER, "entrypoint"]
        assert cs["args"] == ["run", "config.yml"]
