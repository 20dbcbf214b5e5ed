"""The SDK's provider serialization stays flat however many dynamic resources a program has."""

from __future__ import annotations

import sys

from pulumi.dynamic import dynamic as sdk

import dynamic_providers  # noqa: F401  (installs the fix)
from dynamic_providers._serialization import serialize_provider
from dynamic_providers.spire.provider import SpireEntryProvider


def test_the_fix_is_installed_for_dynamic_resources() -> None:
    assert sdk.serialize_provider is serialize_provider


def test_many_serializations_do_not_grow_the_call_chain() -> None:
    provider = SpireEntryProvider()
    first = serialize_provider(provider)
    for _ in range(sys.getrecursionlimit() + 200):
        blob = serialize_provider(provider)
    assert blob == first, "serialization stays deterministic"


def test_the_sdk_function_alone_would_overflow() -> None:
    """Guards the premise: without the restore, each call deepens the chain by one frame."""
    import pickle

    original = pickle._Pickler._batch_setitems  # type: ignore[attr-defined]
    try:
        sdk_serialize = serialize_provider.__globals__["_SDK_SERIALIZE"]
        sdk_serialize(SpireEntryProvider())
        sdk_serialize(SpireEntryProvider())
        assert pickle._Pickler._batch_setitems is not original  # type: ignore[attr-defined]
    finally:
        pickle._Pickler._batch_setitems = original  # type: ignore[attr-defined]
