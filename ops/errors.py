"""Exit codes of `python -m ops` and the one error type that carries them.

Every failure the entry point knows how to explain becomes an `OpsError` with a stable exit code
and, where there is one, the command that fixes it. Scripts and CI branch on the code, people
read the message; both are documented in docs/operations.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (stable: automation depends on them)."""

    OK = 0
    FAILED = 1  # the engine ran and the operation failed (resource error, program exception)
    CLI_MISSING = 2  # no usable Pulumi CLI on PATH (missing, or older than the SDK supports)
    CONFIG_ERROR = 3  # stack file missing or invalid, secrets passphrase missing or wrong
    STACK_NOT_FOUND = 4  # the stack does not exist in the backend, or has never been deployed
    STACK_LOCKED = 5  # another update holds the stack's lock
    POLICY_VIOLATION = 6  # a mandatory policy of a policy pack blocked the operation
    CHANGES_PENDING = 7  # `preview --expect-no-changes` found changes (drift)
    OUTPUTS_INVALID = 8  # the stack's outputs do not match the StackOutputs contract
    UNHEALTHY = 9  # `status`: a health check failed (with --strict: or warned)
    DRIFT = 10  # `drift`: a refresh preview proposes changes (reality differs from the program)
    PLAN_REJECTED = 11  # `up --plan`: the update needed an operation the saved plan does not contain
    OBJECT_MOVED = 12  # `preview`: an object would move to another resource name (its delete would remove it)
    USAGE = 64  # bad command line (EX_USAGE, same as scripts/up)
    INTERRUPTED = 130  # Ctrl-C


class OpsError(Exception):
    """A failure with an exit code, a one-line message and an optional fix."""

    def __init__(self, code: ExitCode, message: str, hint: str | None = None, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.kind = kind or code.name.lower()
        # What the operation had gathered before failing (an `ops.operations.Report`), for --json.
        self.report: object | None = None

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message


_EXCEPTION = re.compile(r"^[\w.]+(?:Error|Exception): (.*)$")


def engine_error(diagnostics: Sequence[str]) -> str:
    """One line for a failed engine run's error diagnostics: a program's exception and its message
    (not its traceback, nor the engine's generic lines after it), else the last diagnostic's first line."""
    for message in reversed(diagnostics):
        lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
        for i in range(len(lines) - 1, -1, -1):
            found = _EXCEPTION.match(lines[i])
            if found:
                return " ".join([found.group(1).strip(), *lines[i + 1 :]]).strip()
    lines = diagnostics[-1].strip().splitlines() if diagnostics else []
    return lines[0] if lines else "the engine reported an error"
