"""The Pulumi engine at the pinned version, for the real-engine tests and a shell without a Pulumi
install: `scripts/servers install pulumi`, then `eval "$(scripts/servers env)"` puts it on PATH.

A tool, not a server: it is installed, never started. `servers.TOOLS` lists it apart from
`servers.ORDER`, so `scripts/servers start` (with or without names) starts no engine, and
`scripts/servers install` without names does not build it either (the real-server suites do not
need it); `scripts/servers install pulumi` does.

One build of the tools module `servers/go/pulumi` (go.mod + go.sum + our language host's source)
into the cache, with the CLI's own version stamp (`version.Version`), gives `bin/` with:

- `pulumi` — the CLI, `github.com/pulumi/pulumi/pkg/v3/cmd/pulumi`.
- `pulumi-language-python` — the Python language host. Pulumi's own
  (`github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3`) is not served by the Go module
  proxy here, so this is a minimal host of ours built against the SDK module at the same version; what
  it does and does not do: `servers/go/pulumi/pulumi-language-python/main.go`.
- `pulumi-language-python-exec` (runs the program) and `pulumi-resource-pulumi-python` (the
  dynamic-provider host) — Pulumi's own scripts from the SDK module (`sdk/python/cmd`,
  `sdk/python/dist`), which Pulumi's release ships next to the CLI.

The CLI finds the language host and the dynamic-provider host next to its own binary (its
"bundled" plugins) or on PATH. Provider plugins (pulumi-tls, pulumi-random, docker, digitalocean)
are not part of it: their Go modules are not served here (docs/testing.md, "The Pulumi engine").
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from servers import cache, toolchain
from servers.errors import ServerError
from servers.process import Run
from stack_config import versions

NAME = "pulumi"
MODULE = "pulumi"
SDK = "github.com/pulumi/pulumi/sdk/v3"
CLI_PACKAGE = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
LANGUAGE_HOST = "pulumi-language-python"
PACKAGES = (CLI_PACKAGE, f"./{LANGUAGE_HOST}")
# What Pulumi's release build stamps (`make build` / goreleaser): the version with its "v".
LDFLAGS = f"-s -w -X {SDK}/go/common/version.Version=v{versions.PULUMI}"
# Pulumi's scripts from the SDK module (path in the module -> name in bin/).
SCRIPTS = (
    "python/cmd/pulumi-language-python-exec",
    "python/dist/pulumi-resource-pulumi-python",
)
BINARIES = ("pulumi", LANGUAGE_HOST, *(Path(s).name for s in SCRIPTS))


def _module_files(src: Path) -> list[Path]:
    return sorted(p for p in src.rglob("*") if p.is_file())


def entry() -> Path:
    """The cache entry for the current tools module (built or not); binaries in `bin/`."""
    src = toolchain.GO_MODULES / MODULE
    parts: list[str | bytes] = []
    for p in _module_files(src):
        parts += [str(p.relative_to(src)), p.read_bytes()]
    return cache.entry(NAME, versions.PULUMI, cache.key(*parts, *PACKAGES, LDFLAGS, toolchain.go_version()))


def bin_dir() -> Path:
    """Build (first use) the CLI and the language host and lay out Pulumi's scripts; returns bin/."""
    src = toolchain.GO_MODULES / MODULE
    dest = entry()
    with cache.building(dest) as must_build:
        if must_build:
            work = dest / "src"
            shutil.copytree(src, work)
            bins = dest / "bin"
            bins.mkdir()
            log = dest / "build.log"
            env = {"GOFLAGS": "-mod=readonly", "CGO_ENABLED": os.environ.get("CGO_ENABLED", "1")}
            toolchain.run_logged(NAME, f"building the Pulumi CLI and language host {versions.PULUMI}",
                           ["go", "build", "-trimpath", "-o", f"{bins}/", "-ldflags", LDFLAGS, *PACKAGES], log,
                           cwd=work, env=env)
            sdk_dir = toolchain.run_logged(NAME, f"locating {SDK}", ["go", "list", "-m", "-f", "{{.Dir}}", SDK], log,
                                     cwd=work, env=env).strip()
            for rel in SCRIPTS:
                target = bins / Path(rel).name
                shutil.copyfile(Path(sdk_dir) / rel, target)
                target.chmod(0o755)
    return dest / "bin"


class Pulumi:
    name: ClassVar[str] = NAME
    version: ClassVar[str] = versions.PULUMI
    requires: ClassVar[tuple[str, ...]] = ()

    def install(self) -> None:
        toolchain.built(NAME, bin_dir(), BINARIES)

    def path_entries(self) -> list[Path]:
        return [entry() / "bin"]

    def reported_version(self) -> str:
        """What `pulumi version` prints, without the "v" (it must equal the pin)."""
        exe = self.path_entries()[0] / "pulumi"
        if not exe.is_file():
            raise ServerError(NAME, f"{exe} is missing: run `scripts/servers install pulumi`")
        try:
            done = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=60, check=False,
                                  env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"})
        except OSError as e:
            raise ServerError(NAME, f"{exe} version: {e}") from e
        if done.returncode != 0:
            raise ServerError(NAME, f"{exe} version failed: {done.stderr.strip()}")
        return done.stdout.strip().removeprefix("v")

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Nothing to start: the engine is a tool (`servers.start` never calls this)."""
        raise ServerError(NAME, "the Pulumi engine is a tool, not a server: install it, nothing to start")


SERVER = Pulumi()
