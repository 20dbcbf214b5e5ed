"""`python -m ops dashboard --stack X [--stack Y ...] [--port P] [--refresh SECONDS]`: a local web page.

The design's health dashboard: live status of one or several deployed stacks, one page per stack.

- Health: the rows and score of `python -m ops status` — the same model (`ops.health`: its
  `load_target`, its probes, its scoring and scrubbing), run again every `--refresh` seconds (15)
  while a page is open; a report is shared for half that long by every page and the JSON API.
- Deployment type, detected from each stack's config: platform swarm (dev or prod, with its
  node count) or external (the user's own servers).
- Click-through: each row opens to its full detail and its target (the URL, socket or engine
  asked; never with credentials).
- The stack's diagram below its rows: `python -m ops diagram --format svg` of its state
  (ops/diagram.py; Graphviz `dot` from Debian's `graphviz`). The page says why when it cannot be drawn.
- A stack that cannot be read (never deployed, bad config, passphrase) is shown with the error
  and fix `ops status` would print; the others are unaffected.

Served by Starlette (ops/dashboard/app.py: routes, JSON shapes) under uvicorn, on 127.0.0.1 by
default (`--host` to change; the pages carry no secret, but they do describe the deployment);
templates/ and static/ hold the pages and their CSS and script (no CDN, no inline script).
`--port 0` takes a free port; the URL is printed once the socket is bound. Ctrl-C stops it.

The health options are those of `ops status`: `--timeout`, `--expiry-warning-days`, and
`--keycloak-health-url [STACK=]URL` (repeatable; a bare URL is for every stack).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ops.errors import ExitCode, OpsError
from ops.health.inputs import Options
from ops.workspace import PROJECT_ROOT

if TYPE_CHECKING:
    import uvicorn

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_REFRESH = 15.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_REFRESH", "Served", "add_parser", "options_by_stack",
           "prepare", "run"]


def add_parser(sub: Any) -> None:
    """Register `dashboard` on the `python -m ops` subparsers."""
    p = sub.add_parser(
        "dashboard",
        help="serve a live health dashboard of one or several stacks (a local web page)",
        description="Serve the health of deployed stacks (the `ops status` model) as live web pages, "
        "one per stack, with its diagram.",
    )
    p.add_argument("--stack", "-s", action="append", required=True, metavar="NAME",
                   help="a stack to show (repeatable): one of the Pulumi.<stack>.yaml files")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", "-p", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--refresh", type=float, default=DEFAULT_REFRESH, metavar="SECONDS",
                   help=f"how often the pages check again (default {DEFAULT_REFRESH:g})")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per network call (default 10)")
    p.add_argument("--keycloak-health-url", action="append", default=[], metavar="[STACK=]URL",
                   help="Keycloak's /health/ready on its management port, for STACK or every stack (repeatable)")
    p.add_argument("--expiry-warning-days", type=int, default=30, metavar="DAYS",
                   help="warn when a certificate expires sooner (default 30)")


def options_by_stack(stacks: Sequence[str], timeout: float, expiry_warning_days: int,
                     keycloak_health_urls: Sequence[str]) -> dict[str, Options]:
    """Each stack's `ops.health.Options`; `STACK=URL` names one stack's Keycloak health URL, a bare URL all's."""
    every: str | None = None
    own: dict[str, str] = {}
    for value in keycloak_health_urls:
        name, sep, url = value.partition("=")
        if sep and name in stacks:
            own[name] = url
        elif sep and "://" not in name:
            raise OpsError(ExitCode.USAGE, f"--keycloak-health-url {value}: {name!r} is not one of the stacks shown",
                           f"use STACK=URL with one of: {', '.join(stacks)}; or a bare URL for every stack")
        else:
            every = value
    return {s: Options(timeout=timeout, keycloak_health_url=own.get(s, every),
                       expiry_warning_days=expiry_warning_days) for s in stacks}


@dataclass
class Served:
    """A dashboard ready to serve: the uvicorn server and the socket it is bound to."""

    server: uvicorn.Server
    socket: socket.socket
    url: str

    def run(self) -> None:
        """Serve until Ctrl-C (or `server.should_exit`)."""
        self.server.run(sockets=[self.socket])


def prepare(args: argparse.Namespace, *, environ: Mapping[str, str] | None = None,
            root: Path = PROJECT_ROOT) -> Served:
    """The app of the `dashboard` arguments, bound (not yet serving). OpsError for bad arguments
    or an address that cannot be bound."""
    import uvicorn

    from ops.dashboard.app import create_app
    from ops.dashboard.source import LiveSource

    if args.refresh < 1:
        raise OpsError(ExitCode.USAGE, f"--refresh {args.refresh:g}: at least 1 second")
    if not 0 <= args.port <= 65535:
        raise OpsError(ExitCode.USAGE, f"--port {args.port}: not a port number")
    stacks = list(dict.fromkeys(args.stack))
    options = options_by_stack(stacks, args.timeout, args.expiry_warning_days, args.keycloak_health_url)
    app = create_app(LiveSource(options, root=root, environ=environ), stacks, refresh=args.refresh)
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return Served(uvicorn.Server(config), sock, f"http://{shown}:{port}/")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OpsError(ExitCode.USAGE, f"cannot listen on {host}:{port}: {e.strerror or e}",
                       "pick another --port (0: any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace, out: TextIO, err: TextIO, *, environ: Mapping[str, str] | None = None,
        root: Path = PROJECT_ROOT) -> int:
    """`python -m ops dashboard ...`; serves until Ctrl-C, then returns the exit code."""
    try:
        served = prepare(args, environ=environ, root=root)
    except OpsError as e:
        print(f"error: {e.message}", file=err)
        if e.hint:
            print(f"  fix: {e.hint}", file=err)
        return int(e.code)
    if args.host not in LOOPBACK:
        print(f"warning: listening on {args.host}: anyone who reaches it sees the stacks' health and topology",
              file=err)
    print(f"dashboard of {', '.join(dict.fromkeys(args.stack))}: {served.url} (Ctrl-C stops it)", file=out, flush=True)
    try:
        served.run()
    except KeyboardInterrupt:
        pass
    finally:
        served.socket.close()
    return ExitCode.OK
