"""`pulumi` as a user runs it, confined to one test directory: its own PULUMI_HOME, a local file
backend and the passphrase secrets provider, the installed engine first on PATH."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from servers.stack import external_settings, set_secrets, write_stack_file

REPO = Path(__file__).resolve().parents[2]
STACK = "test"
PASSPHRASE = "engine-probe-passphrase"


class Cli:
    """`pulumi` in one project directory with its own PULUMI_HOME, backend and passphrase."""

    def __init__(self, bin_dir: Path, work: Path, stack: str = STACK, plugins: Sequence[Path] = ()) -> None:
        """`plugins`: directories of provider plugins (`pulumi-resource-*`), on PATH after the engine."""
        self.stack = stack
        self.dir = work / "program"
        self.state = work / "state"
        self.dir.mkdir()
        self.state.mkdir()
        self.env = {
            **os.environ,
            "PATH": os.pathsep.join([str(bin_dir), *map(str, plugins), os.environ.get("PATH", "")]),
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


# The CLI's environment, which the Automation API (so `ops`) inherits from this process.
CLI_ENV = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_HOME", "PATH", "PULUMI_SKIP_UPDATE_CHECK",
           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION")


def take_cli_env(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process takes `cli`'s environment (`CLI_ENV`): `ops` commands run in-process, whose
    Automation API runs the CLI of this process's environment, reach the same backend and CLI."""
    for key in CLI_ENV:
        monkeypatch.setenv(key, cli.env[key])
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)


@dataclass(frozen=True)
class ExternalStack:
    """A `platform: external` stack of the project's own program, configured (not yet up)."""

    cli: Cli
    tag: str
    workload: str  # its one workload, `shell-<tag>`
    user: str  # its one Keycloak user, `alice-<tag>`
    secret_values: dict[str, str]  # what `pulumi config set --secret` was given

    @property
    def stack(self) -> str:
        return self.cli.stack


def external_stack(engine_bin: Path, work: Path, servers: dict[str, Any], prefix: str,
                   monkeypatch: pytest.MonkeyPatch | None = None) -> ExternalStack:
    """Stack `<prefix>-<tag>` in `work` against the real `servers`, as `scripts/servers configure`
    sets one up (secrets with `--secret`): realm `<prefix>-<tag>`, workload `shell-<tag>` at
    `/<prefix>/<tag>/shell`, user `alice-<tag>`. With `monkeypatch`, this process takes the CLI's
    environment (`CLI_ENV`), so `ops` commands run in-process reach the same backend."""
    tag = secrets.token_hex(3)
    cli = Cli(engine_bin, work, f"{prefix}-{tag}")
    for name in ("__main__.py", "Pulumi.yaml"):
        (cli.dir / name).write_text((REPO / name).read_text())
    (cli.dir / ".venv").symlink_to(REPO / ".venv")
    plain, secret_values = external_settings(servers)
    workload, user = f"shell-{tag}", f"alice-{tag}"
    plain["keycloak"]["realm"] = cli.stack
    plain["workloads"] = {workload: {**plain["workloads"]["local-shell"], "spiffePath": f"/{prefix}/{tag}/shell"}}
    plain["users"] = {user: {"email": f"{user}@acme-identity.net", "zitiRoleAttributes": ["operators"]}}
    cli("stack", "init")
    write_stack_file(cli.dir, cli.stack, plain)
    set_secrets(secret_values, stack=cli.stack, cwd=cli.dir, env=cli.env)
    if monkeypatch is not None:
        take_cli_env(cli, monkeypatch)
    return ExternalStack(cli, tag, workload, user, secret_values)
