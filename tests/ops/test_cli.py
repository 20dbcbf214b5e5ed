"""`python -m ops` against a recording fake `pulumi` on PATH: the arguments the Automation API
really passes, how the engine's output and events are parsed, and every documented exit code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.errors import ExitCode
from ops.workspace import stack_names
from tests.ops.conftest import FakeCli

PREVIEW_OUT = ["Previewing update (dev):", " +  pulumi:pulumi:Stack identity-platform-dev create", "Resources:"]
UP_PROD = {
    "events": ["up.prod.events.jsonl"],
    "stdout": ["Updating (prod):", "Resources:", "    + 6 created"],
    "outputs": {"show_secrets": "stack-output.prod.show-secrets.json", "masked": "stack-output.prod.json"},
}
SECRETS = ("Qy7#vR2p!Lm9@Xt4$Wc8", "Zp4!nK8@rT2#mW6$vB0q")  # the recorded admin passwords
# A chosen backend: prod refuses the project's local one unless asked (the fake CLI never opens it).
BACKEND = "s3://zt-state?endpoint=fra1.digitaloceanspaces.com&region=fra1"


def preview_dev(fake: FakeCli, events: str = "preview.dev.events.jsonl") -> FakeCli:
    return fake.configure(operations={"preview": {"events": [events], "stdout": PREVIEW_OUT}})


class TestPreviewRunsTheLocalProgram:
    def test_new_stack_is_created_then_previewed_in_the_project_dir(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli)
        res = fake_cli.run("preview", "--stack", "dev", "--json")
        assert res.code == 0, res.stderr
        assert fake_cli.commands() == [["version"], ["stack", "select"], ["stack", "init"], ["preview"]]
        call = fake_cli.call("preview")
        # Local program, not inline: no --client address of an in-process language server.
        assert call.args[:3] == ["preview", "--exec-kind", "auto.local"]
        assert not any(a.startswith("--client") for a in call.argv)
        assert call.argv[0] == "--non-interactive" and call.opt("--stack") == "dev"
        assert (call.opt("--event-log") or "").startswith("tcp://127.0.0.1:")
        assert Path(call.cwd) == fake_cli.project
        assert fake_cli.call("stack", "init").args == ["stack", "init", "dev"]

    def test_dev_defaults_to_the_project_file_backend_with_an_empty_passphrase(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli)
        assert fake_cli.run("preview", "--stack", "dev").code == 0
        env = fake_cli.call("preview").env
        assert env["PULUMI_BACKEND_URL"] == f"file://{fake_cli.project / '.pulumi-state'}"
        assert (fake_cli.project / ".pulumi-state").is_dir()
        assert env["PULUMI_CONFIG_PASSPHRASE"] == ""
        assert env["PULUMI_AUTOMATION_API"] == "true"

    def test_backend_url_from_the_environment_wins(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        preview_dev(fake_cli)
        monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://zt-state?endpoint=fra1.digitaloceanspaces.com&region=fra1")
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "team passphrase")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        assert fake_cli.run("preview", "--stack", "dev").code == 0
        env = fake_cli.call("preview").env
        assert env["PULUMI_BACKEND_URL"].startswith("s3://zt-state?")
        assert env["PULUMI_CONFIG_PASSPHRASE"] == "team passphrase"  # inherited, not replaced
        assert not (fake_cli.project / ".pulumi-state").exists()

    def test_existing_stack_is_selected_not_recreated(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli).configure(stacks=["dev"])
        assert fake_cli.run("preview", "--stack", "dev").code == 0
        assert ["stack", "init"] not in fake_cli.commands()

    def test_json_has_steps_and_changes_and_engine_output_goes_to_stderr(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli)
        res = fake_cli.run("preview", "--stack", "dev", "--json")
        doc = res.json()
        assert doc["ok"] is True and doc["exitCode"] == 0 and doc["command"] == "preview"
        assert doc["changes"] == {"create": 6}
        types = [s["type"] for s in doc["steps"]]
        assert "docker:index/service:Service" in types and "pulumi-python:dynamic/keycloak:Realm" in types
        assert all(s["op"] == "create" for s in doc["steps"])
        assert res.stderr.splitlines()[: len(PREVIEW_OUT)] == PREVIEW_OUT

    def test_human_mode_streams_engine_output_then_a_summary(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli)
        res = fake_cli.run("preview", "--stack", "dev")
        lines = res.stdout.splitlines()
        assert lines[: len(PREVIEW_OUT)] == PREVIEW_OUT
        assert lines[-1] == "preview dev: 6 create"

    def test_policy_packs_are_passed_as_absolute_paths(self, fake_cli: FakeCli, monkeypatch) -> None:
        preview_dev(fake_cli)
        monkeypatch.chdir(fake_cli.project.parent)
        assert fake_cli.run("preview", "--stack", "dev", "--policy-pack", "policy", "--diff").code == 0
        call = fake_cli.call("preview")
        assert call.opt("--policy-pack") == str(fake_cli.project.parent / "policy")
        assert "--diff" in call.args


class TestPreviewExitCodes:
    def test_mandatory_policy_violation_exits_6_with_the_violations(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli, "preview.dev.policy.events.jsonl")
        fake_cli.configure(
            operations={
                "preview": {
                    "events": ["preview.dev.policy.events.jsonl"],
                    "code": 255,
                    "stderr": "error: preview failed: 1 mandatory policy violation",
                }
            }
        )
        res = fake_cli.run("preview", "--stack", "dev", "--json", "--policy-pack", "policy")
        assert res.code == ExitCode.POLICY_VIOLATION
        doc = res.json()
        assert doc["ok"] is False and doc["error"]["kind"] == "policy_violation"
        levels = {v["policy"]: v["level"] for v in doc["policyViolations"]}
        assert levels == {"images-pinned": "mandatory", "healthchecks-present": "advisory"}
        assert "images-pinned" in doc["error"]["message"]

    def test_expect_no_changes_passes_when_everything_is_the_same(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli, "preview.dev.same.events.jsonl").configure(stacks=["dev"])
        res = fake_cli.run("preview", "--stack", "dev", "--expect-no-changes", "--json")
        assert res.code == 0, res.stdout
        assert res.json()["changes"] == {"same": 6}

    def test_expect_no_changes_exits_7_on_drift(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli, "preview.dev.drift.events.jsonl").configure(stacks=["dev"])
        res = fake_cli.run("preview", "--stack", "dev", "--expect-no-changes", "--json")
        assert res.code == ExitCode.CHANGES_PENDING
        doc = res.json()
        assert doc["changes"] == {"same": 5, "update": 1}
        assert [s["op"] for s in doc["steps"]] == ["update"]
        assert "1 to update" in doc["error"]["message"]

    def test_drift_without_the_flag_is_not_an_error(self, fake_cli: FakeCli) -> None:
        preview_dev(fake_cli, "preview.dev.drift.events.jsonl").configure(stacks=["dev"])
        assert fake_cli.run("preview", "--stack", "dev").code == 0

    def test_invalid_stack_config_exits_3_before_the_cli_runs(self, fake_cli: FakeCli) -> None:
        stack_file = fake_cli.project / "Pulumi.dev.yaml"
        stack_file.write_text(stack_file.read_text() + "  identity-platform:region: frankfurt\n")
        res = fake_cli.run("preview", "--stack", "dev")
        assert res.code == ExitCode.CONFIG_ERROR
        assert "identity-platform:region" in res.stderr
        assert fake_cli.calls() == []

    def test_unknown_stack_file_exits_3_listing_the_stacks(self, fake_cli: FakeCli) -> None:
        res = fake_cli.run("preview", "--stack", "staging", "--json")
        assert res.code == ExitCode.CONFIG_ERROR
        doc = res.json()
        assert doc["error"]["kind"] == "stack_file_missing"
        assert f"use one of: {', '.join(stack_names(fake_cli.project))};" in doc["error"]["hint"]
        assert {"dev", "external", "prod"} <= set(stack_names(fake_cli.project))
        assert fake_cli.calls() == []


class TestUp:
    def test_destroy_needs_yes_and_runs_nothing_without_it(self, fake_cli: FakeCli) -> None:
        res = fake_cli.run("destroy", "--stack", "dev")
        assert res.code == ExitCode.USAGE
        assert "--yes" in res.stderr
        assert fake_cli.calls() == []

    def test_up_in_the_issues_form_runs_without_yes(self, fake_cli: FakeCli) -> None:
        fake_cli.configure(stacks=["dev"], operations={"up": UP_PROD})
        res = fake_cli.run("up", "--stack", "dev", "--json")
        assert res.code == 0, res.stderr
        assert fake_cli.call("up").args[:3] == ["up", "--yes", "--skip-preview"]

    def test_up_applies_without_preview_and_reports_masked_outputs(
        self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "prod passphrase")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"], operations={"up": UP_PROD})
        res = fake_cli.run("up", "--stack", "prod", "--yes", "--json")
        assert res.code == 0, res.stdout + res.stderr
        up = fake_cli.call("up")
        assert up.args[:3] == ["up", "--yes", "--skip-preview"] and up.opt("--stack") == "prod"
        # After `up` the SDK reads outputs twice (masked, then --show-secrets) and the last update.
        assert ["stack", "output"] in fake_cli.commands() and ["stack", "history"] in fake_cli.commands()
        doc = res.json()
        assert doc["result"] == "succeeded" and doc["changes"] == {"create": 6}
        assert doc["outputs"]["keycloakAdminPassword"] == "[secret]"
        assert doc["outputs"]["zitiControllerUrl"] == "https://ziti.zt.acme-identity.net:1280"
        for secret in SECRETS:
            assert secret not in res.stdout and secret not in res.stderr

    def test_show_secrets_reveals_them(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "prod passphrase")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"], operations={"up": UP_PROD})
        doc = fake_cli.run("up", "--stack", "prod", "--yes", "--json", "--show-secrets").json()
        assert doc["outputs"]["zitiAdminPassword"] == SECRETS[1]

    def test_prod_on_a_passphrase_backend_without_passphrase_exits_3(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"], operations={"up": UP_PROD})
        res = fake_cli.run("up", "--stack", "prod", "--yes")
        assert res.code == ExitCode.CONFIG_ERROR
        assert "PULUMI_CONFIG_PASSPHRASE" in res.stderr
        assert fake_cli.commands() == [["version"]]

    def test_outputs_that_break_the_contract_exit_8(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "prod passphrase")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        broken = {
            **UP_PROD,
            "outputs": {
                "show_secrets": "stack-output.prod.broken.show-secrets.json",
                "masked": "stack-output.prod.broken.json",
            },
        }
        fake_cli.configure(stacks=["prod"], operations={"up": broken})
        res = fake_cli.run("up", "--stack", "prod", "--yes", "--json")
        assert res.code == ExitCode.OUTPUTS_INVALID
        message = res.json()["error"]["message"]
        assert "zitiRouterId" in message and "zitiRouterName" in message

    def test_failed_update_exits_1_with_the_engine_error(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "prod passphrase")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        failed = {"events": ["up.prod.failed.events.jsonl"], "code": 255, "stderr": "error: update failed"}
        fake_cli.configure(stacks=["prod"], operations={"up": failed})
        res = fake_cli.run("up", "--stack", "prod", "--yes", "--json")
        assert res.code == ExitCode.FAILED
        doc = res.json()
        assert len(doc["diagnostics"]) == 2
        assert "image reference must be provided" in doc["diagnostics"][0]
        assert doc["error"]["message"] == "update failed"

    def test_locked_stack_exits_5(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "prod passphrase")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        locked = {
            "code": 255,
            "stderr": "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) "
            "to end or delete the lock file with `pulumi cancel`.",
        }
        fake_cli.configure(stacks=["prod"], operations={"up": locked})
        res = fake_cli.run("up", "--stack", "prod", "--yes")
        assert res.code == ExitCode.STACK_LOCKED
        assert "locked" in res.stderr

    def test_wrong_passphrase_exits_3(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "wrong")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(
            stacks=["prod"],
            fail={"stack select": {"stderr": "error: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE"}},
        )
        res = fake_cli.run("up", "--stack", "prod", "--yes", "--json")
        assert res.code == ExitCode.CONFIG_ERROR
        assert res.json()["error"]["kind"] == "passphrase_invalid"


class TestRefreshAndDestroy:
    @pytest.mark.parametrize("command", ["refresh", "destroy"])
    def test_missing_stack_exits_4_and_is_not_created(self, fake_cli: FakeCli, command: str, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        confirm = ["--confirm-stack", "prod"] if command == "destroy" else []
        res = fake_cli.run(command, "--stack", "prod", "--yes", *confirm, "--json")
        assert res.code == ExitCode.STACK_NOT_FOUND
        assert ["stack", "init"] not in fake_cli.commands()
        assert "up --stack prod" in res.json()["error"]["hint"]

    def test_destroy_needs_yes(self, fake_cli: FakeCli) -> None:
        assert fake_cli.run("destroy", "--stack", "prod").code == ExitCode.USAGE
        assert fake_cli.calls() == []

    def test_refresh_runs_with_yes_and_skip_preview(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"], operations={"refresh": {"events": ["refresh.prod.events.jsonl"]}})
        res = fake_cli.run("refresh", "--stack", "prod", "--yes", "--json")
        assert res.code == 0, res.stdout
        assert fake_cli.call("refresh").args[:3] == ["refresh", "--skip-preview", "--yes"]
        assert res.json()["changes"] == {"same": 5, "update": 1}

    @pytest.mark.parametrize("confirm", [[], ["--confirm-stack", "dev"], ["--confirm-stack", "Prod"]])
    def test_destroy_of_prod_needs_the_name_typed_back(self, fake_cli: FakeCli, monkeypatch, confirm) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"], operations={"destroy": {"events": ["destroy.prod.events.jsonl"]}})
        res = fake_cli.run("destroy", "--stack", "prod", "--yes", *confirm, "--json")
        assert res.code == ExitCode.USAGE
        assert res.json()["error"]["hint"] == "ops destroy --stack prod --yes --confirm-stack prod"
        assert fake_cli.calls() == []

    def test_destroy_of_dev_needs_no_name(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["dev"], operations={"destroy": {"events": ["destroy.prod.events.jsonl"]}})
        assert fake_cli.run("destroy", "--stack", "dev", "--yes").code == 0

    def test_destroy_deletes_and_keeps_the_stack(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"], operations={"destroy": {"events": ["destroy.prod.events.jsonl"]}})
        res = fake_cli.run("destroy", "--stack", "prod", "--yes", "--confirm-stack", "prod")
        assert res.code == 0, res.stderr
        assert fake_cli.call("destroy").args[:3] == ["destroy", "--skip-preview", "--yes"]
        assert ["stack", "rm"] not in fake_cli.commands() and "prod" in fake_cli.stacks()
        assert res.stdout.splitlines()[-1] == "destroy prod: 6 delete"


class TestOutputs:
    def _deployed(self, fake: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake.configure(stacks=["prod"], operations={"up": UP_PROD})
        assert fake.run("up", "--stack", "prod", "--yes").code == 0

    def test_outputs_are_masked_by_default(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        self._deployed(fake_cli, monkeypatch)
        res = fake_cli.run("outputs", "--stack", "prod", "--json")
        assert res.code == 0, res.stderr
        doc = res.json()
        assert set(doc) == {"command", "stack", "ok", "exitCode", "outputs"}
        outs = doc["outputs"]
        assert outs["keycloakAdminPassword"] == "[secret]" and outs["zitiAdminPassword"] == "[secret]"
        assert outs["buckets"]["backups"]["endpoint"] == "https://fra1.digitaloceanspaces.com"
        for secret in SECRETS:
            assert secret not in res.stdout

    def test_show_secrets_prints_them(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        self._deployed(fake_cli, monkeypatch)
        res = fake_cli.run("outputs", "--stack", "prod", "--show-secrets")
        line = next(ln for ln in res.stdout.splitlines() if ln.startswith("keycloakAdminPassword"))
        assert line.split()[-1] == SECRETS[0]

    def test_masked_outputs_need_no_passphrase(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        """Reading what the CLI prints masked does not build the secrets manager: an operator (or a
        CI job) without the prod passphrase still gets the plain outputs."""
        self._deployed(fake_cli, monkeypatch)
        monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
        res = fake_cli.run("outputs", "--stack", "prod", "--json")
        assert res.code == 0, res.stderr
        outs = res.json()["outputs"]
        assert outs["keycloakAdminPassword"] == "[secret]"
        assert outs["zitiControllerUrl"] == "https://ziti.zt.acme-identity.net:1280"
        reads = [c for c in fake_cli.commands() if c[:2] == ["stack", "output"]]
        assert reads and all("--show-secrets" not in c for c in reads), reads

    def test_show_secrets_without_a_passphrase_exits_3(
        self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self._deployed(fake_cli, monkeypatch)
        monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
        before = len(fake_cli.commands())
        res = fake_cli.run("outputs", "--stack", "prod", "--show-secrets", "--json")
        assert res.code == ExitCode.CONFIG_ERROR
        error = res.json()["error"]
        assert error["kind"] == "passphrase_missing" and "PULUMI_CONFIG_PASSPHRASE" in error["hint"]
        assert fake_cli.commands()[before:] == [["version"]]  # refused before any stack is opened

    def test_never_deployed_stack_exits_4(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        fake_cli.configure(stacks=["prod"])
        res = fake_cli.run("outputs", "--stack", "prod", "--json")
        assert res.code == ExitCode.STACK_NOT_FOUND
        assert res.json()["error"]["kind"] == "not_deployed"

    def test_missing_stack_exits_4(self, fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        assert fake_cli.run("outputs", "--stack", "prod").code == ExitCode.STACK_NOT_FOUND
        assert ["stack", "init"] not in fake_cli.commands()


class TestCliAvailability:
    def test_missing_cli_exits_2_with_an_install_hint(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty-bin"
        empty.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env["PATH"] = str(empty)
        proc = FakeCli(tmp_path, empty, tmp_path).run_module("preview", "--stack", "dev", env=env)
        assert proc.code == ExitCode.CLI_MISSING, proc.stderr
        assert "Pulumi CLI is not installed" in proc.stderr and "get.pulumi.com" in proc.stderr

    def test_missing_cli_in_json_mode(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty-bin"
        empty.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env["PATH"] = str(empty)
        proc = FakeCli(tmp_path, empty, tmp_path).run_module("outputs", "--stack", "prod", "--json", env=env)
        assert proc.code == ExitCode.CLI_MISSING
        assert proc.json()["error"]["kind"] == "cli_missing"

    def test_too_old_cli_exits_2(self, fake_cli: FakeCli) -> None:
        fake_cli.configure(version="v2.25.0")
        res = fake_cli.run("preview", "--stack", "dev")
        assert res.code == ExitCode.CLI_MISSING
        assert "Minimum version" in res.stderr
        assert fake_cli.commands() == [["version"]]

    def test_module_entry_point_finds_the_cli_on_path(self, fake_cli: FakeCli, tmp_path: Path) -> None:
        preview_dev(fake_cli)
        env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}", "PULUMI_CONFIG_PASSPHRASE": ""}
        proc = fake_cli.run_module("preview", "--stack", "dev", "--json", env=env)
        assert proc.code == 0, proc.stderr
        assert proc.json()["changes"] == {"create": 6}
        assert fake_cli.call("preview").env["PULUMI_BACKEND_URL"] == f"file://{tmp_path / 'state'}"


class TestUsage:
    @pytest.mark.parametrize(
        "argv",
        [[], ["preview"], ["deploy", "--stack", "dev"], ["outputs", "--stack", "dev", "--yes"]],
        ids=["no-command", "no-stack", "unknown-command", "unknown-flag"],
    )
    def test_usage_errors_exit_64_and_touch_nothing(self, fake_cli: FakeCli, argv: list[str]) -> None:
        res = fake_cli.run(*argv)
        assert res.code == ExitCode.USAGE
        assert res.stderr.startswith("error:")
        assert fake_cli.calls() == []
