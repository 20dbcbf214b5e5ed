"""The same entry point against the real Pulumi CLI, on a throwaway copy of the project and a
throwaway file backend. Skipped where the CLI (or, for a preview, a Docker engine) is missing:
no package registry ships the CLI, so these run on operators' machines, not on CI here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.errors import ExitCode
from tests.harness.mock_engine import ROOT

HAS_CLI = shutil.which("pulumi") is not None
pytestmark = [
    pytest.mark.needs_cli,
    pytest.mark.skipif(not HAS_CLI, reason="the Pulumi CLI is not installed (no `pulumi` on PATH)"),
]


def _docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The project without .git/state, its .venv linked, so the CLI can write its stack files."""
    dest = tmp_path / "project"
    shutil.copytree(
        ROOT,
        dest,
        ignore=shutil.ignore_patterns(".git", ".venv", ".pulumi-state", "*_cache", "__pycache__", ".hypothesis"),
    )
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


def _ops(project: Path, *argv: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env.update(PULUMI_BACKEND_URL=f"file://{tmp / 'state'}", PULUMI_CONFIG_PASSPHRASE="", PULUMI_HOME=str(tmp / "home"))
    (tmp / "state").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "ops", *argv],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_outputs_of_a_fresh_stack_exit_4(project_copy: Path, tmp_path: Path) -> None:
    proc = _ops(project_copy, "outputs", "--stack", "dev", "--json", tmp=tmp_path)
    # The stack does not exist in the fresh backend: not created, exit 4.
    assert proc.returncode == ExitCode.STACK_NOT_FOUND, proc.stdout + proc.stderr


@pytest.mark.needs_docker
@pytest.mark.skipif(HAS_CLI and not _docker_running(), reason="no reachable Docker engine (docker info)")
def test_preview_dev_plans_creates_only(project_copy: Path, tmp_path: Path) -> None:
    import json

    proc = _ops(project_copy, "preview", "--stack", "dev", "--json", tmp=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc["changes"]) == {"create"} and doc["changes"]["create"] > 1
