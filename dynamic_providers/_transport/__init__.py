"""The one transport of the providers: errors, the retry policy, login sessions, TLS and X.509.

Keycloak, OpenZiti and SPIRE clients build on it; it imports none of them (a test holds that
rule), so no import circle can form. What lives here and why:

* `errors`: `ServerError`, what every provider error carries (the server's code and cause, whether
  the operation may have happened, the server's `Retry-After`), and `ApiError`, its
  `httpx.HTTPStatusError` form for the HTTP APIs.
* `retry`: `RetryPolicy`, one rule for every call (retry only what is idempotent or was never
  processed), on tenacity; `RetryTransport` applies it under an `httpx.Client`.
* `session`: `Session`, a login as an `httpx.Auth` flow (log in again on 401 and resend once),
  shared with its pooled `httpx.Client` by every caller of one server and user in the process.
* `tls`: SSL contexts from a CA bundle, the TLS-failure walk, fingerprints, server-certificate
  verification against a root.
"""

from dynamic_providers._transport.errors import ApiError, ServerError
from dynamic_providers._transport.retry import RetryPolicy, RetryTransport, parse_retry_after
from dynamic_providers._transport.session import Session, forget_sessions
from dynamic_providers._transport.tls import sha256_fingerprint, ssl_context, tls_failure

__all__ = [
    "ApiError",
    "RetryPolicy",
    "RetryTransport",
    "ServerError",
    "Session",
    "forget_sessions",
    "parse_retry_after",
    "sha256_fingerprint",
    "ssl_context",
    "tls_failure",
]
