"""`pulumi` as a user runs it, confined to one test directory: its own PULUMI_HOME, a local file
backend and the passphrase secrets provider, the installed engine first on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK = "test"
PASSPHRASE = "engine-probe-passphrase"


class Cli:
    """`pulumi` in one project directory with its own PULUMI_HOME, backend and passphrase."""

    def __init__(self, bin_dir: Path, work: Path, stack: str = STACK) -> None:
        self.stack = stack
        self.dir = work / "program"
        self.state = work / "state"
        self.dir.mkdir()
        self.state.mkdir()
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]),
            "PULUMI_HOME": str(work / "home"),
            "PULUMI_BACKEND_URL": f"file://{self.state}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PYTHONPATH": str(REPO),  # the program and the provider host import dynamic_providers
        }

    def __call__(self, *args: str, stdin: str | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["pulumi", *args, "--non-interactive", "--stack", self.stack], cwd=self.dir, env=self.env,
                              input=stdin, capture_output=True, text=True, timeout=300, check=False)
        if ok:
            assert done.returncode == 0, f"pulumi {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def state_text(self) -> str:
        return "\n".join(p.read_text() for p in self.state.rglob("*.json"))


def project_copy(cli: Cli, stack: str, pulumi_yaml: str | None = None) -> None:
    """The project's own program and files in `cli.dir` (stack init rewrites the stack file)."""
    for name in ("__main__.py", f"Pulumi.{stack}.yaml"):
        (cli.dir / name).write_text((REPO / name).read_text())
    (cli.dir / "Pulumi.yaml").write_text(pulumi_yaml or (REPO / "Pulumi.yaml").read_text())
    (cli.dir / ".venv").symlink_to(REPO / ".venv")
