"""`ops` as an operator's CLI: the engine options it passes (`--target`, `--replace`, `--refresh`,
saved plans), `drift`, the backend rule for prod, help that lists exit codes and environment, and
the installed console script running from any directory. Against the recording fake `pulumi`,
except the console-script tests, which run the real `.venv/bin/ops` (the pinned engine's own
handling of these flags: tests/engine/test_ops_engine.py)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.cli import COMMAND_EXITS, EXIT_MEANINGS, build_parser, main
from ops.errors import ExitCode
from ops.workspace import PROJECT_ENV, local_backend
from tests.harness.mock_engine import ROOT
from tests.ops.conftest import FakeCli
from tests.ops.test_cli import BACKEND, PREVIEW_OUT, UP_PROD

SERVICE = ("urn:pulumi:dev::identity-platform::identity-platform:keycloak:KeycloakStack"
           "$docker:index/service:Service::keycloak")
REALM = "urn:pulumi:dev::identity-platform::pulumi-python:dynamic/keycloak:Realm::realm"
KEY = "urn:pulumi:dev::identity-platform::tls:index/privateKey:PrivateKey::root-ca-key"
CA = ("urn:pulumi:dev::identity-platform::identity-platform:ziti:ZitiTrust"
      "$pulumi-python:dynamic/ziti:CertificateAuthority::ziti-trust-spire-ca")
ENTRY = ("urn:pulumi:dev::identity-platform::identity-platform:spire:SpireRegistrations"
         "$pulumi-python:dynamic/spire:Entry::spire-entries-entry-payments-api")


def preview_with(fake: FakeCli, events: str, **extra: object) -> FakeCli:
    return fake.configure(stacks=["dev"], operations={"preview": {"events": [events], "stdout": PREVIEW_OUT, **extra}})


class TestEngineOptionsArePassedAsTheCliFlags:
    def test_preview_refresh_targets_and_replacements(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.events.jsonl")
        res = fake_cli.run("preview", "--stack", "dev", "--refresh", "--target", SERVICE, "-t", REALM,
                           "--target-dependents", "--replace", SERVICE, "--replace", KEY)
        assert res.code == 0, res.stderr
        args = fake_cli.call("preview").args
        assert "--refresh" in args and "--target-dependents" in args
        assert [args[i + 1] for i, a in enumerate(args) if a == "--target"] == [SERVICE, REALM]
        assert [args[i + 1] for i, a in enumerate(args) if a == "--replace"] == [SERVICE, KEY]

    def test_nothing_is_added_when_not_asked(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.events.jsonl")
        assert fake_cli.run("preview", "--stack", "dev").code == 0
        args = fake_cli.call("preview").args
        assert not {"--refresh", "--target", "--target-dependents", "--replace", "--save-plan"} & set(args)

    def test_target_dependents_alone_is_not_passed(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.events.jsonl")
        assert fake_cli.run("preview", "--stack", "dev", "--target-dependents").code == 0
        assert "--target-dependents" not in fake_cli.call("preview").args

    def test_up_refresh_target_replace(self, fake_cli: FakeCli) -> None:
        fake_cli.configure(stacks=["dev"], operations={"up": UP_PROD})
        res = fake_cli.run("up", "--stack", "dev", "--refresh", "--target", SERVICE, "--replace", SERVICE, "--json")
        assert res.code == 0, res.stdout
        up = fake_cli.call("up")
        assert up.args[:3] == ["up", "--yes", "--skip-preview"]
        assert "--refresh" in up.args and up.opt("--target") == SERVICE and up.opt("--replace") == SERVICE

    @pytest.mark.parametrize("command", ["refresh", "destroy"])
    def test_refresh_and_destroy_take_targets(self, fake_cli: FakeCli, command: str) -> None:
        fake_cli.configure(stacks=["dev"], operations={command: {"events": ["refresh.prod.events.jsonl"]}})
        yes = ["--yes"]
        assert fake_cli.run(command, "--stack", "dev", *yes, "--target", REALM).code == 0
        assert fake_cli.call(command).opt("--target") == REALM


class TestReplacingGoesToTheEngine:
    """A forced replacement of any of the program's resources is the engine's: Keycloak and Ziti
    resources delete first (`delete_before_replace`); a SPIRE entry's replacement, made first, has
    the old entry's id and adopts it, and the old resource's delete leaves it to the new one
    (`SpireEntryProvider.handed_over`; tests/engine/test_ops_engine.py shows it for real)."""

    @pytest.mark.parametrize("urn", [REALM, CA, ENTRY], ids=["top-level", "in-a-component", "spire-entry"])
    @pytest.mark.parametrize("command", ["preview", "up"])
    def test_passed_to_the_engine(self, fake_cli: FakeCli, command: str, urn: str) -> None:
        fake_cli.configure(stacks=["dev"], operations={
            "preview": {"events": ["preview.dev.events.jsonl"]}, "up": UP_PROD})
        assert fake_cli.run(command, "--stack", "dev", "--replace", urn).code == 0
        assert fake_cli.call(command).opt("--replace") == urn


class TestAnObjectMovingToAnotherResourceName:
    """A workload key renamed in the stack file with its SPIFFE ID kept: the preview creates the
    entry and the identity under the new names and deletes them under the old. Applied, the creates
    adopt the live objects by their keys and the deletes remove them (shown for real in
    tests/engine/test_ops_engine.py); the preview says so and how to rename them in the state."""

    OLD_ENTRY = ("urn:pulumi:dev::identity-platform::identity-platform:spire:SpireRegistrations"
                 "$pulumi-python:dynamic/spire:Entry::spire-entries-entry-payments-api")
    OLD_IDENTITY = ("urn:pulumi:dev::identity-platform::identity-platform:ziti:ZitiTrust"
                    "$pulumi-python:dynamic/ziti:Identity::ziti-trust-identity-payments-api")

    def test_the_preview_names_each_move_and_the_state_renames_that_fix_it(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.move.events.jsonl")
        res = fake_cli.run("preview", "--stack", "dev", "--json")
        assert res.code == ExitCode.OBJECT_MOVED == 12
        error = res.json()["error"]
        assert error["kind"] == "object_moved"
        # The identity moves by its external_id (its name changes with the key); billing and legacy
        # are different entries, and selectors compare as a set.
        assert error["message"].startswith("2 object(s) would move to another resource name "
                                           "(spire-entries-entry-payments-api -> spire-entries-entry-payments; "
                                           "ziti-trust-identity-payments-api -> ziti-trust-identity-payments)")
        assert error["hint"] == (
            "rename them in the state first, then preview again: "
            f"pulumi state rename --stack dev --yes '{self.OLD_ENTRY}' spire-entries-entry-payments && "
            f"pulumi state rename --stack dev --yes '{self.OLD_IDENTITY}' ziti-trust-identity-payments")
        assert len(res.json()["steps"]) == 6, "the report still lists what the preview proposed"

    def test_a_saved_plan_that_would_lose_the_objects_is_removed(self, fake_cli: FakeCli, tmp_path: Path) -> None:
        preview_with(fake_cli, "preview.dev.move.events.jsonl")
        plan = tmp_path / "reviewed.plan.json"
        plan.write_text("{}")  # what the CLI wrote
        assert fake_cli.run("preview", "--stack", "dev", "--save-plan", str(plan)).code == ExitCode.OBJECT_MOVED
        assert not plan.exists()

    def test_creates_and_deletes_of_different_objects_pass(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.events.jsonl")
        assert fake_cli.run("preview", "--stack", "dev").code == 0

    def test_up_previews_first_and_applies_nothing_when_an_object_would_move(self, fake_cli: FakeCli) -> None:
        """`ops up` without a plan runs the preview `pulumi up` would show, with the same options,
        and refuses it as `ops preview` does: the update never starts."""
        fake_cli.configure(stacks=["dev"], operations={
            "preview": {"events": ["preview.dev.move.events.jsonl"]}, "up": UP_PROD})
        res = fake_cli.run("up", "--stack", "dev", "--refresh", "--target", SERVICE, "--json")
        assert res.code == ExitCode.OBJECT_MOVED
        assert res.json()["error"]["kind"] == "object_moved"
        assert "pulumi state rename --stack dev --yes" in res.json()["error"]["hint"]
        preview = fake_cli.call("preview")
        assert "--refresh" in preview.args and preview.opt("--target") == SERVICE
        assert [c for c in fake_cli.commands() if c[:1] == ["up"]] == []

    def test_up_applies_after_a_preview_that_moves_nothing(self, fake_cli: FakeCli) -> None:
        fake_cli.configure(stacks=["dev"], operations={
            "preview": {"events": ["preview.dev.events.jsonl"]}, "up": UP_PROD})
        assert fake_cli.run("up", "--stack", "dev").code == 0
        ops = [c[0] for c in fake_cli.commands() if c[0] in ("preview", "up")]
        assert ops == ["preview", "up"]
        assert fake_cli.call("up").args[:3] == ["up", "--yes", "--skip-preview"]

    def test_up_with_a_saved_plan_runs_no_second_preview(self, fake_cli: FakeCli, tmp_path: Path) -> None:
        """The plan came from `ops preview --save-plan`, which already refused moves."""
        plan = tmp_path / "reviewed.plan.json"
        plan.write_text("{}")
        fake_cli.configure(stacks=["dev"], operations={
            "preview": {"events": ["preview.dev.move.events.jsonl"]}, "up": UP_PROD})
        assert fake_cli.run("up", "--stack", "dev", "--plan", str(plan)).code == 0
        assert [c[0] for c in fake_cli.commands() if c[0] in ("preview", "up")] == ["up"]


class TestSavedPlans:
    def test_preview_saves_the_plan_where_asked_as_an_absolute_path(self, fake_cli: FakeCli, monkeypatch) -> None:
        preview_with(fake_cli, "preview.dev.events.jsonl")
        monkeypatch.chdir(fake_cli.home)
        assert fake_cli.run("preview", "--stack", "dev", "--save-plan", "reviewed.plan.json").code == 0
        assert fake_cli.call("preview").opt("--save-plan") == str(fake_cli.home / "reviewed.plan.json")

    def test_up_applies_the_saved_plan(self, fake_cli: FakeCli, tmp_path: Path) -> None:
        plan = tmp_path / "reviewed.plan.json"
        plan.write_text("{}")
        fake_cli.configure(stacks=["dev"], operations={"up": UP_PROD})
        assert fake_cli.run("up", "--stack", "dev", "--plan", str(plan)).code == 0
        up = fake_cli.call("up")
        assert up.args[:3] == ["up", "--yes", "--skip-preview"] and up.opt("--plan") == str(plan)

    def test_a_missing_plan_file_is_a_usage_error_before_the_engine(self, fake_cli: FakeCli, tmp_path: Path) -> None:
        res = fake_cli.run("up", "--stack", "dev", "--plan", str(tmp_path / "nope.json"))
        assert res.code == ExitCode.USAGE and "no plan file" in res.stderr
        assert fake_cli.calls() == []

    @pytest.mark.parametrize("text", ["garbage{", "[1, 2]"])
    def test_a_plan_file_that_is_not_a_json_plan_is_a_usage_error_before_anything_runs(
        self, fake_cli: FakeCli, tmp_path: Path, text: str
    ) -> None:
        plan = tmp_path / "bad.plan"
        plan.write_text(text)
        res = fake_cli.run("up", "--stack", "dev", "--plan", str(plan))
        assert res.code == ExitCode.USAGE and str(plan) in res.stderr and "not a saved plan" in res.stderr
        assert fake_cli.calls() == []

    def test_a_save_plan_path_in_a_missing_directory_is_a_usage_error_before_anything_runs(
        self, fake_cli: FakeCli, tmp_path: Path
    ) -> None:
        path = tmp_path / "nope" / "reviewed.plan.json"
        res = fake_cli.run("preview", "--stack", "dev", "--save-plan", str(path))
        assert res.code == ExitCode.USAGE and str(path) in res.stderr and "no directory" in res.stderr
        assert fake_cli.calls() == []

    def test_an_unopenable_backend_is_a_config_error_with_the_clis_line(self, fake_cli: FakeCli) -> None:
        line = "error: unable to open state directory /nope: permission denied"
        fake_cli.configure(fail={"stack select": {"stderr": line}})
        res = fake_cli.run("outputs", "--stack", "dev")
        assert res.code == ExitCode.CONFIG_ERROR and line in res.stderr

    @pytest.mark.parametrize("words", [
        "create is not allowed by the plan: no steps were expected for this resource",
        f"resource {REALM} violates plan: properties changed: ~~displayName[U{{a}}!=U{{b}}]",
    ], ids=["operation", "properties"])
    def test_an_update_that_leaves_its_plan_exits_11(self, fake_cli: FakeCli, tmp_path: Path, words: str) -> None:
        # The engine's own words (pkg/resource/deploy), as the pinned CLI prints them; tests/engine: for real.
        rejected = {"diagnosticEvent": {
            "urn": REALM, "prefix": "error: ", "color": "never", "severity": "error", "message": words + "\n"}}
        (fake_cli.home / "recorded" / "up.rejected.events.jsonl").write_text(json.dumps(rejected) + "\n")
        plan = tmp_path / "plan.json"
        plan.write_text("{}")
        fake_cli.configure(stacks=["dev"], operations={
            "up": {"events": ["up.rejected.events.jsonl"], "code": 255, "stderr": "error: update failed"}})
        res = fake_cli.run("up", "--stack", "dev", "--plan", str(plan), "--json")
        assert res.code == ExitCode.PLAN_REJECTED
        doc = res.json()
        assert doc["error"]["kind"] == "plan_rejected" and words in doc["error"]["message"]
        assert "--save-plan" in doc["error"]["hint"]


class TestDrift:
    def test_drift_is_a_refresh_preview_of_an_existing_stack_and_exits_10(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.drift.events.jsonl")
        res = fake_cli.run("drift", "--stack", "dev", "--json")
        assert res.code == ExitCode.DRIFT
        assert fake_cli.commands() == [["version"], ["stack", "select"], ["preview"]]
        assert "--refresh" in fake_cli.call("preview").args
        doc = res.json()
        assert doc["command"] == "drift" and doc["error"]["kind"] == "drift"
        assert [s["op"] for s in doc["steps"]] == ["update"] and "1 to update" in doc["error"]["message"]

    def test_no_drift_exits_0(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.same.events.jsonl")
        res = fake_cli.run("drift", "--stack", "dev")
        assert res.code == 0, res.stderr
        assert res.stdout.splitlines()[-1] == "drift dev: no changes (6 unchanged)"

    def test_the_refresh_steps_of_a_refresh_preview_are_not_drift(self, fake_cli: FakeCli) -> None:
        # The pinned engine sends one `refresh` step per resource before the preview proper.
        recorded = fake_cli.home / "recorded"
        same = (recorded / "preview.dev.same.events.jsonl").read_text().splitlines()
        refresh = [json.dumps({"resourcePreEvent": {"metadata": {"op": "refresh", "urn": REALM,
                                                                  "type": "pulumi-python:dynamic/keycloak:Realm"}}})]
        (recorded / "preview.dev.refreshed.events.jsonl").write_text("\n".join([*refresh, *same]) + "\n")
        preview_with(fake_cli, "preview.dev.refreshed.events.jsonl")
        res = fake_cli.run("drift", "--stack", "dev", "--json")
        assert res.code == 0, res.stdout
        assert res.json()["steps"] == []

    def test_a_stack_never_deployed_exits_4_and_is_not_created(self, fake_cli: FakeCli) -> None:
        res = fake_cli.run("drift", "--stack", "dev")
        assert res.code == ExitCode.STACK_NOT_FOUND
        assert ["stack", "init"] not in fake_cli.commands() and ["preview"] not in fake_cli.commands()

    def test_a_failed_refresh_is_exit_1_not_drift(self, fake_cli: FakeCli) -> None:
        preview_with(fake_cli, "preview.dev.events.jsonl", code=255, stderr="error: refresh failed")
        res = fake_cli.run("drift", "--stack", "dev", "--json")
        assert res.code == ExitCode.FAILED and res.json()["command"] == "drift"


class TestProdBackend:
    def test_prod_without_a_backend_is_refused_before_the_engine(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        res = fake_cli.run("up", "--stack", "prod", "--json")
        assert res.code == ExitCode.CONFIG_ERROR and res.json()["error"]["kind"] == "backend_not_chosen"
        assert fake_cli.commands() == [["version"]]
        assert not (fake_cli.project / ".pulumi-state").exists()

    def test_local_state_chooses_the_project_file_backend(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "p")
        fake_cli.configure(stacks=["prod"], operations={"up": UP_PROD})
        assert fake_cli.run("up", "--stack", "prod", "--local-state").code == 0
        assert fake_cli.call("up").env["PULUMI_BACKEND_URL"] == local_backend(fake_cli.project)

    def test_local_state_against_a_chosen_backend_is_a_usage_error(self, fake_cli: FakeCli, monkeypatch) -> None:
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        res = fake_cli.run("backend", "--stack", "prod", "--local-state")
        assert res.code == ExitCode.USAGE and "PULUMI_BACKEND_URL chooses s3://zt-state" in res.stderr

    def test_backend_prints_what_the_commands_use(self, fake_cli: FakeCli, monkeypatch) -> None:
        assert fake_cli.run("backend", "--stack", "dev").stdout.strip() == local_backend(fake_cli.project)
        assert fake_cli.run("backend", "--stack", "prod").code == ExitCode.CONFIG_ERROR
        monkeypatch.setenv("PULUMI_BACKEND_URL", BACKEND)
        assert fake_cli.run("backend", "--stack", "prod", "--json").json()["backend"] == BACKEND
        assert fake_cli.calls() == []


class TestHelp:
    COMMANDS = ("preview", "up", "refresh", "destroy", "drift", "outputs", "backend", "status", "diagram",
                "dashboard")

    @pytest.mark.parametrize("command", COMMANDS)
    def test_every_command_lists_its_exit_codes_and_the_environment(self, command: str) -> None:
        sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
        text = sub.choices[command].format_help()
        codes = {0, 2, 3, 64, 130, *COMMAND_EXITS[command]}
        for code in codes:
            assert f"  {code:<4} {EXIT_MEANINGS[code]}" in text, (command, code)
        for var in (PROJECT_ENV, "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
            assert var in text, (command, var)

    def test_every_exit_code_has_a_meaning(self) -> None:
        assert set(EXIT_MEANINGS) == {int(c) for c in ExitCode}

    def test_help_exits_0(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as done:
            main(["drift", "--help"])
        assert done.value.code == 0
        assert "exit codes:" in capsys.readouterr().out


OPS = Path(sys.executable).parent / "ops"


@pytest.mark.skipif(not OPS.exists(), reason="the project is not installed in this venv (scripts/_venv.sh does it)")
class TestConsoleScript:
    """`.venv/bin/ops`, the console script of pyproject.toml, run as a user would: from elsewhere."""

    def _run(self, *argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_") and k != PROJECT_ENV}
        return subprocess.run([str(OPS), *argv], cwd=cwd, env={**base, **(env or {})}, capture_output=True,
                              text=True, timeout=120, check=False)

    def test_it_runs_from_any_directory_on_the_checkout_it_was_installed_from(self, tmp_path: Path) -> None:
        done = self._run("backend", "--stack", "dev", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == local_backend(ROOT)

    def test_project_dir_and_the_environment_variable_name_another_checkout(self, tmp_path: Path) -> None:
        other = tmp_path / "other-checkout"
        other.mkdir()
        for f in ROOT.glob("Pulumi*.yaml"):
            shutil.copy(f, other / f.name)
        for how in (["--project-dir", str(other)], ["-C", str(other)]):
            done = self._run(*how, "backend", "--stack", "dev", cwd=tmp_path)
            assert done.stdout.strip() == local_backend(other), done.stderr
        done = self._run("backend", "--stack", "dev", "--project-dir", str(other), cwd=tmp_path)
        assert done.stdout.strip() == local_backend(other), done.stderr
        done = self._run("backend", "--stack", "dev", cwd=tmp_path, env={PROJECT_ENV: str(other)})
        assert done.stdout.strip() == local_backend(other), done.stderr
        done = self._run("backend", "--stack", "dev", cwd=other / ".")
        assert done.stdout.strip() == local_backend(other), done.stderr

    def test_a_wrong_project_dir_exits_3_saying_so(self, tmp_path: Path) -> None:
        done = self._run("backend", "--stack", "dev", "--project-dir", str(tmp_path), cwd=tmp_path)
        assert done.returncode == ExitCode.CONFIG_ERROR
        assert "no Pulumi.yaml of project 'identity-platform'" in done.stderr

    def test_help_names_the_exit_codes(self, tmp_path: Path) -> None:
        done = self._run("preview", "--help", cwd=tmp_path)
        assert done.returncode == 0 and "exit codes:" in done.stdout and done.stdout.startswith("usage: ops preview")


@pytest.mark.parametrize("argv", [["outputs"], ["preview"], ["drift"]])
def test_an_ops_command_leaves_the_users_selected_stack_alone(fake_cli: FakeCli, argv: list[str]) -> None:
    """`pulumi stack select probe; ops outputs --stack dev`: a raw `pulumi up` after it still acts on probe."""
    fake_cli.configure(stacks=["dev", "probe"])
    workspaces = Path(os.environ["PULUMI_HOME"]) / "workspaces"
    workspaces.mkdir(parents=True)
    chosen = workspaces / "identity-platform-0123-workspace.json"
    chosen.write_text('{"stacks": {"file:///state": "probe"}}')
    fake_cli.run(*argv, "--stack", "dev")
    assert [c.args[:2] for c in fake_cli.calls() if c.args[:2] == ["stack", "select"]], "the fake was not asked"
    assert {p.name: p.read_text() for p in workspaces.iterdir()} == {chosen.name: chosen.read_text()}
    assert chosen.read_text() == '{"stacks": {"file:///state": "probe"}}'
