"""The Ziti controller's and router's pods, as pure builders: both are one `openziti/ziti-*` image
running the Swarm stack's wrapper and then the image's bootstrap, with the same shape on Kubernetes.

- A StatefulSet of one whose volume claim `data` is the image's home (`ZITI_HOME`: database or
  enrolled identity, PKI, config); kept when the set is deleted or scaled down.
- The files the wrappers read under `/run/secrets` (the Swarm secrets' path and names) projected
  from Kubernetes Secrets, mode 0440 for the pod's fsGroup (the image's uid).
- `/tmp` an `emptyDir` (the bootstrap's `mktemp`, the `ziti agent stats` socket; HOME points there
  so any state the `ziti` CLI keeps lands on a writable path); the root filesystem read-only;
  restricted security contexts; requests/limits.
- Probes: `ziti agent stats` (what the Swarm healthcheck and the upstream charts use) for startup
  and liveness, the TLS port accepting connections for readiness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.docker_helpers import SECRETS_DIR
from components.kubernetes import security as sec
from components.ziti_stack import ZITI_UID

TMP = "/tmp"  # noqa: S108 - an emptyDir of the pod's own
SECRET_FILE_MODE = 0o440
# (Secret name, [(its key, the file name under /run/secrets)])
SecretFiles = Sequence[tuple[str, Sequence[tuple[str, str]]]]


def container_env(env: Mapping[str, str]) -> list[k8s.core.v1.EnvVarArgsDict]:
    """The Swarm service's `ZITI_*` environment, and HOME on the writable `/tmp` (the image's
    user's home is on the read-only root)."""
    return [{"name": k, "value": v} for k, v in {**env, "HOME": TMP}.items()]


def service_port(name: str, port: int, node_port: int | None, service_type: str) -> k8s.core.v1.ServicePortArgsDict:
    """One TCP port of a Ziti Service (named `tls-*`: Istio treats it as opaque TLS)."""
    out: dict[str, Any] = {"name": name, "port": port, "target_port": port, "protocol": "TCP"}
    if node_port is not None and service_type == "NodePort":
        out["node_port"] = node_port
    return out


def stateful_set_spec(
    *, app: str, component: str, image: str, wrapper: str, env: Mapping[str, str], port_name: str, port: int,
    home: str, secret_files: SecretFiles, resources: sec.Resources, storage: str, storage_class: str | None,
    annotations: Mapping[str, str], host_aliases: Sequence[k8s.core.v1.HostAliasArgsDict] = (),
) -> k8s.apps.v1.StatefulSetSpecArgsDict:
    """One Ziti pod (`bash -c WRAPPER entrypoint run config.yml`, as the Swarm service runs it)."""
    labels = sec.labels(app, component)
    agent_stats: k8s.core.v1.ExecActionArgsDict = {"command": ["ziti", "agent", "stats"]}
    claim = sec.claim_spec(storage, storage_class)
    sources: list[k8s.core.v1.VolumeProjectionArgsDict] = [
        {"secret": {"name": secret, "items": [{"key": k, "path": p} for k, p in items]}}
        for secret, items in secret_files
    ]
    pod: dict[str, Any] = {  # filled key by key: the SDK's ArgsDicts are read-only to mypy (4.25.0)
        "service_account_name": app,
        "automount_service_account_token": False,  # neither calls the Kubernetes API
        "security_context": sec.pod_security(int(ZITI_UID)),
        "termination_grace_period_seconds": 30,
        "containers": [{
            "name": app,
            "image": image,
            "command": ["/bin/bash", "-c", wrapper, "entrypoint"],
            "args": ["run", "config.yml"],
            "env": container_env(env),
            "ports": [{"name": port_name, "container_port": port}],
            "startup_probe": {"exec_": agent_stats, "period_seconds": 5, "failure_threshold": 36,
                              "timeout_seconds": 5},
            "readiness_probe": {"tcp_socket": {"port": port}, "period_seconds": 10},
            "liveness_probe": {"exec_": agent_stats, "period_seconds": 15, "failure_threshold": 4,
                               "timeout_seconds": 5},
            "resources": resources.spec(),
            "security_context": sec.restricted_container(),
            "volume_mounts": [
                {"name": "data", "mount_path": home},
                {"name": "secrets", "mount_path": SECRETS_DIR, "read_only": True},
                {"name": "tmp", "mount_path": TMP},
            ],
        }],
        "volumes": [
            {"name": "tmp", "empty_dir": {}},
            {"name": "secrets", "projected": {"default_mode": SECRET_FILE_MODE, "sources": sources}},
        ],
    }
    if host_aliases:
        pod["host_aliases"] = list(host_aliases)
    return {
        "service_name": app,
        "replicas": 1,
        "selector": {"match_labels": sec.selector(app)},
        # The claim holds what cannot be made again (database, enrolled identity): never deleted with the set.
        "persistent_volume_claim_retention_policy": {"when_deleted": "Retain", "when_scaled": "Retain"},
        "template": {"metadata": {"labels": labels, "annotations": dict(annotations)}, "spec": pod},
        "volume_claim_templates": [{"metadata": {"name": "data", "labels": labels}, "spec": claim}],
    }


def single_pod_budget(name: str, namespace: pulumi.Input[str], app: str, component: str,
                      opts: pulumi.ResourceOptions) -> k8s.policy.v1.PodDisruptionBudget:
    """One pod: a drain must be able to move it (its claim follows); voluntary disruptions take it
    one at a time, never more."""
    return k8s.policy.v1.PodDisruptionBudget(
        name,
        metadata=sec.meta(app, namespace, app, component),
        spec={"max_unavailable": 1, "selector": {"match_labels": sec.selector(app)}},
        opts=opts,
    )
