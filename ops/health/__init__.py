"""The health of one deployed stack: `python -m ops status --stack X [--json]` and its model.

Inputs (`ops.health.inputs.load_target`): the stack's outputs (`StackOutputs.from_stack`, secrets
included, so it can log in), its config as the CLI resolves it (`stack_config` model: platform,
workloads, transports, CA bundles; platform external's admin passwords are its secret keys), and
on platform swarm the controller's CA and the service names from the state. Then every probe of
`ops.health.checks.PROBES` runs in its own thread; each network call has `--timeout` (10 s), and a
probe that fails, hangs up to its timeout or crashes becomes failing rows, never a stopped run.

Rows (component / check: what makes it ok, warn or fail):

- spire / server ready: the Entry API answers a full listing through the stack's own
  `spire.transport` (external: the admin socket over gRPC, or docker/kubectl exec; swarm: docker
  exec into the `spire-server` task, as `pulumi up` reaches it). fail when it does not answer.
- spire / entries: entries whose id carries this stack's ownership prefix against
  `spireEntryIds` and the entries the Kubernetes topologies register themselves (each cluster's
  node alias; nested enterprise: the downstream server's entry and its alias upstream), whose ids
  follow from their triples: fail when one of the program's is missing, warn when the server
  holds owned entries the stack does not know. On the enterprise topology each cluster's server
  has its own pair, named after the cluster (`hq server ready`, `hq entries`).
- keycloak / health: `/health/ready` (`UP`): `--keycloak-health-url`, else `<keycloakUrl>/health/ready`
  (external) and port 9000 of that host (Keycloak's management interface). On swarm the stack does
  not publish 9000: the `keycloak` service's Swarm healthcheck (which probes it) stands in. warn
  when no endpoint is exposed, fail when one answers DOWN or fails TLS.
- keycloak / issuer: the realm's discovery document names `keycloakIssuerUrl` (fail otherwise:
  tokens would carry an `iss` the Ziti signer rejects). keycloak / jwks: `keycloakJwksUrl` serves
  at least one key. keycloak / realm (admin API): the realm has the id the stack made and is
  enabled; the Ziti client `keycloakZitiClientId` exists and is enabled.
- ziti / health: `/health-checks` (the controller's `health-checks` web binding) with the
  controller's CA: fail unless `healthy`. A controller without that binding (the default config
  of `ziti create config controller`, so the one this program deploys and the pinned one the tests
  run) answers 404: then ok when its management API answers `/edge/management/v1/version`; its
  database is read by the rows below. (`/.well-known/health-check` is not a path of the 1.7.2 controller.)
- ziti / ca: `zitiCaId` registered, verified, authentication enabled, fingerprint
  `zitiCaFingerprint`. ziti / ext-jwt signer: present, enabled, issuer = `keycloakIssuerUrl`.
  ziti / auth policy: present. ziti / identities: every id of `zitiIdentityIds` and
  `zitiUserIdentityIds` exists. ziti / edge router (when the stack made one): warn unless online.
- certificates / root CA (`spireBundlePem`) and / controller TLS (the certificate the controller
  serves; read without trusting it, only its dates): fail when expired or not yet valid, warn within
  `--expiry-warning-days` (30).
- swarm / engine and swarm / <service> (platform swarm): each service the stack deployed, running
  against desired tasks on the manager's engine (`ops.health.swarm`, proven only against a fake
  Engine API). fail at 0 running, warn when partly running or scaled to 0.
- kubernetes / `<cluster> API server` and `<cluster> <namespace>/<name>` (platform kubernetes): each
  cluster's API server through the stack's kubeconfig and context, and the readiness of every
  workload the program made there (StatefulSets, Deployments, DaemonSets: ready against desired)
  and of those the topology must have (SPIRE server and datastore, agents, CSI driver, Keycloak and
  its CloudNativePG Cluster, Ziti controller and router: fail when not found); see
  `ops.health.kubernetes`. Proven against a real kube-apiserver with status written by the test
  (no nodes or controllers run there). Nested enterprise stacks also get
  `<upstream> spire-server/spire-server-downstream-kubeconfig`: warn when that Secret is missing.

Score (0-100): a row is worth 1 (ok), 1/2 (warn) or 0 (fail); a component's score is the mean of
its rows; the stack's is the mean of its components' scores (each component weighs the same,
however many rows it has), as a whole percentage rounded down, so 100 means every row ok.

Exit code: 0 when no row fails (warnings allowed), 9 (`ExitCode.UNHEALTHY`) when one does; with
`--strict` a warning is unhealthy too. A stack that cannot be read exits as the other commands do
(3 config, 4 not deployed, 8 outputs contract, ...).

`--json` prints one document (stable: new keys may be added, none renamed or removed; see
`StatusReport.as_json`):

    {"command": "status", "stack": "prod", "ok": true, "exitCode": 0, "schemaVersion": 1,
     "platform": "swarm", "checkedAt": "2026-01-01T00:00:00Z", "status": "ok|warn|fail",
     "healthy": true, "score": 100, "counts": {"ok": 15, "warn": 0, "fail": 0},
     "components": {"spire": {"status": "ok", "score": 100}, ...},
     "checks": [{"component": "spire", "check": "server ready", "status": "ok",
                 "detail": "...", "target": "unix:/run/spire/api.sock"}, ...]}

No secret is printed: the admin passwords and secret outputs never enter a row, URLs are shown
without user info, and every detail and target is scrubbed of every secret value the stack holds
before anything is rendered (`--json` included).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping, Sequence
from pathlib import Path

from ops.health.checks import PROBES, Context, Probe, deployed
from ops.health.inputs import Options, Target, load_target
from ops.health.model import Check, StatusReport
from ops.health.swarm import fetch as fetch_swarm
from ops.workspace import PROJECT_ROOT

__all__ = ["Check", "Options", "StatusReport", "Target", "collect", "status"]


def collect(target: Target, options: Options | None = None,
            probes: Sequence[tuple[str, str, Probe]] = PROBES, context: Context | None = None) -> StatusReport:
    """Run every probe against `target` (concurrently) and return the scrubbed report."""
    opts = options or Options()
    if context is None:
        host = target.manager_docker_host
        context = Context((lambda: fetch_swarm(host, opts.timeout)) if host else None)
    ctx = context
    rows: list[Check] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(probes)), thread_name_prefix="status") as pool:
        futures = [(component, check, pool.submit(probe, target, opts, ctx)) for component, check, probe in probes
                   if deployed(target, component)]
        for component, check, future in futures:
            try:
                rows += future.result()
            except Exception as e:  # noqa: BLE001 - one broken probe must not hide the others' rows
                rows.append(Check(component, check, "fail", f"the check itself failed: {type(e).__name__}: {e}"))
    report = StatusReport(target.stack, target.platform, tuple(rows))
    return report.redacted(target.secret_values())


def status(stack: str, options: Options | None = None, *, root: Path = PROJECT_ROOT,
           environ: Mapping[str, str] | None = None) -> StatusReport:
    """`ops status` as a function: load the stack through the Automation API, then `collect`."""
    return collect(load_target(stack, root=root, environ=environ), options)
