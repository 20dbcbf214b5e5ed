"""The README's two commands and CI agree, and the deploy command fails clearly without tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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
