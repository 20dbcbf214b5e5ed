"""The program's real exports, for every stack file under the mock engine (every platform:
swarm, external and each Kubernetes topology with and without kubernetes.iam/ziti), are the
contract: the keys StackOutputs requires for the stack's platform (and no foreign ones), secret
exactly where the model says, and values that validate. `ops up` checks the same after each
update, so a stack whose exports broke it would end every `ops up` with exit 8."""

from __future__ import annotations

import pytest

from ops.outputs import OutputsContractError, StackOutputs
from stack_config import parse_stack_values
from tests.conftest import STACKS, program_run
from tests.harness.mock_engine import stack_config, stack_platform

CONTRACT_STACKS = STACKS


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
    # Admin passwords where the program runs Keycloak or Ziti, a generated root's key on external.
    runs_servers = stack_platform(stack) != "kubernetes" or "keycloakUrl" in run.exports
    assert bool(expected) == runs_servers, expected
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
    assert bool(outs.buckets) == (outs.environment == "prod" and outs.platform == "swarm")


KUBERNETES = {
    "k8s-dev": ("basic", ["dev"], True, True),
    "k8s-prod": ("basic", ["prod"], True, True),
    "k8s-crd-free": ("crd-free", ["regulated"], False, False),
    "k8s-enterprise": ("enterprise", ["branch", "hq"], False, False),
    "k8s-enterprise-nested": ("enterprise", ["branch", "hq"], False, False),
}


@pytest.mark.parametrize("stack", [s for s in STACKS if stack_platform(s) == "kubernetes"])
def test_a_kubernetes_stack_exports_its_topology_and_only_the_sections_it_deploys(stack: str) -> None:
    topology, clusters, keycloak, ziti = KUBERNETES[stack]
    outs = StackOutputs.from_mapping({k: e.value for k, e in program_run(stack, preview=False).exports.items()})
    assert outs.kubernetes_topology == topology and outs.spire_server_address
    assert outs.kubernetes_clusters == clusters
    assert (outs.keycloak_issuer_url is not None) == keycloak and (outs.ziti_ca_id is not None) == ziti


def test_a_kubernetes_stack_exports_a_section_whole_or_not_at_all() -> None:
    exports = {k: e.value for k, e in program_run("k8s-dev", preview=False).exports.items()}
    for dropped in ("keycloakJwksUrl", "zitiCaId"):
        with pytest.raises(OutputsContractError, match=f"{dropped}: required with kubernetes"):
            StackOutputs.from_mapping({k: v for k, v in exports.items() if k != dropped})
