"""The controller and router as the stacks render them meet the real `ziti` 1.7.2: the session's
controller came up from ZitiStack's wrapper + env and the image's own bootstrap; the backup loop
(`ziti edge db snapshot`) and the restore script run against a real controller and the restored
controller starts with the data; a session that expires on the real controller is renewed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from typing import Any

import pytest
from cryptography import x509

from components import ziti_stack
from components.scripts import script as script_text
from dynamic_providers.ziti.client import ZitiClient
from dynamic_providers.ziti.models import ZitiConnection
from servers import ziti as ziti_server
from servers.process import Run
from tests.real._ziti import Admin, unique, ziti_section

ZITI_RESTORE = script_text("ziti-controller-restore.sh")
ZITI_BACKUP = script_text("ziti-backup.bash")

ziti = pytest.fixture(scope="module")(ziti_section)


def section(ctrl: ziti_server.Controller) -> dict[str, Any]:
    return {"url": ctrl.url, "ca_pem": ctrl.ca_pem, "admin_user": ctrl.user, "admin_password": ctrl.password}


def test_the_rendered_controller_runs_on_the_pulumi_style_root(ziti) -> None:
    home = ziti["home"]
    config = open(ziti["config"]).read()
    assert f'db:                     "{home}/{ziti_stack.DATABASE_FILE}"' in config  # ZITI_CTRL_DATABASE_FILE
    root = x509.load_pem_x509_certificate(ziti["ca_pem"].encode())
    server = x509.load_pem_x509_certificate(open(f"{home}/pki/intermediate/certs/server.cert", "rb").read())
    inter = x509.load_pem_x509_certificate(open(f"{home}/pki/intermediate/certs/intermediate.cert", "rb").read())
    inter.verify_directly_issued_by(root)  # the bootstrap signed its intermediate with our root
    server.verify_directly_issued_by(inter)
    log = open(ziti["log"]).read()
    assert "default generated trust domain" not in log  # the root's SPIFFE URI is the trust domain
    assert ziti["admin_password"] not in log  # the wrapper keeps the password out of the log
    assert ziti["router"]["id"]  # the router: created through the API, enrolled by its bootstrap, online


def test_backup_loop_and_restore_script_against_a_real_controller(servers_run: Run) -> None:
    ctrl = ziti_server.Controller(servers_run, "backup-controller")
    ctrl.place_secrets()
    ctrl.start()
    admin = Admin(section(ctrl))
    marker = unique("kept")
    ident = admin.create("identities", {"name": marker, "type": "Default", "isAdmin": False,
                                        "externalId": f"spiffe://restore.test/{marker}"})
    admin.close()
    state, backup = servers_run.dir("ziti", "backup-state"), servers_run.dir("ziti", "backup")
    env = {
        **os.environ, "PATH": f"{ctrl.bin}:{os.environ['PATH']}", "ZITI_HOME": str(ctrl.home),
        "STATE_DIR": str(state), "BACKUP_DIR": str(backup), "ZITI_USER": ctrl.user,
        "ZITI_PWD_FILE": str(ctrl.secrets / ziti_stack.ADMIN_PASSWORD_FILE),
        "ZITI_CTRL_ADVERTISED_ADDRESS": "localhost", "ZITI_CTRL_ADVERTISED_PORT": str(ctrl.port),
        "BACKUP_INTERVAL_SECONDS": "3600", "SNAPSHOT_WAIT_SECONDS": "1", "RETRY_SECONDS": "2",
    }
    loop = subprocess.Popen(["bash", "-c", ZITI_BACKUP], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (state / "last-success").exists():
            time.sleep(0.5)
    finally:
        os.killpg(loop.pid, signal.SIGKILL)
        out, err = loop.communicate(timeout=10)
    assert (state / "last-success").exists(), out + err
    assert (backup / "ctrl.db").stat().st_size > 0 and (backup / "config.yml").exists()
    assert (backup / "pki" / "root" / "certs" / "root.cert").exists()
    assert not list(ctrl.home.glob(f"{ziti_stack.DATABASE_FILE}-*")), "the local snapshot is cleaned up"
    assert ctrl.password not in out + err

    # The volume is lost: the controller's home is emptied, the restore script fills it from the
    # backup, and the same wrapper + bootstrap start the controller on it.
    ctrl.stop()
    shutil.move(str(ctrl.home), str(ctrl.home) + ".lost")
    ctrl.home.mkdir()
    done = subprocess.run(["sh", "-c", ZITI_RESTORE], capture_output=True, text=True, check=False,
                          env={**os.environ, "DATA_DIR": str(ctrl.home), "BACKUP_DIR": str(backup),
                               "ZITI_HOME": str(ctrl.home)})
    assert done.returncode == 0 and "restored the controller" in done.stdout, done.stderr
    ctrl.start()
    admin = Admin(section(ctrl))  # the same admin password: it lives in the restored database
    try:
        restored = admin.get(f"/identities/{ident}")
        assert restored is not None and restored["name"] == marker
    finally:
        admin.close()
        ctrl.stop()


def test_an_expired_session_on_the_real_controller_is_renewed(servers_run: Run) -> None:
    """sessionTimeout shortened to the controller's minimum (1m) in the bootstrapped config; a
    client whose session expired while idle gets the real 401 and logs in again."""
    ctrl = ziti_server.Controller(servers_run, "expiry-controller")
    ctrl.place_secrets()
    ctrl.start()
    ctrl.stop()
    ctrl.set_session_timeout("1m")
    ctrl.start()  # a restart on an initialised home: the wrapper and bootstrap keep its PKI and db
    conn = ZitiConnection.model_validate({"url": ctrl.url, "username": ctrl.user, "password": ctrl.password,
                                          "ca_bundle_pem": ctrl.ca_pem})
    try:
        with ZitiClient(conn) as c:
            c.find_by_name("cas", "nothing")
            first = c.session._credential  # the process's session for this controller and admin
            stale = first
            time.sleep(75)  # idle past the timeout; the controller's enforcer runs every 5 s
            admin = Admin(section(ctrl))
            r = admin.http.get("/cas", headers={"zt-session": str(stale)})
            admin.close()
            assert r.status_code == 401, "the session really expired"
            assert c.find_by_name("cas", "nothing") is None  # the client logs in again and answers
            assert c.session._credential and c.session._credential != first
    finally:
        ctrl.stop()
