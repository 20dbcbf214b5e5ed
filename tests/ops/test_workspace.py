"""Workspace conventions shared with scripts/up: backend, passphrase, interpreter, config check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ops.errors import ExitCode, OpsError
from ops.workspace import (
    PROJECT_ENV,
    PROJECT_ROOT,
    backend_url,
    esc_environments,
    find_project,
    is_prod,
    local_backend,
    raw_config,
    short_name,
    stack_names,
    stack_values,
    validate_stack_config,
    workspace_env,
)
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
        for stack, backend in (("dev", {}), ("prod", {"PULUMI_BACKEND_URL": "s3://state"})):
            env = workspace_env(stack, project, {"PULUMI_CONFIG_PASSPHRASE": "s3cret", **backend})
            assert "s3cret" not in env.values()
            assert "PULUMI_CONFIG_PASSPHRASE" not in env

    def test_passphrase_file_counts_as_a_passphrase(self, project: Path) -> None:
        """prod on a DIY backend is refused without a passphrase (the test below); a passphrase file
        is one, and stays in the inherited environment (no empty passphrase shadows it)."""
        env = workspace_env(
            "prod", project, {"PULUMI_CONFIG_PASSPHRASE_FILE": "/run/secrets/pp", "PULUMI_BACKEND_URL": "s3://s"}
        )
        assert env["PULUMI_BACKEND_URL"] == "s3://s"
        assert not {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"} & env.keys()

    @pytest.mark.parametrize("url", ["s3://state?region=fra1", None])
    def test_prod_without_passphrase_on_a_diy_backend_fails(self, project: Path, url: str | None) -> None:
        with pytest.raises(OpsError, match="PULUMI_CONFIG_PASSPHRASE") as err:
            workspace_env("prod", project, {"PULUMI_BACKEND_URL": url or local_backend(project)})
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


class TestProdRefusesAnUnchosenLocalBackend:
    """A prod stack's state is every secret of it and the only record of what exists: with no
    backend chosen it is refused, never put in the working copy silently."""

    @pytest.mark.parametrize("stack", ["prod", "external", "acme/prod", "acme/identity-platform/prod"])
    def test_prod_stacks_without_a_backend_are_refused_naming_the_ways_to_choose(self, project: Path, stack) -> None:
        with pytest.raises(OpsError) as err:
            backend_url(project, {}, stack=stack)
        assert err.value.code == ExitCode.CONFIG_ERROR and err.value.kind == "backend_not_chosen"
        assert str(project / ".pulumi-state") in err.value.message
        hint = err.value.hint or ""
        assert "PULUMI_BACKEND_URL" in hint and "backend: {url: ...}" in hint and "--local-state" in hint
        with pytest.raises(OpsError, match="no state backend is chosen"):
            workspace_env(stack, project, {"PULUMI_CONFIG_PASSPHRASE": "p"})
        assert not (project / ".pulumi-state").exists()

    def test_dev_keeps_its_local_default(self, project: Path) -> None:
        assert backend_url(project, {}, stack="dev") == (local_backend(project), True)

    def test_the_environment_chooses(self, project: Path) -> None:
        assert backend_url(project, {"PULUMI_BACKEND_URL": "s3://st"}, stack="prod") == ("s3://st", False)

    def test_pulumi_yaml_backend_url_chooses_and_the_environment_wins_over_it(self, project: Path) -> None:
        f = project / "Pulumi.yaml"
        f.write_text(f.read_text() + "backend:\n  url: gs://team-state\n")
        assert backend_url(project, {}, stack="prod") == ("gs://team-state", False)
        assert backend_url(project, {"PULUMI_BACKEND_URL": "s3://st"}, stack="prod")[0] == "s3://st"
        assert workspace_env("prod", project, {"PULUMI_CONFIG_PASSPHRASE": "p"})["PULUMI_BACKEND_URL"] == "gs://team-state"

    def test_the_local_backend_named_explicitly_is_a_choice(self, project: Path) -> None:
        env = {"PULUMI_BACKEND_URL": local_backend(project), "PULUMI_CONFIG_PASSPHRASE": "p"}
        assert workspace_env("prod", project, env)["PULUMI_BACKEND_URL"] == local_backend(project)


class TestStackNames:
    @pytest.mark.parametrize("name", ["prod", "acme/prod", "acme/identity-platform/prod"])
    def test_every_form_pulumi_accepts_reads_the_same_stack_file(self, name: str) -> None:
        assert short_name(name) == "prod"
        assert raw_config(name, ROOT) == raw_config("prod", ROOT)
        assert is_prod(name, ROOT)

    @pytest.mark.parametrize(
        ("name", "why"),
        [("acme/other/prod", "belongs to project 'other'"), ("a/b/c/d", "not a stack name"), ("acme/", "not a stack")],
    )
    def test_other_names_are_usage_errors(self, name: str, why: str) -> None:
        with pytest.raises(OpsError, match=why) as err:
            validate_stack_config(name, ROOT)
        assert err.value.code == ExitCode.USAGE

    def test_dev_qualified_keeps_the_empty_passphrase_of_the_local_backend(self, project: Path) -> None:
        assert workspace_env("acme/dev", project, {})["PULUMI_CONFIG_PASSPHRASE"] == ""


def esc_stack(project: Path, environments: str, config: str) -> None:
    """Pulumi.esc.yaml importing ESC `environments`, with `config` lines of its own."""
    (project / "Pulumi.esc.yaml").write_text(f"environment:{environments}\nconfig:\n{config}")


class TestEscEnvironments:
    """Config from Pulumi ESC is opened by Pulumi Cloud when the CLI runs: only what the stack file
    alone decides is checked before it."""

    def test_a_stack_whose_config_the_environment_supplies_is_not_rejected(self, project: Path) -> None:
        # Every required key (environment, strict, the admin passwords of platform external) is missing here.
        esc_stack(project, "\n  - identity/prod", f"  {P}:platform: external\n")
        assert esc_environments("esc", project) == ["identity/prod"]
        assert validate_stack_config("esc", project) is None
        # Without the environment, the same file fails as preview would.
        (project / "Pulumi.plain.yaml").write_text(f"config:\n  {P}:platform: external\n")
        with pytest.raises(OpsError, match="environment"):
            validate_stack_config("plain", project)

    def test_the_imports_form_counts_too(self, project: Path) -> None:
        esc_stack(project, "\n  imports:\n    - identity/common\n    - identity/prod", "")
        assert esc_environments("esc", project) == ["identity/common", "identity/prod"]
        assert validate_stack_config("esc", project) is None

    @pytest.mark.parametrize(
        ("config", "expected"),
        [
            (f"  {P}:workload:\n    x: {{}}\n", f"{P}:workload: unknown key (did you mean 'workloads'?)"),
            (f"  {P}:zitiAdminPassword: hunter2\n", f"{P}:zitiAdminPassword: set in plain text; it is a secret"),
            ("  spire.trustDomain: a.b\n", f"{P}:spire.trustDomain: a key named like a path"),
        ],
        ids=["typo", "plain-secret", "flat-path-key"],
    )
    def test_what_the_file_alone_gets_wrong_is_still_refused(self, project: Path, config: str, expected: str) -> None:
        esc_stack(project, "\n  - identity/prod", config)
        with pytest.raises(OpsError) as err:
            validate_stack_config("esc", project)
        assert err.value.code == ExitCode.CONFIG_ERROR and expected in err.value.message
        assert "hunter2" not in err.value.message

    def test_an_esc_stack_that_does_not_say_its_environment_counts_as_prod(self, project: Path) -> None:
        esc_stack(project, "\n  - identity/prod", "")
        assert is_prod("esc", project)
        esc_stack(project, "\n  - identity/dev", f"  {P}:environment: dev\n")
        assert not is_prod("esc", project)


class TestProjectDiscovery:
    def test_explicit_directory_first(self, project: Path, tmp_path: Path) -> None:
        assert find_project(str(project), {PROJECT_ENV: "/nowhere"}, tmp_path) == project.resolve()

    def test_then_the_environment_variable(self, project: Path, tmp_path: Path) -> None:
        assert find_project(None, {PROJECT_ENV: str(project)}, tmp_path) == project.resolve()

    def test_then_the_current_directory_or_a_parent(self, project: Path) -> None:
        deep = project / "docs" / "deeper"
        deep.mkdir(parents=True)
        assert find_project(None, {}, deep) == project.resolve()

    def test_then_the_checkout_the_package_lives_in(self, tmp_path: Path) -> None:
        assert find_project(None, {}, tmp_path) == PROJECT_ROOT

    @pytest.mark.parametrize("how", ["flag", "env"])
    def test_a_named_directory_that_is_not_the_project_is_an_error(self, tmp_path: Path, how: str) -> None:
        (tmp_path / "Pulumi.yaml").write_text("name: another-project\nruntime: python\n")
        with pytest.raises(OpsError, match=r"no Pulumi\.yaml of project 'identity-platform'") as err:
            find_project(str(tmp_path) if how == "flag" else None, {PROJECT_ENV: str(tmp_path)}, PROJECT_ROOT)
        assert err.value.code == ExitCode.CONFIG_ERROR and err.value.kind == "project_not_found"

    def test_nothing_found_names_every_way(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import ops.workspace

        monkeypatch.setattr(ops.workspace, "PROJECT_ROOT", tmp_path / "site-packages")
        with pytest.raises(OpsError) as err:
            find_project(None, {}, tmp_path)
        assert "--project-dir" in (err.value.hint or "") and PROJECT_ENV in (err.value.hint or "")


# --- the CLI's own error, classified ----------------------------------------------------------------


def _cli_failure(stderr: str, stdout: str = "", code: int = 255) -> OpsError:
    from pulumi import automation as auto
    from pulumi.automation._cmd import CommandResult

    from ops.workspace import classify_command_error

    return classify_command_error(auto.CommandError(CommandResult(stdout=stdout, stderr=stderr, code=code)))


@pytest.mark.parametrize("line", [
    "error: unable to open state directory /nope/.pulumi-state: open /nope: permission denied",
    "error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions",
    "error: problem logging in: unable to open bucket s3://nope: dial tcp 127.0.0.1:1: connect: connection refused",
    "error: unable to read PULUMI_CONFIG_PASSPHRASE_FILE: open /nope/pass: no such file or directory",
])
def test_a_backend_login_or_passphrase_file_problem_is_a_config_error_with_the_clis_line(line: str) -> None:
    failure = _cli_failure(f"warning: something first\n{line}\n")
    assert failure.code == ExitCode.CONFIG_ERROR and failure.message == line


def test_another_cli_failure_keeps_the_clis_own_error_line() -> None:
    failure = _cli_failure("error: something the CLI says\n", stdout="Previewing update (dev):\n")
    assert failure.code == ExitCode.FAILED and failure.message == "error: something the CLI says"
