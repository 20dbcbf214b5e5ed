"""`Retry-After`, read the same way by every HTTP client of the providers."""

from __future__ import annotations

import datetime
import email.utils


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
