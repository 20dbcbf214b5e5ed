"""Typed httpx client for the Keycloak Admin REST API (Keycloak >= 17; `base_path="/auth"` for older).

What it does for every call, so the provider code above it stays about resources:

* **Tokens.** Logs in with the password or client-credentials grant, caches the token for the
  process, renews it at 90 % of its lifetime (master-realm tokens live 60 s), uses the refresh
  token when there is one (client-credentials grants have none) and falls back to a fresh login
  when the refresh is refused. A 401/403 renews the token and retries the call once (403 is what
  Keycloak answers right after a realm is created, before the token carries the new realm's roles).
* **Retries.** Idempotent calls (GET, PUT, DELETE) are retried with exponential backoff and full
  jitter on 429 (honouring `Retry-After`), 502/503/504, connection errors and timeouts. A POST
  is retried only when it provably never reached Keycloak (connect errors, 429); when its answer
  is lost, `KeycloakApiError.outcome_unknown` is set and the caller looks the object up before
  creating again, after waiting by the same policy (`pause`: the error's `Retry-After`, else
  backoff), so a persistent 503 never turns into a burst of POSTs. Realm writes are serialised
  per realm in this process; a PUT or DELETE that meets Keycloak's generic 500 (`unknown_error`,
  what an optimistic-lock failure becomes) is retried, since the server rolled it back.
* **Readiness.** With `ready_timeout`, the first login waits (bounded, with backoff) for a
  Keycloak that is still starting, then fails naming the URL.
* **TLS.** Verification is always on; `ca_bundle_pem` adds a private CA to the system roots. A
  certificate that fails verification fails the call at once (no retries, no readiness wait).

The token cache is the one piece of process state: a dict keyed by a hash of the token URL and
credentials, guarded by locks, living in the provider process only (never pickled into state,
never written anywhere). Without it every provider call would log in again, and a "token that
expires between calls" would be impossible to handle instead of handled. Everything else is built
per call: `KeycloakAdmin` is a context manager created inside each provider method.

One exception class, `KeycloakApiError`, carries the HTTP status, method, URL, Keycloak's error
text and its `Retry-After`. Reads by id or name check the answer is about that object (a GET
answered about another realm or client is an error); the clientId lookup keeps exact matches only.
"""

from __future__ import annotations

import functools
import hashlib
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from dynamic_providers._retry import parse_retry_after
from dynamic_providers.keycloak.models import (
    ClientRepresentation,
    ClientScopeRepresentation,
    Connection,
    CredentialRepresentation,
    ProtocolMapperRepresentation,
    RealmRepresentation,
    TokenResponse,
)

ScopeKind = Literal["default", "optional"]
_RETRYABLE_STATUS = frozenset({502, 503, 504})
_NEVER_PUT = ("secret", "protocolMappers", "defaultClientScopes", "optionalClientScopes", "access")
_LOCK_HINTS = ("optimisticlock", "optimistic lock", "could not serialize", "deadlock", "stale")


class KeycloakApiError(Exception):
    """Any failure talking to Keycloak: an error status, an unreachable server, a lost answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        body: str | None = None,
        outcome_unknown: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.body = body
        self.outcome_unknown = outcome_unknown
        self.retry_after = retry_after  # the server's Retry-After, in seconds, when it sent one

    @classmethod
    def from_response(cls, resp: httpx.Response, what: str | None = None) -> KeycloakApiError:
        detail = error_detail(resp)
        method, url = resp.request.method, str(resp.request.url)
        prefix = f"{what}: " if what else ""
        return cls(
            f"{prefix}Keycloak answered {resp.status_code} to {method} {url}: {detail}",
            status=resp.status_code,
            method=method,
            url=url,
            body=resp.text[:2000],
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
        )


def error_detail(resp: httpx.Response) -> str:
    """Keycloak's error text: `errorMessage`, `error_description` or `error`, else the raw body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason_phrase
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "error_description", "errorMessage") if body.get(k)]
        if parts:
            return ": ".join(parts)
    return resp.text[:500]


def _oauth_error(resp: httpx.Response) -> str | None:
    """The OAuth `error` code of a token endpoint answer, if it has one."""
    try:
        body = resp.json()
    except ValueError:
        return None
    return str(body["error"]) if isinstance(body, dict) and body.get("error") else None


def _maybe_lock_conflict(resp: httpx.Response) -> bool:
    """A 500 that may be a concurrent-write failure, so an idempotent write may be repeated.

    Keycloak's error handler turns an uncaught exception, an optimistic-lock or serialisation
    failure among them (keycloak/keycloak#11588), into 500 `{"error": "unknown_error"}` with the
    details only in the server log, after rolling the transaction back. A body naming the lock
    failure (other versions, proxies) counts too.
    """
    if any(h in resp.text.lower() for h in _LOCK_HINTS):
        return True
    try:
        body = resp.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "unknown_error"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `attempts` counts tries per call; delays grow from `base_delay` (seconds)."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    max_retry_after: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2^(attempt-1))]."""
        cap = min(self.max_delay, self.base_delay * (2 ** max(attempt - 1, 0)))
        return random.uniform(0, cap)  # noqa: S311 (jitter, not cryptography)

    def retry_after(self, resp: httpx.Response, attempt: int) -> float:
        """The server's `Retry-After` (seconds or HTTP date), capped; backoff when absent."""
        return self.delay(
            attempt,
            parse_retry_after(resp.headers.get("Retry-After")),
            f"{resp.request.method} {resp.request.url}",
            status=resp.status_code,
        )

    def delay(self, attempt: int, retry_after: float | None, what: str, *, status: int | None = None) -> float:
        """Seconds to wait before attempt `attempt + 1`: the server's `Retry-After` when it gave one
        (more than `max_retry_after` fails at once), else `backoff(attempt)`."""
        if retry_after is None:
            return self.backoff(attempt)
        if retry_after > self.max_retry_after:
            raise KeycloakApiError(
                f"Keycloak asked to retry {what} after {retry_after:.0f} s, more than the "
                f"{self.max_retry_after:.0f} s this provider waits; try again later",
                status=status,
            )
        return retry_after


def raise_if_untrusted(exc: BaseException, conn: Connection, url: str) -> None:
    """A certificate verification failure is not transient: fail at once, saying how to trust the CA."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            raise KeycloakApiError(
                f"TLS verification of {conn.url} failed ({seen}): the certificate is not "
                "signed by a trusted CA or does not match the host; put the issuing CA in "
                "connection.ca_bundle_pem or fix connection.url (verification is never turned off)",
                url=url,
            ) from exc
        seen = seen.__cause__ or seen.__context__


# --- the process-wide token cache -----------------------------------------------------------


@dataclass
class _Token:
    access: str
    refresh: str | None
    fresh_until: float  # monotonic time at 90 % of the access token's lifetime
    refresh_until: float | None  # same for the refresh token; None = no expiry announced


@dataclass
class _TokenStore:
    guard: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[str, _Token] = field(default_factory=dict)
    locks: dict[str, threading.Lock] = field(default_factory=dict)

    def lock(self, key: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())


_TOKENS = _TokenStore()
_REALM_LOCKS = _TokenStore()  # only its `locks` are used: one per (server, realm)


def _fingerprint(conn: Connection) -> str:
    parts = [
        conn.server,
        conn.token_realm,
        conn.grant,
        conn.grant_client_id,
        conn.username or "",
        conn.password.get_secret_value() if conn.password else "",
        conn.client_secret.get_secret_value() if conn.client_secret else "",
        conn.ca_bundle_pem or "",
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def forget_tokens() -> None:
    """Drop every cached token (tests and benchmarks use it to start cold)."""
    with _TOKENS.guard:
        _TOKENS.tokens.clear()


# --- the client -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _ssl_context(ca_bundle_pem: str | None) -> ssl.SSLContext:
    """System roots plus the connection's CA bundle, verification on.

    Cached by the bundle's content (it cannot go stale: a different bundle is a different key):
    loading the system trust store costs ~25 ms, more than a round trip, on every provider call.
    """
    ctx = ssl.create_default_context()
    if ca_bundle_pem:
        ctx.load_verify_locations(cadata=ca_bundle_pem)
    return ctx


class KeycloakAdmin:
    """An Admin REST API session for one `Connection`; use as a context manager inside one provider call."""

    def __init__(
        self,
        conn: Connection,
        *,
        retry: RetryPolicy | None = None,
        ready_timeout: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.conn = conn
        self.retry = retry or RetryPolicy()
        self.ready_timeout = ready_timeout
        self._sleep = sleep
        self._key = _fingerprint(conn)
        self._http = httpx.Client(
            verify=_ssl_context(conn.ca_bundle_pem),
            timeout=httpx.Timeout(conn.timeout),
            transport=transport,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KeycloakAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- tokens -----------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        return f"{self.conn.server}/realms/{quote(self.conn.token_realm, safe='')}/protocol/openid-connect/token"

    def _token(self) -> str:
        with _TOKENS.lock(self._key):
            tok = _TOKENS.tokens.get(self._key)
            if tok is not None and time.monotonic() < tok.fresh_until:
                return tok.access
            return self._renew_locked(tok).access

    def renew_token(self, stale: str | None = None) -> None:
        """Get a new token unless another thread already replaced `stale` (None: renew regardless)."""
        with _TOKENS.lock(self._key):
            tok = _TOKENS.tokens.get(self._key)
            if stale is not None and tok is not None and tok.access != stale:
                return
            self._renew_locked(tok)

    def _renew_locked(self, tok: _Token | None) -> _Token:
        now = time.monotonic()
        if tok is not None and tok.refresh and (tok.refresh_until is None or now < tok.refresh_until):
            form = {"grant_type": "refresh_token", "refresh_token": tok.refresh, "client_id": self.conn.grant_client_id}
            if self.conn.client_secret:
                form["client_secret"] = self.conn.client_secret.get_secret_value()
            try:
                return self._store(self._token_request(form, "refresh the admin token"))
            except KeycloakApiError as e:
                if e.status not in (400, 401):  # refused refresh (session gone): log in again
                    raise
        return self._store(self._token_request(self._login_form(), "log in"))

    def _login_form(self) -> dict[str, str]:
        conn = self.conn
        problem = conn.credential_problem()
        if problem:
            raise KeycloakApiError(f"cannot log in to Keycloak: {problem}")
        form = {"client_id": conn.grant_client_id}
        if conn.grant == "password":
            assert conn.username is not None and conn.password is not None
            form.update(grant_type="password", username=conn.username, password=conn.password.get_secret_value())
        else:
            form["grant_type"] = "client_credentials"
        if conn.client_secret:
            form["client_secret"] = conn.client_secret.get_secret_value()
        return form

    def _store(self, resp: TokenResponse) -> _Token:
        now = time.monotonic()
        refresh_until = None
        if resp.refresh_expires_in:  # 0 means "no expiry" (offline tokens)
            refresh_until = now + 0.9 * resp.refresh_expires_in
        tok = _Token(resp.access_token, resp.refresh_token, now + 0.9 * resp.expires_in, refresh_until)
        _TOKENS.tokens[self._key] = tok
        return tok

    def _token_request(self, form: dict[str, str], what: str) -> TokenResponse:
        """POST the token endpoint; safe to repeat (a grant changes nothing but sessions)."""
        deadline = time.monotonic() + self.ready_timeout
        attempt = 0
        while True:
            attempt += 1
            last: str
            try:
                resp = self._http.post(self.token_url, data=form)
            except httpx.TransportError as e:
                raise_if_untrusted(e, self.conn, self.token_url)
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                delay = self.retry.backoff(attempt)
            else:
                if resp.status_code == 200:
                    try:
                        return TokenResponse.model_validate(resp.json())
                    except (ValueError, ValidationError) as e:
                        raise KeycloakApiError(
                            f"the token endpoint {self.token_url} did not return a token ({e}); "
                            "is connection.url pointing at Keycloak?",
                            status=200,
                            method="POST",
                            url=self.token_url,
                        ) from None
                if resp.status_code not in _RETRYABLE_STATUS | {429}:
                    raise self._token_error(resp, what)
                last = f"{resp.status_code} {error_detail(resp)}"
                delay = self.retry.retry_after(resp, attempt)
            if attempt < self.retry.attempts:
                self._sleep(delay)
                continue
            remaining = deadline - time.monotonic()
            if remaining > 0:  # still starting: keep waiting until the readiness deadline
                self._sleep(min(max(delay, self.retry.base_delay), remaining))
                continue
            waited = f" within {self.ready_timeout:.0f} s" if self.ready_timeout else f" after {attempt} attempts"
            raise KeycloakApiError(
                f"Keycloak at {self.conn.server} did not answer{waited} (last error: {last}); check that "
                "Keycloak is running and reachable from this machine and that connection.url / "
                "connection.base_path point at it",
                method="POST",
                url=self.token_url,
            )

    def _token_error(self, resp: httpx.Response, what: str) -> KeycloakApiError:
        conn = self.conn
        who = f"user {conn.username!r}" if conn.grant == "password" else f"client {conn.grant_client_id!r}"
        hint = {
            401: f"check the credentials in connection ({who}, client {conn.grant_client_id!r})",
            400: "the grant was refused; check connection.client_id and that the client allows this grant",
            404: (
                f"realm {conn.token_realm!r} has no token endpoint there: check connection.token_realm and "
                'connection.base_path ("" for Keycloak >= 17, "/auth" for older)'
            ),
        }.get(resp.status_code, "")
        if resp.status_code == 400 and _oauth_error(resp) in ("invalid_grant", "unauthorized_client", "invalid_client"):
            # Keycloak 26.7 answers wrong user credentials with 400 invalid_grant, not 401.
            hint = f"check the credentials in connection ({who}, client {conn.grant_client_id!r})"
        err = KeycloakApiError.from_response(resp, f"cannot {what} at realm {conn.token_realm!r}")
        if hint:
            err.args = (f"{err.args[0]}; {hint}",)
        return err

    # --- requests ---------------------------------------------------------------------------

    def pause(self, attempt: int, err: KeycloakApiError | None) -> None:
        """Wait before repeating a call that failed `attempt` times: the same policy as `request`'s
        own retries (the server's `Retry-After` when `err` carries one, else jittered backoff)."""
        if err is None:
            self._sleep(self.retry.backoff(attempt))
            return
        what = f"{err.method} {err.url}" if err.method else "the call"
        self._sleep(self.retry.delay(attempt, err.retry_after, what, status=err.status))

    def url(self, path: str) -> str:
        return f"{self.conn.server}{path}"

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
        """Send one Admin API call with token handling and retries; None for a tolerated 404."""
        idempotent = method in ("GET", "PUT", "DELETE", "HEAD")
        url = self.url(path)
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            token = self._token()
            try:
                resp = self._http.request(
                    method, url, json=json, params=params, headers={"Authorization": f"Bearer {token}"}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                # The request never reached Keycloak: safe to repeat for any method.
                raise_if_untrusted(e, self.conn, url)
                if attempt < self.retry.attempts:
                    self._sleep(self.retry.backoff(attempt))
                    continue
                raise KeycloakApiError(
                    f"cannot reach Keycloak at {self.conn.server} for {method} {path}: {type(e).__name__}: {e}",
                    method=method,
                    url=url,
                ) from e
            except httpx.TransportError as e:
                # Sent, but the answer was lost (reset, timeout): Keycloak may have acted on it.
                if idempotent and attempt < self.retry.attempts:
                    self._sleep(self.retry.backoff(attempt))
                    continue
                raise KeycloakApiError(
                    f"{method} {url}: the answer was lost ({type(e).__name__}: {e or 'no detail'})"
                    + ("" if idempotent else "; Keycloak may or may not have applied it"),
                    method=method,
                    url=url,
                    outcome_unknown=not idempotent,
                ) from e
            status = resp.status_code
            if status in (401, 403) and not renewed:
                renewed = True
                attempt -= 1
                self.renew_token(token)
                continue
            if status == 429 and attempt < self.retry.attempts:
                self._sleep(self.retry.retry_after(resp, attempt))
                continue
            if status in _RETRYABLE_STATUS:
                if idempotent and attempt < self.retry.attempts:
                    self._sleep(self.retry.retry_after(resp, attempt))
                    continue
                if not idempotent:
                    err = KeycloakApiError.from_response(resp, what)
                    err.outcome_unknown = True
                    raise err
            if status == 500 and method in ("PUT", "DELETE") and attempt < self.retry.attempts:
                if _maybe_lock_conflict(resp):
                    self._sleep(self.retry.backoff(attempt))
                    continue
            if status in expected:
                return resp
            if status == 404 and not_found_ok:
                return None
            err = KeycloakApiError.from_response(resp, what)
            if status == 403:
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
        with _REALM_LOCKS.lock(f"{self.conn.server}|{realm}"):
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
        """POST /admin/realms (201). Raises with status 409 when the name is taken."""
        assert rep.realm
        with self.realm_write(rep.realm):
            self.request(
                "POST", "/admin/realms", json=rep.payload(), expected=(201,), what=f"create realm {rep.realm!r}"
            )
        # The cached token predates the realm and lacks its roles: renew before touching it.
        self.renew_token()

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
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._http.get(url)
            except httpx.TransportError as e:
                raise_if_untrusted(e, self.conn, url)
                if attempt < self.retry.attempts:
                    self._sleep(self.retry.backoff(attempt))
                    continue
                raise KeycloakApiError(f"GET {url}: {type(e).__name__}: {e}", method="GET", url=url) from e
            if resp.status_code in _RETRYABLE_STATUS | {429} and attempt < self.retry.attempts:
                self._sleep(self.retry.retry_after(resp, attempt))
                continue
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
        """POST a new secret. Not idempotent, so after a lost answer compare with the old secret first."""
        before = self.get_client_secret(realm, uuid)
        last: KeycloakApiError | None = None
        for attempt in range(1, self.retry.attempts + 1):
            if last is not None:
                self.pause(attempt - 1, last)
            try:
                body = self._json(
                    "POST", f"{self._c(realm, uuid)}/client-secret", what=f"rotate the secret of client {uuid}"
                )
            except KeycloakApiError as e:
                if not e.outcome_unknown:
                    raise
                last = e
                now = self.get_client_secret(realm, uuid)
                if now and now != before:
                    return now
                continue
            value = CredentialRepresentation.model_validate(body or {}).value
            if not value:
                raise KeycloakApiError(f"rotating the secret of client {uuid} returned no value")
            return value
        raise KeycloakApiError(f"could not rotate the secret of client {uuid}: every answer was lost")

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
