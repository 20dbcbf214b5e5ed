"""The rules of the identity-platform policy pack, as plain functions (importable, unit-tested).

Each rule takes a resource's type token and its properties as the engine sends them to policy
packs (engine/camelCase names: `taskSpec.containerSpec.image`, `versioning.enabled`) and returns
one message per violation. `policies()` wraps them into pulumi-policy objects; the `PolicyPack`
itself is built only in `policy/__main__.py`, because constructing one starts a gRPC server and
never returns. Nothing here imports the program or talks to the network.

Values that are not known yet (`pulumi preview` of outputs that depend on other resources) are
skipped, not reported: a rule judges only what it can see, and `pulumi up` runs it again with the
real values.

Rules (README "Policy pack" explains each):
  images-pinned, no-secret-env-values, stateful-data-not-on-rclone, spaces-buckets-private-versioned,
  healthchecks-present, resource-limits-in-prod.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

from .image_ref import DIGEST_RE, pin_problem

PACK_NAME = "identity-platform-policies"
PROJECT = "identity-platform"

SERVICE = "docker:index/service:Service"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
BUCKET_OBJECT = "digitalocean:index/spacesBucketObject:SpacesBucketObject"
BUCKET_POLICY = "digitalocean:index/spacesBucketPolicy:SpacesBucketPolicy"

# Where databases and datastores keep live files. rclone uploads a file only once it is closed,
# fsync reaches only the local cache and nothing coordinates locks across nodes, so none of these
# may sit on an rclone volume (research/pulumi.md §7.3).
STATEFUL_PATHS = (
    "/var/lib/postgresql",  # postgres image (PGDATA default /var/lib/postgresql/data)
    "/var/lib/mysql",  # mysql, mariadb
    "/data/db",  # mongo
    "/bitnami",  # bitnami database images
    "/var/lib/etcd",
    "/var/lib/redis",
    "/var/lib/spire",  # SPIRE server/agent data dir and sqlite datastore (this project)
    "/opt/spire/data",  # SPIRE images' default data dir
    "/run/spire/data",
    "/persistent",  # legacy openziti/quickstart: ctrl.db (bbolt), PKI, identities
    "/ziti-controller",  # openziti/ziti-controller ZITI_HOME: raft store, db, PKI (this project)
    "/ziti-router",  # openziti/ziti-router ZITI_HOME: enrolled identity, config (this project)
    "/opt/keycloak/data",  # Keycloak's embedded H2 and caches
)
# Env variables that name a data directory; their value is a stateful path too.
DATA_DIR_ENV = re.compile(r"^(PGDATA|MYSQL_DATADIR|ZITI_HOME|.*_DATA_?DIR|.*_DB_PATH|.*_DATABASE_PATH)$", re.I)
DB_FILE = re.compile(r"\.(db|sqlite|sqlite3|bolt|mdb)$", re.I)

SECRET_NAME = re.compile(
    r"(^|_)(PASSWORD|PASSWD|PASS|PWD|SECRET|TOKEN|PASSPHRASE|CREDENTIALS?|API_?KEY|ACCESS_?KEY|SECRET_?KEY|"
    r"PRIVATE_?KEY|SIGNING_?KEY|ENCRYPTION_?KEY|MASTER_?KEY|CLIENT_?SECRET|JWT)$",
    re.I,
)
REFERENCE_SUFFIX = re.compile(r"_(FILE|PATH|DIR|FILENAME|LOCATION)$", re.I)
SECRET_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("a JWT", re.compile(r"^eyJ[\w-]+\.eyJ[\w-]+\.[\w-]*$")),
    ("a URL with a password", re.compile(r"^[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.I)),
    ("a DigitalOcean token", re.compile(r"^do[opr]_v1_[0-9a-f]{64}$")),
    ("a Pulumi access token", re.compile(r"^pul-[0-9a-f]{40}$")),
    ("a GitHub token", re.compile(r"^(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})$")),
    ("an AWS-style access key id", re.compile(r"^(AKIA|ASIA)[0-9A-Z]{16}$")),
)

_SENTINELS = frozenset(
    {
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # pulumi.runtime.rpc.UNKNOWN (mock engine, SDK)
    }
)


class _Unknown:
    """A value the engine does not know yet (preview)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN: Any = _Unknown()


def get(obj: Any, *path: str | int) -> Any:
    """`obj[path...]`, None when absent, UNKNOWN when the engine does not know it yet."""
    cur = obj
    try:
        for key in path:
            if isinstance(cur, _Unknown) or (isinstance(cur, str) and cur in _SENTINELS):
                return UNKNOWN
            if isinstance(key, int):
                if not isinstance(cur, Sequence) or isinstance(cur, str) or key >= len(cur):
                    return None
            elif not isinstance(cur, Mapping) or key not in cur:
                return None
            cur = cur[key]
    except UnknownValueError:
        return UNKNOWN
    if isinstance(cur, _Unknown) or (isinstance(cur, str) and cur in _SENTINELS):
        return UNKNOWN
    return cur


def items(obj: Any) -> list[Any]:
    """Elements of a list property (empty when absent or unknown)."""
    if isinstance(obj, str) or not isinstance(obj, Sequence):
        return []
    out = []
    for i in range(len(obj)):
        value = get(obj, i)
        if value is not None and value is not UNKNOWN:
            out.append(value)
    return out


def known(value: Any) -> bool:
    return value is not None and value is not UNKNOWN


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str) or not known(value):
        return None
    try:
        return float(value)
    except ValueError:
        return None


# -- images-pinned ---------------------------------------------------------------------------------


def image_pin_problem(ref: str) -> str | None:
    """Why `ref` is not pinned to an immutable release, or None when it is (`policy.image_ref`, the
    rule the stack configuration applies too)."""
    if DIGEST_RE.fullmatch(ref):
        return None  # an image id (docker.RemoteImage.image_id)
    return pin_problem(ref)


def _image_refs(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, Any]]:
    if resource_type == SERVICE:
        return [("taskSpec.containerSpec.image", get(props, "taskSpec", "containerSpec", "image"))]
    if resource_type == CONTAINER:
        return [("image", get(props, "image"))]
    if resource_type == REMOTE_IMAGE:
        return [("name", get(props, "name"))]
    return []


def images_pinned(resource_type: str, props: Mapping[str, Any], environment: str | None = None) -> list[str]:
    """Every image is a version tag or a digest: `latest` and friends change under a running stack."""
    out = []
    for where, ref in _image_refs(resource_type, props):
        if ref is UNKNOWN:
            continue
        if not isinstance(ref, str) or not ref.strip():
            out.append(f"{where}: no image reference")
            continue
        problem = image_pin_problem(ref.strip())
        if problem:
            out.append(f"{where}: {problem}")
    return out


# -- no-secret-env-values --------------------------------------------------------------------------


def _env_pairs(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(where, name, value) of each environment variable of a service or container."""
    if resource_type == SERVICE:
        env = get(props, "taskSpec", "containerSpec", "env")
        if isinstance(env, Mapping):
            return [(f"taskSpec.containerSpec.env.{k}", str(k), get(env, k)) for k in env]
    if resource_type == CONTAINER:
        pairs = []
        for i, entry in enumerate(items(get(props, "envs"))):
            if isinstance(entry, str):
                name, _, value = entry.partition("=")
                pairs.append((f"envs[{i}] ({name})", name, value))
        return pairs
    return []


def secret_env_problem(name: str, value: Any) -> str | None:
    """Why NAME=value looks like a credential carried in the environment, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for what, pattern in SECRET_VALUES:
        if pattern.search(text):
            return f"value looks like {what}"
    if REFERENCE_SUFFIX.search(name) or not SECRET_NAME.search(name):
        return None
    if text.startswith(("/", "./", "file://")) or text.lower() in ("true", "false"):
        return None  # a path to a mounted secret, or a switch
    return "name says it holds a credential and it has a literal value"


def no_secret_env_values(resource_type: str, props: Mapping[str, Any], environment: str | None = None) -> list[str]:
    """Credentials reach containers as Swarm secrets (files), never as environment variables:
    env shows up in `docker inspect`, `docker service inspect`, crash dumps and child processes."""
    out = []
    for where, name, value in _env_pairs(resource_type, props):
        problem = secret_env_problem(name, value)
        if problem:
            out.append(f"{where}: {problem}: deliver it as a Swarm secret and point *_FILE at /run/secrets/<name>")
    return out


# -- stateful-data-not-on-rclone -------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    target: str
    source: str | None
    driver: str | None
    read_only: bool


def mounts_of(resource_type: str, props: Mapping[str, Any]) -> list[Mount]:
    """Volume mounts of a service (`mounts`) or container (`mounts`, `volumes`), known parts only."""
    found: list[Mount] = []
    spec = get(props, "taskSpec", "containerSpec") if resource_type == SERVICE else props
    if resource_type not in (SERVICE, CONTAINER) or not isinstance(spec, Mapping):
        return found
    for m in items(get(spec, "mounts")):
        target = get(m, "target")
        if not isinstance(target, str) or get(m, "type") not in (None, "volume"):
            continue
        source, driver = get(m, "source"), get(m, "volumeOptions", "driverName")
        found.append(
            Mount(
                target,
                source if isinstance(source, str) else None,
                driver if isinstance(driver, str) else None,
                get(m, "readOnly") is True,
            )
        )
    if resource_type == CONTAINER:
        for v in items(get(props, "volumes")):
            target, source = get(v, "containerPath"), get(v, "volumeName")
            if isinstance(target, str) and isinstance(source, str):
                found.append(Mount(target, source, None, get(v, "readOnly") is True))
    return found


def _stateful_paths(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    paths = list(STATEFUL_PATHS)
    for _, name, value in _env_pairs(resource_type, props):
        if isinstance(value, str) and value.startswith("/"):
            if DATA_DIR_ENV.match(name):
                paths.append(value.rstrip("/"))
            elif DB_FILE.search(value):
                paths.append(value.rsplit("/", 1)[0] or "/")
    return paths


def _overlaps(target: str, path: str) -> bool:
    """The mount is, is inside, or contains the stateful path (a parent needs depth >= 2, so a
    mount at /var/lib counts for /var/lib/postgresql but one at /data does not count for /data/db)."""
    t, p = target.rstrip("/") or "/", path.rstrip("/") or "/"
    if t == p or t.startswith(p + "/"):
        return True
    return p.startswith(t + "/") and t.count("/") >= 2


def stateful_data_not_on_rclone(
    resource_type: str,
    props: Mapping[str, Any],
    environment: str | None = None,
    rclone_volumes: frozenset[str] = frozenset(),
) -> list[str]:
    """Databases and datastores keep their live files on node-local volumes; rclone volumes hold
    whole files written then closed (backups, archives). `rclone_volumes`: names of docker.Volume
    resources created with the rclone driver (the stack-level check passes them)."""
    out = []
    paths = _stateful_paths(resource_type, props)
    for m in mounts_of(resource_type, props):
        on_rclone = m.driver == "rclone" or (m.source is not None and m.source in rclone_volumes)
        if not on_rclone:
            continue
        hit = next((p for p in paths if _overlaps(m.target, p)), None)
        if hit is not None:
            out.append(
                f"mount {m.target!r} is an rclone volume but holds live database/datastore files ({hit}): "
                "use a node-local volume and back it up to the bucket instead"
            )
    return out


def rclone_volume_names(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> frozenset[str]:
    """Names of docker.Volume resources that use the rclone driver."""
    names = set()
    for resource_type, props in resources:
        if resource_type == VOLUME and get(props, "driver") == "rclone" and isinstance(get(props, "name"), str):
            names.add(get(props, "name"))
    return frozenset(names)


# -- spaces-buckets-private-versioned --------------------------------------------------------------


def _public_principal(statement: Any) -> bool:
    principal = statement.get("Principal") if isinstance(statement, dict) else None
    if principal == "*":
        return True
    if isinstance(principal, dict):
        aws = principal.get("AWS")
        return aws == "*" or (isinstance(aws, list) and "*" in aws)
    return False


def spaces_buckets_private_versioned(
    resource_type: str, props: Mapping[str, Any], environment: str | None = None
) -> list[str]:
    """Buckets hold backups and PKI files: never public, and versioned so an overwrite or a
    ransomware-style delete leaves the previous object recoverable."""
    out = []
    if resource_type == BUCKET:
        acl = get(props, "acl")
        if known(acl) and acl != "private":
            out.append(f"acl: {acl!r} makes the bucket's objects public: use 'private' (the default)")
        enabled = get(props, "versioning", "enabled")
        if enabled is not UNKNOWN and get(props, "versioning") is not UNKNOWN and enabled is not True:
            out.append("versioning.enabled: must be true (set versioning={'enabled': True})")
    elif resource_type == BUCKET_OBJECT:
        acl = get(props, "acl")
        if known(acl) and acl != "private":
            out.append(f"acl: {acl!r} makes this object public: use 'private'")
    elif resource_type == BUCKET_POLICY:
        text = get(props, "policy")
        if isinstance(text, str):
            try:
                doc = json.loads(text)
            except json.JSONDecodeError:
                return ["policy: not valid JSON"]
            statements = doc.get("Statement", []) if isinstance(doc, dict) else []
            if isinstance(statements, dict):
                statements = [statements]
            for s in statements:
                if isinstance(s, dict) and s.get("Effect") == "Allow" and _public_principal(s):
                    out.append(f"policy: statement {s.get('Sid', '(no Sid)')!r} allows anyone ('*'): remove it")
    return out


# -- healthchecks-present --------------------------------------------------------------------------


def healthchecks_present(resource_type: str, props: Mapping[str, Any], environment: str | None = None) -> list[str]:
    """Every long-running workload has a healthcheck: `converge_config` waits on it, Swarm
    restarts unhealthy tasks, and a rollback needs a signal. One-shot containers
    (`mustRun: false`) are exempt."""
    if resource_type == SERVICE:
        where, check = "taskSpec.containerSpec.healthcheck", get(props, "taskSpec", "containerSpec", "healthcheck")
    elif resource_type == CONTAINER:
        if get(props, "mustRun") is False:
            return []
        where, check = "healthcheck", get(props, "healthcheck")
    else:
        return []
    if check is UNKNOWN:
        return []
    tests = get(check, "tests") if isinstance(check, Mapping) else None
    if tests is UNKNOWN:
        return []
    words = [t for t in items(tests) if isinstance(t, str)]
    if not words:
        return [f"{where}: missing: add tests=['CMD', ...] (or CMD-SHELL) with interval/timeout/retries"]
    if words[0].upper() == "NONE":
        return [f"{where}: disabled (NONE): add a real check"]
    if words[0] not in ("CMD", "CMD-SHELL") or len(words) < 2:
        return [f"{where}.tests: must be ['CMD', exe, args...] or ['CMD-SHELL', command], got {words!r}"]
    return []


# -- resource-limits-in-prod -----------------------------------------------------------------------


def resource_limits_in_prod(resource_type: str, props: Mapping[str, Any], environment: str | None = None) -> list[str]:
    """In prod every workload has a memory limit (a leak must not OOM the node and its
    neighbours); Swarm services also a CPU limit. `environment` None (unknown) counts as prod."""
    if environment == "dev":
        return []
    out = []
    if resource_type == SERVICE:
        limits = get(props, "taskSpec", "resources", "limits")
        if limits is UNKNOWN:
            return []
        memory, cpus = get(limits, "memoryBytes"), get(limits, "nanoCpus")
        if memory is not UNKNOWN and not (_number(memory) or 0) > 0:
            out.append("taskSpec.resources.limits.memoryBytes: set a memory limit in prod")
        if cpus is not UNKNOWN and not (_number(cpus) or 0) > 0:
            out.append("taskSpec.resources.limits.nanoCpus: set a CPU limit in prod")
    elif resource_type == CONTAINER and get(props, "mustRun") is not False:
        memory = get(props, "memory")
        if memory is not UNKNOWN and not (_number(memory) or 0) > 0:
            out.append("memory: set a memory limit (MB) in prod")
    return out


# -- wiring ----------------------------------------------------------------------------------------

Rule = Callable[[str, Mapping[str, Any], str | None], list[str]]


@dataclass(frozen=True)
class RuleSpec:
    name: str
    description: str
    check: Rule


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "images-pinned", "Images are pinned to a full release (major.minor.patch) or a digest.", images_pinned
    ),
    RuleSpec(
        "no-secret-env-values",
        "No credential in environment variables; secrets are Swarm secrets mounted as files.",
        no_secret_env_values,
    ),
    RuleSpec(
        "stateful-data-not-on-rclone",
        "Database and datastore directories are on node-local volumes, not rclone (object storage) volumes.",
        stateful_data_not_on_rclone,
    ),
    RuleSpec(
        "spaces-buckets-private-versioned",
        "Spaces buckets are private and versioned; no public objects or bucket policies.",
        spaces_buckets_private_versioned,
    ),
    RuleSpec(
        "healthchecks-present", "Every long-running service and container has a healthcheck.", healthchecks_present
    ),
    RuleSpec(
        "resource-limits-in-prod", "In prod every service and container has resource limits.", resource_limits_in_prod
    ),
)


def check_resource(resource_type: str, props: Mapping[str, Any], environment: str | None) -> dict[str, list[str]]:
    """All rules against one resource: {rule name: messages} for the rules it violates."""
    found = {r.name: r.check(resource_type, props, environment) for r in RULES}
    return {name: msgs for name, msgs in found.items() if msgs}


def check_stack(
    resources: Sequence[tuple[str, str, Mapping[str, Any]]], environment: str | None
) -> list[tuple[str, str, str]]:
    """Every rule against (urn, type, props) triples, plus the cross-resource rclone check.

    Returns (rule, urn, message) for each violation: what the pack reports during `pulumi up`.
    """
    out = [
        (rule, urn, msg)
        for urn, rtype, props in resources
        for rule, msgs in check_resource(rtype, props, environment).items()
        for msg in msgs
    ]
    out.extend(("stateful-data-not-on-rclone", urn, msg) for urn, msg in rclone_named_volume_violations(resources))
    return out


def rclone_named_volume_violations(resources: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[tuple[str, str]]:
    """Stateful mounts that reach an rclone docker.Volume by name (invisible to a per-resource check)."""
    names = rclone_volume_names((t, p) for _, t, p in resources)
    if not names:
        return []
    out = []
    for urn, rtype, props in resources:
        direct = set(stateful_data_not_on_rclone(rtype, props))
        for msg in stateful_data_not_on_rclone(rtype, props, rclone_volumes=names):
            if msg not in direct:
                out.append((urn, msg))
    return out


def current_environment(policy_config: Mapping[str, Any] | None = None) -> str | None:
    """dev or prod, for rules that differ: the pack's `environment` config, else the stack's
    `identity-platform:environment`, else the stack name; None when nothing tells (treated as prod)."""
    if policy_config and isinstance(policy_config.get("environment"), str):
        return str(policy_config["environment"])
    try:
        import pulumi

        value = pulumi.Config(PROJECT).get("environment")
    except Exception:  # noqa: BLE001 - no engine settings (unit tests, older CLIs): fall through
        value = None
    if value:
        return value
    stack = os.environ.get("PULUMI_STACK", "")
    return stack if stack in ("dev", "prod") else None


# `--policy-pack-config` may pin the environment: {"resource-limits-in-prod": {"environment": "prod"}}.
ENVIRONMENT_SCHEMA = PolicyConfigSchema(properties={"environment": {"type": "string", "enum": ["dev", "prod"]}})


def _resource_policy(spec: RuleSpec) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        env = current_environment(args.get_config())
        for message in spec.check(args.resource_type, args.props, env):
            report_violation(f"{args.name}: {message}", None)

    return ResourceValidationPolicy(
        name=spec.name,
        description=spec.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=ENVIRONMENT_SCHEMA if spec.check is resource_limits_in_prod else None,
    )


def _rclone_stack_policy() -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        triples = [(r.urn, r.resource_type, r.props) for r in args.resources]
        for urn, message in rclone_named_volume_violations(triples):
            report_violation(message, urn)

    return StackValidationPolicy(
        name="stateful-data-not-on-named-rclone-volumes",
        description="Stateful mounts do not reach an rclone docker.Volume by name.",
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def policies() -> list[Policy]:
    """The pack's policies (resource rules, then the stack-level rclone check)."""
    return [*(_resource_policy(spec) for spec in RULES), _rclone_stack_policy()]
