"""The program's real exports, for every stack file under the mock engine, are the contract:
the keys StackOutputs requires for the stack's platform (and no foreign ones), secret exactly
where the model says, and values that validate."""

from __future__ import annotations

from typing import get_args

import pytest

from ops.outputs import StackOutputs
from stack_config import parse_stack_values
from tests.conftest import STACKS, program_run
from tests.harness.mock_engine import stack_config, stack_platform

# The platforms the contract types; platform kubernetes (SPIRE, Keycloak and Ziti by section) exports its own keys,
# asserted in tests/components/test_kubernetes.py, and `ops` does not read its stacks yet.
TYPED = get_args(StackOutputs.model_fields["platform"].annotation)
CONTRACT_STACKS = [s for s in STACKS if stack_platform(s) in TYPED]


@pytest.mark.parametrize("stack", CONTRACT_STACKS)
def test_exports_match_the_model_keys(stack: str) -> None:
    run = program_run(stack, preview=False)
    platform = stack_platform(stack)
    required = StackOutputs.export_keys(platform)
    allowed = required | StackOutputs.optional_keys(platform)
    assert required <= set(run.exports) <= allowed, (
        f"missing: {sorted(required - set(run.exports))}, unexpected: {sorted(set(run.exports) - allowed)}"
    )


@pytest.mark.parametrize("stack", CONTRACT_STACKS)
def test_secret_exports_are_pulumi_secrets(stack: str) -> None:
    run = program_run(stack, preview=False)
    secret = {k for k, e in run.exports.items() if e.secret}
    expected = StackOutputs.secret_keys() & set(run.exports)
    assert expected, "every platform exports at least one secret (admin passwords, or a generated root's key)"
    assert expected <= secret
    for key in expected:
        assert isinstance(run.exports[key].value, str) and run.exports[key].value


@pytest.mark.parametrize("stack", CONTRACT_STACKS)
def test_exports_validate_against_the_model(stack: str) -> None:
    run = program_run(stack, preview=False)
    outs = StackOutputs.from_mapping({k: e.value for k, e in run.exports.items()})
    # The stack's config as the CLI hands it over once the operator set the file's secrets.
    assert outs.environment == parse_stack_values(*stack_config(stack)).environment
    assert outs.platform == stack_platform(stack)
    # Buckets only where the program runs the servers in prod.
    assert (outs.buckets != {}) == (outs.environment == "prod" and outs.platform == "swarm")
