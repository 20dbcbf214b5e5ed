"""The dashboard's web app (Starlette): pages from templates/, assets from static/, JSON for tools.

Routes (`<stack>` is one of the stacks the dashboard was started with; any other is a 404):

    GET /                        every stack: deployment, score, status, counts (index.html)
    GET /cards                   the index's cards alone, what the page fetches to refresh them
    GET /stacks/<stack>          one stack: every row by component, click one for its detail and
                                 target; the diagram below (stack.html)
    GET /stacks/<stack>/panel    the stack page's live part alone (refresh)
    GET /stacks/<stack>/diagram.svg   `ops diagram --format svg` of the stack's state
    GET /api/stacks              {"schemaVersion", "refreshSeconds", "stacks": [summary...]}
    GET /api/stacks/<stack>      the `ops status --json` keys plus "stack", "deployment", "error"
    GET /static/...              dashboard.css, dashboard.js

The pages refresh themselves: static/dashboard.js fetches the live part every `refresh` seconds
and swaps it in, keeping the rows a reader opened open. No inline script or style: the
Content-Security-Policy allows only this origin's files.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ops.dashboard.source import VIEW_SCHEMA_VERSION, Monitor, Source, StackView
from ops.errors import OpsError
from ops.health.model import COMPONENTS

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response (pure ASGI: streaming responses stay streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    source: Source, stacks: Sequence[str], *, refresh: float = 15.0, max_age: float | None = None
) -> Starlette:
    """The dashboard of `stacks`, looked at through `source`.

    A view is reused for `max_age` seconds (default: half of `refresh`), so pages refreshing every
    `refresh` seconds see a new one each time while several of them share it."""
    if not stacks:
        raise ValueError("the dashboard needs at least one stack")
    monitor = Monitor(source, stacks, max_age=refresh / 2 if max_age is None else max_age)
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals.update(component_order=COMPONENTS)
    templates.env.filters.update(slug=_slug, when=_when, seconds=_seconds)

    def views() -> list[StackView]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(monitor.stacks),
                                                   thread_name_prefix="dashboard") as pool:
            return list(pool.map(monitor.view, monitor.stacks))

    def known(request: Request) -> str:
        stack = str(request.path_params["stack"])
        if stack not in monitor:
            raise HTTPException(404, f"unknown stack {stack!r}: this dashboard shows {', '.join(monitor.stacks)}")
        return stack

    def page(request: Request, name: str, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, {"stacks": monitor.stacks, "refresh": refresh, **context})

    def index(request: Request) -> Response:
        return page(request, "index.html", views=views())

    def cards(request: Request) -> Response:
        return page(request, "_cards.html", views=views())

    def stack_page(request: Request) -> Response:
        return page(request, "stack.html", view=monitor.view(known(request)))

    def panel(request: Request) -> Response:
        return page(request, "_panel.html", view=monitor.view(known(request)))

    def diagram_svg(request: Request) -> Response:
        stack = known(request)
        try:
            svg = monitor.diagram_svg(stack)
        except OpsError as e:
            text = e.message + (f"\nfix: {e.hint}" if e.hint else "")
            return Response(text, status_code=503, media_type="text/plain")
        return Response(svg, media_type="image/svg+xml")

    def api_stacks(request: Request) -> Response:
        return JSONResponse({"schemaVersion": VIEW_SCHEMA_VERSION, "refreshSeconds": refresh,
                             "stacks": [v.summary_json() for v in views()]})

    def api_stack(request: Request) -> Response:
        return JSONResponse(monitor.view(known(request)).as_json())

    async def not_found(request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": {"message": detail}}, status_code=404)
        return templates.TemplateResponse(request, "404.html", {"stacks": monitor.stacks, "refresh": refresh,
                                                                "message": detail}, status_code=404)

    routes = [
        Route("/", index, name="index"),
        Route("/cards", cards, name="cards"),
        Route("/stacks/{stack}", stack_page, name="stack"),
        Route("/stacks/{stack}/panel", panel, name="panel"),
        Route("/stacks/{stack}/diagram.svg", diagram_svg, name="diagram"),
        Route("/api/stacks", api_stacks, name="api_stacks"),
        Route("/api/stacks/{stack}", api_stack, name="api_stack"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], exception_handlers={404: not_found})
    app.state.monitor = monitor
    return app


def _when(moment: datetime.datetime) -> str:
    return f"{moment.astimezone(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _slug(text: str) -> str:
    """A row's id in the page: `ziti / ext-jwt signer` -> `ziti-ext-jwt-signer`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
