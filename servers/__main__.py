"""`scripts/servers` — install, start and stop the pinned real servers on loopback.

    scripts/servers install [SERVER...]          build or fetch into the cache (idempotent)
    scripts/servers start [SERVER...] [--dir D]  start on free loopback ports; prints the state file
    scripts/servers stop [--state FILE]          stop exactly what that start started
    scripts/servers versions                     the pin table and what each installed binary reports
    scripts/servers env                          shell exports for the installed binaries
    scripts/servers configure STACK [--state F]  point a platform-external stack at the started servers

SERVER is one of postgres, keycloak, spire, ziti, kubernetes (default: all; requirements are added), or the
tools pulumi (the Pulumi engine) and pulumi-kubernetes (its Kubernetes provider plugin): installed only
when named, never started.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import servers
from servers import cache
from servers.errors import ServerError

LAST = "last-start.json"


def _last_state() -> Path:
    return cache.cache_root() / LAST


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/servers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="build or fetch the pinned servers into the cache")
    p_install.add_argument("names", nargs="*", metavar="SERVER")
    p_start = sub.add_parser("start", help="start servers on loopback and write the state document")
    p_start.add_argument("names", nargs="*", metavar="SERVER")
    p_start.add_argument("--dir", type=Path, help="run directory (default: a new temporary one)")
    p_stop = sub.add_parser("stop", help="stop what a start started")
    p_stop.add_argument("--state", type=Path, help="state document (default: the last start's)")
    sub.add_parser("versions", help="pinned versions and what the installed binaries report")
    sub.add_parser("env", help="print shell exports for the installed binaries")
    p_conf = sub.add_parser("configure", help="point a `platform: external` stack at the started servers")
    p_conf.add_argument("stack", help="a stack already created with `pulumi stack init` in this project")
    p_conf.add_argument("--state", type=Path, help="state document (default: the last start's)")
    args = parser.parse_args(argv)

    try:
        if args.command == "install":
            t0 = time.monotonic()
            done = servers.install(args.names)
            print(f"installed {', '.join(f'{n} {servers.get(n).version}' for n in done)} "
                  f"in {time.monotonic() - t0:.1f} s (cache: {cache.cache_root()})")
        elif args.command == "start":
            run = servers.start(args.names, args.dir.resolve() if args.dir else None)
            pointer = _last_state()
            pointer.parent.mkdir(parents=True, exist_ok=True)
            pointer.write_text(json.dumps({"state": str(run.state_path)}) + "\n")
            print(run.state_path)
        elif args.command == "stop":
            state = args.state or Path(json.loads(_last_state().read_text())["state"])
            killed = servers.stop(state)
            print(f"stopped everything listed in {state}" + (f"; killed {', '.join(killed)}" if killed else ""))
        elif args.command == "versions":
            for n in servers.ORDER + servers.TOOLS:
                s = servers.get(n)
                try:
                    reported = s.reported_version()
                except ServerError as e:
                    reported = f"not installed ({e.args[0].splitlines()[0]})"
                print(f"{n:17} pinned {s.version:8} installed: {reported}")
        elif args.command == "configure":
            from servers.stack import configure

            state_path = args.state or Path(json.loads(_last_state().read_text())["state"])
            project = Path(os.environ.get("SERVERS_CALLER_DIR") or Path.cwd())
            written = configure(args.stack, json.loads(state_path.read_text())["servers"], project)
            print(f"{written}: platform external against the servers of {state_path}; secrets set with --secret")
        elif args.command == "env":
            from servers.environment import exports

            for k, v in exports().items():
                print(f"export {k}={shlex.quote(v)}")
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"error: {e.filename} not found (nothing started?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
