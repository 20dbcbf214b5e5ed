"""The program's real exports, for every stack file under the mock engine, are the contract:
same keys as StackOutputs, secret exactly where the model says, and values that validate."""

from __future__ import annotations

import pytest

from ops.outputs import StackOutputs
from ops.workspace import validate_stack_config
from tests.conftest import STACKS, program_run


@pytest.mark.parametrize("stack", STACKS)
def test_exports_match_the_model_keys(stack: str) -> None:
    run = program_run(stack, preview=False)
    assert set(run.exports) == StackOutputs.export_keys(), (
        f"missing: {sorted(StackOutputs.export_keys() - set(run.exports))}, "
        f"unexpected: {sorted(set(run.exports) - StackOutputs.export_keys())}"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_secret_exports_are_pulumi_secrets(stack: str) -> None:
    run = program_run(stack, preview=False)
    secret = {k for k, e in run.exports.items() if e.secret}
    assert StackOutputs.secret_keys() <= secret
    for key in StackOutputs.secret_keys():
        assert isinstance(run.exports[key].value, str) and run.exports[key].value


@pytest.mark.parametrize("stack", STACKS)
def test_exports_validate_against_the_model(stack: str) -> None:
    run = program_run(stack, preview=False)
    outs = StackOutputs.from_mapping({k: e.value for k, e in run.exports.items()})
    assert outs.environment == validate_stack_config(stack).environment
    assert (outs.buckets == {}) == (outs.environment == "dev")
