"""Typed httpx client for the Keycloak Admin REST API (Keycloak >= 17; `base_path="/auth"` for older).

What it does for every call, so the provider code above it stays about resources:

* **Tokens** (`KeycloakSession`, the transport's `Session`): logs in with the password or
  client-credentials grant once per server and account in the provider process, renews at 90 % of
  the token's lifetime (master-realm tokens live 60 s) with the refresh token when there is one
  (client-credentials grants have none), and logs in afresh when the refresh is refused. A
  401/403 renews the token and resends the call once (403 is what Keycloak answers right after a
  realm is created, before the token carries the new realm's roles).
* **Retries**: the transport's one rule. GET, PUT and DELETE are retried on 429, 5xx (Keycloak's
  generic 500 `unknown_error` is what an optimistic-lock failure becomes, after a rollback),
  resets and timeouts; a POST only when it never reached Keycloak (connect errors, 429). When a
  POST's answer is lost, `KeycloakApiError.outcome_unknown` is set and the caller looks the object
  up before creating again, after `pause` (the error's `Retry-After`, else backoff), so a
  persistent 503 never turns into a burst of POSTs. Realm writes are serialised per realm here.
* **Readiness.** With `ready_timeout`, the login (and any call that cannot connect) waits for a
  Keycloak that is still starting, then fails naming the URL (the transport's one readiness wait).
* **TLS.** Verification is always on; `ca_bundle_pem` adds a private CA to the system roots. A
  certificate that fails verification fails the call at once (no retries, no readiness wait).

One exception class, `KeycloakApiError`, carries the HTTP status, method, URL, Keycloak's error
text and its `Retry-After`. Reads by id or name check the answer is about that object (a GET
answered about another realm or client is an error); the clientId lookup keeps exact matches only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from dynamic_providers._transport import ApiError, RetryPolicy, Session, forget_sessions, ssl_context, tls_failure
from dynamic_providers._transport.retry import RETRY_STATUSES, never_sent
from dynamic_providers.keycloak.models import (
    ClientRepresentation,
    ClientScopeRepresentation,
    Connection,
    CredentialRepresentation,
    ProtocolMapperRepresentation,
    RealmRepresentation,
    TokenResponse,
)

__all__ = ["KeycloakAdmin", "KeycloakApiError", "KeycloakSession", "RetryPolicy", "forget_tokens"]

ScopeKind = Literal["default", "optional"]
_NEVER_PUT = ("secret", "protocolMappers", "defaultClientScopes", "optionalClientScopes", "access")
forget_tokens = forget_sessions  # tests and benchmarks start cold with it


class KeycloakApiError(ApiError):
    """Any failure talking to Keycloak: an error status, an unreachable server, a lost answer."""

    def __init__(self, message: str, *, body: str | None = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.body = body

    @classmethod
    def from_response(cls, resp: httpx.Response, what: str | None = None) -> KeycloakApiError:
        method, url = resp.request.method, str(resp.request.url)
        prefix = f"{what}: " if what else ""
        message = f"{prefix}Keycloak answered {resp.status_code} to {method} {url}: {error_detail(resp)}"
        err = cls.answered(resp, message, body=resp.text[:2000], code=_json_field(resp, "error"))
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
        if tok is not None and tok.refresh and (tok.refresh_until is None or time.monotonic() < tok.refresh_until):
            form = {"grant_type": "refresh_token", "refresh_token": tok.refresh, "client_id": conn.grant_client_id}
            if conn.client_secret:
                form["client_secret"] = conn.client_secret.get_secret_value()
            try:
                return self._token(form, "refresh the admin token", extensions)
            except KeycloakApiError as e:
                if e.status not in (400, 401):  # refused refresh (session gone): log in again
                    raise
        problem = conn.credential_problem()
        if problem:
            raise KeycloakApiError(f"cannot log in to Keycloak: {problem}")
        form = {"client_id": conn.grant_client_id, "grant_type": conn.grant}
        if conn.username and conn.password:
            form.update(username=conn.username, password=conn.password.get_secret_value())
        if conn.client_secret:
            form["client_secret"] = conn.client_secret.get_secret_value()
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
        if resp.status_code in RETRY_STATUSES:
            raise self._silent(gave_up, f"{resp.status_code} {error_detail(resp)}")
        if resp.status_code != 200:
            raise self._refused(resp, what)
        try:
            body = TokenResponse.model_validate(resp.json())
        except (ValueError, ValidationError) as e:
            raise KeycloakApiError(
                f"the token endpoint {self.token_url} did not return a token ({e}); is connection.url pointing at "
                "Keycloak?", status=200, method="POST", url=self.token_url) from None
        now = time.monotonic()
        # refresh_expires_in 0 means "no expiry" (offline tokens)
        refresh_until = now + 0.9 * body.refresh_expires_in if body.refresh_expires_in else None
        return _Token(body.access_token, body.refresh_token, now + 0.9 * body.expires_in, refresh_until)

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


_REALM_GUARD = threading.Lock()
_REALM_LOCKS: dict[str, threading.Lock] = {}


# --- the client -----------------------------------------------------------------------------


class KeycloakAdmin:
    """Admin REST API calls for one `Connection`; use as a context manager inside one provider call.
    The token and connections are the process's (`KeycloakSession`), the policy and sleep this caller's."""

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
        self.ready_timeout = ready_timeout
        self._sleep = sleep
        self._ext = self.retry.extensions(sleep, ready_timeout)
        self.session = KeycloakSession.of(conn)

    def close(self) -> None:
        """Nothing to release: the session and its connections stay with the process."""

    def __enter__(self) -> KeycloakAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token_url(self) -> str:
        return self.session.token_url

    def renew_token(self) -> None:
        """Get a new token now (the cached one predates a realm and lacks its roles)."""
        self.session.renew(self._ext)

    def pause(self, attempt: int, err: KeycloakApiError | None) -> None:
        """Wait before repeating a call that failed `attempt` times: the same policy as the transport's
        own retries (the server's `Retry-After` when `err` carries one, else jittered backoff); a
        `Retry-After` longer than the policy waits fails with `err` at once."""
        asked = err.retry_after if err is not None else None
        if err is not None and asked is not None and asked > self.retry.max_retry_after:
            raise err
        self._sleep(self.retry.delay(attempt, asked))

    def url(self, path: str) -> str:
        return f"{self.conn.server}{path}"

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.session.http.request(method, url, extensions=self._ext, timeout=self.conn.timeout, **kwargs)
        except httpx.TransportError as e:
            raise unreachable(e, self.conn, f"{method} {url}") from e

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        not_found_ok: bool = False,
        what: str | None = None,
    ) -> httpx.Response | None:
        """Send one Admin API call (token and retries by the transport); None for a tolerated 404."""
        resp = self._send(method, self.url(path), json=json, params=params)
        if resp.status_code in expected:
            return resp
        if resp.status_code == 404 and not_found_ok:
            return None
        err = KeycloakApiError.from_response(resp, what)
        if resp.status_code == 403:
            err.args = (
                f"{err.args[0]}; the account in `connection` lacks the admin role for this realm "
                "(use a master-realm admin, or grant realm-management/realm-admin)",
            )
        raise err

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        if resp is None:
            return None
        try:
            return resp.json()
        except ValueError:
            raise KeycloakApiError(
                f"{method} {resp.request.url}: Keycloak answered {resp.status_code} without JSON",
                status=resp.status_code,
                method=method,
                url=str(resp.request.url),
            ) from None

    @staticmethod
    def _location_id(resp: httpx.Response) -> str:
        location = resp.headers.get("Location", "")
        object_id = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
        if not object_id:
            raise KeycloakApiError(
                f"{resp.request.method} {resp.request.url}: 201 without a Location header",
                status=resp.status_code,
                method=resp.request.method,
                url=str(resp.request.url),
            )
        return object_id

    def _another(self, path: str, found: str, asked: str) -> KeycloakApiError:
        """A read answered about another object than the one asked for: never taken as it."""
        url = self.url(path)
        return KeycloakApiError(
            f"GET {url} answered with {found}, not {asked}: an answer about another object is not trusted "
            "(a proxy or server answering for something else); check connection.url",
            status=200,
            method="GET",
            url=url,
        )

    @contextmanager
    def realm_write(self, realm: str) -> Iterator[None]:
        """Serialise writes to one realm's top-level entity within this process (optimistic locking)."""
        with _REALM_GUARD:
            lock = _REALM_LOCKS.setdefault(f"{self.conn.server}|{realm}", threading.Lock())
        with lock:
            yield

    # --- realms -----------------------------------------------------------------------------

    @staticmethod
    def _r(realm: str) -> str:
        return f"/admin/realms/{quote(realm, safe='')}"

    def get_realm(self, realm: str) -> RealmRepresentation | None:
        """The realm named `realm`; an answer about another realm is an error, never taken as it."""
        body = self._json("GET", self._r(realm), not_found_ok=True, what=f"read realm {realm!r}")
        if body is None:
            return None
        rep = RealmRepresentation.model_validate(body)
        if rep.realm != realm:
            raise self._another(self._r(realm), f"realm {rep.realm!r} (id {rep.id})", repr(realm))
        return rep

    def create_realm(self, rep: RealmRepresentation) -> None:
        """POST /admin/realms (201). Raises with status 409 when the name is taken. A Keycloak whose
        tokens carry per-realm roles answers 403 until the token is renewed: the session does that."""
        assert rep.realm
        with self.realm_write(rep.realm):
            self.request(
                "POST", "/admin/realms", json=rep.payload(), expected=(201,), what=f"create realm {rep.realm!r}"
            )

    def update_realm(self, realm: str, rep: RealmRepresentation) -> None:
        with self.realm_write(realm):
            self.request("PUT", self._r(realm), json=rep.payload(), expected=(204,), what=f"update realm {realm!r}")

    def delete_realm(self, realm: str) -> bool:
        """DELETE the realm; False when it was already gone."""
        with self.realm_write(realm):
            resp = self.request(
                "DELETE", self._r(realm), expected=(204,), not_found_ok=True, what=f"delete realm {realm!r}"
            )
        return resp is not None

    def discovery(self, realm: str) -> dict[str, Any]:
        """The realm's OpenID discovery document (public): the issuer Keycloak really puts in tokens."""
        url = f"{self.conn.server}/realms/{quote(realm, safe='')}/.well-known/openid-configuration"
        resp = self._send("GET", url, auth=None)
        if resp.status_code != 200:
            raise KeycloakApiError.from_response(resp, f"read the OpenID configuration of realm {realm!r}")
        body = resp.json()
        if not isinstance(body, dict) or "issuer" not in body:
            raise KeycloakApiError(f"GET {url}: not an OpenID configuration", status=200, method="GET", url=url)
        return body

    # --- clients ----------------------------------------------------------------------------

    def _c(self, realm: str, uuid: str = "") -> str:
        base = f"{self._r(realm)}/clients"
        return f"{base}/{quote(uuid, safe='')}" if uuid else base

    def find_client(self, realm: str, client_id: str) -> ClientRepresentation | None:
        """The client whose clientId is exactly `client_id` (GET ?clientId= is exact; filtered again)."""
        body = self._json(
            "GET", self._c(realm), params={"clientId": client_id}, what=f"look up client {client_id!r} in {realm!r}"
        )
        for item in body or []:
            rep = ClientRepresentation.model_validate(item)
            if rep.client_id == client_id:
                return rep
        return None

    def get_client(self, realm: str, uuid: str) -> ClientRepresentation | None:
        """The client with id `uuid`; an answer about another client is an error, never taken as it."""
        body = self._json("GET", self._c(realm, uuid), not_found_ok=True, what=f"read client {uuid} in {realm!r}")
        if body is None:
            return None
        rep = ClientRepresentation.model_validate(body)
        if rep.id != uuid:
            raise self._another(self._c(realm, uuid), f"client {rep.client_id!r} (id {rep.id})", f"id {uuid}")
        return rep

    def create_client(self, realm: str, rep: ClientRepresentation) -> str:
        """POST the client; returns its UUID from `Location`. 409 = clientId taken."""
        resp = self.request(
            "POST", self._c(realm), json=rep.payload(), expected=(201,), what=f"create client {rep.client_id!r}"
        )
        assert resp is not None
        if not resp.headers.get("Location"):
            # Created, but not told where (a proxy dropped the header): the clientId is unique.
            found = self.find_client(realm, rep.client_id or "")
            if found is not None and found.id:
                return found.id
        return self._location_id(resp)

    def update_client(self, realm: str, uuid: str, rep: ClientRepresentation) -> None:
        """PUT merges field by field. Never sent: the secret (a stale copy would overwrite a rotated
        one), protocol mappers (a PUT list deletes every mapper it omits), scopes (PUT ignores them)."""
        body = rep.payload(drop=_NEVER_PUT)
        try:
            self.request("PUT", self._c(realm, uuid), json=body, expected=(204,), what=f"update client {uuid}")
        except KeycloakApiError as e:
            if e.status != 409:
                raise
            # Keycloak 26.7 answers a rename onto a taken clientId with a bare
            # {"error": "conflict", "error_description": "Duplicate resource error"}: name the clientId.
            raise KeycloakApiError(
                f"update client {uuid}: client_id {rep.client_id!r} is already used by another client in realm "
                f"{realm!r}; pick another client_id or delete that client ({e})",
                status=409,
                method=e.method,
                url=e.url,
                body=e.body,
            ) from e

    def delete_client(self, realm: str, uuid: str) -> bool:
        resp = self.request(
            "DELETE", self._c(realm, uuid), expected=(204,), not_found_ok=True, what=f"delete client {uuid}"
        )
        return resp is not None

    def get_client_secret(self, realm: str, uuid: str) -> str | None:
        body = self._json("GET", f"{self._c(realm, uuid)}/client-secret", what=f"read the secret of client {uuid}")
        return CredentialRepresentation.model_validate(body or {}).value

    def regenerate_client_secret(self, realm: str, uuid: str) -> str:
        """POST a new secret. Not idempotent: after a lost answer, a secret that changed is that POST's;
        only an unchanged one is rotated again (the policy's tries and waits)."""
        before = self.get_client_secret(realm, uuid)
        tried = False

        def rotate() -> str:
            nonlocal tried
            if tried and (now := self.get_client_secret(realm, uuid)) and now != before:
                return now
            tried = True
            what = f"rotate the secret of client {uuid}"
            body = self._json("POST", f"{self._c(realm, uuid)}/client-secret", what=what)
            value = CredentialRepresentation.model_validate(body or {}).value
            if not value:
                raise KeycloakApiError(f"rotating the secret of client {uuid} returned no value")
            return value

        lost = lambda e: isinstance(e, KeycloakApiError) and e.outcome_unknown  # noqa: E731
        return self.retry.call(rotate, when=lost, sleep=self._sleep)

    # --- protocol mappers -------------------------------------------------------------------

    def list_protocol_mappers(self, realm: str, uuid: str) -> list[ProtocolMapperRepresentation]:
        body = self._json("GET", f"{self._c(realm, uuid)}/protocol-mappers/models", what=f"list mappers of {uuid}")
        return [ProtocolMapperRepresentation.model_validate(m) for m in body or []]

    def create_protocol_mapper(self, realm: str, uuid: str, mapper: ProtocolMapperRepresentation) -> None:
        self.request(
            "POST",
            f"{self._c(realm, uuid)}/protocol-mappers/models",
            json=mapper.payload(drop=("id",)),
            expected=(201,),
            what=f"add mapper {mapper.name!r} to client {uuid}",
        )

    def update_protocol_mapper(self, realm: str, uuid: str, mapper: ProtocolMapperRepresentation) -> None:
        assert mapper.id
        self.request(
            "PUT",
            f"{self._c(realm, uuid)}/protocol-mappers/models/{quote(mapper.id, safe='')}",
            json=mapper.payload(),
            expected=(204,),
            what=f"update mapper {mapper.name!r} of client {uuid}",
        )

    def delete_protocol_mapper(self, realm: str, uuid: str, mapper_id: str) -> None:
        self.request(
            "DELETE",
            f"{self._c(realm, uuid)}/protocol-mappers/models/{quote(mapper_id, safe='')}",
            expected=(204,),
            not_found_ok=True,
            what=f"remove mapper {mapper_id} from client {uuid}",
        )

    # --- client scopes ----------------------------------------------------------------------

    def realm_client_scopes(self, realm: str) -> list[ClientScopeRepresentation]:
        body = self._json("GET", f"{self._r(realm)}/client-scopes", what=f"list client scopes of {realm!r}")
        return [ClientScopeRepresentation.model_validate(b) for b in body or []]

    def client_scopes(self, realm: str, uuid: str, kind: ScopeKind) -> list[ClientScopeRepresentation]:
        body = self._json("GET", f"{self._c(realm, uuid)}/{kind}-client-scopes", what=f"list {kind} scopes of {uuid}")
        return [ClientScopeRepresentation.model_validate(b) for b in body or []]

    def add_client_scope(self, realm: str, uuid: str, kind: ScopeKind, scope_id: str) -> None:
        self.request(
            "PUT",
            f"{self._c(realm, uuid)}/{kind}-client-scopes/{quote(scope_id, safe='')}",
            expected=(204,),
            what=f"attach {kind} scope {scope_id} to client {uuid}",
        )

    def remove_client_scope(self, realm: str, uuid: str, kind: ScopeKind, scope_id: str) -> None:
        self.request(
            "DELETE",
            f"{self._c(realm, uuid)}/{kind}-client-scopes/{quote(scope_id, safe='')}",
            expected=(204,),
            not_found_ok=True,
            what=f"detach {kind} scope {scope_id} from client {uuid}",
        )
