"""Workspace conventions shared with scripts/up: backend, passphrase, interpreter, config check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ops.errors import ExitCode, OpsError
from ops.workspace import backend_url, raw_config, stack_names, validate_stack_config, workspace_env
from tests.harness.mock_engine import ROOT


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for f in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


class TestStackConfigIsCheckedWithTheProgramsModel:
    @pytest.mark.parametrize("stack", stack_names(ROOT))
    def test_every_committed_stack_file_is_valid(self, stack: str) -> None:
        cfg = validate_stack_config(stack, ROOT)
        assert cfg.environment == raw_config(stack, ROOT)["environment"]

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
