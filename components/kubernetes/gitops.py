"""IamGitOps: the ArgoCD ApplicationSet of the IAM design (`kubernetes.iam.gitops`), for clusters
synced by ArgoCD rather than by `pulumi up`.

One Application per part, generated from a list whose elements are the program's own namespaces
(`APPS`, the constants the Pulumi objects use), in the design's sync waves:

    wave 0  istio           istio-system   the namespaces (mesh injection labels), PeerAuthentications,
                                           AuthorizationPolicies: mTLS STRICT before any pod starts
    wave 1  gateway         iam-system     the Gateway and VirtualService of Keycloak
    wave 2  cnpg            cnpg-system    the CloudNativePG operator: its release's CRDs, RBAC, webhook
                                           configurations and Deployment (cnpg_operator.py)
    wave 3  iam             iam-system     keycloak-db, Keycloak, policies
    wave 3  observability   observability  Loki, Promtail, Prometheus, Grafana

What each path holds is rendered from the same typed objects `pulumi up` registers (`wave_of`
sorts them; `ops manifests`, ops/manifests.py, writes them), so git and the program cannot
disagree. istiod and the ingress gateway stay the cluster's, as with `pulumi up` (mesh.py).

Each Application syncs `<repoUrl>@<revision>:<path>/<name>` automatically with prune and self-heal,
server-side apply, and 5 retries with exponential backoff.

Ordering: ArgoCD honours `argocd.argoproj.io/sync-wave` on Applications when they are resources of
one parent Application (the app-of-apps pattern: commit this ApplicationSet into the parent's path).
ArgoCD's own ordering for ApplicationSets, `strategy: RollingSync`, is left out on purpose: in ArgoCD
3.2.0 it disables automated sync on every generated Application (docs/operator-manual/
applicationset/Progressive-Syncs.md), which the design's automated prune needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypedDict

import pulumi

from components.kubernetes import security as sec
from components.kubernetes.custom_resources import TypedCustomResource
from components.kubernetes.iam import CNPG_NAMESPACE, CNPG_OPERATOR, IAM_NAMESPACE, ISTIO_NAMESPACE
from components.kubernetes.mesh import OBSERVABILITY_NAMESPACE
from components.kubernetes.spire_config import SERVER_NAMESPACE as SPIRE_NAMESPACE

WAVE_ANNOTATION = "argocd.argoproj.io/sync-wave"
RETRY_LIMIT = 5
IN_CLUSTER = "https://kubernetes.default.svc"


@dataclass(frozen=True)
class GitOpsApp:
    name: str
    namespace: str
    wave: int


APPS: Final = (
    GitOpsApp("istio", ISTIO_NAMESPACE, 0),
    GitOpsApp("gateway", IAM_NAMESPACE, 1),
    GitOpsApp("cnpg", CNPG_NAMESPACE, 2),
    GitOpsApp("iam", IAM_NAMESPACE, 3),
    GitOpsApp("observability", OBSERVABILITY_NAMESPACE, 3),
)


class ListGenerator(TypedDict):
    elements: list[dict[str, str]]


class Generator(TypedDict, total=False):
    list: ListGenerator


class ApplicationSetSpec(TypedDict, total=False):
    goTemplate: bool
    goTemplateOptions: list[str]
    generators: list[Generator]
    template: dict[str, Any]  # an Application's metadata and spec (ArgoCD's schema; checked by the real tier)


class ApplicationSet(TypedCustomResource[ApplicationSetSpec]):
    """An ArgoCD ApplicationSet: Applications generated from a template and a generator."""

    API_VERSION = "argoproj.io/v1alpha1"
    KIND = "ApplicationSet"


@dataclass(frozen=True)
class IamGitOpsArgs:
    repo_url: str
    revision: str
    path: str
    namespace: str  # ArgoCD's


SYNC_POLICY: Final[dict[str, Any]] = {
    "automated": {"prune": True, "selfHeal": True},
    "syncOptions": ["CreateNamespace=true", "ServerSideApply=true"],
    "retry": {"limit": RETRY_LIMIT, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "5m"}},
}

OBSERVABILITY_APPS: Final = ("loki", "promtail", "prometheus", "grafana")


def wave_of(kind: str, namespace: str | None, app: str | None) -> str:
    """The Application (`APPS` name) an object of the IAM design is synced by; ValueError for an
    object no wave holds, so a new kind of object cannot silently miss git."""
    if kind in ("Namespace", "PeerAuthentication", "AuthorizationPolicy"):
        return "istio"
    if kind in ("Gateway", "VirtualService"):
        return "gateway"
    # The operator's namespaced objects, and its cluster-wide ones (CRDs, roles, webhook configurations).
    if namespace == CNPG_NAMESPACE or app == CNPG_OPERATOR:
        return "cnpg"
    if namespace == IAM_NAMESPACE:
        return "iam"
    # The observability namespace, Promtail's cluster role, and the SPIRE server's ingress from Prometheus.
    if namespace == OBSERVABILITY_NAMESPACE or app in OBSERVABILITY_APPS or (
            kind == "NetworkPolicy" and namespace == SPIRE_NAMESPACE):
        return "observability"
    raise ValueError(f"no sync wave holds {kind} {namespace or ''}/{app or ''}: add it to gitops.wave_of")


def application_set_spec(args: IamGitOpsArgs) -> ApplicationSetSpec:
    """The generator's elements (one per app, its wave as a string) and the Application template."""
    return {
        "goTemplate": True,
        "goTemplateOptions": ["missingkey=error"],
        "generators": [{"list": {"elements": [
            {"name": a.name, "namespace": a.namespace, "wave": str(a.wave)} for a in APPS
        ]}}],
        "template": {
            "metadata": {
                "name": "identity-platform-{{.name}}",
                "annotations": {WAVE_ANNOTATION: "{{.wave}}"},
                "labels": {"app.kubernetes.io/part-of": "identity-platform", "identity-platform/wave": "{{.wave}}"},
            },
            "spec": {
                "project": "default",
                "source": {"repoURL": args.repo_url, "targetRevision": args.revision,
                           "path": f"{args.path}/{{{{.name}}}}"},
                "destination": {"server": IN_CLUSTER, "namespace": "{{.namespace}}"},
                "syncPolicy": SYNC_POLICY,
            },
        },
    }


class IamGitOps(pulumi.ComponentResource):
    """The ApplicationSet, in ArgoCD's namespace."""

    application_set: ApplicationSet

    def __init__(self, name: str, args: IamGitOpsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:IamGitOps", name, None, opts)
        self.application_set = ApplicationSet(
            f"{name}-application-set",
            metadata=sec.meta("identity-platform", args.namespace, "identity-platform", "gitops"),
            spec=application_set_spec(args),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})
