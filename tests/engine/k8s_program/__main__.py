"""The project's own program (`__main__.py` at the repository root) with what the real
kube-apiserver of `scripts/servers` and this machine need, for the engine tests that apply a
Kubernetes stack (tests/engine/kube_stack.py copies this file in as the test stack's `__main__.py`;
the stacks the project ships never carry any of it):

- Every Kubernetes object gets `pulumi.com/skipAwait: "true"` and
  `pulumi.com/deletionPropagationPolicy: background`. That API server runs without nodes, kubelets,
  scheduler or controller manager: no pod ever runs, no workload controller writes a status
  (pulumi-kubernetes would wait for a StatefulSet's or DaemonSet's rollout until its timeout), and
  no garbage collector removes the `foregroundDeletion` finalizer that the provider's default
  delete (propagation Foreground) puts on every object, so `destroy` would wait on each one.
  CustomResourceDefinitions keep the provider's await: the API server itself establishes them (and
  finishes their deletion), so the custom resources of a CRD the program makes (the CNPG `Cluster`)
  wait for it as in a cluster. So do `kubernetes.io/service-account-token` Secrets (the nested
  enterprise stack's reviewer token): the provider waits for their token, which the test fills as
  the token controller would (test_kubernetes_enterprise_stack.py, `token_controller`).
- The admission webhook configurations (the CNPG operator's) get `failurePolicy: Ignore`: their
  server is the operator's pod, which never runs here, so with the released `Fail` the API server
  would refuse every CNPG object (and every dry-run of one) after its call fails. Everything else
  of them (names, service, paths, rules) is applied as the program registers it.
- pulumi-random's `RandomPassword` and the pulumi-tls resources of the enterprise topology's
  intermediate CA and of the self-signed roots (kubernetes.ziti's controller PKI root) are replaced
  by the stand-ins of `stand_ins.py` (dynamic resources, secrets where the real ones have them):
  those two plugins cannot be built here (docs/testing.md, "The Pulumi engine"); the database and
  Ziti admin passwords, the downstream server's CA and the Ziti controller's root come from them.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi

import stack_config
from tests.engine.k8s_program import stand_ins

ANNOTATIONS = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagationPolicy": "background"}
AWAITED = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
SECRET = "kubernetes:core/v1:Secret"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
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
    awaited = args.type_ == AWAITED or (args.type_ == SECRET and args.props.get("type") == TOKEN_SECRET_TYPE)
    annotations = ANNOTATIONS if not awaited else {k: v for k, v in ANNOTATIONS.items()
                                                   if k != "pulumi.com/skipAwait"}
    props["metadata"] = _annotated(props["metadata"], annotations)
    if args.type_ in WEBHOOK_CONFIGURATIONS:
        props["webhooks"] = [{**w, "failurePolicy": "Ignore"} for w in props["webhooks"]]
    return pulumi.ResourceTransformationResult(props, args.opts)


stand_ins.install()
pulumi.runtime.register_stack_transformation(_for_this_server)
runpy.run_path(str(PROGRAM), run_name="__main__")
