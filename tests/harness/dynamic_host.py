"""Drive a dynamic provider through `python -m pulumi.dynamic`, the engine's own provider host.

The Pulumi engine launches `pulumi-resource-pulumi-python`, which runs `python -u -m
pulumi.dynamic` in the program directory, reads the port it prints, and calls the gRPC
ResourceProvider service. This harness does the same: the provider object is serialized with
`pulumi.dynamic.dynamic.serialize_provider` (dill, exactly what `dynamic.Resource` stores in
`__provider`), so pickling and import problems show up here as they would under `pulumi up`.

Like the engine (the dynamic host answers Configure with `acceptSecrets: False`), property
values are sent with secrets already unwrapped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from dynamic_providers._serialization import serialize_provider

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_KEY = "__provider"


class ProviderCallError(RuntimeError):
    """A provider method raised: the host aborted the call with the Python traceback."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method} failed ({code.name}): {details}")
        self.method = method
        self.code = code
        self.details = details


def _serialize(props: dict[str, Any]) -> struct_pb2.Struct:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def _deserialize(struct: struct_pb2.Struct) -> dict[str, Any]:
    return dict(rpc.deserialize_properties(struct, keep_unknowns=True))


@dataclass
class CheckOutcome:
    inputs: dict[str, Any]
    failures: list[tuple[str, str]]


@dataclass
class DiffOutcome:
    changes: str  # "DIFF_SOME" | "DIFF_NONE" | "DIFF_UNKNOWN"
    replaces: list[str]
    delete_before_replace: bool


@dataclass
class State:
    """What the engine keeps for a resource between steps."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class DynamicProviderHost:
    """One `python -m pulumi.dynamic` process and a client for its ResourceProvider service."""

    provider: ResourceProvider
    resource_type: str = "pulumi-python:dynamic:Resource"
    project: str = "identity-platform"
    stack: str = "test"
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 120.0

    def __post_init__(self) -> None:
        self.blob = serialize_provider(self.provider)
        env = {**os.environ, "PULUMI_PROJECT": self.project, "PULUMI_STACK": self.stack, **self.env}
        env.pop("PYTHONPATH", None)  # the engine does not set it: imports must resolve from the program dir
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.dynamic"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"pulumi.dynamic did not print a port: {line!r}\n{err}")
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.calls: list[str] = []

    @property
    def serialized_size(self) -> int:
        """Bytes of the base64 `__provider` string stored in every resource's state."""
        return len(self.blob)

    def urn(self, name: str) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{self.resource_type}::{name}"

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> DynamicProviderHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- raw RPCs -------------------------------------------------------------------------

    def _call(self, method: str, request: Any) -> Any:
        self.calls.append(method)
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ProviderCallError(method, e.code(), e.details() or "") from None

    def _with_provider(self, props: dict[str, Any]) -> dict[str, Any]:
        return {**props, PROVIDER_KEY: self.blob}

    @staticmethod
    def _strip(props: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in props.items() if k != PROVIDER_KEY}

    def configure(self, config: dict[str, str] | None = None) -> None:
        args = _serialize(dict(config or {}))
        self._call("Configure", provider_pb2.ConfigureRequest(args=args, acceptSecrets=True, acceptResources=True))

    def check(self, name: str, olds: dict[str, Any], news: dict[str, Any]) -> CheckOutcome:
        req = provider_pb2.CheckRequest(
            urn=self.urn(name),
            olds=_serialize(self._with_provider(olds) if olds else {}),
            news=_serialize(self._with_provider(news)),
        )
        resp = self._call("Check", req)
        return CheckOutcome(self._strip(_deserialize(resp.inputs)), [(f.property, f.reason) for f in resp.failures])

    def diff(self, name: str, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffOutcome:
        req = provider_pb2.DiffRequest(
            id=id_,
            urn=self.urn(name),
            olds=_serialize(self._with_provider(olds)),
            news=_serialize(self._with_provider(news)),
        )
        resp = self._call("Diff", req)
        return DiffOutcome(
            provider_pb2.DiffResponse.DiffChanges.Name(resp.changes),
            list(resp.replaces),
            bool(resp.deleteBeforeReplace),
        )

    def create(self, name: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        req = provider_pb2.CreateRequest(urn=self.urn(name), properties=_serialize(self._with_provider(props)))
        resp = self._call("Create", req)
        return resp.id, self._strip(_deserialize(resp.properties))

    def read(
        self, name: str, id_: str, outputs: dict[str, Any], inputs: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        req = provider_pb2.ReadRequest(
            id=id_,
            urn=self.urn(name),
            properties=_serialize(self._with_provider(outputs)),
            inputs=_serialize(self._with_provider(inputs)) if inputs is not None else None,
        )
        resp = self._call("Read", req)
        new_inputs = self._strip(_deserialize(resp.inputs)) if resp.HasField("inputs") else None
        return resp.id, self._strip(_deserialize(resp.properties)), new_inputs

    def update(self, name: str, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        req = provider_pb2.UpdateRequest(
            id=id_,
            urn=self.urn(name),
            olds=_serialize(self._with_provider(olds)),
            news=_serialize(self._with_provider(news)),
        )
        resp = self._call("Update", req)
        return self._strip(_deserialize(resp.properties))

    def delete(self, name: str, id_: str, outputs: dict[str, Any]) -> None:
        req = provider_pb2.DeleteRequest(
            id=id_, urn=self.urn(name), properties=_serialize(self._with_provider(outputs))
        )
        self._call("Delete", req)

    # --- engine step sequences ----------------------------------------------------------

    def up(self, name: str, props: dict[str, Any]) -> State:
        """A new resource in `pulumi up`: Check, then Create with the checked inputs."""
        checked = self.check(name, {}, props)
        if checked.failures:
            raise ProviderCallError("Check", grpc.StatusCode.INVALID_ARGUMENT, repr(checked.failures))
        id_, outs = self.create(name, checked.inputs)
        return State(id_, checked.inputs, outs)

    def preview_change(self, name: str, state: State, props: dict[str, Any]) -> tuple[CheckOutcome, DiffOutcome]:
        """What `pulumi preview` runs for an existing resource: Check and Diff, nothing else."""
        checked = self.check(name, state.inputs, props)
        return checked, self.diff(name, state.id, state.outputs, checked.inputs)

    def change(self, name: str, state: State, props: dict[str, Any]) -> tuple[State, DiffOutcome]:
        """An existing resource in `pulumi up`: Check, Diff, then Update or replace (as the engine)."""
        checked, diff = self.preview_change(name, state, props)
        if checked.failures:
            raise ProviderCallError("Check", grpc.StatusCode.INVALID_ARGUMENT, repr(checked.failures))
        if diff.changes == "DIFF_NONE":
            return state, diff
        if diff.replaces:
            if diff.delete_before_replace:
                self.delete(name, state.id, state.outputs)
                id_, outs = self.create(name, checked.inputs)
            else:
                id_, outs = self.create(name, checked.inputs)
                self.delete(name, state.id, state.outputs)
            return State(id_, checked.inputs, outs), diff
        outs = self.update(name, state.id, state.outputs, checked.inputs)
        return State(state.id, checked.inputs, outs), diff

    def refresh(self, name: str, state: State) -> State | None:
        """`pulumi refresh`: Read with the stored outputs; an empty id means the object is gone."""
        id_, outs, inputs = self.read(name, state.id, state.outputs, state.inputs)
        if not id_:
            return None
        return State(id_, inputs if inputs is not None else state.inputs, outs)
