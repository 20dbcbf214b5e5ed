"""Pulumi dynamic providers and resources for OpenZiti entities (Edge Management API).

One provider class per entity type, sharing one CRUD contract (`_ZitiProvider`):

- `check` applies the controller's validation rules (models.py) with no network; values still
  unknown in a preview are skipped.
- `diff` compares canonical inputs (defaults filled, role lists order-insensitive, PEM compared
  by certificate) with the stored outputs, with no network. Fields the server cannot change in
  place are `replaces` with delete-before-replace, because names (and CA fingerprints) are
  unique on the controller.
- `create` POSTs once. A lost answer (timeout, reset, 5xx, 429) is followed by a lookup by name
  before posting again; a 400 "duplicate value" adopts the existing entity only if it carries
  this resource's ownership tags (`pulumi.stack`, `pulumi.name`), otherwise it fails and says
  which entity is in the way. Adoption PATCHes the entity to the declared state. Without any
  ownership (no `owner` input, no PULUMI_PROJECT/PULUMI_STACK) the provider checks the name is
  free before posting, so it can still take the entity its own lost POST created.
- `update` GETs the entity and checks it is ours (below), PATCHes only the changed fields, then
  GETs (the controller answers updates with an empty envelope) and returns the full outputs.
- `delete` GETs and checks the same way, then DELETEs; an entity already gone (404) is done.
- `read` returns `ReadResult(id, outs, inputs)` from the server's entity, or an empty id when it
  is gone or no longer ours (its tags name another stack or resource, or none): a refresh then
  drops it from the state, and the next `up` plans a create, which refuses it as foreign if it
  holds the name, or creates this resource anew.
- `diff` never raises: a stored value it cannot compare (older or damaged state) counts as
  changed, so it plans an update, or a replacement for a field that cannot change in place.

Ownership on every write (`dynamic_providers/_ownership.py`): update and delete address the
entity by the id in the state (a GET answered about another id is refused by the client) and
write only if its tags carry this resource's ownership: the `owner` the state recorded or, on
update, the new one (a resource renamed through an alias), or on delete without a recorded owner,
this stack from PULUMI_PROJECT/PULUMI_STACK. An entity taken over through `import_id` got our tags
at create, so it is ours. Anything else is refused untouched with `ForeignObjectError`, naming the
entity, its id, the tags it carries and the tags that hand it over.

Providers hold no state: the connection (URL, admin credentials, CA) travels as the `connection`
input and is echoed in the outputs under the same key, so the engine keeps it secret and `read`
/ `delete` can reach the controller. A client is built inside every call.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import NameOID
from pulumi import dynamic
from pydantic import BaseModel, SecretStr, ValidationError

from dynamic_providers._ownership import refusal
from dynamic_providers.ziti.client import ZitiApiError, ZitiClient
from dynamic_providers.ziti.models import (
    OWNER_NAME_TAG,
    OWNER_STACK_TAG,
    AuthPolicyArgs,
    CertificateAuthorityArgs,
    EdgeRouterArgs,
    EdgeRouterPolicyArgs,
    ExternalIdClaim,
    ExternalJwtSignerArgs,
    IdentityArgs,
    Ownership,
    ServiceEdgeRouterPolicyArgs,
    ServicePolicyArgs,
    ZitiConnection,
    contains_unknown,
    first_pem_certificate,
    from_api,
    is_unknown,
    load_private_key,
    nested_model,
    sha1_fingerprint,
)

PROVIDER_KEY = "__provider"
META_KEYS = ("connection", "owner")
# The id of an existing entity the operator hands to this resource (`identity-platform:imports`):
# create takes it over instead of posting. Not a setting of the entity: never a diff.
IMPORT_KEY = "import_id"
# Lists whose order the controller does not care about: compared as sets, so reordering is no diff.
SET_FIELDS = frozenset(
    {
        "identity_roles",
        "role_attributes",
        "service_roles",
        "edge_router_roles",
        "posture_check_roles",
        "allowed_signers",
        "scopes",
    }
)
MAX_CREATE_ATTEMPTS = 4
VERIFICATION_CERT_VALIDITY = datetime.timedelta(minutes=10)


# --- helpers shared by every provider ---------------------------------------------------------------


def _strip(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def _value_at(value: Any, loc: Sequence[int | str]) -> tuple[bool, Any]:
    """Walk `loc` into `value`; (True, _) as soon as an unknown is met on the way."""
    current = value
    for part in loc:
        if is_unknown(current):
            return True, current
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list | tuple) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            return False, None
    return is_unknown(current), current


def _reason(err: Mapping[str, Any], path: str) -> str:
    """The failure text. The engine prints it after the property name (and that property's value
    when it is a top-level input), so it does not repeat the path, and never quotes the value."""
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if err["type"] == "missing":
        return f"{path} is required"
    if err["type"] == "extra_forbidden":
        return f"{path} is not an input of this resource (check the spelling)"
    return msg


def validation_failures(model: type[BaseModel], value: Any, prefix: str = "") -> list[dynamic.CheckFailure]:
    """Check `value` against `model` and name each failure by its property path (never its value,
    which may be a secret). Failures that involve a value unknown in this preview are dropped."""
    if is_unknown(value):
        return []
    if value is None:
        return [dynamic.CheckFailure(prefix or "inputs", f"{prefix} is required")]
    try:
        model.model_validate(value)
    except ValidationError as e:
        failures = []
        for err in e.errors():
            loc: list[int | str] = list(err["loc"])
            unknown, _ = _value_at(value, loc)
            if unknown:
                continue
            ctx = err.get("ctx") or {}
            if "field" in ctx:
                loc.append(str(ctx["field"]))
                unknown, _ = _value_at(value, loc)
                if unknown:
                    continue
            path = ".".join(str(p) for p in ([prefix] if prefix else []) + loc) or prefix or "inputs"
            failures.append(dynamic.CheckFailure(path, _reason(err, path)))
        return failures
    return []


def _default(field: Any) -> Any:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump()
    return value


def canonical(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with defaults filled in, "" and None read as "not set", camelCase keys read as
    their snake_case field, nested models recursed and order-insensitive lists sorted, so equal
    configurations compare equal. No validation."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        value = values.get(name)
        if value is None and field.alias:
            value = values.get(field.alias)  # nested blocks may be written in the API's camelCase
        if field.is_required():
            if value is None:
                continue
            default = None
        else:
            default = _default(field)
        if value is None or (value == "" and default is None):
            value = default
        nested = nested_model(field.annotation)
        if nested is not None and isinstance(value, Mapping) and not is_unknown(value):
            value = canonical(nested, value)
        if name in SET_FIELDS and isinstance(value, list) and not contains_unknown(value):
            try:
                value = sorted(value)
            except TypeError:
                pass  # mixed types (refused by check; in old state, a diff): compared as given
        out[name] = value
    return out


def _differs(old: Any, new: Any) -> bool:
    return contains_unknown(new) or old != new


def _fail(model: type[BaseModel], value: Any, what: str) -> None:
    failures = validation_failures(model, value, what)
    if failures:
        raise ValueError("; ".join(f"{f.property}: {f.reason}" for f in failures))


def _connection(props: Mapping[str, Any]) -> ZitiConnection:
    """The connection from the state. `read`/`delete` get only outputs: one written without it
    (e.g. an import) gets a clear message, not a KeyError."""
    _fail(ZitiConnection, props.get("connection"), "connection")
    return ZitiConnection.model_validate(props["connection"])


def verification_certificate(ca_cert_pem: str, ca_key_pem: str, token: str) -> str:
    """The proof of key possession the controller wants: CN = the CA's verificationToken, signed
    directly by the CA key (no intermediate: the controller verifies with the CA as the only root)."""
    ca_cert = first_pem_certificate(ca_cert_pem)
    ca_key = load_private_key(ca_key_pem)
    now = datetime.datetime.now(datetime.UTC)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pulumi ZitiCertificateAuthority verification"),
                    x509.NameAttribute(NameOID.COMMON_NAME, token),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - VERIFICATION_CERT_VALIDITY)
        .not_valid_after(now + VERIFICATION_CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(aki, critical=False)
    )
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    cert = builder.sign(ca_key, algorithm)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _ownerships(*candidates: Any) -> list[Ownership]:
    """The valid ownerships among `candidates` (dicts from the state, or parsed ones), no repeats."""
    out: list[Ownership] = []
    for c in candidates:
        if c is None:
            continue
        try:
            parsed = c if isinstance(c, Ownership) else Ownership.model_validate(c)
        except ValidationError:
            continue  # a damaged `owner` in old state proves nothing
        if parsed not in out:
            out.append(parsed)
    return out


def _state_ownerships(props: Mapping[str, Any]) -> list[Ownership]:
    """For read and delete, which see only the state: the `owner` it recorded (the input, echoed),
    else this stack from the host's PULUMI_PROJECT/PULUMI_STACK."""
    return _ownerships(props.get("owner")) or _ownerships(Ownership.from_environment())


def _owned(tags: Any, owners: Sequence[Ownership]) -> bool:
    """Whether an entity with these tags is ours. With no ownership at all (a provider driven with
    no `owner` and no PULUMI_PROJECT/PULUMI_STACK) only an entity no stack has tagged is."""
    tags = tags if isinstance(tags, dict) else {}
    if not owners:
        return OWNER_STACK_TAG not in tags
    return any(o.owns(tags) for o in owners)


def _owner_text(owner: Ownership | None) -> str:
    if owner is None:
        return "unknown (no owner input and no PULUMI_PROJECT/PULUMI_STACK)"
    return f"stack {owner.stack!r}, resource {owner.name!r}" if owner.name else f"stack {owner.stack!r}"


# --- the shared CRUD contract ---------------------------------------------------------------------


class _ZitiProvider(dynamic.ResourceProvider):
    collection: ClassVar[str]
    label: ClassVar[str]
    args_model: ClassVar[type[Any]]
    replace_fields: ClassVar[frozenset[str]] = frozenset()
    write_only: ClassVar[frozenset[str]] = frozenset()  # inputs never echoed into outputs (secrets)
    computed: ClassVar[tuple[str, ...]] = ()  # outputs the server computes

    # -- preview-time methods: no network --

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        props = _strip(news)
        failures = validation_failures(ZitiConnection, props.get("connection"), "connection")
        if props.get("owner") is not None:
            failures += validation_failures(Ownership, props["owner"], "owner")
        failures += validation_failures(self.args_model, self._args_props(props))
        failures += self._unknown_inputs(props)
        inputs = {**props, **canonical(self.args_model, self._args_props(props))}
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        olds, news = _strip(olds), _strip(news)
        old_c = canonical(self.args_model, self._args_props(olds))
        new_c = canonical(self.args_model, self._args_props(news))
        changed = self._changed_fields(old_c, new_c)
        changed += [k for k in META_KEYS if _differs(olds.get(k), news.get(k))]
        changed += self._extra_changes(olds, news)
        replaces = [f for f in changed if f in self.replace_fields] + self._replaces(old_c, new_c)
        return dynamic.DiffResult(
            changes=bool(changed or replaces),
            replaces=sorted(set(replaces)),
            delete_before_replace=True,
        )

    # -- engine-time methods --

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        args, conn, owner = self._parse(props)
        with ZitiClient(conn) as c:
            id_, created = self._obtain(c, props, args, owner)
            detail = self._after_create(c, id_, args, created)
            outs = self._outs(c, detail, props, {})
        return dynamic.CreateResult(id_, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        props = _strip(props)
        conn = _connection(props)
        with ZitiClient(conn) as c:
            detail = c.get_or_none(self.collection, id_)
            if detail is None or not _owned(detail.get("tags"), _state_ownerships(props)):
                return dynamic.ReadResult(None, {})  # gone, or no longer ours: refresh forgets it
            outs = self._outs(c, detail, props, props)
        inputs = {k: outs[k] for k in self.args_model.model_fields if k in outs}
        inputs.update({k: props[k] for k in META_KEYS if k in props})
        return dynamic.ReadResult(id_, outs, inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        olds, news = _strip(olds), _strip(news)
        args, conn, owner = self._parse(news)
        old_c = canonical(self.args_model, self._args_props(olds))
        new_c = canonical(self.args_model, self._args_props(news))
        changed = self._changed_fields(old_c, new_c)
        full = args.api_body(owner, create=False)
        aliases = {f: self.args_model.model_fields[f].alias or f for f in changed}
        body = {aliases[f]: full[aliases[f]] for f in changed if aliases[f] in full}
        if olds.get("owner") != news.get("owner") or "tags" in changed:
            body["tags"] = full["tags"]
        with ZitiClient(conn) as c:
            if self._require_ours(c, id_, "update", _ownerships(owner, olds.get("owner"))) is None:
                raise ZitiApiError(
                    f"{self.label} {args.name!r} (id {id_}) no longer exists on the controller (deleted outside "
                    "Pulumi): run `pulumi refresh` to drop it from the state, then `pulumi up` creates it again",
                    status=404,
                    code="NOT_FOUND",
                )
            if body:
                self._write(c, id_, body, full)
            detail = self._after_update(c, id_, args)
            outs = self._outs(c, detail, news, olds)
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        props = _strip(props)
        conn = _connection(props)
        with ZitiClient(conn) as c:
            if self._require_ours(c, id_, "delete", _state_ownerships(props)) is not None:
                c.delete(self.collection, id_)

    # -- ownership --

    def _changed_fields(self, old_c: Mapping[str, Any], new_c: Mapping[str, Any]) -> list[str]:
        """Fields whose comparable forms differ; one that cannot be compared (older or damaged state) differs."""
        changed = []
        for f in self.args_model.model_fields:
            if f in self.write_only:
                continue
            try:
                differs = _differs(self._comparable(f, old_c.get(f)), self._comparable(f, new_c.get(f)))
            except (TypeError, ValueError, AttributeError, KeyError):
                differs = True
            if differs:
                changed.append(f)
        return changed

    def _require_ours(self, c: ZitiClient, id_: str, action: str, owners: Sequence[Ownership]) -> dict[str, Any] | None:
        """The entity at `id_` if it is this resource's; None when it is gone. One that carries no
        ownership tags of ours is refused before anything is written (`_ownership.py`)."""
        current = c.get_or_none(self.collection, id_)
        if current is None or _owned(current.get("tags"), owners):
            return current
        tags = current.get("tags") or {}
        holder = (
            f"its tags name stack {tags[OWNER_STACK_TAG]!r}, resource {tags.get(OWNER_NAME_TAG)!r}"
            if OWNER_STACK_TAG in tags
            else "it carries no Pulumi ownership tags (created or re-tagged outside this program)"
        )
        ours = owners[0] if owners else None
        wanted = json.dumps(ours.tags() if ours is not None else {OWNER_STACK_TAG: "<project>/<stack>"})
        raise refusal(
            action,
            f"Ziti {self.label} {current.get('name')!r}",
            id_,
            "it is not managed by this resource",
            f"{holder}; this resource is {_owner_text(ours)}",
            f"add the tags {wanted} to it (PATCH /edge/management/v1/{self.collection}/{id_} with "
            '{"tags": {...}}, keeping its other tags), then run the same Pulumi command again',
        )

    def _unknown_inputs(self, props: Mapping[str, Any]) -> list[dynamic.CheckFailure]:
        """A misspelt input would otherwise be dropped silently and its default deployed."""
        fields = self.args_model.model_fields
        known = {*fields, *META_KEYS, IMPORT_KEY, *self.computed}
        by_alias = {f.alias: name for name, f in fields.items() if f.alias and f.alias != name}
        failures = []
        for key in sorted(k for k, v in props.items() if k not in known and v is not None):
            hint = f"; write it as {by_alias[key]}" if key in by_alias else f"; the inputs are {', '.join(fields)}"
            failures.append(dynamic.CheckFailure(key, f"{key} is not an input of this resource{hint}"))
        return failures

    # -- pieces subclasses adjust --

    def _args_props(self, props: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in props.items() if k in self.args_model.model_fields and v is not None}

    def _parse(self, props: Mapping[str, Any]) -> tuple[Any, ZitiConnection, Ownership | None]:
        props = _strip(props)
        _fail(ZitiConnection, props.get("connection"), "connection")
        if props.get("owner") is not None:
            _fail(Ownership, props["owner"], "owner")
        _fail(self.args_model, self._args_props(props), "")
        owner = (
            Ownership.model_validate(props["owner"]) if props.get("owner") is not None else Ownership.from_environment()
        )
        return (
            self.args_model.model_validate(self._args_props(props)),
            ZitiConnection.model_validate(props["connection"]),
            owner,
        )

    def _comparable(self, field: str, value: Any) -> Any:
        return value

    def _replaces(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        return []

    def _extra_changes(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        return []

    def _find_existing(self, c: ZitiClient, args: Any, err: ZitiApiError | None) -> dict[str, Any] | None:
        return c.find_by_name(self.collection, args.name)

    def _check_adoptable(self, existing: dict[str, Any], args: Any) -> None:
        return None

    def _create_or_adopt(self, c: ZitiClient, args: Any, owner: Ownership | None) -> tuple[str, bool]:
        """(id, created): POST once; after an uncertain failure look up before posting again."""
        body = args.api_body(owner, create=True)
        # Without ownership no tag marks what this call creates. If the name is free before the first
        # POST, an entity that holds it after a lost answer can only be that POST's.
        free_before = owner is None and self._find_existing(c, args, None) is None
        uncertain = False
        for attempt in range(1, MAX_CREATE_ATTEMPTS + 1):
            try:
                return c.create(self.collection, body), True
            except ZitiApiError as e:
                if e.is_duplicate:
                    existing = self._find_existing(c, args, e)
                    if existing is not None and free_before and uncertain:
                        return self._adopt_own_post(existing, args), True
                    if existing is None:
                        raise ZitiApiError(
                            f"the controller refused to create {self.label} {args.name!r} because another entity "
                            f"already holds a unique value ({e})",
                            method=e.method,
                            path=e.path,
                            status=e.status,
                            code=e.code,
                            cause=e.cause,
                        ) from e
                    return self._adopt(c, existing, args, owner, e), False
                if not e.retryable or attempt == MAX_CREATE_ATTEMPTS:
                    raise
                uncertain = True
                c.pause(attempt, e.retry_after)
                existing = self._find_existing(c, args, None)
                if existing is not None and free_before:
                    return self._adopt_own_post(existing, args), True
                if existing is not None:
                    # The lost POST did land (or an earlier run's did): adopt it rather than duplicate.
                    return self._adopt(c, existing, args, owner, e), False
        raise AssertionError("unreachable")

    def _obtain(self, c: ZitiClient, props: Mapping[str, Any], args: Any, owner: Ownership | None) -> tuple[str, bool]:
        """(id, created): the entity the operator handed over (`import_id`), or a new one."""
        import_id = props.get(IMPORT_KEY)
        if import_id:
            return self._take_over(c, str(import_id), args, owner), False
        return self._create_or_adopt(c, args, owner)

    def _take_over(self, c: ZitiClient, id_: str, args: Any, owner: Ownership | None) -> str:
        """The entity the operator named by id becomes this resource: its ownership tags and the
        declared settings are written. One that another stack owns stays untouched."""
        existing = c.get_or_none(self.collection, id_)
        if existing is None:
            raise ValueError(
                f"import: no {self.label} with id {id_!r} on the controller: check the id in identity-platform:imports "
                "(`ziti edge list` shows it)"
            )
        tags = existing.get("tags") or {}
        if OWNER_STACK_TAG in tags and (owner is None or not owner.owns(tags)):
            raise ValueError(
                f"import: {self.label} {existing.get('name')!r} (id {id_}) belongs to stack {tags[OWNER_STACK_TAG]!r}, "
                f"resource {tags.get(OWNER_NAME_TAG)!r}: remove it from that stack first"
            )
        self._check_adoptable(existing, args)
        full = args.api_body(owner, create=False)
        self._write(c, id_, full, full)
        return id_

    def _adopt_own_post(self, existing: dict[str, Any], args: Any) -> str:
        """The entity a lost POST of this very call created (already in the declared state)."""
        self._check_adoptable(existing, args)
        return str(existing["id"])

    def _adopt(
        self, c: ZitiClient, existing: dict[str, Any], args: Any, owner: Ownership | None, err: ZitiApiError
    ) -> str:
        tags = existing.get("tags") or {}
        if owner is None or not owner.owns(tags):
            holder = (
                f"stack {tags[OWNER_STACK_TAG]!r}, resource {tags.get(OWNER_NAME_TAG)!r}"
                if OWNER_STACK_TAG in tags
                else "no Pulumi ownership tags: created outside this program"
            )
            fix = (
                f"or tag it with {OWNER_STACK_TAG}={owner.stack!r} and {OWNER_NAME_TAG}={owner.name!r} to let Pulumi "
                "adopt it"
                if owner is not None
                else "(this provider call carries no ownership, so it adopts nothing)"
            )
            raise ZitiApiError(
                f"{self.label} {existing.get('name')!r} (id {existing.get('id')}) already exists and is not owned by "
                f"this resource ({holder}). Rename the resource, delete the existing entity, {fix}",
                method=err.method,
                path=err.path,
                status=err.status,
                code=err.code,
                cause=err.cause,
            ) from err
        self._check_adoptable(existing, args)
        id_ = str(existing["id"])
        full = args.api_body(owner, create=False)
        self._write(c, id_, full, full)
        return id_

    def _write(self, c: ZitiClient, id_: str, body: dict[str, Any], full: dict[str, Any]) -> None:
        """Send the changed fields `body` (`full`: every field as declared)."""
        c.patch(self.collection, id_, body)

    def _after_create(self, c: ZitiClient, id_: str, args: Any, created: bool) -> dict[str, Any]:
        return c.get(self.collection, id_)

    def _after_update(self, c: ZitiClient, id_: str, args: Any) -> dict[str, Any]:
        return c.get(self.collection, id_)

    def _detail_fields(self, detail: dict[str, Any]) -> dict[str, Any]:
        return from_api(self.args_model, detail)

    def _computed_outs(self, c: ZitiClient, detail: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def _outs(
        self, c: ZitiClient, detail: dict[str, Any], props: Mapping[str, Any], previous: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Outputs from the server's entity (not an echo of the inputs), plus connection and owner."""
        fields = self._detail_fields(detail)
        for name in self.write_only:
            fields.pop(name, None)
        tags = detail.get("tags") or {}
        fields["tags"] = {k: v for k, v in tags.items() if k not in (OWNER_STACK_TAG, OWNER_NAME_TAG)}
        outs = canonical(self.args_model, fields)
        for name in self.write_only:
            outs.pop(name, None)
        outs.update(self._computed_outs(c, detail, previous))
        outs.update({k: props[k] for k in META_KEYS if k in props})
        return outs


# --- certificate authorities --------------------------------------------------------------------------


class CertificateAuthorityProvider(_ZitiProvider):
    """Registers a third-party CA and verifies it with the CA key (create: POST, GET, POST verify, GET)."""

    collection = "cas"
    label = "CA"
    args_model = CertificateAuthorityArgs
    replace_fields = frozenset({"cert_pem"})
    write_only = frozenset({"ca_key_pem"})
    computed = ("fingerprint", "is_verified", "enrollment_jwt")

    def _comparable(self, field: str, value: Any) -> Any:
        if field == "cert_pem" and isinstance(value, str) and not is_unknown(value):
            try:  # the controller keeps the PEM text; what identifies the CA is its certificate
                return sha1_fingerprint(first_pem_certificate(value))
            except ValueError:
                return value.strip()
        return value

    def _write(self, c: ZitiClient, id_: str, body: dict[str, Any], full: dict[str, Any]) -> None:
        # The controller (1.7.2, found against the real one) drops `externalIdClaim.parserCriteria`
        # from a PATCH: its store names the field `externalIdClaim.parserSeparator`, so the PATCH's
        # field list never matches it. A PUT applies every updatable field, so a claim goes by PUT
        # with everything as declared (tags included: PUT clears what it omits).
        if "externalIdClaim" in body:
            c.put(self.collection, id_, full)
        else:
            c.patch(self.collection, id_, body)

    def _replaces(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        # A claim cannot be removed by PATCH (an empty claim is ignored): remove it by re-creating.
        if old.get("external_id_claim") is not None and new.get("external_id_claim") is None:
            return ["external_id_claim"]
        return []

    def _find_existing(self, c: ZitiClient, args: Any, err: ZitiApiError | None) -> dict[str, Any] | None:
        found = c.find_by_name(self.collection, args.name)
        if found is None:
            fingerprint = sha1_fingerprint(first_pem_certificate(args.cert_pem))
            same_cert = c.find(self.collection, "fingerprint", fingerprint)
            found = same_cert[0] if same_cert else None
        return found

    def _check_adoptable(self, existing: dict[str, Any], args: Any) -> None:
        fingerprint = sha1_fingerprint(first_pem_certificate(args.cert_pem))
        if existing.get("fingerprint") != fingerprint:
            raise ZitiApiError(
                f"CA {existing.get('name')!r} (id {existing.get('id')}) is owned by this resource but registers a "
                f"different certificate (fingerprint {existing.get('fingerprint')}, expected {fingerprint}); "
                "certPem cannot be changed in place: delete that CA, then run `pulumi up` again",
                code="CERTIFICATE_MISMATCH",
            )

    def _ensure_verified(self, c: ZitiClient, id_: str, args: CertificateAuthorityArgs) -> dict[str, Any]:
        detail = c.get(self.collection, id_)
        if detail.get("isVerified"):
            return detail
        token = detail.get("verificationToken")
        if not token:
            raise ZitiApiError(f"CA {id_} is unverified and has no verificationToken", code="NO_VERIFICATION_TOKEN")
        pem = verification_certificate(args.cert_pem, args.ca_key_pem.get_secret_value(), str(token))
        c.verify_ca(id_, pem)
        detail = c.get(self.collection, id_)
        if not detail.get("isVerified"):
            raise ZitiApiError(
                f"the controller accepted the verification certificate but CA {id_} still reports isVerified=false",
                code="NOT_VERIFIED",
            )
        return detail

    def _after_create(self, c: ZitiClient, id_: str, args: Any, created: bool) -> dict[str, Any]:
        try:
            return self._ensure_verified(c, id_, args)
        except ZitiApiError as e:
            if not created:
                raise
            # Never leave an unverified CA behind that no state records: remove it, then report.
            try:
                c.delete(self.collection, id_)
                fate = "the unverified CA was deleted again"
            except ZitiApiError as cleanup:
                fate = f"the unverified CA {id_} could not be deleted ({cleanup}); the next `pulumi up` adopts it"
            raise ZitiApiError(
                f"verification of CA {args.name!r} failed ({e.code}: {e.args[0]}); {fate}",
                method=e.method,
                path=e.path,
                status=e.status,
                code=e.code,
                cause=e.cause,
                cause_message=e.cause_message,
            ) from e

    def _after_update(self, c: ZitiClient, id_: str, args: Any) -> dict[str, Any]:
        return self._ensure_verified(c, id_, args)

    def _computed_outs(self, c: ZitiClient, detail: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "fingerprint": detail.get("fingerprint"),
            "is_verified": bool(detail.get("isVerified")),
            "enrollment_jwt": c.ca_jwt(str(detail["id"])),
        }


# --- the other entities ---------------------------------------------------------------------------------


class ExternalJwtSignerProvider(_ZitiProvider):
    collection = "external-jwt-signers"
    label = "external JWT signer"
    args_model = ExternalJwtSignerArgs

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        # The controller (1.7.2, found against the real one) drops `tags` from a signer's create
        # (MapCreateExternalJwtSignerToModel does not map them); PATCH keeps them. So the ownership
        # mark is PATCHed right after the POST. A crash between the two leaves an untagged signer,
        # which the next `up` refuses as foreign (never adopts): delete it and run again.
        args, conn, owner = self._parse(props)
        with ZitiClient(conn) as c:
            id_, _ = self._obtain(c, props, args, owner)
            detail = c.get(self.collection, id_)
            wanted = args.api_body(owner, create=False)["tags"]
            if (detail.get("tags") or {}) != wanted:
                c.patch(self.collection, id_, {"tags": wanted})
                detail = c.get(self.collection, id_)
            outs = self._outs(c, detail, props, {})
        return dynamic.CreateResult(id_, outs)

    def _comparable(self, field: str, value: Any) -> Any:
        if field == "cert_pem" and isinstance(value, str) and not is_unknown(value):
            return value.strip()
        return value


class AuthPolicyProvider(_ZitiProvider):
    collection = "auth-policies"
    label = "auth policy"
    args_model = AuthPolicyArgs

    def _write(self, c: ZitiClient, id_: str, body: dict[str, Any], full: dict[str, Any]) -> None:
        # The controller (1.7.2, found against the real one) ignores `primary.updb.minPasswordLength`
        # in a PATCH (PUT applies it), so a changed primary block goes by PUT with everything declared.
        if "primary" in body:
            c.put(self.collection, id_, full)
        else:
            c.patch(self.collection, id_, body)


class IdentityProvider(_ZitiProvider):
    collection = "identities"
    label = "identity"
    args_model = IdentityArgs

    def _detail_fields(self, detail: dict[str, Any]) -> dict[str, Any]:
        fields = from_api(self.args_model, detail)
        type_ = detail.get("typeId") or (detail.get("type") or {}).get("name")
        if type_:
            fields["type"] = type_
        return fields


class EdgeRouterProvider(_ZitiProvider):
    """Edge routers enroll with their one-time JWT (routers cannot enroll with a third-party CA)."""

    collection = "edge-routers"
    label = "edge router"
    args_model = EdgeRouterArgs
    computed = ("enrollment_jwt", "enrollment_expires_at", "is_verified")

    @staticmethod
    def _expired(outs: Mapping[str, Any]) -> bool:
        expires = outs.get("enrollment_expires_at")
        if outs.get("is_verified") or not isinstance(expires, str) or is_unknown(expires):
            return False
        try:
            when = datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            return False
        return when <= datetime.datetime.now(datetime.UTC)

    def _extra_changes(self, olds: dict[str, Any], news: dict[str, Any]) -> list[str]:
        # An unenrolled router whose JWT has expired needs a new one: `update` re-enrolls it.
        return ["enrollment_jwt"] if self._expired(olds) else []

    def _after_update(self, c: ZitiClient, id_: str, args: Any) -> dict[str, Any]:
        detail = c.get(self.collection, id_)
        outs = {
            "is_verified": detail.get("isVerified"),
            "enrollment_expires_at": detail.get("enrollmentExpiresAt"),
        }
        if self._expired(outs):
            c.re_enroll_edge_router(id_)
            detail = c.get(self.collection, id_)
        return detail

    def _computed_outs(self, c: ZitiClient, detail: dict[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
        jwt = detail.get("enrollmentJwt")
        if not jwt and detail.get("isVerified"):
            jwt = previous.get("enrollment_jwt")  # enrolled: keep the used token so dependents do not churn
        return {
            "enrollment_jwt": jwt,
            "enrollment_expires_at": detail.get("enrollmentExpiresAt"),
            "is_verified": bool(detail.get("isVerified")),
        }


class ServicePolicyProvider(_ZitiProvider):
    collection = "service-policies"
    label = "service policy"
    args_model = ServicePolicyArgs


class EdgeRouterPolicyProvider(_ZitiProvider):
    collection = "edge-router-policies"
    label = "edge router policy"
    args_model = EdgeRouterPolicyArgs


class ServiceEdgeRouterPolicyProvider(_ZitiProvider):
    collection = "service-edge-router-policies"
    label = "service edge router policy"
    args_model = ServiceEdgeRouterPolicyArgs


# --- resources ------------------------------------------------------------------------------------------

Connection = pulumi.Input[Mapping[str, Any]]


def _owner(resource_name: str) -> dict[str, str]:
    return {"stack": f"{pulumi.get_project()}/{pulumi.get_stack()}", "name": resource_name}


def _dump(value: Any) -> Any:
    """Pydantic models given as inputs (a `ZitiConnection`, an `AuthPolicyPrimary`, also inside
    dicts and lists) become plain snake_case values. A `SecretStr` is revealed here only because
    the caller wraps what carries it (the connection) in a Pulumi secret."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value


def _props(resource_name: str, connection: Connection, outputs: Sequence[str], **inputs: Any) -> dict[str, Any]:
    props: dict[str, Any] = {k: _dump(v) for k, v in inputs.items() if v is not None}
    # The whole connection is secret (it carries the admin password); the engine keeps the output
    # of the same key secret too.
    props["connection"] = pulumi.Output.secret(_dump(connection))
    props["owner"] = _owner(resource_name)
    for name in outputs:
        props.setdefault(name, None)
    return props


def _opts(opts: pulumi.ResourceOptions | None, secrets: Sequence[str]) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=list(secrets)))


class ZitiCertificateAuthority(dynamic.Resource, module="ziti", name="CertificateAuthority"):
    """A third-party CA registered on the controller and verified with its own key.

    `cert_pem` cannot change in place (the controller ignores it on update): a new certificate
    replaces the CA, deleting the old one first because names and fingerprints are unique.
    Outputs: the resource `id`, `fingerprint`, `is_verified`, `enrollment_jwt` (secret).
    """

    name: pulumi.Output[str]
    cert_pem: pulumi.Output[str]
    is_auth_enabled: pulumi.Output[bool]
    identity_roles: pulumi.Output[list[str]]
    fingerprint: pulumi.Output[str]
    is_verified: pulumi.Output[bool]
    enrollment_jwt: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        cert_pem: pulumi.Input[str],
        ca_key_pem: pulumi.Input[str],
        is_auth_enabled: pulumi.Input[bool] | None = None,
        is_auto_ca_enrollment_enabled: pulumi.Input[bool] | None = None,
        is_ott_ca_enrollment_enabled: pulumi.Input[bool] | None = None,
        identity_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        identity_name_format: pulumi.Input[str] | None = None,
        external_id_claim: pulumi.Input[Mapping[str, Any]] | ExternalIdClaim | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            CertificateAuthorityProvider.computed,
            name=name,
            cert_pem=cert_pem,
            ca_key_pem=pulumi.Output.secret(_dump(ca_key_pem)),
            is_auth_enabled=is_auth_enabled,
            is_auto_ca_enrollment_enabled=is_auto_ca_enrollment_enabled,
            is_ott_ca_enrollment_enabled=is_ott_ca_enrollment_enabled,
            identity_roles=identity_roles,
            identity_name_format=identity_name_format,
            external_id_claim=external_id_claim,
            tags=tags,
        )
        super().__init__(
            CertificateAuthorityProvider(),
            resource_name,
            props,
            _opts(opts, ["connection", "ca_key_pem", "enrollment_jwt"]),
        )


class ZitiExternalJwtSigner(dynamic.Resource, module="ziti", name="ExternalJwtSigner"):
    """An external JWT signer: tokens from `issuer` (e.g. a Keycloak realm) with `audience` log in."""

    name: pulumi.Output[str]
    issuer: pulumi.Output[str]
    audience: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        issuer: pulumi.Input[str],
        audience: pulumi.Input[str],
        jwks_endpoint: pulumi.Input[str] | None = None,
        cert_pem: pulumi.Input[str] | None = None,
        kid: pulumi.Input[str] | None = None,
        claims_property: pulumi.Input[str] | None = None,
        use_external_id: pulumi.Input[bool] | None = None,
        external_auth_url: pulumi.Input[str] | None = None,
        client_id: pulumi.Input[str] | None = None,
        scopes: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        target_token: pulumi.Input[str] | None = None,
        enabled: pulumi.Input[bool] | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            (),
            name=name,
            issuer=issuer,
            audience=audience,
            jwks_endpoint=jwks_endpoint,
            cert_pem=cert_pem,
            kid=kid,
            claims_property=claims_property,
            use_external_id=use_external_id,
            external_auth_url=external_auth_url,
            client_id=client_id,
            scopes=scopes,
            target_token=target_token,
            enabled=enabled,
            tags=tags,
        )
        super().__init__(ExternalJwtSignerProvider(), resource_name, props, _opts(opts, ["connection"]))


class ZitiAuthPolicy(dynamic.Resource, module="ziti", name="AuthPolicy"):
    """An authentication policy: which primary methods (cert, ext_jwt signers, updb) and secondary
    factors identities assigned to it must use."""

    name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        primary: pulumi.Input[Mapping[str, Any]] | BaseModel,
        secondary: pulumi.Input[Mapping[str, Any]] | BaseModel | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(resource_name, connection, (), name=name, primary=primary, secondary=secondary, tags=tags)
        super().__init__(AuthPolicyProvider(), resource_name, props, _opts(opts, ["connection"]))


class ZitiIdentity(dynamic.Resource, module="ziti", name="Identity"):
    """An identity; with `external_id` set to a SPIFFE ID the workload logs in with its SVID
    through a verified third-party CA, with no enrollment."""

    name: pulumi.Output[str]
    external_id: pulumi.Output[str | None]
    auth_policy_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        type: pulumi.Input[str] | None = None,
        is_admin: pulumi.Input[bool] | None = None,
        external_id: pulumi.Input[str] | None = None,
        auth_policy_id: pulumi.Input[str] | None = None,
        role_attributes: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            (),
            name=name,
            type=type,
            is_admin=is_admin,
            external_id=external_id,
            auth_policy_id=auth_policy_id,
            role_attributes=role_attributes,
            tags=tags,
        )
        super().__init__(IdentityProvider(), resource_name, props, _opts(opts, ["connection"]))


class ZitiEdgeRouter(dynamic.Resource, module="ziti", name="EdgeRouter"):
    """An edge router; `enrollment_jwt` (secret) is the one-time token its container enrolls with."""

    name: pulumi.Output[str]
    enrollment_jwt: pulumi.Output[str]
    enrollment_expires_at: pulumi.Output[str]
    is_verified: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        role_attributes: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        is_tunneler_enabled: pulumi.Input[bool] | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            EdgeRouterProvider.computed,
            name=name,
            role_attributes=role_attributes,
            is_tunneler_enabled=is_tunneler_enabled,
            tags=tags,
        )
        super().__init__(EdgeRouterProvider(), resource_name, props, _opts(opts, ["connection", "enrollment_jwt"]))


class ZitiServicePolicy(dynamic.Resource, module="ziti", name="ServicePolicy"):
    """Dial or Bind access of identities (by role) to services (by role)."""

    name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        type: pulumi.Input[str],
        semantic: pulumi.Input[str] | None = None,
        service_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        identity_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        posture_check_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            (),
            name=name,
            type=type,
            semantic=semantic,
            service_roles=service_roles,
            identity_roles=identity_roles,
            posture_check_roles=posture_check_roles,
            tags=tags,
        )
        super().__init__(ServicePolicyProvider(), resource_name, props, _opts(opts, ["connection"]))


class ZitiEdgeRouterPolicy(dynamic.Resource, module="ziti", name="EdgeRouterPolicy"):
    """Which identities (by role) may connect through which edge routers (by role)."""

    name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        semantic: pulumi.Input[str] | None = None,
        edge_router_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        identity_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            (),
            name=name,
            semantic=semantic,
            edge_router_roles=edge_router_roles,
            identity_roles=identity_roles,
            tags=tags,
        )
        super().__init__(EdgeRouterPolicyProvider(), resource_name, props, _opts(opts, ["connection"]))


class ZitiServiceEdgeRouterPolicy(dynamic.Resource, module="ziti", name="ServiceEdgeRouterPolicy"):
    """Which services (by role) are reachable through which edge routers (by role)."""

    name: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        name: pulumi.Input[str],
        semantic: pulumi.Input[str] | None = None,
        edge_router_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        service_roles: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None,
        tags: pulumi.Input[Mapping[str, Any]] | None = None,
        connection: Connection,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = _props(
            resource_name,
            connection,
            (),
            name=name,
            semantic=semantic,
            edge_router_roles=edge_router_roles,
            service_roles=service_roles,
            tags=tags,
        )
        super().__init__(ServiceEdgeRouterPolicyProvider(), resource_name, props, _opts(opts, ["connection"]))
