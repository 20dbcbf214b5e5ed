"""preview / up / refresh / destroy / drift / outputs of one stack, as functions returning a `Report`.

Each function opens the stack as a local program (`ops.workspace.open_stack`), streams the
engine's output lines to the callbacks it is given as they arrive, collects the structured engine
events (planned steps, error diagnostics, policy violations) and returns them in a `Report`, or
raises `OpsError` with the exit code and whatever the report had gathered so far.

Guard rails, all before the engine starts: `preview`/`up` validate the stack file with the
program's own config model; `refresh`/`destroy`/`outputs` never create a stack that does not
exist. Confirmation (`--yes`) is the CLI's business, not this module's.

The engine options an operator reaches for are passed through as the CLI's own flags: `targets`
(`--target`, `--target-dependents`), `replace`, `refresh`, and update plans — `preview(save_plan=F)`
writes the operations it proposes (`--save-plan`; secrets stay encrypted in it), `up(plan=F)`
applies only those (`--plan`), and an update that would need any other operation stops with
exit 11 instead of doing it. `drift` is `preview --refresh` read as a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pulumi import automation as auto

from ops.errors import ExitCode, OpsError, engine_error
from ops.outputs import MASKED, OutputsContractError, StackOutputs
from ops.workspace import PROJECT_ROOT, classify_command_error, open_stack, validate_stack_config

Line = Callable[[str], object]
R = TypeVar("R")
# What the engine says when an update leaves its plan (pkg/resource/deploy, CLI 3.274): an operation
# the plan does not hold ("update is not allowed by the plan: ..."), or other inputs than planned
# ("resource <urn> violates plan: properties changed: ...").
PLAN_REJECTIONS = ("is not allowed by the plan", "violates plan")
# Engine steps that change nothing: a resource left as it is, a resource read by `--refresh`.
NO_CHANGE = frozenset({"same", "refresh"})


# Where the servers keep the program's objects unique, per resource type: the inputs that name one
# object (any of the listed sets). A create and a delete of the same object in one update is that
# object moving to another resource name: the create adopts it, the delete then removes it.
OBJECT_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "pulumi-python:dynamic/spire:Entry": (("connection", "spiffe_id", "parent_id", "selectors"),),
    "pulumi-python:dynamic/keycloak:Realm": (("realm",),),
    "pulumi-python:dynamic/keycloak:Client": (("realm", "client_id"),),
    "pulumi-python:dynamic/ziti:Identity": (("name",), ("external_id",)),
}
ZITI_TYPES = "pulumi-python:dynamic/ziti:"


def object_keys(type_: str, inputs: Mapping[str, Any]) -> list[str]:
    """The keys that name the object of a resource of `type_` with `inputs` (none for other types,
    or where an input of the key is unset). List items compare as sets; a secret compares masked."""
    keys = OBJECT_KEYS.get(type_) or ((("name",),) if type_.startswith(ZITI_TYPES) else ())
    found = []
    for fields in keys:
        values = [inputs.get(f) for f in fields]
        if all(v is not None for v in values):
            norm = [sorted(json.dumps(x, sort_keys=True) for x in v) if isinstance(v, list) else v for v in values]
            found.append(f"{type_} " + json.dumps(dict(zip(fields, norm, strict=True)), sort_keys=True))
    return found


def check_moves(report: Report) -> None:
    """Refuse a preview in which an object moves from one resource name to another (exit 12), as
    when a workload key is renamed in the stack file and its SPIFFE ID kept: the update would create
    the new resource first, which adopts the object by its key (a SPIRE entry, a Keycloak realm or
    client) or is refused (a Ziti identity's unique external id), and then delete the old resource,
    which removes the object. `pulumi state rename` makes it the same resource under the new name.
    The program follows a renamed workload or user key itself (components/moves.py): this is the
    net for what it cannot follow."""
    created: dict[str, str] = {}
    for op, urn, keys in report.keyed:
        if op == "create":
            created.update(dict.fromkeys(keys, urn))
    moves = {}
    for op, urn, keys in report.keyed:
        held = [created[k] for k in keys if op == "delete" and k in created]
        if held:
            moves[urn] = held[0]
    if not moves:
        return
    listed = "; ".join(f"{old.rsplit('::', 1)[1]} -> {new.rsplit('::', 1)[1]}" for old, new in sorted(moves.items()))
    renames = " && ".join(
        f"pulumi state rename --stack {report.stack} --yes '{old}' {new.rsplit('::', 1)[1]}"
        for old, new in sorted(moves.items())
    )
    err = OpsError(
        ExitCode.OBJECT_MOVED,
        f"{len(moves)} object(s) would move to another resource name ({listed}): the update creates the new "
        "resource before deleting the old one and both name the same object, so the create adopts it (or the "
        "server refuses a second one) and the delete then removes it",
        f"rename them in the state first, then preview again: {renames}",
        kind="object_moved",
    )
    err.report = report
    raise err


@dataclass(frozen=True)
class Targets:
    """`--target URN` (repeatable) and `--target-dependents`: the engine touches only these."""

    urns: tuple[str, ...] = ()
    dependents: bool = False

    def engine_args(self) -> dict[str, Any]:
        if not self.urns:
            return {}
        return {"target": list(self.urns), "target_dependents": self.dependents or None}


@dataclass(frozen=True)
class Step:
    """One resource operation the engine planned or performed."""

    op: str
    urn: str
    type: str


@dataclass(frozen=True)
class PolicyViolation:
    policy: str
    pack: str
    level: str
    message: str
    urn: str | None


@dataclass
class Report:
    """What one operation did; `as_json()` is the `--json` document minus the envelope."""

    command: str
    stack: str
    result: str | None = None
    changes: dict[str, int] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    diagnostics: list[str] = field(default_factory=list)
    policy_violations: list[PolicyViolation] = field(default_factory=list)
    outputs: dict[str, Any] | None = None
    # (op, urn, object keys) of each create and delete, for `check_moves`; not part of the document.
    keyed: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        if self.command == "outputs":
            return {"outputs": self.outputs}
        doc: dict[str, Any] = {
            "result": self.result,
            "changes": self.changes,
            "steps": [asdict(s) for s in self.steps],
            "diagnostics": self.diagnostics,
            "policyViolations": [asdict(v) for v in self.policy_violations],
        }
        if self.outputs is not None:
            doc["outputs"] = self.outputs
        return doc


class EventCollector:
    """`on_event` callback: keeps planned steps, error diagnostics and policy violations."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def __call__(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and _op(pre.metadata.op) not in NO_CHANGE:
            md = pre.metadata
            self.report.steps.append(Step(_op(md.op), md.urn, md.type))
            state = md.new if _op(md.op) == "create" else md.old if _op(md.op) == "delete" else None
            if state is not None:
                self.report.keyed.append((_op(md.op), md.urn, object_keys(md.type, state.inputs or {})))
        diag = event.diagnostic_event
        if diag is not None and diag.severity == "error" and diag.message.strip():
            self.report.diagnostics.append(diag.message.strip())
        pol = event.policy_event
        if pol is not None:
            self.report.policy_violations.append(
                PolicyViolation(
                    pol.policy_name, pol.policy_pack_name, pol.enforcement_level, pol.message.strip(), pol.resource_urn
                )
            )
        summary = event.summary_event
        if summary is not None:
            self.report.changes = _changes(summary.resource_changes)


def _op(op: Any) -> str:
    return str(getattr(op, "value", op))


def _changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    return {_op(k): int(v) for k, v in (summary or {}).items()}


def _failure(err: auto.CommandError, report: Report) -> OpsError:
    """The exit code for a failed engine run, with the engine's own error lines as the message."""
    mandatory = [v for v in report.policy_violations if v.level == "mandatory"]
    rejected = [d for d in report.diagnostics if any(r in d for r in PLAN_REJECTIONS)]
    if rejected:
        failure = OpsError(
            ExitCode.PLAN_REJECTED,
            f"the update left its saved plan, nothing beyond it was done: {rejected[0].splitlines()[0]}",
            "the program, its config or the real resources changed since the preview: review a new one "
            "(`ops preview --save-plan FILE`) and apply that",
            kind="plan_rejected",
        )
    elif mandatory:
        first = mandatory[0]
        failure = OpsError(
            ExitCode.POLICY_VIOLATION,
            f"{len(mandatory)} mandatory policy violation(s); first: [{first.policy}] {first.message}",
            "fix the resources named in policyViolations, or see docs/operations.md, 'Policy pack'",
        )
    else:
        failure = classify_command_error(err)
        if failure.code == ExitCode.FAILED and report.diagnostics:
            failure.message = engine_error(report.diagnostics)
    failure.report = report
    return failure


def _policy_args(policy_packs: Sequence[str]) -> list[str] | None:
    return [str(Path(p).resolve()) for p in policy_packs] or None


def masked_outputs(outputs: Mapping[str, auto.OutputValue], *, show_secrets: bool) -> dict[str, Any]:
    """Output values as the CLI prints them: secrets `[secret]` unless shown."""
    return {k: (v.value if show_secrets or not v.secret else MASKED) for k, v in outputs.items()}


def _engine(report: Report, run: Callable[..., R], **kwargs: Any) -> R:
    """Run one engine operation with `report` collecting its events; a failure becomes OpsError."""
    try:
        return run(on_event=EventCollector(report), **kwargs)
    except auto.CommandError as e:
        raise _failure(e, report) from None


def _summarise(report: Report, summary: auto.UpdateSummary) -> None:
    report.result = summary.result
    report.changes = _changes(summary.resource_changes) or report.changes


def preview(
    stack: str,
    *,
    on_output: Line | None = None,
    on_error: Line | None = None,
    policy_packs: Sequence[str] = (),
    diff: bool = False,
    expect_no_changes: bool = False,
    refresh: bool = False,
    replace: Sequence[str] = (),
    targets: Targets = Targets(),
    save_plan: str | None = None,
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> Report:
    """`pulumi preview`: zero side effects; `expect_no_changes` turns any change into exit 7.
    `refresh` previews against the real resources (read in memory, state untouched); `save_plan`
    writes the proposed operations for `up(plan=...)`."""
    validate_stack_config(stack, root)
    if save_plan:
        check_save_plan_path(stack, save_plan)
    st = open_stack(stack, create=True, root=root, environ=environ, command=command)
    report = _preview(
        Report("preview", stack), st, on_output=on_output, on_error=on_error, policy_packs=policy_packs,
        diff=diff, refresh=refresh, replace=replace, targets=targets, save_plan=save_plan,
    )
    try:
        check_moves(report)
    except OpsError:
        if save_plan:
            Path(save_plan).unlink(missing_ok=True)  # a plan that would lose the objects is not kept
        raise
    pending = _pending(report)
    if expect_no_changes and pending:
        err = OpsError(
            ExitCode.CHANGES_PENDING,
            f"preview of {stack!r} proposes changes: {pending}",
            f"review them and run `ops up --stack {stack}`, or see whether reality moved with "
            f"`ops drift --stack {stack}`",
        )
        err.report = report
        raise err
    return report


def check_plan_file(stack: str, plan: str) -> None:
    """`up --plan FILE`: the file is a readable saved plan (a JSON object), else exit 64 before the
    engine starts (the CLI would fail later, with a less telling message)."""
    fix = f"save one: ops preview --stack {stack} --save-plan {plan}"
    path = Path(plan)
    if not path.is_file():
        raise OpsError(ExitCode.USAGE, f"no plan file {plan}", fix)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise OpsError(ExitCode.USAGE, f"plan file {plan} cannot be read: {e.strerror or e}", fix) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OpsError(ExitCode.USAGE, f"plan file {plan} is not a saved plan (not JSON: {e})", fix) from None
    if not isinstance(doc, dict):
        raise OpsError(ExitCode.USAGE, f"plan file {plan} is not a saved plan (not a JSON object)", fix)


def check_save_plan_path(stack: str, save_plan: str) -> None:
    """`preview --save-plan FILE`: its directory exists, else exit 64 before the engine starts."""
    parent = Path(save_plan).resolve().parent
    if not parent.is_dir():
        raise OpsError(
            ExitCode.USAGE,
            f"--save-plan {save_plan}: no directory {parent}",
            f"create it, or name a file in an existing directory: ops preview --stack {stack} --save-plan FILE",
        )


def _preview(
    report: Report,
    st: auto.Stack,
    *,
    on_output: Line | None,
    on_error: Line | None,
    policy_packs: Sequence[str],
    diff: bool = False,
    refresh: bool = False,
    replace: Sequence[str] = (),
    targets: Targets = Targets(),
    save_plan: str | None = None,
) -> Report:
    result = _engine(
        report,
        st.preview,
        on_output=on_output,
        on_error=on_error,
        policy_packs=_policy_args(policy_packs),
        diff=diff or None,
        refresh=refresh or None,
        replace=list(replace) or None,
        plan=str(Path(save_plan).resolve()) if save_plan else None,
        **targets.engine_args(),
    )
    report.result = "succeeded"
    report.changes = _changes(result.change_summary)
    return report


def _pending(report: Report) -> str:
    """`1 to update, 2 to create`, or "" when the report proposes nothing."""
    pending = {op: n for op, n in report.changes.items() if op not in NO_CHANGE and n}
    return ", ".join(f"{n} to {op}" for op, n in sorted(pending.items()))


def drift(
    stack: str,
    *,
    on_output: Line | None = None,
    on_error: Line | None = None,
    policy_packs: Sequence[str] = (),
    targets: Targets = Targets(),
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> Report:
    """Does reality still match the program? `pulumi preview --refresh` of an existing stack: the
    real resources are read (in memory; the state is not written) and the program is previewed
    against them. Any proposed step is drift (exit 10) and is listed in the report's steps: a
    resource changed or deleted behind Pulumi's back, or a program change not yet applied."""
    validate_stack_config(stack, root)
    st = open_stack(stack, create=False, root=root, environ=environ, command=command)  # exit 4, never created
    report = _preview(
        Report("drift", stack), st, on_output=on_output, on_error=on_error, policy_packs=policy_packs,
        refresh=True, targets=targets,
    )
    pending = _pending(report)
    if pending:
        err = OpsError(
            ExitCode.DRIFT,
            f"stack {stack!r} has drifted: the refreshed preview proposes {pending}",
            f"see which resources in steps; put reality back with `ops up --stack {stack} --refresh`, or "
            "change the program to accept it",
            kind="drift",
        )
        err.report = report
        raise err
    return report


def up(
    stack: str,
    *,
    on_output: Line | None = None,
    on_error: Line | None = None,
    policy_packs: Sequence[str] = (),
    diff: bool = False,
    show_secrets: bool = False,
    refresh: bool = False,
    replace: Sequence[str] = (),
    targets: Targets = Targets(),
    plan: str | None = None,
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> Report:
    """A preview, then `pulumi up --yes --skip-preview`, then the outputs checked against the
    contract (exit 8). The preview is what `pulumi up` shows before it asks, and is refused as
    `ops preview` refuses it when an object would move to another resource name (exit 12, nothing
    applied). With `plan` (a `preview(save_plan=...)` file, already checked) the engine does only
    what that preview showed and no second preview runs."""
    validate_stack_config(stack, root)
    if plan is not None:
        check_plan_file(stack, plan)
    st = open_stack(stack, create=True, root=root, environ=environ, command=command)
    if plan is None:
        check_moves(_preview(
            Report("up", stack), st, on_output=on_output, on_error=on_error, policy_packs=policy_packs,
            diff=diff, refresh=refresh, replace=replace, targets=targets,
        ))
    report = Report("up", stack)
    result = _engine(
        report,
        st.up,
        on_output=on_output,
        on_error=on_error,
        policy_packs=_policy_args(policy_packs),
        diff=diff or None,
        refresh=refresh or None,
        replace=list(replace) or None,
        plan=str(Path(plan).resolve()) if plan else None,
        **targets.engine_args(),
    )
    _summarise(report, result.summary)
    report.outputs = masked_outputs(result.outputs, show_secrets=show_secrets)
    try:
        StackOutputs.from_output_map(result.outputs)
    except OutputsContractError as e:
        err = OpsError(
            ExitCode.OUTPUTS_INVALID,
            f"the update succeeded but its outputs break the contract: {e}",
            "fix the exports in __main__.py or StackOutputs (ops/outputs.py) and regenerate the schema",
        )
        err.report = report
        raise err from None
    return report


def _on_existing(
    name: Literal["refresh", "destroy"],
    stack: str,
    *,
    on_output: Line | None,
    on_error: Line | None,
    targets: Targets,
    root: Path,
    environ: Mapping[str, str] | None,
    command: auto.PulumiCommand | None,
) -> Report:
    """refresh/destroy: the same flow on a stack that must already exist (never created here)."""
    st = open_stack(stack, create=False, root=root, environ=environ, command=command)
    report = Report(name, stack)
    run: Callable[..., auto.RefreshResult | auto.DestroyResult] = st.refresh if name == "refresh" else st.destroy
    result = _engine(report, run, on_output=on_output, on_error=on_error, **targets.engine_args())
    _summarise(report, result.summary)
    return report


def refresh(
    stack: str,
    *,
    on_output: Line | None = None,
    on_error: Line | None = None,
    targets: Targets = Targets(),
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> Report:
    """`pulumi refresh --yes --skip-preview` of an existing stack (never creates one)."""
    return _on_existing(
        "refresh", stack, on_output=on_output, on_error=on_error, targets=targets, root=root, environ=environ,
        command=command,
    )


def destroy(
    stack: str,
    *,
    on_output: Line | None = None,
    on_error: Line | None = None,
    targets: Targets = Targets(),
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> Report:
    """`pulumi destroy --yes --skip-preview` of an existing stack; the stack itself is kept."""
    return _on_existing(
        "destroy", stack, on_output=on_output, on_error=on_error, targets=targets, root=root, environ=environ,
        command=command,
    )


def outputs(
    stack: str,
    *,
    show_secrets: bool = False,
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
) -> Report:
    """The stack's outputs, validated against `StackOutputs` (exit 8 when they do not match); read
    masked unless `show_secrets`, so the stack's passphrase is needed only to show them."""
    report = Report("outputs", stack)
    try:
        parsed = StackOutputs.from_stack(stack, secrets=show_secrets, root=root, environ=environ, command=command)
    except OutputsContractError as e:
        raise OpsError(ExitCode.OUTPUTS_INVALID, str(e), "redeploy with a program that honours the contract") from None
    report.outputs = parsed.to_exports(show_secrets=show_secrets)
    return report
