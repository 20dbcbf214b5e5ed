"""Workspace conventions shared with scripts/up: backend, passphrase, interpreter, config check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ops.errors import ExitCode, OpsError
from ops.workspace import backend_url, raw_config, stack_names, stack_values, validate_stack_config, workspace_env
from tests.harness.mock_engine import OPERATOR_SECRETS, ROOT, stack_platform

P = "identity-platform"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for f in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def add_config(project: Path, stack: str, text: str) -> None:
    """Append `text` (YAML lines of the `config:` mapping) to the copied stack file."""
    f = project / f"Pulumi.{stack}.yaml"
    f.write_text(f.read_text().rstrip("\n") + "\n" + text)


def set_operator_secrets(project: Path, stack: str) -> None:
    """The `secure:` entries an operator's `pulumi config set --secret` writes for this stack's own
    keys (the harness's OPERATOR_SECRETS; ops cannot decrypt them and need not)."""
    keys = OPERATOR_SECRETS.get(f"platform {stack_platform(stack)}", ())
    add_config(project, stack, "".join(f"  {k}:\n    secure: v1:AAAA\n" for k in keys if k.startswith(f"{P}:")))


class TestStackConfigIsCheckedWithTheProgramsModel:
    @pytest.mark.parametrize("stack", stack_names(ROOT))
    def test_every_committed_stack_file_is_valid_once_its_secrets_are_set(self, project: Path, stack: str) -> None:
        set_operator_secrets(project, stack)
        cfg = validate_stack_config(stack, project)
        assert cfg.environment == raw_config(stack, project)["environment"]

    def test_external_without_the_operators_secrets_fails_as_preview_does(self) -> None:
        # Pulumi.external.yaml leaves the admin passwords to the operator; preview refuses it until then.
        with pytest.raises(OpsError) as err:
            validate_stack_config("external", ROOT)
        lines = err.value.message.split("\n  ")[1:]
        assert [line.split(": ", 1)[0] for line in lines] == [f"{P}:keycloakAdminPassword", f"{P}:zitiAdminPassword"]
        assert all("pulumi config set --secret" in line for line in lines), lines

    def test_secure_values_are_present_and_secret_but_unread(self, project: Path) -> None:
        set_operator_secrets(project, "external")
        values, secret = stack_values("external", project)
        assert values[f"{P}:keycloakAdminPassword"] is None and values[f"{P}:zitiAdminPassword"] is None
        assert secret == {f"{P}:keycloakAdminPassword", f"{P}:zitiAdminPassword"}
        assert "keycloakAdminPassword" not in raw_config("external", project)

    def test_a_secret_in_plain_text_fails(self, project: Path) -> None:
        set_operator_secrets(project, "external")
        add_config(project, "external", f"  {P}:rootCaKey: not-a-key\n")
        with pytest.raises(OpsError) as err:
            validate_stack_config("external", project)
        assert f"{P}:rootCaKey: set in plain text; it is a secret" in err.value.message
        assert "not-a-key" not in err.value.message

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            (f"  {P}:workload:\n    x: {{}}\n", f"{P}:workload: unknown key (did you mean 'workloads'?)"),
            (f"  {P}:spirre:\n    trustDomain: a.b\n", f"{P}:spirre: unknown key (did you mean 'spire'?)"),
            ("  spire.trustDomain: a.b\n", f"{P}:spire.trustDomain: a key named like a path"),
            (f"  {P}:strict: maybe\n", f"{P}:strict: 'maybe' is not true or false"),
        ],
        ids=["typo-workloads", "typo-spire", "flat-path-key", "strict-maybe"],
    )
    def test_what_preview_refuses_fails_here_too(self, project: Path, line: str, expected: str) -> None:
        f = project / "Pulumi.dev.yaml"
        f.write_text(f.read_text().replace(f"  {P}:strict: false\n", "") + line)
        with pytest.raises(OpsError) as err:
            validate_stack_config("dev", project)
        assert err.value.code == ExitCode.CONFIG_ERROR
        assert expected in err.value.message, err.value.message

    def test_project_defaults_apply_and_secure_values_are_skipped(self) -> None:
        raw = raw_config("prod", ROOT)
        assert raw["region"] == "fra1"
        assert not any(isinstance(v, dict) and "secure" in v for v in raw.values())
        assert "token" not in raw and "spacesAccessId" not in raw

    def test_dev_gets_the_domain_default_from_pulumi_yaml(self) -> None:
        assert raw_config("dev", ROOT)["domain"] == "localhost"

    def test_strict_prod_placeholder_fails_naming_the_key(self, project: Path) -> None:
        f = project / "Pulumi.prod.yaml"
        f.write_text(f.read_text().replace("trustDomain: zt.acme-identity.net", "trustDomain: example.org"))
        with pytest.raises(OpsError) as err:
            validate_stack_config("prod", project)
        assert err.value.code == ExitCode.CONFIG_ERROR
        assert "identity-platform:spire.trustDomain" in err.value.message and "placeholder" in err.value.message

    def test_broken_yaml_is_a_config_error(self, project: Path) -> None:
        (project / "Pulumi.dev.yaml").write_text("config: [unclosed\n")
        with pytest.raises(OpsError, match="not valid YAML") as err:
            validate_stack_config("dev", project)
        assert err.value.code == ExitCode.CONFIG_ERROR

    def test_keys_of_other_namespaces_are_ignored(self, project: Path) -> None:
        f = project / "Pulumi.dev.yaml"
        f.write_text(f.read_text() + "  docker:host: unix:///var/run/docker.sock\n")
        assert validate_stack_config("dev", project).environment == "dev"


class TestBackendAndEnvironment:
    def test_default_backend_is_the_project_state_dir(self, project: Path) -> None:
        assert backend_url(project, {}) == (f"file://{project / '.pulumi-state'}", True)

    def test_env_backend_wins(self, project: Path) -> None:
        assert backend_url(project, {"PULUMI_BACKEND_URL": "https://api.pulumi.com"}) == (
            "https://api.pulumi.com",
            False,
        )

    def test_dev_default_backend_gets_an_empty_passphrase(self, project: Path) -> None:
        env = workspace_env("dev", project, {})
        assert env["PULUMI_CONFIG_PASSPHRASE"] == ""
        assert (project / ".pulumi-state").is_dir()

    def test_user_passphrase_is_never_copied_into_workspace_env(self, project: Path) -> None:
        for stack in ("dev", "prod"):
            env = workspace_env(stack, project, {"PULUMI_CONFIG_PASSPHRASE": "s3cret"})
            assert "s3cret" not in env.values()
            assert "PULUMI_CONFIG_PASSPHRASE" not in env

    def test_passphrase_file_counts_as_a_passphrase(self, project: Path) -> None:
        workspace_env("prod", project, {"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/pp"})

    @pytest.mark.parametrize("url", ["s3://state?region=fra1", None])
    def test_prod_without_passphrase_on_a_diy_backend_fails(self, project: Path, url: str | None) -> None:
        with pytest.raises(OpsError, match="PULUMI_CONFIG_PASSPHRASE") as err:
            workspace_env("prod", project, {"PULUMI_BACKEND_URL": url} if url else {})
        assert err.value.code == ExitCode.CONFIG_ERROR

    def test_dev_on_a_shared_backend_needs_the_passphrase_too(self, project: Path) -> None:
        with pytest.raises(OpsError):
            workspace_env("dev", project, {"PULUMI_BACKEND_URL": "s3://state?region=fra1"})

    def test_pulumi_cloud_and_kms_stacks_need_no_passphrase(self, project: Path) -> None:
        assert "PULUMI_CONFIG_PASSPHRASE" not in workspace_env(
            "prod", project, {"PULUMI_BACKEND_URL": "https://api.pulumi.com"}
        )
        f = project / "Pulumi.prod.yaml"
        f.write_text("secretsprovider: awskms://alias/zt-prod\n" + f.read_text())
        workspace_env("prod", project, {"PULUMI_BACKEND_URL": "s3://state"})

    def test_dynamic_provider_host_uses_the_project_venv(self, project: Path) -> None:
        assert "PULUMI_PYTHON_CMD" not in workspace_env("dev", project, {})
        venv_python = project / ".venv" / "bin" / "python"
        venv_python.parent.mkdir(parents=True)
        venv_python.write_text("")
        assert workspace_env("dev", project, {})["PULUMI_PYTHON_CMD"] == str(venv_python)
        assert "PULUMI_PYTHON_CMD" not in workspace_env("dev", project, {"PULUMI_PYTHON_CMD": "python3"})
