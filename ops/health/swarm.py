"""The Swarm part of `ops status`: running/desired tasks of each service, from the manager's engine.

Through the Docker SDK for Python (`docker.APIClient`) at the manager node's `dockerHost`
(`unix://`, `tcp://` with the usual DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, or `ssh://` through the
system's `ssh`, as the docker CLI does), API version negotiated (`GET /version`). Two reads:
`GET /services` (each service's `Spec.Mode`) and `GET /tasks` (every task's `ServiceID`,
`DesiredState`, `Status.State`, `Status.Err`/`Message`), both shapes of the Engine API reference.

- desired: `Spec.Mode.Replicated.Replicas`; a global service: its tasks whose desired state is not
  `shutdown` (how the engine's own `ServiceStatus.DesiredTasks` counts them);
- running: tasks desired `running` whose state is `running`. A service with a healthcheck (every
  one this program deploys) has its task in `starting` until the healthcheck passes, so running
  means healthy as far as the Swarm knows.

Proven only against a fake Engine API (tests/ops/test_status.py serves `/version`, `/services`
and `/tasks` in the documented shapes on the loopback harness): there is no Docker engine where
the tests run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ops.health.model import Check, Status


class SwarmError(Exception):
    """The manager's engine could not be asked (or is not a Swarm manager)."""

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


@dataclass(frozen=True)
class ServiceState:
    """One service as the Swarm sees it."""

    name: str
    mode: str
    desired: int
    running: int
    target: str
    problem: str | None = None  # state and error of the newest task that is not running

    def row(self) -> Check:
        counts = f"{self.running}/{self.desired} tasks running ({self.mode})"
        why = f"; newest other task: {self.problem}" if self.problem else ""
        status: Status
        if self.mode.endswith("job"):
            status, detail = "ok", f"{self.mode}, not a long-running service"
        elif self.desired == 0:
            status, detail = "warn", f"scaled to 0 tasks{why}"
        elif self.running >= self.desired:
            status, detail = "ok", counts
        elif self.running == 0:
            status, detail = "fail", counts + why
        else:
            status, detail = "warn", counts + why
        return Check("swarm", self.name, status, detail, self.target)


@dataclass(frozen=True)
class SwarmSnapshot:
    """The services of the Swarm at one moment, by name."""

    target: str
    engine_version: str
    api_version: str
    services: dict[str, ServiceState] = field(default_factory=dict)

    def describe(self) -> str:
        return f"Swarm manager answers: Docker {self.engine_version} (API {self.api_version}), " \
               f"{len(self.services)} services"


def _mode(spec_mode: Mapping[str, Any]) -> str:
    for key, name in (("Replicated", "replicated"), ("Global", "global"),
                      ("ReplicatedJob", "replicated-job"), ("GlobalJob", "global-job")):
        if key in spec_mode:
            return name
    return "unknown"


def snapshot_from(services: list[dict[str, Any]], tasks: list[dict[str, Any]], *, target: str,
                  engine_version: str, api_version: str) -> SwarmSnapshot:
    """Running/desired tasks of each service, from the `/services` and `/tasks` answers."""
    by_service: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        by_service.setdefault(str(task.get("ServiceID", "")), []).append(task)
    states: dict[str, ServiceState] = {}
    for svc in services:
        spec = svc.get("Spec") or {}
        name = str(spec.get("Name", svc.get("ID", "")))
        mode = _mode(spec.get("Mode") or {})
        mine = by_service.get(str(svc.get("ID", "")), [])
        live = [t for t in mine if t.get("DesiredState") != "shutdown"]
        if mode == "replicated":
            desired = int(((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 0)
        else:
            desired = len(live)
        running = sum(1 for t in mine
                      if t.get("DesiredState") == "running" and (t.get("Status") or {}).get("State") == "running")
        others = [t for t in mine if (t.get("Status") or {}).get("State") != "running"]
        problem = None
        if others:
            newest = max(others, key=lambda t: str((t.get("Status") or {}).get("Timestamp", "")))
            st = newest.get("Status") or {}
            problem = str(st.get("State", "?"))
            message = st.get("Err") or st.get("Message")
            if message and message != problem:
                problem += f": {message}"
        states[name] = ServiceState(name, mode, desired, running, target, problem)
    return SwarmSnapshot(target, engine_version, api_version, states)


def _display(host: str) -> str:
    parts = urlsplit(host)
    if parts.password is None:
        return host
    return host.replace(f":{parts.password}@", ":[secret]@")


def fetch(docker_host: str, timeout: float, environ: Mapping[str, str] | None = None) -> SwarmSnapshot:
    """Ask the manager's engine at `docker_host`; SwarmError on any failure."""
    import docker
    import requests
    from docker.errors import DockerException
    from docker.utils import kwargs_from_env

    env = dict(os.environ if environ is None else environ)
    target = _display(docker_host)
    kwargs: dict[str, Any] = {}
    if docker_host.startswith("tcp://") and env.get("DOCKER_TLS_VERIFY"):
        kwargs["tls"] = kwargs_from_env(environment=env).get("tls")
    try:
        api = docker.APIClient(base_url=docker_host, version="auto", timeout=int(max(1, round(timeout))),
                               use_ssh_client=docker_host.startswith("ssh://"), **kwargs)
    except (DockerException, requests.RequestException, OSError) as e:
        raise SwarmError(f"cannot reach the Docker engine: {e}", target) from None
    try:
        version = api.version()
        services: list[dict[str, Any]] = api.services()  # type: ignore[no-untyped-call]
        tasks: list[dict[str, Any]] = api.tasks()  # type: ignore[no-untyped-call]
    except (DockerException, requests.RequestException, OSError) as e:
        text = str(e)
        if "not a swarm manager" in text.lower():
            text = f"{text}: the node in dockerHost must be a manager (nodes.<name>.manager)"
        raise SwarmError(f"the Docker engine did not answer: {text}", target) from None
    finally:
        api.close()
    return snapshot_from(services, tasks, target=target, engine_version=str(version.get("Version", "?")),
                         api_version=str(version.get("ApiVersion", "?")))
