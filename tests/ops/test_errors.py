"""ops/errors.py: the one line `ops` prints for a failed engine run."""

from __future__ import annotations

from ops.errors import engine_error

TRACEBACK = (
    "Program failed with an unhandled exception:\nTraceback (most recent call last):\n"
    '  File "/proj/__main__.py", line 13, in <module>\n'
    "components.moves.MoveConflictError: values change hands (x and y trade values)"
)


def test_a_program_exception_is_its_message_without_the_traceback() -> None:
    assert engine_error([TRACEBACK]) == "values change hands (x and y trade values)"


def test_the_exception_wins_over_the_engine_lines_after_it() -> None:
    assert engine_error([TRACEBACK, "update failed"]).startswith("values change hands")


def test_a_message_continued_on_the_next_lines_is_kept_whole() -> None:
    message = "stack_config.base.ConfigError: invalid stack configuration:\n  identity-platform:ziti.bogus: unknown key"
    assert engine_error([message]) == "invalid stack configuration: identity-platform:ziti.bogus: unknown key"


def test_without_an_exception_the_last_diagnostic_s_first_line() -> None:
    assert engine_error(["image reference must be provided", "update failed\nmore"]) == "update failed"
    assert engine_error([]) == "the engine reported an error"
