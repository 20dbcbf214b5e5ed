"""SampleWorkloads (`kubernetes.sampleWorkloads: true`): each configured workload as a Deployment
that proves its identity works, in its `k8s:ns` namespace, as its `k8s:sa` service account.

Each pod runs spiffe-helper, which fetches the workload's X.509 SVID from the Workload API and
keeps it renewed in a memory-backed volume, as an application's sidecar would. The Workload API
comes through the SPIFFE CSI driver (an inline `csi.spiffe.io` volume, read-only), not a hostPath,
so the pods stay at the restricted Pod Security level: non-root, read-only root filesystem, no
capability, no service-account token (they never call the API server). The SPIRE entry that names
the pod's namespace and service account (`SpireRegistrations`) is what the agent matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.kubernetes import security as sec
from components.kubernetes.spire_agents import CSI_DRIVER
from components.spire_conf import HelperConf
from stack_config import Workload

WORKLOAD_UID = 1000
WORKLOAD_API_DIR = "/spiffe-workload-api"
HELPER_CONF_DIR = "/etc/spiffe-helper"
SVID_DIR = "/svid"


def k8s_identity(workload: Workload) -> tuple[str, str]:
    """(namespace, service account) of a workload's k8s:ns / k8s:sa selectors (config checks there
    is exactly one of each)."""
    values = dict(sel.split(":", 2)[1:] for sel in workload.selectors if sel.startswith("k8s:"))
    return values["ns"], values["sa"]


def helper_conf() -> HelperConf:
    return HelperConf(agent_address=f"{WORKLOAD_API_DIR}/agent.sock", cert_dir=SVID_DIR, key_file_mode=0o600)


@dataclass(frozen=True)
class SampleWorkloadsArgs:
    workloads: Mapping[str, Workload]
    namespaces: Mapping[str, pulumi.Input[str]]  # namespace name -> its resource's name output
    helper_image: str


class SampleWorkloads(pulumi.ComponentResource):
    """One ServiceAccount, helper config and Deployment per workload."""

    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(self, name: str, args: SampleWorkloadsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("identity-platform:kubernetes:SampleWorkloads", name, None, opts)
        self.deployments = {}
        conf_text = helper_conf().render()
        for wname, w in sorted(args.workloads.items()):
            ns_name, sa = k8s_identity(w)
            ns = args.namespaces[ns_name]
            labels = sec.labels(wname, "workload")
            account = k8s.core.v1.ServiceAccount(
                f"{name}-{wname}-account",
                metadata={"name": sa, "namespace": ns, "labels": labels},
                automount_service_account_token=False,
                opts=pulumi.ResourceOptions(parent=self),
            )
            conf = k8s.core.v1.ConfigMap(
                f"{name}-{wname}-helper",
                metadata={"name": f"{wname}-spiffe-helper", "namespace": ns, "labels": labels},
                data={"helper.conf": conf_text},
                opts=pulumi.ResourceOptions(parent=self),
            )
            helper: k8s.core.v1.ContainerArgsDict = {
                "name": "spiffe-helper",
                "image": args.helper_image,
                "args": ["-config", f"{HELPER_CONF_DIR}/helper.conf"],
                "resources": sec.WORKLOAD_RESOURCES.spec(),
                "security_context": sec.restricted_container(),
                "volume_mounts": [
                    {"name": "workload-api", "mount_path": WORKLOAD_API_DIR, "read_only": True},
                    {"name": "helper-conf", "mount_path": HELPER_CONF_DIR, "read_only": True},
                    {"name": "svid", "mount_path": SVID_DIR},
                ],
            }
            self.deployments[wname] = k8s.apps.v1.Deployment(
                f"{name}-{wname}",
                metadata={"name": wname, "namespace": ns, "labels": labels},
                spec={
                    "replicas": 1,
                    "selector": {"match_labels": sec.selector(wname)},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "service_account_name": sa,
                            "automount_service_account_token": False,
                            "enable_service_links": False,
                            "security_context": sec.pod_security(WORKLOAD_UID),
                            "containers": [helper],
                            "volumes": [
                                {"name": "workload-api", "csi": {"driver": CSI_DRIVER, "read_only": True}},
                                {"name": "helper-conf", "config_map": {"name": conf.metadata.name}},
                                {"name": "svid", "empty_dir": {"medium": "Memory", "size_limit": "1Mi"}},
                            ],
                        },
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[account]),
            )
        self.register_outputs({})
