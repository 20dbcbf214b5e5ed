"""The SDK's provider serialization without its per-call growth of the pickler's call chain, which
fails at about a thousand dynamic resources: docs/architecture.md#the-providers-one-kernel-three-systems."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from pulumi.dynamic import dynamic as _sdk

_ORIGINAL_BATCH_SETITEMS = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
_SDK_SERIALIZE: Callable[[Any], str] = _sdk.serialize_provider


def serialize_provider(provider: Any) -> str:
    """The SDK's serialization, without the per-call growth of the pickler's call chain."""
    try:
        return _SDK_SERIALIZE(provider)
    finally:
        pickle._Pickler._batch_setitems = _ORIGINAL_BATCH_SETITEMS  # type: ignore[attr-defined]


def install() -> None:
    """Route `dynamic.Resource` through `serialize_provider` (idempotent)."""
    if _sdk.serialize_provider is not serialize_provider:
        _sdk.serialize_provider = serialize_provider
