"""Logins as `httpx.Auth` flows, one per server, user, credentials and trust anchor in the provider
process, shared by its threads: docs/architecture.md#the-providers-transport."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, ClassVar, Self

import httpx

from dynamic_providers._transport.retry import RetryTransport

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
    def shared(cls, key: Iterable[str], make: Callable[[], Self]) -> Self:
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
