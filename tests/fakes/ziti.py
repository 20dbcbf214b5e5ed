"""A loopback OpenZiti controller: the Edge Management API paths the Ziti providers use.

Built from the swagger (`ziti_swagger_definitions.json` is the `definitions` section of
openziti/edge-api `management.yml`, verbatim; `test_ziti_fake.py` checks it against the full spec
when that is present) and from the controller's source, with its real quirks:

- every request body is validated against the operation's swagger definition (`caCreate`,
  `caPatch`, ...; `x-nullable` honoured, unknown fields ignored as go-swagger does); failures
  answer 400 `COULD_NOT_VALIDATE` in the `apiErrorEnvelope`;
- sessions: `POST /authenticate?method=password` answers the session with a `zt-session` header;
  sessions expire after `session_timeout` idle seconds (30 min by default) or on demand
  (`expire_sessions()`, `session_max_requests`), then every call answers 401 `UNAUTHORIZED` with
  `WWW-Authenticate: zt-session ... error="expired"`;
- unique indexes (names; CA fingerprint; signer issuer and kid; identity externalId) answer a
  create 400 `COULD_NOT_VALIDATE` with cause `{"field", "reason": "duplicate value 'X' in unique
  index on <store> store", "value"}`; there is no DUPLICATE code. An update (PUT, PATCH) that would
  break one applies nothing: a taken name is answered 200 as if applied, any other value 500
  `UNHANDLED` with the duplicate-value text in `cause.message` (as the real 1.7.2);
- creates answer 201 `{"data": {"id", "_links"}}`; PUT and PATCH answer 200 with an empty
  envelope (no entity); PATCH replaces `tags` as a whole; `certPem` is ignored on CA update;
- lists page with `limit` (default 10, clamped to 500) and `offset`, filter in a ZitiQL subset
  (`field = "v"`, `!=`, `contains`, `and`); anything else answers 400 `INVALID_FILTER`;
- CA verification as `ca_router.go` `VerifyCert`: 409 `CA_ALREADY_VERIFIED`, first PEM block
  only, CN must equal `verificationToken` (400 `INVALID_COMMON_NAME`), the certificate must be
  signed by the registered CA certificate and valid at the controller's clock (`clock_skew`)
  (400 `CERTIFICATE_FAILED_VALIDATION`);
- the controller's own field rules (`validateExternalIdClaim`, ext-JWT signer key source, role
  attribute prefixes, referenced ids exist, referenced entities cannot be deleted).
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from tests.harness.loopback import App, LoopbackServer, Request, Response

API = "/edge/management/v1"
DEFINITIONS_FILE = Path(__file__).with_name("ziti_swagger_definitions.json")
DEFAULT_LIMIT = 10
MAX_LIMIT = 500
MAX_OFFSET = 100000
ROUTER_ENROLLMENT_DURATION = datetime.timedelta(minutes=180)
DEFAULT_AUTH_POLICY_ID = "default"


def load_definitions() -> dict[str, Any]:
    return dict(json.loads(DEFINITIONS_FILE.read_text())["definitions"])


def _nullable(schema: Any) -> Any:
    """Swagger 2.0 + go-swagger extensions -> JSON Schema draft 4."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items() if not k.startswith("x-") and k != "example"}
    if schema.get("x-nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def json_schema_definitions() -> dict[str, Any]:
    defs = {name: _nullable(schema) for name, schema in load_definitions().items()}
    # `tags` values: the spec says `additionalProperties: {type: object}` (go-swagger's interface{}),
    # its description "null, string, boolean" is what the controller stores.
    defs["subTags"] = {"type": "object", "additionalProperties": {"type": ["string", "boolean", "null"]}}
    return defs


_SCHEMA_LOCK = threading.Lock()
_VALIDATORS: dict[str, jsonschema.Draft4Validator] = {}


def validator(definition: str) -> jsonschema.Draft4Validator:
    with _SCHEMA_LOCK:
        if not _VALIDATORS:
            defs = json_schema_definitions()
            for name in defs:
                _VALIDATORS[name] = jsonschema.Draft4Validator({"definitions": defs, "$ref": f"#/definitions/{name}"})
        return _VALIDATORS[definition]


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        cause: Any = None,
        cause_message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.cause = cause
        self.cause_message = cause_message
        self.headers = headers or {}

    def response(self, url_vars: dict[str, str]) -> Response:
        body = {
            "error": {
                "args": {"urlVars": url_vars},
                "cause": self.cause,
                "causeMessage": self.cause_message,
                "code": self.code,
                "message": self.message,
                "requestId": str(uuid.uuid4()),
            },
            "meta": {"apiEnrollmentVersion": "0.0.1", "apiVersion": "0.0.1"},
        }
        if self.cause is None:
            del body["error"]["cause"]  # omitempty
        return Response(self.status, body, dict(self.headers))


def field_error(field_name: str, reason: str, value: Any) -> ApiError:
    return ApiError(
        400,
        "COULD_NOT_VALIDATE",
        "The supplied request contains an invalid document",
        {"field": field_name, "reason": reason, "value": value},
        f"{field_name}: {reason}",
    )


def not_found() -> ApiError:
    return ApiError(404, "NOT_FOUND", "The resource requested was not found or is no longer available")


def empty_envelope() -> dict[str, Any]:
    return {"data": {}, "meta": {}}


def fake_jwt(claims: dict[str, Any]) -> str:
    def b64(obj: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    sig = base64.urlsafe_b64encode(hashlib.sha256(json.dumps(claims).encode()).digest()).rstrip(b"=").decode()
    return f"{b64({'alg': 'RS256', 'typ': 'JWT'})}.{b64(claims)}.{sig}"


# --- the ZitiQL subset ------------------------------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=|contains\b)|(?P<kw>and\b)|(?P<lit>true\b|false\b|null\b|-?\d+)'
    r"|(?P<ident>[A-Za-z_][A-Za-z0-9_.]*))"
)


def parse_filter(text: str) -> list[tuple[str, str, Any]]:
    """`a = "x" and b != true` -> [(field, op, value)]; anything else raises INVALID_FILTER."""
    pos, terms, expect = 0, [], "ident"
    current: list[Any] = []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ApiError(400, "INVALID_FILTER", f"the filter could not be parsed at offset {pos}: {text!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind or "")
        if expect == "ident" and kind == "ident":
            current = [value]
            expect = "op"
        elif expect == "op" and kind == "op":
            current.append(value)
            expect = "value"
        elif expect == "value" and kind in ("str", "lit"):
            if kind == "str":
                literal: Any = re.sub(r"\\(.)", r"\1", value[1:-1])
            else:
                literal = {"true": True, "false": False, "null": None}.get(value, value)
                if isinstance(literal, str):
                    literal = int(literal)
            current.append(literal)
            terms.append((current[0], current[1], current[2]))
            expect = "and"
        elif expect == "and" and kind == "kw":
            expect = "ident"
        else:
            raise ApiError(400, "INVALID_FILTER", f"unexpected {value!r} in filter {text!r}")
    if expect not in ("and",) and text:
        raise ApiError(400, "INVALID_FILTER", f"incomplete filter {text!r}")
    return terms


def matches(entity: dict[str, Any], terms: list[tuple[str, str, Any]], filterable: set[str]) -> bool:
    for name, op, value in terms:
        if name not in filterable:
            raise ApiError(400, "INVALID_FILTER", f"{name!r} is not a filterable field")
        actual = entity.get(name)
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
        if op == "contains" and (not isinstance(actual, str | list) or value not in actual):
            return False
    return True


# --- entity kinds ---------------------------------------------------------------------------------


@dataclass
class Kind:
    collection: str
    store: str  # the bolt store name in duplicate-value messages
    create_def: str
    update_def: str
    patch_def: str
    detail_def: str
    unique: tuple[str, ...] = ("name",)
    nullable_unique: tuple[str, ...] = ()
    filterable: frozenset[str] = frozenset({"id", "name", "createdAt", "updatedAt"})


KINDS = {
    k.collection: k
    for k in (
        Kind(
            "cas",
            "cas",
            "caCreate",
            "caUpdate",
            "caPatch",
            "caDetail",
            nullable_unique=("fingerprint",),
            filterable=frozenset({"id", "name", "fingerprint", "isVerified", "isAuthEnabled", "createdAt"}),
        ),
        Kind(
            "external-jwt-signers",
            "externalJwtSigners",
            "externalJwtSignerCreate",
            "externalJwtSignerUpdate",
            "externalJwtSignerPatch",
            "externalJwtSignerDetail",
            unique=("name", "issuer"),
            nullable_unique=("kid", "fingerprint"),
            filterable=frozenset({"id", "name", "issuer", "enabled"}),
        ),
        Kind(
            "auth-policies",
            "authPolicies",
            "authPolicyCreate",
            "authPolicyUpdate",
            "authPolicyPatch",
            "authPolicyDetail",
        ),
        Kind(
            "identities",
            "identities",
            "identityCreate",
            "identityUpdate",
            "identityPatch",
            "identityDetail",
            nullable_unique=("externalId",),
            filterable=frozenset({"id", "name", "externalId", "isAdmin", "authPolicyId", "roleAttributes"}),
        ),
        Kind(
            "edge-routers",
            "routers",
            "edgeRouterCreate",
            "edgeRouterUpdate",
            "edgeRouterPatch",
            "edgeRouterDetail",
            filterable=frozenset({"id", "name", "isVerified", "roleAttributes"}),
        ),
        Kind(
            "service-policies",
            "servicePolicies",
            "servicePolicyCreate",
            "servicePolicyUpdate",
            "servicePolicyPatch",
            "servicePolicyDetail",
            filterable=frozenset({"id", "name", "type", "semantic"}),
        ),
        Kind(
            "edge-router-policies",
            "edgeRouterPolicies",
            "edgeRouterPolicyCreate",
            "edgeRouterPolicyUpdate",
            "edgeRouterPolicyPatch",
            "edgeRouterPolicyDetail",
        ),
        Kind(
            "service-edge-router-policies",
            "serviceEdgeRouterPolicies",
            "serviceEdgeRouterPolicyCreate",
            "serviceEdgeRouterPolicyUpdate",
            "serviceEdgeRouterPolicyPatch",
            "serviceEdgeRouterPolicyDetail",
        ),
    )
}

# Role lists of each policy kind and the collection their `@id` entries refer to.
POLICY_ROLES = {
    "service-policies": {
        "serviceRoles": "services",
        "identityRoles": "identities",
        "postureCheckRoles": "posture-checks",
    },
    "edge-router-policies": {"edgeRouterRoles": "edge-routers", "identityRoles": "identities"},
    "service-edge-router-policies": {"edgeRouterRoles": "edge-routers", "serviceRoles": "services"},
}


@dataclass
class Session:
    token: str
    created: float
    last_used: float
    requests: int = 0


@dataclass
class ZitiController:
    """In-memory controller state plus the `App` that serves it."""

    username: str = "admin"
    password: str = "admin-password"
    session_timeout: float = 1800.0
    session_max_requests: int | None = None
    clock_skew: datetime.timedelta = datetime.timedelta(0)
    address: str = "localhost:1280"
    app: App = field(default_factory=App)
    tls_ca_pem: str | None = None
    entities: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    authentications: int = 0
    rejected_bodies: list[tuple[str, str, str]] = field(default_factory=list)
    on_request: Callable[[Request], None] | None = None

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        for collection in (*KINDS, "services", "posture-checks"):
            self.entities.setdefault(collection, {})
        now = iso(now_utc())
        self.entities["auth-policies"][DEFAULT_AUTH_POLICY_ID] = {
            "id": DEFAULT_AUTH_POLICY_ID,
            "name": "Default",
            "createdAt": now,
            "updatedAt": now,
            "tags": {},
            "isSystem": True,
            "primary": {
                "cert": {"allowed": True, "allowExpiredCerts": True},
                "extJwt": {"allowed": True, "allowedSigners": []},
                "updb": {
                    "allowed": True,
                    "minPasswordLength": 5,
                    "requireSpecialChar": False,
                    "requireNumberChar": False,
                    "requireMixedCase": False,
                    "maxAttempts": 0,
                    "lockoutDurationMinutes": 0,
                },
            },
            "secondary": {"requireTotp": False, "requireExtJwtSigner": None},
        }
        self._routes()

    # --- test controls ------------------------------------------------------------------------

    def serve(self, loopback: Callable[..., LoopbackServer]) -> LoopbackServer:
        """Start on a loopback TLS server; the controller's CA bundle is that server's CA."""
        srv = loopback(self.app)
        self.tls_ca_pem = srv.ca_pem
        self.address = f"localhost:{srv.port}"
        return srv

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def now(self) -> datetime.datetime:
        return now_utc() + self.clock_skew

    def all(self, collection: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(e) for e in self.entities[collection].values()]

    def put_entity(self, collection: str, entity: dict[str, Any]) -> str:
        """Insert an entity directly (as another tool or a previous run would have created it)."""
        with self.lock:
            id_ = entity.get("id") or _new_id()
            now = iso(now_utc())
            self.entities[collection][id_] = {"tags": {}, "createdAt": now, "updatedAt": now, **entity, "id": id_}
            return id_

    def enroll_router(self, id_: str) -> None:
        """What `ziti router enroll` does to the router entity: verified, enrollment consumed."""
        with self.lock:
            router = self.entities["edge-routers"][id_]
            router.update(
                isVerified=True,
                enrollmentJwt=None,
                enrollmentToken=None,
                enrollmentExpiresAt=None,
                enrollmentCreatedAt=None,
                fingerprint=hashlib.sha1(id_.encode()).hexdigest(),  # noqa: S324 (a stand-in fingerprint)
            )

    # --- plumbing -----------------------------------------------------------------------------

    def _routes(self) -> None:
        app = self.app

        def route(method: str, pattern: str, *, auth: bool = True) -> Callable[[Callable[..., Any]], None]:
            def register(fn: Callable[..., Any]) -> None:
                def handler(req: Request) -> Response:
                    extra: dict[str, str] = {}
                    try:
                        if self.on_request is not None:
                            self.on_request(req)
                        with self.lock:
                            if auth:
                                extra = self._authorize(req)
                            result = fn(req, **req.params)
                    except ApiError as e:
                        return e.response(req.params)
                    if isinstance(result, Response):
                        result.headers.update(extra)
                        return result
                    status, body = result
                    return Response(status, body, extra)

                app.route(method, pattern)(handler)

            return register

        route("GET", "/.well-known/est/cacerts", auth=False)(self._cacerts)
        route("GET", f"{API}/version", auth=False)(self._version)
        route("POST", f"{API}/authenticate", auth=False)(self._authenticate)
        route("DELETE", f"{API}/current-api-session")(self._logout)
        route("POST", f"{API}/cas/{{id}}/verify")(self._verify_ca)
        route("GET", f"{API}/cas/{{id}}/jwt")(self._ca_jwt)
        route("POST", f"{API}/edge-routers/{{id}}/re-enroll")(self._re_enroll)
        for collection in KINDS:
            route("GET", f"{API}/{collection}")(self._lister(collection))
            route("POST", f"{API}/{collection}")(self._creator(collection))
            route("GET", f"{API}/{collection}/{{id}}")(self._detailer(collection))
            route("PUT", f"{API}/{collection}/{{id}}")(self._updater(collection, patch=False))
            route("PATCH", f"{API}/{collection}/{{id}}")(self._updater(collection, patch=True))
            route("DELETE", f"{API}/{collection}/{{id}}")(self._deleter(collection))

    def _authorize(self, req: Request) -> dict[str, str]:
        token = req.header("zt-session")
        challenge = 'zt-session realm="zt-session" error="{}" error_description="{}"'
        if not token:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "The request could not be completed. The session is not authorized or the credentials are invalid",
                headers={"WWW-Authenticate": challenge.format("missing", "no token was found")},
            )
        session = self.sessions.get(token)
        now = time.monotonic()
        expired = session is not None and (
            now - session.last_used > self.session_timeout
            or (self.session_max_requests is not None and session.requests >= self.session_max_requests)
        )
        if session is None or expired:
            self.sessions.pop(token, None)
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "The request could not be completed. The session is not authorized or the credentials are invalid",
                headers={"WWW-Authenticate": challenge.format("expired", "the session token has expired")},
            )
        session.last_used = now
        session.requests += 1
        expires = now_utc() + datetime.timedelta(seconds=self.session_timeout)
        return {"expiration-seconds": str(int(self.session_timeout)), "expires-at": iso(expires)}

    def _body(self, req: Request, definition: str) -> dict[str, Any]:
        try:
            body = json.loads(req.body or b"null")
        except ValueError as e:
            raise ApiError(400, "COULD_NOT_PARSE_BODY", "The body of the request could not be parsed", str(e)) from e
        errors = sorted(validator(definition).iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            path = ".".join(str(p) for p in err.absolute_path) or "(root)"
            if err.validator == "required":  # as go-swagger: the cause names the missing property
                missing = re.search(r"'([^']+)' is a required property", err.message)
                path = ".".join(p for p in (".".join(str(x) for x in err.absolute_path), missing and missing.group(1))
                                if p) or path
            self.rejected_bodies.append((req.method, req.path, f"{path}: {err.message}"))
            raise ApiError(
                400,
                "COULD_NOT_VALIDATE",
                "The supplied request contains an invalid document",
                {"field": path, "message": f"{path}: {err.message}", "type": err.validator, "value": err.instance},
                "schema validation failed",
            )
        if not isinstance(body, dict):
            raise ApiError(400, "COULD_NOT_PARSE_BODY", "The body of the request could not be parsed")
        return body

    # --- unauthenticated endpoints ----------------------------------------------------------------

    def _cacerts(self, req: Request) -> Response:
        if not self.tls_ca_pem:
            raise not_found()
        certs = x509.load_pem_x509_certificates(self.tls_ca_pem.encode())
        der = pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
        return Response(200, base64.encodebytes(der).decode(), content_type="application/pkcs7-mime")

    def _version(self, req: Request) -> tuple[int, Any]:
        data = {
            "version": "v2.1.0",
            "revision": "fake",
            "buildDate": "2026-08-22",
            "runtimeVersion": "go1.24",
            "apiVersions": {"edge-management": {"v1": {"path": API}}},
            "capabilities": ["OIDC_AUTH"],
        }
        return 200, {"data": data, "meta": {}}

    def _authenticate(self, req: Request) -> Response:
        if req.arg("method") != "password":
            raise ApiError(400, "INVALID_AUTH_METHOD", f"unsupported method {req.arg('method')!r}")
        body = self._body(req, "authenticate")
        if body.get("username") != self.username or body.get("password") != self.password:
            raise ApiError(401, "INVALID_AUTH", "The authentication request failed")
        self.authentications += 1
        token = str(uuid.uuid4())
        now = time.monotonic()
        self.sessions[token] = Session(token, now, now)
        created = now_utc()
        data = {
            "id": _new_id(),
            "_links": {"self": {"href": "./current-api-session"}},
            "createdAt": iso(created),
            "updatedAt": iso(created),
            "token": token,
            "expiresAt": iso(created + datetime.timedelta(seconds=self.session_timeout)),
            "expirationSeconds": int(self.session_timeout),
            "identity": {"id": "admin-id", "name": "Default Admin", "entity": "identities"},
            "identityId": "admin-id",
            "configTypes": [],
            "isMfaRequired": False,
            "isMfaComplete": False,
        }
        return Response(200, {"data": data, "meta": {}}, {"zt-session": token})

    def _logout(self, req: Request) -> tuple[int, Any]:
        self.sessions.pop(req.header("zt-session") or "", None)
        return 200, empty_envelope()

    # --- generic CRUD -------------------------------------------------------------------------------

    def _get(self, collection: str, id_: str) -> dict[str, Any]:
        entity = self.entities[collection].get(id_)
        if entity is None:
            raise not_found()
        return entity

    def _lister(self, collection: str) -> Callable[..., tuple[int, Any]]:
        kind = KINDS[collection]

        def handler(req: Request) -> tuple[int, Any]:
            limit = _int_arg(req, "limit", DEFAULT_LIMIT)
            offset = _int_arg(req, "offset", 0)
            if limit == -1:
                limit = MAX_LIMIT  # "return all" is clamped for public queries
            elif limit <= 0:
                limit = DEFAULT_LIMIT
            limit = min(limit, MAX_LIMIT)
            offset = min(max(offset, 0), MAX_OFFSET)
            terms = parse_filter(req.arg("filter") or "")
            found = [e for e in self.entities[collection].values() if matches(e, terms, set(kind.filterable))]
            found.sort(key=lambda e: (str(e.get("name", "")), e["id"]))
            page = [self._detail(collection, e) for e in found[offset : offset + limit]]
            meta = {
                "pagination": {"limit": limit, "offset": offset, "totalCount": len(found)},
                "filterableFields": sorted(kind.filterable),
            }
            return 200, {"data": page, "meta": meta}

        return handler

    def _creator(self, collection: str) -> Callable[..., tuple[int, Any]]:
        kind = KINDS[collection]

        def handler(req: Request) -> tuple[int, Any]:
            body = self._body(req, kind.create_def)
            entity = self._prepare(collection, body, None)
            self._check_unique(kind, entity, None)
            id_ = _new_id()
            now = iso(now_utc())
            entity.update(id=id_, createdAt=now, updatedAt=now)
            entity.setdefault("tags", {})
            self._on_create(collection, entity)
            self.entities[collection][id_] = entity
            return 201, {"data": {"id": id_, "_links": _links(collection, id_)}, "meta": {}}

        return handler

    def _detailer(self, collection: str) -> Callable[..., tuple[int, Any]]:
        def handler(req: Request, id: str) -> tuple[int, Any]:
            return 200, {"data": self._detail(collection, self._get(collection, id)), "meta": {}}

        return handler

    def _updater(self, collection: str, *, patch: bool) -> Callable[..., tuple[int, Any]]:
        kind = KINDS[collection]

        def handler(req: Request, id: str) -> tuple[int, Any]:
            current = self._get(collection, id)
            body = self._body(req, kind.patch_def if patch else kind.update_def)
            if patch:
                merged = copy.deepcopy(current)
                _deep_merge(merged, body, top=True)
            else:  # PUT: every client-settable field comes from the body
                kept = {"id", "createdAt"} | IMMUTABLE.get(collection, set()) | SERVER_FIELDS.get(collection, set())
                merged = {k: copy.deepcopy(v) for k, v in current.items() if k in kept}
                merged.update(body)
                merged.setdefault("tags", {})
            for key in IMMUTABLE.get(collection, set()):
                merged[key] = current.get(key)
            merged = self._prepare(collection, merged, current)
            if patch and collection == "cas" and isinstance(merged.get("externalIdClaim"), dict):
                # As the real controller (1.7.2): the claim is validated as sent, but PATCH never
                # writes parserCriteria (the store's field is `externalIdClaim.parserSeparator`,
                # which no PATCH field list names), so the stored value stays what it was.
                before = current.get("externalIdClaim") or {}
                merged["externalIdClaim"]["parserCriteria"] = before.get("parserCriteria", "")
            if patch and collection == "auth-policies":
                # As the real 1.7.2 controller: PATCH leaves primary.updb.minPasswordLength as it was.
                old_min = ((current.get("primary") or {}).get("updb") or {}).get("minPasswordLength")
                updb = (merged.get("primary") or {}).get("updb")
                if isinstance(updb, dict) and old_min is not None:
                    updb["minPasswordLength"] = old_min
            try:
                self._check_unique(kind, merged, id)
            except ApiError as e:
                # As the real 1.7.2 controller: an update that would break a unique index applies
                # nothing; a duplicate name is answered 200 as if it had been applied, any other
                # value 500 UNHANDLED, the index named only in the nested cause.
                if isinstance(e.cause, dict) and e.cause.get("field") == "name":
                    return 200, empty_envelope()
                reason = e.cause.get("reason") if isinstance(e.cause, dict) else e.cause_message
                raise ApiError(500, "UNHANDLED", "An unhandled error occurred",
                               {"code": "UNHANDLED", "message": reason}) from None
            merged.update(id=id, createdAt=current["createdAt"], updatedAt=iso(now_utc()))
            merged.setdefault("tags", {})
            self.entities[collection][id] = merged
            return 200, empty_envelope()

        return handler

    def _deleter(self, collection: str) -> Callable[..., tuple[int, Any]]:
        def handler(req: Request, id: str) -> tuple[int, Any]:
            entity = self._get(collection, id)
            if entity.get("isSystem"):
                raise ApiError(409, "CAN_NOT_DELETE_REFERENCED_ENTITY", "system entities cannot be deleted")
            referrer = self._referenced_by(collection, id)
            if referrer:
                raise ApiError(
                    409,
                    "CAN_NOT_DELETE_REFERENCED_ENTITY",
                    f"the entity is referenced by {referrer}",
                )
            del self.entities[collection][id]
            return 200, empty_envelope()

        return handler

    def _check_unique(self, kind: Kind, entity: dict[str, Any], self_id: str | None) -> None:
        for field_name in (*kind.unique, *kind.nullable_unique):
            value = entity.get(field_name)
            if value is None or (field_name in kind.nullable_unique and value == ""):
                continue
            for other in self.entities[kind.collection].values():
                if other["id"] != self_id and other.get(field_name) == value:
                    if kind.collection == "cas" and field_name == "fingerprint":
                        raise field_error("certPem", f"certificate already used as CA {other['id']}", entity["certPem"])
                    raise field_error(
                        field_name, f"duplicate value '{value}' in unique index on {kind.store} store", value
                    )

    def _referenced_by(self, collection: str, id_: str) -> str | None:
        if collection == "auth-policies":
            for ident in self.entities["identities"].values():
                if ident.get("authPolicyId") == id_:
                    return f"identity {ident['id']}"
        if collection == "external-jwt-signers":
            for pol in self.entities["auth-policies"].values():
                if id_ in (pol["primary"]["extJwt"].get("allowedSigners") or []) or (
                    pol["secondary"].get("requireExtJwtSigner") == id_
                ):
                    return f"auth policy {pol['id']}"
        return None

    # --- per-kind server rules ------------------------------------------------------------------------

    def _prepare(self, collection: str, body: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        entity = {k: v for k, v in body.items() if k not in ("id", "_links", "createdAt", "updatedAt")}
        if "name" in entity and (not isinstance(entity["name"], str) or not entity["name"]):
            raise field_error("name", "name is required", entity.get("name"))
        if collection == "cas":
            return self._prepare_ca(entity, current)
        if collection == "external-jwt-signers":
            return self._prepare_signer(entity)
        if collection == "auth-policies":
            for sid in entity["primary"]["extJwt"].get("allowedSigners") or []:
                if sid not in self.entities["external-jwt-signers"]:
                    raise field_error(
                        "primary.extJwt.allowedSigners", "no externalJwtSigners found with the given ids", [sid]
                    )
            required = (entity.get("secondary") or {}).get("requireExtJwtSigner")
            if required and required not in self.entities["external-jwt-signers"]:
                raise field_error("secondary.requireExtJwtSigner", "no externalJwtSigners found", required)
            return entity
        if collection == "identities":
            _attributes(entity.get("roleAttributes"))
            entity.setdefault("authPolicyId", DEFAULT_AUTH_POLICY_ID)
            if entity.get("authPolicyId") is None:
                entity["authPolicyId"] = DEFAULT_AUTH_POLICY_ID
            if entity["authPolicyId"] not in self.entities["auth-policies"]:  # as 1.7.2: 404, not a field error
                missing = f"authPolicy with id {entity['authPolicyId']} not found"
                raise ApiError(404, "NOT_FOUND", "The resource requested was not found or is no longer available",
                               {"code": "UNHANDLED", "message": missing})
            entity.setdefault("roleAttributes", [])
            entity.setdefault("isAdmin", False)
            entity.setdefault("externalId", None)
            return entity
        if collection == "edge-routers":
            _attributes(entity.get("roleAttributes"))
            entity["roleAttributes"] = entity.get("roleAttributes") or []
            entity.setdefault("isTunnelerEnabled", False)
            return entity
        if collection in POLICY_ROLES:
            entity.setdefault("semantic", "AllOf")
            if collection == "service-policies" and entity.get("type") not in ("Dial", "Bind"):
                raise field_error("type", "must be one of Dial, Bind", entity.get("type"))
            for roles_field, target in POLICY_ROLES[collection].items():
                roles = entity.get(roles_field) or []
                entity[roles_field] = roles
                missing = []
                for role in roles:
                    if not role.startswith(("#", "@")):
                        raise field_error(
                            roles_field,
                            "role entries must be prefixed with # (role attributes) or @ (an id)",
                            role,
                        )
                    if role.startswith("@") and role[1:] not in self.entities[target]:
                        missing.append(role[1:])
                if missing:
                    raise field_error(roles_field, f"no {target} found with the given ids", missing)
            return entity
        return entity

    def _prepare_ca(self, entity: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        if current is None:
            pem = entity.get("certPem") or ""
            try:
                certs = x509.load_pem_x509_certificates(pem.encode())
            except ValueError as e:
                raise field_error("certPem", str(e), pem) from e
            if not certs:
                raise field_error("certPem", "at least one leaf certificate must be supplied", pem)
            first = certs[0]
            try:
                is_ca = first.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                is_ca = False
            if not is_ca:
                # errors.New("certificate is not a CA") in the controller: unmapped, hence UNHANDLED
                raise ApiError(500, "UNHANDLED", "certificate is not a CA")
            entity["fingerprint"] = hashlib.sha1(first.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324
            entity["isVerified"] = False
            entity["verificationToken"] = str(uuid.uuid4())
        if not entity.get("identityNameFormat"):
            entity["identityNameFormat"] = "[caName]-[commonName]"
        claim = entity.get("externalIdClaim")
        if claim is not None:
            _validate_claim(claim)
        entity.setdefault("externalIdClaim", None)
        return entity

    def _prepare_signer(self, entity: dict[str, Any]) -> dict[str, Any]:
        jwks, pem = entity.get("jwksEndpoint"), entity.get("certPem")
        if not jwks and not pem:
            raise field_error("certPem", "jwksEndpoint or certPem is required", None)
        if jwks and pem:
            raise field_error("certPem", "only one of jwksEndpoint or certPem may be defined", pem)
        if pem:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode())
            except ValueError as e:
                raise field_error("certPem", f"could not parse certificate: {e}", pem) from e
            if not entity.get("kid"):
                raise field_error("kid", "kid is required when certPem is provided", entity.get("kid"))
            entity["fingerprint"] = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324
            entity["commonName"] = cert.subject.rfc4514_string()
            entity["notBefore"] = iso(cert.not_valid_before_utc)
            entity["notAfter"] = iso(cert.not_valid_after_utc)
        else:
            for key in ("fingerprint", "commonName", "notBefore", "notAfter"):
                entity[key] = None
        if entity.get("enrollToTokenEnabled") and not entity.get("enrollAuthPolicyId"):
            raise field_error("enrollAuthPolicyId", "required when enrollToTokenEnabled", None)
        entity["claimsProperty"] = entity.get("claimsProperty") or "sub"
        entity["useExternalId"] = bool(entity.get("useExternalId"))
        entity["targetToken"] = entity.get("targetToken") or "ACCESS"
        entity["scopes"] = entity.get("scopes") or []
        return entity

    def _on_create(self, collection: str, entity: dict[str, Any]) -> None:
        if collection == "external-jwt-signers":
            # As the real 1.7.2 controller: MapCreateExternalJwtSignerToModel drops the tags of a
            # create (PUT and PATCH keep them).
            entity["tags"] = {}
        if collection == "edge-routers":
            self._new_router_enrollment(entity)
            entity.update(isVerified=False, fingerprint="", isOnline=False)

    def _new_router_enrollment(self, router: dict[str, Any]) -> None:
        created = now_utc()
        expires = created + ROUTER_ENROLLMENT_DURATION
        token = str(uuid.uuid4())
        router.update(
            enrollmentToken=token,
            enrollmentCreatedAt=iso(created),
            enrollmentExpiresAt=iso(expires),
            enrollmentJwt=fake_jwt(
                {
                    "em": "erott",
                    "exp": int(expires.timestamp()),
                    "iss": f"https://{self.address}",
                    "jti": token,
                    "sub": router["id"],
                }
            ),
        )

    # --- details in the spec's shape -------------------------------------------------------------------

    def _detail(self, collection: str, entity: dict[str, Any]) -> dict[str, Any]:
        d = copy.deepcopy(entity)
        d["_links"] = _links(collection, entity["id"])
        if collection != "edge-router-policies":
            d.pop("isSystem", None)
        # As the real 1.7.2 controller renders them: no requireExtJwtSigner key when unset, and
        # null (not []) for a service policy without posture checks.
        if collection == "auth-policies" and isinstance(d.get("secondary"), dict):
            if d["secondary"].get("requireExtJwtSigner") is None:
                d["secondary"].pop("requireExtJwtSigner", None)
        if collection == "service-policies" and not d.get("postureCheckRoles"):
            d["postureCheckRoles"] = None
        if collection == "identities":
            policy = self.entities["auth-policies"].get(d["authPolicyId"], {})
            d.update(
                type={"entity": "identity-types", "id": d["type"], "name": d["type"]},
                typeId=d["type"],
                isDefaultAdmin=False,
                authenticators={},
                enrollment={},
                envInfo={},
                sdkInfo={},
                hasEdgeRouterConnection=False,
                edgeRouterConnectionStatus="offline",
                hasApiSession=False,
                isMfaEnabled=False,
                serviceHostingPrecedences={},
                serviceHostingCosts={},
                defaultHostingCost=0,
                authPolicy={"entity": "auth-policies", "id": d["authPolicyId"], "name": policy.get("name", "")},
                disabled=False,
                permissions=[],
            )
        elif collection == "edge-routers":
            d.update(
                hostname="",
                supportedProtocols={},
                syncStatus="SYNC_NEW",
                cost=d.get("cost", 0),
                noTraversal=d.get("noTraversal", False),
                disabled=bool(d.get("disabled", False)),
                os="",
                version="",
                arch="",
                buildDate="",
                revision="",
            )
        elif collection in POLICY_ROLES:
            for roles_field in POLICY_ROLES[collection]:
                d[roles_field + "Display"] = [{"role": r, "name": r} for r in d.get(roles_field) or []]
            if collection == "edge-router-policies":
                d["isSystem"] = bool(entity.get("isSystem", False))
        elif collection == "cas":
            if d.get("externalIdClaim") is None:
                d.pop("externalIdClaim", None)  # a nil pointer with omitempty: absent, not null
        elif collection == "external-jwt-signers":
            # Non-pointer strings in the controller: unset is "" (and the zero time), never null.
            for key in ("kid", "clientId", "externalAuthUrl", "commonName", "fingerprint"):
                if d.get(key) is None:
                    d[key] = ""
            for key in ("notAfter", "notBefore"):
                if d.get(key) is None:
                    d[key] = "0001-01-01T00:00:00.000Z"
            d.setdefault("certPem", None)
            d.setdefault("jwksEndpoint", None)
        return d

    # --- CA verification, JWTs, router re-enrollment --------------------------------------------------

    def _verify_ca(self, req: Request, id: str) -> tuple[int, Any]:
        ca = self._get("cas", id)
        if ca["isVerified"]:
            raise ApiError(409, "CA_ALREADY_VERIFIED", "The CA has already been verified")
        content_type = (req.header("content-type") or "").split(";")[0].strip()
        if content_type != "text/plain":
            raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", f"media type {content_type!r}: expected text/plain")
        body = req.body.decode(errors="replace")
        if not body:
            raise ApiError(400, "COULD_NOT_PARSE_BODY", "The body of the request could not be parsed")
        block = re.search(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", body, re.S)
        if block is None:
            raise ApiError(400, "COULD_NOT_PARSE_BODY", "The body of the request could not be parsed")
        if block.group(1) != "CERTIFICATE":
            raise ApiError(
                400,
                "EXPECTED_PEM_CERTIFICATE",
                "Expected a PEM block of type CERTIFICATE",
                cause_message=f"encountered PEM block type {block.group(1)}",
            )
        try:
            cert = x509.load_der_x509_certificate(base64.b64decode("".join(block.group(2).split())))
        except ValueError as e:
            raise ApiError(400, "COULD_NOT_PARSE_DER_BLOCK", "Could not parse DER block", cause_message=str(e)) from e
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if not cns or cns[0].value != ca["verificationToken"]:
            raise ApiError(400, "INVALID_COMMON_NAME", "The common name of the certificate does not match the token")
        ca_cert = x509.load_pem_x509_certificates(ca["certPem"].encode())[0]
        now = self.now()
        reason = None
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature) as e:
            reason = f"x509: certificate signed by unknown authority ({type(e).__name__})"
        if reason is None:
            for c in (cert, ca_cert):
                if not (c.not_valid_before_utc <= now <= c.not_valid_after_utc):
                    reason = f"x509: certificate has expired or is not yet valid: current time {iso(now)}"
        if reason is not None:
            raise ApiError(
                400,
                "CERTIFICATE_FAILED_VALIDATION",
                "The supplied certificate failed validation",
                cause_message=reason,
            )
        ca["isVerified"] = True
        ca["updatedAt"] = iso(now_utc())
        return 200, empty_envelope()

    def _ca_jwt(self, req: Request, id: str) -> Response:
        ca = self._get("cas", id)
        token = fake_jwt({"em": "ca", "iss": f"https://{self.address}/", "sub": ca["id"], "jti": ca["id"]})
        return Response(200, token, content_type="application/jwt")

    def _re_enroll(self, req: Request, id: str) -> tuple[int, Any]:
        router = self._get("edge-routers", id)
        self._new_router_enrollment(router)
        router.update(isVerified=False, fingerprint="")
        return 200, empty_envelope()


# Fields the server owns: PUT/PATCH bodies cannot change them.
IMMUTABLE = {
    "cas": {"certPem", "fingerprint", "isVerified", "verificationToken"},
    "external-jwt-signers": set(),
    "edge-routers": {
        "enrollmentJwt",
        "enrollmentToken",
        "enrollmentExpiresAt",
        "enrollmentCreatedAt",
        "isVerified",
        "fingerprint",
        "isOnline",
    },
}
SERVER_FIELDS = {
    "external-jwt-signers": {"fingerprint", "commonName", "notBefore", "notAfter"},
    "auth-policies": {"isSystem"},
}


def _validate_claim(claim: dict[str, Any]) -> None:
    """What the pinned controller (1.7.2) refuses when a CA is created or updated: only a SCHEME
    matcher outside SAN_URI (400, a cause without a field). Empty matcher criteria, SPLIT without a
    separator and a negative index are accepted there and fail only when a client authenticates;
    the provider's `check` refuses them earlier (replayed against the real controller in
    tests/real/test_ziti_fidelity.py)."""
    if claim.get("matcher") == "SCHEME" and claim.get("location") != "SAN_URI":
        raise ApiError(  # sic: the real 1.7.2 controller answers this code
            400,
            "REFERENCED_ENTITY_NOT_FOUND",
            "The supplied request contains an invalid document",
            {"code": "UNHANDLED", "message": "the value 'SCHEME' for 'matcher' is invalid: scheme matcher can only "
                                             "be used with URI locations"},
        )


def _attributes(values: list[str] | None) -> None:
    for attr in values or []:
        if attr.startswith("#"):
            raise field_error("roleAttributes", "role attributes may not be prefixed with #", attr)
        if attr.startswith("@"):
            raise field_error("roleAttributes", "role attributes may not be prefixed with @", attr)


def _deep_merge(target: dict[str, Any], patch: dict[str, Any], *, top: bool = False) -> None:
    """PATCH semantics: supplied fields only; `tags` (a map field) is replaced whole; an empty
    `externalIdClaim` object leaves the claim untouched (older CLIs send `{}`)."""
    for key, value in patch.items():
        if top and key == "tags":
            target[key] = value
        elif top and key == "externalIdClaim" and value == {}:
            continue
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def _links(collection: str, id_: str) -> dict[str, Any]:
    return {"self": {"href": f"./{collection}/{id_}"}}


def _int_arg(req: Request, name: str, default: int) -> int:
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "INVALID_PAGINATION", f"{name} must be an integer, got {raw!r}") from None


def _new_id() -> str:
    # Controller ids are short URL-safe strings (eid); any unique string works here.
    return base64.urlsafe_b64encode(uuid.uuid4().bytes[:9]).decode()


# --- helpers for tests and benches ------------------------------------------------------------------


def make_ca(
    common_name: str = "SPIRE upstream root",
    *,
    is_ca: bool = True,
    valid_days: int = 365,
    key: Any = None,
) -> tuple[str, str]:
    """A self-signed certificate and its PKCS#8 key, PEM (a CA unless `is_ca=False`)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = now_utc()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5, days=max(0, -valid_days) + (valid_days <= 0)))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def ca_body(name: str = "spire", cert_pem: str | None = None, **extra: Any) -> dict[str, Any]:
    """A CA create body: a fresh self-signed root unless `cert_pem` is given, OTT and auto enrollment off."""
    cert_pem = cert_pem or make_ca()[0]
    return {
        "name": name,
        "certPem": cert_pem,
        "isAutoCaEnrollmentEnabled": False,
        "isOttCaEnrollmentEnabled": False,
        "isAuthEnabled": True,
        "identityRoles": ["spire"],
        **extra,
    }


def connection(srv: LoopbackServer, fake: ZitiController, **overrides: Any) -> dict[str, Any]:
    """The `connection` input for a provider talking to `fake` served by `srv`."""
    return {
        "url": srv.url,
        "username": fake.username,
        "password": fake.password,
        "ca_bundle_pem": srv.ca_pem,
        **overrides,
    }


def owner(name: str, stack: str = "identity-platform/test") -> dict[str, str]:
    return {"stack": stack, "name": name}


def start(loopback: Callable[..., LoopbackServer], **kwargs: Any) -> tuple[ZitiController, LoopbackServer]:
    """A fake controller on a loopback TLS server (use with the `loopback` fixture)."""
    fake = ZitiController(**kwargs)
    return fake, fake.serve(loopback)


class BodyRecorder:
    """`fake.on_request` hook keeping (method, path, parsed JSON body) of every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, req: Request) -> None:
        try:
            body = json.loads(req.body) if req.body and req.header("content-type") == "application/json" else req.body
        except ValueError:
            body = req.body
        self.requests.append((req.method, req.path, body))

    def bodies(self, method: str, path_suffix: str = "") -> list[Any]:
        return [b for m, p, b in self.requests if m == method and p.endswith(path_suffix)]
