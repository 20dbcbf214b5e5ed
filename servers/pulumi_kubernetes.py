"""The pulumi-kubernetes provider plugin at the pinned release, for the real-engine tests of the
Kubernetes stacks: `scripts/servers install pulumi-kubernetes` builds `pulumi-resource-kubernetes`;
`eval "$(scripts/servers env)"` puts it on PATH next to the engine, where the CLI finds it.

A tool like the engine (`servers/pulumi.py`): installed only when named, never started.

Where it comes from. The Go module proxy refuses `github.com/pulumi/pulumi-kubernetes/provider/v4`
at the six tagged releases tried (4.18.0 to 4.34.2, 4.25.0 among them) but serves the pseudo-version
`v4.0.0-20260115033456-f47bc2d6f199`: commit f47bc2d6f199 of pulumi/pulumi-kubernetes, which is the
commit tagged `v4.25.0` (the tag points at it; `git describe --tags` of the commit is `v4.25.0`). So
this is the 4.25.0 release's source, and the tools module `servers/go/pulumi-kubernetes` pins it and
every dependency with checksums. `versions.PULUMI_KUBERNETES` (4.25.0) is what requirements.txt pins
the Python SDK to, so the plugin the SDK asks for is the one built here.

How it is built, as the release's Makefile does (`make provider`): the main package
`cmd/pulumi-resource-kubernetes` embeds `schema-embed.json` and `terraform-mapping-embed.json`, which
its `go generate` step (`generate.go`, with VERSION) makes from the module's `schema.json` and
`terraform-mapping.json`; the module zip does not carry the generated files. So the build copies
that package's four files from the module cache into the work copy of the tools module, runs
`go run generate.go` with VERSION=4.25.0, and builds it with CGO_ENABLED=0 and the version stamp
`-X .../pkg/version.Version=4.25.0`. The upstream files are used unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2_grpc

from servers import cache, toolchain
from servers.errors import ServerError
from servers.process import Run
from stack_config import versions

NAME = "pulumi-kubernetes"
MODULE = "pulumi-kubernetes"
PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"
MAIN = "cmd/pulumi-resource-kubernetes"
BINARY = "pulumi-resource-kubernetes"
# The main package's files: the program, its generator and the generator's inputs.
MAIN_FILES = ("main.go", "generate.go", "schema.json", "terraform-mapping.json")
LDFLAGS = f"-s -w -X {PROVIDER_MODULE}/pkg/version.Version={versions.PULUMI_KUBERNETES}"


def entry() -> Path:
    """The cache entry for the current tools module (built or not); the plugin is in `bin/`."""
    src = toolchain.GO_MODULES / MODULE
    return cache.entry(NAME, versions.PULUMI_KUBERNETES,
                       cache.key((src / "go.mod").read_bytes(), (src / "go.sum").read_bytes(), MAIN, LDFLAGS,
                                 toolchain.go_version()))


def bin_dir() -> Path:
    """Build the plugin on first use; returns the entry's bin/."""
    src = toolchain.GO_MODULES / MODULE
    dest = entry()
    with cache.building(dest) as must_build:
        if must_build:
            work = dest / "src"
            work.mkdir()
            for f in ("go.mod", "go.sum"):
                shutil.copy2(src / f, work / f)
            log = dest / "build.log"
            env = {"GOFLAGS": "-mod=readonly", "CGO_ENABLED": "0"}
            # `go mod download` brings the zip into an empty module cache (`go list -m` would not)
            # and checks it against go.sum; its JSON names the unpacked directory.
            module_dir = json.loads(toolchain.run_logged(
                NAME, f"downloading {PROVIDER_MODULE}", ["go", "mod", "download", "-json", PROVIDER_MODULE], log,
                cwd=work, env=env)).get("Dir", "")
            if not module_dir:
                raise ServerError(NAME, f"`go mod download` has not brought {PROVIDER_MODULE}", log)
            main = work / BINARY
            main.mkdir()
            for f in MAIN_FILES:
                shutil.copyfile(Path(module_dir) / MAIN / f, main / f)
            toolchain.run_logged(NAME, "generating the embedded schema (go generate)", ["go", "run", "generate.go"],
                                 log, cwd=main, env={**env, "VERSION": versions.PULUMI_KUBERNETES})
            bins = dest / "bin"
            bins.mkdir()
            toolchain.run_logged(NAME, f"building {BINARY} {versions.PULUMI_KUBERNETES}",
                                 ["go", "build", "-trimpath", "-o", f"{bins}/", "-ldflags", LDFLAGS, f"./{BINARY}"],
                                 log, cwd=work, env=env)
    return dest / "bin"


class PulumiKubernetes:
    name: ClassVar[str] = NAME
    version: ClassVar[str] = versions.PULUMI_KUBERNETES
    requires: ClassVar[tuple[str, ...]] = ()

    def install(self) -> None:
        toolchain.built(NAME, bin_dir(), (BINARY,))

    def path_entries(self) -> list[Path]:
        return [entry() / "bin"]

    def reported_version(self) -> str:
        """The version the plugin gives the engine: started as the engine starts it, asked over its
        gRPC interface (`GetPluginInfo`). (`go version -m` cannot tell: -trimpath drops -ldflags from
        the build info.)"""
        exe = self.path_entries()[0] / BINARY
        if not exe.is_file():
            raise ServerError(NAME, f"{exe} is missing: run `scripts/servers install {NAME}`")
        # The engine's address: the plugin dials it lazily, and GetPluginInfo does not need it.
        proc = subprocess.Popen([str(exe), "127.0.0.1:1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, text=True, env=dict(os.environ))
        try:
            assert proc.stdout is not None
            port = proc.stdout.readline().strip()
            if not port.isdigit():
                raise ServerError(NAME, f"{exe} did not print its port (got {port!r})")
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                info = provider_pb2_grpc.ResourceProviderStub(channel).GetPluginInfo(empty_pb2.Empty(), timeout=60)
            return str(info.version)
        except grpc.RpcError as e:
            raise ServerError(NAME, f"{exe}: GetPluginInfo failed: {e}") from e
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    def start(self, run: Run, deps: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Nothing to start: the plugin is a tool (`servers.start` never calls this)."""
        raise ServerError(NAME, "the pulumi-kubernetes plugin is a tool, not a server: install it, nothing to start")


SERVER = PulumiKubernetes()
