"""The one transport of the providers: errors (`errors`), the retry rule (`retry`), login sessions
(`session`), TLS and X.509 helpers (`tls`); docs/architecture.md#the-providers-transport says why.

Keycloak, OpenZiti and SPIRE clients build on it; it imports none of them (a test holds that rule),
so no import circle can form.
"""

from dynamic_providers._transport.errors import ApiError, ServerError, unless_absent
from dynamic_providers._transport.retry import RetryPolicy, RetryTransport, parse_retry_after
from dynamic_providers._transport.session import Session, forget_sessions, keyed_lock
from dynamic_providers._transport.tls import sha256_fingerprint, ssl_context, tls_failure

__all__ = [
    "ApiError",
    "RetryPolicy",
    "RetryTransport",
    "ServerError",
    "Session",
    "forget_sessions",
    "keyed_lock",
    "parse_retry_after",
    "sha256_fingerprint",
    "ssl_context",
    "tls_failure",
    "unless_absent",
]
