"""`python -m ops manifests --stack NAME --out DIR`: the Kubernetes IAM design as YAML for GitOps.

`kubernetes.iam.gitops` makes an ArgoCD ApplicationSet whose Applications sync
`<repoUrl>@<revision>:<path>/<wave>` (components/kubernetes/gitops.py). This command writes what
those paths hold, into `DIR` (commit `DIR` as `<path>` of that repository):

    DIR/applicationset.yaml      the ApplicationSet itself (for an app-of-apps parent, or kubectl)
    DIR/istio/ gateway/ cnpg/ iam/ observability/
                                 one file per object, `<kind>-<namespace>-<name>.yaml`
    DIR/SECRETS.md               the Secrets the objects expect and this command leaves out

The objects are not a second copy: the stack's configuration is validated as at preview
(`ops.workspace.validate_stack_config`), the same `iam_stack_args` the program uses build the same
`IamStack` component, evaluated in-process under Pulumi's own mock runtime (no engine, no
cluster, no state: `pulumi.runtime.set_mocks`), and each Kubernetes object's inputs, as they would
reach the pulumi-kubernetes provider, are written. `gitops.wave_of` places each one, the CNPG
operator's too: its release's CRDs, RBAC, webhook configurations and Deployment as the program
registers them (components/kubernetes/cnpg_operator.py), so git holds no chart to go stale.

Secrets are never written. Their values are pulumi-random outputs held as Pulumi secrets: in
git they would be plaintext for anyone who can read the repository. So `SECRETS.md` lists each
Secret (namespace, name, keys) and the cluster gets them from `pulumi up` of the same stack (which
also makes the ApplicationSet; ArgoCD never tracked them, so its prune leaves them alone) or from
the cluster's own secret store (a SealedSecret or an ExternalSecret of that name). An input that
still carries a Pulumi secret, or a value not known without a deployment, stops the command.

Each wave directory is this command's: files in it that the render no longer produces are removed,
so an object deleted from the program is pruned by ArgoCD too. Exit codes: 0, 3 (configuration:
no `kubernetes.iam.gitops`, a bad stack file), 64 (usage).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func, wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

import stack_config
from components.kubernetes import gitops
from ops.errors import ExitCode, OpsError
from ops.workspace import PROJECT_ROOT, validate_stack_config

APPLICATION_SET_FILE = "applicationset.yaml"
SECRETS_FILE = "SECRETS.md"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"  # noqa: S105 - a type token


class _Recorder(pmocks.Mocks):
    """Keeps every custom resource's type and inputs; answers with the inputs as state."""

    def __init__(self) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        if args.custom:
            self.resources.append((args.typ, args.name, dict(args.inputs)))
        state = dict(args.inputs)
        if args.typ == RANDOM_PASSWORD:
            # Only a Secret's key names are read (SECRETS.md); no password exists or is written.
            state["result"] = "not-rendered"
        return f"{args.name}-id", state

    def call(self, args: pmocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, []


def _evaluate(config: stack_config.StackConfig, stack: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Build `IamStack` as the program does, under Pulumi's mock runtime; what it registered."""
    from components.assembly import iam_stack_args  # the program's modules: only this command needs them
    from components.kubernetes.iam_stack import IamStack

    k8s = config.kubernetes
    assert k8s is not None and k8s.iam is not None
    args = iam_stack_args(config, k8s.iam, k8s.storage_class)
    recorder = _Recorder()
    old_settings, old_root = settings.SETTINGS, settings.ROOT.get()
    settings.ROOT.set(None)
    pmocks.set_mocks(recorder, project=stack_config.PROJECT, stack=stack, preview=False)
    try:
        def program() -> Any:
            IamStack("iam", args)
            return wait_for_rpcs()

        _sync_await(run_pulumi_func(program))
    finally:
        settings.configure(old_settings)
        settings.ROOT.set(old_root)
    return recorder.resources


def _unwrapped(value: Any) -> dict[str, Any]:
    """A Secret's data map, whether the SDK sent it as one secret or key by key (names only are read)."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        value = value.get("value")
    return dict(value) if isinstance(value, dict) else {}


def _plain(value: Any, where: str) -> Any:
    """A recorded input as YAML takes it: whole doubles as integers (the provider does the same);
    a Pulumi secret or an unknown value is refused."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) == rpc._special_secret_sig:
        raise ValueError(f"{where}: holds a Pulumi secret; it cannot be written to git")
    if value == rpc.UNKNOWN:
        raise ValueError(f"{where}: a value known only after a deployment")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


@dataclass(frozen=True)
class LeftOut:
    namespace: str
    name: str
    keys: tuple[str, ...]


@dataclass
class Rendered:
    application_set: dict[str, Any]
    waves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    secrets: list[LeftOut] = field(default_factory=list)


def render(config: stack_config.StackConfig, stack: str) -> Rendered:
    """The IAM design's objects by wave, the ApplicationSet, and the Secrets left out."""
    k8s = config.kubernetes
    if k8s is None or k8s.iam is None or k8s.iam.gitops is None:
        raise OpsError(ExitCode.CONFIG_ERROR, f"stack {stack} sets no kubernetes.iam.gitops: there is no "
                       "ApplicationSet to render for",
                       "set kubernetes.iam.gitops.repoUrl (and revision, path) in the stack file")
    application_set: dict[str, Any] | None = None
    waves: dict[str, list[dict[str, Any]]] = {a.name: [] for a in gitops.APPS}
    secrets: list[LeftOut] = []
    for type_, _name, inputs in _evaluate(config, stack):
        if not type_.startswith("kubernetes:") or type_.startswith("pulumi:providers:"):
            continue
        meta = inputs.get("metadata") or {}
        if inputs.get("kind") == "Secret":
            data = {**_unwrapped(inputs.get("data")), **_unwrapped(inputs.get("stringData"))}
            secrets.append(LeftOut(str(meta.get("namespace", "")), str(meta["name"]), tuple(sorted(data))))
            continue
        obj = _plain(inputs, f"{inputs.get('kind')} {meta.get('namespace', '')}/{meta.get('name')}")
        if obj["kind"] == "ApplicationSet":
            application_set = obj
            continue
        app = (meta.get("labels") or {}).get("app.kubernetes.io/name")
        waves[gitops.wave_of(obj["kind"], meta.get("namespace"), app)].append(obj)
    assert application_set is not None, "kubernetes.iam.gitops is set, so IamStack makes the ApplicationSet"
    # Registration order follows Output resolution, which varies run to run: SECRETS.md must not.
    return Rendered(application_set, waves, sorted(secrets, key=lambda s: (s.namespace, s.name)))


def file_name(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind'].lower()}-{meta.get('namespace') or 'cluster'}-{meta['name']}.yaml"


def _dump(obj: Mapping[str, Any]) -> str:
    """apiVersion, kind and metadata first, every other key sorted: the same objects give the same
    bytes, so a re-render changes git only where an object changed."""
    head = {k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
    ordered = head | {k: obj[k] for k in sorted(obj) if k not in head}
    return yaml.safe_dump({k: _sorted(v) for k, v in ordered.items()}, sort_keys=False, default_flow_style=False)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _secrets_text(rendered: Rendered) -> str:
    lines = ["# Secrets these manifests expect (not rendered)", "",
             "Their values are Pulumi secrets (pulumi-random), never written to git. `pulumi up` of the",
             "stack creates them; a cluster synced by ArgoCD alone needs each from its own secret store",
             "(a SealedSecret or ExternalSecret of the same name and keys). Written by `ops manifests`.", "",
             "| namespace | name | keys |", "|---|---|---|"]
    lines += [f"| {s.namespace} | {s.name} | {', '.join(s.keys)} |" for s in rendered.secrets]
    return "\n".join(lines) + "\n"


def write(rendered: Rendered, out: Path) -> list[Path]:
    """Write the directories; remove files of the wave directories the render no longer makes."""
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for wave, objects in rendered.waves.items():
        directory = out / wave
        directory.mkdir(exist_ok=True)
        names = set()
        for obj in objects:
            path = directory / file_name(obj)
            path.write_text(_dump(obj))
            names.add(path.name)
            written.append(path)
        for stale in directory.glob("*.yaml"):
            if stale.name not in names:
                stale.unlink()
    for name, text in ((APPLICATION_SET_FILE, _dump(rendered.application_set)),
                       (SECRETS_FILE, _secrets_text(rendered))):
        (out / name).write_text(text)
        written.append(out / name)
    return written


def add_parser(sub: Any) -> None:
    """Register `manifests` on the `python -m ops` subparsers."""
    p = sub.add_parser(
        "manifests",
        help="write the Kubernetes IAM objects as YAML, one directory per ArgoCD sync wave",
        description="Render kubernetes.iam's objects (the program's own, without Secrets) into the directories "
        "the ApplicationSet of kubernetes.iam.gitops syncs.",
    )
    p.add_argument("--stack", "-s", required=True, help="stack name: one of the Pulumi.<stack>.yaml files")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="the directory committed as kubernetes.iam.gitops.path of the GitOps repository")


def run(args: argparse.Namespace, out: TextIO, err: TextIO, *, root: Path = PROJECT_ROOT) -> int:
    """`python -m ops manifests ...`; returns the exit code."""
    try:
        config = validate_stack_config(args.stack, root)
        if config is None:
            raise OpsError(ExitCode.CONFIG_ERROR, f"stack {args.stack} imports ESC environments: its configuration "
                           "exists only once Pulumi Cloud opens them", "render from a stack file that holds it")
        rendered = render(config, args.stack)
        written = write(rendered, Path(args.out))
    except OpsError as e:
        print(f"error: {e.message}", file=err)
        if e.hint:
            print(f"fix: {e.hint}", file=err)
        return int(e.code)
    counts = ", ".join(f"{w} {len(o)}" for w, o in rendered.waves.items())
    print(f"wrote {len(written)} files to {args.out} ({counts}; {len(rendered.secrets)} Secrets left out, "
          f"listed in {SECRETS_FILE})", file=out)
    return 0
