"""Typed client of the Keycloak Admin REST API on the shared transport: the admin token
(`KeycloakSession`), the one error class (`KeycloakApiError`) and the calls (`KeycloakAdmin`).
See docs/providers/keycloak.md ("Tokens", "Faults")."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from dynamic_providers._kernel import post_or_find
from dynamic_providers._transport import ApiError, RetryPolicy, Session, forget_sessions, ssl_context, tls_failure
from dynamic_providers._transport.retry import RETRY_STATUSES, never_sent
from dynamic_providers._transport.session import keyed_lock
from dynamic_providers.keycloak.models import (
    ClientRepresentation,
    ClientScopeRepresentation,
    Connection,
    CredentialRepresentation,
    ProtocolMapperRepresentation,
    RealmRepresentation,
    Representation,
    TokenResponse,
)

__all__ = ["KeycloakAdmin", "KeycloakApiError", "KeycloakSession", "RetryPolicy", "forget_tokens"]

ScopeKind = Literal["default", "optional"]
Rep = TypeVar("Rep", bound=Representation)
# Never PUT: the secret (a stale copy would overwrite a rotated one), protocol mappers (a PUT list
# deletes every mapper it omits), scopes (PUT ignores them), the caller's access rights.
_NEVER_PUT = ("secret", "protocolMappers", "defaultClientScopes", "optionalClientScopes", "access")
forget_tokens = forget_sessions  # tests and benchmarks start cold with it


class KeycloakApiError(ApiError):
    """Any failure talking to Keycloak: an error status, an unreachable server, a lost answer."""

    @classmethod
    def from_response(cls, resp: httpx.Response, what: str | None = None) -> KeycloakApiError:
        prefix = f"{what}: " if what else ""
        message = f"{prefix}Keycloak answered {resp.status_code} to {resp.request.method} {resp.request.url}: "
        err = cls.answered(resp, message + error_detail(resp), code=_json_field(resp, "error"))
        if err.retry_after is not None:
            err.args = (f"{err.args[0]} (Keycloak asked to retry after {err.retry_after:.0f} s)",)
        return err


def _json_field(resp: httpx.Response, key: str) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return str(body[key]) if isinstance(body, dict) and body.get(key) else None


def error_detail(resp: httpx.Response) -> str:
    """Keycloak's error text: `errorMessage`, `error_description` or `error`, else the raw body."""
    parts = [p for k in ("error", "error_description", "errorMessage") if (p := _json_field(resp, k))]
    return ": ".join(parts) if parts else resp.text[:500] or resp.reason_phrase


def unreachable(exc: httpx.TransportError, conn: Connection, what: str) -> KeycloakApiError:
    """The error for a call that got no answer; a certificate that fails verification says how to trust it."""
    tls = tls_failure(exc)
    if tls is not None:
        return KeycloakApiError.unanswered(
            exc,
            f"TLS verification of {conn.url} failed ({tls}): the certificate is not signed by a trusted CA or does "
            "not match the host; put the issuing CA in connection.ca_bundle_pem or fix connection.url "
            "(verification is never turned off)",
        )
    detail = f"{type(exc).__name__}: {exc or 'no detail'}"
    if never_sent(exc):
        return KeycloakApiError.unanswered(exc, f"cannot reach Keycloak at {conn.server} for {what}: {detail}")
    err = KeycloakApiError.unanswered(exc, f"{what}: the answer was lost ({detail})")
    if err.outcome_unknown:
        err.args = (f"{err.args[0]}; Keycloak may or may not have applied it",)
    return err


# --- the session ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    access: str
    refresh: str | None
    fresh_until: float  # monotonic time at 90 % of the access token's lifetime
    refresh_until: float | None  # same for the refresh token; None = no expiry announced


class KeycloakSession(Session):
    """The admin token of one account on one Keycloak, with its pooled client (see the transport)."""

    renew_on = frozenset({401, 403})

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.token_url = f"{conn.server}/realms/{quote(conn.token_realm, safe='')}/protocol/openid-connect/token"
        super().__init__(httpx.HTTPTransport(verify=ssl_context(conn.ca_bundle_pem)),
                         headers={"Accept": "application/json"}, timeout=conn.timeout)

    @classmethod
    def of(cls, conn: Connection) -> KeycloakSession:
        secrets = [s.get_secret_value() if s else "" for s in (conn.password, conn.client_secret)]
        key = (conn.server, conn.token_realm, conn.grant, conn.grant_client_id, conn.username or "", *secrets,
               conn.ca_bundle_pem or "")
        return cls.shared(key, lambda: cls(conn))

    def fresh(self, credential: Any) -> bool:
        return bool(time.monotonic() < credential.fresh_until)

    def apply(self, request: httpx.Request, credential: Any) -> None:
        request.headers["Authorization"] = f"Bearer {credential.access}"

    def login(self, extensions: dict[str, Any], previous: Any) -> _Token:
        conn, tok = self.conn, previous
        secret = {"client_secret": conn.client_secret.get_secret_value()} if conn.client_secret else {}
        if tok is not None and tok.refresh and (tok.refresh_until is None or time.monotonic() < tok.refresh_until):
            form = {"grant_type": "refresh_token", "refresh_token": tok.refresh, "client_id": conn.grant_client_id}
            try:
                return self._token({**form, **secret}, "refresh the admin token", extensions)
            except KeycloakApiError as e:
                if e.status not in (400, 401):  # refused refresh (session gone): log in again
                    raise
        form = {"client_id": conn.grant_client_id, "grant_type": conn.grant, **secret}
        if conn.username and conn.password:
            form.update(username=conn.username, password=conn.password.get_secret_value())
        return self._token(form, "log in", extensions)

    def _token(self, form: dict[str, str], what: str, extensions: dict[str, Any]) -> _Token:
        """POST the token endpoint; safe to repeat (a grant changes nothing but sessions)."""
        waited = extensions.get("ready_timeout") or 0
        policy: RetryPolicy = extensions.get("retry") or RetryPolicy()
        gave_up = f" within {waited:.0f} s" if waited else f" after {policy.attempts} attempts"
        try:
            resp = self.http.request("POST", self.token_url, data=form, auth=None,
                                     extensions={**extensions, "idempotent": True})
        except httpx.TransportError as e:
            if tls_failure(e):
                raise unreachable(e, self.conn, f"POST {self.token_url}") from e
            raise self._silent(gave_up, f"{type(e).__name__}: {e or 'no detail'}") from e
        if resp.status_code in RETRY_STATUSES:  # as often as the policy repeats it, or asked to wait longer
            err = KeycloakApiError.from_response(resp, f"cannot {what} at realm {self.conn.token_realm!r}")
            err.args = (f"{err.args[0]}; Keycloak is reachable but not serving logins now: check its health and "
                        "load, then run the same Pulumi command again",)
            raise err.without_exchange()
        if resp.status_code != 200:
            raise self._refused(resp, what)
        try:
            body = TokenResponse.model_validate(resp.json())
        except (ValueError, ValidationError) as e:
            # Never the body itself: it holds tokens.
            why = ("; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
                   if isinstance(e, ValidationError) else "not JSON")
            raise KeycloakApiError(
                f"the token endpoint {self.token_url} did not return a token ({why}); is connection.url pointing at "
                "Keycloak?", status=200, method="POST", url=self.token_url) from None
        now = time.monotonic()
        # No expires_in (RFC 6749: recommended only): used until refused, then renewed on the 401.
        fresh_until = now + 0.9 * body.expires_in if body.expires_in is not None else math.inf
        # refresh_expires_in 0 means "no expiry" (offline tokens)
        refresh_until = now + 0.9 * body.refresh_expires_in if body.refresh_expires_in else None
        return _Token(body.access_token, body.refresh_token, fresh_until, refresh_until)

    def _silent(self, gave_up: str, last: str) -> KeycloakApiError:
        return KeycloakApiError(
            f"Keycloak at {self.conn.server} did not answer{gave_up} (last error: {last}); check that Keycloak is "
            "running and reachable from this machine and that connection.url / connection.base_path point at it",
            method="POST", url=self.token_url)

    def _refused(self, resp: httpx.Response, what: str) -> KeycloakApiError:
        conn = self.conn
        who = f"user {conn.username!r}" if conn.grant == "password" else f"client {conn.grant_client_id!r}"
        credentials = f"check the credentials in connection ({who}, client {conn.grant_client_id!r})"
        hint = {
            401: credentials,
            400: "the grant was refused; check connection.client_id and that the client allows this grant",
            404: (
                f"realm {conn.token_realm!r} has no token endpoint there: check connection.token_realm and "
                'connection.base_path ("" for Keycloak >= 17, "/auth" for older)'
            ),
        }.get(resp.status_code, "")
        if resp.status_code == 400 and _json_field(resp, "error") in ("invalid_grant", "unauthorized_client",
                                                                     "invalid_client"):
            hint = credentials  # Keycloak 26.7 answers wrong user credentials with 400 invalid_grant, not 401.
        err = KeycloakApiError.from_response(resp, f"cannot {what} at realm {conn.token_realm!r}").without_exchange()
        if hint:
            err.args = (f"{err.args[0]}; {hint}",)
        return err


# --- the client -----------------------------------------------------------------------------


class KeycloakAdmin:
    """Admin REST API calls for one `Connection`. The token and connections are the process's
    (`KeycloakSession`), the retry policy, readiness wait and sleep this caller's. Each endpoint is
    one `call` with its path, what it does (for messages) and the model of its answer."""

    def __init__(
        self,
        conn: Connection,
        *,
        retry: RetryPolicy | None = None,
        ready_timeout: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conn = conn
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._ext = self.retry.extensions(sleep, ready_timeout)
        self.session = KeycloakSession.of(conn)

    def __enter__(self) -> KeycloakAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to release: the session and its connections stay with the process."""

    def renew_token(self) -> None:
        """Get a new token now (the cached one predates a realm and lacks its roles)."""
        self.session.renew(self._ext)

    def pause(self, attempt: int, err: KeycloakApiError | None) -> None:
        """Wait before repeating a call that failed `attempt` times (`RetryPolicy.pause`)."""
        self.retry.pause(attempt, err, self._sleep)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.session.http.request(method, url, extensions=self._ext, **kwargs)
        except httpx.TransportError as e:
            raise unreachable(e, self.conn, f"{method} {url}") from e

    def call(self, method: str, path: str, what: str, *, model: type[Rep] | None = None, many: bool = False,
             absent_ok: bool = False, **kwargs: Any) -> Any:
        """One Admin API call (`path` under /admin/realms): None for a 404 when `absent_ok`, the
        answer as `model` (`many`: a list of them) when given, else the 2xx response; any other
        answer is a `KeycloakApiError`. A JSON null is None, or no items."""
        resp = self._send(method, f"{self.conn.server}/admin/realms{path}", **kwargs)
        if resp.status_code == 404 and absent_ok:
            return None
        if not resp.is_success:
            err = KeycloakApiError.from_response(resp, what)
            if resp.status_code == 403:
                err.args = (
                    f"{err.args[0]}; the account in `connection` lacks the admin role for this realm "
                    "(use a master-realm admin, or grant realm-management/realm-admin)",
                )
            raise err
        if model is None:
            return resp
        try:
            body = resp.json()
        except ValueError:
            raise KeycloakApiError(
                f"{method} {resp.request.url}: Keycloak answered {resp.status_code} without JSON",
                status=resp.status_code, method=method, url=str(resp.request.url)) from None
        try:
            if many:
                return [model.model_validate(b) for b in body or []]
            return None if body is None else model.model_validate(body)
        except ValidationError as e:  # its text would quote the body, which may hold a secret
            raise KeycloakApiError(
                f"{method} {resp.request.url}: Keycloak answered {resp.status_code} with JSON that is not the "
                f"representation asked for ({'a list of ' if many else ''}{model.__name__}; {e.error_count()} "
                "problem(s)); check that connection.url points at Keycloak",
                status=resp.status_code, method=method, url=str(resp.request.url)) from None

    def _another(self, path: str, found: str, asked: str) -> KeycloakApiError:
        """A read answered about another object than the one asked for: never taken as it."""
        url = f"{self.conn.server}/admin/realms{path}"
        return KeycloakApiError(
            f"GET {url} answered with {found}, not {asked}: an answer about another object is not trusted "
            "(a proxy or server answering for something else); check connection.url",
            status=200, method="GET", url=url)

    def realm_write(self, realm: str) -> threading.Lock:
        """Writes to one realm's top-level entity, serialised in this process (optimistic locking)."""
        return keyed_lock("keycloak realm", self.conn.server, realm)

    # --- realms -----------------------------------------------------------------------------

    def get_realm(self, realm: str) -> RealmRepresentation | None:
        rep: RealmRepresentation | None = self.call("GET", _path(realm), f"read realm {realm!r}",
                                                    model=RealmRepresentation, absent_ok=True)
        if rep is not None and rep.realm != realm:
            raise self._another(_path(realm), f"realm {rep.realm!r} (id {rep.id})", repr(realm))
        return rep

    def create_realm(self, rep: RealmRepresentation) -> None:
        """POST /admin/realms (201; 409 when the name is taken). Its `Location` names the realm, not
        its id: the caller sets the id in `rep` (Keycloak keeps a given id, RealmManager.importRealm)."""
        assert rep.realm
        with self.realm_write(rep.realm):
            self.call("POST", "", f"create realm {rep.realm!r}", json=rep.payload())

    def update_realm(self, realm: str, rep: RealmRepresentation) -> None:
        with self.realm_write(realm):
            self.call("PUT", _path(realm), f"update realm {realm!r}", json=rep.payload())

    def delete_realm(self, realm: str) -> None:
        with self.realm_write(realm):
            self.call("DELETE", _path(realm), f"delete realm {realm!r}", absent_ok=True)

    def discovery(self, realm: str) -> dict[str, Any]:
        """The realm's OpenID discovery document (public): the issuer Keycloak really puts in tokens.
        A server that does not serve it (404: OpenID Connect's, not the Admin API's) gets what
        Keycloak derives from this URL when no frontend URL is set."""
        issuer = self.conn.issuer_url(quote(realm, safe=""))
        url = f"{issuer}/.well-known/openid-configuration"
        resp = self._send("GET", url, auth=None)
        if resp.status_code == 404:
            return {"issuer": issuer, "jwks_uri": f"{issuer}/protocol/openid-connect/certs"}
        if resp.status_code != 200:
            raise KeycloakApiError.from_response(resp, f"read the OpenID configuration of realm {realm!r}")
        body = resp.json()
        if not isinstance(body, dict) or "issuer" not in body:
            raise KeycloakApiError(f"GET {url}: not an OpenID configuration", status=200, method="GET", url=url)
        return body

    # --- clients ----------------------------------------------------------------------------

    def find_client(self, realm: str, client_id: str) -> ClientRepresentation | None:
        """The client whose clientId is exactly `client_id` (GET ?clientId= is exact; filtered again)."""
        found = self.call("GET", _path(realm, "clients"), f"look up client {client_id!r} in {realm!r}",
                          model=ClientRepresentation, many=True, params={"clientId": client_id})
        return next((r for r in found if r.client_id == client_id), None)

    def get_client(self, realm: str, uuid: str) -> ClientRepresentation | None:
        path = _path(realm, "clients", uuid)
        rep: ClientRepresentation | None = self.call("GET", path, f"read client {uuid} in {realm!r}",
                                                     model=ClientRepresentation, absent_ok=True)
        if rep is not None and rep.id != uuid:
            raise self._another(path, f"client {rep.client_id!r} (id {rep.id})", f"id {uuid}")
        return rep

    def create_client(self, realm: str, rep: ClientRepresentation) -> str:
        """POST the client; its UUID is the last part of `Location` (409: the clientId is taken)."""
        resp = self.call("POST", _path(realm, "clients"), f"create client {rep.client_id!r}", json=rep.payload())
        uuid = resp.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
        if not uuid:
            # Created, but not told where (a proxy dropped the header): the clientId is unique.
            found = self.find_client(realm, rep.client_id or "")
            if found is None or not found.id:
                raise KeycloakApiError(f"POST {resp.request.url}: 201 without a Location header", status=201,
                                       method="POST", url=str(resp.request.url))
            uuid = found.id
        return str(uuid)

    def update_client(self, realm: str, uuid: str, rep: ClientRepresentation) -> None:
        """PUT merges field by field; what must never be PUT is dropped (`_NEVER_PUT`)."""
        try:
            self.call("PUT", _path(realm, "clients", uuid), f"update client {uuid}", json=rep.payload(drop=_NEVER_PUT))
        except KeycloakApiError as e:
            if e.status != 409:
                raise
            # Keycloak 26.7 answers a rename onto a taken clientId with a bare
            # {"error": "conflict", "error_description": "Duplicate resource error"}: name the clientId.
            raise KeycloakApiError(
                f"update client {uuid}: client_id {rep.client_id!r} is already used by another client in realm "
                f"{realm!r}; pick another client_id or delete that client ({e})",
                status=409, method=e.method, url=e.url) from e

    def delete_client(self, realm: str, uuid: str) -> None:
        self.call("DELETE", _path(realm, "clients", uuid), f"delete client {uuid}", absent_ok=True)

    def get_client_secret(self, realm: str, uuid: str) -> str | None:
        path, what = _path(realm, "clients", uuid, "client-secret"), f"read the secret of client {uuid}"
        return (self.call("GET", path, what, model=CredentialRepresentation) or CredentialRepresentation()).value

    def regenerate_client_secret(self, realm: str, uuid: str) -> str:
        """POST a new secret. Not idempotent: after a lost answer a secret that changed is that POST's
        (the kernel's create-or-adopt, looking at the secret); only an unchanged one is rotated again."""
        path, what = _path(realm, "clients", uuid, "client-secret"), f"rotate the secret of client {uuid}"
        before = self.get_client_secret(realm, uuid)

        def rotate() -> str:
            value = (self.call("POST", path, what, model=CredentialRepresentation) or CredentialRepresentation()).value
            if not value:
                raise KeycloakApiError(f"rotating the secret of client {uuid} returned no value")
            return value

        def rotated() -> str | None:
            now = self.get_client_secret(realm, uuid)
            return now if now and now != before else None

        return post_or_find(rotate, rotated, errors=KeycloakApiError, attempts=self.retry.attempts, pause=self.pause)

    # --- protocol mappers and client scopes ----------------------------------------------------

    def list_protocol_mappers(self, realm: str, uuid: str) -> list[ProtocolMapperRepresentation]:
        path = _path(realm, "clients", uuid, "protocol-mappers", "models")
        found: list[ProtocolMapperRepresentation] = self.call("GET", path, f"list mappers of {uuid}",
                                                              model=ProtocolMapperRepresentation, many=True)
        return found

    def write_protocol_mapper(self, realm: str, uuid: str, mapper: ProtocolMapperRepresentation
                              ) -> ProtocolMapperRepresentation:
        """POST a new mapper, or PUT the one `mapper.id` names; returns `mapper` (as written)."""
        path = _path(realm, "clients", uuid, "protocol-mappers", "models", *([mapper.id] if mapper.id else []))
        self.call("PUT" if mapper.id else "POST", path, f"write mapper {mapper.name!r} of client {uuid}",
                  json=mapper.payload())
        return mapper

    def delete_protocol_mapper(self, realm: str, uuid: str, mapper_id: str) -> None:
        path = _path(realm, "clients", uuid, "protocol-mappers", "models", mapper_id)
        self.call("DELETE", path, f"remove mapper {mapper_id} from client {uuid}", absent_ok=True)

    def realm_client_scopes(self, realm: str) -> list[ClientScopeRepresentation]:
        found: list[ClientScopeRepresentation] = self.call("GET", _path(realm, "client-scopes"),
                                                           f"list client scopes of {realm!r}",
                                                           model=ClientScopeRepresentation, many=True)
        return found

    def client_scopes(self, realm: str, uuid: str, kind: ScopeKind) -> list[str]:
        path, what = _path(realm, "clients", uuid, f"{kind}-client-scopes"), f"list {kind} scopes of {uuid}"
        return [s.name for s in self.call("GET", path, what, model=ClientScopeRepresentation, many=True) if s.name]

    def link_client_scope(self, realm: str, uuid: str, kind: ScopeKind, scope_id: str, *, attach: bool) -> None:
        """PUT (attach) or DELETE (detach) one scope link; a link already gone counts as detached."""
        path = _path(realm, "clients", uuid, f"{kind}-client-scopes", scope_id)
        what = f"{'attach' if attach else 'detach'} {kind} scope {scope_id} of client {uuid}"
        self.call("PUT" if attach else "DELETE", path, what, absent_ok=not attach)


def _path(*parts: str) -> str:
    """An Admin API path under /admin/realms, each part quoted (names may hold any character)."""
    return "".join(f"/{quote(p, safe='')}" for p in parts)
