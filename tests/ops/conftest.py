"""The `fake_cli` fixture: a recording fake `pulumi` on PATH and a throwaway copy of the project."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ops.cli import main
from tests.harness.mock_engine import ROOT

HERE = Path(__file__).resolve().parent
FAKE = HERE / "fake_pulumi.py"
RECORDED = HERE / "recorded"
# Variables the CLI or our workspace reads; cleared so the developer's shell cannot leak in.
PULUMI_ENV = (
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "PULUMI_PYTHON_CMD",
    "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK",
    "PULUMI_HOME",
)


@dataclass
class Call:
    argv: list[str]
    cwd: str
    env: dict[str, str]

    @property
    def args(self) -> list[str]:
        """argv without the `--non-interactive` the Automation API prepends to every call."""
        return [a for a in self.argv if a != "--non-interactive"]

    def opt(self, name: str) -> str | None:
        for i, a in enumerate(self.argv):
            if a == name and i + 1 < len(self.argv):
                return self.argv[i + 1]
        return None


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.stdout)
        return doc


@dataclass
class FakeCli:
    home: Path
    bindir: Path
    project: Path
    scenario: dict[str, Any] = field(default_factory=dict)

    def configure(self, **scenario: Any) -> FakeCli:
        self.scenario.update(scenario)
        (self.home / "scenario.json").write_text(json.dumps(self.scenario))
        return self

    def calls(self) -> list[Call]:
        path = self.home / "calls.jsonl"
        if not path.exists():
            return []
        return [Call(**json.loads(line)) for line in path.read_text().splitlines()]

    def commands(self) -> list[list[str]]:
        """Each call's leading words (`['stack', 'select']`, `['preview']`...)."""
        out = []
        for c in self.calls():
            words = c.args
            out.append(words[:2] if words and words[0] == "stack" else words[:1])
        return out

    def call(self, *words: str) -> Call:
        found = [c for c in self.calls() if c.args[: len(words)] == list(words)]
        assert len(found) == 1, f"expected one `pulumi {' '.join(words)}` call, got {self.commands()}"
        return found[0]

    def stacks(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads((self.home / "state.json").read_text())
        return dict(state["stacks"])

    def run(self, *argv: str) -> Result:
        """`python -m ops ...` in process, rooted at the project copy."""
        out, err = io.StringIO(), io.StringIO()
        code = main(list(argv), stdout=out, stderr=err, root=self.project)
        return Result(code, out.getvalue(), err.getvalue())

    def run_module(self, *argv: str, env: dict[str, str] | None = None) -> Result:
        """`python -m ops ...` as a real process (exercises ops/__main__.py and PATH lookup)."""
        proc = subprocess.run(
            [sys.executable, "-m", "ops", *argv],
            cwd=ROOT,
            env=env or dict(os.environ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCli]:
    home = tmp_path / "fake-home"
    (home / "recorded").mkdir(parents=True)
    for f in RECORDED.iterdir():
        shutil.copy(f, home / "recorded" / f.name)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "pulumi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    exe.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    for f in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(f, project / f.name)
    for name in PULUMI_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FAKE_PULUMI_DIR", str(home))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "pulumi-home"))  # the selected stack is kept there
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    yield FakeCli(home, bindir, project).configure()
