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
  CustomResourceDefinitions keep the provider's await: the API server itself establishes them (and
  finishes their deletion), so the custom resources of a CRD the program makes (the CNPG `Cluster`)
  wait for it as in a cluster.
- The admission webhook configurations (the CNPG operator's) get `failurePolicy: Ignore`: their
  server is the operator's pod, which never runs here, so with the released `Fail` the API server
  would refuse every CNPG object (and every dry-run of one) after its call fails. Everything else
  of them (names, service, paths, rules) is applied as the program registers it.
- `pulumi_random.RandomPassword` is replaced by `StandInPassword`, a dynamic resource that draws
  the password from Python's `secrets` (a secret output `result`, like pulumi-random's): the
  pulumi-random plugin cannot be built here (docs/testing.md, "The Pulumi engine"), and the
  basic topology's and Keycloak's database passwords come from it.
"""

from __future__ import annotations

import runpy
import secrets
import string
from pathlib import Path
from typing import Any

import pulumi
import pulumi.dynamic
import pulumi_random

import stack_config

ANNOTATIONS = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagationPolicy": "background"}
AWAITED = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
WEBHOOK_CONFIGURATIONS = ("kubernetes:admissionregistration.k8s.io/v1:MutatingWebhookConfiguration",
                          "kubernetes:admissionregistration.k8s.io/v1:ValidatingWebhookConfiguration")
PROGRAM = Path(stack_config.__file__).resolve().parents[1] / "__main__.py"


def _annotated(meta: Any, annotations: dict[str, str]) -> Any:
    if isinstance(meta, pulumi.Output):
        return meta.apply(lambda m: _annotated(m, annotations))
    meta = dict(meta or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return meta


def _for_this_server(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if not args.type_.startswith("kubernetes:") or "metadata" not in args.props:
        return None
    props = dict(args.props)
    annotations = ANNOTATIONS if args.type_ != AWAITED else {k: v for k, v in ANNOTATIONS.items()
                                                               if k != "pulumi.com/skipAwait"}
    props["metadata"] = _annotated(props["metadata"], annotations)
    if args.type_ in WEBHOOK_CONFIGURATIONS:
        props["webhooks"] = [{**w, "failurePolicy": "Ignore"} for w in props["webhooks"]]
    return pulumi.ResourceTransformationResult(props, args.opts)


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
