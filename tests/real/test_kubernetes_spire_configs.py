"""The SPIRE configs the Kubernetes topology ships (the `spire-server` / `spire-agent` ConfigMaps of
k8s-dev) pass the real `spire-server validate` / `spire-agent validate` of the pinned SPIRE, with
the pods' paths moved into a scratch directory (`servers.spire.remap`, as for the Swarm configs).

`validate` configures every plugin: the k8s_psat cluster map is read as SPIRE reads it (an empty
allow list in it is refused, so the nested object the renderer writes is really parsed), the disk
UpstreamAuthority loads the root CA, and the agent's k8s workload attestor takes its settings.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import stack_config
from components.kubernetes import spire_config as sc
from servers import spire
from tests.harness.mock_engine import stack_config as raw_stack_config

STACK = "k8s-dev"


@pytest.fixture(scope="module")
def bins() -> Path:
    return spire.bin_dir()


def _layout(root: Path) -> tuple[Path, Path]:
    """server.conf and agent.conf of k8s-dev, remapped under `root`, with the files they name."""
    config = stack_config.parse_stack_values(*raw_stack_config(STACK))
    assert config.kubernetes is not None
    paths = {
        sc.SERVER_SECRETS: root / "secrets", sc.SERVER_DATA: root / "server-data", sc.SERVER_SOCKET_DIR: root / "admin",
        sc.AGENT_BUNDLE_DIR: root / "bundle", sc.AGENT_DATA: root / "agent-data", sc.AGENT_SOCKET_DIR: root / "sockets",
        sc.AGENT_TOKEN_DIR: root / "tokens", sc.POD_ACCOUNT_DIR: root / "account",
    }
    for p in paths.values():
        p.mkdir(parents=True)
    # The k8s workload attestor loads the pod's token when it is configured (its content is only
    # sent to the kubelet later).
    (paths[sc.POD_ACCOUNT_DIR] / "token").write_text("not-a-token-validate-does-not-send-it\n")
    key, cert = spire.self_signed_ca("k8s-dev root CA", 48)
    spire._write_key(paths[sc.SERVER_SECRETS] / sc.UPSTREAM_KEY, key)
    (paths[sc.SERVER_SECRETS] / sc.UPSTREAM_CERT).write_text(spire._pem(cert))
    (paths[sc.AGENT_BUNDLE_DIR] / sc.AGENT_BUNDLE).write_text(spire._pem(cert))
    server = spire.remap(sc.build_server_conf(config.spire, "dev"), paths, {}, root)
    agent = spire.remap(sc.build_agent_conf(config.spire.trust_domain, config.kubernetes, "dev"), paths, {}, root)
    (root / "server.conf").write_text(server.render())
    (root / "agent.conf").write_text(agent.render())
    return root / "server.conf", root / "agent.conf"


def _validate(bins: Path, tool: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bins / tool), "validate", "-config", str(conf)], capture_output=True, text=True,
                          timeout=60, check=False)


def test_the_server_and_agent_configs_validate(bins: Path, tmp_path: Path) -> None:
    server, agent = _layout(tmp_path)
    done = _validate(bins, "spire-server", server)
    assert done.returncode == 0 and "SPIRE server configuration file is valid." in done.stdout, done.stderr
    done = _validate(bins, "spire-agent", agent)
    assert done.returncode == 0 and "SPIRE agent configuration file is valid." in done.stdout, done.stderr


def test_the_k8s_psat_cluster_map_is_read_as_written(bins: Path, tmp_path: Path) -> None:
    server, _ = _layout(tmp_path)
    doc = json.loads(server.read_text())
    cluster = doc["plugins"]["NodeAttestor"][0]["k8s_psat"]["plugin_data"]["clusters"]["dev"]
    assert cluster == {"service_account_allow_list": ["spire-system:spire-agent"]}
    cluster["service_account_allow_list"] = []
    emptied = server.with_name("emptied.conf")
    emptied.write_text(json.dumps(doc))
    done = _validate(bins, "spire-server", emptied)
    assert done.returncode == 1
    assert 'cluster "dev" configuration must have at least one service account allowed' in done.stdout + done.stderr
