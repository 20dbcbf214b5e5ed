"""CnpgOperator: the CloudNativePG operator in `cnpg-system`, from its released manifest (`kubernetes.iam`).

Why the release manifest, as typed resources: CloudNativePG publishes one manifest per release
(`releases/cnpg-<version>.yaml`, the file its docs `kubectl apply --server-side`), and ships it
inside its Go module, which the Go module proxy serves against a pinned `h1:` sum.
scripts/gen_cnpg_operator.py copies it verbatim into `generated/cnpg-operator.yaml` (sha256 pinned
as `versions.CNPG_MANIFEST_SHA256`, checked again here at every load). Each object becomes a
pulumi-kubernetes resource of its kind: `pulumi preview` shows each one, the real engine applies
each one (tests/engine/test_kubernetes_stack.py), `ops manifests` renders each into the `cnpg` sync
wave, and no chart repository has to be reachable at deploy time (the Helm release this replaces
downloaded its chart from https://cloudnative-pg.github.io/charts at every `up`).

What the program changes on the way, and nothing else (`RELEASE_KINDS` lists what it takes):
- the release's Namespace is left out: KeycloakOnCnpg makes `cnpg-system` with the Pod Security
  labels (restricted) and `istio-injection: disabled`;
- so are the release's ClusterRoles that none of its bindings binds (six editor/viewer roles of
  Databases, Publications and Subscriptions, for people): the platform grants roles only to what
  runs, and nothing of it edits those kinds;
- every object carries the platform's labels besides its own;
- the operator's pod: `sidecar.istio.io/inject: "false"` (it calls each instance's status port
  :8000 from outside the mesh, which is why that one port is PERMISSIVE, mesh.py), the platform's
  restricted security contexts for the release's uid 10001 (the release sets the same rules but
  `privileged: false` and the container's `runAsNonRoot`), and `OPERATOR_RESOURCES` as its
  requests and limits (the release's 200Mi limit is tight for a cluster of three instances).

Order: the CRDs, account, roles and webhook configurations before the Deployment (the operator
patches its generated CA into those configurations at start); what a CNPG `Cluster` waits for is
the whole component, whose Deployment pulumi-kubernetes awaits until Ready, so the webhooks serve.
The operator is the same in dev and prod: one replica with leader election, as released.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kubernetes import security as sec
from stack_config import versions

MANIFEST = Path(__file__).parent / "generated" / "cnpg-operator.yaml"
NAMESPACE = "cnpg-system"  # the release's: its binding and webhook configurations name it
APP = "cloudnative-pg"  # the release's app.kubernetes.io/name on the operator's pods (policies select it)
IMAGE = f"ghcr.io/cloudnative-pg/cloudnative-pg:{versions.CNPG}"
UID = 10001  # the release's runAsUser / runAsGroup
NO_SIDECAR = {"sidecar.istio.io/inject": "false"}

Factory = Callable[..., pulumi.CustomResource]
# (apiVersion, kind) of every object the release holds, and the resource class each becomes.
RELEASE_KINDS: dict[tuple[str, str], Factory] = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): k8s.apiextensions.v1.CustomResourceDefinition,
    ("v1", "ServiceAccount"): k8s.core.v1.ServiceAccount,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): k8s.rbac.v1.ClusterRole,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): k8s.rbac.v1.ClusterRoleBinding,
    ("v1", "ConfigMap"): k8s.core.v1.ConfigMap,
    ("v1", "Service"): k8s.core.v1.Service,
    ("apps/v1", "Deployment"): k8s.apps.v1.Deployment,
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"):
        k8s.admissionregistration.v1.MutatingWebhookConfiguration,
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"):
        k8s.admissionregistration.v1.ValidatingWebhookConfiguration,
}
LEFT_OUT = {("v1", "Namespace")}  # KeycloakOnCnpg's own
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


class ManifestError(Exception):
    """The committed manifest is not the pinned release, or holds an object this module does not map."""


def manifest_body(text: str) -> str:
    """The release's own text of the committed file: what follows the GENERATED `# ` header."""
    lines = text.splitlines(keepends=True)
    n = next((i for i, line in enumerate(lines) if not line.startswith("# ")), len(lines))
    return "".join(lines[n:])


@functools.cache
def release_objects() -> tuple[dict[str, Any], ...]:
    """The release's objects, parsed once per process (never mutate them: `operator_objects` copies)."""
    body = manifest_body(MANIFEST.read_text())
    digest = hashlib.sha256(body.encode()).hexdigest()
    if digest != versions.CNPG_MANIFEST_SHA256:
        raise ManifestError(f"{MANIFEST.name} has sha256 {digest}, pinned {versions.CNPG_MANIFEST_SHA256}: "
                            "run scripts/gen_cnpg_operator.py")
    docs = tuple(d for d in yaml.load_all(body, Loader=yaml.CSafeLoader) if d)
    unknown = {(d["apiVersion"], d["kind"]) for d in docs} - set(RELEASE_KINDS) - LEFT_OUT
    if unknown:
        raise ManifestError(f"{MANIFEST.name} holds {sorted(unknown)}: map them in RELEASE_KINDS")
    return docs


def _labelled(meta: dict[str, Any]) -> dict[str, Any]:
    return {**meta, "labels": {**(meta.get("labels") or {}), **sec.labels(APP, "operator")}}


def _deployment(doc: dict[str, Any], resources: sec.Resources) -> dict[str, Any]:
    """The release's Deployment with the platform's pod rules (module docstring)."""
    out = copy.deepcopy(doc)
    template = out["spec"]["template"]
    template["metadata"] = {"labels": {**template["metadata"]["labels"], **sec.labels(APP, "operator")},
                            "annotations": {**(template["metadata"].get("annotations") or {}), **NO_SIDECAR}}
    pod = template["spec"]
    del pod["securityContext"]
    pod["security_context"] = sec.pod_security(UID)
    for container in pod["containers"]:
        del container["securityContext"]
        container["security_context"] = sec.restricted_container()
        container["resources"] = resources.spec()
    return out


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


@dataclass(frozen=True)
class CnpgOperatorArgs:
    resources: sec.Resources


class CnpgOperator(pulumi.ComponentResource):
    """Every object of the pinned release but its Namespace and unbound roles; `deployment` is the operator."""

    deployment: k8s.apps.v1.Deployment
    crds: list[pulumi.CustomResource]
    webhooks: list[pulumi.CustomResource]

    def __init__(self, name: str, args: CnpgOperatorArgs, namespace: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:CnpgOperator", name, None, opts)
        self.crds, self.webhooks = [], []
        before_pods: list[pulumi.Resource] = []
        deployment: dict[str, Any] | None = None
        objects = release_objects()
        bound = {d["roleRef"]["name"] for d in objects if d["kind"] == "ClusterRoleBinding"}
        for doc in objects:
            key = (doc["apiVersion"], doc["kind"])
            if key in LEFT_OUT or (doc["kind"] == "ClusterRole" and doc["metadata"]["name"] not in bound):
                continue
            if key == ("apps/v1", "Deployment"):
                deployment = doc
                continue
            made = self._register(name, doc, namespace)
            before_pods.append(made)
            if doc["kind"] == "CustomResourceDefinition":
                self.crds.append(made)
            elif doc["kind"] in WEBHOOK_KINDS:
                self.webhooks.append(made)
        if deployment is None:
            raise ManifestError(f"{MANIFEST.name} holds no Deployment")
        made = self._register(name, _deployment(deployment, args.resources), namespace, depends_on=before_pods)
        assert isinstance(made, k8s.apps.v1.Deployment)
        self.deployment = made
        self.register_outputs({})

    def _register(self, name: str, doc: dict[str, Any], namespace: pulumi.Resource,
                  depends_on: list[pulumi.Resource] | None = None) -> pulumi.CustomResource:
        meta = doc["metadata"]
        if meta.get("namespace", NAMESPACE) != NAMESPACE:
            raise ManifestError(f"{doc['kind']} {meta['name']} is in {meta['namespace']}, not {NAMESPACE}")
        kind = doc["kind"]
        resource_name = (f"{name}-crd-{doc['spec']['names']['plural']}" if kind == "CustomResourceDefinition"
                         else f"{name}-{_snake(kind).replace('_', '-')}-{meta['name']}")
        fields = {_snake(k): v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
        needs = [namespace] if "namespace" in meta else []
        return RELEASE_KINDS[(doc["apiVersion"], kind)](
            resource_name, metadata=_labelled(meta), **fields,
            opts=pulumi.ResourceOptions(parent=self, depends_on=needs + (depends_on or [])),
        )
