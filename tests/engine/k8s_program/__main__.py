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
- pulumi-random's `RandomPassword` and the pulumi-tls resources of the enterprise topology's
  intermediate CA are replaced by the stand-ins of `stand_ins.py` (dynamic resources, secrets where
  the real ones have them): those two plugins cannot be built here (docs/testing.md, "The Pulumi
  engine"); the database passwords and the downstream server's CA come from them.
- No Kubernetes object waits for a Helm release: the CNPG `Cluster` depends on the operator's chart,
  which helm downloads from its repository, unreachable from here; the test leaves the release out
  (`pulumi up --exclude`) and creates the operator's CRDs itself (servers/crds.py), which is what
  the chart's `crds.create` would have done before the Cluster.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

import stack_config
from tests.engine.k8s_program import stand_ins

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


stand_ins.install()
pulumi.runtime.register_stack_transformation(_for_this_server)
runpy.run_path(str(PROGRAM), run_name="__main__")
