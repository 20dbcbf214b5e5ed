"""Keycloak's events reach its stdout as the Kubernetes Deployment configures it, and Promtail's
pipeline marks them: the real Keycloak 26.7.0 started with the stack's environment plus the
Deployment's logging options (`KC_LOG*` and `KC_SPI_EVENTS_LISTENER_*` of
`components/kubernetes/iam.keycloak_env`, as k8s-dev registers them), a real login and a real
failed login, and each resulting JSON line of its console log put through the `json` and
`template` stages of k8s-dev's rendered promtail.yaml (the expressions and the logger the template
tests, read from the config, not restated here).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from servers import keycloak as kc_server
from servers.process import Run
from tests.components._platform import unwrap
from tests.conftest import program_run
from tests.real.test_keycloak_stack import pg, stop_keycloaks  # noqa: F401 - pg is a fixture

LOG_WAIT_SECONDS = 30


def deployment_logging_env() -> dict[str, str]:
    """The Kubernetes Deployment's logging options, as k8s-dev registers them."""
    (deployment,) = [unwrap(r.inputs) for r in program_run("k8s-dev", False).of_type("kubernetes:apps/v1:Deployment")
                     if r.name == "iam-keycloak-keycloak"]
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return {e["name"]: e["value"] for e in env if e["name"].startswith(("KC_LOG", "KC_SPI_EVENTS_"))}


def keycloak_stage() -> dict[str, Any]:
    """The stages of k8s-dev's Promtail pipeline for Keycloak's container, by stage name."""
    (cm,) = [unwrap(r.inputs) for r in program_run("k8s-dev", False).of_type("kubernetes:core/v1:ConfigMap")
             if r.inputs["metadata"]["name"] == "promtail"]
    (job,) = yaml.safe_load(cm["data"]["promtail.yaml"])["scrape_configs"]
    (match,) = [s["match"] for s in job["pipeline_stages"]
                if "match" in s and 'app="keycloak"' in s["match"]["selector"]]
    return {k: v for stage in match["stages"] for k, v in stage.items()}


def kind_of(line: dict[str, Any], stages: dict[str, Any]) -> tuple[str, str]:
    """(level, kind) as the pipeline's json and template stages derive them from one log line."""
    extracted = {name: line.get(field) for name, field in stages["json"]["expressions"].items()}
    events_logger = re.search(r'eq \.logger "([^"]+)"', stages["template"]["template"])
    assert events_logger is not None
    return str(extracted["level"]), "event" if extracted["logger"] == events_logger.group(1) else "log"


@pytest.fixture
def events_keycloak(pg: dict[str, Any], servers_run: Run) -> Iterator[dict[str, Any]]:
    stop_keycloaks(servers_run)  # one JVM at a time on these machines
    section = kc_server.start_keycloak(servers_run, pg, name="server-k8s-logging", extra_env=deployment_logging_env())
    try:
        yield section
    finally:
        stop_keycloaks(servers_run)


def json_lines(log: Path) -> list[dict[str, Any]]:
    out = []
    for raw in log.read_text(errors="replace").splitlines():
        start = raw.find("{")
        if start < 0:
            continue
        try:
            out.append(json.loads(raw[start:]))
        except ValueError:
            continue
    return out


def test_logins_reach_stdout_as_events_promtail_marks(events_keycloak: dict[str, Any]) -> None:
    env = deployment_logging_env()
    assert env["KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING_SUCCESS_LEVEL"] == "info"
    token_url = f"{events_keycloak['url']}/realms/master/protocol/openid-connect/token"
    ok = httpx.post(token_url, data={"grant_type": "password", "client_id": "admin-cli",
                                     "username": events_keycloak["admin_user"],
                                     "password": events_keycloak["admin_password"]}, timeout=60)
    assert ok.status_code == 200, ok.text
    bad = httpx.post(token_url, data={"grant_type": "password", "client_id": "admin-cli",
                                      "username": events_keycloak["admin_user"], "password": "wrong"}, timeout=60)
    assert bad.status_code in (400, 401) and bad.json()["error"] == "invalid_grant", bad.text
    stages = keycloak_stage()
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        lines = json_lines(Path(events_keycloak["log"]))
        marked = [(kind_of(line, stages), line.get("message", "")) for line in lines]
        events = [(level, message) for (level, kind), message in marked if kind == "event"]
        if any('type="LOGIN_ERROR"' in m for _, m in events) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert lines, "Keycloak wrote no JSON console lines"
    assert ("INFO", "log") in {k for k, _ in marked}  # its ordinary start-up lines are not events
    login = [level for level, m in events if 'type="LOGIN"' in m and 'clientId="admin-cli"' in m]
    failed = [level for level, m in events if 'type="LOGIN_ERROR"' in m]
    assert login and set(login) == {"INFO"}, events[-5:]  # successes at INFO (DEBUG without the option)
    assert failed and set(failed) == {"WARN"}, events[-5:]
