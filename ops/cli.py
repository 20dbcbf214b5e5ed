"""`ops` (the console script of pyproject.toml) and `python -m ops`: operate the stacks.

`ops {preview,up,refresh,destroy,drift,outputs,backend} --stack NAME [--json] [--yes]`, and `schema`.
`ops status --stack NAME [--json] [--strict]`: every component's health (ops/health/).
`ops diagram --stack NAME [--format mermaid|dot|svg] [--from state|preview]`: ops/diagram.py.
`ops dashboard --stack NAME [--stack NAME ...] [--port P] [--refresh SECONDS]`: ops/dashboard/.
`ops manifests --stack NAME --out DIR`: kubernetes.iam as YAML per ArgoCD sync wave (ops/manifests.py).
`ops COMMAND --help` lists each command's options, exit codes and the environment it reads.

It runs from any directory: the project is `--project-dir`, else `$IDENTITY_PLATFORM_DIR`, else
the directory (or a parent of it) holding this project's Pulumi.yaml, else the checkout the
installed package lives in (`ops.workspace.find_project`).

Human mode streams the engine's output to stdout and ends with a one-line summary; errors go to
stderr as `error: ...` plus a `fix:` line. With `--json`, stdout carries exactly one JSON document
(`{"command", "stack", "ok", "exitCode", ...}`) and the engine's output is streamed to stderr, so
a pipeline can parse stdout while a person still sees progress. Exit codes: `ops.errors.ExitCode`.

Nothing prompts, so it behaves the same in a terminal, in CI and under another tool: `up` and
`refresh` apply what was asked (as `pulumi up --yes` would); `destroy`, the one operation that
deletes running infrastructure, requires `--yes` and otherwise runs nothing; on a prod stack also
`--confirm-stack <the stack's name>`, typed back. `up --plan FILE` applies only what the reviewed
`preview --save-plan FILE` showed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ops import dashboard, diagram, interrupt, manifests, operations
from ops.errors import ExitCode, OpsError
from ops.outputs import SCHEMA_PATH, render_schema
from ops.workspace import (
    PROJECT_ENV,
    backend_url,
    chosen_backend,
    find_project,
    is_prod,
    keep_stack_selection,
    local_backend,
)

NEEDS_CONFIRMATION = ("destroy",)
PROG = "ops"

# What every stack command reads from the environment (the Pulumi CLI it runs reads its own too:
# PULUMI_ACCESS_TOKEN, provider credentials such as DIGITALOCEAN_TOKEN).
ENVIRONMENT_HELP = f"""environment:
  {PROJECT_ENV:<28}the project directory when --project-dir is not given
  PULUMI_BACKEND_URL          the state backend (else backend.url in Pulumi.yaml; else dev's
                              local .pulumi-state; prod refuses that unless --local-state)
  PULUMI_CONFIG_PASSPHRASE, PULUMI_CONFIG_PASSPHRASE_FILE
                              the stack's secrets passphrase (passphrase secrets provider)
  PULUMI_PYTHON_CMD           the interpreter of the program (default: the project's .venv)
  PULUMI_HOME, PATH           the Pulumi CLI's home, and where `pulumi` is found"""

EXIT_MEANINGS = {
    0: "success",
    1: "the operation ran and failed (the engine's error is in the message)",
    2: "no usable Pulumi CLI on PATH",
    3: "configuration: stack file, config value, passphrase, no backend for prod, no project",
    4: "the stack does not exist in the backend (or was never deployed)",
    5: "the stack is locked by another update",
    6: "a mandatory policy blocked the operation",
    7: "--expect-no-changes: changes were proposed",
    8: "the outputs break the StackOutputs contract",
    9: "a health check failed (--strict: or warned)",
    10: "drift: the real resources differ from the program",
    11: "--plan: the update needed an operation the saved plan does not contain",
    12: "preview (and up's own preview): an object would move to another resource name, whose delete would remove it",
    64: "usage: unknown command or flag; missing --stack, --yes or --confirm-stack",
    130: "interrupted",
}
# The exit codes each command can end with besides 0, 2, 3, 64 and 130 (every command's).
COMMAND_EXITS: dict[str, tuple[int, ...]] = {
    "preview": (1, 4, 5, 6, 7, 12),
    "up": (1, 5, 6, 8, 11, 12),
    "refresh": (1, 4, 5),
    "destroy": (1, 4, 5),
    "drift": (1, 4, 5, 6, 10),
    "outputs": (4, 8),
    "backend": (),
    "status": (4, 8, 9),
    "diagram": (1, 4),
    "dashboard": (4,),
    "manifests": (),
}


def epilog(command: str) -> str:
    """The exit codes `command` can end with and the environment it reads, for its --help."""
    codes = sorted({0, 2, 3, 64, 130, *COMMAND_EXITS.get(command, ())})
    lines = ["exit codes:", *(f"  {c:<4} {EXIT_MEANINGS[c]}" for c in codes)]
    return "\n".join(lines) + "\n\n" + ENVIRONMENT_HELP


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad usage; 2 means "CLI missing" here, so usage errors raise instead."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--stack", "-s", required=True,
        help="stack name: `stack`, `org/stack` or `org/identity-platform/stack` (its file: Pulumi.<stack>.yaml)",
    )
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout (engine output: stderr)")
    common.add_argument(
        "--local-state", action="store_true",
        help="use the project's .pulumi-state file backend on purpose (needed for a prod stack with no backend chosen)",
    )
    targets = _Parser(add_help=False)
    targets.add_argument("--target", "-t", action="append", default=[], metavar="URN",
                         help="operate on this resource only (repeatable; pulumi's --target)")
    targets.add_argument("--target-dependents", action="store_true",
                         help="with --target: also the resources that depend on the targets")
    changes = _Parser(add_help=False)
    changes.add_argument("--replace", action="append", default=[], metavar="URN",
                         help="replace this resource even if nothing changed (repeatable)")
    changes.add_argument("--refresh", action="store_true",
                         help="refresh the state from the real resources first (pulumi's --refresh)")
    changes.add_argument("--policy-pack", action="append", default=[], metavar="DIR",
                         help="run a policy pack (repeatable)")
    changes.add_argument("--diff", action="store_true", help="show a rich property diff")

    parser = _Parser(
        prog=PROG,
        description="Operate the identity-platform stacks (Pulumi Automation API). "
        "`ops COMMAND --help`: a command's options, exit codes and environment.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--project-dir", "-C", metavar="DIR",
                        help=f"the project (default: ${PROJECT_ENV}, else found from the current directory)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("preview", parents=[common, targets, changes],
                       help="show what `up` would change (no side effects)")
    p.add_argument("--expect-no-changes", action="store_true", help="exit 7 if any change is proposed")
    p.add_argument("--save-plan", metavar="FILE",
                   help="save the proposed operations; `up --plan FILE` then applies exactly these")

    p = sub.add_parser("up", parents=[common, targets, changes],
                       help="preview (refusing moved objects, exit 12), then create or update the stack's resources")
    p.add_argument("--yes", "-y", action="store_true", help="accepted for symmetry; up never prompts")
    p.add_argument("--show-secrets", action="store_true", help="print secret outputs in clear")
    p.add_argument("--plan", metavar="FILE",
                   help="apply only the operations of this saved plan (`preview --save-plan`); exit 11 otherwise")

    p = sub.add_parser("refresh", parents=[common, targets], help="reconcile the state with the real resources")
    p.add_argument("--yes", "-y", action="store_true", help="accepted for symmetry; refresh never prompts")

    p = sub.add_parser("destroy", parents=[common, targets], help="delete every resource of the stack")
    p.add_argument("--yes", "-y", action="store_true", help="confirm: delete without prompting")
    p.add_argument(
        "--confirm-stack",
        metavar="NAME",
        help="prod stacks (environment prod): the stack's name typed back, required with --yes",
    )

    p = sub.add_parser(
        "drift", parents=[common, targets],
        help="compare the real resources with the program (a refresh preview, nothing written); exit 10 on drift",
        description="Refresh the state from the real resources in memory and preview the program against "
        "them (`pulumi preview --refresh`); nothing is written. Any proposed change is drift: something "
        "outside Pulumi changed a resource, or the program changed since the last `up`.",
    )
    p.add_argument("--policy-pack", action="append", default=[], metavar="DIR", help="run a policy pack (repeatable)")

    p = sub.add_parser("outputs", parents=[common], help="print the stack outputs, checked against the contract")
    p.add_argument("--show-secrets", action="store_true", help="print secret outputs in clear")

    sub.add_parser("backend", parents=[common], help="print the state backend the stack's commands use",
                   description="Print the backend URL `ops` and scripts/up use for the stack, or refuse as "
                   "they would (a prod stack with no backend chosen: exit 3).")

    p = sub.add_parser("status", parents=[common], help="health of every component of a deployed stack, with a score",
                       description="Rows, score and the --json shape: ops/health/__init__.py.")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per network call (default 10)")
    p.add_argument("--keycloak-health-url", metavar="URL", help="Keycloak's /health/ready on its management port")
    p.add_argument("--expiry-warning-days", type=int, default=30, metavar="DAYS",
                   help="warn when a certificate expires sooner (default 30)")
    p.add_argument("--strict", action="store_true", help="a warning is unhealthy too (exit 9)")

    p = sub.add_parser("schema", help="write (or --check) schema/stack-outputs.schema.json")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed schema is stale")

    diagram.add_parser(sub)
    dashboard.add_parser(sub)
    manifests.add_parser(sub)
    for name, command in sub.choices.items():
        # Also accepted after the command; SUPPRESS keeps a value given before it.
        command.add_argument("--project-dir", "-C", metavar="DIR", default=argparse.SUPPRESS,
                             help="the project directory (see `ops --help`)")
        if name != "schema":
            # Raw, so the epilog's table keeps its lines; the description is wrapped here instead.
            command.epilog = epilog(name)
            command.formatter_class = argparse.RawDescriptionHelpFormatter
            if command.description:
                command.description = textwrap.fill(command.description, 100)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    root: Path | None = None,
) -> int:
    """Run one command and return its exit code. `root` skips the project search (tests, tools)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(f"error: {e}", file=err)
        return ExitCode.USAGE
    if args.command == "schema":
        return _schema(args.check, out, err)

    as_json: bool = getattr(args, "json", False)
    engine_stream = err if as_json else out

    def emit(line: str) -> None:
        print(line, file=engine_stream, flush=True)

    def emit_err(line: str) -> None:
        print(line, file=err, flush=True)

    selection = ExitStack()
    selection.enter_context(interrupt.handled())  # SIGTERM as Ctrl-C; no reader-thread tracebacks
    try:
        if root is None:
            root = find_project(args.project_dir, environ, Path.cwd())
        selection.enter_context(keep_stack_selection(environ))  # the operator's `pulumi stack select` stays
        environ = _with_local_state(args, environ, root)
        if args.command == "diagram":
            return diagram.run(args, out, err, environ=environ, root=root)
        if args.command == "dashboard":
            return dashboard.run(args, out, err, environ=environ, root=root)
        if args.command == "manifests":
            return manifests.run(args, out, err, root=root)
        if args.command in NEEDS_CONFIRMATION and not args.yes:
            raise OpsError(
                ExitCode.USAGE,
                f"`{args.command}` changes stack {args.stack!r} and needs --yes",
                f"see the plan with `ops preview --stack {args.stack}`, then re-run with --yes",
                kind="confirmation_required",
            )
        if args.command == "destroy" and is_prod(args.stack, root) and args.confirm_stack != args.stack:
            raise OpsError(
                ExitCode.USAGE,
                f"stack {args.stack!r} is a prod stack: destroy needs its name typed back",
                f"ops destroy --stack {args.stack} --yes --confirm-stack {args.stack}",
                kind="confirmation_required",
            )
        if args.command == "status":
            return _status(args, out, environ, root)
        if args.command == "backend":
            return _backend(args, out, environ, root)
        report = _run(args, emit, emit_err, environ, root)
    except OpsError as e:
        _print_error(e, args, out, err, as_json)
        return int(e.code)
    except KeyboardInterrupt:
        # The CLI cancels on its own SIGINT (a Ctrl-C reached it already; SIGTERM did not): wait for it.
        interrupt.stop_children()
        hint = interrupt.LOCK_HINT if args.command in LOCKING else None
        _print_error(OpsError(ExitCode.INTERRUPTED, "interrupted", hint), args, out, err, as_json)
        return ExitCode.INTERRUPTED
    finally:
        selection.close()
    if as_json:
        doc = {"command": args.command, "stack": args.stack, "ok": True, "exitCode": 0, **report.as_json()}
        print(json.dumps(doc, indent=2, default=str), file=out)
    else:
        _print_human(report, out)
    return ExitCode.OK


# Commands whose engine run takes the stack's lock (an interrupted one may leave it behind).
LOCKING = frozenset({"up", "refresh", "destroy", "preview", "drift"})


def _with_local_state(
    args: argparse.Namespace, environ: Mapping[str, str] | None, root: Path
) -> Mapping[str, str] | None:
    """`--local-state` chooses the project's file backend, as `PULUMI_BACKEND_URL=file://<root>/.pulumi-state`
    would. With another backend chosen it is a usage error, never a silent override."""
    if not getattr(args, "local_state", False):
        return environ
    chosen = chosen_backend(root, environ)
    if chosen is not None and chosen[0] != local_backend(root):
        raise OpsError(
            ExitCode.USAGE,
            f"--local-state asks for {local_backend(root)}, but {chosen[1]} chooses {chosen[0]}",
            f"drop --local-state to use {chosen[0]}, or unset {chosen[1]}",
            kind="backend_conflict",
        )
    return {**(os.environ if environ is None else environ), "PULUMI_BACKEND_URL": local_backend(root)}


def _backend(args: argparse.Namespace, out: TextIO, environ: Mapping[str, str] | None, root: Path) -> int:
    url, _ = backend_url(root, environ, stack=args.stack)
    if args.json:
        doc = {"command": "backend", "stack": args.stack, "ok": True, "exitCode": 0, "backend": url}
        print(json.dumps(doc, indent=2), file=out)
    else:
        print(url, file=out)
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
    if args.command in ("preview", "up", "refresh", "destroy", "drift"):
        stream["targets"] = operations.Targets(tuple(args.target), args.target_dependents)
    if args.command == "preview":
        return operations.preview(
            args.stack,
            policy_packs=args.policy_pack,
            diff=args.diff,
            expect_no_changes=args.expect_no_changes,
            refresh=args.refresh,
            replace=args.replace,
            save_plan=args.save_plan,
            **stream,
            **common,
        )
    if args.command == "up":
        return operations.up(
            args.stack,
            policy_packs=args.policy_pack,
            diff=args.diff,
            show_secrets=args.show_secrets,
            refresh=args.refresh,
            replace=args.replace,
            plan=args.plan,
            **stream,
            **common,
        )
    if args.command == "drift":
        return operations.drift(args.stack, policy_packs=args.policy_pack, **stream, **common)
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
    pending = {op: n for op, n in report.changes.items() if n and op not in operations.NO_CHANGE}
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
