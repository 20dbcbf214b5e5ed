"""Logins as `httpx.Auth` flows, shared by every caller of one server and user in the process.

A provider process serves many resources of one stack against the same few servers, on several
threads. Logging in for every call would double its requests (Ziti) or hit token-endpoint rate
limits (Keycloak), so each (server, user, credentials, trust anchor) gets one `Session`: one
pooled `httpx.Client` (one TLS connection pool) whose auth is the session itself, and one
credential, obtained on first use, renewed when it goes stale, and renewed once when the server
refuses it (401; Keycloak: 403 too), after which the request is resent once; a second refusal is
the caller's error, never a loop.

The credential lives in this object, in the provider process only: providers hold no session
(the pickled provider carries none), and no message or log line contains it. Sessions are keyed
by a hash that includes the password, so another password is another session.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, ClassVar, TypeVar

import httpx

from dynamic_providers._transport.retry import RetryTransport

S = TypeVar("S", bound="Session")

_GUARD = threading.Lock()
_SESSIONS: dict[str, Session] = {}
_KEYED: dict[str, threading.Lock] = {}


class Session(httpx.Auth):
    """One login to one server; subclasses say how to log in (`login`) and present it (`apply`)."""

    renew_on: ClassVar[frozenset[int]] = frozenset({401})

    def __init__(self, transport: httpx.BaseTransport, **client_options: Any) -> None:
        self._lock = threading.Lock()
        self._credential: Any = None
        self.http = httpx.Client(auth=self, transport=RetryTransport(transport), follow_redirects=False,
                                 **client_options)

    @classmethod
    def shared(cls: type[S], key: Iterable[str], make: Callable[[], S]) -> S:
        """The process's session for `key`, made by `make()` on first use (once, even when racing)."""
        digest = hashlib.sha256("\0".join((cls.__qualname__, *key)).encode()).hexdigest()
        with keyed_lock("session", digest):
            found = _SESSIONS.get(digest)
            if not isinstance(found, cls):
                found = make()
                with _GUARD:
                    _SESSIONS[digest] = found
            return found

    # --- what each system supplies ----------------------------------------------------------

    def login(self, extensions: dict[str, Any], previous: Any) -> Any:
        """Obtain a credential (`previous` is the one being replaced, e.g. to use its refresh token).
        Send with `self.http`, `auth=None` and `extensions`: they carry the caller's retry policy."""
        raise NotImplementedError

    def apply(self, request: httpx.Request, credential: Any) -> None:
        raise NotImplementedError

    def fresh(self, credential: Any) -> bool:
        """False once the credential should be renewed before use (e.g. near its expiry)."""
        return True

    # --- the flow ---------------------------------------------------------------------------

    def credential(self, extensions: dict[str, Any], stale: Any = None) -> Any:
        """The current credential; logs in when there is none, it is no longer fresh, or it is
        `stale` (refused by the server; if another thread already replaced it, that one is used)."""
        with self._lock:
            current = self._credential
            if current is None or current is stale or not self.fresh(current):
                self._credential = None
                self._credential = self.login({**extensions, "login": True}, current)
            return self._credential

    def renew(self, extensions: dict[str, Any]) -> None:
        """Log in again now (a newer credential is needed, e.g. one that knows a new realm)."""
        self.credential(extensions, stale=self._credential)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        extensions = dict(request.extensions)
        used = self.credential(extensions)
        self.apply(request, used)
        response = yield request
        if response.status_code in self.renew_on:
            self.apply(request, self.credential(extensions, stale=used))
            yield request

    def close(self) -> None:
        self.http.close()


def keyed_lock(*key: str) -> threading.Lock:
    """The process's lock for `key`: writes a server would refuse when concurrent (an optimistic
    lock) are serialised with it across the provider's threads."""
    with _GUARD:
        return _KEYED.setdefault("\0".join(key), threading.Lock())


def forget_sessions() -> None:
    """Close and drop every session of the process (tests and benchmarks start cold with it)."""
    with _GUARD:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        session.close()
