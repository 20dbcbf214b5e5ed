"""Each policy rule against a table of violating resources (and of near misses it must let pass),
with properties shaped as the engine sends them to policy packs (camelCase, unknowns as sentinels)."""
# ruff: noqa: E501  (the tables read best one case per line)

from __future__ import annotations

import importlib
import json
from typing import Any

import pulumi_policy
import pytest
from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import (
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    unknown_checking_proxy,
)

from policy import validators as v

DIGEST = "sha256:" + "ab" * 32
HEALTHY = {"tests": ["CMD", "pg_isready"], "interval": "10s"}
LIMITS = {"limits": {"memoryBytes": 536870912.0, "nanoCpus": 1000000000.0}}


def service(image: str = "postgres:16.4", **spec: Any) -> dict[str, Any]:
    """A docker.Service's properties, compliant unless overridden."""
    task: dict[str, Any] = {"containerSpec": {"image": image, "healthcheck": HEALTHY}, "resources": LIMITS}
    resources = spec.pop("resources", LIMITS)
    task["containerSpec"].update(spec)
    task["resources"] = resources
    return {"name": "svc", "taskSpec": task}


def container(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"image": "ghcr.io/spiffe/spire-agent:1.11.2", "healthcheck": HEALTHY, "memory": 256.0}
    return {**base, **props}


def bucket(**props: Any) -> dict[str, Any]:
    return {"name": "zt-backups", "region": "fra1", "versioning": {"enabled": True}, **props}


def rclone_mount(target: str, read_only: bool = False) -> dict[str, Any]:
    return {
        "type": "volume",
        "target": target,
        "source": "vol",
        "readOnly": read_only,
        "volumeOptions": {"driverName": "rclone"},
    }


# (id, type, props, environment, rule, fragment of the message)
VIOLATIONS = [
    ("untagged-service", v.SERVICE, service("postgres"), "prod", "images-pinned", "no tag"),
    ("latest", v.SERVICE, service("quay.io/keycloak/keycloak:latest"), "dev", "images-pinned", "moving tag 'latest'"),
    ("stable", v.SERVICE, service("ghcr.io/acme/tool:stable"), "dev", "images-pinned", "moving tag 'stable'"),
    ("registry-port-no-tag", v.REMOTE_IMAGE, {"name": "localhost:5000/spire-server"}, "dev", "images-pinned", "no tag"),
    ("bad-digest", v.SERVICE, service("postgres@sha256:abc"), "dev", "images-pinned", "malformed digest"),
    ("container-untagged", v.CONTAINER, container(image="openziti/ziti-router"), "dev", "images-pinned", "no tag"),
    ("empty-image", v.SERVICE, service(""), "dev", "images-pinned", "no image reference"),
    ("db-password", v.SERVICE, service(env={"KC_DB_PASSWORD": "hunter2"}), "dev", "no-secret-env-values", "KC_DB_PASSWORD"),
    ("postgres-password", v.SERVICE, service(env={"POSTGRES_PASSWORD": "s3cret"}), "dev", "no-secret-env-values", "credential"),
    ("aws-secret", v.SERVICE, service(env={"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI"}), "dev", "no-secret-env-values", "AWS_SECRET"),
    ("jwt", v.SERVICE, service(env={"ZITI_ENROLLMENT": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyMSJ9.c2ln"}), "dev", "no-secret-env-values", "a JWT"),
    ("url-password", v.SERVICE, service(env={"DATABASE_URL": "postgres://kc:pw@db:5432/kc"}), "dev", "no-secret-env-values", "URL with a password"),
    ("private-key", v.SERVICE, service(env={"TLS": "-----BEGIN EC PRIVATE KEY-----\nMHc"}), "dev", "no-secret-env-values", "private key"),
    ("do-token-container", v.CONTAINER, container(envs=["DIGITALOCEAN_TOKEN=dop_v1_" + "0a" * 32]), "dev", "no-secret-env-values", "DigitalOcean token"),
    ("enroll-token-container", v.CONTAINER, container(envs=["ZITI_ENROLL_TOKEN=abc123"]), "dev", "no-secret-env-values", "ZITI_ENROLL_TOKEN"),
    ("pg-on-rclone", v.SERVICE, service(mounts=[rclone_mount("/var/lib/postgresql/data")]), "dev", "stateful-data-not-on-rclone", "/var/lib/postgresql"),
    ("spire-on-rclone", v.SERVICE, service(mounts=[rclone_mount("/var/lib/spire/server")]), "dev", "stateful-data-not-on-rclone", "/var/lib/spire"),
    ("ziti-on-rclone", v.CONTAINER, container(mounts=[rclone_mount("/persistent")]), "dev", "stateful-data-not-on-rclone", "/persistent"),
    ("ziti-controller-home", v.SERVICE, service("docker.io/openziti/ziti-controller:2.0.1", mounts=[rclone_mount("/ziti-controller")]), "dev", "stateful-data-not-on-rclone", "/ziti-controller"),
    ("ziti-router-home", v.SERVICE, service("docker.io/openziti/ziti-router:2.0.1", mounts=[rclone_mount("/ziti-router")]), "dev", "stateful-data-not-on-rclone", "/ziti-router"),
    ("ziti-home-env", v.SERVICE, service(env={"ZITI_HOME": "/srv/ctrl"}, mounts=[rclone_mount("/srv/ctrl")]), "dev", "stateful-data-not-on-rclone", "/srv/ctrl"),
    ("parent-of-db-dir", v.SERVICE, service(mounts=[rclone_mount("/var/lib")]), "dev", "stateful-data-not-on-rclone", "/var/lib/postgresql"),
    ("pgdata-env", v.SERVICE, service(env={"PGDATA": "/pgdata"}, mounts=[rclone_mount("/pgdata")]), "dev", "stateful-data-not-on-rclone", "/pgdata"),
    ("sqlite-file-env", v.SERVICE, service(env={"DB_URI": "/state/datastore.sqlite3"}, mounts=[rclone_mount("/state")]), "dev", "stateful-data-not-on-rclone", "/state"),
    ("read-only-still-live", v.SERVICE, service(mounts=[rclone_mount("/var/lib/postgresql/data", read_only=True)]), "dev", "stateful-data-not-on-rclone", "rclone"),
    ("public-bucket", v.BUCKET, bucket(acl="public-read"), "prod", "spaces-buckets-private-versioned", "public"),
    ("unversioned-bucket", v.BUCKET, {"name": "b", "region": "fra1"}, "prod", "spaces-buckets-private-versioned", "versioning.enabled"),
    ("versioning-off", v.BUCKET, bucket(versioning={"enabled": False}), "prod", "spaces-buckets-private-versioned", "versioning.enabled"),
    ("public-object", v.BUCKET_OBJECT, {"bucket": "b", "key": "k", "region": "fra1", "acl": "public-read"}, "prod", "spaces-buckets-private-versioned", "public"),
    ("public-policy", v.BUCKET_POLICY, {"bucket": "b", "region": "fra1", "policy": json.dumps({"Statement": [{"Sid": "All", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]})}, "prod", "spaces-buckets-private-versioned", "'All' allows anyone"),
    ("public-policy-aws", v.BUCKET_POLICY, {"bucket": "b", "region": "fra1", "policy": json.dumps({"Statement": {"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:*"}})}, "prod", "spaces-buckets-private-versioned", "anyone"),
    ("no-healthcheck", v.SERVICE, service(healthcheck=None), "dev", "healthchecks-present", "missing"),
    ("healthcheck-none", v.SERVICE, service(healthcheck={"tests": ["NONE"]}), "dev", "healthchecks-present", "disabled"),
    ("healthcheck-bare-command", v.SERVICE, service(healthcheck={"tests": ["curl", "-f", "http://x"]}), "dev", "healthchecks-present", "CMD"),
    ("container-no-healthcheck", v.CONTAINER, container(healthcheck=None), "dev", "healthchecks-present", "missing"),
    ("prod-no-limits", v.SERVICE, service(resources=None), "prod", "resource-limits-in-prod", "memoryBytes"),
    ("prod-no-cpu", v.SERVICE, service(resources={"limits": {"memoryBytes": 1.0e9}}), "prod", "resource-limits-in-prod", "nanoCpus"),
    ("prod-zero-memory", v.SERVICE, service(resources={"limits": {"memoryBytes": 0.0, "nanoCpus": 1.0e9}}), "prod", "resource-limits-in-prod", "memoryBytes"),
    ("unknown-env-is-prod", v.SERVICE, service(resources=None), None, "resource-limits-in-prod", "memory limit"),
    ("prod-container-no-memory", v.CONTAINER, container(memory=None), "prod", "resource-limits-in-prod", "memory"),
]  # fmt: skip

PASSES = [
    ("pinned-tag", v.SERVICE, service("postgres:16.4-alpine"), "prod"),
    ("registry-port-tag", v.SERVICE, service("localhost:5000/spire-server:1.11.2"), "prod"),
    ("digest-only", v.SERVICE, service(f"ghcr.io/spiffe/spire-server@{DIGEST}"), "prod"),
    ("tag-and-digest", v.SERVICE, service(f"docker.io/library/postgres:16.4@{DIGEST}"), "prod"),
    ("image-id", v.CONTAINER, container(image=DIGEST), "prod"),
    ("secret-files", v.SERVICE, service(env={"POSTGRES_PASSWORD_FILE": "/run/secrets/pg", "KC_DB_USERNAME": "keycloak"}), "prod"),
    ("switches-and-empties", v.SERVICE, service(env={"KC_HTTP_ENABLED": "true", "ZITI_PWD": "", "TOKEN_TTL": "1h"}), "prod"),
    ("pgpassfile", v.CONTAINER, container(envs=["PGPASSFILE=/run/secrets/pgpass", "PWD=/work"]), "prod"),
    ("backup-on-rclone", v.SERVICE, service(mounts=[rclone_mount("/backup")]), "prod"),
    ("restore-read-only", v.SERVICE, service(mounts=[rclone_mount("/backup", read_only=True)]), "prod"),
    ("db-on-local-volume", v.SERVICE, service(mounts=[{"type": "volume", "target": "/var/lib/postgresql/data", "source": "pg", "volumeOptions": {"driverName": "local"}}]), "prod"),
    ("shallow-parent", v.CONTAINER, container(mounts=[rclone_mount("/data")]), "prod"),
    ("private-versioned", v.BUCKET, bucket(), "prod"),
    ("explicit-private", v.BUCKET, bucket(acl="private"), "prod"),
    ("scoped-policy", v.BUCKET_POLICY, {"bucket": "b", "region": "fra1", "policy": json.dumps({"Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:user/x"]}, "Action": "s3:GetObject"}]})}, "prod"),
    ("deny-star", v.BUCKET_POLICY, {"bucket": "b", "region": "fra1", "policy": json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject"}]})}, "prod"),
    ("cmd-shell", v.SERVICE, service(healthcheck={"tests": ["CMD-SHELL", "pg_isready -U kc"]}), "prod"),
    ("one-shot-container", v.CONTAINER, container(mustRun=False, healthcheck={"tests": ["NONE"]}, memory=None), "prod"),
    ("dev-without-limits", v.SERVICE, service(resources=None), "dev"),
    ("dev-container-without-memory", v.CONTAINER, container(memory=None), "dev"),
    ("other-types", "docker:index/network:Network", {"name": "n", "driver": "overlay"}, "prod"),
    ("dynamic", "pulumi-python:dynamic/keycloak:Realm", {"realm": "platform", "__provider": "x"}, "prod"),
]  # fmt: skip


class TestEachRuleCatchesItsViolations:
    @pytest.mark.parametrize(
        ("rtype", "props", "env", "rule", "fragment"), [c[1:] for c in VIOLATIONS], ids=[c[0] for c in VIOLATIONS]
    )
    def test_violation_is_reported_by_exactly_its_rule(self, rtype, props, env, rule, fragment) -> None:  # fmt: skip
        found = v.check_resource(rtype, props, env)
        assert set(found) == {rule}, found
        assert any(fragment in m for m in found[rule]), found[rule]

    @pytest.mark.parametrize(("rtype", "props", "env"), [c[1:] for c in PASSES], ids=[c[0] for c in PASSES])
    def test_near_misses_pass(self, rtype: str, props: dict[str, Any], env: str) -> None:
        assert v.check_resource(rtype, props, env) == {}

    def test_messages_name_the_field_and_the_fix(self) -> None:
        (msg,) = v.no_secret_env_values(v.SERVICE, service(env={"KC_DB_PASSWORD": "hunter2"}))
        assert msg.startswith("taskSpec.containerSpec.env.KC_DB_PASSWORD:") and "/run/secrets" in msg
        assert "hunter2" not in msg


class TestUnknownValuesAreSkippedAtPreview:
    def test_sentinels_in_plain_dicts(self) -> None:
        props = service(
            UNKNOWN_STRING_VALUE, env={"KC_DB_PASSWORD": UNKNOWN_STRING_VALUE}, healthcheck=UNKNOWN_OBJECT_VALUE
        )
        props["taskSpec"]["resources"] = UNKNOWN_OBJECT_VALUE
        assert v.check_resource(v.SERVICE, props, "prod") == {}
        assert v.check_resource(v.BUCKET, bucket(versioning=UNKNOWN_OBJECT_VALUE), "prod") == {}
        assert v.check_resource(v.BUCKET, bucket(versioning={"enabled": UNKNOWN_BOOLEAN_VALUE}), "prod") == {}

    def test_through_the_policy_sdks_unknown_checking_proxy(self) -> None:
        raw = service(UNKNOWN_STRING_VALUE, mounts=[rclone_mount(UNKNOWN_STRING_VALUE)])
        raw["taskSpec"]["containerSpec"]["env"] = {"POSTGRES_PASSWORD": UNKNOWN_STRING_VALUE, "X_TOKEN": "abc"}
        found = v.check_resource(v.SERVICE, unknown_checking_proxy(raw), "prod")
        # The known secret is still caught; everything unknown is left for `pulumi up`.
        assert set(found) == {"no-secret-env-values"} and "X_TOKEN" in found["no-secret-env-values"][0]


class TestStackLevelRcloneCheck:
    def test_named_rclone_volume_holding_a_database_is_caught(self) -> None:
        svc = service(mounts=[{"type": "volume", "target": "/var/lib/postgresql/data", "source": "pg-data"}])
        stack = [
            ("urn:vol", v.VOLUME, {"name": "pg-data", "driver": "rclone"}),
            ("urn:svc", v.SERVICE, svc),
        ]
        assert v.check_resource(v.SERVICE, svc, "prod") == {}  # invisible per resource
        assert [(rule, urn) for rule, urn, _ in v.check_stack(stack, "prod")] == [
            ("stateful-data-not-on-rclone", "urn:svc")
        ]

    def test_container_volume_by_name(self) -> None:
        ctr = container(volumes=[{"volumeName": "ctrl", "containerPath": "/persistent"}])
        stack = [("urn:vol", v.VOLUME, {"name": "ctrl", "driver": "rclone"}), ("urn:ctr", v.CONTAINER, ctr)]
        assert len(v.rclone_named_volume_violations(stack)) == 1

    def test_local_named_volume_is_fine(self) -> None:
        svc = service(mounts=[{"type": "volume", "target": "/var/lib/postgresql/data", "source": "pg-data"}])
        stack = [("urn:vol", v.VOLUME, {"name": "pg-data", "driver": "local"}), ("urn:svc", v.SERVICE, svc)]
        assert v.check_stack(stack, "prod") == []

    def test_direct_violations_are_not_reported_twice(self) -> None:
        svc = service(mounts=[rclone_mount("/var/lib/postgresql/data") | {"source": "pg"}])
        stack = [("urn:vol", v.VOLUME, {"name": "pg", "driver": "rclone"}), ("urn:svc", v.SERVICE, svc)]
        assert len(v.check_stack(stack, "prod")) == 1


class TestPolicyObjects:
    def test_every_rule_is_a_mandatory_policy(self) -> None:
        pols = v.policies()
        assert [p.name for p in pols if isinstance(p, ResourceValidationPolicy)] == [r.name for r in v.RULES]
        assert [p.name for p in pols if isinstance(p, StackValidationPolicy)] == [
            "stateful-data-not-on-named-rclone-volumes"
        ]
        assert {p.enforcement_level for p in pols} == {pulumi_policy.EnforcementLevel.MANDATORY}

    def test_resource_policy_reports_through_the_sdk_callback(self) -> None:
        (pol,) = [p for p in v.policies() if p.name == "images-pinned"]
        args = ResourceValidationArgs(v.SERVICE, service("postgres"), "urn:svc", "pg", {}, None, None)
        reported: list[tuple[str, str | None]] = []
        assert isinstance(pol, ResourceValidationPolicy)
        pol.validate(args, lambda msg, urn=None: reported.append((msg, urn)))
        assert len(reported) == 1 and reported[0][0].startswith("pg: taskSpec.containerSpec.image: image 'postgres'")

    @pytest.mark.parametrize(("config", "expected"), [({"environment": "dev"}, 0), ({"environment": "prod"}, 2)])
    def test_limits_policy_follows_its_environment_config(self, config: dict[str, str], expected: int) -> None:
        (pol,) = [p for p in v.policies() if p.name == "resource-limits-in-prod"]
        assert isinstance(pol, ResourceValidationPolicy)
        args = ResourceValidationArgs(v.SERVICE, service(resources=None), "urn:svc", "svc", {}, None, config)
        reported: list[str] = []
        pol.validate(args, lambda msg, urn=None: reported.append(msg))
        assert len(reported) == expected

    def test_importing_the_validators_never_builds_a_policy_pack(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def forbidden(*_a: Any, **_k: Any) -> None:
            raise AssertionError("PolicyPack built at import time")

        monkeypatch.setattr(pulumi_policy, "PolicyPack", forbidden)
        importlib.reload(v)
        assert v.policies()
