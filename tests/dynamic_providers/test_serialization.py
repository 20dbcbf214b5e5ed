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


def test_no_provider_of_the_program_is_serialized_as_a_secret() -> None:
    """Providers hold nothing secret (credentials are secret inputs), so `__provider` stays plain:
    a stack of a thousand workloads would otherwise encrypt a thousand providers for nothing.
    The secret inputs stay secret."""
    from tests.harness.mock_engine import run_program, unwrap_secret

    run = run_program("external", preview=False)
    dynamic = [r for r in run.resources if r.type.startswith("pulumi-python:dynamic/")]
    assert {r.type.rsplit(":", 1)[1] for r in dynamic} >= {
        "Entry",
        "Realm",
        "Client",
        "Identity",
        "CertificateAuthority",
    }
    for r in dynamic:
        assert isinstance(r.inputs["__provider"], str), f"{r.name}: __provider is serialized as a secret"
        if "password" in str(unwrap_secret(r.inputs.get("connection"))):
            assert r.inputs["connection"] != unwrap_secret(r.inputs["connection"]), f"{r.name}: connection not secret"
    blobs = {r.type: {x.inputs["__provider"] for x in dynamic if x.type == r.type} for r in dynamic}
    assert all(len(b) == 1 for b in blobs.values()), "one serialization per provider class"
