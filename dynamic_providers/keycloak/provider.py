"""Pulumi dynamic providers and resource classes for Keycloak realms and OIDC clients.

`KeycloakRealm` and `KeycloakClient` follow the Pulumi SDK convention (name first, inputs as
keyword arguments, `opts` last). The Keycloak UUID is the resource id. Every object carries the
ownership attribute `pulumi.stack=<project>/<stack>`; a create that finds the name taken (409), or
that lost its answer, adopts the existing object only when it carries this stack's marker and
otherwise fails naming it, so faults never produce duplicates or silently take over foreign objects.

Contract per method (the engine runs them in `python -m pulumi.dynamic`, 4 threads, with the
provider object unpickled from state; the providers hold no state and no credentials):

* `check`: no network. Rejects bad input with the field and the fix; Unknown values (preview)
  skip only the rules that need them.
* `diff`: no network. Compares only the fields the user sets, normalised (URI lists as sets, `##`
  post-logout lists, attribute values as strings, `""` equal to absent). A realm change replaces;
  a `client_id` change renames in place; a `connection` change updates state without a request.
  Never raises: a stored value it cannot read (older or damaged state) counts as changed, so a
  malformed `realm` plans a replacement and anything else an update.
* `create`: waits (bounded) for a Keycloak that is still starting, POSTs, takes the id from
  `Location`, then reads the object back: outputs are the server's values. A POST repeated after
  a lost answer or a 409 waits first, with the client's backoff (`Retry-After` when given).
* `read`: GET (clients by id, realms by name); 404 means gone (empty id). A foreign object at that
  address also reads as gone: a realm whose id is not the state's (deleted and re-created outside
  Pulumi), or an object whose owner attribute is neither this stack's (PULUMI_PROJECT/PULUMI_STACK)
  nor the one the state recorded. A refresh then drops it from the state, and the next `up` plans
  a create, which refuses the object as foreign if it holds the name. Otherwise returns drift in
  managed fields as outputs and as inputs, so the next preview shows it.
* `update`: GET, check ownership (below), overlay the managed fields, PUT (Keycloak's PUT merges);
  scopes and the audience mapper through their own endpoints; the secret only through the rotation
  endpoint. Nothing is sent when only `connection` changed. Always returns the full outputs.
* `delete`: GET, check ownership, DELETE; an object already gone (404) counts as success.

Ownership on every write (`dynamic_providers/_kernel.py`): before an update or a delete sends
anything, the object at the state's address must be the one in the state (same id: a realm is
addressed by name, so one re-created outside Pulumi is caught here) and carry this stack's marker
(its `pulumi.stack` attribute is the `owner` input, or the marker the state recorded, so that a
renamed stack re-marks its own objects; a delete, which sees only the state, takes this stack's
PULUMI_PROJECT/PULUMI_STACK or the recorded marker). Anything else is refused untouched with
`ForeignObjectError`, naming the object, its id, its owner and how to hand it over. Requests
between the check and the write are not atomic on Keycloak's API: the window is one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypedDict, TypeVar

from pulumi import Input, Output
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import ValidationError

from dynamic_providers._kernel import (
    ForeignObjectError,
    OwnershipEncoder,
    Provider,
    Resource,
    changed_fields,
    contains_unknown,
    create_or_adopt,
    environment_stack,
    program_stack,
    refusal,
    strip,
    validation_failures,
)
from dynamic_providers.keycloak.client import KeycloakAdmin, KeycloakApiError, RetryPolicy, ScopeKind
from dynamic_providers.keycloak.models import (
    CLIENT_INPUTS,
    OIDC,
    OWNER_ATTRIBUTE,
    PKCE_ATTRIBUTE,
    POST_LOGOUT_ATTRIBUTE,
    REALM_FIELDS,
    ClientRepresentation,
    ClientSpec,
    Connection,
    Problem,
    RealmRepresentation,
    RealmSpec,
    attribute_text,
    audience_mapper,
    client_problems,
    connection_problems,
    realm_problems,
)

FLOWS = ("standard_flow_enabled", "implicit_flow_enabled", "direct_access_grants_enabled", "service_accounts_enabled")
# ClientSpec field -> ClientRepresentation attribute, for the plain top-level fields.
_CLIENT_SCALARS = (
    "name",
    "description",
    "root_url",
    "base_url",
    *FLOWS,
)
_SET_KEYS = frozenset(
    {"redirect_uris", "web_origins", "post_logout_redirect_uris", "default_client_scopes", "optional_client_scopes"}
)
_BOOL_KEYS = frozenset({"enabled", *FLOWS})
# Inputs that do not live on the server (never "drift").
_CLIENT_LOCAL = ("realm", "connection", "owner", "rotate_secret_trigger")
_ALWAYS_MANAGED = ("client_id", "enabled", "access_type")
# Unsetting these removes what the provider added (attribute keys, the audience mapper); unsetting
# any other input only stops managing it, and Keycloak keeps its value.
_REMOVABLE = frozenset({"attributes", "audience"})


def _owner_text(owner: str | None) -> str:
    return repr(owner) if owner else "absent"


def _stringify(value: Any) -> str:
    """`attribute_text`, lenient: anything else (already refused by check) compares as its str()."""
    try:
        return attribute_text(value)
    except ValueError:
        return str(value)


def normalise(key: str, value: Any) -> Any:
    """The comparable form of one input or output value (see module docstring)."""
    if value is None:
        return () if key == "attributes" else None
    if key in _SET_KEYS:
        return tuple(sorted({str(v) for v in value}))
    if key in _BOOL_KEYS:
        return _flag(value)
    if key == "attributes":
        return tuple(sorted((str(k), s) for k, v in dict(value).items() if (s := _stringify(v)) != ""))
    if key == "connection":
        return _normalise_connection(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) if float(value).is_integer() else float(value)
    text = _stringify(value)
    return text or None


def _flag(value: Any) -> bool:
    """A boolean as Keycloak or the state holds it; anything else is not read as one."""
    if isinstance(value, bool | int):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError(f"not a boolean: {value!r}")


def _normalise_connection(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    out = {k: v for k, v in value.items() if v is not None and v != ""}
    if isinstance(out.get("url"), str):
        out["url"] = out["url"].rstrip("/")
    if out.get("base_path") in ("/",):
        out.pop("base_path")
    out.setdefault("token_realm", "master")
    if "timeout" in out:
        out["timeout"] = float(out["timeout"])
    return tuple(sorted(out.items()))


def _changed(
    keys: Sequence[str], olds: Mapping[str, Any], news: Mapping[str, Any], defaults: Mapping[str, Any]
) -> list[str]:
    """Keys whose new value differs from the old output; unset (None) news are unmanaged unless removable."""
    news = {k: news.get(k, defaults.get(k)) for k in keys}
    dropped = [k for k in keys if news[k] is None and k in _REMOVABLE and olds.get(k)]
    managed = [k for k in keys if news[k] is not None]
    return changed_fields(managed, olds, news, normalise) + dropped


# --- ownership ----------------------------------------------------------------------------------


class KeycloakAttribute(OwnershipEncoder[str, "ClientRepresentation | RealmRepresentation"]):
    """Keycloak's ownership mark: the attribute `pulumi.stack=<project>/<stack>` on the object.

    The object at the state's address must also be the one in the state (same id: a realm is
    addressed by name, so one deleted and re-created outside Pulumi has the name, not the id)."""

    def __init__(self, what: str, state_id: str, kcadm_target: str) -> None:
        self.what, self.state_id, self.kcadm_target = what, state_id, kcadm_target

    def parse(self, raw: Any) -> str | None:
        return raw if isinstance(raw, str) and raw else None

    def owns(self, rep: ClientRepresentation | RealmRepresentation, marks: Sequence[str]) -> bool:
        return rep.id == self.state_id and rep.owner in marks

    def refuse(
        self, action: str, rep: ClientRepresentation | RealmRepresentation, id_: str, marks: Sequence[str]
    ) -> ForeignObjectError:
        ours = marks[0] if marks else "<project>/<stack>"
        us = repr(marks[0]) if marks else "unknown (no owner input and no PULUMI_PROJECT/PULUMI_STACK)"
        owned = f"its {OWNER_ATTRIBUTE} attribute is {_owner_text(rep.owner)}, this stack is {us}"
        kcadm = f"kcadm.sh update {self.kcadm_target} -s 'attributes.\"{OWNER_ATTRIBUTE}\"={ours}'"
        mark = f"set its attribute {OWNER_ATTRIBUTE}={ours} (`{kcadm}`)"
        if rep.id != self.state_id:
            return refusal(
                action,
                self.what,
                str(rep.id),
                f"it is not the one in this stack's state (id {self.state_id}): that one was deleted and this one "
                "created in its place outside Pulumi",
                owned,
                f"{mark}, then `pulumi refresh` and `pulumi up` adopt it",
            )
        return refusal(
            action,
            self.what,
            id_,
            "it is not managed by this stack",
            owned,
            f"{mark}, then run the same Pulumi command again",
        )


def _state_markers(props: Mapping[str, Any]) -> list[str]:
    """For read and delete, which see only the state: this stack's marker (the host's
    PULUMI_PROJECT/PULUMI_STACK) and the one the state recorded from the server."""
    return [m for m in dict.fromkeys((environment_stack(), props.get("owner"))) if isinstance(m, str) and m]


def _markers(*candidates: Any) -> list[str]:
    return [m for m in dict.fromkeys(candidates) if isinstance(m, str) and m]


def _failures(rules: list[Problem], types: list[Problem]) -> list[CheckFailure]:
    """Rule problems first (they say how to fix it); type problems for properties not yet named."""
    seen: set[tuple[str, str]] = set()
    named = {p for p, _ in rules}
    out = []
    for prop, reason in [*rules, *[(p, r) for p, r in types if p not in named]]:
        if (prop, reason) not in seen:
            seen.add((prop, reason))
            out.append(CheckFailure(prop, reason))
    return out


def _checked_defaults(news: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs with unset defaults filled in, and `owner` from the host's stack when the caller gave none."""
    props = strip(news)
    for key, value in defaults.items():
        if props.get(key) is None:
            props[key] = value
    if props.get("owner") is None and (owner := environment_stack()):
        props["owner"] = owner
    return props


def _owner_problems(props: Mapping[str, Any]) -> list[Problem]:
    if props.get("owner") is not None:
        return []
    return [
        (
            "owner",
            "no ownership marker: the resource classes set owner to '<project>/<stack>' and a provider run by "
            "the engine takes it from PULUMI_PROJECT/PULUMI_STACK; pass owner='<project>/<stack>'",
        )
    ]


def _connection(props: Mapping[str, Any]) -> Connection:
    raw = props.get("connection")
    try:
        return Connection.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise KeycloakApiError(f"invalid connection.{where}: {first['msg']}") from None


class _KeycloakProvider(Provider):
    """Shared tuning. The instance is pickled into state: only plain, non-secret settings live
    here, and only when they differ from the class defaults (so the default provider pickles as
    its class alone and one serialization serves every resource)."""

    meta_keys = ("connection", "owner")
    computed: ClassVar[tuple[str, ...]] = ("issuer_url", "jwks_url")
    retry: RetryPolicy = RetryPolicy()
    ready_timeout: float = 300.0

    def __init__(self, retry: RetryPolicy | None = None, ready_timeout: float = 300.0) -> None:
        super().__init__()
        if retry is not None:
            self.retry = retry
        if ready_timeout != type(self).ready_timeout:
            self.ready_timeout = ready_timeout

    def _type_problems(self, props: Mapping[str, Any]) -> list[Problem]:
        """Every known input against the model (unknowns skipped by the kernel), and every key
        that is not an input (even unset: a misspelling is named)."""
        fields = self.args_model.model_fields
        unknown = [
            (k, f"unknown input {k!r}; valid inputs are {', '.join(sorted(fields))}") for k in props if k not in fields
        ]
        data = {k: v for k, v in props.items() if k in fields and v is not None}
        return unknown + [(f.property, f.reason) for f in validation_failures(self.args_model, data)]

    def _admin(self, conn: Connection, *, wait_ready: bool = False) -> KeycloakAdmin:
        return KeycloakAdmin(conn, retry=self.retry, ready_timeout=self.ready_timeout if wait_ready else 0.0)

    def _create_or_adopt_with(
        self,
        kc: KeycloakAdmin,
        post: Callable[[], T],
        find: Callable[[], R | None],
        adopt: Callable[[R], T],
        what: str,
        *,
        before_lookup: Callable[[], None] = lambda: None,
    ) -> T:
        """POST; on 409 or a lost answer look the object up: adopt ours, refuse foreign, else POST
        again after the client's backoff (`Retry-After` first)."""

        def exhausted(e: KeycloakApiError) -> NoReturn:
            raise KeycloakApiError(f"could not create {what}: {e}", status=e.status) from e

        result, _ = create_or_adopt(
            post,
            lambda _err: find(),
            lambda existing, _err, _uncertain: (adopt(existing), False),
            errors=KeycloakApiError,
            attempts=self.retry.attempts,
            conflict=lambda e: e.status == 409,
            lost=lambda e: e.outcome_unknown,
            pause=kc.pause,
            unheld_conflict=lambda _err: None,  # the holder just went away: POST again
            exhausted=exhausted,
            before_lookup=before_lookup,
        )
        return result


T = TypeVar("T")
R = TypeVar("R")

# --- clients ----------------------------------------------------------------------------------


def _client_view(rep: ClientRepresentation) -> dict[str, Any]:
    """Server values keyed like the inputs."""
    attrs = rep.attributes or {}
    post_logout = attrs.get(POST_LOGOUT_ATTRIBUTE) or ""
    mapper = rep.audience_mapper()
    view: dict[str, Any] = {
        "client_id": rep.client_id,
        "enabled": rep.enabled if rep.enabled is not None else True,
        "access_type": rep.access_type,
        "redirect_uris": list(rep.redirect_uris or []),
        "web_origins": list(rep.web_origins or []),
        "post_logout_redirect_uris": [u for u in post_logout.split("##") if u],
        "pkce_method": attrs.get(PKCE_ATTRIBUTE, ""),
        "default_client_scopes": rep.default_client_scopes,
        "optional_client_scopes": rep.optional_client_scopes,
        "audience": mapper.config.get("included.custom.audience") if mapper else None,
        "owner": rep.owner,
    }
    for key in _CLIENT_SCALARS:
        view[key] = getattr(rep, key)
    return view


KEYCLOAK_MANAGED_DEFAULT_SCOPES = frozenset({"service_account"})
"""Default scopes Keycloak attaches and detaches itself: `service_account` while a client has service
accounts enabled (seen on Keycloak 26.7, not in the 26.6.2 API spec). Unless listed in
`default_client_scopes`, they are neither drift nor removed."""


def _without_keycloak_managed(names: list[str], declared: Any) -> list[str]:
    keep = set(declared) if isinstance(declared, list) else set()
    return [n for n in names if n not in KEYCLOAK_MANAGED_DEFAULT_SCOPES or n in keep]


class KeycloakClientProvider(_KeycloakProvider):
    """CRUD for one OIDC client (`/admin/realms/{realm}/clients/{uuid}`)."""

    args_model = ClientSpec
    computed = ("client_secret", "issuer_url", "jwks_url")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        props = _checked_defaults(news, {"enabled": True, "access_type": "CONFIDENTIAL"})
        types = self._type_problems(props)
        rules = client_problems(props) + connection_problems(props.get("connection")) + _owner_problems(props)
        attrs = props.get("attributes")
        if isinstance(attrs, Mapping) and not contains_unknown(attrs):
            props["attributes"] = {str(k): _stringify(v) for k, v in attrs.items()}
        if props.get("rotate_secret_trigger") is not None and not contains_unknown(props["rotate_secret_trigger"]):
            props["rotate_secret_trigger"] = _stringify(props["rotate_secret_trigger"])
        return CheckResult(props, _failures(rules, types))

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        olds, news = strip(_olds), strip(_news)
        changed = _changed(CLIENT_INPUTS, olds, news, {"enabled": True, "access_type": "CONFIDENTIAL"})
        replaces = ["realm"] if "realm" in changed else []
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        raw = strip(props)
        spec = ClientSpec.model_validate(raw)
        with self._admin(spec.connection, wait_ready=True) as kc:
            if spec.default_client_scopes is not None or spec.optional_client_scopes is not None:
                self._scope_ids(kc, spec)  # unknown scope names fail before anything is created
            uuid = self._create_or_adopt(kc, spec)
            rep = self._fill_scopes(kc, spec.realm, self._get(kc, spec, uuid), raw)
            secret = self._secret(kc, spec, rep)
        return CreateResult(uuid, self._outs(raw, dict(spec), spec.connection, spec.realm, rep, secret))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        olds = strip(props)
        conn = _connection(olds)
        realm = str(olds["realm"])
        with self._admin(conn) as kc:
            found = kc.get_client(realm, id_)
            if found is None or found.owner not in _state_markers(olds):
                return ReadResult(None, {})  # gone, or no longer this stack's: refresh forgets it
            rep = self._fill_scopes(kc, realm, found, olds)
            secret = None
            if rep.access_type == "CONFIDENTIAL":
                secret = self._secret_of(kc, realm, id_, rep)
        # Managed = set in the previous outputs; the secret belongs to confidential clients only.
        outs = self._outs(olds, olds, conn, realm, rep, secret)
        inputs = {k: v for k, v in outs.items() if k in CLIENT_INPUTS and v is not None}
        return ReadResult(id_, outs, inputs)

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        olds, raw = strip(_olds), strip(_news)
        spec = ClientSpec.model_validate(raw)
        changed = set(_changed(CLIENT_INPUTS, olds, raw, {"enabled": True, "access_type": "CONFIDENTIAL"}))
        if changed <= {"connection"}:
            # New credentials or URL only: nothing to send, but state must carry them for later steps.
            outs = {**olds, "connection": raw.get("connection")}
            return UpdateResult(outs)
        with self._admin(spec.connection) as kc:
            current = self._get(kc, spec, _id)
            self._require_ours("update", current, _id, spec.realm, _markers(spec.owner, olds.get("owner")))
            removed = set(olds.get("attributes") or {}) - set(spec.attributes or {})
            self._reconcile(kc, spec, current, removed, audience_was_managed=olds.get("audience") is not None)
            if "rotate_secret_trigger" in changed and spec.confidential:
                kc.regenerate_client_secret(spec.realm, _id)
            rep = self._fill_scopes(kc, spec.realm, self._get(kc, spec, _id), raw)
            secret = self._secret(kc, spec, rep)
        return UpdateResult(self._outs(raw, dict(spec), spec.connection, spec.realm, rep, secret))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        props = strip(_props)
        realm = str(props["realm"])
        with self._admin(_connection(props)) as kc:
            current = kc.get_client(realm, _id)
            if current is None:
                return  # already gone
            self._require_ours("delete", current, _id, realm, _state_markers(props))
            kc.delete_client(realm, _id)

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _require_ours(
        action: str, current: ClientRepresentation, uuid: str, realm: str, markers: Sequence[str]
    ) -> None:
        what = f"Keycloak client {current.client_id!r} in realm {realm!r}"
        KeycloakAttribute(what, uuid, f"clients/{uuid} -r {realm}").require(action, current, uuid, markers)

    @staticmethod
    def _get(kc: KeycloakAdmin, spec: ClientSpec, uuid: str) -> ClientRepresentation:
        rep = kc.get_client(spec.realm, uuid)
        if rep is None:
            raise KeycloakApiError(
                f"client {spec.client_id!r} ({uuid}) no longer exists in realm {spec.realm!r}; run `pulumi refresh` "
                "to drop it from the state, then `pulumi up` creates it again",
                status=404,
            )
        return rep

    def _create_or_adopt(self, kc: KeycloakAdmin, spec: ClientSpec) -> str:
        """POST; on 409 or a lost answer look the clientId up: adopt ours, refuse foreign, else POST again."""
        body = self._desired(spec, None, set())
        body.protocol_mappers = [audience_mapper(spec.audience)] if spec.audience else None
        body.default_client_scopes = spec.default_client_scopes
        body.optional_client_scopes = spec.optional_client_scopes

        def adopt(existing: ClientRepresentation) -> str:
            if existing.owner != spec.owner:
                raise KeycloakApiError(
                    f"client {spec.client_id!r} already exists in realm {spec.realm!r} (id {existing.id}) and is not "
                    f"managed by this stack: its {OWNER_ATTRIBUTE} attribute is "
                    f"{_owner_text(existing.owner)}, this stack is {spec.owner!r}. "
                    f"Choose another client_id, delete or rename that client in Keycloak, or hand it over by "
                    f"setting its attribute {OWNER_ATTRIBUTE}={spec.owner}",
                    status=409,
                )
            assert existing.id
            current = self._get(kc, spec, existing.id)
            self._reconcile(kc, spec, current, set(), audience_was_managed=False)
            return existing.id

        return self._create_or_adopt_with(
            kc,
            lambda: kc.create_client(spec.realm, body),
            lambda: kc.find_client(spec.realm, spec.client_id),
            adopt,
            f"client {spec.client_id!r} in realm {spec.realm!r}",
        )

    @staticmethod
    def _desired(spec: ClientSpec, current: ClientRepresentation | None, removed: set[str]) -> ClientRepresentation:
        """`current` (or an empty client) with every managed field overlaid."""
        rep = current.model_copy(deep=True) if current else ClientRepresentation()
        rep.client_id = spec.client_id
        rep.protocol = OIDC
        rep.enabled = spec.enabled
        rep.public_client = spec.public
        rep.bearer_only = spec.bearer_only
        for key in _CLIENT_SCALARS:
            value = getattr(spec, key)
            if value is None and spec.bearer_only and key in FLOWS:
                value = False  # bearer-only clients run no flows; Keycloak would default some to on
            if value is not None:
                setattr(rep, key, value)
        if spec.redirect_uris is not None:
            rep.redirect_uris = list(spec.redirect_uris)
        if spec.web_origins is not None:
            rep.web_origins = list(spec.web_origins)
        attrs = dict(rep.attributes or {})
        for key in removed:
            attrs[key] = ""  # PUT merges attributes: an absent key would be kept
        attrs.update(spec.attributes or {})
        attrs[OWNER_ATTRIBUTE] = spec.owner
        if spec.pkce_method is not None:
            attrs[PKCE_ATTRIBUTE] = spec.pkce_method
        if spec.post_logout_redirect_uris is not None:
            attrs[POST_LOGOUT_ATTRIBUTE] = "##".join(spec.post_logout_redirect_uris)
        rep.attributes = attrs
        return rep

    def _reconcile(
        self,
        kc: KeycloakAdmin,
        spec: ClientSpec,
        current: ClientRepresentation,
        removed: set[str],
        *,
        audience_was_managed: bool,
    ) -> None:
        """Make `current` match `spec`: PUT when a managed field differs, then scopes and the mapper."""
        assert current.id
        desired = self._desired(spec, current, removed)
        if self._put_needed(current, desired, spec, removed):
            kc.update_client(spec.realm, current.id, desired)
        self._sync_scopes(kc, spec, current)
        self._sync_audience(kc, spec, current, audience_was_managed)

    @staticmethod
    def _put_needed(
        current: ClientRepresentation, desired: ClientRepresentation, spec: ClientSpec, removed: set[str]
    ) -> bool:
        have, want = _client_view(current), _client_view(desired)
        keys = [*_ALWAYS_MANAGED, "owner", *_CLIENT_SCALARS, "redirect_uris", "web_origins"]
        if spec.pkce_method is not None:
            keys.append("pkce_method")
        if spec.post_logout_redirect_uris is not None:
            keys.append("post_logout_redirect_uris")
        if changed_fields(keys, have, want, normalise):
            return True
        server_attrs = current.attributes or {}
        if any(server_attrs.get(k, "") != v for k, v in (spec.attributes or {}).items()):
            return True
        return any(server_attrs.get(k, "") != "" for k in removed)

    @staticmethod
    def _fill_scopes(
        kc: KeycloakAdmin, realm: str, rep: ClientRepresentation, managed: Mapping[str, Any]
    ) -> ClientRepresentation:
        """Managed scope lists the representation leaves out (Keycloak blanks them for callers that
        may not view client scopes) come from the per-client scope endpoints instead."""
        assert rep.id
        kinds: tuple[tuple[ScopeKind, str], ...] = (
            ("default", "default_client_scopes"),
            ("optional", "optional_client_scopes"),
        )
        for kind, attr in kinds:
            if managed.get(attr) is not None and getattr(rep, attr) is None:
                setattr(rep, attr, [s.name for s in kc.client_scopes(realm, rep.id, kind) if s.name])
        declared = managed.get("default_client_scopes")
        if rep.default_client_scopes is not None:
            rep.default_client_scopes = _without_keycloak_managed(rep.default_client_scopes, declared)
        return rep

    def _scope_ids(self, kc: KeycloakAdmin, spec: ClientSpec) -> dict[str, str]:
        available = {s.name: s.id for s in kc.realm_client_scopes(spec.realm) if s.name and s.id}
        wanted = [*(spec.default_client_scopes or []), *(spec.optional_client_scopes or [])]
        missing = sorted(set(wanted) - set(available))
        if missing:
            raise KeycloakApiError(
                f"client scope(s) {', '.join(missing)} do not exist in realm {spec.realm!r}; available: "
                f"{', '.join(sorted(available))}. Fix default_client_scopes / optional_client_scopes",
                status=400,
            )
        return available

    def _sync_scopes(self, kc: KeycloakAdmin, spec: ClientSpec, current: ClientRepresentation) -> None:
        """Scopes change only through the per-scope endpoints (PUT ignores them): detach, then attach."""
        assert current.id
        uuid = current.id
        kinds: dict[ScopeKind, list[str] | None] = {
            "default": spec.default_client_scopes,
            "optional": spec.optional_client_scopes,
        }
        plans: dict[ScopeKind, tuple[set[str], set[str]]] = {}
        for kind, wanted in kinds.items():
            if wanted is None:
                continue
            have = current.default_client_scopes if kind == "default" else current.optional_client_scopes
            if have is None:
                have = [s.name for s in kc.client_scopes(spec.realm, uuid, kind) if s.name]
            if kind == "default":
                have = _without_keycloak_managed(have, wanted)
            if set(have) != set(wanted):
                plans[kind] = (set(wanted) - set(have), set(have) - set(wanted))
        if not plans:
            return
        ids = self._scope_ids(kc, spec)
        for kind, (_, drop) in plans.items():
            for name in sorted(drop):
                if name in ids:
                    kc.remove_client_scope(spec.realm, uuid, kind, ids[name])
        for kind, (add, _) in plans.items():
            for name in sorted(add):
                kc.add_client_scope(spec.realm, uuid, kind, ids[name])

    @staticmethod
    def _sync_audience(kc: KeycloakAdmin, spec: ClientSpec, current: ClientRepresentation, was_managed: bool) -> None:
        assert current.id
        mapper = current.audience_mapper()
        if spec.audience is None:
            if was_managed and mapper and mapper.id:
                kc.delete_protocol_mapper(spec.realm, current.id, mapper.id)
            return
        wanted = audience_mapper(spec.audience)
        if mapper is None:
            try:
                kc.create_protocol_mapper(spec.realm, current.id, wanted)
                return
            except KeycloakApiError as e:
                if e.status != 409 and not e.outcome_unknown:
                    raise
                failed = e
            # 409, or the answer was lost: look it up by name before adding it again.
            mapper = next((m for m in kc.list_protocol_mappers(spec.realm, current.id) if m.name == wanted.name), None)
            if mapper is None:
                if not failed.outcome_unknown:
                    raise KeycloakApiError(f"Keycloak refused the audience mapper of client {spec.client_id!r} (409)")
                kc.pause(1, failed)
                kc.create_protocol_mapper(spec.realm, current.id, wanted)
                return
        if mapper.config != wanted.config or mapper.protocol_mapper != wanted.protocol_mapper:
            wanted.id = mapper.id
            kc.update_protocol_mapper(spec.realm, current.id, wanted)

    def _secret(self, kc: KeycloakAdmin, spec: ClientSpec, rep: ClientRepresentation) -> str | None:
        """A confidential client's secret; one without a secret (e.g. just switched from PUBLIC) gets one."""
        if not spec.confidential or rep.id is None:
            return None
        return self._secret_of(kc, spec.realm, rep.id, rep) or kc.regenerate_client_secret(spec.realm, rep.id)

    @staticmethod
    def _secret_of(kc: KeycloakAdmin, realm: str, uuid: str, rep: ClientRepresentation) -> str | None:
        """The representation's secret when it is the real one, else the client-secret endpoint."""
        if rep.secret and set(rep.secret) != {"*"}:
            return rep.secret
        return kc.get_client_secret(realm, uuid)

    @staticmethod
    def _derived(conn: Connection, realm: str, secret: str | None) -> dict[str, Any]:
        issuer = conn.issuer_url(realm)
        return {"client_secret": secret, "issuer_url": issuer, "jwks_url": f"{issuer}/protocol/openid-connect/certs"}

    @classmethod
    def _outs(
        cls,
        local: Mapping[str, Any],
        managed: Mapping[str, Any],
        conn: Connection,
        realm: str,
        rep: ClientRepresentation,
        secret: str | None,
    ) -> dict[str, Any]:
        """Full outputs: `local` inputs echoed (`connection` under its own key), and from the server
        every field `managed` sets (the inputs on create/update, the previous outputs on read)."""
        view = _client_view(rep)
        outs: dict[str, Any] = {k: local.get(k) for k in _CLIENT_LOCAL}
        outs["owner"] = view["owner"]
        for key in (*_ALWAYS_MANAGED, *_CLIENT_SCALARS, *_SET_KEYS, "pkce_method", "audience"):
            if key in _ALWAYS_MANAGED or managed.get(key) is not None:
                outs[key] = view[key]
        if managed.get("attributes") is not None:
            server_attrs = rep.attributes or {}
            outs["attributes"] = {k: server_attrs.get(k, "") for k in managed["attributes"]}
        outs.update(cls._derived(conn, realm, secret if rep.access_type == "CONFIDENTIAL" else None))
        return outs


# --- realms -----------------------------------------------------------------------------------


def _realm_view(rep: RealmRepresentation) -> dict[str, Any]:
    view = {key: getattr(rep, key) for key in REALM_FIELDS}
    view["owner"] = rep.owner
    return view


class KeycloakRealmProvider(_KeycloakProvider):
    """CRUD for one realm (`/admin/realms/{realm}`); id = the realm's internal id."""

    args_model = RealmSpec

    _LOCAL = ("realm", "connection")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        props = _checked_defaults(news, {"enabled": True})
        types = self._type_problems(props)
        rules = realm_problems(props) + connection_problems(props.get("connection")) + _owner_problems(props)
        return CheckResult(props, _failures(rules, types))

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        olds, news = strip(_olds), strip(_news)
        keys = ["realm", "connection", "owner", *REALM_FIELDS]
        changed = _changed(keys, olds, news, {"enabled": True})
        replaces = ["realm"] if "realm" in changed else []
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        raw = strip(props)
        spec = RealmSpec.model_validate(raw)
        with self._admin(spec.connection, wait_ready=True) as kc:
            self._create_or_adopt(kc, spec)
            rep = self._get(kc, spec.realm)
            discovery = kc.discovery(spec.realm)
        assert rep.id
        return CreateResult(rep.id, self._outs(raw, rep, discovery))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        olds = strip(props)
        conn = _connection(olds)
        with self._admin(conn) as kc:
            rep = kc.get_realm(str(olds["realm"]))
            if rep is None or rep.id != id_ or rep.owner not in _state_markers(olds):
                return ReadResult(None, {})  # gone, another realm now holds the name, or no longer ours
            discovery = kc.discovery(str(olds["realm"]))
        outs = self._outs(olds, rep, discovery)
        inputs = {k: v for k, v in outs.items() if k in RealmSpec.model_fields and v is not None}
        return ReadResult(id_, outs, inputs)

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        olds, raw = strip(_olds), strip(_news)
        spec = RealmSpec.model_validate(raw)
        changed = set(_changed(["realm", "connection", "owner", *REALM_FIELDS], olds, raw, {"enabled": True}))
        if changed <= {"connection"}:
            return UpdateResult({**olds, "connection": raw.get("connection")})
        with self._admin(spec.connection) as kc:
            current = self._get(kc, spec.realm)
            self._require_ours("update", current, _id, _markers(spec.owner, olds.get("owner")))
            self._reconcile(kc, spec, current)
            rep = self._get(kc, spec.realm)
            discovery = kc.discovery(spec.realm)
        return UpdateResult(self._outs(raw, rep, discovery))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        props = strip(_props)
        realm = str(props["realm"])
        with self._admin(_connection(props)) as kc:
            current = kc.get_realm(realm)
            if current is None:
                return  # already gone
            self._require_ours("delete", current, _id, _state_markers(props))
            kc.delete_realm(realm)

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _require_ours(action: str, current: RealmRepresentation, realm_id: str, markers: Sequence[str]) -> None:
        what = f"Keycloak realm {current.realm!r}"
        KeycloakAttribute(what, realm_id, f"realms/{current.realm}").require(action, current, realm_id, markers)

    @staticmethod
    def _get(kc: KeycloakAdmin, realm: str) -> RealmRepresentation:
        rep = kc.get_realm(realm)
        if rep is None:
            raise KeycloakApiError(
                f"realm {realm!r} no longer exists; run `pulumi refresh` to drop it from the state", status=404
            )
        return rep

    @staticmethod
    def _body(spec: RealmSpec) -> RealmRepresentation:
        """Only the managed fields: realm PUT merges top-level fields and attributes key by key."""
        rep = RealmRepresentation(realm=spec.realm, attributes={OWNER_ATTRIBUTE: spec.owner})
        for key in REALM_FIELDS:
            value = getattr(spec, key)
            if value is not None:
                setattr(rep, key, value)
        return rep

    def _create_or_adopt(self, kc: KeycloakAdmin, spec: RealmSpec) -> None:
        def adopt(existing: RealmRepresentation) -> None:
            if existing.owner != spec.owner:
                raise KeycloakApiError(
                    f"realm {spec.realm!r} already exists (id {existing.id}) and is not managed by this stack: its "
                    f"{OWNER_ATTRIBUTE} attribute is {_owner_text(existing.owner)}, this stack "
                    f"is {spec.owner!r}. Choose another realm name, or hand it over by setting the realm attribute "
                    f"{OWNER_ATTRIBUTE}={spec.owner}",
                    status=409,
                )
            self._reconcile(kc, spec, existing)

        self._create_or_adopt_with(
            kc,
            lambda: kc.create_realm(self._body(spec)),
            lambda: kc.get_realm(spec.realm),
            adopt,
            f"realm {spec.realm!r}",
            before_lookup=kc.renew_token,  # a realm made by a lost POST is invisible to the old token (403)
        )

    def _reconcile(self, kc: KeycloakAdmin, spec: RealmSpec, current: RealmRepresentation) -> None:
        have, want = _realm_view(current), _realm_view(self._body(spec))
        keys = ["owner", *(k for k in REALM_FIELDS if getattr(spec, k) is not None)]
        if changed_fields(keys, have, want, normalise):
            kc.update_realm(spec.realm, self._body(spec))

    @staticmethod
    def _outs(raw: Mapping[str, Any], rep: RealmRepresentation, discovery: Mapping[str, Any]) -> dict[str, Any]:
        """Managed fields (those set in `raw`, inputs or previous outputs) from the server."""
        view = _realm_view(rep)
        outs: dict[str, Any] = {"realm": rep.realm or raw.get("realm"), "connection": raw.get("connection")}
        outs["owner"] = view["owner"]
        for key in REALM_FIELDS:
            if key == "enabled" or raw.get(key) is not None:
                outs[key] = view[key]
        outs["issuer_url"] = discovery.get("issuer")
        outs["jwks_url"] = discovery.get("jwks_uri")
        return outs


# --- resource classes -------------------------------------------------------------------------


class ConnectionArgs(TypedDict, total=False):
    """The `connection` input. `password` and `client_secret` are made Pulumi secrets here."""

    url: Input[str]
    base_path: Input[str]
    token_realm: Input[str]
    username: Input[str]
    password: Input[str]
    client_id: Input[str]
    client_secret: Input[str]
    ca_bundle_pem: Input[str]
    timeout: Input[float]


class _KeycloakResource(Resource):
    """`owner` is this program's stack (the provider process cannot know it); the connection's
    password and client secret are secrets (a whole-Output connection becomes one secret)."""

    program_inputs = ("owner",)
    secret_outputs: ClassVar[tuple[str, ...]] = ("connection",)

    @classmethod
    def with_program_inputs(cls, resource_name: str, props: dict[str, Any]) -> dict[str, Any]:
        connection = props["connection"]
        if isinstance(connection, Mapping):
            connection = {k: v for k, v in connection.items() if v is not None}
            for key in ("password", "client_secret"):
                if key in connection:
                    connection[key] = Output.secret(connection[key])
        else:
            connection = Output.secret(connection)
        return {**props, "connection": connection, "owner": program_stack()}


class KeycloakRealm(_KeycloakResource, module="keycloak", name="Realm"):
    """A Keycloak realm. Renaming replaces it (and with it everything inside); lifespans are seconds."""

    provider = KeycloakRealmProvider
    defaults = {"enabled": True}
    if TYPE_CHECKING:
        realm: Output[str]
        issuer_url: Output[str]
        jwks_url: Output[str]


class KeycloakClient(_KeycloakResource, module="keycloak", name="Client"):
    """An OpenID Connect client; the resource id is Keycloak's UUID of the client.

    Unset optional inputs are not managed: Keycloak keeps or defaults them and diffs ignore them.
    `audience` adds the `pulumi-audience` mapper so access and ID tokens carry that `aud`.
    Changing `rotate_secret_trigger` (any string) regenerates a confidential client's secret.
    """

    provider = KeycloakClientProvider
    defaults = {"enabled": True, "access_type": "CONFIDENTIAL"}
    secret_outputs = ("connection", "client_secret")
    if TYPE_CHECKING:
        client_id: Output[str]
        audience: Output[str | None]
        client_secret: Output[str | None]
