"""A small typed client for the OpenZiti Edge Management API (`/edge/management/v1`).

Behaviour the providers rely on:

- **Session**: `POST /authenticate?method=password`, then the `zt-session` header. Sessions expire
  after 30 idle minutes (and on controller restarts); on a 401 the client authenticates again
  and repeats the request once. A 401 is a refusal before any processing, so repeating even a
  POST is safe.
- **Retries** only where repeating is harmless: GET, PATCH, DELETE and the CA verify POST (a
  second verify answers 409 `CA_ALREADY_VERIFIED`) are retried on 429 (after `Retry-After`),
  502/503/504/500 and connection errors. A create POST is never repeated here: `create` raises
  with `outcome_unknown` set and the provider looks the object up before it posts again.
- **Errors**: every failure is a `ZitiApiError` carrying the controller's error `code` and
  `cause` (field, reason), parsed from the `apiErrorEnvelope`.
- **Lookups trust nothing**: `find` keeps only entities whose field really equals the value it
  filtered on (a controller or proxy that ignores the filter hands over nothing else), and `get`
  refuses an answer about another id.
- **Trust**: TLS is always verified — against `ca_bundle_pem` (any certificate in it may end
  the chain: the root, or the intermediate that issued the controller's certificate), against
  the root pinned by `ca_fingerprint`, or against the system store.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import ssl
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from dynamic_providers._retry import parse_retry_after
from dynamic_providers.ziti.models import ApiErrorBody, ApiErrorCause, Pagination, ZitiConnection

PAGE_LIMIT = 500  # the controller clamps larger limits to 500 (models.ListLimitMax)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 30.0


class ZitiApiError(Exception):
    """Any failure talking to the controller: an error envelope, a bad answer, or no answer."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        code: str | None = None,
        cause: ApiErrorCause | str | None = None,
        cause_message: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.cause = cause
        self.cause_message = cause_message
        self.request_id = request_id
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown
        super().__init__(message)

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        code = f"{self.code}: " if self.code else ""
        detail = ""
        if isinstance(self.cause, ApiErrorCause) and (self.cause.field or self.cause.reason):
            detail = f" [{self.cause.field}: {self.cause.reason}]"
        elif isinstance(self.cause, ApiErrorCause) and self.cause.message:
            # A nested error: what the real controller says, e.g. a 404 NOT_FOUND on POST /identities
            # whose cause is "authPolicy with id x not found" (the envelope's message alone misleads).
            detail = f" [{self.cause.message}]"
        elif self.cause_message:
            detail = f" [{self.cause_message}]"
        return f"{where}{status}{code}{self.args[0]}{detail}"

    @property
    def field(self) -> str | None:
        return self.cause.field if isinstance(self.cause, ApiErrorCause) else None

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_duplicate(self) -> bool:
        """A unique index refused the value: 400 COULD_NOT_VALIDATE, reason "duplicate value ..."."""
        if self.status != 400 or self.code != "COULD_NOT_VALIDATE":
            return False
        # The controller puts it in cause.reason; read causeMessage and a string cause as well.
        cause = self.cause.reason if isinstance(self.cause, ApiErrorCause) else self.cause
        text = " ".join(t for t in (cause, self.cause_message) if t).lower()
        return "duplicate value" in text or "must be unique" in text or "already used" in text

    @property
    def retryable(self) -> bool:
        return self.outcome_unknown or self.status in RETRY_STATUSES

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ZitiApiError:
        method, path = resp.request.method, resp.request.url.path
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        try:
            envelope = resp.json()
            body = ApiErrorBody.model_validate(envelope["error"])
        except (ValueError, KeyError, TypeError):
            text = resp.text[:200].strip() or resp.reason_phrase
            return cls(text, method=method, path=path, status=resp.status_code, retry_after=retry_after)
        return cls(
            body.message or resp.reason_phrase,
            method=method,
            path=path,
            status=resp.status_code,
            code=body.code,
            cause=body.cause,
            cause_message=body.cause_message,
            request_id=body.request_id,
            retry_after=retry_after,
        )


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error, if any: a verification failure is not transient."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def zitiql_string(value: str) -> str:
    """A ZitiQL string literal: double quotes, backslash-escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sha256_fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def fetch_pinned_root(connection: ZitiConnection) -> x509.Certificate:
    """The controller's root CA from `/.well-known/est/cacerts`, accepted only if it is the pinned one.

    No trust anchor exists before this call, so the TLS handshake cannot be checked by OpenSSL;
    instead nothing from it is believed until (1) a certificate in the returned PKCS#7 bundle has
    exactly the pinned SHA-256 fingerprint and is a CA, and (2) the server certificate presented
    in that same handshake verifies (chain, validity, host name) against that root with
    cryptography's X.509 verifier. No credentials are sent on this connection; every later
    request uses a normal verifying TLS context anchored on the returned root.
    """
    pin = connection.ca_fingerprint
    if pin is None:
        raise ValueError("fetch_pinned_root needs connection.ca_fingerprint")
    parts = urlsplit(connection.url)
    host = parts.hostname or ""
    port = parts.port or 443
    bootstrap = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bootstrap.minimum_version = ssl.TLSVersion.TLSv1_2
    bootstrap.check_hostname = False
    bootstrap.verify_mode = ssl.CERT_NONE  # verified below, against the pin, before anything is used
    path = "/.well-known/est/cacerts"
    deadline = time.monotonic() + connection.ready_timeout
    attempt = 0
    while True:
        attempt += 1
        conn = http.client.HTTPSConnection(host, port, context=bootstrap, timeout=connection.timeout)
        try:
            conn.connect()
            sock = conn.sock
            leaf_der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
            conn.request("GET", path, headers={"Accept": "application/pkcs7-mime"})
            resp = conn.getresponse()
            body = resp.read()
            status = resp.status
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ZitiApiError(
                    f"could not fetch the controller CA bundle from {host}:{port} within "
                    f"{connection.ready_timeout:g}s: {e}",
                    method="GET",
                    path=path,
                    code="NO_RESPONSE",
                ) from e
            time.sleep(min(0.25 * 2 ** (attempt - 1), 5.0))
            continue
        finally:
            conn.close()
        if status != 200:
            raise ZitiApiError(f"could not fetch the controller CA bundle (HTTP {status})", method="GET", path=path)
        break
    try:
        certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(b"".join(body.split())))
    except ValueError as e:
        raise ZitiApiError(f"the controller CA bundle is not base64 PKCS#7: {e}", method="GET", path=path) from e
    roots = [c for c in certs if sha256_fingerprint(c) == pin]
    if not roots:
        seen = ", ".join(f"{c.subject.rfc4514_string()} sha256={sha256_fingerprint(c)}" for c in certs) or "none"
        raise ZitiApiError(
            f"no certificate in the controller CA bundle has the pinned fingerprint {pin} (bundle: {seen}); "
            "check connection.ca_fingerprint",
            method="GET",
            path=path,
        )
    root = roots[0]
    if leaf_der is None:
        raise ZitiApiError("the controller presented no TLS certificate", method="GET", path=path)
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(subject)
    try:
        verifier.verify(x509.load_der_x509_certificate(leaf_der), [c for c in certs if c is not root])
    except VerificationError as e:
        raise ZitiApiError(
            f"the controller's TLS certificate does not verify against the pinned root for {host}: {e}",
            method="GET",
            path=path,
        ) from e
    return root


def _anchored(pem: str) -> ssl.SSLContext:
    """A verifying context whose only anchors are the given certificates. Any of them may end the
    chain, an issuing intermediate as well as the root (as Python 3.13 does by default)."""
    ctx = ssl.create_default_context(cadata=pem)
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


class ZitiClient:
    """One authenticated session against one controller; use as a context manager per provider call."""

    def __init__(
        self,
        connection: ZitiConnection,
        *,
        max_attempts: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.connection = connection
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self._token: str | None = None
        self._http: httpx.Client | None = None
        self._ready_deadline = 0.0

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> ZitiClient:
        self._ready_deadline = time.monotonic() + self.connection.ready_timeout
        self._http = httpx.Client(
            base_url=self.connection.api_url,
            verify=self._trust(),
            timeout=self.connection.timeout,
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _trust(self) -> ssl.SSLContext:
        conn = self.connection
        if conn.ca_bundle_pem is not None:
            return _anchored(conn.ca_bundle_pem)
        if conn.ca_fingerprint is not None:
            root = fetch_pinned_root(conn)
            return _anchored(root.public_bytes(serialization.Encoding.PEM).decode())
        return ssl.create_default_context()

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            raise RuntimeError("ZitiClient is used outside its `with` block")
        return self._http

    # --- transport ------------------------------------------------------------------------------

    def pause(self, attempt: int, retry_after: float | None = None) -> None:
        """Wait before attempt `attempt + 1`: the server's Retry-After if given, else backoff."""
        if retry_after is not None:
            self.sleep(min(retry_after, MAX_RETRY_AFTER))
        else:
            self.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))

    def authenticate(self) -> None:
        body = {"username": self.connection.username, "password": self.connection.password.get_secret_value()}
        resp = self._send("POST", "/authenticate", params={"method": "password"}, json=body, auth=False, retry=True)
        token = resp.headers.get("zt-session")
        if not token:
            try:
                token = resp.json()["data"]["token"]
            except (ValueError, KeyError, TypeError):
                token = None
        if not token:
            raise ZitiApiError("authentication answered without a session token", method="POST", path="/authenticate")
        self._token = token

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: str | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        retry: bool = True,
    ) -> httpx.Response:
        attempt = 0
        reauthenticated = False
        while True:
            attempt += 1
            if auth and self._token is None:
                self.authenticate()
            hdrs = dict(headers or {})
            if auth and self._token is not None:
                hdrs["zt-session"] = self._token
            try:
                resp = self.http.request(method, path, params=params, json=json, content=content, headers=hdrs)
            except httpx.TransportError as e:
                tls = _tls_failure(e)
                if tls is not None:
                    raise ZitiApiError(
                        f"TLS verification of {self.connection.origin} failed: {tls}; check connection.ca_bundle_pem "
                        "or connection.ca_fingerprint",
                        method=method,
                        path=path,
                        code="TLS_ERROR",
                    ) from e
                # ConnectError/ConnectTimeout: the request never left; anything else may have landed.
                never_sent = isinstance(e, httpx.ConnectError | httpx.ConnectTimeout)
                if never_sent and time.monotonic() < self._ready_deadline:
                    # Not listening yet (a controller still starting): wait up to ready_timeout.
                    self.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
                    continue
                if retry and not never_sent and attempt < self.max_attempts:
                    self.pause(attempt)
                    continue
                raise ZitiApiError(
                    f"{type(e).__name__}: {e or 'no response'}"
                    + (f" (not reachable within {self.connection.ready_timeout:g}s)" if never_sent else ""),
                    method=method,
                    path=path,
                    code="NO_RESPONSE",
                    outcome_unknown=not never_sent,
                ) from e
            if resp.status_code == 401 and auth and not reauthenticated:
                # Session expired or was revoked: log in again and repeat this request once.
                self._token = None
                reauthenticated = True
                attempt -= 1
                continue
            if resp.status_code in RETRY_STATUSES and retry and attempt < self.max_attempts:
                self.pause(attempt, parse_retry_after(resp.headers.get("Retry-After")))
                continue
            if resp.is_error:
                err = ZitiApiError.from_response(resp)
                if resp.status_code in RETRY_STATUSES and not retry:
                    err.outcome_unknown = resp.status_code != 429
                if resp.status_code == 401 and not auth:
                    err.args = (f"authentication as {self.connection.username!r} failed: {err.args[0]}",)
                raise err
            return resp

    @staticmethod
    def _data(resp: httpx.Response) -> Any:
        try:
            return resp.json()["data"]
        except (ValueError, KeyError, TypeError) as e:
            raise ZitiApiError(
                f"unexpected response body: {resp.text[:200]!r}",
                method=resp.request.method,
                path=resp.request.url.path,
                status=resp.status_code,
            ) from e

    # --- entities -------------------------------------------------------------------------------

    def iter_list(self, collection: str, filter_: str | None = None) -> Iterator[dict[str, Any]]:
        """Every entity of a collection matching `filter_`, page by page (limit 500, offset loop)."""
        offset = 0
        while True:
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "offset": offset}
            if filter_:
                params["filter"] = filter_
            resp = self._send("GET", f"/{collection}", params=params)
            page = self._data(resp)
            if not isinstance(page, list):
                raise ZitiApiError("list answer is not an array", method="GET", path=f"/{collection}")
            yield from page
            try:
                pagination = Pagination.model_validate(resp.json()["meta"]["pagination"])
            except (KeyError, TypeError, ValueError):
                return
            offset = pagination.offset + len(page)
            if not page or offset >= pagination.total_count:
                return

    def list_all(self, collection: str, filter_: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_list(collection, filter_))

    def find(self, collection: str, field: str, value: str) -> list[dict[str, Any]]:
        """Entities whose `field` is exactly `value`. The filter (e.g. name="x") is checked again in
        what comes back: a controller or proxy that ignores or loosens it never hands over others."""
        found = self.list_all(collection, f"{field}={zitiql_string(value)}")
        return [e for e in found if isinstance(e, dict) and e.get(field) == value]

    def find_by_name(self, collection: str, name: str) -> dict[str, Any] | None:
        found = self.find(collection, "name", name)
        return found[0] if found else None

    def get(self, collection: str, id_: str) -> dict[str, Any]:
        """The entity with id `id_`; an answer about another entity is an error, never taken as it."""
        data = self._data(self._send("GET", f"/{collection}/{id_}"))
        if not isinstance(data, dict):
            raise ZitiApiError("detail answer is not an object", method="GET", path=f"/{collection}/{id_}")
        if str(data.get("id")) != id_:
            raise ZitiApiError(
                f"the controller answered with entity {data.get('id')!r} ({data.get('name')!r}), not {id_!r}: "
                "an answer about another entity is not trusted; check connection.url",
                method="GET",
                path=f"/{collection}/{id_}",
                code="WRONG_ENTITY",
            )
        return data

    def get_or_none(self, collection: str, id_: str) -> dict[str, Any] | None:
        try:
            return self.get(collection, id_)
        except ZitiApiError as e:
            if e.is_not_found:
                return None
            raise

    def create(self, collection: str, body: dict[str, Any]) -> str:
        """POST once. A lost answer raises with `outcome_unknown`: the caller looks up before re-posting."""
        resp = self._send("POST", f"/{collection}", json=body, retry=False)
        data = self._data(resp)
        if not isinstance(data, dict) or not data.get("id"):
            raise ZitiApiError("create answered without an id", method="POST", path=f"/{collection}")
        return str(data["id"])

    def patch(self, collection: str, id_: str, body: dict[str, Any]) -> None:
        """PATCH only the supplied fields; the controller answers an empty envelope, not the entity."""
        self._send("PATCH", f"/{collection}/{id_}", json=body)

    def put(self, collection: str, id_: str, body: dict[str, Any]) -> None:
        """PUT every updatable field (what the body omits is cleared); answered like PATCH."""
        self._send("PUT", f"/{collection}/{id_}", json=body)

    def delete(self, collection: str, id_: str) -> bool:
        """DELETE; False when it was already gone (404 counts as done)."""
        try:
            self._send("DELETE", f"/{collection}/{id_}")
        except ZitiApiError as e:
            if e.is_not_found:
                return False
            raise
        return True

    # --- specific endpoints ------------------------------------------------------------------------

    def verify_ca(self, id_: str, certificate_pem: str) -> bool:
        """POST the verification certificate as text/plain. False when the CA was already verified."""
        try:
            self._send(
                "POST",
                f"/cas/{id_}/verify",
                content=certificate_pem,
                headers={"Content-Type": "text/plain"},
            )
        except ZitiApiError as e:
            if e.status == 409 and e.code == "CA_ALREADY_VERIFIED":
                return False
            raise
        return True

    def ca_jwt(self, id_: str) -> str:
        resp = self._send("GET", f"/cas/{id_}/jwt", headers={"Accept": "application/jwt, */*"})
        return resp.text.strip()

    def re_enroll_edge_router(self, id_: str) -> None:
        self._send("POST", f"/edge-routers/{id_}/re-enroll")
