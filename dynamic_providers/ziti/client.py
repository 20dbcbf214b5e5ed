"""The OpenZiti Edge Management API client (`/edge/management/v1`) on the providers' transport
(`dynamic_providers/_transport`): session, retries, errors, trust; see docs/providers/ziti.md."""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.verification import VerificationError
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from dynamic_providers._transport import (
    ApiError,
    RetryPolicy,
    RetryTransport,
    Session,
    sha256_fingerprint,
    ssl_context,
    unless_absent,
)
from dynamic_providers._transport.retry import Sleep, never_sent
from dynamic_providers._transport.tls import tls_failure, verify_server
from dynamic_providers.ziti.models import ZitiConnection

__all__ = ["PAGE_LIMIT", "ZitiApiError", "ZitiClient", "ZitiSession", "sha256_fingerprint", "zitiql_string"]

PAGE_LIMIT = 500  # the controller clamps larger limits to 500 (models.ListLimitMax)
DUPLICATE_VALUE = re.compile(r"duplicate value '(.*)' in unique index", re.S)


def refused_for_good(resp: httpx.Response) -> bool:
    """A 500 that is a unique index's refusal (1.7.2 answers an update to a taken value so): the
    same request gets the same answer, so the transport does not repeat it."""
    return resp.status_code == 500 and DUPLICATE_VALUE.search(resp.read().decode(errors="replace")) is not None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)


class ApiErrorCause(_Answer):
    field: str | None = None
    reason: str | None = None
    message: str | None = None


class ApiErrorBody(_Answer):
    """`error` of the error envelope; `cause` is a field error, a nested error or a string."""

    code: str = "UNKNOWN"
    message: str = ""
    cause: ApiErrorCause | str | None = None
    cause_message: str | None = None
    request_id: str | None = None


class ZitiApiError(ApiError):
    """Any failure talking to the controller: an error envelope, a bad answer, or no answer."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        cause: ApiErrorCause | str | None = None,
        cause_message: str | None = None,
        request_id: str | None = None,
        **fields: Any,
    ) -> None:
        request: httpx.Request | None = fields.get("request")
        super().__init__(message, method=method, cause=cause, **fields)
        self.path = path or (request.url.path if request is not None else "")
        self.cause_message = cause_message
        self.request_id = request_id

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
        asked = f" (the controller asked to retry after {self.retry_after:.0f} s)" if self.retry_after else ""
        return f"{where}{status}{code}{self.args[0]}{detail}{asked}"

    @property
    def is_duplicate(self) -> bool:
        """A unique index refused the value: 400 COULD_NOT_VALIDATE, reason "duplicate value ...";
        an update's 500 UNHANDLED whose nested cause says so (1.7.2: nothing applied); or a rename
        the controller answered 200 and did not apply (`NAME_TAKEN`, the provider's)."""
        if self.code == "NAME_TAKEN" or (self.status == 500 and self.duplicate_value is not None):
            return True
        if self.status != 400 or self.code != "COULD_NOT_VALIDATE":
            return False
        text = self._cause_text().lower()  # the swagger names no code or wording for it
        return any(words in text for words in ("duplicate", "must be unique", "already used", "already exists"))

    @property
    def duplicate_value(self) -> str | None:
        """The value a unique index refused, as the controller quotes it ("duplicate value 'X' in unique index")."""
        found = DUPLICATE_VALUE.search(self._cause_text())
        return found.group(1) if found else None

    def _cause_text(self) -> str:
        """The controller puts it in cause.reason (a field error) or cause.message (a nested error);
        read causeMessage and a string cause as well."""
        cause = self.cause
        texts = [cause.reason, cause.message] if isinstance(cause, ApiErrorCause) else [cause]
        return " ".join(t for t in (*texts, self.cause_message) if t)

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ZitiApiError:
        try:
            body = ApiErrorBody.model_validate(resp.json()["error"])
        except (ValueError, KeyError, TypeError):
            return cls.answered(resp, resp.text[:200].strip() or resp.reason_phrase)
        return cls.answered(
            resp,
            body.message or resp.reason_phrase,
            code=body.code,
            cause=body.cause,
            cause_message=body.cause_message,
            request_id=body.request_id,
        )


def zitiql_string(value: str) -> str:
    """A ZitiQL string literal: double quotes, backslash-escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fetch_pinned_root(connection: ZitiConnection, extensions: dict[str, Any]) -> x509.Certificate:
    """The controller's root CA from `/.well-known/est/cacerts`, believed only if it has the pinned
    fingerprint and the server certificate of that same handshake verifies against it: there is no
    anchor for OpenSSL before it (docs/providers/ziti.md). No credentials are sent on it."""
    host = urlsplit(connection.url).hostname or ""
    path = "/.well-known/est/cacerts"

    def fail(message: str) -> ZitiApiError:
        return ZitiApiError(message, method="GET", path=path)

    # Not verified by OpenSSL: below, against the pin, before anything from it is used.
    transport = RetryTransport(httpx.HTTPTransport(verify=False))
    with httpx.Client(transport=transport, timeout=connection.timeout) as http:
        try:
            with http.stream(
                "GET",
                connection.origin + path,
                headers={"Accept": "application/pkcs7-mime"},
                extensions={**extensions, "login": True},
            ) as resp:
                tls = resp.extensions["network_stream"].get_extra_info("ssl_object")
                leaf_der = tls.getpeercert(True) if tls is not None else None  # DER
                body = resp.read()
        except httpx.TransportError as e:
            raise ZitiApiError.unanswered(
                e,
                f"could not fetch the controller CA bundle from {host} within {connection.ready_timeout:g}s: {e}",
                method="GET",
                path=path,
                code="NO_RESPONSE",
            ) from e
    if resp.status_code != 200:
        raise fail(f"could not fetch the controller CA bundle (HTTP {resp.status_code})")
    try:
        certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(b"".join(body.split())))
    except ValueError as e:
        raise fail(f"the controller CA bundle is not base64 PKCS#7: {e}") from e
    pin = connection.ca_fingerprint
    roots = [c for c in certs if sha256_fingerprint(c) == pin]
    if not roots:
        seen = ", ".join(f"{c.subject.rfc4514_string()} sha256={sha256_fingerprint(c)}" for c in certs) or "none"
        raise fail(
            f"no certificate in the controller CA bundle has the pinned fingerprint {pin} (bundle: {seen}); "
            "check connection.ca_fingerprint"
        )
    if leaf_der is None:
        raise fail("the controller presented no TLS certificate")
    try:
        verify_server(leaf_der, roots[0], [c for c in certs if c is not roots[0]], host)
    except VerificationError as e:
        raise fail(f"the controller's TLS certificate does not verify against the pinned root for {host}: {e}") from e
    return roots[0]


class ZitiSession(Session):
    """The admin's `zt-session` on one controller, with its pooled client (see the transport)."""

    def __init__(self, connection: ZitiConnection, extensions: dict[str, Any]) -> None:
        self.connection = connection
        if connection.ca_fingerprint is not None:
            root = fetch_pinned_root(connection, extensions)
            trust = ssl_context(root.public_bytes(serialization.Encoding.PEM).decode(), system_roots=False)
        else:
            trust = ssl_context(connection.ca_bundle_pem, system_roots=False)
        super().__init__(
            httpx.HTTPTransport(verify=trust),
            base_url=connection.api_url,
            headers={"Accept": "application/json"},
            timeout=connection.timeout,
        )

    @classmethod
    def of(cls, connection: ZitiConnection, extensions: dict[str, Any]) -> ZitiSession:
        c = connection
        key = (c.api_url, c.username, c.password.get_secret_value(), c.ca_bundle_pem or "", c.ca_fingerprint or "")
        return cls.shared(key, lambda: cls(connection, extensions))

    def login(self, extensions: dict[str, Any], previous: Any) -> str:
        body = {"username": self.connection.username, "password": self.connection.password.get_secret_value()}
        ext = {**extensions, "idempotent": True}
        resp = self.http.request(
            "POST", "/authenticate", params={"method": "password"}, json=body, auth=None, extensions=ext
        )
        if resp.is_error:
            err = ZitiApiError.from_response(resp).without_exchange()
            if resp.status_code == 401:
                err.args = (f"authentication as {self.connection.username!r} failed: {err.args[0]}",)
            raise err
        try:
            token = resp.headers.get("zt-session") or resp.json()["data"]["token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if not token:
            raise ZitiApiError("authentication answered without a session token", method="POST", path="/authenticate")
        return str(token)

    def apply(self, request: httpx.Request, credential: Any) -> None:
        request.headers["zt-session"] = credential


class ZitiClient:
    """Calls on one controller as one admin; use as a context manager per provider call. The
    session and connections are the process's (`ZitiSession`), the policy and sleep this caller's."""

    def __init__(self, connection: ZitiConnection, *, retry: RetryPolicy | None = None, sleep: Sleep = time.sleep):
        self.connection = connection
        self.retry = retry or RetryPolicy()
        self.sleep = sleep

    # --- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> ZitiClient:
        self._ext = {**self.retry.extensions(self.sleep, self.connection.ready_timeout), "final": refused_for_good}
        self.session = ZitiSession.of(self.connection, self._ext)  # a pinned-root fetch raises ZitiApiError
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Nothing to release: the session and its connections stay with the process."""

    # --- transport ------------------------------------------------------------------------------

    def pause(self, attempt: int, err: ZitiApiError) -> None:
        """Wait before repeating a call that failed `attempt` times (`RetryPolicy.pause`)."""
        self.retry.pause(attempt, err, self.sleep)

    def authenticate(self) -> None:
        """Log in now (a fresh session); raises what the controller answered."""
        try:
            self.session.renew(self._ext)
        except httpx.TransportError as e:
            raise self._unanswered(e, "POST", "/authenticate") from e

    def _unanswered(self, e: httpx.TransportError, method: str, path: str) -> ZitiApiError:
        tls = tls_failure(e)
        if tls is not None:
            return ZitiApiError(
                f"TLS verification of {self.connection.origin} failed: {tls}; check connection.ca_bundle_pem "
                "or connection.ca_fingerprint",
                method=method,
                path=path,
                code="TLS_ERROR",
            )
        # Only when it waited: with ready_timeout 0 (`ops status`) nothing was waited for.
        ready = self.connection.ready_timeout
        waited = f" (not reachable within {ready:g}s)" if ready and never_sent(e) else ""
        return ZitiApiError.unanswered(
            e, f"{type(e).__name__}: {e or 'no response'}{waited}", method=method, path=path, code="NO_RESPONSE"
        )

    def _send(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> httpx.Response:
        ext = self._ext if idempotent is None else {**self._ext, "idempotent": idempotent}
        try:
            resp = self.session.http.request(method, path, extensions=ext, timeout=self.connection.timeout, **kwargs)
        except httpx.TransportError as e:
            raise self._unanswered(e, method, path) from e
        if resp.is_error:
            raise ZitiApiError.from_response(resp)
        return resp

    @staticmethod
    def _data(resp: httpx.Response, kind: type | tuple[type, ...] = object, what: str = "") -> Any:
        """The envelope's `data`, refused unless it is a `kind` (`what`: how to say it is not)."""
        try:
            data = resp.json()["data"]
        except (ValueError, KeyError, TypeError) as e:
            raise ZitiApiError(
                f"unexpected response body: {resp.text[:200]!r}", request=resp.request, status=resp.status_code
            ) from e
        if not isinstance(data, kind):
            raise ZitiApiError(what, method=resp.request.method, path=resp.request.url.path)
        return data

    # --- entities -------------------------------------------------------------------------------

    def list_all(self, collection: str, filter_: str | None = None) -> list[dict[str, Any]]:
        """Every entity of a collection matching `filter_`, page by page (limit 500, offset loop)."""
        params = {"limit": PAGE_LIMIT, **({"filter": filter_} if filter_ else {})}
        found: list[dict[str, Any]] = []
        while True:
            resp = self._send("GET", f"/{collection}", params={**params, "offset": len(found)})
            page = self._data(resp, (list, type(None)), "list answer is not an array") or []  # Go's nil slice
            found += page
            try:
                total = int(resp.json()["meta"]["pagination"]["totalCount"])
            except (KeyError, TypeError, ValueError):
                return found
            if not page or len(found) >= total:
                return found

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
        data: dict[str, Any] = self._data(
            self._send("GET", f"/{collection}/{id_}"), dict, "detail answer is not an object"
        )
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
        return unless_absent(lambda: self.get(collection, id_), f"/{collection}/{id_}")

    def create(self, collection: str, body: dict[str, Any]) -> str:
        """POST once. A lost answer, or a 2xx that names no id (it may have created the entity), raises
        with `outcome_unknown`: the caller looks up before re-posting."""
        resp = self._send("POST", f"/{collection}", json=body)
        try:
            data = self._data(resp, dict, "create answered without an id")
            if not data.get("id"):
                raise ZitiApiError("create answered without an id", method="POST", path=f"/{collection}")
        except ZitiApiError as e:
            e.outcome_unknown = True
            raise
        return str(data["id"])

    def patch(self, collection: str, id_: str, body: dict[str, Any]) -> None:
        """PATCH only the supplied fields (setting them again is harmless); answered with an empty envelope."""
        self._send("PATCH", f"/{collection}/{id_}", json=body, idempotent=True)

    def put(self, collection: str, id_: str, body: dict[str, Any]) -> None:
        """PUT every updatable field (what the body omits is cleared); answered like PATCH."""
        self._send("PUT", f"/{collection}/{id_}", json=body)

    def delete(self, collection: str, id_: str) -> bool:
        """DELETE; False when it was already gone (404 counts as done)."""
        path = f"/{collection}/{id_}"
        return unless_absent(lambda: self._send("DELETE", path), path) is not None

    # --- specific endpoints ------------------------------------------------------------------------

    def verify_ca(self, id_: str, certificate_pem: str) -> bool:
        """POST the verification certificate as text/plain. False when the CA was already verified."""
        try:
            self._send(
                "POST",
                f"/cas/{id_}/verify",
                content=certificate_pem,
                idempotent=True,
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
        """A new enrollment either way (the provider reads the router's JWT afterwards): safe to repeat."""
        self._send("POST", f"/edge-routers/{id_}/re-enroll", idempotent=True)
