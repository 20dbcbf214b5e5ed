"""The kernel's own promises, independent of any system: resource classes cost the SDK no type
introspection, their constructors take exactly the model's inputs, and the create-or-adopt loop
never POSTs twice without looking the object up in between, and a forced replacement of an
object found by its unique key deletes it before making the new one."""

from __future__ import annotations

import inspect
from typing import Any

import pulumi
import pytest
from pulumi import _types

from dynamic_providers._kernel import Resource, create_or_adopt
from dynamic_providers.keycloak.provider import KeycloakClient, KeycloakRealm
from dynamic_providers.spire.provider import SpireEntry
from dynamic_providers.ziti import provider as zp
from tests.harness.mock_engine import run

RESOURCES: list[type[Resource]] = [
    KeycloakRealm,
    KeycloakClient,
    SpireEntry,
    zp.ZitiCertificateAuthority,
    zp.ZitiExternalJwtSigner,
    zp.ZitiAuthPolicy,
    zp.ZitiIdentity,
    zp.ZitiEdgeRouter,
    zp.ZitiServicePolicy,
    zp.ZitiEdgeRouterPolicy,
    zp.ZitiServiceEdgeRouterPolicy,
]


@pytest.mark.parametrize("cls", RESOURCES, ids=lambda c: c.__name__)
def test_no_run_time_annotations_so_no_type_introspection_per_resource(cls: type[Resource]) -> None:
    """The SDK resolves a resource class's own annotations with `get_type_hints` for every
    resource it registers (0.3-4 ms each, measured): the classes carry none at run time."""
    assert inspect.get_annotations(cls) == {}
    assert _types.resource_types(cls) == {}


@pytest.mark.parametrize("cls", RESOURCES, ids=lambda c: c.__name__)
def test_the_constructor_takes_the_models_inputs_and_the_connection(cls: type[Resource]) -> None:
    params = inspect.signature(cls).parameters
    model = cls.provider.args_model
    names = set(params) - {"resource_name", "opts"}
    assert names == ({*model.model_fields, "connection"} - set(cls.program_inputs))
    assert "connection" in names and params["connection"].default is inspect.Parameter.empty
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in params.items() if n != "resource_name")


def test_a_misspelt_or_missing_keyword_is_refused_before_registering() -> None:
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['nmae'\]"):
        zp.ZitiIdentity("w", nmae="w", connection={})
    with pytest.raises(TypeError, match=r"missing the required keyword arguments \['name'\]"):
        zp.ZitiIdentity("w", connection={})


class ApiFailureError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _loop(
    answers: list[Any], found: list[Any], attempts: int = 3, calls: list[str] | None = None
) -> tuple[tuple[Any, bool], list[str]]:
    """Drive `create_or_adopt` with scripted POST answers and lookups; return the result and the calls."""
    calls = [] if calls is None else calls

    def post() -> Any:
        calls.append("POST")
        answer = answers.pop(0)
        if isinstance(answer, ApiFailureError):
            raise answer
        return answer

    def find(err: ApiFailureError | None) -> Any:
        calls.append("GET")
        return found.pop(0)

    def unheld(err: ApiFailureError) -> None:
        calls.append("unheld")

    result = create_or_adopt(
        post,
        find,
        lambda existing, err, uncertain: (f"adopted {existing} (uncertain={uncertain})", False),
        errors=ApiFailureError,
        attempts=attempts,
        conflict=lambda e: e.kind == "409",
        lost=lambda e: e.kind == "lost",
        pause=lambda attempt, e: calls.append(f"pause {attempt}"),
        unheld_conflict=unheld,
    )
    return result, calls


def test_a_lost_answer_is_looked_up_before_posting_again() -> None:
    result, calls = _loop([ApiFailureError("lost"), "new-id"], [None])
    assert result == ("new-id", True)
    assert calls == ["POST", "pause 1", "GET", "POST"]


def test_what_a_lost_post_made_is_adopted_not_duplicated() -> None:
    result, calls = _loop([ApiFailureError("lost")], ["id-1"])
    assert result == ("adopted id-1 (uncertain=True)", False)
    assert calls == ["POST", "pause 1", "GET"]


def test_a_conflict_adopts_the_holder_at_once() -> None:
    result, calls = _loop([ApiFailureError("409")], ["id-2"])
    assert result == ("adopted id-2 (uncertain=False)", False)
    assert calls == ["POST", "GET"]


def test_a_conflict_nobody_holds_is_the_systems_call_then_posts_again_after_a_pause() -> None:
    result, calls = _loop([ApiFailureError("409"), "id-3"], [None])
    assert result == ("id-3", True)
    assert calls == ["POST", "GET", "unheld", "pause 1", "POST"]


def test_other_errors_propagate_untouched() -> None:
    calls: list[str] = []
    with pytest.raises(ApiFailureError, match="boom"):
        _loop([ApiFailureError("boom")], [], calls=calls)
    assert calls == ["POST"]


def test_after_the_last_lost_answer_one_last_lookup_then_the_error() -> None:
    calls: list[str] = []
    with pytest.raises(ApiFailureError, match="lost"):
        _loop([ApiFailureError("lost")] * 2, [None, None], attempts=2, calls=calls)
    assert calls == ["POST", "pause 1", "GET", "POST", "GET"]


# --- forced replacement -----------------------------------------------------------------------------

# Every required input, plainly (the constructor does not validate them; the provider's `check` would).
REQUIRED: dict[str, Any] = {
    "connection": {"url": "https://example.net"},
    "realm": "platform",
    "client_id": "web",
    "spiffe_id": "spiffe://example.org/w",
    "parent_id": "spiffe://example.org/agent",
    "selectors": ["unix:uid:1000"],
    "name": "n",
    "cert_pem": "pem",
    "ca_key_pem": "key",
    "issuer": "https://issuer",
    "audience": "aud",
    "primary": {},
    "type": "Dial",
}


def _register(opts: Any = None) -> dict[str, Any]:
    def body() -> None:
        for cls in RESOURCES:
            params = inspect.signature(cls).parameters
            cls(cls.__name__, **{k: v for k, v in REQUIRED.items() if k in params}, opts=opts)

    return {r.name: r for r in run(body).resources if r.type.startswith("pulumi-python:dynamic/")}


def test_a_provider_that_frees_its_key_first_registers_delete_before_replace() -> None:
    """`pulumi up --replace` never asks the provider's diff (pulumi 3.274.1, step_generator.go,
    `isTargetedReplace`): the resource option alone makes a forced replacement delete first. Without
    it, the new Keycloak or Ziti object would be the old one adopted by its unique name, and the old
    resource's delete would then remove it. SPIRE entries stay create-before-delete (a new triple is
    a new entry id: the workload keeps an entry throughout); `ops` refuses their forced replacement."""
    registered = _register()
    assert set(registered) == {cls.__name__ for cls in RESOURCES}
    first = {name for name, r in registered.items() if r.delete_before_replace}
    assert first == {cls.__name__ for cls in RESOURCES} - {"SpireEntry"}
    assert "connection" in registered["ZitiIdentity"].additional_secret_outputs, "the merge keeps the secret outputs"
    assert registered["ZitiCertificateAuthority"].additional_secret_outputs == (
        "connection", "ca_key_pem", "enrollment_jwt")
    assert registered["SpireEntry"].additional_secret_outputs == ()


def test_an_explicit_delete_before_replace_option_wins() -> None:
    registered = _register(pulumi.ResourceOptions(delete_before_replace=False))
    assert not any(r.delete_before_replace for r in registered.values())
    registered = _register(pulumi.ResourceOptions(delete_before_replace=True))
    assert all(r.delete_before_replace for r in registered.values())
