"""The policy pack passes the program's own resources: `__main__.py` evaluated under the mock
engine (update mode, so computed values are known) for dev and prod, every registered resource's
inputs (engine/camelCase names, as a policy pack sees them) fed to every rule."""

from __future__ import annotations

import copy

import pytest

from ops.workspace import validate_stack_config
from policy import validators as v
from tests.conftest import program_run

STACKS = ["dev", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_rules_have_something_to_judge(stack: str) -> None:
    run = program_run(stack, preview=False)
    types = {r.type for r in run.resources}
    assert v.SERVICE in types, f"{stack}: no docker.Service registered; types: {sorted(types)}"
    if validate_stack_config(stack).is_prod:
        assert v.BUCKET in types, f"{stack}: prod registers no Spaces bucket"


@pytest.mark.parametrize("stack", STACKS)
def test_program_resources_pass_every_policy(stack: str) -> None:
    run = program_run(stack, preview=False)
    env = validate_stack_config(stack).environment
    triples = [(r.urn, r.type, r.inputs) for r in run.resources if r.custom]
    violations = v.check_stack(triples, env)
    assert violations == [], "\n".join(f"[{rule}] {urn}: {msg}" for rule, urn, msg in violations)


@pytest.mark.parametrize("stack", STACKS)
def test_preview_mode_resources_raise_nothing(stack: str) -> None:
    """During `pulumi preview` many inputs are unknown: the rules must skip them, not crash."""
    run = program_run(stack, preview=True)
    env = validate_stack_config(stack).environment
    for r in run.resources:
        v.check_resource(r.type, r.inputs, env)


@pytest.mark.parametrize("stack", STACKS)
def test_rules_read_the_shape_the_program_registers(stack: str) -> None:
    """Guard against a vacuous pass: the same inputs, each stripped of what a rule requires,
    are flagged once per resource, so the rules really see the program's fields."""
    run = program_run(stack, preview=False)
    services = [r for r in run.resources if r.type == v.SERVICE]
    for r in services:
        image = r.inputs["taskSpec"]["containerSpec"]["image"]
        assert v.image_pin_problem(image) is None, image
        stripped = copy.deepcopy(r.inputs)
        del stripped["taskSpec"]["containerSpec"]["healthcheck"]
        stripped["taskSpec"]["containerSpec"]["image"] = image.rsplit(":", 1)[0].split("@")[0]
        found = v.check_resource(v.SERVICE, stripped, "prod")
        assert {"healthchecks-present", "images-pinned"} <= set(found), (r.name, found)
    buckets = [r for r in run.resources if r.type == v.BUCKET]
    for r in buckets:
        public = {**r.inputs, "acl": "public-read", "versioning": {"enabled": False}}
        assert len(v.check_resource(v.BUCKET, public, "prod")["spaces-buckets-private-versioned"]) == 2


# The data directory of each stateful service the program runs (where its live database sits).
DATA_DIRS = {
    "keycloak-postgres": "/var/lib/postgresql/data",
    "spire-server": "/var/lib/spire/server",
    "ziti-controller": "/ziti-controller",
    "ziti-router": "/ziti-router",
}


@pytest.mark.parametrize("stack", STACKS)
def test_moving_any_real_database_onto_rclone_is_caught(stack: str) -> None:
    """The rclone rule knows this program's real data directories: each stateful service's own
    data mount, switched to the rclone driver, is flagged (and only that rule fires)."""
    run = program_run(stack, preview=False)
    env = validate_stack_config(stack).environment
    services = {r.inputs["name"]: r for r in run.resources if r.type == v.SERVICE}
    assert set(DATA_DIRS) <= set(services), sorted(services)
    for name, data_dir in DATA_DIRS.items():
        props = copy.deepcopy(services[name].inputs)
        mounts = props["taskSpec"]["containerSpec"]["mounts"]
        (data,) = [m for m in mounts if m["target"] == data_dir]
        data["volumeOptions"] = {"driverName": "rclone"}
        found = v.check_resource(v.SERVICE, props, env)
        assert set(found) == {"stateful-data-not-on-rclone"}, (name, found)
        assert data_dir in found["stateful-data-not-on-rclone"][0], (name, found)
