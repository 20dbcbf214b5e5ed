"""The project's own program (`__main__.py` at the repository root) with what the real
kube-apiserver of `scripts/servers` and this machine need, for tests/engine/test_kubernetes_stack.py
only (it copies this file in as the test stack's `__main__.py`; the stacks the project ships never
carry any of it):

- Every Kubernetes object gets `pulumi.com/skipAwait: "true"` and
  `pulumi.com/deletionPropagationPolicy: background`. That API server runs without nodes, kubelets,
  scheduler or controller manager: no pod ever runs, no workload controller writes a status
  (pulumi-kubernetes would wait for a StatefulSet's or DaemonSet's rollout until its timeout), and
  no garbage collector removes the `foregroundDeletion` finalizer that the provider's default
  delete (propagation Foreground) puts on every object, so `destroy` would wait on each one.
- `pulumi_random.RandomPassword` is replaced by `StandInPassword`, a dynamic resource that draws
  the password from Python's `secrets` (a secret output `result`, like pulumi-random's): the
  pulumi-random plugin cannot be built here (docs/testing.md, "The Pulumi engine"), and the
  basic topology's and Keycloak's database passwords come from it.
- No Kubernetes object waits for a Helm release: the CNPG `Cluster` depends on the operator's chart,
  which helm downloads from its repository, unreachable from here; the test leaves the release out
  (`pulumi up --exclude`) and creates the operator's CRDs itself (servers/crds.py), which is what
  the chart's `crds.create` would have done before the Cluster.
"""

from __future__ import annotations

import runpy
import secrets
import string
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_kubernetes as k8s
import pulumi_random

import stack_config

ANNOTATIONS = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagationPolicy": "background"}
PROGRAM = Path(stack_config.__file__).resolve().parents[1] / "__main__.py"


def _annotated(meta: Any) -> Any:
    if isinstance(meta, pulumi.Output):
        return meta.apply(_annotated)
    meta = dict(meta or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **ANNOTATIONS}
    return meta


def _no_chart(depends_on: Any) -> Any:
    if not isinstance(depends_on, list):
        return depends_on
    return [d for d in depends_on if not isinstance(d, k8s.helm.v3.Release)]


def _for_this_server(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if not args.type_.startswith("kubernetes:") or "metadata" not in args.props:
        return None
    props = dict(args.props)
    props["metadata"] = _annotated(props["metadata"])
    opts = pulumi.ResourceOptions.merge(args.opts, pulumi.ResourceOptions())
    opts.depends_on = _no_chart(opts.depends_on)
    return pulumi.ResourceTransformationResult(props, opts)


class _Passwords(pulumi.dynamic.ResourceProvider):
    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        alphabet = string.ascii_letters + string.digits
        result = "".join(secrets.choice(alphabet) for _ in range(int(props["length"])))
        return pulumi.dynamic.CreateResult(secrets.token_hex(8), {**props, "result": result})


class StandInPassword(pulumi.dynamic.Resource):
    """`length` letters and digits (the program asks for `special=False` everywhere)."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int, special: bool = False,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        if special:
            raise ValueError("the stand-in makes letters and digits only")
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"]))
        super().__init__(_Passwords(), name, {"length": length, "result": None}, opts)


pulumi_random.RandomPassword = StandInPassword  # type: ignore[misc,assignment]
pulumi.runtime.register_stack_transformation(_for_this_server)
runpy.run_path(str(PROGRAM), run_name="__main__")
