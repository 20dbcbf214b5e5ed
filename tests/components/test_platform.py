"""Invariants of the whole platform as `__main__.py` builds it, for every stack file (dev, prod)
in preview and update mode: pinned images, no secret in any environment variable, healthchecks,
networks, placement, per-node agents, ordering, exports, and (prod) buckets and rclone volumes."""

from __future__ import annotations

import re

import pytest

from stack_config.base import check_pinned_image
from tests.components._platform import (
    CONFIG,
    CONTAINER,
    NETWORK,
    PLUGIN,
    PROVIDER,
    SECRET,
    SERVICE,
    VOLUME,
    attached_networks,
    containers,
    env_of,
    is_secret,
    network_names,
    provider_of_node,
    provider_urn,
    secret_values,
    services,
    spec,
    unwrap,
    walk_strings,
)
from tests.conftest import program_run
from tests.harness.mock_engine import ProgramRun, Registered

# Swarm service -> the networks it needs, and why.
EXPECTED_NETWORKS = {
    "spire-server": {"spire"},  # agents dial it on 8081
    "spire-backup": set(),  # reads a local volume, writes an rclone volume
    "keycloak-postgres": {"keycloak"},
    "keycloak-postgres-backup": {"keycloak"},  # pg_dump over the network
    "keycloak": {"keycloak"},  # + caddy_caddy in prod
    "ziti-controller": {"ziti", "keycloak"},  # keycloak: JWKS for the ext-JWT signer
    "ziti-backup": {"ziti"},  # logs in to the controller's management API
    "ziti-router": {"ziti"},
}
STATEFUL = {"spire-server", "spire-backup", "keycloak-postgres", "keycloak-postgres-backup", "ziti-controller",
            "ziti-backup", "ziti-router"}  # fmt: skip
CREDENTIAL_EXPORTS = {"keycloakAdminPassword", "zitiAdminPassword"}
REQUIRED_EXPORTS = {
    "environment", "nodes", "spireTrustDomain", "spireBundlePem", "keycloakUrl", "keycloakAdminUser",
    "keycloakAdminPassword", "zitiControllerUrl", "zitiConsoleUrl", "zitiAdminUser", "zitiAdminPassword", "buckets",
}  # fmt: skip


def images(r: ProgramRun) -> list[tuple[str, str]]:
    out = [(s.name, spec(s)["image"]) for s in r.of_type(SERVICE)]
    out += [(c.name, c.inputs["image"]) for c in r.of_type(CONTAINER)]
    out += [(p.name, p.inputs["name"]) for p in r.of_type(PLUGIN)]
    return out


class TestEveryImageIsPinned:
    def test_services_containers_and_plugins(self, swarm_run: ProgramRun) -> None:
        found = images(swarm_run)
        assert len(found) >= 6, found
        for name, ref in found:
            assert check_pinned_image(ref) == ref, name
            tag = ref.rsplit(":", 1)[1]
            assert tag != "latest" and re.search(r"\d", tag), f"{name}: {ref} is not pinned to a version"
            assert "/" in ref, f"{name}: {ref} is a bare name; name the registry/repository"


class TestNoSecretReachesAnEnvironmentVariable:
    def test_no_known_secret_value_in_env_labels_or_commands(self, swarm_run: ProgramRun) -> None:
        secrets = secret_values(swarm_run)
        if not swarm_run.preview:
            assert sum("mock-secret-value-password" in s for s in secrets) >= 3, "generated passwords are known"
        for res in swarm_run.of_type(SERVICE) + swarm_run.of_type(CONTAINER):
            cs = spec(res) if res.type == SERVICE else res.inputs
            exposed = list(env_of(res).items())
            exposed += [("label", lbl) for lbl in walk_strings(res.inputs.get("labels"))]
            exposed += [("commands", c) for c in walk_strings(cs.get("commands") or cs.get("entrypoints"))]
            exposed += [("args", a) for a in walk_strings(cs.get("args") or cs.get("command"))]
            for where, value in exposed:
                assert not any(s in value for s in secrets if len(s) >= 8), f"{res.name}: {where} leaks a secret"
                assert "mock-secret-value-" not in value, f"{res.name}: {where} carries a secret"

    def test_credential_shaped_variables_point_at_files(self, swarm_run: ProgramRun) -> None:
        cred = re.compile(r"PASSWORD|PWD|SECRET|TOKEN|PASSFILE|_KEY$")
        seen = 0
        for res in swarm_run.of_type(SERVICE) + swarm_run.of_type(CONTAINER):
            for key, value in env_of(res).items():
                if cred.search(key):
                    seen += 1
                    assert value.startswith("/run/secrets/"), f"{res.name}: {key}={value!r} is not a secret file"
        assert seen >= 1

    def test_secrets_are_swarm_secrets_marked_secret(self, swarm_run: ProgramRun) -> None:
        for s in swarm_run.of_type(SECRET):
            assert "data" in s.additional_secret_outputs, s.name
            if not swarm_run.preview:
                assert re.fullmatch(r"[a-z0-9-]+-[0-9a-f]{12}", s.inputs["name"]), "name carries a content hash"
                assert is_secret(s.inputs["data"]), s.name


class TestEveryServiceIsHealthCheckedAndConverges:
    def test_services(self, swarm_run: ProgramRun) -> None:
        svcs = services(swarm_run)
        assert {"spire-server", "keycloak", "keycloak-postgres", "ziti-controller"} <= set(svcs)
        for name, s in svcs.items():
            hc = spec(s)["healthcheck"]
            assert hc["tests"][0] in ("CMD", "CMD-SHELL") and len(hc["tests"]) > 1, name
            assert s.inputs["convergeConfig"]["timeout"], name
            assert s.inputs["updateConfig"]["failureAction"] == "rollback", name
            assert s.inputs["rollbackConfig"]["order"] == s.inputs["updateConfig"]["order"], name
            rp = s.inputs["taskSpec"]["restartPolicy"]
            assert rp["delay"] and rp["window"], f"{name}: explicit delay/window avoid pulumi-docker#1285"

    def test_long_running_containers(self, swarm_run: ProgramRun) -> None:
        for c in containers(swarm_run):
            tests = c.inputs["healthcheck"]["tests"]
            if c.inputs.get("attach"):  # one-shot restore containers exit by design
                assert tests == ["NONE"], c.name
                continue
            assert c.inputs["restart"] == "unless-stopped", c.name
            assert tests[0] == "CMD" and len(tests) > 1, c.name


class TestEachServiceJoinsOnlyItsNetworks:
    def test_attachments(self, swarm_run: ProgramRun) -> None:
        svcs = services(swarm_run)
        prod = swarm_run.stack == "prod"
        for name, s in svcs.items():
            expected = set(EXPECTED_NETWORKS[name])
            if name == "keycloak" and prod:
                expected.add("caddy_caddy")
            attached = attached_networks(swarm_run, s)
            assert len(attached) == len(expected), (name, attached)
            if not swarm_run.preview:
                names = network_names(swarm_run)
                got = {names.get(a, a.removesuffix("-id")) for a in attached}
                assert got == expected, name

    def test_overlays_and_the_attachable_one(self, swarm_run: ProgramRun) -> None:
        nets = {n.inputs["name"]: n for n in swarm_run.of_type(NETWORK)}
        assert set(nets) == {"spire", "keycloak", "ziti"}
        assert all(n.inputs["driver"] == "overlay" for n in nets.values())
        # Only SPIRE's: plain containers (the agents) join it.
        assert [k for k, n in nets.items() if n.inputs.get("attachable")] == ["spire"]

    def test_containers_join_only_what_they_need(self, swarm_run: ProgramRun) -> None:
        for c in containers(swarm_run):
            if c.inputs["name"] == "spire-agent":
                assert [n["name"] for n in c.inputs["networksAdvanced"]] == ["spire"]
            else:
                assert c.inputs.get("networkMode") == "none", c.name
                assert not c.inputs.get("networksAdvanced"), c.name


class TestStatefulServicesArePlacedByLabel:
    def test_placement(self, swarm_run: ProgramRun) -> None:
        svcs = services(swarm_run)
        for name, s in svcs.items():
            placement = s.inputs["taskSpec"].get("placement")
            if name in STATEFUL:
                assert placement["constraints"] == ["node.labels.zt.db==true"], name
                assert placement["maxReplicas"] == 1 and s.inputs["mode"]["replicated"]["replicas"] == 1, name
                assert s.inputs["updateConfig"]["order"] == "stop-first", f"{name}: two tasks on one database"
            else:
                assert not placement, f"{name} is stateless and may run anywhere"
                assert s.inputs["updateConfig"]["order"] == "start-first", name

    def test_the_label_is_on_exactly_one_configured_node(self, swarm_run: ProgramRun) -> None:
        import stack_config
        from tests.harness.mock_engine import stack_config as raw_config

        values, _ = raw_config(swarm_run.stack)
        raw = {k.split(":", 1)[1]: v for k, v in values.items() if k.startswith("identity-platform:")}
        import json

        cfg = stack_config.parse({k: json.loads(v) if v[:1] in "{[" else v for k, v in raw.items()})
        assert [n for n, spec_ in cfg.nodes.items() if spec_.labels.get("zt.db") == "true"] == [
            r.name.removeprefix("swarm-")
            for r in swarm_run.of_type(PROVIDER)
            if r.urn == provider_urn(swarm_run.get(VOLUME, "keycloak-db-data"))
        ]

    def test_database_volumes_are_node_local(self, swarm_run: ProgramRun) -> None:
        for name in ("spire-server-data", "keycloak-db-data", "ziti-controller-data"):
            vol = swarm_run.get(VOLUME, name)
            assert vol.inputs["driver"] == "local", name
        for name, s in services(swarm_run).items():
            for m in spec(s).get("mounts") or []:
                driver = (m.get("volumeOptions") or {}).get("driverName")
                if m["target"] in ("/var/lib/postgresql/data", "/var/lib/spire/server", "/ziti-controller"):
                    assert driver is None, f"{name}: live database on a {driver} volume"


class TestOneAgentPerNode:
    def test_agents(self, swarm_run: ProgramRun) -> None:
        nodes = swarm_run.exports["nodes"].value
        agents = [c for c in containers(swarm_run) if c.inputs["name"] == "spire-agent"]
        assert sorted(a.name for a in agents) == sorted(f"spire-agent-{n}" for n in nodes)
        for node in nodes:
            agent = swarm_run.get(CONTAINER, f"spire-agent-{node}")
            assert provider_urn(agent) == provider_of_node(swarm_run, node), "agent runs on its own node's engine"
            assert agent.inputs["pidMode"] == "host"
            mounts = {v["containerPath"]: v for v in agent.inputs["volumes"]}
            assert mounts["/var/run/docker.sock"]["hostPath"] == "/var/run/docker.sock"
            assert mounts["/var/run/docker.sock"]["readOnly"] is True
            assert mounts["/run/spire/sockets"]["hostPath"] == "/run/spire/sockets"

    def test_one_provider_per_node_and_swarm_objects_on_the_manager(self, swarm_run: ProgramRun) -> None:
        nodes = swarm_run.exports["nodes"].value
        providers = swarm_run.of_type(PROVIDER)
        assert sorted(p.name for p in providers) == sorted(f"swarm-{n}" for n in nodes)
        manager = "local" if swarm_run.stack == "dev" else "manager-1"
        for t in (SERVICE, NETWORK, SECRET, CONFIG):
            for r in swarm_run.of_type(t):
                assert provider_urn(r) == provider_of_node(swarm_run, manager), r.name
        for r in swarm_run.resources:
            if r.type.startswith("docker:"):
                assert r.provider, f"{r.name} would use an implicit default provider"


class TestOrderingSpireKeycloakZiti:
    @staticmethod
    def depends(r: Registered, on: Registered) -> bool:
        return on.urn in r.dependencies

    def test_workloads_wait_for_the_previous_stack(self, swarm_run: ProgramRun) -> None:
        svcs = services(swarm_run)
        spire_server = svcs["spire-server"]
        for name in ("keycloak-postgres", "keycloak"):
            assert self.depends(svcs[name], spire_server), f"{name} must wait for the SPIRE server"
        for name in ("ziti-controller",):
            assert self.depends(svcs[name], svcs["keycloak"]), f"{name} must wait for Keycloak"
        assert self.depends(svcs["ziti-router"], svcs["ziti-controller"]), "the router enrolls with the controller"
        agents = [c for c in containers(swarm_run) if c.inputs["name"] == "spire-agent"]
        assert all(self.depends(a, spire_server) for a in agents)
        assert all(a.inputs["wait"] for a in agents), "up waits for attested agents"

    def test_components_declare_it(self, swarm_run: ProgramRun) -> None:
        # depends_on a component is expanded to its children by the SDK.
        keycloak = swarm_run.get("identity-platform:keycloak:KeycloakStack", "keycloak")
        ziti = swarm_run.get("identity-platform:ziti:ZitiStack", "ziti")
        svcs = services(swarm_run)
        assert svcs["spire-server"].urn in keycloak.dependencies
        assert svcs["keycloak"].urn in ziti.dependencies
        assert svcs["keycloak"].urn not in keycloak.dependencies


class TestExports:
    def test_exports_exist_and_credentials_are_secret(self, swarm_run: ProgramRun) -> None:
        assert REQUIRED_EXPORTS <= set(swarm_run.exports)
        for key in REQUIRED_EXPORTS:
            assert swarm_run.exports[key].secret == (key in CREDENTIAL_EXPORTS), key
        if swarm_run.preview:
            return
        ex = {k: v.value for k, v in swarm_run.exports.items()}
        assert ex["keycloakAdminPassword"].startswith("mock-secret-value-")
        assert ex["spireBundlePem"].startswith("-----BEGIN CERTIFICATE-----")
        assert ex["zitiConsoleUrl"] == ex["zitiControllerUrl"] + "/zac/"
        if swarm_run.stack == "dev":
            assert ex["keycloakUrl"] == "http://localhost:8080"
            assert ex["zitiControllerUrl"] == "https://localhost:1280"
            assert ex["buckets"] == {}
        else:
            assert ex["keycloakUrl"] == "https://auth.zt.acme-identity.net"
            assert ex["zitiControllerUrl"] == "https://ziti.zt.acme-identity.net:1280"
            assert set(ex["buckets"]) == {"spire", "keycloak", "ziti"}
            for role, b in ex["buckets"].items():
                assert b == {
                    "name": f"zt-acme-identity-net-prod-{role}",
                    "region": "fra1",
                    "endpoint": "https://fra1.digitaloceanspaces.com",
                }


class TestProdStorage:
    @pytest.fixture(params=[True, False], ids=["preview", "update"])
    def prod(self, request: pytest.FixtureRequest) -> ProgramRun:
        return program_run("prod", request.param)

    def test_one_private_versioned_bucket_and_scoped_key_per_stack(self, prod: ProgramRun) -> None:
        buckets = prod.of_type("digitalocean:index/spacesBucket:SpacesBucket")
        keys = prod.of_type("digitalocean:index/spacesKey:SpacesKey")
        assert len(buckets) == len(keys) == 3
        for b in buckets:
            assert b.inputs["acl"] == "private" and b.inputs["versioning"]["enabled"] is True
            assert b.inputs["forceDestroy"] is False
            (rule,) = b.inputs["lifecycleRules"]
            assert rule["enabled"] and rule["noncurrentVersionExpiration"]["days"] == 30
        for k in keys:
            (grant,) = k.inputs["grants"]
            assert grant["permission"] == "readwrite"
            assert "secretKey" in k.additional_secret_outputs
            if not prod.preview:
                role = k.name.removeprefix("bucket-").removesuffix("-key")
                assert grant["bucket"] == f"zt-acme-identity-net-prod-{role}", "a key reaches only its own bucket"

    def test_rclone_volumes_and_plugin(self, prod: ProgramRun) -> None:
        vols = [v for v in prod.of_type(VOLUME) if v.inputs.get("driver") == "rclone"]
        assert sorted(v.inputs["name"] for v in vols) == ["keycloak-postgres-backup", "spire-backup", "ziti-backup"]
        (plugin,) = prod.of_type(PLUGIN)
        assert plugin.inputs["alias"] == "rclone"
        db_provider = provider_of_node(prod, "manager-1")
        assert provider_urn(plugin) == db_provider
        for v in vols:
            assert provider_urn(v) == db_provider, "rclone volumes live where their services run"
            assert plugin.urn in v.dependencies
            if prod.preview:
                continue
            assert is_secret(v.inputs["driverOpts"]), "rclone options carry the Spaces key"
            opts = unwrap(v.inputs["driverOpts"])
            assert opts["type"] == "s3" and opts["s3-provider"] == "DigitalOcean"
            assert opts["s3-endpoint"] == "fra1.digitaloceanspaces.com"
            assert opts["vfs-cache-mode"] == "writes"
            assert opts["s3-secret-access-key"].startswith("mock-secret-value-")
            assert opts["path"].startswith("zt-acme-identity-net-prod-")
        users = {
            name: [
                m for m in spec(s).get("mounts") or [] if (m.get("volumeOptions") or {}).get("driverName") == "rclone"
            ]
            for name, s in services(prod).items()
        }
        assert {n for n, m in users.items() if m} == {"spire-backup", "keycloak-postgres-backup", "ziti-backup"}

    def test_resource_limits_in_prod_only(self, prod: ProgramRun) -> None:
        for name, s in services(prod).items():
            limits = s.inputs["taskSpec"]["resources"]["limits"]
            assert limits["memoryBytes"] > 0 and limits["nanoCpus"] > 0, name
        long_running = [c for c in containers(prod) if not c.inputs.get("attach")]
        assert long_running, "the agents at least"
        for c in long_running:
            assert c.inputs["memory"] > 0, f"{c.name}: a long-running container needs a memory limit in prod"
        dev = program_run("dev", prod.preview)
        for name, s in services(dev).items():
            assert not s.inputs["taskSpec"].get("resources"), name
        for c in containers(dev):
            assert not c.inputs.get("memory"), c.name


class TestDevHasNoCloud:
    def test_no_buckets_keys_rclone_or_backups(self) -> None:
        dev = program_run("dev", False)
        assert not [r for r in dev.resources if r.type.startswith("digitalocean:")]
        assert not dev.of_type(PLUGIN)
        assert all(v.inputs["driver"] == "local" for v in dev.of_type(VOLUME))
        assert not [n for n in services(dev) if n.endswith("backup")]


class TestChildNaming:
    def test_children_are_named_after_their_parent(self, swarm_run: ProgramRun) -> None:
        by_urn = {r.urn: r for r in swarm_run.resources}
        checked = 0
        for r in swarm_run.resources:
            parent = by_urn.get(r.parent)
            if parent is None:
                continue
            assert r.name.startswith(f"{parent.name}-"), f"{r.type} {r.name} under {parent.name}"
            checked += 1
        assert checked >= 30

    def test_component_type_tokens(self, swarm_run: ProgramRun) -> None:
        components = [r for r in swarm_run.resources if not r.custom]
        assert components
        for c in components:
            assert re.fullmatch(r"identity-platform:[a-z]+:[A-Za-z]+", c.type), c.type
