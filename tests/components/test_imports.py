"""`identity-platform:imports` under the mock engine: the program hands `import_id` to exactly the
Ziti resources named there (every Ziti resource of every stack can be named, in preview and in
update), and refuses with one ConfigError, naming `identity-platform:imports.<name>`, names no
resource has (with a did-you-mean hint) and resources that are not Ziti objects. An empty map
changes nothing, and nothing leaks from one run into the next."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

import stack_config
from stack_config import ConfigError
from tests.conftest import MODES, STACKS, program_run
from tests.harness.mock_engine import ROOT, ProgramRun, Registered, run_program, stack_platform

ZITI = "pulumi-python:dynamic/ziti:"
IDENTITY = f"{ZITI}Identity"
DEMO_API = "ziti-trust-identity-demo-api"
KEY = "identity-platform:imports"


def has_ziti(stack: str) -> bool:
    """Swarm and external stacks always register the chain's Ziti side; kubernetes with kubernetes.ziti."""
    if stack_platform(stack) != "kubernetes":
        return True
    doc = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return "ziti" in doc["config"]["identity-platform:kubernetes"]


ZITI_STACKS = [s for s in STACKS if has_ziti(s)]


def imports(value: Any) -> dict[str, str]:
    return {KEY: json.dumps(value)}


def carrying_import_id(run: ProgramRun) -> dict[str, Any]:
    return {r.name: r.inputs["import_id"] for r in run.resources if "import_id" in r.inputs}


def registrations(run: ProgramRun) -> list[tuple[str, str]]:
    """(type, name) of every registration; sorted, since the engine's order is not fixed."""
    return sorted((r.type, r.name) for r in run.resources)


def config_error(stack: str, value: Any, preview: bool = True) -> str:
    with pytest.raises(ConfigError) as err:
        run_program(stack, preview, config=imports(value))
    return str(err.value)


def fix(name: str) -> str:
    return f"(fix: `pulumi config rm --path 'imports.{name}'`)"


@pytest.mark.parametrize("preview", MODES)
class TestTheNamedResourceCarriesTheId:
    def test_only_the_named_identity_carries_import_id(self, preview: bool) -> None:
        run = run_program("dev", preview, config=imports({DEMO_API: "legacy-identity-id"}))
        assert carrying_import_id(run) == {DEMO_API: "legacy-identity-id"}
        [identity] = [r for r in run.of_type(IDENTITY) if r.name == DEMO_API]
        assert identity.inputs["import_id"] == "legacy-identity-id"

    def test_otherwise_the_program_registers_the_same_resources_with_the_same_inputs(self, preview: bool) -> None:
        baseline = program_run("dev", preview)
        run = run_program("dev", preview, config=imports({DEMO_API: "legacy-identity-id"}))
        assert registrations(run) == registrations(baseline)
        before: Registered = baseline.get(IDENTITY, DEMO_API)
        after = run.get(IDENTITY, DEMO_API)
        assert set(after.inputs) == set(before.inputs) | {"import_id"}
        assert (after.parent, after.provider, after.additional_secret_outputs) == (
            before.parent,
            before.provider,
            before.additional_secret_outputs,
        )

    def test_an_empty_map_registers_nothing_extra(self, preview: bool) -> None:
        baseline = program_run("dev", preview)
        run = run_program("dev", preview, config=imports({}))
        assert carrying_import_id(run) == {}
        assert registrations(run) == registrations(baseline)
        assert carrying_import_id(baseline) == {}

    def test_nothing_leaks_into_the_next_run(self, preview: bool) -> None:
        run_program("dev", preview, config=imports({DEMO_API: "legacy-identity-id"}))
        assert carrying_import_id(run_program("dev", preview)) == {}


@pytest.mark.parametrize("preview", MODES)
@pytest.mark.parametrize("stack", ZITI_STACKS)
def test_every_ziti_resource_of_every_stack_can_be_imported(stack: str, preview: bool) -> None:
    """Whatever point of the program registers a Ziti resource, its name is known by the time
    the names are checked (no false "no resource of that name")."""
    names = [r.name for r in program_run(stack, preview).resources if r.type.startswith(ZITI)]
    assert names, f"{stack} registers no Ziti resource"
    wanted = {name: f"id-of-{name}" for name in names}
    assert carrying_import_id(run_program(stack, preview, config=imports(wanted))) == wanted


@pytest.mark.parametrize(
    ("stack", "router_name", "router"),
    [("dev", None, True), ("prod", None, True), ("external", None, False), ("external", "edge-1", True),
     ("k8s-dev", None, True)],
)
def test_the_config_names_exactly_the_ziti_resources_the_program_registers(
    stack: str, router_name: str | None, router: bool
) -> None:
    """StackConfig refuses an `imports` key at load from the names it derives; they must be the
    names the program registers, or a valid key would be refused or a wrong one silently ignored.
    Swarm and kubernetes.ziti always make the router entity; external only with ziti.routerName."""
    from tests.test_config_gate import change, stack_values

    values, secret = stack_values(stack)
    overrides = {}
    if router_name is not None:
        change(values, "ziti.routerName", router_name)
        overrides["identity-platform:ziti"] = str(values["identity-platform:ziti"])
    config = stack_config.parse_stack_values(values, secret)
    run = run_program(stack, True, config=overrides)
    registered = sorted(r.name for r in run.resources if r.type.startswith(ZITI))
    assert ("ziti-trust-router" in registered) == router
    assert sorted(config.ziti_resource_names) == registered


class TestRefusedNames:
    """The names are checked at load (stack_config), before any resource is registered."""

    def test_a_misspelt_name_is_refused_with_the_closest_name(self) -> None:
        message = config_error("dev", {"ziti-trust-identity-demo-apj": "id-1"})
        assert (
            "identity-platform:imports.ziti-trust-identity-demo-apj: names no Ziti object of this stack "
            f"('demo-apj' is not a key of workloads; did you mean {DEMO_API!r}?)"
        ) in message
        assert fix("ziti-trust-identity-demo-apj") in message

    def test_a_name_like_nothing_gets_no_hint(self) -> None:
        message = config_error("dev", {"qqqq": "id-1"})
        assert "identity-platform:imports.qqqq: names no Ziti object of this stack: only the trust chain's" in message
        assert fix("qqqq") in message and "did you mean" not in message

    @pytest.mark.parametrize("name", ["keycloak-identity-realm", "spire-server", "ziti-trust"])
    def test_a_resource_that_is_not_a_ziti_object_is_refused(self, name: str) -> None:
        message = config_error("dev", {name: "id-1"})
        assert f"identity-platform:imports.{name}: names no Ziti object of this stack" in message
        assert "other objects are adopted by their ownership marker (docs/providers/)" in message
        assert fix(name) in message

    def test_a_resource_of_another_stack_is_unknown_here(self) -> None:
        # prod registers ziti-trust-identity-ledger; dev has no such workload.
        message = config_error("dev", {"ziti-trust-identity-ledger": "id-1"})
        expected = ("identity-platform:imports.ziti-trust-identity-ledger: names no Ziti object of this stack "
                    "('ledger' is not a key of workloads)")  # fmt: skip
        assert expected in message

    @pytest.mark.parametrize("preview", MODES)
    def test_every_problem_is_named_in_one_error_and_a_valid_entry_does_not_hide_them(self, preview: bool) -> None:
        message = config_error(
            "dev",
            {DEMO_API: "ok-id", "spire-server": "id-2", "ziti-trust-routr": "id-3"},
            preview,
        )
        lines = message.splitlines()
        assert lines[0] == "invalid stack configuration:"
        problems = [line.strip() for line in lines[1:]]
        assert [p.split(":", 2)[1] for p in problems] == ["imports.spire-server", "imports.ziti-trust-routr"]
        assert "(did you mean 'ziti-trust-router'?)" in problems[1]
        assert DEMO_API not in message

    def test_the_external_platform_checks_its_own_resources(self) -> None:
        run = run_program("external", True, config=imports({"ziti-trust-identity-payments-api": "id-1"}))
        assert carrying_import_id(run) == {"ziti-trust-identity-payments-api": "id-1"}
        message = config_error("external", {"spire-server": "id-2"})
        assert "identity-platform:imports.spire-server: names no Ziti object of this stack" in message


class TestConfigShape:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            pytest.param({DEMO_API: ""}, f"{KEY}.{DEMO_API}: must not be empty", id="empty-id"),
            pytest.param([DEMO_API], f"{KEY}: must be a map of resource name to text, not a list", id="list"),
        ],
    )
    def test_an_empty_id_or_a_list_is_a_config_error(self, value: Any, expected: str) -> None:
        assert expected in config_error("dev", value)
