"""`python -m ops dashboard` in a real headless Chromium, against the REAL servers.

A `platform: external` stack is brought up by the real engine exactly as tests/engine/test_ops_status.py
does it; the dashboard is made from the `ops dashboard` command line (`ops.dashboard.prepare`: the
parser, the live health source, uvicorn bound to a free loopback port) and served in a thread with
that CLI's environment. Debian's Chromium (`/usr/bin/chromium`, installed by scripts/apt-packages,
which ./scripts/test runs first), driven by Playwright's bundled driver (no browser download),
opens it: the index lists the stack as external with score 100; the stack page shows every row
ok; a click opens a row's detail and target; the diagram is drawn. Then the Ziti signer is disabled
out of band and, without reloading, the page's live refresh turns that row to fail while the
opened detail stays open. The screenshot (docs/dashboard.png with UPDATE_DOCS=1). The stack is destroyed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

import ops.dashboard
from ops.cli import build_parser
from tests.engine.cli import REPO, external_stack
from tests.engine.test_ops_status import ROWS
from tests.real._ziti import Admin as ZitiAdmin
from tests.real.conftest import RealServers

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox (root in a container), no GPU, and nothing that phones out: the machine reaches no
# network but the package registries.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The committed picture (docs/dashboard.png) is refreshed only on request, so a test run leaves the
# working tree clean: UPDATE_DOCS=1 ./scripts/test tests/engine/test_ops_dashboard.py
SCREENSHOT_DOC = REPO / "docs" / "dashboard.png"
REFRESH = 2.0  # seconds between the page's refreshes


@pytest.fixture
def servers(real_servers: RealServers) -> Iterator[dict[str, Any]]:
    yield {"spire": real_servers("spire"), "keycloak": real_servers("keycloak"), "ziti": real_servers("ziti")}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: Debian's chromium package, which scripts/apt-packages installs "
        "(./scripts/test runs it before pytest)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _row(page: Page, component: str, check: str) -> Any:
    return page.locator(f'details.row[data-component="{component}"][data-check="{check}"]')


def test_ops_dashboard_in_chromium_on_a_live_external_stack(
    engine_bin: Path, servers: dict[str, Any], browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kc, zt = servers["keycloak"], servers["ziti"]
    screenshot = tmp_path / "dashboard.png"
    # The dashboard runs the CLI through the Automation API, which inherits this process's environment.
    ext = external_stack(engine_bin, tmp_path, servers, "dash", monkeypatch)
    cli, stack, workload, secret_values = ext.cli, ext.stack, ext.workload, ext.secret_values
    ziti_admin = ZitiAdmin(zt)

    args = build_parser().parse_args([
        "dashboard", "--stack", stack, "--port", "0", "--refresh", str(REFRESH),
        "--keycloak-health-url", f"{stack}={kc['management_url']}/health/ready",
    ])
    served: ops.dashboard.Served | None = None
    thread: threading.Thread | None = None
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        cli("up", "--yes")
        outputs = json.loads(cli("stack", "output", "--json", "--show-secrets").stdout)
        never_shown = {"Keycloak admin password": kc["admin_password"], "Ziti admin password": zt["admin_password"],
                       "root CA key": "".join(secret_values["rootCaKey"].strip().splitlines()[1:-1])[:40],
                       "router JWT": outputs.get("zitiRouterEnrollmentJwt") or "no-router-jwt"}

        served = ops.dashboard.prepare(args, environ=cli.env, root=cli.dir)
        assert served.url.startswith("http://127.0.0.1:")
        thread = threading.Thread(target=served.run, name="dashboard", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not served.server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the dashboard did not start"
            time.sleep(0.05)

        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        # -- the index: the stack, its deployment type and score ------------------------------------
        page.goto(served.url)
        card = page.locator(f'a.card[data-stack="{stack}"]')
        expect(card).to_have_attribute("data-status", "ok")
        expect(card.locator(".badge.deployment")).to_have_text("external")
        expect(card.locator(".score")).to_have_attribute("data-score", "100")
        expect(card).to_contain_text("100/100")

        # -- the stack page: every row ok ---------------------------------------------------------
        card.click()
        expect(page).to_have_url(f"{served.url}stacks/{stack}")
        head = page.locator(".stack-head")
        expect(head.locator(".deployment")).to_contain_text("platform external")
        expect(head.locator(".score")).to_have_attribute("data-score", "100")
        expect(head).to_have_attribute("data-status", "ok")
        rows = page.locator("details.row")
        expect(rows).to_have_count(len(ROWS))
        shown = {(r.get_attribute("data-component"), r.get_attribute("data-check")): r.get_attribute("data-status")
                 for r in rows.all()}
        assert shown == dict.fromkeys(ROWS, "ok"), shown

        # -- click-through: a row's detail and target ----------------------------------------------
        signer = _row(page, "ziti", "ext-jwt signer")
        detail = signer.locator(".detail-text")
        expect(detail).to_be_hidden()
        signer.locator("summary").click()
        expect(detail).to_be_visible()
        expect(detail).to_contain_text("enabled")
        expect(signer.locator(".target")).to_have_text(outputs["zitiControllerUrl"])
        # the diagram, drawn from the stack's state by ops diagram
        diagram = page.locator("img#diagram")
        expect(diagram).to_be_visible()
        box = diagram.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150, box
        svg = httpx.get(f"{served.url}stacks/{stack}/diagram.svg", timeout=60)
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml", svg.text
        drawn = svg.text.replace("&#45;", "-")
        assert "ziti-trust-keycloak-signer" in drawn and f"ziti-trust-identity-{workload}" in drawn

        # -- broken out of band: the live refresh turns that row to fail ---------------------------
        refreshes = int(page.locator("body").get_attribute("data-refreshes") or 0)
        ziti_admin.patch("external-jwt-signers", outputs["zitiExtJwtSignerId"], {"enabled": False})
        expect(signer).to_have_attribute("data-status", "fail", timeout=60_000)
        assert int(page.locator("body").get_attribute("data-refreshes") or 0) > refreshes  # no reload: a refresh
        expect(signer).to_have_js_property("open", True)  # the reader's opened row stays open
        expect(detail).to_be_visible()
        expect(detail).to_contain_text("disabled")
        expect(head).to_have_attribute("data-status", "fail")
        expect(head.locator(".score")).not_to_have_attribute("data-score", "100")
        expect(page.locator('details.row[data-status="fail"]')).to_have_count(1)
        expect(page.locator("#live")).not_to_have_class(re.compile(r"\bstale\b"))

        doc = httpx.get(f"{served.url}api/stacks/{stack}", timeout=60).json()
        assert doc["status"] == "fail" and doc["deployment"]["platform"] == "external"
        assert {(c["component"], c["check"]) for c in doc["checks"] if c["status"] != "ok"} == {
            ("ziti", "ext-jwt signer")}
        assert doc["score"] == 95  # ziti: 4 of 5 rows ok (80); spire, keycloak, certificates 100

        page.screenshot(path=str(screenshot), full_page=True)
        everything = page.content() + json.dumps(doc) + httpx.get(f"{served.url}api/stacks", timeout=60).text
        page.goto(served.url)
        expect(page.locator(f'a.card[data-stack="{stack}"]')).to_have_attribute("data-status", "fail")
        everything += page.content()
        for what, value in never_shown.items():
            assert value not in everything, f"the dashboard showed the {what}"
        assert errors == [], errors
    finally:
        context.close()
        if served is not None:
            served.server.should_exit = True
        if thread is not None:
            thread.join(30)
        cli("destroy", "--yes", ok=False)
        ziti_admin.close()
    assert json.loads(cli("stack", "output", "--json").stdout) == {}
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS") == "1":
        shutil.copyfile(screenshot, SCREENSHOT_DOC)
