"""Keep `pulumi.dynamic`'s provider serialization usable for programs with many dynamic resources.

`pulumi.dynamic.dynamic.serialize_provider` (SDK 3.272) swaps `pickle.Pickler` for the pure-Python
`pickle._Pickler` and wraps `_Pickler._batch_setitems` in a dict-sorting function, but restores
only `pickle.Pickler`: the next call wraps the wrapper. Every dynamic resource therefore adds one
stack frame to the pickling of every dict, and a program with about a thousand dynamic resources
(e.g. 1,000 SPIRE entries) dies with `RecursionError` (the symptom of pulumi/pulumi#17803).

`install()` wraps the SDK function so that the original `_batch_setitems` is put back after each
call. The serialized bytes are unchanged: each call still sorts dict items exactly once.
"""

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
