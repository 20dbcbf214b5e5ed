"""The error every provider raises: what the server said, and whether the operation may have happened."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Self, TypeVar

import httpx

from dynamic_providers._transport.retry import RETRY_STATUSES, idempotent, never_sent, parse_retry_after
from dynamic_providers._transport.tls import tls_failure

T = TypeVar("T")


class ServerError(Exception):
    """A failed operation on a server, whatever the wire (HTTP, gRPC, an exec'd CLI). `code` is the
    server's name for it, `cause` what it blamed, `retry_after` the seconds it asked to wait;
    `outcome_unknown`: it may have been applied, so the caller looks before it repeats a create."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        cause: Any = None,
        retry_after: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        Exception.__init__(self, message)
        self.code = code
        self.cause = cause
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class ApiError(ServerError, httpx.HTTPStatusError):
    """A failed HTTP API call: an error answer, a bad answer, or no answer (`status` None), as an
    `httpx.HTTPStatusError`; `request` and `response` are set when there was one."""

    response: httpx.Response | None  # type: ignore[assignment]  # None when no answer came

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        url: str = "",
        request: httpx.Request | None = None,
        response: httpx.Response | None = None,
        **fields: Any,
    ) -> None:
        ServerError.__init__(self, message, **fields)
        self._request = request
        self.response = response
        self.status = status if status is not None or response is None else response.status_code
        self.method = method or (request.method if request is not None else "")
        self.url = url or (str(request.url) if request is not None else "")

    def retold(self, message: str) -> Self:
        """This error told with `message` (what the caller was doing), keeping what the server said."""
        told = copy.copy(self)
        told.args = (message,)
        return told

    def without_exchange(self) -> Self:
        """The error without its request and response: a login's request body holds the password."""
        self._request = self.response = None
        return self

    @classmethod
    def answered(cls, resp: httpx.Response, message: str, **fields: Any) -> Self:
        """The error for an error answer; a 5xx to a request that is not idempotent leaves its outcome unknown."""
        unknown = resp.status_code in RETRY_STATUSES - {429} and not idempotent(resp.request)
        fields.setdefault("retry_after", parse_retry_after(resp.headers.get("Retry-After")))
        fields.setdefault("outcome_unknown", unknown)
        return cls(message, request=resp.request, response=resp, **fields)

    @classmethod
    def unanswered(cls, exc: httpx.TransportError, message: str, **fields: Any) -> Self:
        """The error for a request that got no answer: its outcome is unknown unless it was never
        sent (also a handshake refused over the server's certificate) or repeating it is harmless."""
        request = exc._request  # set by httpx.Client.send
        sent = not never_sent(exc) and tls_failure(exc) is None
        fields.setdefault("outcome_unknown", sent and (request is None or not idempotent(request)))
        return cls(message, request=request, **fields)


def unless_absent(call: Callable[[], T], path: str, errors: type[ApiError] = ApiError) -> T | None:
    """`call()`, or None when the server answered 404 to the object's own URL (ending in `path`): it
    is not (or no longer) there. A 404 to another request on the way (a login) proves nothing."""
    try:
        return call()
    except errors as e:
        if e.status == 404 and e.response is not None and e.response.request.url.path.endswith(path):
            return None
        raise
