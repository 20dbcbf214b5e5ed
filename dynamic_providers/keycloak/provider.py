"""The Keycloak providers (CRUD: the kernel's `OwnedProvider`) and the `KeycloakRealm` / `KeycloakClient`
resource classes. See docs/providers/keycloak.md."""

from __future__ import annotations

import uuid as uuids
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from pulumi import Output
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from dynamic_providers._kernel import (
    ForeignObjectError,
    OwnedProvider,
    OwnershipEncoder,
    Resource,
    changed_fields,
    contains_unknown,
    create_or_adopt,
    environment_stack,
    post_or_find,
    program_stack,
    refusal,
)
from dynamic_providers.keycloak.client import KeycloakAdmin, KeycloakApiError, RetryPolicy, ScopeKind
from dynamic_providers.keycloak.models import (
    CLIENT_FIELDS,
    FLOWS,
    OIDC,
    OWNER_ATTRIBUTE,
    PKCE_ATTRIBUTE,
    POST_LOGOUT_ATTRIBUTE,
    REALM_FIELDS,
    ClientRepresentation,
    ClientSpec,
    Connection,
    RealmRepresentation,
    RealmSpec,
    Representation,
    attribute_text,
    audience_mapper,
)

_SET_KEYS = frozenset(
    {"redirect_uris", "web_origins", "post_logout_redirect_uris", "default_client_scopes", "optional_client_scopes"}
)
_BOOL_KEYS = frozenset({"enabled", *FLOWS})
_SCOPES: dict[ScopeKind, str] = {"default": "default_client_scopes", "optional": "optional_client_scopes"}
# Default scopes Keycloak attaches and detaches itself (docs/providers/keycloak.md, "Found only on the real Keycloak").
KEYCLOAK_MANAGED_DEFAULT_SCOPES = frozenset({"service_account"})


def _text(value: Any) -> str:
    """`attribute_text`, lenient: anything else (already refused by check) compares as its str()."""
    try:
        return attribute_text(value)
    except ValueError:
        return str(value)


def normalise(key: str, value: Any) -> Any:
    """The comparable form of one input or output value: URI and scope lists as sets, booleans as
    Keycloak or the state holds them, attribute values as text without `""` (absent), numbers as
    numbers, the connection as its model, `""` equal to absent."""
    if value is None:
        return () if key == "attributes" else None
    if key in _SET_KEYS:
        return tuple(sorted({str(v) for v in value}))
    if key in _BOOL_KEYS:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool | int):
            raise ValueError(f"not a boolean: {value!r}")
        return bool(value)
    if key == "attributes":
        return tuple(sorted((str(k), s) for k, v in dict(value).items() if (s := _text(v)) != ""))
    if key == "connection":
        return Connection.model_validate(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else float(value)
    return _text(value) or None


def _without_keycloak_managed(names: list[str], declared: Any) -> list[str]:
    keep = set(declared) if isinstance(declared, list) else set()
    return [n for n in names if n not in KEYCLOAK_MANAGED_DEFAULT_SCOPES or n in keep]


def _holder(rep: Representation) -> str:
    return repr(rep.owner) if rep.owner else "absent"


class KeycloakAttribute(OwnershipEncoder[str, Representation]):
    """Keycloak's ownership mark: the attribute `pulumi.stack=<project>/<stack>` on the object (the
    `owner` input, or the marker the state recorded, so a renamed stack re-marks its own objects).

    The object at the state's address must also be the one in the state (same id: a realm is
    addressed by name, so one deleted and re-created outside Pulumi has the name, not the id). The
    check and the write are not atomic on Keycloak's API: the window is one round trip."""

    def __init__(self, what: str, state_id: str, kcadm_target: str) -> None:
        self.what, self.state_id, self.kcadm_target = what, state_id, kcadm_target

    def parse(self, raw: Any) -> str | None:
        return raw if isinstance(raw, str) and raw else None

    def owns(self, rep: Representation, marks: Sequence[str]) -> bool:
        return getattr(rep, "id", None) == self.state_id and rep.owner in marks

    def refuse(self, action: str, rep: Representation, id_: str, marks: Sequence[str]) -> ForeignObjectError:
        ours = marks[0] if marks else "<project>/<stack>"
        us = repr(marks[0]) if marks else "unknown (no owner input and no PULUMI_PROJECT/PULUMI_STACK)"
        owned = f"its {OWNER_ATTRIBUTE} attribute is {_holder(rep)}, this stack is {us}"
        kcadm = f"kcadm.sh update {self.kcadm_target} -s 'attributes.\"{OWNER_ATTRIBUTE}\"={ours}'"
        mark = f"set its attribute {OWNER_ATTRIBUTE}={ours} (`{kcadm}`)"
        found = getattr(rep, "id", None)
        if found != self.state_id:
            reason = (f"it is not the one in this stack's state (id {self.state_id}): that one was deleted and this "
                      "one created in its place outside Pulumi")
            return refusal(action, self.what, str(found), reason, owned, f"{mark}, then `pulumi refresh` and "
                           "`pulumi up` adopt it")
        return refusal(action, self.what, id_, "it is not managed by this stack", owned,
                       f"{mark}, then run the same Pulumi command again")


class _KeycloakProvider(OwnedProvider):
    """The kernel's CRUD for both kinds; each says how to find, write and report its object.

    The instance is pickled into state: only plain, non-secret settings live here, and only when
    they differ from the class defaults (so the default provider pickles as its class alone and one
    serialization serves every resource)."""

    meta_keys = ("connection", "owner")
    replace_fields = frozenset({"realm"})
    # The name is unique (realm; client_id in its realm): the old object goes first, else the new
    # resource would adopt it and the old one's delete remove it.
    delete_before_replace = True
    connection_model = Connection
    api_error = KeycloakApiError
    gone_where = " in Keycloak"
    removable: ClassVar[frozenset[str]] = frozenset()  # unsetting these removes what the provider added
    kind: ClassVar[str]  # "realm" or "client": the name in messages
    name_key: ClassVar[str]  # the input that names the object
    where: ClassVar[str] = ""  # what the name is unique in, after it in messages
    kcadm_target: ClassVar[str]  # the object in `kcadm.sh update`
    conflict_fix: ClassVar[str]
    retry: RetryPolicy = RetryPolicy()
    ready_timeout: float = 300.0

    def __init__(self, retry: RetryPolicy | None = None, ready_timeout: float = 300.0) -> None:
        super().__init__()
        if retry is not None:
            self.retry = retry
        if ready_timeout != type(self).ready_timeout:
            self.ready_timeout = ready_timeout

    # --- offline: the kernel's check and diff, with Keycloak's defaults and comparisons --------

    def defaulted(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """`props` with the model's defaults for unset inputs (`enabled`, `access_type`)."""
        fields = self.args_model.model_fields.items()
        return {**props, **{k: f.default for k, f in fields if props.get(k) is None and f.default is not None
                            and f.default is not PydanticUndefined}}

    def checked(self, props: dict[str, Any]) -> dict[str, Any]:
        """Defaults filled, `owner` from the host's stack when the caller gave none, attribute values
        and the secret trigger as the text Keycloak stores (an unknown stays one)."""
        props = self.defaulted(props)
        if props.get("owner") is None and (owner := environment_stack()):
            props["owner"] = owner
        if isinstance(props.get("attributes"), Mapping) and not contains_unknown(props["attributes"]):
            props["attributes"] = {str(k): _text(v) for k, v in props["attributes"].items()}
        if props.get("rotate_secret_trigger") is not None and not contains_unknown(props["rotate_secret_trigger"]):
            props["rotate_secret_trigger"] = _text(props["rotate_secret_trigger"])
        return props

    def comparable(self, field: str, value: Any) -> Any:
        return normalise(field, value)

    def changes(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """Managed inputs that changed: an unset input is not managed, unless `removable`."""
        news = self.defaulted(news)
        managed = [k for k in self.args_model.model_fields if news.get(k) is not None]
        dropped = [k for k in self.removable if news.get(k) is None and olds.get(k)]
        return changed_fields(managed, olds, news, self.comparable) + dropped

    # --- the kernel's hooks ----------------------------------------------------------------------

    def connect(self, connection: Connection) -> KeycloakAdmin:
        return KeycloakAdmin(connection, retry=self.retry, ready_timeout=self.ready_timeout)

    def parse(self, props: Mapping[str, Any]) -> tuple[Any, Connection, str]:
        spec: Any = self.args_model.model_validate(self.settings(props))
        return spec, spec.connection, spec.owner

    def stored_connection(self, props: Mapping[str, Any]) -> Connection:
        try:
            return Connection.model_validate(props.get("connection"))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise KeycloakApiError(f"invalid connection.{where}: {first['msg']}") from None

    def describe(self, props: Mapping[str, Any]) -> str:
        return f"{self.kind} {props.get(self.name_key)!r}"

    def ownership(self, props: Mapping[str, Any], id_: str) -> KeycloakAttribute:
        realm = props.get("realm")
        what = f"Keycloak {self.describe(props)}{self.where.format(realm=realm)}"
        return KeycloakAttribute(what, id_, self.kcadm_target.format(realm=realm, id=id_))

    def _create_or_adopt(self, kc: KeycloakAdmin, spec: Any, post: Any, find: Any, adopt: Any,
                         **kw: Any) -> tuple[Any, bool]:
        """POST; on 409 or a lost answer look the object up: adopt ours (brought to the declared
        state by `adopt`), refuse another holder's naming it, else POST again after the backoff."""
        what, where = self.describe(dict(spec)), self.where.format(realm=spec.realm)

        def ours(existing: Any, _err: KeycloakApiError, _uncertain: bool) -> tuple[Any, bool]:
            if existing.owner != spec.owner:
                raise KeycloakApiError(
                    f"{what} already exists{where} (id {existing.id}) and is not managed by this stack: its "
                    f"{OWNER_ATTRIBUTE} attribute is {_holder(existing)}, this stack is {spec.owner!r}. "
                    f"{self.conflict_fix}{OWNER_ATTRIBUTE}={spec.owner}", status=409)
            return adopt(existing), False

        def exhausted(e: KeycloakApiError) -> NoReturn:
            raise KeycloakApiError(f"could not create {what}{where}: {e}", status=e.status) from e

        return create_or_adopt(post, find, ours, errors=KeycloakApiError, attempts=self.retry.attempts,
                               conflict=lambda e: e.status == 409, lost=lambda e: e.outcome_unknown, pause=kc.pause,
                               unheld_conflict=lambda _err: None, exhausted=exhausted, **kw)


# --- realms -----------------------------------------------------------------------------------


class KeycloakRealmProvider(_KeycloakProvider):
    """CRUD for one realm (`/admin/realms/{realm}`); id = the realm's internal id."""

    args_model = RealmSpec
    computed = ("issuer_url", "jwks_url")
    kind = name_key = "realm"
    kcadm_target = "realms/{realm}"
    conflict_fix = "Choose another realm name, or hand it over by setting the realm attribute "

    def fetch(self, kc: KeycloakAdmin, props: Mapping[str, Any], id_: str) -> RealmRepresentation | None:
        return kc.get_realm(str(props["realm"]))

    def remove(self, kc: KeycloakAdmin, props: Mapping[str, Any], id_: str) -> None:
        kc.delete_realm(str(props["realm"]))

    def make(self, kc: KeycloakAdmin, spec: RealmSpec, raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        body = self._body(spec, RealmRepresentation(id=str(uuids.uuid4())))

        def post() -> RealmRepresentation:
            kc.create_realm(body)
            return body

        rep, _ = self._create_or_adopt(
            kc, spec, post, lambda: kc.get_realm(spec.realm), lambda existing: self._reconcile(kc, spec, existing),
            before_lookup=kc.renew_token,  # a realm made by a lost POST is invisible to the old token (403)
        )
        return rep.id, self._outs(raw, rep, kc.discovery(spec.realm))

    def read_outputs(self, kc: KeycloakAdmin, olds: Mapping[str, Any], rep: RealmRepresentation) -> dict[str, Any]:
        return self._outs(olds, rep, kc.discovery(str(olds["realm"])))

    def write(self, kc: KeycloakAdmin, spec: RealmSpec, raw: Mapping[str, Any], olds: Mapping[str, Any],
              current: RealmRepresentation, changed: set[str]) -> dict[str, Any]:
        rep = self._reconcile(kc, spec, current)
        if olds.get("issuer_url"):  # an update cannot change them: no need to ask again
            return self._outs(raw, rep, {"issuer": olds["issuer_url"], "jwks_uri": olds.get("jwks_url")})
        return self._outs(raw, rep, kc.discovery(spec.realm))

    @staticmethod
    def _body(spec: RealmSpec, rep: RealmRepresentation) -> RealmRepresentation:
        """`rep` with the managed fields overlaid: realm PUT merges top-level fields and attributes
        key by key, so the body carries only those."""
        rep = rep.model_copy(update={"realm": spec.realm}, deep=True)
        rep.attributes = {**(rep.attributes or {}), OWNER_ATTRIBUTE: spec.owner}
        for key in REALM_FIELDS:
            if getattr(spec, key) is not None:
                setattr(rep, key, getattr(spec, key))
        return rep

    def _reconcile(self, kc: KeycloakAdmin, spec: RealmSpec, current: RealmRepresentation) -> RealmRepresentation:
        """PUT the managed fields when one differs; the realm as it is afterwards."""
        want = self._body(spec, RealmRepresentation())
        keys = [k for k in REALM_FIELDS if getattr(spec, k) is not None]
        if current.owner != spec.owner or changed_fields(keys, dict(current), dict(want), normalise):
            kc.update_realm(spec.realm, want)
        return self._body(spec, current)

    @staticmethod
    def _outs(raw: Mapping[str, Any], rep: RealmRepresentation, discovery: Mapping[str, Any]) -> dict[str, Any]:
        """Managed fields (those set in `raw`, inputs or previous outputs) from the server."""
        outs = {"realm": rep.realm or raw.get("realm"), "connection": raw.get("connection"), "owner": rep.owner}
        outs.update({k: getattr(rep, k) for k in REALM_FIELDS if k == "enabled" or raw.get(k) is not None})
        return {**outs, "issuer_url": discovery.get("issuer"), "jwks_url": discovery.get("jwks_uri")}


# --- clients ----------------------------------------------------------------------------------


def _client_view(rep: ClientRepresentation) -> dict[str, Any]:
    """Server values keyed like the inputs."""
    attrs = rep.attributes or {}
    mapper = rep.audience_mapper()
    view = {k: getattr(rep, k) for k in ("client_id", *CLIENT_FIELDS, *_SCOPES.values())}
    return {
        **view,
        "enabled": rep.enabled if rep.enabled is not None else True,
        "access_type": rep.access_type,
        "post_logout_redirect_uris": [u for u in (attrs.get(POST_LOGOUT_ATTRIBUTE) or "").split("##") if u],
        "pkce_method": attrs.get(PKCE_ATTRIBUTE, ""),
        "audience": (mapper.config or {}).get("included.custom.audience") if mapper else None,
        "owner": rep.owner,
    }


class KeycloakClientProvider(_KeycloakProvider):
    """CRUD for one OIDC client (`/admin/realms/{realm}/clients/{uuid}`)."""

    args_model = ClientSpec
    computed = ("client_secret", "issuer_url", "jwks_url")
    removable = frozenset({"attributes", "audience"})
    kind, name_key = "client", "client_id"
    kcadm_target, where = "clients/{id} -r {realm}", " in realm {realm!r}"
    conflict_fix = ("Choose another client_id, delete or rename that client in Keycloak, or hand it over by setting "
                    "its attribute ")

    def fetch(self, kc: KeycloakAdmin, props: Mapping[str, Any], id_: str) -> ClientRepresentation | None:
        return kc.get_client(str(props["realm"]), id_)

    def remove(self, kc: KeycloakAdmin, props: Mapping[str, Any], id_: str) -> None:
        kc.delete_client(str(props["realm"]), id_)

    def make(self, kc: KeycloakAdmin, spec: ClientSpec, raw: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        scoped = spec.default_client_scopes is not None or spec.optional_client_scopes is not None
        if scoped:
            self._scope_ids(kc, spec)  # unknown scope names fail before anything is created
        body = self._desired(spec, None, set())
        body.protocol_mappers = [audience_mapper(spec.audience)] if spec.audience else None
        body.default_client_scopes = spec.default_client_scopes
        body.optional_client_scopes = spec.optional_client_scopes

        def post() -> ClientRepresentation:
            return body.model_copy(update={"id": kc.create_client(spec.realm, body)})

        def adopt(existing: ClientRepresentation) -> ClientRepresentation:
            assert existing.id
            return self._reconcile(kc, spec, kc.get_client(spec.realm, existing.id) or existing, set(), False)

        rep, created = self._create_or_adopt(kc, spec, post, lambda: kc.find_client(spec.realm, spec.client_id), adopt)
        if created and scoped:  # Keycloak attaches scopes of its own: read what it made
            rep = kc.get_client(spec.realm, rep.id) or rep
        return rep.id, self._outs(kc, raw, spec.model_dump(), rep)

    def read_outputs(self, kc: KeycloakAdmin, olds: Mapping[str, Any], rep: ClientRepresentation) -> dict[str, Any]:
        return self._outs(kc, olds, olds, rep)  # managed = set in the previous outputs

    def write(self, kc: KeycloakAdmin, spec: ClientSpec, raw: Mapping[str, Any], olds: Mapping[str, Any],
              current: ClientRepresentation, changed: set[str]) -> dict[str, Any]:
        assert current.id
        removed = set(olds.get("attributes") or {}) - set(spec.attributes or {})
        rep = self._reconcile(kc, spec, current, removed, olds.get("audience") is not None)
        if spec.access_type == "CONFIDENTIAL" and "rotate_secret_trigger" in changed:
            rep.secret = kc.regenerate_client_secret(spec.realm, current.id)
        elif current.access_type != rep.access_type:
            rep.secret = None  # it was not confidential: `_outs` asks for the secret Keycloak keeps now
        return self._outs(kc, raw, spec.model_dump(), rep)

    @staticmethod
    def _desired(spec: ClientSpec, current: ClientRepresentation | None, removed: set[str]) -> ClientRepresentation:
        """`current` (or an empty client) with every managed field overlaid."""
        rep = current.model_copy(deep=True) if current else ClientRepresentation()
        rep.client_id, rep.protocol, rep.enabled = spec.client_id, OIDC, spec.enabled
        rep.public_client, rep.bearer_only = spec.access_type == "PUBLIC", spec.access_type == "BEARER-ONLY"
        for key in CLIENT_FIELDS:
            value = getattr(spec, key)
            if value is None and rep.bearer_only and key in FLOWS:
                value = False  # bearer-only clients run no flows; Keycloak would default some to on
            if value is not None:
                setattr(rep, key, value)
        attrs = {**(rep.attributes or {}), **dict.fromkeys(removed, "")}  # PUT merges: an absent key would stay
        attrs.update({**(spec.attributes or {}), OWNER_ATTRIBUTE: spec.owner})
        if spec.pkce_method is not None:
            attrs[PKCE_ATTRIBUTE] = spec.pkce_method
        if spec.post_logout_redirect_uris is not None:
            attrs[POST_LOGOUT_ATTRIBUTE] = "##".join(spec.post_logout_redirect_uris)
        rep.attributes = attrs
        return rep

    def _reconcile(self, kc: KeycloakAdmin, spec: ClientSpec, current: ClientRepresentation, removed: set[str],
                   audience_was_managed: bool) -> ClientRepresentation:
        """Make `current` match `spec`: PUT when a managed field differs, then scopes and the mapper.
        Returns the client as it is afterwards."""
        assert current.id
        desired = self._desired(spec, current, removed)
        have, want = _client_view(current), _client_view(desired)
        keys = ["client_id", "enabled", "access_type", "owner", *CLIENT_FIELDS]
        keys += [k for k in ("pkce_method", "post_logout_redirect_uris") if getattr(spec, k) is not None]
        server_attrs = current.attributes or {}
        if (changed_fields(keys, have, want, normalise)
                or any(server_attrs.get(k, "") != v for k, v in (spec.attributes or {}).items())
                or any(server_attrs.get(k, "") != "" for k in removed)):
            kc.update_client(spec.realm, current.id, desired)
        desired.attributes = {k: v for k, v in (desired.attributes or {}).items() if v != ""}
        self._sync_scopes(kc, spec, desired)
        self._sync_audience(kc, spec, desired, audience_was_managed)
        return desired

    def _scope_ids(self, kc: KeycloakAdmin, spec: ClientSpec) -> dict[str, str]:
        available = {s.name: s.id for s in kc.realm_client_scopes(spec.realm) if s.name and s.id}
        missing = sorted({*(spec.default_client_scopes or []), *(spec.optional_client_scopes or [])} - set(available))
        if missing:
            raise KeycloakApiError(
                f"client scope(s) {', '.join(missing)} do not exist in realm {spec.realm!r}; available: "
                f"{', '.join(sorted(available))}. Fix default_client_scopes / optional_client_scopes", status=400)
        return available

    def _sync_scopes(self, kc: KeycloakAdmin, spec: ClientSpec, rep: ClientRepresentation) -> None:
        """Scopes change only through the per-scope endpoints (PUT ignores them): detach, then attach.
        `rep` ends with the declared lists."""
        assert rep.id
        plans: dict[ScopeKind, tuple[set[str], set[str]]] = {}
        for kind, attr in _SCOPES.items():
            wanted = getattr(spec, attr)
            if wanted is None:
                continue
            have = getattr(rep, attr)
            if have is None:
                have = kc.client_scopes(spec.realm, rep.id, kind)
            have = _without_keycloak_managed(have, spec.default_client_scopes) if kind == "default" else have
            if set(have) != set(wanted):
                plans[kind] = (set(wanted) - set(have), set(have) - set(wanted))
            setattr(rep, attr, list(wanted))
        ids = self._scope_ids(kc, spec) if plans else {}
        for attach in (False, True):
            for kind, (add, drop) in plans.items():
                for name in sorted(add if attach else drop):
                    if name in ids:
                        kc.link_client_scope(spec.realm, rep.id, kind, ids[name], attach=attach)

    def _sync_audience(self, kc: KeycloakAdmin, spec: ClientSpec, rep: ClientRepresentation,
                       was_managed: bool) -> None:
        """The `pulumi-audience` mapper as declared (a lost POST is looked up, not repeated: the
        kernel's create-or-adopt by the mapper's name). `rep` ends with the mapper as written."""
        assert rep.id
        uuid, mapper = rep.id, rep.audience_mapper()
        others = [m for m in rep.protocol_mappers or [] if m is not mapper]
        if spec.audience is None:
            if was_managed and mapper and mapper.id:
                kc.delete_protocol_mapper(spec.realm, uuid, mapper.id)
                rep.protocol_mappers = others
            return
        wanted = audience_mapper(spec.audience)
        if mapper is None:

            def refused(e: KeycloakApiError) -> NoReturn:
                raise KeycloakApiError(f"Keycloak refused the audience mapper of client {spec.client_id!r} "
                                       "(409)") from e

            mapper = post_or_find(
                lambda: kc.write_protocol_mapper(spec.realm, uuid, wanted),
                lambda: next((m for m in kc.list_protocol_mappers(spec.realm, uuid) if m.name == wanted.name), None),
                errors=KeycloakApiError, attempts=self.retry.attempts, pause=kc.pause,
                conflict=lambda e: e.status == 409, unheld_conflict=refused)
        assert mapper is not None
        if mapper.config != wanted.config or mapper.protocol_mapper != wanted.protocol_mapper:
            wanted.id = mapper.id
            kc.write_protocol_mapper(spec.realm, uuid, wanted)
            mapper = wanted
        rep.protocol_mappers = [*others, mapper]

    def _outs(self, kc: KeycloakAdmin, local: Mapping[str, Any], managed: Mapping[str, Any],
              rep: ClientRepresentation) -> dict[str, Any]:
        """Full outputs: `local` inputs echoed (realm, connection, the trigger), and from the server
        every field `managed` sets (the inputs on create/update, the previous outputs on read).
        Managed scope lists the representation leaves out (Keycloak blanks them for callers that
        may not view client scopes) come from the per-client scope endpoints; a confidential
        client's secret from the representation when it is the real one, else its own endpoint."""
        assert rep.id
        realm = str(local["realm"])
        for kind, attr in _SCOPES.items():
            if managed.get(attr) is not None and getattr(rep, attr) is None:
                setattr(rep, attr, kc.client_scopes(realm, rep.id, kind))
        if rep.default_client_scopes is not None:
            rep.default_client_scopes = _without_keycloak_managed(rep.default_client_scopes,
                                                                  managed.get("default_client_scopes"))
        view = _client_view(rep)
        outs = {k: local.get(k) for k in ("realm", "connection", "rotate_secret_trigger")}
        outs["owner"] = view["owner"]
        outs.update({k: v for k, v in view.items() if k in ("client_id", "enabled", "access_type") or
                     (k != "owner" and managed.get(k) is not None)})
        if managed.get("attributes") is not None:
            outs["attributes"] = {k: (rep.attributes or {}).get(k, "") for k in managed["attributes"]}
        secret = None
        if rep.access_type == "CONFIDENTIAL":
            secret = rep.secret if rep.secret and set(rep.secret) != {"*"} else kc.get_client_secret(realm, rep.id)
            secret = secret or kc.regenerate_client_secret(realm, rep.id)  # none yet (e.g. just made confidential)
        issuer = kc.conn.issuer_url(realm)
        return {**outs, "client_secret": secret, "issuer_url": issuer,
                "jwks_url": f"{issuer}/protocol/openid-connect/certs"}


# --- resource classes -------------------------------------------------------------------------


class _KeycloakResource(Resource):
    """`owner` is this program's stack (the provider process cannot know it); the connection's
    password and client secret are secrets (a whole-Output connection becomes one secret)."""

    program_inputs = ("owner",)
    secret_parts = {"connection": ("password", "client_secret")}
    secret_outputs: ClassVar[tuple[str, ...]] = ("connection",)

    @classmethod
    def with_program_inputs(cls, resource_name: str, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, "owner": program_stack()}


class KeycloakRealm(_KeycloakResource, module="keycloak", name="Realm"):
    """A Keycloak realm. Renaming replaces it (and with it everything inside); lifespans are seconds."""

    provider = KeycloakRealmProvider
    defaults = {"enabled": True}
    if TYPE_CHECKING:
        realm: Output[str]
        issuer_url: Output[str]
        jwks_url: Output[str]


class KeycloakClient(_KeycloakResource, module="keycloak", name="Client"):
    """An OpenID Connect client; the resource id is Keycloak's UUID of the client. Its inputs and outputs:
    docs/providers/keycloak.md."""

    provider = KeycloakClientProvider
    defaults = {"enabled": True, "access_type": "CONFIDENTIAL"}
    secret_outputs = ("connection", "client_secret")
    if TYPE_CHECKING:
        client_id: Output[str]
        audience: Output[str | None]
        client_secret: Output[str | None]

