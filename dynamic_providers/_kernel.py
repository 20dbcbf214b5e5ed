"""What every dynamic provider does the same way, whatever system it drives: props and unknowns,
`check`, `diff`, create-or-adopt, the CRUD around an owned object, ownership, resource classes.
See docs/architecture.md#the-providers-one-kernel-three-systems."""

from __future__ import annotations

import functools
import inspect
import os
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

import pulumi
from pulumi import dynamic
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import PydanticCustomError

from dynamic_providers import _serialization
from dynamic_providers._transport import ApiError, ServerError

PROVIDER_KEY = "__provider"

# --- props and unknowns ---------------------------------------------------------------------------


def is_unknown(value: Any) -> bool:
    """True for a value the engine does not know yet (preview of a computed input): the provider
    host hands `Unknown` objects, the wire sentinel string is accepted too."""
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def contains_unknown(value: Any) -> bool:
    """True when `value` is, or nests, an unknown."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknown(v) for v in value)
    return False


def strip(props: Mapping[str, Any]) -> dict[str, Any]:
    """The props without the serialized provider the engine adds to every resource."""
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def environment_stack() -> str | None:
    """`<project>/<stack>` of the provider process (the engine sets PULUMI_PROJECT/PULUMI_STACK)."""
    project, stack = os.environ.get("PULUMI_PROJECT"), os.environ.get("PULUMI_STACK")
    return f"{project}/{stack}" if project and stack else None


def program_stack() -> str:
    """`<project>/<stack>` of the running program: a provider process run by hand cannot know it."""
    return f"{pulumi.get_project()}/{pulumi.get_stack()}"


# --- check ------------------------------------------------------------------------------------------


def rule(field: str, message: str) -> PydanticCustomError:
    """A cross-field failure raised by a model validator and reported as the property `field`."""
    return PydanticCustomError("rule", message, {"field": field})


def _locate(value: Any, loc: Sequence[int | str]) -> tuple[bool, list[int | str]]:
    """Walk `loc` into `value`: whether an unknown is met on the way or is the value found, and
    the property path, without the member names pydantic puts into
    the location of a tagged union's error (`connection.grpc.socket_path` is `connection.socket_path`)."""
    current: Any = value
    path: list[int | str] = []
    for i, part in enumerate(loc):
        if is_unknown(current):
            return True, path
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and isinstance(part, int) and part < len(current):
            current = current[part]
        elif isinstance(current, Mapping) and isinstance(part, str) and i < len(loc) - 1:
            continue  # a union member's tag, not a key
        else:
            return False, [*path, *loc[i:]]
        path.append(part)
    return is_unknown(current), path


def _unknown_tag(err: Mapping[str, Any]) -> bool:
    """A tagged union whose tag is unknown in this preview: which member applies is not known yet
    (the error sits on the union, whose value only nests the unknown)."""
    if err["type"] != "union_tag_invalid":
        return False
    key, given = str((err.get("ctx") or {}).get("discriminator", "")).strip("'"), err.get("input")
    return isinstance(given, Mapping) and is_unknown(given.get(key))


_REASONS = {"missing": "{} is required", "extra_forbidden": "{} is not an input of this resource (check the spelling)"}


def _reason(err: Mapping[str, Any], path: str) -> str:
    """The failure text. The engine prints it after the property name, so it never quotes the
    value (which may be a secret)."""
    if err["type"] in _REASONS:
        return _REASONS[err["type"]].format(path)
    return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


def validation_failures(
    model: type[BaseModel], value: Any, prefix: str = "", *, by_input: bool = False
) -> list[dynamic.CheckFailure]:
    """`value` checked against `model`, one failure per problem named by its property path.
    Failures that involve a value unknown in this preview are dropped. `by_input`: each failure
    is reported on its top-level input, the path of the broken item leading the reason
    (`dns_names[1]: ...`), so that a list's items are named by their own index."""
    if is_unknown(value):
        return []
    if value is None:
        name = prefix or "inputs"
        return [dynamic.CheckFailure(name, f"{name} is required")]
    try:
        model.model_validate(value)
    except ValidationError as e:
        failures = []
        for err in e.errors():
            loc: list[int | str] = list(err["loc"])
            field = (err.get("ctx") or {}).get("field")
            if field is not None:
                loc.append(str(field))  # a `rule`: reported as the field it names
            unknown, path = _locate(value, loc)
            if unknown or _unknown_tag(err):
                continue
            full = ([prefix] if prefix else []) + path
            # the path as Pulumi writes one: `dns_names[1]`, `connection.socket_path`
            name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in full).removeprefix(".") or "inputs"
            reason = _reason(err, name)
            if by_input:
                reason = reason if reason.startswith(name) else f"{name}: {reason}"
                name = str(full[0]) if full else "inputs"
            failures.append(dynamic.CheckFailure(name, reason))
        return failures
    return []


def require_valid(model: type[BaseModel], value: Any, what: str = "") -> None:
    """Raise `ValueError` with every failure `validation_failures` finds (create/update/read)."""
    failures = validation_failures(model, value, what)
    if failures:
        raise ValueError("; ".join(f"{f.property}: {f.reason}" for f in failures))


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], value: Any, what: str = "") -> M:
    """`value` as a `model`, after `require_valid` (one message naming every failure)."""
    require_valid(model, value, what)
    return model.model_validate(value)


# --- diff ---------------------------------------------------------------------------------------------


class Malformed:
    """A stored value that could not be read in its expected form: unequal to everything, so a
    `diff` comparing it reports a change (or a replacement) instead of raising."""

    __slots__ = ("raw",)

    def __init__(self, raw: object) -> None:
        self.raw = raw

    def __eq__(self, other: object) -> bool:
        return False  # and unhashable, as a class defining only `__eq__` is

    def __repr__(self) -> str:
        return f"Malformed({self.raw!r})"


def changed_fields(
    fields: Iterable[str], old: Mapping[str, Any], new: Mapping[str, Any], comparable: Callable[[str, Any], Any]
) -> list[str]:
    """The fields whose comparable forms differ. An unknown new value is a change; a value
    `comparable` cannot read (older or damaged state) is `Malformed`, so it differs too."""

    def form(field: str, value: Any) -> Any:
        try:
            return comparable(field, value)
        except (TypeError, ValueError, AttributeError, KeyError, ValidationError):
            return Malformed(value)

    return [f for f in fields if contains_unknown(new.get(f)) or form(f, old.get(f)) != form(f, new.get(f))]


# --- ownership --------------------------------------------------------------------------------------

REFRESH_HINT = (
    "If this stack should let go of it, `pulumi refresh` drops it from this stack's state (a later "
    "`pulumi up` creates the resource anew, or refuses if that object still holds its name)"
)


def gone(what: str, id_: str, where: str = "") -> str:
    """Why an update cannot proceed: the object at the state's address was deleted outside Pulumi."""
    return (f"{what} (id {id_}) no longer exists{where} (deleted outside Pulumi): run `pulumi refresh` to drop it "
            "from the state, then `pulumi up` creates it again")


class ForeignObjectError(Exception):
    """The object at the state's address is not this resource's: nothing was written."""


def refusal(action: str, what: str, id_: str, reason: str, owner: str, handover: str) -> ForeignObjectError:
    """`ForeignObjectError` with the one message shape every provider uses."""
    return ForeignObjectError(
        f"refusing to {action} {what} (id {id_}): {reason}; {owner}. Nothing was changed. "
        f"To hand it over to this stack: {handover}. {REFRESH_HINT}"
    )


Mark = TypeVar("Mark")
Obj = TypeVar("Obj")


class OwnershipEncoder(Generic[Mark, Obj]):
    """One system's encoding of "this object belongs to this stack" (a mark on the object).

    `marks(...)` turns candidates (the new inputs' mark, the one the state recorded, this
    process's stack) into the valid marks, no repeats, in order of preference; `owns` says
    whether an object carries one of them; `refuse` builds the `ForeignObjectError`."""

    def parse(self, raw: Any) -> Mark | None:
        """The mark `raw` encodes, None when it encodes none (a damaged mark proves nothing)."""
        raise NotImplementedError

    def environment(self) -> Mark | None:
        """This provider process's own mark, from PULUMI_PROJECT/PULUMI_STACK."""
        return self.parse(environment_stack())

    def marks(self, *candidates: Any) -> list[Mark]:
        out: list[Mark] = []
        for raw in candidates:
            try:
                mark = self.parse(raw)
            except (ValidationError, TypeError, ValueError):
                continue
            if mark is not None and mark not in out:
                out.append(mark)
        return out

    def owns(self, obj: Obj, marks: Sequence[Mark]) -> bool:
        raise NotImplementedError

    def refuse(self, action: str, obj: Obj, id_: str, marks: Sequence[Mark]) -> ForeignObjectError:
        raise NotImplementedError

    def require(self, action: str, obj: Obj, id_: str, marks: Sequence[Mark]) -> None:
        """Refuse, before any write, an object that is not ours."""
        if not self.owns(obj, marks):
            raise self.refuse(action, obj, id_, marks)


# --- create or adopt --------------------------------------------------------------------------------

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


def create_or_adopt(
    post: Callable[[], T],
    find: Callable[[], Any | None],
    adopt: Callable[[Any, E, bool], tuple[T, bool]],
    *,
    errors: type[E],
    attempts: int,
    conflict: Callable[[E], bool],
    lost: Callable[[E], bool],
    pause: Callable[[int, E], None],
    unheld_conflict: Callable[[E], None],
    exhausted: Callable[[E], NoReturn] | None = None,
    before_lookup: Callable[[], None] = lambda: None,
) -> tuple[T, bool]:
    """(result, created): POST once; never POST again before looking the object up.

    A conflict (the unique key is taken) looks the holder up and hands it to `adopt`, which checks
    ownership, writes the declared settings and says whether it counts as created; a conflict
    nobody holds goes to `unheld_conflict` (raise, or return to POST again). A lost answer (`lost`:
    a reset, a timeout, a 5xx to the POST) pauses, looks up and adopts what the lost POST may have
    made, else POSTs again; `adopt` is told whether a POST of this call may have landed. Any other error propagates.
    After `attempts` POSTs the last error goes to `exhausted` (default: raised as is)."""
    uncertain = False
    last: E | None = None
    for attempt in range(1, attempts + 1):
        try:
            return post(), True
        except errors as e:
            is_conflict = conflict(e)
            if not is_conflict and not lost(e):
                raise
            last = e
            uncertain = uncertain or not is_conflict
            if not is_conflict and attempt < attempts:
                pause(attempt, e)  # a lost answer: back off before the lookup
            before_lookup()
            existing = find()
            if existing is not None:
                return adopt(existing, e, uncertain)
            if is_conflict:
                unheld_conflict(e)
                if attempt < attempts:
                    pause(attempt, e)
    assert last is not None
    if exhausted is not None:
        exhausted(last)
    raise last


def post_or_find(post: Callable[[], T], find: Callable[[], T | None], *, errors: type[E], attempts: int,
                 pause: Callable[[int, E], None], conflict: Callable[[E], bool] = lambda _e: False,
                 unheld_conflict: Callable[[E], None] = lambda _e: None) -> T:
    """`create_or_adopt` for what needs no ownership check nor write once found (a part of an
    object already ours, e.g. a mapper or a rotated secret): what `find` returns is taken as is."""
    result: T
    result, _ = create_or_adopt(post, find, lambda found, _e, _u: (found, False), errors=errors,
                                attempts=attempts, conflict=conflict, pause=pause, unheld_conflict=unheld_conflict,
                                lost=lambda e: bool(getattr(e, "outcome_unknown", False)))
    return result


# --- providers ----------------------------------------------------------------------------------------


def _told(method: Callable[..., Any]) -> Callable[..., Any]:
    """Raise the providers' own errors, which say everything in their message, without their cause
    chain: the provider host sends `traceback.format_exc()` as gRPC metadata, capped at 8 KB, and
    the chain under a retried connection failure (httpx and httpcore frames per attempt) went past
    it, so the engine showed "RESOURCE_EXHAUSTED" instead. Other exceptions keep their traceback."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (ServerError, ForeignObjectError) as e:
            raise e.with_traceback(None) from None

    return call


class Provider(dynamic.ResourceProvider):
    """The shared CRUD skeleton: the class settings below, the system's hooks for the rest."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("create", "read", "update", "delete"):
            if name in vars(cls):
                setattr(cls, name, _told(vars(cls)[name]))

    # Providers hold no secret (credentials are secret inputs), so `__provider` stays plain.
    serialize_as_secret_always = False

    args_model: ClassVar[type[BaseModel]]
    # Inputs that are not settings of the object (how to reach it, whose it is): echoed into outputs.
    meta_keys: ClassVar[tuple[str, ...]] = ("connection",)
    replace_fields: ClassVar[frozenset[str]] = frozenset()  # settings that cannot change in place
    write_only: ClassVar[frozenset[str]] = frozenset()  # inputs never echoed into outputs (secrets)
    computed: ClassVar[tuple[str, ...]] = ()  # outputs the server computes
    # True where the unique key must be free first; the resource classes set the option from it.
    delete_before_replace: ClassVar[bool] = False
    meta_models: ClassVar[Mapping[str, type[BaseModel]]] = {}  # how `check` validates the meta inputs
    required_meta: ClassVar[tuple[str, ...]] = ("connection",)
    extra_inputs: ClassVar[tuple[str, ...]] = ()  # inputs that are neither settings nor meta
    failures_by_input: ClassVar[bool] = False  # report a failure on its top-level input (see validation_failures)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        """Offline: the meta inputs and the settings against their models, misspelt inputs named."""
        props = strip(news)
        failures: list[dynamic.CheckFailure] = []
        for key, model in self.meta_models.items():
            if key in self.required_meta or props.get(key) is not None:
                failures += validation_failures(model, props.get(key), key, by_input=self.failures_by_input)
        failures += validation_failures(self.args_model, self.settings(props), by_input=self.failures_by_input)
        failures += self.misspelt(props)
        return dynamic.CheckResult(self.checked(props), failures)

    def checked(self, props: dict[str, Any]) -> dict[str, Any]:
        """The inputs `check` returns (e.g. defaults filled in); default: as given."""
        return props

    def misspelt(self, props: Mapping[str, Any]) -> list[dynamic.CheckFailure]:
        """A misspelt input would otherwise be dropped silently and its default deployed."""
        fields = self.args_model.model_fields
        known = {*fields, *self.meta_keys, *self.extra_inputs, *self.computed}
        by_alias = {f.alias: name for name, f in fields.items() if f.alias and f.alias != name}
        failures = []
        for key in sorted(k for k in props if k not in known):  # named even when unset
            hint = f"; write it as {by_alias[key]}" if key in by_alias else f"; the inputs are {', '.join(fields)}"
            failures.append(dynamic.CheckFailure(key, f"{key} is not an input of this resource{hint}"))
        return failures

    @classmethod
    def settings(cls, props: Mapping[str, Any]) -> dict[str, Any]:
        """The props that are fields of the argument model and set."""
        return {k: v for k, v in props.items() if k in cls.args_model.model_fields and v is not None}

    def comparable(self, field: str, value: Any) -> Any:
        """The form of a stored or declared value that compares by meaning (default: as is)."""
        return value

    def changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """Changed settings and meta inputs, offline (`diff` and `update` agree on it)."""
        fields = [f for f in self.args_model.model_fields if f not in self.write_only and f not in self.meta_keys]
        return changed_fields([*fields, *self.meta_keys], olds, news, self.comparable)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        olds, news = strip(olds), strip(news)
        changed = self.changes(olds, news)
        replaces = sorted({f for f in changed if f in self.replace_fields} | set(self.extra_replaces(olds, news)))
        return dynamic.DiffResult(
            changes=bool(changed or replaces), replaces=replaces, delete_before_replace=self.delete_before_replace
        )

    def extra_replaces(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """Replacements a field-by-field comparison cannot see (default: none)."""
        return []


class OwnedProvider(Provider):
    """The CRUD around the object at the state's address, the same for every system; the system
    supplies the hooks that raise here. See docs/architecture.md#the-providers-one-kernel-three-systems."""

    connection_model: ClassVar[type[BaseModel]]
    api_error: ClassVar[type[ApiError]] = ApiError  # the system's error class (for `gone`)
    gone_where: ClassVar[str] = ""  # where the object was, in `gone`'s message
    mark_key: ClassVar[str] = "owner"  # the input whose recorded value is the state's ownership mark

    def connect(self, connection: Any) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def parse(self, props: Mapping[str, Any]) -> tuple[Any, Any, Any]:
        raise NotImplementedError

    def describe(self, props: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def fetch(self, client: Any, props: Mapping[str, Any], id_: str) -> Any | None:
        raise NotImplementedError

    def ownership(self, props: Mapping[str, Any], id_: str) -> OwnershipEncoder[Any, Any]:
        raise NotImplementedError

    def make(self, client: Any, spec: Any, props: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def read_outputs(self, client: Any, props: Mapping[str, Any], obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def write(self, client: Any, spec: Any, news: Mapping[str, Any], olds: Mapping[str, Any], current: Any,
              changed: set[str]) -> dict[str, Any]:
        raise NotImplementedError

    def remove(self, client: Any, props: Mapping[str, Any], id_: str) -> None:
        raise NotImplementedError

    def stored_connection(self, props: Mapping[str, Any]) -> Any:
        """The connection the state recorded (read and delete see only the state)."""
        return validated(self.connection_model, props.get("connection"), "connection")

    def state_marks(self, props: Mapping[str, Any]) -> list[Any]:
        """For read and delete, which see only the state: this process's stack (PULUMI_PROJECT/
        PULUMI_STACK) and the mark the state recorded."""
        return self.ownership(props, "").marks(environment_stack(), props.get(self.mark_key))

    def gone(self, id_: str, props: Mapping[str, Any]) -> Exception:
        return self.api_error(gone(self.describe(props), id_, self.gone_where), status=404, code="NOT_FOUND")

    def vanished(self, client: Any, spec: Any, news: Mapping[str, Any], id_: str) -> dict[str, Any]:
        """An update found nothing at the address: `gone` (a system may re-create it, returning the outputs)."""
        raise self.gone(id_, news)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        news = strip(props)
        spec, connection, _mark = self.parse(news)
        with self.connect(connection) as client:
            return dynamic.CreateResult(*self.make(client, spec, news))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        olds = strip(props)
        with self.connect(self.stored_connection(olds)) as client:
            obj = self.fetch(client, olds, id_)
            if obj is None or not self.ownership(olds, id_).owns(obj, self.state_marks(olds)):
                return dynamic.ReadResult(None, {})  # gone, another object holds the address, or not ours
            outs = self.read_outputs(client, olds, obj)
        return dynamic.ReadResult(id_, outs, self.refreshed_inputs(olds, outs))

    def refreshed_inputs(self, olds: Mapping[str, Any], outs: Mapping[str, Any]) -> dict[str, Any]:
        """The inputs a refresh records: the settings read back that are set."""
        return self.settings(outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        olds, news = strip(olds), strip(news)
        spec, connection, mark = self.parse(news)
        changed = set(self.changes(olds, news))
        if changed <= {"connection"}:
            # New credentials or URL only: nothing to send, but the state must carry them for later steps.
            return dynamic.UpdateResult({**olds, "connection": news.get("connection")})
        with self.connect(connection) as client:
            current = self.fetch(client, news, id_)
            if current is None:
                return dynamic.UpdateResult(self.vanished(client, spec, news, id_))
            ownership = self.ownership(news, id_)
            ownership.require("update", current, id_, ownership.marks(mark, olds.get(self.mark_key)))
            return dynamic.UpdateResult(self.write(client, spec, news, olds, current, changed))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        state = strip(props)
        with self.connect(self.stored_connection(state)) as client:
            current = self.fetch(client, state, id_)
            if current is not None:  # else already gone
                self.ownership(state, id_).require("delete", current, id_, self.state_marks(state))
                if not self.handed_over(current, state):
                    self.remove(client, state, id_)

    def handed_over(self, obj: Any, props: Mapping[str, Any]) -> bool:
        """Whether another resource of this stack took the object over since the state last saw it
        (made before this delete: a replacement, a renamed resource), so it is left to that one."""
        return False


# --- resource classes -----------------------------------------------------------------------------

_SERIALIZED: dict[type, str] = {}


def _provider_blob(provider: dynamic.ResourceProvider) -> str:
    """One serialization per stateless provider class (the bytes would be the same each time)."""
    kind = type(provider)
    if vars(provider):
        return _serialization.serialize_provider(provider)
    if kind not in _SERIALIZED:
        _SERIALIZED[kind] = _serialization.serialize_provider(provider)
    return _SERIALIZED[kind]


# Secret inputs made from an Output, by that Output: one Output handed to a thousand resources (a
# connection) is wrapped once, not once per resource (docs/architecture.md says what that saves).
_SECRETS: weakref.WeakKeyDictionary[pulumi.Output[Any], pulumi.Output[Any]] = weakref.WeakKeyDictionary()


def _secret(value: Any) -> pulumi.Output[Any]:
    if not isinstance(value, pulumi.Output):
        return pulumi.Output.secret(value)
    if value not in _SECRETS:
        _SECRETS[value] = pulumi.Output.secret(value)
    return _SECRETS[value]


def plain(value: Any) -> Any:
    """Pydantic models given as inputs (also inside dicts and lists) become plain snake_case values.
    A `SecretStr` is revealed only because the resource class makes what carries it secret."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Resource(dynamic.Resource):
    """A dynamic resource declared from its provider: `Kind(resource_name, *, <inputs>, opts=None)`,
    the inputs being the provider's argument-model fields and meta inputs less `program_inputs`
    (what the program fills in itself, e.g. the ownership mark). The attributes are the inputs given
    and `provider.computed` less `state_only` (outputs no program reads, kept in the state alone):
    each costs an Output (docs/architecture.md), so a default the provider's `check` fills in
    belongs there, not in `defaults` (what the constructor fills in for an input left out)."""

    provider: ClassVar[type[Provider]]
    program_inputs: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[Mapping[str, Any]] = {}
    secret_inputs: ClassVar[tuple[str, ...]] = ()
    secret_outputs: ClassVar[tuple[str, ...]] = ()
    # Inputs of which only the named keys are secret (the rest stays readable in the state's inputs);
    # given as one Output, the whole input is secret.
    secret_parts: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    state_only: ClassVar[frozenset[str]] = frozenset()
    _inputs: ClassVar[tuple[str, ...]] = ()
    _attributes: ClassVar[tuple[str, ...]] = ()
    _required: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "provider" not in cls.__dict__:
            return  # a system's shared base
        model = cls.provider.args_model
        names = [*model.model_fields, *(k for k in cls.provider.meta_keys if k not in model.model_fields)]
        cls._inputs = tuple(n for n in names if n not in cls.program_inputs)
        cls._attributes = tuple(n for n in cls.provider.computed if n not in cls.state_only)
        required = {n for n, f in model.model_fields.items() if f.is_required()} | {"connection"}
        cls._required = frozenset(required - set(cls.defaults) - set(cls.program_inputs))
        params = [inspect.Parameter("resource_name", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str)]
        for name in cls._inputs:
            default = inspect.Parameter.empty if name in cls._required else cls.defaults.get(name)
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
        params.append(inspect.Parameter("opts", inspect.Parameter.KEYWORD_ONLY, default=None))
        cls.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]

    def __init__(self, resource_name: str, *, opts: pulumi.ResourceOptions | None = None, **inputs: Any) -> None:
        kind = type(self).__name__
        unknown = sorted(set(inputs) - set(self._inputs))
        if unknown:
            raise TypeError(f"{kind}() got unexpected keyword arguments {unknown}; its inputs are {list(self._inputs)}")
        missing = sorted(k for k in self._required if inputs.get(k) is None)
        if missing:
            raise TypeError(f"{kind}() is missing the required keyword arguments {missing}")
        props: dict[str, Any] = {k: plain(v) for k, v in inputs.items() if v is not None}
        for key, value in self.defaults.items():
            props.setdefault(key, value)
        for key in self.secret_inputs:
            if props.get(key) is not None:
                props[key] = _secret(props[key])
        for key, parts in self.secret_parts.items():
            value = props.get(key)
            if isinstance(value, Mapping):
                kept = {k: v for k, v in value.items() if v is not None}
                props[key] = {k: pulumi.Output.secret(v) if k in parts else v for k, v in kept.items()}
            elif value is not None:
                props[key] = _secret(value)
        props = self.with_program_inputs(resource_name, props)
        for name in self._attributes:
            props.setdefault(name, None)  # what the server computes is an attribute of the resource
        # A forced replacement (`pulumi up --replace`) skips the provider's diff: only the option
        # makes it delete first, where the new object would otherwise adopt the old by its key.
        first = self.provider.delete_before_replace and (opts is None or opts.delete_before_replace is None)
        if self.secret_outputs or first:  # the SDK copies `opts` itself: a merge only to add something
            extra = pulumi.ResourceOptions(
                additional_secret_outputs=[*self.secret_outputs] or None, delete_before_replace=first or None
            )
            opts = pulumi.ResourceOptions.merge(opts, extra)
        props[PROVIDER_KEY] = _provider_blob(self.provider())
        # `dynamic.Resource.__init__` would serialize the provider again: register directly.
        pulumi.CustomResource.__init__(self, f"pulumi-python:{self._resource_type_name}", resource_name, props, opts)

    @classmethod
    def with_program_inputs(cls, resource_name: str, props: dict[str, Any]) -> dict[str, Any]:
        """`props` with what the program fills in itself (the system's ownership mark)."""
        return props
