"""`python -m ops {preview,up,refresh,destroy,outputs} --stack NAME [--json] [--yes]`, and `schema`.
`python -m ops status --stack NAME [--json] [--strict]`: every component's health (ops/health/).
`python -m ops diagram --stack NAME [--format mermaid|dot|svg] [--from state|preview]`: ops/diagram.py.
`python -m ops dashboard --stack NAME [--stack NAME ...] [--port P] [--refresh SECONDS]`: ops/dashboard/.

Human mode streams the engine's output to stdout and ends with a one-line summary; errors go to
stderr as `error: ...` plus a `fix:` line. With `--json`, stdout carries exactly one JSON document
(`{"command", "stack", "ok", "exitCode", ...}`) and the engine's output is streamed to stderr, so
a pipeline can parse stdout while a person still sees progress. Exit codes: `ops.errors.ExitCode`.

Nothing prompts, so it behaves the same in a terminal, in CI and under another tool: `up` and
`refresh` apply what was asked (as `pulumi up --yes` would); `destroy`, the one operation that
deletes running infrastructure, requires `--yes` and otherwise runs nothing; on a prod stack also
`--confirm-stack <the stack's name>`, typed back.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ops import dashboard, diagram, operations
from ops.errors import ExitCode, OpsError
from ops.outputs import SCHEMA_PATH, render_schema
from ops.workspace import PROJECT_ROOT

NEEDS_CONFIRMATION = ("destroy",)
STATUS_EPILOG = """exit codes: 0 healthy (warnings allowed), 9 a check failed (--strict: or warned),
3 config or passphrase, 4 stack not deployed, 8 outputs break the contract, 64 usage.
Rows, score and the --json shape: ops/health/__init__.py."""


class _UsageError(Exception):
    pass


def _is_prod(stack: str, root: Path) -> bool:
    """A stack whose file says environment prod (an unreadable file is left to the operation)."""
    from ops.workspace import raw_config

    try:
        return raw_config(stack, root).get("environment") == "prod"
    except (OpsError, OSError, ValueError):
        return False


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; 2 means "CLI missing" here, so usage errors raise instead."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--stack", "-s", required=True, help="stack name: one of the Pulumi.<stack>.yaml files")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout (engine output: stderr)")

    parser = _Parser(prog="python -m ops", description="Operate the identity-platform stacks (Automation API).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("preview", parents=[common], help="show what `up` would change (no side effects)")
    p.add_argument("--expect-no-changes", action="store_true", help="exit 7 if any change is proposed (drift check)")
    p.add_argument("--policy-pack", action="append", default=[], metavar="DIR", help="run a policy pack (repeatable)")
    p.add_argument("--diff", action="store_true", help="show a rich property diff")

    p = sub.add_parser("up", parents=[common], help="create or update the stack's resources")
    p.add_argument("--yes", "-y", action="store_true", help="accepted for symmetry; up never prompts")
    p.add_argument("--policy-pack", action="append", default=[], metavar="DIR", help="run a policy pack (repeatable)")
    p.add_argument("--diff", action="store_true", help="show a rich property diff")
    p.add_argument("--show-secrets", action="store_true", help="print secret outputs in clear")

    p = sub.add_parser("refresh", parents=[common], help="reconcile the state with the real resources")
    p.add_argument("--yes", "-y", action="store_true", help="accepted for symmetry; refresh never prompts")

    p = sub.add_parser("destroy", parents=[common], help="delete every resource of the stack")
    p.add_argument("--yes", "-y", action="store_true", help="confirm: delete without prompting")
    p.add_argument(
        "--confirm-stack",
        metavar="NAME",
        help="prod stacks (environment prod): the stack's name typed back, required with --yes",
    )

    p = sub.add_parser("outputs", parents=[common], help="print the stack outputs, checked against the contract")
    p.add_argument("--show-secrets", action="store_true", help="print secret outputs in clear")

    p = sub.add_parser(
        "status", parents=[common], help="health of every component of a deployed stack, with a score",
        epilog=STATUS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per network call (default 10)")
    p.add_argument("--keycloak-health-url", metavar="URL", help="Keycloak's /health/ready on its management port")
    p.add_argument("--expiry-warning-days", type=int, default=30, metavar="DAYS",
                   help="warn when a certificate expires sooner (default 30)")
    p.add_argument("--strict", action="store_true", help="a warning is unhealthy too (exit 9)")

    p = sub.add_parser("schema", help="write (or --check) schema/stack-outputs.schema.json")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed schema is stale")

    diagram.add_parser(sub)
    dashboard.add_parser(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    root: Path = PROJECT_ROOT,
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(f"error: {e}", file=err)
        return ExitCode.USAGE
    if args.command == "schema":
        return _schema(args.check, out, err)
    if args.command == "diagram":
        return diagram.run(args, out, err, environ=environ, root=root)
    if args.command == "dashboard":
        return dashboard.run(args, out, err, environ=environ, root=root)

    as_json: bool = args.json
    engine_stream = err if as_json else out

    def emit(line: str) -> None:
        print(line, file=engine_stream, flush=True)

    def emit_err(line: str) -> None:
        print(line, file=err, flush=True)

    try:
        if args.command in NEEDS_CONFIRMATION and not args.yes:
            raise OpsError(
                ExitCode.USAGE,
                f"`{args.command}` changes stack {args.stack!r} and needs --yes",
                f"see the plan with `python -m ops preview --stack {args.stack}`, then re-run with --yes",
                kind="confirmation_required",
            )
        if args.command == "destroy" and _is_prod(args.stack, root) and args.confirm_stack != args.stack:
            raise OpsError(
                ExitCode.USAGE,
                f"stack {args.stack!r} is a prod stack: destroy needs its name typed back",
                f"python -m ops destroy --stack {args.stack} --yes --confirm-stack {args.stack}",
                kind="confirmation_required",
            )
        if args.command == "status":
            return _status(args, out, environ, root)
        report = _run(args, emit, emit_err, environ, root)
    except OpsError as e:
        _print_error(e, args, out, err, as_json)
        return int(e.code)
    except KeyboardInterrupt:
        _print_error(OpsError(ExitCode.INTERRUPTED, "interrupted"), args, out, err, as_json)
        return ExitCode.INTERRUPTED
    if as_json:
        doc = {"command": args.command, "stack": args.stack, "ok": True, "exitCode": 0, **report.as_json()}
        print(json.dumps(doc, indent=2, default=str), file=out)
    else:
        _print_human(report, out)
    return ExitCode.OK


def _run(
    args: argparse.Namespace,
    emit: operations.Line,
    emit_err: operations.Line,
    environ: Mapping[str, str] | None,
    root: Path,
) -> operations.Report:
    common: dict[str, Any] = {"root": root, "environ": environ}
    stream: dict[str, Any] = {"on_output": emit, "on_error": emit_err}
    if args.command == "preview":
        return operations.preview(
            args.stack,
            policy_packs=args.policy_pack,
            diff=args.diff,
            expect_no_changes=args.expect_no_changes,
            **stream,
            **common,
        )
    if args.command == "up":
        return operations.up(
            args.stack,
            policy_packs=args.policy_pack,
            diff=args.diff,
            show_secrets=args.show_secrets,
            **stream,
            **common,
        )
    if args.command == "refresh":
        return operations.refresh(args.stack, **stream, **common)
    if args.command == "destroy":
        return operations.destroy(args.stack, **stream, **common)
    return operations.outputs(args.stack, show_secrets=args.show_secrets, **common)


def _print_error(e: OpsError, args: argparse.Namespace, out: TextIO, err: TextIO, as_json: bool) -> None:
    if as_json:
        doc: dict[str, Any] = {
            "command": args.command,
            "stack": args.stack,
            "ok": False,
            "exitCode": int(e.code),
            "error": {"kind": e.kind, "message": e.message, "hint": e.hint},
        }
        if isinstance(e.report, operations.Report):
            doc.update(e.report.as_json())
        print(json.dumps(doc, indent=2, default=str), file=out)
        return
    print(f"error: {e.message}", file=err)
    if e.hint:
        print(f"  fix: {e.hint}", file=err)


def _print_human(report: operations.Report, out: TextIO) -> None:
    if report.command == "outputs":
        width = max((len(k) for k in report.outputs or {}), default=0)
        for key, value in sorted((report.outputs or {}).items()):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            print(f"{key:<{width}}  {shown}", file=out)
        return
    pending = {op: n for op, n in report.changes.items() if n and op != "same"}
    what = ", ".join(f"{n} {op}" for op, n in sorted(pending.items())) or "no changes"
    unchanged = report.changes.get("same", 0)
    print(f"{report.command} {report.stack}: {what}" + (f" ({unchanged} unchanged)" if unchanged else ""), file=out)


def _schema(check: bool, out: TextIO, err: TextIO) -> int:
    text = render_schema()
    current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else None
    if check:
        if current != text:
            print(f"error: {SCHEMA_PATH.name} is stale\n  fix: python -m ops schema", file=err)
            return ExitCode.FAILED
        print(f"{SCHEMA_PATH.name} is up to date", file=out)
        return ExitCode.OK
    SCHEMA_PATH.parent.mkdir(exist_ok=True)
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}", file=out)
    return ExitCode.OK


def _status(args: argparse.Namespace, out: TextIO, environ: Mapping[str, str] | None, root: Path) -> int:
    from ops import health

    opts = health.Options(timeout=args.timeout, keycloak_health_url=args.keycloak_health_url,
                          expiry_warning_days=args.expiry_warning_days)
    report = health.status(args.stack, opts, root=root, environ=environ)
    code = ExitCode.UNHEALTHY if report.unhealthy(strict=args.strict) else ExitCode.OK
    if args.json:
        doc = {"command": "status", "stack": args.stack, "ok": code == ExitCode.OK, "exitCode": int(code),
               **report.as_json(strict=args.strict)}
        print(json.dumps(doc, indent=2), file=out)
    else:
        print(report.render_table(strict=args.strict), file=out)
    return code
