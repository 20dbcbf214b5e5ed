"""The same entry point against the real Pulumi CLI, on a throwaway copy of the project and a
throwaway file backend. The CLI is the pinned engine (`scripts/servers install pulumi`, which
`./scripts/test` runs before pytest), else a `pulumi` on PATH; only a quick run without either
(`--no-real-servers` on a machine that never built it) skips. A preview needs a Docker engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.errors import ExitCode
from servers import cache
from servers import pulumi as engine
from tests.harness.mock_engine import ROOT


def _engine_bin() -> str | None:
    """The pinned engine's bin dir when it is installed (never builds), else the PATH's pulumi."""
    try:
        installed = engine.entry()
    except Exception:  # noqa: BLE001 - no Go toolchain to key the entry: fall back to PATH
        installed = None
    if installed is not None and cache.is_complete(installed):
        return str(installed / "bin")
    found = shutil.which("pulumi")
    return str(Path(found).parent) if found else None


ENGINE_BIN = _engine_bin()
HAS_CLI = ENGINE_BIN is not None
pytestmark = [
    pytest.mark.needs_cli,
    pytest.mark.skipif(not HAS_CLI, reason="no Pulumi CLI: run `scripts/servers install pulumi`"),
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
    env["PATH"] = os.pathsep.join([str(ENGINE_BIN), env.get("PATH", "")])
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
