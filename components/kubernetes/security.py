"""The pod-security rules every Kubernetes object of the platform follows, as pure builders.

- Containers run as a non-root user with a read-only root filesystem, no privilege escalation,
  every capability dropped and the runtime's default seccomp profile: the Pod Security Standard
  "restricted". What writes gets an `emptyDir` or a volume of its own.
- The exceptions are the node-level parts, which cannot work otherwise, each in the
  `spire-system` namespace (labelled privileged) and each commented where it is built: the SPIRE
  agent shares the host PID namespace (the k8s workload attestor maps a caller's PID to its pod
  through /proc) and writes its socket into a host directory; the SPIFFE CSI driver mounts that
  socket into pods and needs a privileged container for the bidirectional mount.
- Every container has resource requests and limits.
- Namespaces carry Pod Security Admission labels, so the API server itself enforces the level.
- Network policies: a default-deny policy per namespace, then one policy per required flow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.core.v1 import PodSecurityContextArgsDict, ResourceRequirementsArgsDict, SecurityContextArgsDict
from pulumi_kubernetes.meta.v1 import ObjectMetaArgsDict
from pulumi_kubernetes.networking.v1 import (
    NetworkPolicyEgressRuleArgsDict,
    NetworkPolicyIngressRuleArgsDict,
    NetworkPolicyPeerArgsDict,
    NetworkPolicyPortArgsDict,
    NetworkPolicySpecArgsDict,
)

PodSecurityLevel = Literal["restricted", "baseline", "privileged"]
PSA_VERSION = "v1.37"  # pinned to the targeted Kubernetes minor (stack_config.versions.KUBERNETES)


def namespace_labels(level: PodSecurityLevel) -> dict[str, str]:
    """Pod Security Admission labels: enforce `level`, and warn/audit at restricted, so anything
    below restricted is at least visible."""
    return {
        "pod-security.kubernetes.io/enforce": level,
        "pod-security.kubernetes.io/enforce-version": PSA_VERSION,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": PSA_VERSION,
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/audit-version": PSA_VERSION,
    }


def pod_security(uid: int, *, fs_group: bool = True) -> PodSecurityContextArgsDict:
    """A pod's securityContext: a fixed non-root uid/gid and the runtime's seccomp profile."""
    out: dict[str, Any] = {  # a dict: the SDK's ArgsDicts are read-only Mappings to mypy (4.25.0)
        "run_as_non_root": True,
        "run_as_user": uid,
        "run_as_group": uid,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }
    if fs_group:
        out["fs_group"] = uid
    return out


def restricted_container() -> SecurityContextArgsDict:
    """A container's securityContext at the restricted level."""
    return {
        "run_as_non_root": True,
        "read_only_root_filesystem": True,
        "allow_privilege_escalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def spec(self) -> ResourceRequirementsArgsDict:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


SERVER_RESOURCES = Resources("100m", "128Mi", "1", "512Mi")
DATABASE_RESOURCES = Resources("100m", "256Mi", "1", "1Gi")
AGENT_RESOURCES = Resources("50m", "64Mi", "500m", "256Mi")
CSI_RESOURCES = Resources("10m", "32Mi", "200m", "128Mi")
WORKLOAD_RESOURCES = Resources("10m", "32Mi", "200m", "64Mi")
INIT_RESOURCES = Resources("10m", "16Mi", "100m", "32Mi")


def labels(app: str, component: str) -> dict[str, str]:
    """The recommended labels; `app.kubernetes.io/name` is what selectors and policies match."""
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "identity-platform",
        "app.kubernetes.io/managed-by": "pulumi",
    }


def meta(name: str, namespace: pulumi.Input[str], app: str, component: str) -> ObjectMetaArgsDict:
    """A namespaced object's metadata with the recommended labels."""
    return {"name": name, "namespace": namespace, "labels": labels(app, component)}


def digest(text: str) -> str:
    """A short digest of a config's text, as a pod-template annotation: a changed config changes
    the template, so the pods roll over to it (a mounted ConfigMap alone would not restart them)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def selector(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app}


# --- network policies ------------------------------------------------------------------------------


def default_deny() -> NetworkPolicySpecArgsDict:
    """Every pod of the namespace: no ingress and no egress but what another policy allows."""
    return {"pod_selector": {}, "policy_types": ["Ingress", "Egress"]}


def tcp(*ports: int) -> list[NetworkPolicyPortArgsDict]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def peer(namespace: str, app: str | None = None) -> NetworkPolicyPeerArgsDict:
    """Pods of `app` (all pods when None) in `namespace`, as a policy peer."""
    out: dict[str, Any] = {
        "namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": namespace}}
    }
    if app is not None:
        out["pod_selector"] = {"match_labels": selector(app)}
    return out


def pod(app: str) -> NetworkPolicyPeerArgsDict:
    """Pods of `app` in the policy's own namespace."""
    return {"pod_selector": {"match_labels": selector(app)}}


def dns_egress() -> NetworkPolicyEgressRuleArgsDict:
    """The cluster DNS (kube-system): names such as spire-server.spire-server.svc resolve there."""
    return {
        "to": [peer("kube-system")],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def allow(
    app: str, *, ingress: Sequence[NetworkPolicyIngressRuleArgsDict] = (),
    egress: Sequence[NetworkPolicyEgressRuleArgsDict] = (),
) -> NetworkPolicySpecArgsDict:
    """A policy for the pods of `app` that allows exactly `ingress` and `egress` rules."""
    types = [t for t, rules in (("Ingress", ingress), ("Egress", egress)) if rules]
    spec: dict[str, Any] = {"pod_selector": {"match_labels": selector(app)}, "policy_types": types}
    if ingress:
        spec["ingress"] = list(ingress)
    if egress:
        spec["egress"] = list(egress)
    return spec


def claim_spec(size: str, storage_class: str | None) -> k8s.core.v1.PersistentVolumeClaimSpecArgsDict:
    """One ReadWriteOnce volume of `size` (the cluster's default class when None)."""
    spec: dict[str, Any] = {  # a dict: the SDK's ArgsDicts are read-only Mappings to mypy (4.25.0)
        "access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storage_class_name"] = storage_class
    return spec
