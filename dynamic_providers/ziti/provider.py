"""Pulumi dynamic providers and resources for OpenZiti entities: one `ZitiProvider` on the kernel's
`OwnedProvider`, a kind per model and class settings; see docs/providers/ziti.md."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast, get_origin

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import NameOID
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dynamic_providers._kernel import (
    ForeignObjectError,
    OwnedProvider,
    OwnershipEncoder,
    Resource,
    contains_unknown,
    create_or_adopt,
    is_unknown,
    program_stack,
    refusal,
    require_valid,
    validated,
)
from dynamic_providers.ziti.client import ApiErrorCause, ZitiApiError, ZitiClient
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
    load_private_key,
    nested_model,
    plain_hex,
    sha1_fingerprint,
)

Entity = dict[str, Any]
Props = Mapping[str, Any]
# The id of an existing entity the operator hands to this resource (`identity-platform:imports`):
# create takes it over instead of posting. Not a setting of the entity: never a diff.
IMPORT_KEY = "import_id"
Spec = tuple[Any, Ownership | None]  # the validated settings and the owner
VERIFICATION_CERT_VALIDITY = datetime.timedelta(minutes=10)


def _canonical(field: FieldInfo, value: Any) -> Any:
    if field.is_required():
        default = None
    else:
        default = field.get_default(call_default_factory=True)
        default = default.model_dump() if isinstance(default, BaseModel) else default
    if value is None or (value == "" and default is None):
        value = default
    nested = nested_model(field.annotation)
    if nested is not None and isinstance(value, Mapping) and not is_unknown(value):
        value = canonical(nested, value)
    elif isinstance(value, Mapping) and "id" in value and get_origin(field.annotation) is not dict:
        value = value["id"]  # an entityRef (an identity's `type`); the swagger requires none of its other keys
    # Every list of these models (roles, role attributes, signers, scopes) is a set to the controller:
    # compared sorted, so reordering is no diff.
    if get_origin(field.annotation) is list and isinstance(value, list) and not contains_unknown(value):
        try:
            value = sorted(value)
        except TypeError:
            pass  # mixed types (refused by check; in old state, a diff): compared as given
    return value


def canonical(model: type[BaseModel], values: Props) -> dict[str, Any]:
    """`values` with defaults filled in, "" and None read as "not set", camelCase keys read as
    their snake_case field, nested models recursed and order-insensitive lists sorted, so equal
    configurations compare equal. No validation: an entity the controller answered reads as
    what it holds, so `diff` can see drift."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        value = values.get(name)
        if value is None and field.alias:
            value = values.get(field.alias)  # nested blocks may be written in the API's camelCase
        if value is not None or not field.is_required():
            out[name] = _canonical(field, value)
    return out


def verification_certificate(ca_cert_pem: str, ca_key_pem: str, token: str) -> str:
    """The proof of key possession the controller wants: CN = the CA's verificationToken, signed
    directly by the CA key (no intermediate: the controller verifies with the CA as the only root)."""
    ca_cert = first_pem_certificate(ca_cert_pem)
    ca_key = load_private_key(ca_key_pem)
    now = datetime.datetime.now(datetime.UTC)
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Pulumi ZitiCertificateAuthority verification"),
            x509.NameAttribute(NameOID.COMMON_NAME, token),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - VERIFICATION_CERT_VALIDITY)
        .not_valid_after(now + VERIFICATION_CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(aki, critical=False)
    )
    algorithm = None if isinstance(ca_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    cert = builder.sign(ca_key, algorithm)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class ZitiTags(OwnershipEncoder[Ownership, Props]):
    """Ziti's ownership mark: the tags `pulumi.stack` (`<project>/<stack>`) and `pulumi.name`."""

    def __init__(self, label: str, collection: str) -> None:
        self.label, self.collection = label, collection

    def parse(self, raw: Any) -> Ownership | None:
        if raw is None or isinstance(raw, Ownership):
            return raw
        if isinstance(raw, str):
            return Ownership(stack=raw)  # this process's stack
        return Ownership.model_validate(raw)

    def owns(self, entity: Props, marks: Sequence[Ownership]) -> bool:
        """With no mark at all (no `owner` and no PULUMI_PROJECT/PULUMI_STACK) only an entity no
        stack has tagged is ours."""
        tags = entity.get("tags")
        tags = tags if isinstance(tags, dict) else {}
        if not marks:
            return OWNER_STACK_TAG not in tags
        return any(o.owns(tags) for o in marks)

    @staticmethod
    def holder(tags: Props) -> str | None:
        if OWNER_STACK_TAG not in tags:
            return None
        return f"stack {tags[OWNER_STACK_TAG]!r}, resource {tags.get(OWNER_NAME_TAG)!r}"

    def refuse(self, action: str, entity: Props, id_: str, marks: Sequence[Ownership]) -> ForeignObjectError:
        holder = self.holder(entity.get("tags") or {})
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


# --- the one provider -------------------------------------------------------------------------------


class ZitiProvider(OwnedProvider):
    """Every Ziti kind's CRUD (the kernel's `OwnedProvider`): a kind sets `collection`, `label` and
    `args_model` (and, where the controller needs them, the settings below)."""

    collection: ClassVar[str]  # the endpoint under /edge/management/v1
    label: ClassVar[str]  # what messages call the entity
    # API fields a PATCH does not apply: a change to one goes by PUT with every field as declared
    # (PUT clears what it omits, tags included).
    put_fields: ClassVar[frozenset[str]] = frozenset()
    # The controller drops this kind's tags on create: it is created under a name only this resource
    # gives (`pending_name`), then renamed and tagged, so one a lost answer or a crash left in
    # between is still known as ours; a rename refused because the name is held deletes it again.
    tags_after_create: ClassVar[bool] = False
    server_fields: ClassVar[tuple[str, ...]] = ()  # what the server computes: read back after a create
    meta_keys = ("connection", "owner")
    meta_models = {"connection": ZitiConnection, "owner": Ownership}
    extra_inputs = (IMPORT_KEY,)
    delete_before_replace = True  # names (and CA fingerprints) are unique on the controller
    connection_model = ZitiConnection
    api_error = ZitiApiError
    gone_where = " on the controller"

    # -- preview-time methods: no network --

    def checked(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, **canonical(self.args_model, self.settings(props))}

    def comparable(self, field: str, value: Any) -> Any:
        info = self.args_model.model_fields.get(field)
        if info is None:
            return value
        value = _canonical(info, value)
        if field == "cert_pem" and isinstance(value, str) and not is_unknown(value):
            try:  # the controller keeps the PEM text; what identifies it is the certificate
                return sha1_fingerprint(first_pem_certificate(value))
            except ValueError:
                return value.strip()
        return value

    # -- the kernel's hooks --

    def connect(self, connection: ZitiConnection) -> ZitiClient:
        return ZitiClient(connection)  # every call waits for a controller still starting (`ready_timeout`)

    def parse(self, props: Props) -> tuple[Spec, ZitiConnection, Ownership | None]:
        """((settings, owner), connection, owner): the owner input, else the host's stack."""
        conn = validated(ZitiConnection, props.get("connection"), "connection")
        if props.get("owner") is not None:
            require_valid(Ownership, props["owner"], "owner")
        args = validated(self.args_model, self.settings(props))
        tags = self.ownership(props, "")
        owner = tags.parse(props.get("owner")) or tags.environment()
        return (args, owner), conn, owner

    def describe(self, props: Props) -> str:
        return f"{self.label} {props.get('name')!r}"

    def ownership(self, props: Props, id_: str) -> ZitiTags:
        return ZitiTags(self.label, self.collection)

    def state_marks(self, props: Props) -> list[Ownership]:
        """For read and delete, which see only the state: the `owner` it recorded (the input,
        echoed), else this stack from the host's PULUMI_PROJECT/PULUMI_STACK."""
        tags = self.ownership(props, "")
        return tags.marks(props.get("owner")) or tags.marks(tags.environment())

    def fetch(self, c: ZitiClient, props: Props, id_: str) -> Entity | None:
        return c.get_or_none(self.collection, id_)

    def remove(self, c: ZitiClient, props: Props, id_: str) -> None:
        c.delete(self.collection, id_)

    def make(self, c: ZitiClient, spec: Spec, props: Props) -> tuple[str, Entity]:
        args, owner = spec
        entity, created = self._obtain(c, props, args, owner)
        if any(key not in entity for key in self.server_fields):
            entity = c.get(self.collection, str(entity["id"]))
        entity = self.settle(c, entity, args, created)
        return str(entity["id"]), self._outs(c, entity, props, {})

    def read_outputs(self, c: ZitiClient, olds: Props, entity: Entity) -> Entity:
        return self._outs(c, entity, olds, olds, refresh=True)

    def refreshed_inputs(self, olds: Props, outs: Props) -> dict[str, Any]:
        return {k: v for k, v in outs.items() if k in self.args_model.model_fields or k in self.meta_keys}

    def write(self, c: ZitiClient, spec: Spec, news: Props, olds: Props, current: Entity, changed: set[str]) -> Entity:
        """PATCH the changed fields (PUT all of them when one is in `put_fields`); the tags when the
        owner changed (a resource renamed through an alias)."""
        args, owner = spec
        fields = self.args_model.model_fields
        wire = {fields[f].alias or f for f in changed if f in fields} | ({"tags"} if "owner" in changed else set())
        full = args.api_body(owner, create=False)
        body = {k: v for k, v in full.items() if k in wire}
        entity = self.settle(c, self._write(c, current, body, full) if body else current, args, False)
        return self._outs(c, entity, news, olds)

    # -- what a kind may adjust --

    def find_existing(self, c: ZitiClient, args: Any) -> Entity | None:
        """The entity that holds this resource's unique key."""
        return c.find_by_name(self.collection, args.name)

    def check_adoptable(self, existing: Entity, args: Any) -> None:
        """Raise when an entity of ours cannot become this resource by a write."""

    def settle(self, c: ZitiClient, entity: Entity, args: Any, created: bool) -> Entity:
        """Bring the written entity to its final state (`created`: this call made it)."""
        return entity

    def computed_outs(self, c: ZitiClient, entity: Entity, previous: Props, refresh: bool) -> Entity:
        """The outputs the server computes (`previous`: the state's outputs, if any)."""
        return {}

    # -- the shared pieces --

    def _named(self, entity: Entity) -> str:
        """How messages name an entity found on the controller."""
        return f"{self.label} {entity.get('name')!r} (id {entity.get('id')})"

    def _write(self, c: ZitiClient, current: Entity, body: Entity, full: Entity) -> Entity:
        """Send the changed fields `body` (`full`: every field as declared). Both PATCH and PUT
        answer an empty envelope: the entity now is `current` with what was sent. A write that
        renames is read back: the controller (1.7.2) answers one giving a name another entity holds
        with 200 and applies none of it (another unique value: 500, nothing applied)."""
        id_, put = str(current["id"]), bool(self.put_fields & body.keys())
        sent = full if put else body
        try:
            (c.put if put else c.patch)(self.collection, id_, sent)
        except ZitiApiError as e:
            if not e.is_duplicate:
                raise
            raise self._value_taken(c, current, sent, e) from e
        if "name" not in sent or sent["name"] == current.get("name"):
            return {**current, **sent}
        stored = c.get(self.collection, id_)
        if stored.get("name") != sent["name"]:
            holder = c.find_by_name(self.collection, sent["name"])
            raise ZitiApiError(
                f"the controller did not rename {self._named(current)} to {sent['name']!r}: "
                f"{self._named(holder) if holder else 'another entity'} holds that name (it answers such a "
                "write 200 and applies none of it)",
                method="PUT" if put else "PATCH",
                path=f"/{self.collection}/{id_}",
                code="NAME_TAKEN",
                cause=ApiErrorCause(field="name", reason=f"duplicate value {sent['name']!r}"),
            )
        return stored

    def _value_taken(self, c: ZitiClient, current: Entity, sent: Entity, e: ZitiApiError) -> ZitiApiError:
        """`e` told with the field a unique index refused and the entity that holds its value."""
        field = next((k for k, v in sent.items() if k != "name" and v == e.duplicate_value), None)
        if field is None:
            return e
        try:
            held = [h for h in c.find(self.collection, field, str(e.duplicate_value)) if h.get("id") != current["id"]]
        except ZitiApiError:
            held = []
        return e.retold(
            f"the controller refused to set {field} of {self._named(current)} to {e.duplicate_value!r}: "
            f"{self._named(held[0]) if held else 'another entity'} holds that value; nothing was applied. "
            "Two resources that trade values need two updates (first a value no entity holds)"
        )

    def _take(self, c: ZitiClient, existing: Entity, args: Any, owner: Ownership | None) -> Entity:
        """An existing entity becomes this resource: the declared settings and our tags are written."""
        self.check_adoptable(existing, args)
        full = args.api_body(owner, create=False)
        return self._write(c, existing, full, full)

    def pending_name(self, args: Any, owner: Ownership | None) -> str | None:
        """The name a `tags_after_create` kind is created under, deterministic per stack and resource
        (none without an owner: nothing would tell that entity apart)."""
        if not self.tags_after_create or owner is None:
            return None
        resource = f" {owner.name}" if owner.name else ""
        return f"{args.name} (pulumi: being created by {owner.stack}{resource})"

    def _obtain(self, c: ZitiClient, props: Props, args: Any, owner: Ownership | None) -> tuple[Entity, bool]:
        """(entity, created): the entity the operator handed over (`import_id`), taken over unless
        another owner's tags are on it, or a new one."""
        import_id = props.get(IMPORT_KEY)
        if not import_id:
            return self._create_or_adopt(c, args, owner)
        existing = c.get_or_none(self.collection, str(import_id))
        if existing is None:
            raise ValueError(
                f"import: no {self.label} with id {str(import_id)!r} on the controller: check the id in "
                "identity-platform:imports (`ziti edge list` shows it)"
            )
        tags = existing.get("tags") or {}
        if OWNER_STACK_TAG in tags and (owner is None or not owner.owns(tags)):
            raise ValueError(
                f"import: {self._named(existing)} belongs to {ZitiTags.holder(tags)}: remove it from that stack first"
            )
        return self._take(c, existing, args, owner), False

    def _create_or_adopt(self, c: ZitiClient, args: Any, owner: Ownership | None) -> tuple[Entity, bool]:
        """POST once; after an uncertain failure look up before posting again."""
        body, full = args.api_body(owner, create=True), args.api_body(owner, create=False)
        pending = self.pending_name(args, owner)
        if pending is not None:
            body["name"] = pending
        # Without ownership no tag marks what this call creates. If the name is free before the first
        # POST, an entity that holds it after a lost answer can only be that POST's.
        free_before = owner is None and self.find_existing(c, args) is None

        def post() -> Entity:
            made = {**body, "id": c.create(self.collection, body)}
            if not self.tags_after_create:
                return made
            try:  # the tags the controller dropped, and the declared name over the pending one
                return self._write(c, made, {"name": full["name"], "tags": full["tags"]}, full)
            except ZitiApiError as e:
                if not e.is_duplicate:
                    raise
                c.delete(self.collection, str(made["id"]))  # another entity holds the name: drop this POST's
                refused = e.retold(e.args[0])
                refused.method, refused.path = "POST", f"/{self.collection}"  # told as a POST of the name
                raise refused from e

        def find() -> Entity | None:
            found = self.find_existing(c, args)
            return found if found is not None or pending is None else c.find_by_name(self.collection, pending)

        def adopt(existing: Entity, err: ZitiApiError, uncertain: bool) -> tuple[Entity, bool]:
            if free_before and uncertain:  # the entity a lost POST of this very call made
                if self.tags_after_create:
                    return self._take(c, existing, args, owner), True
                self.check_adoptable(existing, args)
                return existing, True
            if pending is not None and existing.get("name") == pending:
                return self._take(c, existing, args, owner), False  # this resource's, left before its rename
            tags = existing.get("tags") or {}
            if owner is None or not owner.owns(tags):
                holder = ZitiTags.holder(tags) or "no Pulumi ownership tags: created outside this program"
                fix = (
                    f"or tag it with {OWNER_STACK_TAG}={owner.stack!r} and {OWNER_NAME_TAG}={owner.name!r} to let "
                    "Pulumi adopt it"
                    if owner is not None
                    else "(this provider call carries no ownership, so it adopts nothing)"
                )
                raise err.retold(
                    f"{self._named(existing)} already exists and is not owned by this resource ({holder}). "
                    f"Rename the resource, delete the existing entity, {fix}"
                ) from err
            return self._take(c, existing, args, owner), False

        def unheld(e: ZitiApiError) -> None:
            raise e.retold(
                f"the controller refused to create {self.label} {args.name!r} because another entity "
                f"already holds a unique value ({e})"
            ) from e

        return create_or_adopt(
            post,
            find,
            adopt,
            errors=ZitiApiError,
            attempts=c.retry.attempts,
            conflict=lambda e: e.is_duplicate,
            lost=lambda e: e.outcome_unknown,
            pause=c.pause,
            unheld_conflict=unheld,
        )

    def _outs(self, c: ZitiClient, entity: Entity, props: Props, previous: Props, refresh: bool = False) -> Entity:
        """Outputs from the server's entity (not an echo of the inputs), plus connection and owner."""
        tags = {k: v for k, v in (entity.get("tags") or {}).items() if k not in (OWNER_STACK_TAG, OWNER_NAME_TAG)}
        outs = canonical(self.args_model, {**entity, "tags": tags})
        for name in self.write_only:
            outs.pop(name, None)
        outs.update(self.computed_outs(c, entity, previous, refresh))
        outs.update({k: props[k] for k in self.meta_keys if k in props})
        return outs


# --- the kinds ------------------------------------------------------------------------------------------


class CertificateAuthorityProvider(ZitiProvider):
    """A third-party CA, verified with its own key (create: POST, GET the token, POST verify)."""

    collection = "cas"
    label = "CA"
    args_model = CertificateAuthorityArgs
    replace_fields = frozenset({"cert_pem"})
    write_only = frozenset({"ca_key_pem"})
    computed = ("fingerprint", "is_verified", "enrollment_jwt")
    server_fields = ("fingerprint", "isVerified")
    # The controller (1.7.2, found against the real one) drops `externalIdClaim.parserCriteria`
    # from a PATCH: its store names the field `externalIdClaim.parserSeparator`, so the PATCH's
    # field list never matches it.
    put_fields = frozenset({"externalIdClaim"})

    def extra_replaces(self, olds: Props, news: Props) -> list[str]:
        # A claim cannot be removed by PATCH (an empty claim is ignored): remove it by re-creating.
        old, new = (self.comparable("external_id_claim", p.get("external_id_claim")) for p in (olds, news))
        return ["external_id_claim"] if old is not None and new is None else []

    def find_existing(self, c: ZitiClient, args: Any) -> Entity | None:
        """By name, else by certificate (our CA under an older name)."""
        found = c.find_by_name(self.collection, args.name)
        if found is None:
            same_cert = c.find(self.collection, "fingerprint", sha1_fingerprint(first_pem_certificate(args.cert_pem)))
            found = same_cert[0] if same_cert else None
        return found

    def check_adoptable(self, existing: Entity, args: Any) -> None:
        fingerprint = sha1_fingerprint(first_pem_certificate(args.cert_pem))
        if plain_hex(existing.get("fingerprint")) != fingerprint:
            raise ZitiApiError(
                f"{self._named(existing)} is owned by this resource but registers a different certificate "
                f"(fingerprint {existing.get('fingerprint')}, expected {fingerprint}); "
                "certPem cannot be changed in place: delete that CA, then run `pulumi up` again",
                code="CERTIFICATE_MISMATCH",
            )

    def settle(self, c: ZitiClient, entity: Entity, args: Any, created: bool) -> Entity:
        """Verify an unverified CA (also one a refresh found unverified). A 409 CA_ALREADY_VERIFIED
        counts as verified; a CA this call created and could not verify is deleted again."""
        if entity.get("isVerified"):
            return entity
        id_ = str(entity["id"])
        try:
            token = entity.get("verificationToken")
            if not token:
                raise ZitiApiError(f"CA {id_} is unverified and has no verificationToken", code="NO_VERIFICATION_TOKEN")
            c.verify_ca(id_, verification_certificate(args.cert_pem, args.ca_key_pem.get_secret_value(), str(token)))
            return {**entity, "isVerified": True}
        except ZitiApiError as e:
            if not created:
                raise
            # Never leave an unverified CA behind that no state records: remove it, then report.
            try:
                c.delete(self.collection, id_)
                fate = "the unverified CA was deleted again"
            except ZitiApiError as cleanup:
                fate = f"the unverified CA {id_} could not be deleted ({cleanup}); the next `pulumi up` adopts it"
            raise e.retold(f"verification of CA {args.name!r} failed ({e.code}: {e.args[0]}); {fate}") from e

    def computed_outs(self, c: ZitiClient, entity: Entity, previous: Props, refresh: bool) -> Entity:
        # The enrollment JWT names the CA's id (the controller signs the same claims each time):
        # an update keeps the one in the state, a refresh reads it again.
        jwt = None if refresh else previous.get("enrollment_jwt")
        return {
            "fingerprint": entity.get("fingerprint"),
            "is_verified": bool(entity.get("isVerified")),
            "enrollment_jwt": jwt or c.ca_jwt(str(entity["id"])),
        }


def _kind(name: str, collection: str, label: str, args_model: type[BaseModel], **settings: Any) -> type[ZitiProvider]:
    """A kind that only class settings tell apart: `<name>Provider`, importable by that name (so
    the engine's pickle of it is a reference)."""
    attrs = {"__module__": __name__, "collection": collection, "label": label, "args_model": args_model, **settings}
    return cast("type[ZitiProvider]", type(f"{name}Provider", (ZitiProvider,), attrs))


# The controller (1.7.2) drops `tags` from a signer's create (MapCreateExternalJwtSignerToModel
# does not map them): created under a pending name, then renamed and tagged (docs/providers/ziti.md).
ExternalJwtSignerProvider = _kind(
    "ExternalJwtSigner", "external-jwt-signers", "external JWT signer", ExternalJwtSignerArgs, tags_after_create=True
)
# The controller (1.7.2, found against the real one) ignores `primary.updb.minPasswordLength`
# in a PATCH (PUT applies it).
AuthPolicyProvider = _kind(
    "AuthPolicy", "auth-policies", "auth policy", AuthPolicyArgs, put_fields=frozenset({"primary"})
)
IdentityProvider = _kind("Identity", "identities", "identity", IdentityArgs)
ServicePolicyProvider = _kind("ServicePolicy", "service-policies", "service policy", ServicePolicyArgs)
EdgeRouterPolicyProvider = _kind("EdgeRouterPolicy", "edge-router-policies", "edge router policy", EdgeRouterPolicyArgs)
ServiceEdgeRouterPolicyProvider = _kind(
    "ServiceEdgeRouterPolicy", "service-edge-router-policies", "service edge router policy", ServiceEdgeRouterPolicyArgs
)


class EdgeRouterProvider(ZitiProvider):
    """Edge routers enroll with their one-time JWT (routers cannot enroll with a third-party CA)."""

    collection = "edge-routers"
    label = "edge router"
    args_model = EdgeRouterArgs
    computed = ("enrollment_jwt", "enrollment_expires_at", "is_verified")
    server_fields = ("isVerified",)

    @staticmethod
    def _expired(outs: Props) -> bool:
        expires = outs.get("enrollment_expires_at")
        if outs.get("is_verified") or not isinstance(expires, str) or is_unknown(expires):
            return False
        try:
            when = datetime.datetime.fromisoformat(expires)  # Python 3.11 reads a "Z" suffix
        except ValueError:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)  # no offset: the controller's times are UTC
        return when <= datetime.datetime.now(datetime.UTC)

    def changes(self, olds: Props, news: Props) -> list[str]:
        # An unenrolled router whose JWT has expired needs a new one: `update` re-enrolls it.
        return super().changes(olds, news) + (["enrollment_jwt"] if self._expired(olds) else [])

    def settle(self, c: ZitiClient, entity: Entity, args: Any, created: bool) -> Entity:
        state = {"is_verified": entity.get("isVerified"), "enrollment_expires_at": entity.get("enrollmentExpiresAt")}
        if not self._expired(state):
            return entity
        c.re_enroll_edge_router(str(entity["id"]))
        return c.get(self.collection, str(entity["id"]))

    def computed_outs(self, c: ZitiClient, entity: Entity, previous: Props, refresh: bool) -> Entity:
        jwt = entity.get("enrollmentJwt")
        if not jwt and entity.get("isVerified"):
            jwt = previous.get("enrollment_jwt")  # enrolled: keep the used token so dependents do not churn
        return {
            "enrollment_jwt": jwt,
            "enrollment_expires_at": entity.get("enrollmentExpiresAt"),
            "is_verified": bool(entity.get("isVerified")),
        }


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
    """A third-party CA registered on the controller and verified with its own key; a new `cert_pem`
    replaces it, deleting the old one first (the controller ignores it on update)."""

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
