"""`python -m ops dashboard`: the web app (Starlette's test client) over a stub health source.

The stub is the health model's own data types filled in with written-out rows (`Check`,
`StatusReport`), or the real `LiveSource` (load, then `ops.health.collect`) over a written-out
`Target` and stub probes. The pages list the stacks with score and deployment, show every row
with its detail and target, the JSON endpoints keep their shape, no secret reaches any response,
and a stack the dashboard was not started with is a 404 everywhere. The real thing, in Chromium
against the real servers: tests/engine/test_ops_dashboard.py.
"""

from __future__ import annotations

import argparse
import io
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from html import unescape
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

import ops.dashboard
import ops.diagram
import ops.health
import ops.health.inputs
import stack_config
from ops.cli import build_parser, main
from ops.dashboard.app import SECURITY_HEADERS, create_app
from ops.dashboard.source import Deployment, LiveSource, Monitor, Problem, StackView
from ops.errors import ExitCode, OpsError
from ops.health import Options, Target
from ops.health.checks import Context
from ops.health.model import Check, StatusReport
from tests.ops.test_status import ROOT_PEM, TD, _outputs

HEALTHY_ROWS = (
    Check("spire", "server ready", "ok", "Entry API answers; entries on the server: 1", "unix:/run/spire/api.sock"),
    Check("spire", "entries", "ok", "entries owned by this stack: 1; in spireEntryIds: 1", "unix:/run/spire/api.sock"),
    Check("keycloak", "health", "ok", "UP, checks: 4", "http://127.0.0.1:9000/health/ready"),
    Check("keycloak", "issuer", "ok", "realm platform answers; its issuer is the stack's",
          "https://auth.example.org/realms/platform/.well-known/openid-configuration"),
    Check("ziti", "ca", "ok", "CA edge-ziti-trust-spire registered, verified, authentication enabled",
          "https://ziti.example.org"),
    Check("ziti", "ext-jwt signer", "ok", "signer edge-ziti-trust-keycloak enabled", "https://ziti.example.org"),
    Check("certificates", "root CA", "ok", "CN=example.org root CA valid until 2036-11-29 (3649 days)",
          "spireBundlePem"),
)
PROD_ROWS = (
    Check("spire", "server ready", "ok", "Entry API answers; entries on the server: 3", "docker exec spire-server"),
    Check("keycloak", "health", "warn", "Swarm healthcheck: starting", None),
    Check("ziti", "ext-jwt signer", "fail", "signer prod-ziti-trust-keycloak: disabled: Keycloak users cannot log in",
          "https://ziti.zt.acme-identity.net"),
    Check("swarm", "keycloak", "warn", "running 1 of 2 tasks", "ssh://root@10.114.0.2"),
)


class Stub:
    """A health source of written-out views; counts how often each stack is looked at."""

    def __init__(self, views: dict[str, StackView], svg: str | OpsError = "<svg xmlns='http://www.w3.org/2000/svg'/>"):
        self.views = views
        self.svg = svg
        self.looks: dict[str, int] = {}

    def view(self, stack: str) -> StackView:
        self.looks[stack] = self.looks.get(stack, 0) + 1
        return self.views[stack]

    def diagram_svg(self, stack: str) -> str:
        if isinstance(self.svg, OpsError):
            raise self.svg
        return self.svg


def _views() -> dict[str, StackView]:
    return {
        "edge": StackView("edge", Deployment("external", "prod"), StatusReport("edge", "external", HEALTHY_ROWS)),
        "prod": StackView("prod", Deployment("swarm", "prod", 3), StatusReport("prod", "swarm", PROD_ROWS)),
        "dev": StackView("dev", problem=Problem("stack 'dev' has no outputs: it has never been deployed",
                                                "python -m ops up --stack dev", int(ExitCode.STACK_NOT_FOUND))),
    }


@pytest.fixture
def stub() -> Stub:
    return Stub(_views())


@pytest.fixture
def client(stub: Stub) -> TestClient:
    return TestClient(create_app(stub, ["edge", "prod", "dev"], refresh=5))


def _text(html: str) -> str:
    """The page's visible text, whitespace collapsed (tags dropped)."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _rows(html: str) -> dict[tuple[str, str], str]:
    """(component, check) -> status of every row element of a stack page."""
    found = re.findall(r'<details class="row[^"]*" id="[^"]+"\s+data-component="([^"]+)" data-check="([^"]+)" '
                       r'data-status="([^"]+)"', html)
    return {(c, k): s for c, k, s in found}


# -- pages -------------------------------------------------------------------------------------


def test_index_lists_every_stack_with_its_score_deployment_and_status(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    cards = dict(re.findall(r'data-stack="([^"]+)" data-status="([^"]+)"', r.text))
    assert cards == {"edge": "ok", "prod": "fail", "dev": "error"}
    text = _text(r.text)
    assert "edge external 100 /100 ok" in text
    assert "prod swarm prod 50 /100 fail" in text  # components: spire 1, keycloak 1/2, ziti 0, swarm 1/2
    assert "1 ok · 2 warn · 1 fail" in text
    assert "cannot read the stack stack 'dev' has no outputs: it has never been deployed" in text
    for stack in ("edge", "prod", "dev"):
        assert f'href="/stacks/{stack}"' in r.text
    assert client.get("/cards").text.strip() in r.text  # the live part is the same template


def test_stack_page_shows_every_row_with_its_detail_and_target(client: TestClient) -> None:
    r = client.get("/stacks/prod")
    assert r.status_code == 200
    assert _rows(r.text) == {(c.component, c.check): c.status for c in PROD_ROWS}
    text = _text(r.text)
    assert "platform swarm · environment prod · 3 nodes" in text
    assert "50 /100 fail" in text
    for c in PROD_ROWS:
        assert c.detail in text
        if c.target:
            assert f"<code>{c.target}</code>" in r.text
    # components in the health model's order, each with its score
    assert re.findall(r'data-component="([a-z]+)">\s*<h2>', r.text) == ["spire", "keycloak", "ziti", "swarm"]
    assert '<h2>ziti <span class="pill status-fail">0</span></h2>' in r.text
    # the diagram below, and the live part the script refreshes
    assert r.text.index('data-live="/stacks/prod/panel"') < r.text.index('src="/stacks/prod/diagram.svg"')
    panel = client.get("/stacks/prod/panel")
    assert panel.status_code == 200 and _rows(panel.text) == _rows(r.text)
    assert "<html" not in panel.text


def test_an_external_stack_says_so_and_an_unreadable_one_shows_the_fix(client: TestClient) -> None:
    edge = _text(client.get("/stacks/edge").text)
    assert "platform external · your own SPIRE, Keycloak and OpenZiti servers" in edge and "100 /100 ok" in edge
    dev = client.get("/stacks/dev")
    assert dev.status_code == 200
    text = _text(dev.text)
    assert "The stack cannot be read stack 'dev' has no outputs" in text
    assert "fix: python -m ops up --stack dev" in text and "would exit 4" in text
    assert _rows(dev.text) == {}


def test_json_endpoints_keep_the_ops_status_shape(client: TestClient, stub: Stub) -> None:
    doc = client.get("/api/stacks/prod").json()
    status_doc = stub.views["prod"].report.as_json()  # type: ignore[union-attr]
    assert {k: doc[k] for k in status_doc if k != "checkedAt"} == {k: v for k, v in status_doc.items()
                                                                   if k != "checkedAt"}
    assert doc["stack"] == "prod" and doc["error"] is None
    assert doc["deployment"] == {"platform": "swarm", "environment": "prod", "label": "swarm prod", "nodes": 3}
    assert doc["score"] == 50 and doc["status"] == "fail" and doc["counts"] == {"ok": 1, "warn": 2, "fail": 1}
    assert doc["checks"][2] == {"component": "ziti", "check": "ext-jwt signer", "status": "fail",
                                "detail": PROD_ROWS[2].detail, "target": PROD_ROWS[2].target}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", doc["checkedAt"])

    dev = client.get("/api/stacks/dev").json()
    assert dev["status"] == "error" and dev["score"] is None and dev["checks"] == [] and dev["deployment"] is None
    assert dev["error"] == {"message": "stack 'dev' has no outputs: it has never been deployed",
                            "hint": "python -m ops up --stack dev", "exitCode": 4}

    listing = client.get("/api/stacks").json()
    assert listing["schemaVersion"] == 1 and listing["refreshSeconds"] == 5
    assert [(s["stack"], s["status"], s["score"]) for s in listing["stacks"]] == [
        ("edge", "ok", 100), ("prod", "fail", 50), ("dev", "error", None)]
    assert set(listing["stacks"][0]) == {"stack", "deployment", "status", "score", "counts", "checkedAt", "error"}
    assert listing["stacks"][0]["deployment"]["label"] == "external"


@pytest.mark.parametrize("path", ["/stacks/nope", "/stacks/nope/panel", "/stacks/nope/diagram.svg",
                                  "/api/stacks/nope", "/no/such/page"])
def test_unknown_stack_or_page_is_a_404(client: TestClient, stub: Stub, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    if path.startswith("/api/"):
        assert r.json() == {"error": {"message": "unknown stack 'nope': this dashboard shows edge, prod, dev"}}
    elif "nope" in path:
        assert "unknown stack &#39;nope&#39;: this dashboard shows edge, prod, dev" in r.text
    assert stub.looks == {}  # nothing was probed for it


def test_the_diagram_is_served_as_svg_or_says_why_not(stub: Stub) -> None:
    client = TestClient(create_app(stub, ["edge"]))
    r = client.get("/stacks/edge/diagram.svg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/svg+xml" and r.text == stub.svg
    stub.svg = OpsError(ExitCode.FAILED, "Graphviz `dot` is not installed", "scripts/apt-packages")
    r = TestClient(create_app(stub, ["edge"])).get("/stacks/edge/diagram.svg")
    assert r.status_code == 503 and r.text == "Graphviz `dot` is not installed\nfix: scripts/apt-packages"


def test_pages_load_only_this_origins_script_and_styles(client: TestClient) -> None:
    page = client.get("/stacks/edge")
    for key, value in SECURITY_HEADERS.items():
        assert page.headers[key] == value
    assert "script-src 'self'" in page.headers["content-security-policy"]
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == ['<script src="/static/dashboard.js" defer>']  # no inline script, no CDN
    assert " style=" not in page.text and "<style" not in page.text
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    js = client.get("/static/dashboard.js")
    css = client.get("/static/dashboard.css")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "fetch(part.dataset.live" in js.text  # the live refresh


# -- no secret ---------------------------------------------------------------------------------

KC_PASSWORD = "kc-admin-S3cret-value"
ZT_PASSWORD = "zt-admin-S3cret-value"
ROUTER_JWT = "eyJhbGciOiJSUzI1NiJ9.router-enrollment-token.sig"


def _external_target() -> Target:
    config = stack_config.parse({
        "environment": "prod", "platform": "external", "strict": False,
        "spire": {"trustDomain": TD, "transport": {"kind": "grpc", "socketPath": "/run/spire/api.sock"},
                  "agents": {"local": f"spiffe://{TD}/spire/agent/x509pop/local"}},
        "keycloak": {"url": "https://auth.example.org", "adminUser": "admin"},
        "ziti": {"controllerUrl": "https://ziti.example.org", "adminUser": "admin"},
    })
    outputs = _outputs("external", zitiRouterId="router", zitiRouterEnrollmentJwt=ROUTER_JWT)
    return Target(stack="edge", project="identity-platform", config=config, outputs=outputs,
                  keycloak_admin_password=SecretStr(KC_PASSWORD), ziti_admin_password=SecretStr(ZT_PASSWORD))


def _leaky_probe(target: Target, options: Options, context: Context) -> list[Check]:
    """A server whose error messages echo what it was sent (each secret of the target)."""
    return [
        Check("keycloak", "realm", "fail", f"login as admin/{KC_PASSWORD} refused",
              f"https://admin:{KC_PASSWORD}@auth.example.org"),
        Check("ziti", "ca", "fail", f"password {ZT_PASSWORD} rejected; router token {ROUTER_JWT}",
              "https://ziti.example.org"),
        Check("certificates", "root CA", "ok", "valid", "spireBundlePem"),
    ]


def _every_response(client: TestClient, stacks: list[str]) -> dict[str, str]:
    paths = ["/", "/cards", "/api/stacks"]
    for s in stacks:
        paths += [f"/stacks/{s}", f"/stacks/{s}/panel", f"/api/stacks/{s}", f"/stacks/{s}/diagram.svg"]
    paths += ["/stacks/nope", "/api/stacks/nope"]
    return {p: client.get(p).text for p in paths}


def test_no_secret_in_any_response(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def load(stack: str, **kw: Any) -> Target:
        seen.append((stack, kw))
        if stack == "broken":
            raise OpsError(ExitCode.CONFIG_ERROR, "incorrect passphrase", "set PULUMI_CONFIG_PASSPHRASE")
        return _external_target()

    source = LiveSource({"edge": Options(timeout=1.0)}, load=load, probes=[("leaky", "all", _leaky_probe)],
                        environ={"PULUMI_CONFIG_PASSPHRASE": "not-a-secret-of-the-stack"})
    monkeypatch.setattr(source, "diagram_svg", lambda stack: "<svg xmlns='http://www.w3.org/2000/svg'/>")
    client = TestClient(create_app(source, ["edge", "broken"], refresh=5))
    responses = _every_response(client, ["edge", "broken"])
    for path, body in responses.items():
        for secret in (KC_PASSWORD, ZT_PASSWORD, ROUTER_JWT):
            assert secret not in body, f"{path} shows a secret"
    # the rows are there, scrubbed by the health model, not dropped
    doc = client.get("/api/stacks/edge").json()
    assert [c["detail"] for c in doc["checks"]][:2] == ["login as admin/[secret] refused",
                                                        "password [secret] rejected; router token [secret]"]
    assert doc["checks"][0]["target"] == "https://admin:[secret]@auth.example.org"
    assert "login as admin/[secret] refused" in responses["/stacks/edge"]
    assert client.get("/api/stacks/broken").json()["error"]["message"] == "incorrect passphrase"
    assert {s for s, _ in seen} == {"edge", "broken"}
    assert seen[0][1]["environ"] == {"PULUMI_CONFIG_PASSPHRASE": "not-a-secret-of-the-stack"}


def test_live_source_is_ops_status_own_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default load is `ops.health.inputs.load_target` (as `ops status` calls it), rows come from
    `ops.health.collect` with the stack's options; the deployment type from the config."""
    seen: list[Any] = []

    def load(stack: str, **kw: Any) -> Target:
        seen.append((stack, kw))
        return _external_target()

    def probe(target: Target, options: Options, context: Context) -> list[Check]:
        seen.append(options)
        return [Check("spire", "server ready", "ok", "Entry API answers", "unix:/run/spire/api.sock")]

    monkeypatch.setattr(ops.health.inputs, "load_target", load)
    opts = Options(timeout=2.0, keycloak_health_url="http://127.0.0.1:9000/health/ready")
    view = LiveSource({"edge": opts}, probes=[("spire", "server ready", probe)]).view("edge")
    assert seen[1] == opts and seen[0][0] == "edge"
    assert view.deployment == Deployment("external", "prod") and view.deployment.label == "external"
    assert view.report is not None and view.report.score == 100 and view.status == "ok"


def test_deployment_type_comes_from_the_stack_config() -> None:
    dev = Deployment.of(stack_config.parse({"environment": "dev"}))
    assert (dev.platform, dev.environment, dev.nodes, dev.label) == ("swarm", "dev", 1, "swarm dev")
    external = Deployment.of(_external_target().config)
    assert (external.platform, external.environment, external.nodes, external.label) == (
        "external", "prod", None, "external")
    assert Deployment("swarm", "prod", 3).as_json() == {"platform": "swarm", "environment": "prod",
                                                       "label": "swarm prod", "nodes": 3}


def test_live_source_draws_the_diagram_with_ops_diagram(monkeypatch: pytest.MonkeyPatch) -> None:
    stack_urn = "urn:pulumi:edge::identity-platform::pulumi:pulumi:Stack::identity-platform-edge"
    trust = "urn:pulumi:edge::identity-platform::identity-platform:ziti:ZitiTrust::edge-ziti-trust"
    ca = ("urn:pulumi:edge::identity-platform::identity-platform:ziti:ZitiTrust$pulumi-python:dynamic/"
          "ziti:CertificateAuthority::edge-ziti-trust-spire")
    state = {"deployment": {"resources": [
        {"urn": stack_urn, "type": "pulumi:pulumi:Stack", "custom": False},
        {"urn": trust, "type": "identity-platform:ziti:ZitiTrust", "custom": False, "parent": stack_urn},
        {"urn": ca, "type": "pulumi-python:dynamic/ziti:CertificateAuthority", "custom": True, "parent": trust,
         "inputs": {"cert_pem": ROOT_PEM}, "outputs": {"admin_password": KC_PASSWORD}},
    ]}}
    asked: list[Any] = []

    def state_resources(stack: str, **kw: Any) -> list[ops.diagram.Resource]:
        asked.append((stack, kw))
        return ops.diagram.resources_from_state(state)

    monkeypatch.setattr(ops.diagram, "state_resources", state_resources)
    svg = LiveSource(environ={"X": "1"}).diagram_svg("edge")
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "edge-ziti-trust-spire" in unescape(svg) and KC_PASSWORD not in unescape(svg)
    assert asked == [("edge", {"root": ops.dashboard.PROJECT_ROOT, "environ": {"X": "1"}})]


# -- refresh: one run of the probes shared by every page ----------------------------------------


def test_a_view_is_reused_while_fresh_and_made_again_after(stub: Stub) -> None:
    now = [100.0]
    monitor = Monitor(stub, ["edge"], max_age=2.5, clock=lambda: now[0])
    assert monitor.view("edge") is monitor.view("edge") and stub.looks == {"edge": 1}
    now[0] += 2.4
    monitor.view("edge")
    assert stub.looks == {"edge": 1}
    now[0] += 0.2
    monitor.view("edge")
    assert stub.looks == {"edge": 2}


def test_pages_refreshing_every_n_seconds_see_a_new_report_each_time(stub: Stub) -> None:
    app = create_app(stub, ["edge"], refresh=4)
    assert app.state.monitor.max_age == 2  # half the refresh: a page polling every 4 s never sees a stale one
    client = TestClient(app)
    client.get("/stacks/edge")
    client.get("/api/stacks/edge")
    client.get("/stacks/edge/panel")
    assert stub.looks == {"edge": 1}


def test_concurrent_requests_share_one_run_of_the_probes() -> None:
    gate = threading.Event()
    runs: list[str] = []

    class Slow(Stub):
        def view(self, stack: str) -> StackView:
            runs.append(stack)
            gate.wait(5)
            return super().view(stack)

    monitor = Monitor(Slow(_views()), ["edge"], max_age=60)
    results: list[StackView] = []
    threads = [threading.Thread(target=lambda: results.append(monitor.view("edge"))) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert runs == ["edge"] and len(results) == 4 and len({id(r) for r in results}) == 1


def test_a_source_that_crashes_is_shown_as_a_problem_not_a_broken_page() -> None:
    class Crashing(Stub):
        def view(self, stack: str) -> StackView:
            raise RuntimeError("boom")

    client = TestClient(create_app(Crashing({}), ["edge"]))
    r = client.get("/stacks/edge")
    assert r.status_code == 200 and "the dashboard could not look: RuntimeError: boom" in r.text
    assert client.get("/api/stacks/edge").json()["status"] == "error"


# -- the command -------------------------------------------------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dashboard", *argv])


def test_options_per_stack_and_the_keycloak_health_url_for_one_or_all() -> None:
    opts = ops.dashboard.options_by_stack(["a", "b"], 3.0, 7, ["b=http://127.0.0.1:9000/health/ready",
                                                              "http://kc:9000/health/ready?x=y"])
    assert opts["a"] == Options(3.0, "http://kc:9000/health/ready?x=y", 7)
    assert opts["b"] == Options(3.0, "http://127.0.0.1:9000/health/ready", 7)
    with pytest.raises(OpsError) as e:
        ops.dashboard.options_by_stack(["a"], 3.0, 7, ["c=http://x/health/ready"])
    assert e.value.code == ExitCode.USAGE and "'c' is not one of the stacks shown" in e.value.message


def test_defaults_bind_the_loopback_interface() -> None:
    args = _args("--stack", "a", "--stack", "b", "--stack", "a")
    assert (args.stack, args.host, args.port, args.refresh) == (["a", "b", "a"], "127.0.0.1", 8765, 15.0)
    served = ops.dashboard.prepare(_args("--stack", "a", "--port", "0"))
    try:
        host, port = served.socket.getsockname()[:2]
        assert host == "127.0.0.1" and port > 0 and served.url == f"http://127.0.0.1:{port}/"
        assert served.server.config.app.state.monitor.stacks == ("a",)
    finally:
        served.socket.close()


def test_cli_prints_the_url_and_serves_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[ops.dashboard.Served] = []

    def run(self: ops.dashboard.Served) -> None:
        ran.append(self)
        raise KeyboardInterrupt  # what Ctrl-C does to a running server

    monkeypatch.setattr(ops.dashboard.Served, "run", run)
    out, err = io.StringIO(), io.StringIO()
    code = main(["dashboard", "--stack", "edge", "--stack", "prod", "--port", "0", "--refresh", "3"],
                stdout=out, stderr=err)
    assert code == ExitCode.OK, err.getvalue()
    assert out.getvalue() == f"dashboard of edge, prod: {ran[0].url} (Ctrl-C stops it)\n"
    assert ran[0].server.config.app.state.monitor.max_age == 1.5
    assert ran[0].socket.fileno() == -1  # closed on the way out


@pytest.mark.parametrize(("argv", "message"), [
    (["--refresh", "0.5"], "--refresh 0.5: at least 1 second"),
    (["--port", "70000"], "--port 70000: not a port number"),
    (["--keycloak-health-url", "other=http://x/health/ready"], "'other' is not one of the stacks shown"),
])
def test_cli_refuses_bad_arguments_with_exit_64(argv: list[str], message: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["dashboard", "--stack", "edge", *argv], stdout=out, stderr=err) == ExitCode.USAGE
    assert message in err.getvalue() and out.getvalue() == ""


def test_cli_a_port_in_use_is_named(busy_port: Callable[[], int]) -> None:
    port = busy_port()
    err = io.StringIO()
    assert main(["dashboard", "--stack", "edge", "--port", str(port)], stdout=io.StringIO(), stderr=err) == 64
    assert f"cannot listen on 127.0.0.1:{port}" in err.getvalue() and "pick another --port" in err.getvalue()


@pytest.fixture
def busy_port() -> Iterator[Callable[[], int]]:
    held: list[socket.socket] = []

    def take() -> int:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        held.append(s)
        return int(s.getsockname()[1])

    yield take
    for s in held:
        s.close()


def test_dashboard_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dashboard", "--help"])
    help_text = capsys.readouterr().out
    for option in ("--stack", "--port", "--refresh", "--host", "--keycloak-health-url", "--timeout"):
        assert option in help_text
