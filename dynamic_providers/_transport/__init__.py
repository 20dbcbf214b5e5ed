"""The one transport of the providers (errors, retry, sessions, TLS):
docs/architecture.md#the-providers-transport."""

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
