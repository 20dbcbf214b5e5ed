"""components/scripts: every script loads as a file, and the container paths each one names are the
ones its component mounts (the scripts hold literal paths; the components, constants)."""

from __future__ import annotations

import pytest

from components import keycloak_stack, ziti_router, ziti_stack
from components.docker_helpers import SECRETS_DIR
from components.scripts import names, script

# script -> the mount paths it must name, written out
PATHS = {
    "keycloak-wrapper.bash": ["/run/secrets/keycloak-db-password", "/run/secrets/keycloak-admin-password",
                              "/opt/keycloak/bin/kc.sh"],
    "ziti-controller-wrapper.bash": ["/ziti-controller/pki/root", "/run/secrets/ziti-pki-root.cert",
                                     "/run/secrets/ziti-pki-root.key", "/run/secrets/ziti-admin-password"],
    "ziti-router-wrapper.bash": ['home="/ziti-router"', "/run/secrets/ziti-router-enrollment.jwt"],
}  # fmt: skip


def test_the_files() -> None:
    assert names() == [
        "backup-fresh.sh", "keycloak-ready.bash", "keycloak-wrapper.bash", "postgres-backup.sh",
        "postgres-restore.sh", "spire-sqlite-restore.sh", "spire_sqlite_backup.py", "ziti-backup.bash",
        "ziti-controller-restore.sh", "ziti-controller-wrapper.bash", "ziti-router-wrapper.bash",
    ]  # fmt: skip


@pytest.mark.parametrize("name", sorted(PATHS))
def test_names_the_paths_its_component_mounts(name: str) -> None:
    text = script(name)
    for path in PATHS[name]:
        assert path in text, f"{name} does not name {path}"


def test_the_components_mount_those_paths() -> None:
    assert f"{SECRETS_DIR}/{keycloak_stack.DB_PASSWORD_FILE}" == "/run/secrets/keycloak-db-password"
    assert f"{SECRETS_DIR}/{keycloak_stack.ADMIN_PASSWORD_FILE}" == "/run/secrets/keycloak-admin-password"
    assert f"{SECRETS_DIR}/{ziti_stack.PKI_ROOT_CERT_FILE}" == "/run/secrets/ziti-pki-root.cert"
    assert f"{SECRETS_DIR}/{ziti_stack.PKI_ROOT_KEY_FILE}" == "/run/secrets/ziti-pki-root.key"
    assert f"{SECRETS_DIR}/{ziti_stack.ADMIN_PASSWORD_FILE}" == "/run/secrets/ziti-admin-password"
    assert f"{ziti_stack.CONTROLLER_HOME}/pki/root" == "/ziti-controller/pki/root"
    assert f"{SECRETS_DIR}/{ziti_router.ENROLLMENT_JWT_FILE}" == "/run/secrets/ziti-router-enrollment.jwt"
    assert ziti_router.ROUTER_HOME == "/ziti-router"


def test_the_postgres_restore_config_keeps_its_content_name() -> None:
    """A Swarm config's name is a hash of its content: the file holds the text the string held, so an
    existing stack keeps its config (`keycloak-postgres-restore-<hash>`)."""
    from components.docker_helpers import content_name

    assert content_name("keycloak-postgres-restore", script("postgres-restore.sh")) == (
        "keycloak-postgres-restore-767a782e51e4"  # as main had it before the move
    )
