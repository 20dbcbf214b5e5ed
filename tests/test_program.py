"""`__main__.py` evaluates under the mock engine for every stack file, in preview and update."""

from __future__ import annotations

from tests.conftest import STACKS
from tests.harness.mock_engine import ProgramRun, stack_config, stack_platform


def test_every_stack_file_is_covered() -> None:
    assert {"dev", "prod"} <= set(STACKS)


def test_program_evaluates_and_exports(every_run: ProgramRun) -> None:
    values, _ = stack_config(every_run.stack)
    assert every_run.exports["environment"].value == values["identity-platform:environment"]
    platform = stack_platform(every_run.stack)
    assert every_run.exports["platform"].value == platform
    # Swarm stacks name their nodes; an external stack deploys to none.
    assert bool(every_run.exports["nodes"].value) == (platform == "swarm")


def test_no_mock_secret_reaches_a_plain_export(every_run: ProgramRun) -> None:
    for key, export in every_run.exports.items():
        if export.secret:
            continue
        text = repr(export.value)
        assert "mock-secret-value-" not in text, f"export {key} leaks a secret in plain text"
