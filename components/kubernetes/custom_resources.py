"""Typed custom resources of the IAM design: CloudNativePG, Istio and ArgoCD objects.

Why not crd2pulumi: its generated Python SDK for these CRDs is large (the CNPG `Cluster` schema
alone is ~7,000 lines of YAML), and building crd2pulumi (a Go program) did not fit the time on this
machine. Instead each kind is a small class over `pulumi_kubernetes.apiextensions.CustomResource`
that fixes its `apiVersion` and `kind` and types its `spec` with a `TypedDict` written in the
CRD's own field names (camelCase: a CustomResource's spec reaches the API server as written). mypy
checks every field name and value type the program uses against these; the real-server tier
checks the TypedDicts themselves: it installs the pinned CRDs (CNPG 1.27.1, Istio 1.28.0, ArgoCD
3.2.0, fetched with their Go modules) into the real kube-apiserver and server-side applies every
custom resource the stacks declare with `fieldValidation=Strict`, so a field the CRD's schema
does not know, or a value of the wrong type, fails the test (tests/real/test_kubernetes_iam.py).

Only the fields the platform sets are typed; a TypedDict is `total=False`, and required fields
are required by the constructors' signatures where the CRD requires them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.core.v1 import ResourceRequirementsArgsDict
from pulumi_kubernetes.meta.v1 import ObjectMetaArgsDict

S = TypeVar("S", bound=Mapping[str, Any])


class TypedCustomResource(k8s.apiextensions.CustomResource, Generic[S]):
    """A custom resource of one kind (`API_VERSION`, `KIND`) whose spec is the TypedDict `S`."""

    API_VERSION: ClassVar[str]
    KIND: ClassVar[str]

    def __init__(self, name: str, *, metadata: ObjectMetaArgsDict, spec: S,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, api_version=self.API_VERSION, kind=self.KIND, metadata=metadata, spec=spec, opts=opts)


# --- CloudNativePG (postgresql.cnpg.io/v1) -----------------------------------------------------


class CnpgSecretRef(TypedDict):
    name: str


class CnpgInitDb(TypedDict, total=False):
    database: str
    owner: str
    secret: CnpgSecretRef


class CnpgBootstrap(TypedDict, total=False):
    initdb: CnpgInitDb


class CnpgStorage(TypedDict, total=False):
    size: str
    storageClass: str


class CnpgAffinity(TypedDict, total=False):
    enablePodAntiAffinity: bool
    podAntiAffinityType: Literal["preferred", "required"]
    topologyKey: str


class CnpgPostgresConfiguration(TypedDict, total=False):
    parameters: dict[str, str]


class CnpgMonitoring(TypedDict, total=False):
    enablePodMonitor: bool


class CnpgInheritedMetadata(TypedDict, total=False):
    labels: dict[str, str]
    annotations: dict[str, str]


class CnpgClusterSpec(TypedDict, total=False):
    instances: int
    imageName: str
    primaryUpdateStrategy: Literal["supervised", "unsupervised"]
    bootstrap: CnpgBootstrap
    storage: CnpgStorage
    affinity: CnpgAffinity
    postgresql: CnpgPostgresConfiguration
    monitoring: CnpgMonitoring
    resources: ResourceRequirementsArgsDict
    inheritedMetadata: CnpgInheritedMetadata
    enableSuperuserAccess: bool
    enablePDB: bool
    logLevel: Literal["error", "warning", "info", "debug", "trace"]


class CnpgCluster(TypedCustomResource[CnpgClusterSpec]):
    """A CloudNativePG `Cluster`: PostgreSQL instances the operator runs and fails over."""

    API_VERSION = "postgresql.cnpg.io/v1"
    KIND = "Cluster"


# --- Istio (security.istio.io/v1, networking.istio.io/v1) ---------------------------------------

MtlsMode = Literal["STRICT", "PERMISSIVE", "DISABLE", "UNSET"]


class WorkloadSelector(TypedDict):
    matchLabels: dict[str, str]


class Mtls(TypedDict):
    mode: MtlsMode


class PeerAuthenticationSpec(TypedDict, total=False):
    selector: WorkloadSelector
    mtls: Mtls
    portLevelMtls: dict[str, Mtls]  # port number (as a string: a JSON key) -> mode


class PeerAuthentication(TypedCustomResource[PeerAuthenticationSpec]):
    """Istio's mTLS mode for a namespace or a workload's ports."""

    API_VERSION = "security.istio.io/v1"
    KIND = "PeerAuthentication"


class AuthzSource(TypedDict, total=False):
    principals: list[str]
    namespaces: list[str]


class AuthzOperation(TypedDict, total=False):
    ports: list[str]
    methods: list[str]
    paths: list[str]
    notPaths: list[str]


class AuthzFrom(TypedDict):
    source: AuthzSource


class AuthzTo(TypedDict):
    operation: AuthzOperation


# `from` is a Python keyword: the functional TypedDict form names it.
AuthorizationRule = TypedDict("AuthorizationRule", {"from": list[AuthzFrom], "to": list[AuthzTo]}, total=False)


class AuthorizationPolicySpec(TypedDict, total=False):
    selector: WorkloadSelector
    action: Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]
    rules: list[AuthorizationRule]


class AuthorizationPolicy(TypedCustomResource[AuthorizationPolicySpec]):
    """Istio's L4/L7 authorization of the callers of a workload (or, without a selector, of a
    namespace: an empty spec there denies every request no ALLOW policy admits)."""

    API_VERSION = "security.istio.io/v1"
    KIND = "AuthorizationPolicy"


class GatewayPort(TypedDict):
    number: int
    name: str
    protocol: Literal["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"]


class GatewayTls(TypedDict, total=False):
    mode: Literal["PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL"]
    credentialName: str
    httpsRedirect: bool
    minProtocolVersion: Literal["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"]


class GatewayServer(TypedDict, total=False):
    port: GatewayPort
    hosts: list[str]
    tls: GatewayTls


class GatewaySpec(TypedDict):
    selector: dict[str, str]
    servers: list[GatewayServer]


class Gateway(TypedCustomResource[GatewaySpec]):
    """An Istio Gateway: which host and port the ingress gateway's pods serve."""

    API_VERSION = "networking.istio.io/v1"
    KIND = "Gateway"


class PortSelector(TypedDict):
    number: int


class Destination(TypedDict):
    host: str
    port: PortSelector


class RouteDestination(TypedDict):
    destination: Destination


class StringMatch(TypedDict, total=False):
    prefix: str
    exact: str


class HttpMatch(TypedDict, total=False):
    uri: StringMatch


class HttpRoute(TypedDict, total=False):
    name: str
    match: list[HttpMatch]
    route: list[RouteDestination]
    timeout: str


class VirtualServiceSpec(TypedDict):
    hosts: list[str]
    gateways: list[str]
    http: list[HttpRoute]


class VirtualService(TypedCustomResource[VirtualServiceSpec]):
    """An Istio VirtualService: the Gateway's host routed to a Service inside the mesh."""

    API_VERSION = "networking.istio.io/v1"
    KIND = "VirtualService"
