"""Typed values of the SPIRE entry provider: the inputs under SPIRE's rules (`EntryArgs`, over
`stack_config/spiffe.py`), canonical forms, entry ids, the server's entry and the `connection`;
see docs/providers/spire.md (Check rules)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from dynamic_providers._kernel import contains_unknown, is_unknown, rule
from dynamic_providers.spire._proto import types_pb2

# The SPIFFE rules live in one module, shared with the stack configuration.
from stack_config import spiffe
from stack_config.spiffe import SPIFFE_SCHEME, DnsName, TrustDomain
from stack_config.systems import MAX_INT32, MAX_UNIX_SOCKET_PATH_BYTES  # the configuration's limits are SPIRE's

MAX_HINT_BYTES = 1024  # api.hintMaximumLength (Go len() counts bytes)
DEFAULT_SERVER_BINARY = "/opt/spire/bin/spire-server"

_OWNER_PART = re.compile(r"[^A-Za-z0-9_-]")
_DOCKER_HOST = re.compile(r"^(unix|ssh|tcp)://\S+$")


# --- canonical forms ---------------------------------------------------------------------------


def parse_selector(raw: str | Mapping[str, Any]) -> tuple[str, str]:
    """("type", "value") from "type:value" (split at the first ':', like the CLI) or {type, value}."""
    if isinstance(raw, Mapping):
        return str(raw.get("type", "")), str(raw.get("value", ""))
    type_, _, value = raw.partition(":")
    return type_, value


def owner_prefix(project: str, stack: str) -> str:
    """Entry-id prefix marking entries this Pulumi stack owns: `pulumi.<project>.<stack>.`.

    Dots separate the parts (the spire-controller-manager convention, so a manager configured
    with its own `entryIDPrefix` leaves these alone), so each part keeps only `[A-Za-z0-9_-]`.
    """
    parts = [_OWNER_PART.sub("-", p)[:64] or "-" for p in (project, stack)]
    return f"pulumi.{parts[0]}.{parts[1]}."


def entry_id_for(prefix: str, spiffe_id: str, parent_id: str, selectors: Iterable[str]) -> str:
    """The id this stack gives the entry with this triple, SPIRE's identity of an entry: derived, so a
    retried or re-run create finds the entry it made (docs/providers/spire.md, Ownership and ids)."""
    material = "\n".join([spiffe_id, parent_id, *sorted(set(selectors))])
    return prefix + hashlib.sha256(material.encode()).hexdigest()[:24]


# --- the inputs and their rules ------------------------------------------------------------------

_LISTS = ("selectors", "dns_names", "federates_with")


def _whole_seconds(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v != int(v):
        raise ValueError(f"must be a whole number of seconds, got {v!r}")
    if v < 0:
        raise ValueError(f"must be >= 0 (0 = the server's default TTL), got {v:g}")
    if v > MAX_INT32:
        raise ValueError(f"must be at most {MAX_INT32} (int32 seconds), got {v:g}")
    return int(v)


def _selector(raw: Any) -> str:
    """ "type:value", from the string or a {type, value} object, under SPIRE's selector rules."""
    if isinstance(raw, str) and ":" not in raw:
        raise ValueError(f"{raw!r} is not \"type:value\" (no ':')")
    if not isinstance(raw, str | Mapping):
        raise ValueError(f'must be a "type:value" string, got {raw!r}')
    problem = spiffe.selector_problem(*parse_selector(raw))
    if problem:
        raise ValueError(f"{raw!r}: selector {problem}")
    return ":".join(parse_selector(raw))


def _server_td(info: ValidationInfo) -> str | None:
    """The connection's trust domain, when the connection (validated first) is valid and known
    (the preview's unknown sentinel reads as a valid trust domain name)."""
    connection = info.data.get("connection")
    return None if connection is None or is_unknown(connection.trust_domain) else connection.trust_domain


def _peer(raw: str, info: ValidationInfo) -> str:
    """A `federates_with` item: a trust domain other than the server's, as its bare name."""
    name = raw.removeprefix(SPIFFE_SCHEME)  # as the server returns it
    if "/" in name:
        raise ValueError(
            f"{raw!r} must name a trust domain (other.org or spiffe://other.org), not a SPIFFE ID with a path"
        )
    problem = spiffe.trust_domain_problem(name)
    if problem:
        raise ValueError(f"{raw!r}: {problem}")
    if name == _server_td(info):
        raise ValueError(f"{raw!r} is the server's own trust domain; list peers only")
    return name


def _listed_once(key: Callable[[Any], str]) -> WrapValidator:
    """Each item listed once (compared by `key`), a repeat named by its own index even when other
    items of the list are broken (pydantic runs a list's own rules only on valid items)."""

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        seen: set[str] = set()
        repeats: list[InitErrorDetails] = []
        for i, item in enumerate(value if isinstance(value, list | tuple) else ()):
            if not isinstance(item, str | Mapping) or contains_unknown(item):
                continue
            try:
                k = key(item)
            except (TypeError, ValueError, AttributeError):
                continue
            if k in seen:
                repeats.append(_detail("repeated", f"{item!r} is listed more than once", (i,), item))
            seen.add(k)
        broken: list[InitErrorDetails] = []
        try:
            result = handler(value)
        except ValidationError as e:
            if not repeats:
                raise
            broken = [_detail(x["type"], x["msg"], x["loc"], x["input"]) for x in e.errors()]
        if repeats:
            raise ValidationError.from_exception_data("list", [*broken, *repeats]) from None
        return result

    return WrapValidator(check)


def _detail(kind: str, message: str, loc: tuple[int | str, ...], value: Any) -> InitErrorDetails:
    """An error with `message` as written (pydantic formats `{...}` in a custom error's message)."""
    return InitErrorDetails(type=PydanticCustomError(kind, message.replace("{", "{{")), loc=loc, input=value)


def _list(value: Any) -> Any:
    if value is not None and not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of strings, got {type(value).__name__}")
    return value or []


def _selectors(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError('at least one "type:value" selector is required')
    return value


Seconds = Annotated[int, BeforeValidator(_whole_seconds)]
Selectors = Annotated[
    tuple[Annotated[str, BeforeValidator(_selector)], ...],
    _listed_once(lambda s: ":".join(parse_selector(s))),
    BeforeValidator(_selectors),
]
DnsNames = Annotated[tuple[DnsName, ...], _listed_once(str), BeforeValidator(_list)]
Peers = Annotated[
    tuple[Annotated[StrictStr, AfterValidator(_peer)], ...],
    _listed_once(lambda td: td.removeprefix(SPIFFE_SCHEME)),
    BeforeValidator(_list),
]


class EntryFields(BaseModel):
    """The fields of a registration entry this provider manages, under SPIRE's rules; in a model
    with a `connection` (`EntryArgs`), the IDs must be members of its trust domain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spiffe_id: StrictStr = Field(description="SPIFFE ID of the workload (not under /spire)")
    parent_id: StrictStr = Field(description="SPIFFE ID of the agent or node the workload runs under")
    selectors: Selectors = Field(description='"type:value" strings or {type, value} objects')
    x509_svid_ttl: Seconds = Field(default=0, description="seconds; 0 = the server's default")
    jwt_svid_ttl: Seconds = Field(default=0, description="seconds; 0 = the server's default")
    dns_names: DnsNames = ()
    federates_with: Peers = Field(default=(), description="trust domains, with or without spiffe://")
    admin: StrictBool = False
    downstream: StrictBool = False
    hint: StrictStr = ""
    store_svid: StrictBool = False

    @field_validator("spiffe_id", "parent_id")
    @classmethod
    def _spiffe_id(cls, v: str, info: ValidationInfo) -> str:
        if not v:
            raise ValueError("required, a SPIFFE ID such as spiffe://example.org/ns/app")
        problem = spiffe.spiffe_id_problem(v, _server_td(info), workload=info.field_name == "spiffe_id")
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("hint")
    @classmethod
    def _hint(cls, v: str) -> str:
        if len(v.encode()) > MAX_HINT_BYTES:
            raise ValueError(f"at most {MAX_HINT_BYTES} bytes, got {len(v.encode())}")
        return v

    @model_validator(mode="after")
    def _svid_store(self) -> Self:
        types = sorted({parse_selector(s)[0] for s in self.selectors})
        if self.store_svid and len(types) > 1:
            raise rule("store_svid", f"needs all selectors of one type (SVIDStore export), got types {types}")
        return self

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> EntryFields:
        """From checked resource inputs or stored outputs (missing optional fields take defaults)."""
        return cls.model_validate({k: props[k] for k in MANAGED_FIELDS if props.get(k) is not None})

    def normalized(self) -> dict[str, Any]:
        """Order-insensitive comparison form: sorted lists; a TTL of 0 ("server default") stays 0, as
        the server stores it."""
        return {k: sorted(set(v)) if k in _LISTS else v for k, v in self.as_props().items()}

    def identity(self) -> tuple[str, str, frozenset[str]]:
        """SPIRE's "similar entry" key."""
        return self.spiffe_id, self.parent_id, frozenset(self.selectors)

    def as_props(self) -> dict[str, Any]:
        return {k: list(v) if k in _LISTS else v for k, v in self.model_dump(include=set(MANAGED_FIELDS)).items()}

    def to_proto(self, entry_id: str = "") -> types_pb2.Entry:
        ids: dict[str, Any] = {k: _spiffe_pb(getattr(self, k)) for k in ("spiffe_id", "parent_id")}
        selectors = [types_pb2.Selector(type=t, value=v) for t, v in map(parse_selector, self.selectors)]
        return types_pb2.Entry(id=entry_id, selectors=selectors, **ids, **self.model_dump(include=set(MUTABLE_FIELDS)))


IDENTITY_FIELDS = ("spiffe_id", "parent_id", "selectors")
MANAGED_FIELDS = tuple(EntryFields.model_fields)
# Written on update (with an explicit input mask on gRPC); changing the identity replaces the entry.
MUTABLE_FIELDS = tuple(k for k in MANAGED_FIELDS if k not in IDENTITY_FIELDS)


def _spiffe_pb(value: str) -> types_pb2.SPIFFEID:
    trust_domain, path = spiffe.split_spiffe_id(value)
    return types_pb2.SPIFFEID(trust_domain=trust_domain, path=path)


class Entry(EntryFields):
    """An entry as the server returned it, including the fields the provider does not manage
    (built without validation: a server's entry need not meet the rules for our inputs)."""

    id: str
    revision_number: int = 0
    created_at: int = 0
    expires_at: int = 0
    disable_x509_svid_prefetch: bool = False
    jwt_svid_include_jti: bool = False

    @classmethod
    def from_proto(cls, pb: types_pb2.Entry) -> Entry:
        values: dict[str, Any] = {k: getattr(pb, k) for k in ("id", "revision_number", "created_at", "expires_at")}
        values |= {k: tuple(getattr(pb, k)) if k in _LISTS else getattr(pb, k) for k in MUTABLE_FIELDS}
        attrs = pb.additional_attributes
        values |= {k: getattr(attrs, k) for k in ("disable_x509_svid_prefetch", "jwt_svid_include_jti")}
        return cls.model_construct(
            spiffe_id=f"{SPIFFE_SCHEME}{pb.spiffe_id.trust_domain}{pb.spiffe_id.path}",
            parent_id=f"{SPIFFE_SCHEME}{pb.parent_id.trust_domain}{pb.parent_id.path}",
            selectors=tuple(f"{s.type}:{s.value}" for s in pb.selectors),
            **values,
        )

    def fields(self) -> EntryFields:
        return EntryFields.model_construct(**{k: getattr(self, k) for k in MANAGED_FIELDS})


# --- the provider's connection input ----------------------------------------------------------


class _ConnectionBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    trust_domain: TrustDomain = Field(description="The SPIRE server's trust domain; entries must be members of it.")
    project: str = Field(min_length=1, description="Pulumi project: first part of the ownership prefix.")
    stack: str = Field(min_length=1, description="Pulumi stack: second part of the ownership prefix.")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600, description="Per-call deadline.")

    @property
    def owner_prefix(self) -> str:
        return owner_prefix(self.project, self.stack)


def _server_socket(v: str | None) -> str | None:
    if v is not None and not v.startswith("/"):
        raise ValueError(f"{v!r} must be an absolute path inside the server container")
    return v


ContainerSocket = Annotated[
    str | None,
    AfterValidator(_server_socket),
    Field(default=None, description="Admin socket inside the container (-socketPath)."),
]


class GrpcConnection(_ConnectionBase):
    """The Entry API over the server's admin Unix socket (local, or forwarded, e.g. `ssh -L`)."""

    transport: Literal["grpc"]
    socket_path: str = Field(
        description="Path of the admin API socket on the machine running Pulumi (`unix://` target form accepted)."
    )

    @field_validator("socket_path")
    @classmethod
    def _socket(cls, v: str) -> str:
        # gRPC's target forms `unix:///abs/path` and `unix:/abs/path` name the same socket.
        v = v.removeprefix("unix://") if v.startswith("unix:///") else v.removeprefix("unix:")
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must be an absolute path to the server's admin socket")
        if len(v.encode()) > MAX_UNIX_SOCKET_PATH_BYTES:
            raise ValueError(
                f"{v!r} is longer than {MAX_UNIX_SOCKET_PATH_BYTES} bytes, the Unix socket limit: "
                "forward the socket to a shorter path"
            )
        return v


class DockerExecConnection(_ConnectionBase):
    """`docker exec` of the `spire-server` CLI in the server container (DOCKER_HOST, ssh:// too)."""

    transport: Literal["docker-exec"]
    docker_host: str | None = Field(
        default=None,
        description="DOCKER_HOST of the server's node; None = the environment's DOCKER_HOST / docker context.",
    )
    container: str | None = Field(default=None, description="Container name or id of the SPIRE server.")
    service: str | None = Field(default=None, description="Swarm service; its running task on the node is used.")
    socket_path: ContainerSocket = None
    server_binary: str = Field(default=DEFAULT_SERVER_BINARY, description="spire-server path in the image.")

    @field_validator("docker_host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is not None and not _DOCKER_HOST.match(v):
            raise ValueError(f"{v!r} is not a Docker host URL: use ssh://user@host, tcp://host:port or unix:///path")
        return v

    @model_validator(mode="after")
    def _target(self) -> DockerExecConnection:
        if bool(self.container) == bool(self.service):
            raise ValueError("set exactly one of container (a container name) or service (a Swarm service name)")
        return self


class KubectlExecConnection(_ConnectionBase):
    """`kubectl exec` of the `spire-server` CLI in the server pod (helm chart defaults)."""

    transport: Literal["kubectl-exec"]
    namespace: str = Field(default="spire-server", min_length=1)
    pod: str = Field(default="spire-server-0", min_length=1, description="Pod, or TYPE/NAME such as sts/spire-server.")
    container: str = Field(default="spire-server", min_length=1)
    context: str | None = Field(default=None, description="kubeconfig context; None = the current one.")
    kubeconfig: str | None = Field(default=None, description="kubeconfig path; None = kubectl's default.")
    socket_path: ContainerSocket = None
    server_binary: str = Field(default=DEFAULT_SERVER_BINARY)


Connection = Annotated[GrpcConnection | DockerExecConnection | KubectlExecConnection, Field(discriminator="transport")]
CONNECTION = TypeAdapter(Connection)


def parse_connection(raw: Mapping[str, Any]) -> GrpcConnection | DockerExecConnection | KubectlExecConnection:
    """Validate a `connection` input; raises pydantic.ValidationError."""
    return CONNECTION.validate_python(dict(raw))


class _Connected(BaseModel):
    connection: Connection


class EntryArgs(EntryFields, _Connected):
    """A `SpireEntry`'s inputs as `check` validates them: the connection first (a base listed last
    comes first), so the other fields' rules can read its trust domain."""
