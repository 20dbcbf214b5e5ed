"""A fake `spire-server` CLI and the fake `docker` / `kubectl` that exec into it.

`FakeWorld` describes Docker engines (by DOCKER_HOST URL) with their containers, and Kubernetes
contexts with namespaces, pods and containers. A container maps paths inside it to host paths
(the SPIRE admin socket served by `tests.fakes.spire_server.FakeSpireServer`) and lists the
executables it has. Put `BIN` first on PATH (`FakeWorld.env()`) and the provider's
`docker exec ... /opt/spire/bin/spire-server entry ...` reaches the fake server through the fake
CLI, exactly as it would reach a real server through the real one.

Every `docker` / `kubectl` invocation is appended to the world's log (`FakeWorld.execs()`), with
the DOCKER_HOST it saw, so tests can check which engine and which container were used.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(__file__).resolve().parent / "bin"
SERVER_BINARY = "/opt/spire/bin/spire-server"
DEFAULT_SOCKET = "/tmp/spire-server/private/api.sock"
WORLD_ENV = "SPIRE_FAKE_WORLD"


@dataclass
class FakeWorld:
    """The fake engines, clusters and containers, saved as JSON where the fake CLIs read it."""

    directory: Path
    docker: dict[str, dict[str, Any]] = field(default_factory=dict)
    kubernetes: dict[str, Any] = field(default_factory=lambda: {"current_context": None, "contexts": {}})

    @property
    def path(self) -> Path:
        return self.directory / "world.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "exec.log"

    def add_container(
        self,
        docker_host: str,
        name: str,
        socket: str,
        *,
        container_socket: str = DEFAULT_SOCKET,
        labels: dict[str, str] | None = None,
        running: bool = True,
        executables: tuple[str, ...] = (SERVER_BINARY,),
    ) -> FakeWorld:
        """A container on the engine at `docker_host` whose `container_socket` is host `socket`."""
        engine = self.docker.setdefault(docker_host, {"containers": []})
        engine["containers"].append(
            {
                "id": os.urandom(32).hex(),
                "name": name,
                "running": running,
                "labels": labels or {},
                "files": {container_socket: socket},
                "executables": list(executables),
            }
        )
        return self.save()

    def add_pod(
        self,
        context: str,
        namespace: str,
        pod: str,
        container: str,
        socket: str,
        *,
        container_socket: str = DEFAULT_SOCKET,
        executables: tuple[str, ...] = (SERVER_BINARY,),
        current: bool = True,
    ) -> FakeWorld:
        ctx = self.kubernetes["contexts"].setdefault(context, {"namespaces": {}})
        pods = ctx["namespaces"].setdefault(namespace, {"pods": {}})["pods"]
        pods.setdefault(pod, {"containers": {}})["containers"][container] = {
            "files": {container_socket: socket},
            "executables": list(executables),
        }
        if current or self.kubernetes["current_context"] is None:
            self.kubernetes["current_context"] = context
        return self.save()

    def save(self) -> FakeWorld:
        self.directory.mkdir(parents=True, exist_ok=True)
        doc = {"log": str(self.log_path), "docker": self.docker, "kubernetes": self.kubernetes}
        self.path.write_text(json.dumps(doc, indent=1))
        return self

    def env(self) -> dict[str, str]:
        """Environment for a process that should find the fake CLIs before any real ones."""
        self.save()
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": os.pathsep.join([str(BIN), venv_bin, os.environ.get("PATH", "")]),
            WORLD_ENV: str(self.path),
            "SPIRE_FAKE_PYTHON": sys.executable,
        }

    def execs(self, tool: str | None = None) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        records = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
        return [r for r in records if tool is None or r["tool"] == tool]


def load_world() -> dict[str, Any]:
    path = os.environ.get(WORLD_ENV)
    if not path:
        return {"log": None, "docker": {}, "kubernetes": {"current_context": None, "contexts": {}}}
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


def log_exec(world: dict[str, Any], record: dict[str, Any]) -> None:
    if world.get("log"):
        with open(world["log"], "a") as f:
            f.write(json.dumps(record) + "\n")
