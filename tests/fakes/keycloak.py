"""A loopback Keycloak (26.x) for the Admin REST API, built from the official OpenAPI file.

Behaviour reproduced (sources: shared/research/keycloak.md, which cites Keycloak's own code):

* Tokens: `POST /realms/{realm}/protocol/openid-connect/token` (form-encoded) with the password,
  client-credentials and refresh-token grants. Master-realm access tokens live **60 s**
  (`access_token_lifespan`, configurable so tests can make them expire between calls);
  client-credentials grants return **no refresh token**. Expired or unknown tokens get 401. A token
  only carries roles for realms that existed when it was issued, so with `new_realm_needs_new_token`
  a realm created afterwards answers **403** until the caller refreshes (older Keycloaks' quirk,
  terraform-provider-keycloak #922; Keycloak 26.7 answers 200, so it is off by default). A wrong
  password is **400** `invalid_grant`, as Keycloak 26.7 answers it.
* Realms: POST (201 + `Location`, 409 on a taken name; a given `id` is kept), GET, PUT (top-level
  merge, attributes merged key by key), DELETE (cascades to clients). New realms get Keycloak's
  defaults and built-in clients.
* Clients: POST fills the server defaults (`publicClient` true when neither `publicClient` nor
  `bearerOnly` is sent, standard and direct-grant flows on, generated secret for confidential
  clients, backchannel attributes, realm default scopes) and answers 201 with `Location`; a taken
  `clientId` is **409** (`Client <id> already exists`; a rename onto a taken one is 409 `conflict` /
  `Duplicate resource error`). PUT **merges**: absent fields are kept, attributes merge key by key and
  `""` removes a key, `redirectUris`/`webOrigins` are replaced when present, scopes are ignored,
  a present `protocolMappers` list deletes every mapper it omits, anything but
  `authorizationServicesEnabled: true` disables authorization, a public client loses its secret.
  GET `?clientId=` is an exact match. Client-secret GET/POST, protocol mappers, client scopes
  (realm list, per-client default/optional links) and the OpenID discovery document.
* Validation: every JSON body is validated against the spec's schema for that operation
  (`ClientRepresentation`, `RealmRepresentation`, `ProtocolMapperRepresentation`), with unknown
  properties rejected as Keycloak's Jackson mapper does; failures are 400 and are recorded in
  `invalid_bodies` so tests can assert there were none. Client URIs are checked like Keycloak's
  ClientValidator (no fragments, no `javascript:`).
* Optimistic locking: overlapping PUTs on one realm fail with Keycloak's generic 500
  `{"error": "unknown_error"}` (an OptimisticLockException, keycloak/keycloak#11588, reaches
  KeycloakErrorHandler uncaught) when `realm_write_seconds` > 0 makes a write take time.

State is in memory behind one lock; `seed_client` / `client_by_client_id` let tests set up and
inspect the server without going through HTTP.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from openapi_schema_validator import OAS30Validator

from tests.harness.loopback import App, LoopbackServer, Request, Response

# The spec's schemas the fake validates with (and their $ref closure) plus every operation's request
# schema and response codes, vendored from the official file (kept whole in tests/specs/);
# `build_subset` regenerates it and a test checks it still matches the full spec.
SUBSET_PATH = Path(__file__).resolve().parent / "keycloak_openapi_subset.json"
FULL_SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "keycloak-admin-openapi.json.gz"  # see its README
VALIDATED_SCHEMAS = (
    "ClientRepresentation",
    "RealmRepresentation",
    "ProtocolMapperRepresentation",
    "CredentialRepresentation",
    "ClientScopeRepresentation",
)


def build_subset(spec: dict[str, Any]) -> dict[str, Any]:
    """The vendored subset of the full OpenAPI document (see SUBSET_PATH)."""
    schemas = spec["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [r for k, v in node.items() for r in ([v.rsplit("/", 1)[-1]] if k == "$ref" else refs(v))]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    need: set[str] = set()
    stack = list(VALIDATED_SCHEMAS)
    while stack:
        name = stack.pop()
        if name not in need:
            need.add(name)
            stack.extend(refs(schemas[name]))
    operations: dict[str, dict[str, Any]] = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "delete", "patch", "head"):
                continue
            schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            request = None
            if schema:
                request = schema.get("$ref", "").rsplit("/", 1)[-1] or json.dumps(schema)
            operations.setdefault(path, {})[method.upper()] = {
                "request": request,
                "responses": sorted(op.get("responses", {})),
            }
    return {
        "source": (
            "Keycloak Admin REST API 26.6.2 OpenAPI (shared/specs/keycloak-admin-openapi.json, published at "
            "https://www.keycloak.org/docs-api/26.6.2/rest-api/openapi.json): the request/response schemas the "
            "providers use, with their $ref closure, and every operation (method, request schema, response codes)."
        ),
        "openapi": spec["openapi"],
        "operations": operations,
        "components": {"schemas": {k: schemas[k] for k in sorted(need)}},
    }


DEFAULT_SCOPES = ("profile", "email", "roles", "web-origins", "acr", "basic")
OPTIONAL_SCOPES = ("address", "phone", "offline_access", "microprofile-jwt", "organization")
SERVICE_ACCOUNT_SCOPE = "service_account"
BUILTIN_CLIENTS = ("account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console")


def _strict(schema: Any) -> Any:
    """Close every object schema that lists properties: Keycloak rejects unknown JSON fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


class SpecValidator:
    """Validates bodies against `components.schemas.<name>` of the Keycloak OpenAPI document."""

    def __init__(self, path: Path = SUBSET_PATH) -> None:
        spec = json.loads(path.read_text())
        self.components = _strict(spec["components"])
        self.operations: dict[str, dict[str, Any]] = spec["operations"]
        self._validators: dict[str, OAS30Validator] = {}

    def errors(self, schema_name: str, body: Any) -> list[str]:
        if schema_name not in self._validators:
            schema = {"$ref": f"#/components/schemas/{schema_name}", "components": self.components}
            self._validators[schema_name] = OAS30Validator(schema)
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<body>'}: {e.message}"
            for e in self._validators[schema_name].iter_errors(body)
        ]

    def request_schema(self, path: str, method: str) -> str | None:
        """The schema the spec declares for this operation's JSON body (None: none declared)."""
        op = self.operations.get(path, {}).get(method.upper())
        return None if op is None else op["request"]


_VALIDATOR: SpecValidator | None = None
_VALIDATOR_LOCK = threading.Lock()


def spec_validator() -> SpecValidator:
    """Parsed once per test session."""
    global _VALIDATOR
    with _VALIDATOR_LOCK:
        if _VALIDATOR is None:
            _VALIDATOR = SpecValidator()
        return _VALIDATOR


@dataclass
class Token:
    subject: str
    realm: str
    expires_at: float
    visible_realms: frozenset[str]
    session: str


@dataclass
class RefreshToken:
    subject: str
    realm: str
    client_id: str
    expires_at: float
    session: str


@dataclass
class FakeClient:
    rep: dict[str, Any]
    mappers: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_scopes: list[str] = field(default_factory=list)  # scope ids
    optional_scopes: list[str] = field(default_factory=list)


@dataclass
class FakeRealm:
    rep: dict[str, Any]
    clients: dict[str, FakeClient] = field(default_factory=dict)
    scopes: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> ClientScopeRepresentation

    def scope_by_name(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.scopes.values() if s["name"] == name), None)


# What Keycloak's KeycloakErrorHandler answers for any uncaught exception (JSON requests).
SERVER_ERROR_BODY = {"error": "unknown_error", "error_description": "For more on this error consult the server log."}
RealmHandler = Callable[[Request, FakeRealm], Response]
ClientHandler = Callable[[Request, FakeRealm, FakeClient], Response]


def _err(status: int, message: str, key: str = "errorMessage") -> Response:
    return Response(status, {key: message})


def _origin(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


class KeycloakFake:
    """The fake server's state and routes; `serve(loopback)` starts it on a LoopbackServer."""

    def __init__(
        self,
        *,
        base_path: str = "",
        admin_user: str = "admin",
        admin_password: str = "admin-password",  # noqa: S107 (a test server's fixed credential)
        service_clients: dict[str, str] | None = None,
        access_token_lifespan: float = 60.0,
        refresh_token_lifespan: float = 1800.0,
        frontend_url: str | None = None,
        mask_secret_in_representation: bool = False,
        hide_scopes_in_representation: bool = False,
        new_realm_needs_new_token: bool = False,
        backchannel_dynamic: bool = True,
    ) -> None:
        self.base_path = base_path
        self.users = {admin_user: admin_password}
        self.service_clients = dict(service_clients if service_clients is not None else {"temp-admin": "bootstrap"})
        self.access_token_lifespan = access_token_lifespan
        self.refresh_token_lifespan = refresh_token_lifespan
        self.frontend_url = frontend_url  # KC_HOSTNAME: the issuer and front-channel endpoints
        self.backchannel_dynamic = backchannel_dynamic  # KC_HOSTNAME_BACKCHANNEL_DYNAMIC, as the stack sets it
        self.mask_secret_in_representation = mask_secret_in_representation
        # ClientResource.getClient blanks the scope lists for a caller that may not view client scopes.
        self.hide_scopes_in_representation = hide_scopes_in_representation
        # Older Keycloaks answer 403 for a realm created after the caller's token was issued
        # (terraform-provider-keycloak #922); Keycloak 26.7 answers 200, so this is opt-in.
        self.new_realm_needs_new_token = new_realm_needs_new_token
        self.realm_write_seconds = 0.0
        self.omit_location = False  # as a proxy that drops the header would
        self.lock = threading.RLock()
        self.realms: dict[str, FakeRealm] = {}
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.grants: Counter[str] = Counter()
        self.invalid_bodies: list[str] = []
        self.bodies: list[tuple[str, str, Any]] = []  # (method, path, JSON) of every valid body received
        self.lock_conflicts = 0
        self._writing: set[str] = set()
        self.validator = spec_validator()
        self.server: LoopbackServer | None = None
        self.app = App()
        self._routes()
        self._new_realm("master", {"realm": "master", "enabled": True, "accessTokenLifespan": 60}, owner=None)

    # --- test controls ------------------------------------------------------------------------

    def serve(self, loopback: Callable[..., LoopbackServer], tls: bool = True) -> LoopbackServer:
        self.server = loopback(self.app, tls=tls)
        return self.server

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def connection(self, **overrides: Any) -> dict[str, Any]:
        """A `connection` input for this server with the admin credentials."""
        assert self.server is not None
        user, password = next(iter(self.users.items()))
        conn: dict[str, Any] = {"url": self.server.url, "username": user, "password": password, "timeout": 5}
        if self.base_path:
            conn["base_path"] = self.base_path
        if self.server.ca_pem:
            conn["ca_bundle_pem"] = self.server.ca_pem
        conn.update(overrides)
        return {k: v for k, v in conn.items() if v is not None}

    def expire_tokens(self) -> None:
        """Every access token issued so far is now past its lifetime (as after 60 s in master)."""
        with self.lock:
            for t in self.tokens.values():
                t.expires_at = 0.0

    def end_sessions(self) -> None:
        """Refresh tokens stop working too (session idle timeout or an admin logout)."""
        with self.lock:
            self.expire_tokens()
            for r in self.refresh_tokens.values():
                r.expires_at = 0.0

    def seed_realm(self, name: str, attributes: dict[str, str] | None = None) -> dict[str, Any]:
        with self.lock:
            return self._new_realm(name, {"realm": name, "enabled": True, "attributes": attributes or {}}, owner=None)

    def seed_client(self, realm: str, rep: dict[str, Any]) -> str:
        """Create a client server-side (as another tool or an earlier crashed run would)."""
        with self.lock:
            created = self._create_client(self.realms[realm], copy.deepcopy(rep))
            assert isinstance(created, str), created
            return created

    def recreate_realm(self, name: str, attributes: dict[str, str]) -> None:
        """Delete realm `name` and create another with that name (a new id), as an operator or another
        tool would."""
        with self.lock:
            del self.realms[name]
        self.seed_realm(name, attributes)

    def remark_realm(self, name: str, attributes: dict[str, str]) -> None:
        """Replace realm `name`'s ownership attribute by `attributes` (none: the marker removed)."""
        with self.lock:
            attrs = self.realms[name].rep["attributes"]
            attrs.pop("pulumi.stack", None)
            attrs.update(attributes)

    def writes(self) -> list[str]:
        """The requests received other than reads and logins, as "METHOD route"."""
        assert self.server is not None
        return [
            f"{r.method} {r.pattern}"
            for r in self.server.log
            if r.method != "GET" and not r.pattern.endswith("/protocol/openid-connect/token")
        ]

    def client_by_client_id(self, realm: str, client_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = [c for c in self.realms[realm].clients.values() if c.rep["clientId"] == client_id]
            assert len(found) <= 1, f"duplicate clientId {client_id!r}: {len(found)}"
            return self._client_view(self.realms[realm], found[0], full_secret=True) if found else None

    def count_clients(self, realm: str, client_id: str) -> int:
        with self.lock:
            return sum(1 for c in self.realms[realm].clients.values() if c.rep["clientId"] == client_id)

    def rotate_secret_out_of_band(self, realm: str, client_uuid: str) -> str:
        with self.lock:
            client = self.realms[realm].clients[client_uuid]
            client.rep["secret"] = self._new_secret(client.rep)
            return str(client.rep["secret"])

    # --- internals ------------------------------------------------------------------------------

    def _p(self, path: str) -> str:
        return f"{self.base_path}{path}"

    def _issuer_base(self, req: Request) -> str:
        if self.frontend_url:
            return self.frontend_url.rstrip("/") + self.base_path
        scheme = self.server.scheme if self.server else "https"
        return f"{scheme}://{req.header('host')}{self.base_path}"

    def _new_realm(self, name: str, body: dict[str, Any], owner: str | None) -> dict[str, Any]:
        rep: dict[str, Any] = {
            "id": body.get("id") or str(uuid.uuid4()),  # a given id is kept (RealmManager.importRealm)
            "realm": name,
            "notBefore": 0,
            "defaultSignatureAlgorithm": "RS256",
            "revokeRefreshToken": False,
            "refreshTokenMaxReuse": 0,
            "accessTokenLifespan": 300,
            "accessTokenLifespanForImplicitFlow": 900,
            "ssoSessionIdleTimeout": 1800,
            "ssoSessionMaxLifespan": 36000,
            "offlineSessionIdleTimeout": 2592000,
            "offlineSessionMaxLifespanEnabled": False,
            "accessCodeLifespan": 60,
            "accessCodeLifespanUserAction": 300,
            "accessCodeLifespanLogin": 1800,
            "enabled": False,
            "sslRequired": "external",
            "registrationAllowed": False,
            "loginWithEmailAllowed": True,
            "bruteForceProtected": False,
            "attributes": {
                "cibaBackchannelTokenDeliveryMode": "poll",
                "cibaExpiresIn": "120",
                "cibaAuthRequestedUserHint": "login_hint",
                "parRequestUriLifespan": "60",
                "realmReusableOtpCode": "false",
            },
        }
        for key, value in body.items():
            if key == "attributes":
                rep["attributes"].update({k: v for k, v in (value or {}).items() if v != ""})
            elif key != "id" and value is not None:
                rep[key] = value
        realm = FakeRealm(rep)
        for scope_name in (*DEFAULT_SCOPES, *OPTIONAL_SCOPES):
            sid = str(uuid.uuid4())
            realm.scopes[sid] = {"id": sid, "name": scope_name, "protocol": "openid-connect"}
        sid = str(uuid.uuid4())
        realm.scopes[sid] = {"id": sid, "name": "role_list", "protocol": "saml"}
        sid = str(uuid.uuid4())
        realm.scopes[sid] = {"id": sid, "name": SERVICE_ACCOUNT_SCOPE, "protocol": "openid-connect"}
        self.realms[name] = realm
        for cid in BUILTIN_CLIENTS:
            public = cid in ("admin-cli", "account-console", "security-admin-console")
            self._create_client(realm, {"clientId": cid, "publicClient": public, "bearerOnly": cid == "broker"})
        for cid, secret in self.service_clients.items() if name == "master" else ():
            self._create_client(
                realm,
                {"clientId": cid, "publicClient": False, "secret": secret, "serviceAccountsEnabled": True},
            )
        return rep

    @staticmethod
    def _new_secret(rep: dict[str, Any]) -> str:
        rep.setdefault("attributes", {})["client.secret.creation.time"] = str(int(time.time()))
        return secrets.token_urlsafe(24)

    def _uri_error(self, rep: dict[str, Any]) -> str | None:
        for key in ("rootUrl", "baseUrl"):
            value = rep.get(key)
            if value and not (key == "baseUrl" and value.startswith("/")):
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    return f"Invalid URL in {key}"
        uris = list(rep.get("redirectUris") or [])
        post_logout = (rep.get("attributes") or {}).get("post.logout.redirect.uris") or ""
        uris += [u for u in post_logout.split("##") if u and u != "+"]
        for uri in uris:
            if "#" in uri:
                return "Redirect URIs must not contain an URI fragment"
            if uri.lower().startswith(("javascript:", "data:")):
                return "A redirect URI uses an invalid URL scheme"
        return None

    def _create_client(self, realm: FakeRealm, body: dict[str, Any]) -> str | Response:
        client_id = body.get("clientId")
        if not client_id:
            return _err(400, "Client id is required", "error")
        if any(c.rep["clientId"] == client_id for c in realm.clients.values()):
            return _err(409, f"Client {client_id} already exists")
        problem = self._uri_error(body)
        if problem:
            return Response(400, {"error": "invalid_input", "error_description": problem})
        cid = body.get("id") or str(uuid.uuid4())
        if cid in realm.clients:
            return _err(409, "Client with same id exists")
        public, bearer = body.get("publicClient"), body.get("bearerOnly")
        if public is None and bearer is None:
            public = True  # OIDCLoginProtocolFactory.setupClientDefaults
        rep: dict[str, Any] = {
            "id": cid,
            "clientId": client_id,
            "surrogateAuthRequired": False,
            "enabled": True,
            "alwaysDisplayInConsole": False,
            "clientAuthenticatorType": "client-secret",
            "redirectUris": [],
            "webOrigins": [],
            "notBefore": 0,
            "bearerOnly": bool(bearer),
            "consentRequired": False,
            "standardFlowEnabled": True,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": True,
            "serviceAccountsEnabled": False,
            "authorizationServicesEnabled": False,
            "publicClient": bool(public),
            "frontchannelLogout": False,
            "protocol": "openid-connect",
            "fullScopeAllowed": True,
            "nodeReRegistrationTimeout": -1,
        }
        attrs: dict[str, str] = {"realm_client": "false"}
        for key, value in body.items():
            if value is None or key in ("protocolMappers", "defaultClientScopes", "optionalClientScopes", "access"):
                continue
            if key == "attributes":
                attrs.update({k: v for k, v in value.items() if v != ""})
            else:
                rep[key] = copy.deepcopy(value)
        if "backchannel.logout.url" not in attrs:
            attrs.setdefault("backchannel.logout.session.required", "true")
            attrs.setdefault("backchannel.logout.revoke.offline.tokens", "false")
        rep["attributes"] = attrs
        if rep.get("rootUrl"):
            rep.setdefault("adminUrl", rep["rootUrl"])
            if not body.get("redirectUris"):
                rep["redirectUris"] = [rep["rootUrl"].rstrip("/") + "/*"]
        if "webOrigins" not in body:
            origins = {o for u in rep["redirectUris"] if (o := _origin(u))}
            if rep.get("rootUrl") and (o := _origin(rep["rootUrl"])):
                origins.add(o)
            rep["webOrigins"] = sorted(origins)
        if rep["publicClient"]:
            rep.pop("secret", None)
        elif not rep.get("secret"):
            rep["secret"] = self._new_secret(rep)
        else:
            rep["attributes"]["client.secret.creation.time"] = str(int(time.time()))
        client = FakeClient(rep)
        if body.get("defaultClientScopes") is not None or body.get("optionalClientScopes") is not None:
            # Only what was asked for; names the realm does not have are ignored, as Keycloak does.
            for name in body.get("defaultClientScopes") or []:
                if (s := realm.scope_by_name(name)) is not None:
                    client.default_scopes.append(s["id"])
            for name in body.get("optionalClientScopes") or []:
                if (s := realm.scope_by_name(name)) is not None:
                    client.optional_scopes.append(s["id"])
        else:
            client.default_scopes = [s["id"] for n in DEFAULT_SCOPES if (s := realm.scope_by_name(n))]
            client.optional_scopes = [s["id"] for n in OPTIONAL_SCOPES if (s := realm.scope_by_name(n))]
        for mapper in body.get("protocolMappers") or []:
            mid = str(uuid.uuid4())
            client.mappers[mid] = {"protocol": "openid-connect", "config": {}, **copy.deepcopy(mapper), "id": mid}
        self._service_account_scope(realm, client)
        realm.clients[cid] = client
        return str(cid)

    @staticmethod
    def _service_account_scope(realm: FakeRealm, client: FakeClient) -> None:
        """Keycloak (26.7) attaches `service_account` as a default scope while service accounts are
        enabled and detaches it when they are turned off."""
        scope = realm.scope_by_name(SERVICE_ACCOUNT_SCOPE)
        if scope is None:
            return
        if client.rep.get("serviceAccountsEnabled"):
            if scope["id"] not in client.default_scopes:
                client.default_scopes.append(scope["id"])
        elif scope["id"] in client.default_scopes:
            client.default_scopes.remove(scope["id"])

    def _client_view(self, realm: FakeRealm, client: FakeClient, *, full_secret: bool = False) -> dict[str, Any]:
        rep = copy.deepcopy(client.rep)
        if self.mask_secret_in_representation and "secret" in rep and not full_secret:
            rep["secret"] = "**********"
        if client.mappers:
            rep["protocolMappers"] = [copy.deepcopy(m) for m in client.mappers.values()]
        if not self.hide_scopes_in_representation or full_secret:
            rep["defaultClientScopes"] = [realm.scopes[s]["name"] for s in client.default_scopes if s in realm.scopes]
            rep["optionalClientScopes"] = [realm.scopes[s]["name"] for s in client.optional_scopes if s in realm.scopes]
        rep["access"] = {"view": True, "configure": True, "manage": True}
        if not rep.get("authorizationServicesEnabled"):
            rep.pop("authorizationServicesEnabled", None)  # Keycloak leaves the key out unless authorization is on
        return rep

    # --- request plumbing ---------------------------------------------------------------------

    def _body(self, req: Request, schema: str) -> tuple[Any, Response | None]:
        if req.header(
            "content-type",
        ) is None or "json" not in (req.header("content-type") or ""):
            self.invalid_bodies.append(f"{req.method} {req.path}: content type {req.header('content-type')!r}")
            return None, _err(415, "Unsupported Media Type", "error")
        try:
            body = req.json()
        except ValueError as e:
            self.invalid_bodies.append(f"{req.method} {req.path}: not JSON ({e})")
            return None, _err(400, "unable to parse JSON", "error")
        errors = self.validator.errors(schema, body)
        if errors:
            self.invalid_bodies.append(f"{req.method} {req.path} ({schema}): {'; '.join(errors)}")
            return None, Response(400, {"error": "unknown_error", "error_description": errors[0]})
        with self.lock:
            self.bodies.append((req.method, req.path, copy.deepcopy(body)))
        return body, None

    def _auth(self, req: Request, realm: str | None = None) -> Response | None:
        header = req.header("authorization") or ""
        if not header.startswith("Bearer "):
            return _err(401, "HTTP 401 Unauthorized", "error")
        with self.lock:
            token = self.tokens.get(header[len("Bearer ") :])
            if token is None or token.expires_at <= time.monotonic():
                return _err(401, "HTTP 401 Unauthorized", "error")
            if (
                self.new_realm_needs_new_token
                and realm is not None
                and realm in self.realms
                and realm not in token.visible_realms
            ):
                return _err(403, "HTTP 403 Forbidden", "error")
        return None

    def _realm(self, req: Request) -> tuple[FakeRealm | None, Response | None]:
        denied = self._auth(req, req.params["realm"])
        if denied:
            return None, denied
        realm = self.realms.get(req.params["realm"])
        if realm is None:
            return None, _err(404, "Realm not found.", "error")
        return realm, None

    def _client(self, req: Request) -> tuple[FakeRealm | None, FakeClient | None, Response | None]:
        realm, denied = self._realm(req)
        if denied:
            return None, None, denied
        assert realm is not None
        client = realm.clients.get(req.params["uuid"])
        if client is None:
            return realm, None, _err(404, "Could not find client", "error")
        return realm, client, None

    def _realm_route(self, method: str, path: str) -> Callable[[RealmHandler], RealmHandler]:
        """Route an Admin API call on one realm: 401, 403 and 404 are answered before the handler runs."""

        def register(handler: RealmHandler) -> RealmHandler:
            def route(req: Request) -> Response:
                realm, denied = self._realm(req)
                if denied:
                    return denied
                assert realm is not None
                return handler(req, realm)

            self.app.route(method, self._p(path))(route)
            return handler

        return register

    def _client_route(self, method: str, path: str) -> Callable[[ClientHandler], ClientHandler]:
        """Route an Admin API call on one client (`{uuid}`): 401, 403 and 404 answered first."""

        def register(handler: ClientHandler) -> ClientHandler:
            def route(req: Request) -> Response:
                realm, client, denied = self._client(req)
                if denied:
                    return denied
                assert realm is not None and client is not None
                return handler(req, realm, client)

            self.app.route(method, self._p(path))(route)
            return handler

        return register

    def _issue(self, subject: str, realm: str, client_id: str, with_refresh: bool) -> dict[str, Any]:
        access, session = secrets.token_urlsafe(32), str(uuid.uuid4())
        now = time.monotonic()
        self.tokens[access] = Token(subject, realm, now + self.access_token_lifespan, frozenset(self.realms), session)
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": int(self.access_token_lifespan),
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }
        if with_refresh:
            refresh = secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = RefreshToken(
                subject, realm, client_id, now + self.refresh_token_lifespan, session
            )
            body.update(
                refresh_token=refresh,
                refresh_expires_in=int(self.refresh_token_lifespan),
                session_state=session,
            )
        return body

    # --- routes -----------------------------------------------------------------------------

    def _routes(self) -> None:
        app, p = self.app, self._p

        @app.route("POST", p("/realms/{realm}/protocol/openid-connect/token"))
        def token(req: Request) -> Response:
            if "application/x-www-form-urlencoded" not in (req.header("content-type") or ""):
                return Response(400, {"error": "invalid_request", "error_description": "Missing form parameter"})
            form = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
            realm = req.params["realm"]
            grant = form.get("grant_type", "")
            with self.lock:
                self.grants[grant] += 1
                if realm not in self.realms:
                    return _err(404, "Realm does not exist", "error")
                client_id = form.get("client_id", "")
                if grant == "password":
                    if client_id != "admin-cli" and client_id not in self.service_clients:
                        return Response(401, {"error": "invalid_client", "error_description": "Invalid client"})
                    user, password = form.get("username", ""), form.get("password", "")
                    if realm != "master" or self.users.get(user) != password or not password:
                        # 400, not 401: what Keycloak 26.7 answers (tests/real/test_keycloak_fidelity.py).
                        return Response(
                            400, {"error": "invalid_grant", "error_description": "Invalid user credentials"}
                        )
                    return Response(200, self._issue(user, realm, client_id, with_refresh=True))
                if grant == "client_credentials":
                    expected = self.service_clients.get(client_id)
                    if realm != "master" or expected is None or form.get("client_secret") != expected:
                        return Response(
                            401,
                            {
                                "error": "unauthorized_client",
                                "error_description": "Invalid client or Invalid client credentials",
                            },
                        )
                    return Response(
                        200, self._issue(f"service-account-{client_id}", realm, client_id, with_refresh=False)
                    )
                if grant == "refresh_token":
                    stored = self.refresh_tokens.get(form.get("refresh_token", ""))
                    if stored is None or stored.client_id != client_id:
                        return Response(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
                    if stored.expires_at <= time.monotonic():
                        return Response(400, {"error": "invalid_grant", "error_description": "Token is not active"})
                    del self.refresh_tokens[form["refresh_token"]]
                    return Response(200, self._issue(stored.subject, realm, client_id, with_refresh=True))
                return Response(400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant_type"})

        @app.route("GET", p("/realms/{realm}/.well-known/openid-configuration"))
        def discovery(req: Request) -> Response:
            realm = req.params["realm"]
            with self.lock:
                if realm not in self.realms:
                    return _err(404, "Realm does not exist", "error")
            issuer = f"{self._issuer_base(req)}/realms/{realm}"
            oidc = f"{issuer}/protocol/openid-connect"
            # Back-channel endpoints follow the URL the caller used when the hostname is fixed and
            # KC_HOSTNAME_BACKCHANNEL_DYNAMIC is on (the stack sets both; seen on Keycloak 26.7).
            back = oidc
            if self.frontend_url and self.backchannel_dynamic:
                scheme = self.server.scheme if self.server else "https"
                back = f"{scheme}://{req.header('host')}{self.base_path}/realms/{realm}/protocol/openid-connect"
            return Response(
                200,
                {
                    "issuer": issuer,
                    "authorization_endpoint": f"{oidc}/auth",
                    "token_endpoint": f"{back}/token",
                    "jwks_uri": f"{back}/certs",
                    "userinfo_endpoint": f"{back}/userinfo",
                    "code_challenge_methods_supported": ["plain", "S256"],
                    "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "password"],
                },
            )

        # realms -----------------------------------------------------------------------------

        @app.route("GET", p("/admin/realms"))
        def list_realms(req: Request) -> Response:
            denied = self._auth(req)
            if denied:
                return denied
            with self.lock:
                return Response(200, [copy.deepcopy(r.rep) for r in self.realms.values()])

        @app.route("POST", p("/admin/realms"))
        def create_realm(req: Request) -> Response:
            denied = self._auth(req)
            if denied:
                return denied
            body, bad = self._body(req, "RealmRepresentation")
            if bad:
                return bad
            name = body.get("realm")
            if not name:
                return _err(400, "Realm name cannot be empty")
            with self.lock:
                if name in self.realms:
                    return _err(409, f"Realm {name} already exists")
                self._new_realm(name, body, owner=None)
            return Response(201, None, {"Location": f"{self._issuer_base(req)}/admin/realms/{name}"})

        @self._realm_route("GET", "/admin/realms/{realm}")
        def get_realm(req: Request, realm: FakeRealm) -> Response:
            with self.lock:
                return Response(200, copy.deepcopy(realm.rep))

        @self._realm_route("PUT", "/admin/realms/{realm}")
        def put_realm(req: Request, realm: FakeRealm) -> Response:
            body, bad = self._body(req, "RealmRepresentation")
            if bad:
                return bad
            name = req.params["realm"]
            with self.lock:
                if name in self._writing:
                    self.lock_conflicts += 1
                    # KeycloakErrorHandler: an OptimisticLockException is an uncaught error, rolled back,
                    # answered with the generic body (the exception is only in the server log).
                    return Response(500, SERVER_ERROR_BODY)
                self._writing.add(name)
            try:
                if self.realm_write_seconds:
                    time.sleep(self.realm_write_seconds)
                with self.lock:
                    new_name = body.get("realm") or name
                    if new_name != name and new_name in self.realms:
                        return _err(409, "Realm with same name exists")
                    for key, value in body.items():
                        if value is None or key in ("id", "clients", "users", "roles", "groups"):
                            continue
                        if key == "attributes":
                            for k, v in value.items():
                                if v == "":
                                    realm.rep["attributes"].pop(k, None)
                                else:
                                    realm.rep["attributes"][k] = v
                        else:
                            realm.rep[key] = copy.deepcopy(value)
                    if new_name != name:
                        self.realms[new_name] = self.realms.pop(name)
            finally:
                with self.lock:
                    self._writing.discard(name)
            return Response(204)

        @self._realm_route("DELETE", "/admin/realms/{realm}")
        def delete_realm(req: Request, _realm: FakeRealm) -> Response:
            with self.lock:
                self.realms.pop(req.params["realm"], None)
            return Response(204)

        # clients ----------------------------------------------------------------------------

        @self._realm_route("GET", "/admin/realms/{realm}/clients")
        def list_clients(req: Request, realm: FakeRealm) -> Response:
            wanted = req.arg("clientId")
            search = (req.arg("search") or "false").lower() == "true"
            # No `max` means every client (ClientsResource passes null through), not a default page.
            first = int(req.arg("first") or 0)
            max_arg = req.arg("max")
            limit = int(max_arg) if max_arg else None
            with self.lock:
                found = []
                for c in realm.clients.values():
                    cid = c.rep["clientId"]
                    if wanted is None or (cid == wanted if not search else wanted.lower() in cid.lower()):
                        found.append(self._client_view(realm, c))
            return Response(200, found[first:] if limit is None else found[first : first + limit])

        @self._realm_route("POST", "/admin/realms/{realm}/clients")
        def create_client(req: Request, realm: FakeRealm) -> Response:
            body, bad = self._body(req, "ClientRepresentation")
            if bad:
                return bad
            with self.lock:
                created = self._create_client(realm, body)
            if isinstance(created, Response):
                return created
            location = f"{self._issuer_base(req)}/admin/realms/{req.params['realm']}/clients/{created}"
            return Response(201, None, {} if self.omit_location else {"Location": location})

        @self._client_route("GET", "/admin/realms/{realm}/clients/{uuid}")
        def get_client(req: Request, realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                return Response(200, self._client_view(realm, client))

        @self._client_route("PUT", "/admin/realms/{realm}/clients/{uuid}")
        def put_client(req: Request, realm: FakeRealm, client: FakeClient) -> Response:
            body, bad = self._body(req, "ClientRepresentation")
            if bad:
                return bad
            with self.lock:
                rep = copy.deepcopy(client.rep)
                new_id = body.get("clientId")
                if new_id and new_id != rep["clientId"]:
                    if any(c.rep["clientId"] == new_id for c in realm.clients.values()):
                        # RepresentationToModel's ModelDuplicateException, as KeycloakErrorHandler renders it.
                        return Response(409, {"error": "conflict", "error_description": "Duplicate resource error"})
                for key, value in body.items():
                    if value is None or key in ("id", "defaultClientScopes", "optionalClientScopes", "access"):
                        continue
                    if key == "attributes":
                        attrs = rep.setdefault("attributes", {})
                        for k, v in value.items():
                            if v == "":
                                attrs.pop(k, None)  # RepresentationToModel.removeEmptyString
                            else:
                                attrs[k] = v
                    elif key == "protocolMappers":
                        self._replace_mappers(client, value)
                    else:
                        rep[key] = copy.deepcopy(value)
                if body.get("authorizationServicesEnabled") is not True:
                    rep["authorizationServicesEnabled"] = False
                problem = self._uri_error(rep)
                if problem:
                    return Response(400, {"error": "invalid_input", "error_description": problem})
                if rep.get("publicClient"):
                    rep.pop("secret", None)
                elif not rep.get("secret"):
                    rep["secret"] = self._new_secret(rep)
                client.rep = rep
                self._service_account_scope(realm, client)
            return Response(204)

        @self._client_route("DELETE", "/admin/realms/{realm}/clients/{uuid}")
        def delete_client(req: Request, realm: FakeRealm, _client: FakeClient) -> Response:
            with self.lock:
                realm.clients.pop(req.params["uuid"], None)
            return Response(204)

        @self._client_route("GET", "/admin/realms/{realm}/clients/{uuid}/client-secret")
        def get_secret(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                body = {"type": "secret"}
                if client.rep.get("secret"):
                    body["value"] = client.rep["secret"]
                return Response(200, body)

        @self._client_route("POST", "/admin/realms/{realm}/clients/{uuid}/client-secret")
        def regenerate_secret(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                client.rep["secret"] = self._new_secret(client.rep)
                return Response(200, {"type": "secret", "value": client.rep["secret"]})

        # protocol mappers -------------------------------------------------------------------

        models = "/admin/realms/{realm}/clients/{uuid}/protocol-mappers/models"

        @self._client_route("GET", models)
        def list_mappers(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                return Response(200, [copy.deepcopy(m) for m in client.mappers.values()])

        @self._client_route("POST", models)
        def create_mapper(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            body, bad = self._body(req, "ProtocolMapperRepresentation")
            if bad:
                return bad
            with self.lock:
                if any(m["name"] == body.get("name") for m in client.mappers.values()):
                    return _err(409, "Protocol mapper exists with same name")
                mid = str(uuid.uuid4())
                client.mappers[mid] = {"protocol": "openid-connect", "config": {}, **body, "id": mid}
            return Response(201, None, {"Location": f"{self._issuer_base(req)}{req.path}/{mid}"})

        @self._client_route("GET", models + "/{mapper}")
        def get_mapper(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                mapper = client.mappers.get(req.params["mapper"])
                return Response(200, copy.deepcopy(mapper)) if mapper else _err(404, "Model not found", "error")

        @self._client_route("PUT", models + "/{mapper}")
        def put_mapper(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            body, bad = self._body(req, "ProtocolMapperRepresentation")
            if bad:
                return bad
            with self.lock:
                mapper = client.mappers.get(req.params["mapper"])
                if mapper is None:
                    return _err(404, "Model not found", "error")
                mapper.update({k: v for k, v in body.items() if k != "id" and v is not None})
            return Response(204)

        @self._client_route("DELETE", models + "/{mapper}")
        def delete_mapper(req: Request, _realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                if client.mappers.pop(req.params["mapper"], None) is None:
                    return _err(404, "Model not found", "error")
            return Response(204)

        # client scopes ----------------------------------------------------------------------

        @self._realm_route("GET", "/admin/realms/{realm}/client-scopes")
        def realm_scopes(req: Request, realm: FakeRealm) -> Response:
            with self.lock:
                return Response(200, [copy.deepcopy(s) for s in realm.scopes.values()])

        for kind in ("default", "optional"):
            self._scope_routes(kind)

    def _scope_routes(self, kind: str) -> None:
        base = f"/admin/realms/{{realm}}/clients/{{uuid}}/{kind}-client-scopes"
        attr = f"{kind}_scopes"
        other = "optional_scopes" if kind == "default" else "default_scopes"

        def listing(req: Request, realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                ids = getattr(client, attr)
                return Response(200, [{"id": s, "name": realm.scopes[s]["name"]} for s in ids if s in realm.scopes])

        def link(req: Request, realm: FakeRealm, client: FakeClient) -> Response:
            sid = req.params["scope"]
            with self.lock:
                if sid not in realm.scopes:
                    return _err(404, "Client scope not found", "error")
                if sid in getattr(client, other):
                    return _err(409, "Client scope already linked to the client")
                if sid not in getattr(client, attr):
                    getattr(client, attr).append(sid)
            return Response(204)

        def unlink(req: Request, realm: FakeRealm, client: FakeClient) -> Response:
            with self.lock:
                if req.params["scope"] not in realm.scopes:
                    return _err(404, "Client scope not found", "error")
                ids = getattr(client, attr)
                if req.params["scope"] in ids:
                    ids.remove(req.params["scope"])
            return Response(204)

        self._client_route("GET", base)(listing)
        self._client_route("PUT", base + "/{scope}")(link)
        self._client_route("DELETE", base + "/{scope}")(unlink)

    @staticmethod
    def _replace_mappers(client: FakeClient, mappers: list[dict[str, Any]]) -> None:
        """A PUT with `protocolMappers` updates by name and deletes every mapper it does not list."""
        by_name = {m["name"]: mid for mid, m in client.mappers.items()}
        keep: dict[str, dict[str, Any]] = {}
        for m in mappers:
            mid = by_name.get(m.get("name", "")) or str(uuid.uuid4())
            keep[mid] = {"protocol": "openid-connect", "config": {}, **copy.deepcopy(m), "id": mid}
        client.mappers = keep


def start(loopback: Callable[..., LoopbackServer], *, platform_owner: str | None = None, **kwargs: Any) -> KeycloakFake:
    """A fake Keycloak on a loopback TLS server (use with the `loopback` fixture); with
    `platform_owner`, realm `platform` already exists, owned by that stack."""
    fake = KeycloakFake(**kwargs)
    fake.serve(loopback)
    if platform_owner is not None:
        fake.seed_realm("platform", {"pulumi.stack": platform_owner})
    return fake
