"""kubernetes.iam.observability under the mock engine (k8s-dev and k8s-prod, preview and update):
storage and retention per environment, the config templates, which pods' logs Promtail's
pipelines mark (evaluated on the labels of the pods the program declares), the scrape targets
Prometheus names against the ports the targets really serve, and the network policies that allow
exactly those flows.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

import stack_config
from components.kubernetes import templates
from stack_config import ConfigError
from tests.components.test_kubernetes_iam import _config, _rules, environment, named
from tests.conftest import program_run
from tests.harness.mock_engine import ProgramRun

STACKS = ("k8s-dev", "k8s-prod")


@pytest.fixture(params=[pytest.param((s, p), id=f"{s}-{'preview' if p else 'update'}")
                        for s in STACKS for p in (True, False)])
def run(request: pytest.FixtureRequest) -> ProgramRun:
    stack, preview = request.param
    return program_run(stack, preview)


def config_of(run: ProgramRun, app: str) -> dict[str, Any]:
    (text,) = named(run, "kubernetes:core/v1:ConfigMap")[f"observability/{app}"]["data"].values()
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


# --- storage and retention -------------------------------------------------------------------------


def test_loki_and_prometheus_keep_their_data_on_claims_sized_per_environment(run: ProgramRun) -> None:
    prod = environment(run) == "prod"
    claims = {k: v["spec"] for k, v in named(run, "kubernetes:core/v1:PersistentVolumeClaim").items()
              if k.startswith("observability/")}
    size = "20Gi" if prod else "2Gi"
    expected: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if prod:  # kubernetes.storageClass of Pulumi.k8s-prod.yaml; dev takes the cluster's default class
        expected["storageClassName"] = "do-block-storage"
    assert claims == {"observability/loki-data": expected, "observability/prometheus-data": expected}
    deployments = named(run, "kubernetes:apps/v1:Deployment")
    for app, path in (("loki", "/loki"), ("prometheus", "/prometheus")):
        spec = deployments[f"observability/{app}"]["spec"]
        assert spec["strategy"] == {"type": "Recreate"}, app  # one pod on a ReadWriteOnce claim
        pod = spec["template"]["spec"]
        (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
        assert data == {"name": "data", "persistentVolumeClaim": {"claimName": f"{app}-data"}}
        assert {"name": "data", "mountPath": path, "readOnly": False} in pod["containers"][0]["volumeMounts"]


def test_retention_follows_the_environment(run: ProgramRun) -> None:
    days = 30 if environment(run) == "prod" else 3
    loki = config_of(run, "loki")
    assert loki["limits_config"]["retention_period"] == f"{24 * days}h"
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["compactor"]["delete_request_store"] == "filesystem"  # Loki 3 refuses retention without it
    assert loki["compactor"]["working_directory"].startswith("/loki/")  # on the claim
    args = named(run, "kubernetes:apps/v1:Deployment")["observability/prometheus"]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    assert f"--storage.tsdb.retention.time={days}d" in args and "--storage.tsdb.path=/prometheus" in args


def test_sizes_and_retention_are_settings_with_named_errors() -> None:
    config = stack_config.parse(_config("dev", logsStorage="50Gi", metricsRetentionDays=90))
    assert config.kubernetes is not None and config.kubernetes.iam is not None
    got = config.kubernetes.iam.observability_storage(prod=False)
    assert (got.logs_storage, got.metrics_storage, got.logs_retention_days, got.metrics_retention_days) == (
        "50Gi", "2Gi", 3, 90)
    with pytest.raises(ConfigError) as e:
        stack_config.parse(_config("dev", metricsStorage="lots", logsRetentionDays=0))
    text = str(e.value)
    assert "identity-platform:kubernetes.iam.metricsStorage" in text and "not a Kubernetes quantity" in text
    assert "identity-platform:kubernetes.iam.logsRetentionDays" in text


# --- the templates ----------------------------------------------------------------------------------


def test_every_template_is_a_config_map_with_nothing_left_unfilled(run: ProgramRun) -> None:
    maps = {k: v["data"] for k, v in named(run, "kubernetes:core/v1:ConfigMap").items()
            if k.startswith("observability/")}
    files = {f for data in maps.values() for f in data}
    assert files == {"loki.yaml", "promtail.yaml", "prometheus.yaml", "datasources.yaml"}
    assert set(templates.names()) == {"loki.yaml", "promtail.yaml", "prometheus.yaml", "grafana-datasources.yaml"}
    for data in maps.values():
        for name, text in data.items():
            # `$` survives only as the relabel reference Promtail expands itself ($1).
            assert re.findall(r"\$\w+", text) in ([], ["$1"]), name
            assert isinstance(yaml.safe_load(text), dict), name
    # The pods roll over when their config changes: the template carries the config's digest.
    deployments = named(run, "kubernetes:apps/v1:Deployment")
    digests = {deployments[f"observability/{a}"]["spec"]["template"]["metadata"]["annotations"][
        "identity-platform/config-digest"] for a in ("loki", "prometheus", "grafana")}
    assert len(digests) == 3


def test_a_missing_placeholder_value_fails_at_render() -> None:
    with pytest.raises(KeyError, match="retention_hours"):
        templates.render("loki.yaml", loki_port=3100)


# --- logs: Keycloak's events and PostgreSQL's log reach Loki, marked --------------------------------


def _relabel(rules: list[dict[str, Any]], meta: dict[str, str]) -> dict[str, str]:
    """Prometheus-style relabeling (replace and keep/drop), as Promtail applies it to a target."""
    labels = dict(meta)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(s, "") for s in rule.get("source_labels", []))
        m = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if (action == "keep" and not m) or (action == "drop" and m):
            return {}
        if action == "replace" and m:
            labels[rule["target_label"]] = m.expand(re.sub(r"\$(\d+)", r"\\g<\1>", rule.get("replacement", "$1")))
    return {k: v for k, v in labels.items() if not k.startswith("__meta_")}


def _selector(text: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', text.split("}")[0]))


def _pod_meta(namespace: str, pod_labels: dict[str, str], container: str) -> dict[str, str]:
    meta = {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": f"{container}-0",
            "__meta_kubernetes_pod_container_name": container, "__meta_kubernetes_pod_uid": "u-1",
            "__meta_kubernetes_pod_node_name": "node-1"}
    meta |= {"__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in pod_labels.items()}
    return meta


def test_promtails_pipelines_mark_keycloak_events_and_postgresql_logs(run: ProgramRun) -> None:
    (job,) = config_of(run, "promtail")["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    matches = [s["match"] for s in job["pipeline_stages"] if "match" in s]
    keycloak = named(run, "kubernetes:apps/v1:Deployment")["iam-system/keycloak"]["spec"]["template"]
    (cluster,) = named(run, "kubernetes:postgresql.cnpg.io/v1:Cluster").values()
    pods = {
        "keycloak": _pod_meta("iam-system", keycloak["metadata"]["labels"], keycloak["spec"]["containers"][0]["name"]),
        # CNPG names an instance's PostgreSQL container `postgres`; the pods carry inheritedMetadata.
        "postgresql": _pod_meta("iam-system", cluster["spec"]["inheritedMetadata"]["labels"], "postgres"),
        "loki": _pod_meta("observability", {"app.kubernetes.io/name": "loki"}, "loki"),
    }
    labelled = {name: _relabel(job["relabel_configs"], meta) for name, meta in pods.items()}
    for name, labels in labelled.items():
        # The kubelet's layout: /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
        assert labels["__path__"] == f"/var/log/pods/*u-1/{pods[name]['__meta_kubernetes_pod_container_name']}/*.log"
        assert labels["namespace"] == pods[name]["__meta_kubernetes_namespace"], name

    def pipeline_for(labels: dict[str, str]) -> list[dict[str, Any]]:
        return [m for m in matches if all(labels.get(k) == v for k, v in _selector(m["selector"]).items())]

    (kc,) = pipeline_for(labelled["keycloak"])
    (pg,) = pipeline_for(labelled["postgresql"])
    assert pipeline_for(labelled["loki"]) == []  # everyone else: shipped as is
    stages = {k: v for s in kc["stages"] for k, v in s.items()}
    assert stages["json"]["expressions"]["logger"] == "loggerName"  # Keycloak's JSON console field
    assert "org.keycloak.events" in stages["template"]["template"] and set(stages["labels"]) == {"level", "kind"}
    stages = {k: v for s in pg["stages"] for k, v in s.items()}
    assert stages["json"]["expressions"]["logger"] == "logger" and '"postgres"' in stages["template"]["template"]


def test_keycloak_writes_its_events_and_json_log_to_stdout(run: ProgramRun) -> None:
    (c,) = named(run, "kubernetes:apps/v1:Deployment")["iam-system/keycloak"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["KC_LOG"] == "console" and env["KC_LOG_CONSOLE_OUTPUT"] == "json"
    # The jboss-logging listener logs successful events at DEBUG unless told otherwise.
    assert env["KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING_SUCCESS_LEVEL"] == "info"
    assert env["KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING_ERROR_LEVEL"] == "warn"
    assert env["KC_METRICS_ENABLED"] == "true"


# --- metrics: each scrape target is a port the target serves, and the policies allow exactly that ---


def test_each_scrape_target_is_served_and_allowed(run: ProgramRun) -> None:
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in config_of(run, "prometheus")["scrape_configs"]}
    services = named(run, "kubernetes:core/v1:Service")
    workloads = named(run, "kubernetes:apps/v1:Deployment") | named(run, "kubernetes:apps/v1:StatefulSet")
    targets = {}
    for job, sd in jobs.items():
        (host,) = sd["names"]
        service, namespace = host.split(".")[:2]
        app = services[f"{namespace}/{service}"]["spec"]["selector"]["app.kubernetes.io/name"]
        assert services[f"{namespace}/{service}"]["spec"]["clusterIP" if "clusterIP" in services[
            f"{namespace}/{service}"]["spec"] else "clusterIp"] == "None", job  # one A record per pod
        ports = [p["containerPort"] for c in workloads[f"{namespace}/{app}"]["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])]
        assert sd["port"] in ports, (job, ports)
        targets[job] = (namespace, app, sd["port"])
    assert targets == {"keycloak": ("iam-system", "keycloak", 9000), "spire-server": ("spire-server", "spire-server",
                                                                                       9988)}
    # SPIRE serves that port because its rendered server.conf says so.
    conf = json.loads(named(run, "kubernetes:core/v1:ConfigMap")["spire-server/spire-server"]["data"]["server.conf"])
    assert conf["telemetry"]["Prometheus"]["port"] == 9988
    policies = named(run, "kubernetes:networking.k8s.io/v1:NetworkPolicy")
    egress = _rules(policies["observability/prometheus"], "egress")
    assert egress == [(f"ns:{ns}/{app}", [port]) for ns, app, port in targets.values()]
    assert _rules(policies["iam-system/keycloak"], "ingress")[-1] == ("ns:observability/prometheus", [9000])
    assert _rules(policies["spire-server/spire-server-metrics"], "ingress") == [("ns:observability/prometheus", [9988])]
    # Pushes: Promtail to Loki only (plus its pod discovery), nothing else reaches Loki but Grafana.
    assert _rules(policies["observability/promtail"], "egress") == [("pod:loki", [3100]), ("any", [443, 6443])]
    assert _rules(policies["observability/loki"], "ingress") == [("pod:promtail", [3100]), ("pod:grafana", [3100])]
