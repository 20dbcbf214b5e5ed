"""The kernel's own promises, independent of any system: resource classes cost the SDK no type
introspection, their constructors take exactly the model's inputs, and the create-or-adopt loop
never POSTs twice without looking the object up in between, and a forced replacement of an
object found by its unique key deletes it before making the new one. `check` names each failure
by its property path (`inputs` when there is none) without pydantic's prefixes and skips what is
still unknown; `diff` counts an unknown new value as a change."""

from __future__ import annotations

import inspect
from typing import Any

import pulumi
import pytest
from pulumi import _types
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from dynamic_providers._kernel import (
    Provider,
    Resource,
    changed_fields,
    create_or_adopt,
    post_or_find,
    validated,
    validation_failures,
)
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

    def find() -> Any:
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


class LostAnswerError(Exception):
    """An error of a client that says when the outcome of its call is unknown."""

    def __init__(self, kind: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(kind)
        self.kind = kind
        self.outcome_unknown = outcome_unknown


class TestPostOrFind:
    """`post_or_find`: create-or-adopt for a part of an object already ours (Keycloak's audience
    mapper, a rotated secret): what the lookup finds is taken as is."""

    def test_what_a_lost_post_made_is_returned_as_found(self) -> None:
        calls: list[str] = []

        def post() -> str:
            calls.append("POST")
            raise LostAnswerError("reset", outcome_unknown=True)

        def find() -> str:
            calls.append("GET")
            return "mapper-1"

        found = post_or_find(post, find, errors=LostAnswerError, attempts=3,
                             pause=lambda attempt, e: calls.append(f"pause {attempt}"))
        assert found == "mapper-1"
        assert calls == ["POST", "pause 1", "GET"]

    def test_an_error_that_does_not_say_its_outcome_is_unknown_is_raised_without_a_lookup(self) -> None:
        """`lost` reads the error's `outcome_unknown`; an error class without one (a refusal, a bug)
        counts as an answer: raised at once, never looked up nor POSTed again."""
        calls: list[str] = []

        def post() -> str:
            calls.append("POST")
            raise ApiFailureError("400")

        def find() -> str:
            calls.append("GET")
            return "mapper-1"

        with pytest.raises(ApiFailureError, match=r"^400$"):
            post_or_find(post, find, errors=ApiFailureError, attempts=3,
                         pause=lambda attempt, e: calls.append(f"pause {attempt}"))
        assert calls == ["POST"]

    def test_a_conflict_nobody_holds_goes_to_the_callers_unheld_conflict(self) -> None:
        """Keycloak's audience mapper: a 409 whose holder the lookup does not find is refused with
        the caller's message, not retried blindly."""

        def post() -> str:
            raise LostAnswerError("409")

        def refused(err: LostAnswerError) -> None:
            raise RuntimeError(f"Keycloak refused the audience mapper ({err.kind})")

        with pytest.raises(RuntimeError, match=r"^Keycloak refused the audience mapper \(409\)$"):
            post_or_find(post, lambda: None, errors=LostAnswerError, attempts=3, pause=lambda attempt, e: None,
                         conflict=lambda e: e.kind == "409", unheld_conflict=refused)


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


# --- check: failures named by their property path -----------------------------------------------------


class Sub(BaseModel):
    n: int


class Settings(BaseModel):
    """A small argument model with the shapes the providers' models have: a list of a union, a
    fixed-length pair, a nested object, a field validator failing an assertion, a cross-field check."""

    model_config = ConfigDict(extra="forbid")

    items: list[int | Sub] = []
    pair: tuple[int, int] | None = None
    sub: Sub | None = None
    port: int | None = None

    @field_validator("port")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise AssertionError("port must be positive")  # as `assert` raises it (pytest rewrites asserts here)
        return v

    @model_validator(mode="after")
    def _reserved(self) -> Settings:
        if self.port == 7:
            raise ValueError("port 7 is reserved")
        return self


def named(failures: list[Any]) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in failures]


class TestValidationFailures:
    def test_a_missing_value_is_required_under_its_own_name(self) -> None:
        assert named(validation_failures(Settings, None, "connection")) == [("connection", "connection is required")]

    def test_a_missing_value_without_a_name_is_reported_on_inputs(self) -> None:
        """The engine shows the property first: with no prefix there is still a name to show."""
        assert named(validation_failures(Settings, None)) == [("inputs", "inputs is required")]

    def test_a_failure_of_the_whole_object_is_reported_on_inputs_without_pydantics_prefix(self) -> None:
        assert named(validation_failures(Settings, {"port": 7})) == [("inputs", "port 7 is reserved")]

    def test_by_input_a_failure_of_the_whole_object_is_reported_on_inputs_and_named_in_the_reason(self) -> None:
        assert named(validation_failures(Settings, {"port": 7}, by_input=True)) == [
            ("inputs", "inputs: port 7 is reserved")
        ]

    def test_an_assertion_message_loses_pydantics_prefix(self) -> None:
        """pydantic writes `Assertion failed, port must be positive`; the engine shows the message alone."""
        assert named(validation_failures(Settings, {"port": -1})) == [("port", "port must be positive")]

    def test_a_nested_field_is_named_by_its_dotted_path(self) -> None:
        assert named(validation_failures(Settings, {"sub": {"n": "x"}})) == [
            ("sub.n", "Input should be a valid integer, unable to parse string as an integer")
        ]

    def test_a_missing_position_of_a_pair_is_named_by_its_index(self) -> None:
        """pydantic locates the missing second item of a pair at index 1, past the end of the list
        given: the failure names it, the check does not trip over it."""
        assert named(validation_failures(Settings, {"pair": [1]})) == [("pair[1]", "pair[1] is required")]

    @pytest.mark.parametrize("unknown", [Unknown(), rpc.UNKNOWN], ids=["unknown-object", "wire-sentinel"])
    def test_failures_below_an_unknown_item_are_dropped_and_the_others_kept(self, unknown: Any) -> None:
        """A union item still unknown in this preview fails every member (pydantic locates those
        failures below it, at `items[0].int`, `items[0].Sub`): not yet a failure."""
        assert named(validation_failures(Settings, {"items": [unknown], "port": -1})) == [
            ("port", "port must be positive")
        ]

    def test_validated_names_every_failure_in_one_message(self) -> None:
        with pytest.raises(ValueError) as err:
            validated(Settings, {"sub": {"n": "x"}, "port": -1})
        assert str(err.value) == (
            "sub.n: Input should be a valid integer, unable to parse string as an integer; port: port must be positive"
        )

    def test_validated_names_the_failures_under_what_it_validates(self) -> None:
        with pytest.raises(ValueError) as err:
            validated(Settings, {"sub": {"n": "x"}}, "connection")
        assert str(err.value) == (
            "connection.sub.n: Input should be a valid integer, unable to parse string as an integer"
        )


class Connection(BaseModel):
    url: str
    timeout: int = 30


class _MetaProvider(Provider):
    """A provider whose connection is a meta input, its failures reported by input (as SPIRE's are)."""

    args_model = Sub
    meta_models = {"connection": Connection}
    failures_by_input = True


class TestCheckByInput:
    def test_a_meta_inputs_failure_is_reported_on_that_input_its_path_leading_the_reason(self) -> None:
        result = _MetaProvider().check({}, {"n": 1, "connection": {"url": "https://a", "timeout": "soon"}})
        assert named(result.failures) == [
            ("connection", "connection.timeout: Input should be a valid integer, unable to parse string as an integer")
        ]

    def test_a_missing_meta_input_is_required(self) -> None:
        assert named(_MetaProvider().check({}, {"n": 1}).failures) == [("connection", "connection is required")]


# --- diff -----------------------------------------------------------------------------------------------


def _size(_field: str, value: Any) -> int:
    """A comparable form that cannot see an unknown inside a value (its size only)."""
    return len(value)


class TestChangedFields:
    def test_an_unknown_new_value_is_a_change_even_where_its_comparable_form_is_unchanged(self) -> None:
        old = {"selectors": ["unix:uid:1"], "connection": {"url": "https://a"}, "name": "n"}
        new = {"selectors": [Unknown()], "connection": {"url": Unknown()}, "name": "m"}
        assert changed_fields(["selectors", "connection", "name"], old, new, _size) == ["selectors", "connection"]

    def test_a_stored_value_the_comparable_form_cannot_read_is_a_change_not_an_error(self) -> None:
        assert changed_fields(["port"], {"port": 7}, {"port": 7}, lambda f, v: len(v)) == ["port"]
