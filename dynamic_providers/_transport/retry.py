"""One retry policy for every call the providers make (HTTP, gRPC, exec), on tenacity: a call is
repeated only when repeating cannot do anything twice; docs/architecture.md#the-providers-transport."""

from __future__ import annotations

import datetime
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import tenacity

from dynamic_providers._transport.tls import tls_failure

T = TypeVar("T")
Sleep = Callable[[float], None]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAYBE_SENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait (a number, or an HTTP date; never negative), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def idempotent(request: httpx.Request) -> bool:
    return bool(request.extensions.get("idempotent", request.method in IDEMPOTENT_METHODS))


def never_sent(exc: BaseException | None) -> bool:
    """No byte of the request left: the connection was refused or never opened (TLS refusals aside)."""
    return isinstance(exc, NEVER_SENT) and tls_failure(exc) is None


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `attempts` per call, backoff from `base_delay` up to `max_delay` seconds,
    and the longest `Retry-After` worth waiting for. Plain values, so a provider can hold one."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    # --- waiting ----------------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """Full jitter after `attempt` failed tries: uniform in [0, min(max_delay, base * 2^(attempt-1))]."""
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempt
        return float(tenacity.wait_random_exponential(multiplier=self.base_delay, max=self.max_delay)(state))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before the next try: the server's `Retry-After` (capped), else `backoff(attempt)`."""
        return self.backoff(attempt) if retry_after is None else min(retry_after, self.max_retry_after)

    def pause(self, attempt: int, error: BaseException | None, sleep: Sleep = time.sleep) -> None:
        """Wait before a system repeats a call that failed `attempt` times with `error` (a create that
        looks up, then posts again): `delay` with the server's `Retry-After` (`error.retry_after`);
        one longer than `max_retry_after` raises `error` at once, as `send` does not repeat it either."""
        asked = getattr(error, "retry_after", None)
        if error is not None and asked is not None and asked > self.max_retry_after:
            raise error
        sleep(self.delay(attempt, asked))

    def extensions(self, sleep: Sleep = time.sleep, ready_timeout: float = 0.0) -> dict[str, Any]:
        """Request extensions that carry this policy to `RetryTransport`; a login honours the readiness window."""
        until = time.monotonic() + ready_timeout if ready_timeout else None
        return {"retry": self, "sleep": sleep, "ready_until": until, "ready_timeout": ready_timeout}

    # --- running ----------------------------------------------------------------------------

    def retrying(
        self,
        retry: Callable[[tenacity.RetryCallState], bool],
        *,
        sleep: Sleep = time.sleep,
        until: float | None = None,
        waits: Callable[[tenacity.RetryCallState], bool] = lambda _state: True,
        before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    ) -> tenacity.Retrying:
        """A tenacity `Retrying` with this policy's stop and wait; the last outcome is returned or
        raised. Past `attempts`, outcomes that `waits` accepts are tried again until `until`."""

        def done(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number < self.attempts:
                return False
            return until is None or time.monotonic() >= until or not waits(state)

        def wait(state: tenacity.RetryCallState) -> float:
            outcome = state.outcome
            asked = None
            if outcome is not None and outcome.failed:
                asked = getattr(outcome.exception(), "retry_after", None)
            elif outcome is not None and isinstance(outcome.result(), httpx.Response):
                asked = parse_retry_after(outcome.result().headers.get("Retry-After"))
            seconds = self.delay(state.attempt_number, asked)
            return seconds if until is None else max(0.0, min(seconds, until - time.monotonic()))

        return tenacity.Retrying(
            stop=done,
            wait=wait,
            retry=retry,
            sleep=sleep,
            before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

    def call(self, fn: Callable[[], T], *, when: Callable[[BaseException], bool], sleep: Sleep = time.sleep,
             before_retry: Callable[[], None] | None = None) -> T:
        """`fn()`, repeated while it raises an error `when` accepts (the caller vouches that repeating is safe)."""
        hook = (lambda _state: before_retry()) if before_retry is not None else None
        return self.retrying(tenacity.retry_if_exception(when), sleep=sleep, before_sleep=hook)(fn)

    def send(self, handle: Callable[[httpx.Request], httpx.Response], request: httpx.Request, *,
             sleep: Sleep = time.sleep, until: float | None = None, login: bool = False,
             final: Callable[[httpx.Response], bool] | None = None) -> httpx.Response:
        """`handle(request)` under the rule; an answer that is not repeated is returned as it is.
        Until `until`, a login waits out any failure, another call only a server not listening.
        `final`: answers the system knows a repeat cannot change (e.g. a 500 that is a refusal)."""

        def waits(state: tenacity.RetryCallState) -> bool:
            return login or (state.outcome is not None and never_sent(state.outcome.exception()))

        def repeatable(exc: BaseException) -> bool:
            """The rule: repeat what was never sent or is idempotent."""
            maybe_sent = isinstance(exc, MAYBE_SENT) and tls_failure(exc) is None and idempotent(request)
            return never_sent(exc) or maybe_sent

        def asks_again(resp: httpx.Response) -> bool:
            """An answer is repeated only when it asks for no longer a wait than `max_retry_after`."""
            if resp.status_code != 429 and not (resp.status_code in RETRY_STATUSES and idempotent(request)):
                return False
            if final is not None and final(resp):
                return False
            asked = parse_retry_after(resp.headers.get("Retry-After"))
            return asked is None or asked <= self.max_retry_after

        retry = tenacity.retry_if_exception(repeatable) | tenacity.retry_if_result(asks_again)

        def discard(state: tenacity.RetryCallState) -> None:
            if state.outcome is not None and not state.outcome.failed:
                state.outcome.result().close()  # an answer we retry: give its connection back

        return self.retrying(retry, sleep=sleep, until=until, waits=waits, before_sleep=discard)(handle, request)


class RetryTransport(httpx.BaseTransport):
    """`RetryPolicy.send` under an `httpx.Client`, so every request, logins included (extension
    `login`, set by `Session`), follows the rule; the policy, sleep function and readiness deadline
    come with each request (`RetryPolicy.extensions`), else the default policy applies, and so may
    a system's `final` predicate (extension `final`)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        ext = request.extensions
        policy: RetryPolicy = ext.get("retry", RetryPolicy())
        return policy.send(self.inner.handle_request, request, sleep=ext.get("sleep", time.sleep),
                           until=ext.get("ready_until"), login=bool(ext.get("login")), final=ext.get("final"))

    def close(self) -> None:
        self.inner.close()
