"""`__main__.py` evaluates under the mock engine for every stack file, in preview and update."""

from __future__ import annotations

from tests.conftest import STACKS
from tests.harness.mock_engine import ProgramRun


def test_every_stack_file_is_covered() -> None:
    assert {"dev", "prod"} <= set(STACKS)


def test_program_evaluates_and_exports(every_run: ProgramRun) -> None:
    assert every_run.exports["environment"].value == every_run.stack
    assert every_run.exports["nodes"].value


def test_no_mock_secret_reaches_a_plain_export(every_run: ProgramRun) -> None:
    for key, export in every_run.exports.items():
        if export.secret:
            continue
        text = repr(export.value)
        assert "mock-secret-value-" not in text, f"export {key} leaks a secret in plain text"
