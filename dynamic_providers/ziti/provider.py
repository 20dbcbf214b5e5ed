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

Ownership on every write (`dynamic_providers/_kernel.py`): update and delete address the
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
from typing import TYPE_CHECKING, Any, ClassVar

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import NameOID
from pulumi import dynamic
from pydantic import BaseModel

from dynamic_providers._kernel import (
    ForeignObjectError,
    OwnershipEncoder,
    Provider,
    Resource,
    contains_unknown,
    create_or_adopt,
    is_unknown,
    program_stack,
    refusal,
    require_valid,
    strip,
)
from dynamic_providers.ziti.client import ZitiApiError, ZitiClient
from dynamic_providers.ziti.models import (
    OWNER_NAME_TAG,
    OWNER_STACK_TAG,
    AuthPolicyArgs,
    CertificateAuthorityArgs,
    EdgeRouterArgs,
    EdgeRouterPolicyArgs,
    ExternalJwtSignerArgs,
    IdentityArgs,
    Ownership,
    ServiceEdgeRouterPolicyArgs,
    ServicePolicyArgs,
    ZitiConnection,
    first_pem_certificate,
    from_api,
    load_private_key,
    nested_model,
    sha1_fingerprint,
)

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


def _default(field: Any) -> Any:
    value = field.get_default(call_default_factory=True)
    return value.model_dump() if isinstance(value, BaseModel) else value


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


def _connection(props: Mapping[str, Any]) -> ZitiConnection:
    """The connection from the state. `read`/`delete` get only outputs: one written without it
    (e.g. an import) gets a clear message, not a KeyError."""
    require_valid(ZitiConnection, props.get("connection"), "connection")
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


class ZitiTags(OwnershipEncoder[Ownership, Mapping[str, Any]]):
    """Ziti's ownership mark: the tags `pulumi.stack` (`<project>/<stack>`) and `pulumi.name`."""

    def __init__(self, label: str, collection: str) -> None:
        self.label, self.collection = label, collection

    def parse(self, raw: Any) -> Ownership | None:
        if raw is None or isinstance(raw, Ownership):
            return raw
        if isinstance(raw, str):
            return Ownership(stack=raw)  # this process's stack
        return Ownership.model_validate(raw)

    def owns(self, entity: Mapping[str, Any], marks: Sequence[Ownership]) -> bool:
        """With no mark at all (no `owner` and no PULUMI_PROJECT/PULUMI_STACK) only an entity no
        stack has tagged is ours."""
        tags = entity.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        if not marks:
            return OWNER_STACK_TAG not in tags
        return any(o.owns(tags) for o in marks)

    @staticmethod
    def holder(tags: Mapping[str, Any]) -> str | None:
        if OWNER_STACK_TAG not in tags:
            return None
        return f"stack {tags[OWNER_STACK_TAG]!r}, resource {tags.get(OWNER_NAME_TAG)!r}"

    def refuse(
        self, action: str, entity: Mapping[str, Any], id_: str, marks: Sequence[Ownership]
    ) -> ForeignObjectError:
        tags = entity.get("tags") or {}
        holder = self.holder(tags)
        held = (
            f"its tags name {holder}"
            if holder
            else "it carries no Pulumi ownership tags (created or re-tagged outside this program)"
        )
        ours = marks[0] if marks else None
        wanted = json.dumps(ours.tags() if ours is not None else {OWNER_STACK_TAG: "<project>/<stack>"})
        if ours is None:
            us = "unknown (no owner input and no PULUMI_PROJECT/PULUMI_STACK)"
        else:
            us = f"stack {ours.stack!r}, resource {ours.name!r}" if ours.name else f"stack {ours.stack!r}"
        return refusal(
            action,
            f"Ziti {self.label} {entity.get('name')!r}",
            id_,
            "it is not managed by this resource",
            f"{held}; this resource is {us}",
            f"add the tags {wanted} to it (PATCH /edge/management/v1/{self.collection}/{id_} with "
            '{"tags": {...}}, keeping its other tags), then run the same Pulumi command again',
        )


# --- the shared CRUD contract ---------------------------------------------------------------------


class _ZitiProvider(Provider):
    collection: ClassVar[str]
    label: ClassVar[str]
    meta_keys = META_KEYS
    meta_models = {"connection": ZitiConnection, "owner": Ownership}
    extra_inputs = (IMPORT_KEY,)
    delete_before_replace = True  # names (and CA fingerprints) are unique on the controller

    @property
    def ownership(self) -> ZitiTags:
        return ZitiTags(self.label, self.collection)

    # -- preview-time methods: no network --

    def checked(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, **canonical(self.args_model, self.settings(props))}

    def changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        old_c = {**olds, **canonical(self.args_model, self.settings(olds))}
        new_c = {**news, **canonical(self.args_model, self.settings(news))}
        return super().changes(old_c, new_c) + self.extra_changes(olds, news)

    # -- engine-time methods --

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        args, conn, owner = self._parse(props)
        with ZitiClient(conn) as c:
            id_, created = self._obtain(c, props, args, owner)
            detail = self._after_create(c, id_, args, created)
            outs = self._outs(c, detail, props, {})
        return dynamic.CreateResult(id_, outs)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        props = strip(props)
        with ZitiClient(_connection(props)) as c:
            detail = c.get_or_none(self.collection, id_)
            if detail is None or not self.ownership.owns(detail, self._state_marks(props)):
                return dynamic.ReadResult(None, {})  # gone, or no longer ours: refresh forgets it
            outs = self._outs(c, detail, props, props)
        inputs = {k: outs[k] for k in self.args_model.model_fields if k in outs}
        inputs.update({k: props[k] for k in META_KEYS if k in props})
        return dynamic.ReadResult(id_, outs, inputs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        olds, news = strip(olds), strip(news)
        args, conn, owner = self._parse(news)
        fields = self.args_model.model_fields
        changed = [f for f in self.changes(olds, news) if f in fields]
        full = args.api_body(owner, create=False)
        aliases = {f: fields[f].alias or f for f in changed}
        body = {aliases[f]: full[aliases[f]] for f in changed if aliases[f] in full}
        if olds.get("owner") != news.get("owner") or "tags" in changed:
            body["tags"] = full["tags"]
        with ZitiClient(conn) as c:
            current = c.get_or_none(self.collection, id_)
            if current is None:
                raise ZitiApiError(
                    f"{self.label} {args.name!r} (id {id_}) no longer exists on the controller (deleted outside "
                    "Pulumi): run `pulumi refresh` to drop it from the state, then `pulumi up` creates it again",
                    status=404,
                    code="NOT_FOUND",
                )
            self.ownership.require("update", current, id_, self.ownership.marks(owner, olds.get("owner")))
            if body:
                self._write(c, id_, body, full)
            detail = self._after_update(c, id_, args)
            outs = self._outs(c, detail, news, olds)
        return dynamic.UpdateResult(outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        props = strip(props)
        with ZitiClient(_connection(props)) as c:
            current = c.get_or_none(self.collection, id_)
            if current is not None:
                self.ownership.require("delete", current, id_, self._state_marks(props))
                c.delete(self.collection, id_)

    def _state_marks(self, props: Mapping[str, Any]) -> list[Ownership]:
        """For read and delete, which see only the state: the `owner` it recorded (the input,
        echoed), else this stack from the host's PULUMI_PROJECT/PULUMI_STACK."""
        return self.ownership.marks(props.get("owner")) or self.ownership.marks(self.ownership.environment())

    # -- pieces subclasses adjust --

    def _parse(self, props: Mapping[str, Any]) -> tuple[Any, ZitiConnection, Ownership | None]:
        props = strip(props)
        require_valid(ZitiConnection, props.get("connection"), "connection")
        if props.get("owner") is not None:
            require_valid(Ownership, props["owner"], "owner")
        require_valid(self.args_model, self.settings(props))
        owner = self.ownership.parse(props.get("owner")) or Ownership.from_environment()
        return self.args_model.model_validate(self.settings(props)), _connection(props), owner

    def extra_changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
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

        def adopt(existing: dict[str, Any], err: ZitiApiError, uncertain: bool) -> tuple[str, bool]:
            if free_before and uncertain:
                self._check_adoptable(existing, args)  # the entity a lost POST of this very call made
                return str(existing["id"]), True
            return self._adopt(c, existing, args, owner, err), False

        def unheld(e: ZitiApiError) -> None:
            raise _again(
                e,
                f"the controller refused to create {self.label} {args.name!r} because another entity "
                f"already holds a unique value ({e})",
            ) from e

        return create_or_adopt(
            lambda: c.create(self.collection, body),
            lambda err: self._find_existing(c, args, err),
            adopt,
            errors=ZitiApiError,
            attempts=MAX_CREATE_ATTEMPTS,
            conflict=lambda e: e.is_duplicate,
            lost=lambda e: e.retryable,
            pause=lambda attempt, e: c.pause(attempt, e.retry_after),
            unheld_conflict=unheld,
        )

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
                f"import: {self.label} {existing.get('name')!r} (id {id_}) belongs to {ZitiTags.holder(tags)}: "
                "remove it from that stack first"
            )
        self._check_adoptable(existing, args)
        full = args.api_body(owner, create=False)
        self._write(c, id_, full, full)
        return id_

    def _adopt(
        self, c: ZitiClient, existing: dict[str, Any], args: Any, owner: Ownership | None, err: ZitiApiError
    ) -> str:
        tags = existing.get("tags") or {}
        if owner is None or not owner.owns(tags):
            holder = ZitiTags.holder(tags) or "no Pulumi ownership tags: created outside this program"
            fix = (
                f"or tag it with {OWNER_STACK_TAG}={owner.stack!r} and {OWNER_NAME_TAG}={owner.name!r} to let Pulumi "
                "adopt it"
                if owner is not None
                else "(this provider call carries no ownership, so it adopts nothing)"
            )
            raise _again(
                err,
                f"{self.label} {existing.get('name')!r} (id {existing.get('id')}) already exists and is not owned by "
                f"this resource ({holder}). Rename the resource, delete the existing entity, {fix}",
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
        tags = detail.get("tags") or {}
        fields["tags"] = {k: v for k, v in tags.items() if k not in (OWNER_STACK_TAG, OWNER_NAME_TAG)}
        outs = canonical(self.args_model, fields)
        for name in self.write_only:
            outs.pop(name, None)
        outs.update(self._computed_outs(c, detail, previous))
        outs.update({k: props[k] for k in META_KEYS if k in props})
        return outs


def _again(err: ZitiApiError, message: str, **extra: Any) -> ZitiApiError:
    """`err` told again with `message`, keeping what the controller said."""
    return ZitiApiError(
        message, method=err.method, path=err.path, status=err.status, code=err.code, cause=err.cause, **extra
    )


# --- certificate authorities --------------------------------------------------------------------------


class CertificateAuthorityProvider(_ZitiProvider):
    """Registers a third-party CA and verifies it with the CA key (create: POST, GET, POST verify, GET)."""

    collection = "cas"
    label = "CA"
    args_model = CertificateAuthorityArgs
    replace_fields = frozenset({"cert_pem"})
    write_only = frozenset({"ca_key_pem"})
    computed = ("fingerprint", "is_verified", "enrollment_jwt")

    def comparable(self, field: str, value: Any) -> Any:
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

    def extra_replaces(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        # A claim cannot be removed by PATCH (an empty claim is ignored): remove it by re-creating.
        old, new = (canonical(self.args_model, self.settings(p)) for p in (olds, news))
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

    def comparable(self, field: str, value: Any) -> Any:
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

    def extra_changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
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


class _ZitiResource(Resource):
    """The connection is secret (it carries the admin password); `owner` is this program's stack
    and the resource's name, written into the entity's tags."""

    program_inputs = ("owner",)
    secret_inputs: ClassVar[tuple[str, ...]] = ("connection",)
    secret_outputs: ClassVar[tuple[str, ...]] = ("connection",)

    @classmethod
    def with_program_inputs(cls, resource_name: str, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, "owner": {"stack": program_stack(), "name": resource_name}}


class ZitiCertificateAuthority(_ZitiResource, module="ziti", name="CertificateAuthority"):
    """A third-party CA registered on the controller and verified with its own key.

    `cert_pem` cannot change in place (the controller ignores it on update): a new certificate
    replaces the CA, deleting the old one first because names and fingerprints are unique.
    Outputs: the resource `id`, `fingerprint`, `is_verified`, `enrollment_jwt` (secret).
    """

    provider = CertificateAuthorityProvider
    secret_inputs = ("connection", "ca_key_pem")
    secret_outputs = ("connection", "ca_key_pem", "enrollment_jwt")
    if TYPE_CHECKING:
        fingerprint: pulumi.Output[str]
        is_verified: pulumi.Output[bool]
        enrollment_jwt: pulumi.Output[str]


class ZitiExternalJwtSigner(_ZitiResource, module="ziti", name="ExternalJwtSigner"):
    """An external JWT signer: tokens from `issuer` (e.g. a Keycloak realm) with `audience` log in."""

    provider = ExternalJwtSignerProvider


class ZitiAuthPolicy(_ZitiResource, module="ziti", name="AuthPolicy"):
    """An authentication policy: which primary methods (cert, ext_jwt signers, updb) and secondary
    factors identities assigned to it must use."""

    provider = AuthPolicyProvider


class ZitiIdentity(_ZitiResource, module="ziti", name="Identity"):
    """An identity; with `external_id` set to a SPIFFE ID the workload logs in with its SVID
    through a verified third-party CA, with no enrollment."""

    provider = IdentityProvider


class ZitiEdgeRouter(_ZitiResource, module="ziti", name="EdgeRouter"):
    """An edge router; `enrollment_jwt` (secret) is the one-time token its container enrolls with."""

    provider = EdgeRouterProvider
    secret_outputs = ("connection", "enrollment_jwt")
    if TYPE_CHECKING:
        enrollment_jwt: pulumi.Output[str]
        enrollment_expires_at: pulumi.Output[str]
        is_verified: pulumi.Output[bool]


class ZitiServicePolicy(_ZitiResource, module="ziti", name="ServicePolicy"):
    """Dial or Bind access of identities (by role) to services (by role)."""

    provider = ServicePolicyProvider


class ZitiEdgeRouterPolicy(_ZitiResource, module="ziti", name="EdgeRouterPolicy"):
    """Which identities (by role) may connect through which edge routers (by role)."""

    provider = EdgeRouterPolicyProvider


class ZitiServiceEdgeRouterPolicy(_ZitiResource, module="ziti", name="ServiceEdgeRouterPolicy"):
    """Which services (by role) are reachable through which edge routers (by role)."""

    provider = ServiceEdgeRouterPolicyProvider
