"""Open a stack of this project through the Automation API, the same way `scripts/up` does.

The program is run as a *local* program (`LocalWorkspace` with `work_dir` = the project root),
never inline: the dynamic providers live in importable modules, and inline programs cannot load
them (pulumi/pulumi#7960). Conventions shared with `scripts/up`:

- backend: `PULUMI_BACKEND_URL` when set, else `backend.url` of `Pulumi.yaml`, else the file backend
  `file://<root>/.pulumi-state` — except for a prod stack, which is refused rather than given a state
  file in the working copy (`--local-state` chooses that file backend on purpose);
- dev on that default backend gets an empty secrets passphrase unless one is set;
- a stack may be named as Pulumi names it, `stack`, `org/stack` or `org/identity-platform/stack`:
  its file is `Pulumi.<stack>.yaml` either way;
- the dynamic-provider host runs the project's `.venv` interpreter (`PULUMI_PYTHON_CMD`).

Before the engine runs, the stack file is read and validated by the program's own loader
(`stack_config.parse_stack_values`, the function `stack_config.load()` runs at preview): every key
of the project namespace, typos and secret keys included, so a bad value fails here with the same
lines `pulumi preview` would print, but without starting the engine. A stack file that imports Pulumi
ESC environments (`environment:`) gets its config from them too, which only Pulumi Cloud can open:
for it, only what the file alone decides is checked here (`esc_problems`). What this module does not do:
install the CLI (it tells you how), or talk to any cloud API itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

import stack_config
from ops.errors import ExitCode, OpsError
from stack_config.base import join_lines
from stack_config.secrets import SECRET_KEYS

# The checkout this package lives in (an editable install points here too).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROJECT_ENV = "IDENTITY_PLATFORM_DIR"
STATE_DIR = ".pulumi-state"
INSTALL_HINT = "install it: curl -fsSL https://get.pulumi.com | sh   (or: brew install pulumi/tap/pulumi)"
# DIY backends (no Pulumi Cloud): secrets are encrypted with a passphrase unless the stack says otherwise.
_DIY_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "postgres://")


def is_project(path: Path) -> bool:
    """A directory holding this project's Pulumi.yaml (`name: identity-platform`)."""
    try:
        doc = yaml.safe_load((path / "Pulumi.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and doc.get("name") == stack_config.PROJECT


def find_project(explicit: str | None, environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """The project directory `ops` works on, so the console script runs from anywhere.

    In order: `explicit` (`--project-dir`), `$IDENTITY_PLATFORM_DIR`, the current directory or
    the nearest parent holding this project's Pulumi.yaml (as `pulumi` itself looks), the checkout
    the installed package lives in. A directory named explicitly must be the project: it is never
    silently replaced by the next candidate. Exit 3 when none is found."""
    env = os.environ if environ is None else environ
    for given, source in ((explicit, "--project-dir"), (env.get(PROJECT_ENV), f"${PROJECT_ENV}")):
        if given:
            path = Path(given).expanduser().resolve()
            if not is_project(path):
                raise OpsError(
                    ExitCode.CONFIG_ERROR,
                    f"{source} {given}: no Pulumi.yaml of project {stack_config.PROJECT!r} there",
                    "name the directory of your identity-platform checkout (the one with Pulumi.yaml)",
                    kind="project_not_found",
                )
            return path
    start = (cwd or Path.cwd()).resolve()
    for path in (start, *start.parents):
        if is_project(path):
            return path
    if is_project(PROJECT_ROOT):
        return PROJECT_ROOT
    raise OpsError(
        ExitCode.CONFIG_ERROR,
        f"no {stack_config.PROJECT} project here ({start}) or in any parent, and the installed package is not "
        "in a checkout",
        f"run from the checkout, or pass --project-dir DIR, or export {PROJECT_ENV}=DIR",
        kind="project_not_found",
    )


def stack_names(root: Path = PROJECT_ROOT) -> list[str]:
    """Stacks that have a `Pulumi.<stack>.yaml` file."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def short_name(stack: str) -> str:
    """The stack part of a stack name as Pulumi accepts it: `stack`, `org/stack` or
    `org/<project>/stack` (the file of each is `Pulumi.<stack>.yaml`). Another project's name, or
    more segments, is a usage error (exit 64): the CLI would refuse it against this project."""
    parts = stack.split("/")
    if len(parts) > 3 or not all(parts):
        raise OpsError(
            ExitCode.USAGE,
            f"{stack!r} is not a stack name",
            "name it `stack`, `org/stack` or `org/identity-platform/stack`",
            kind="stack_name_invalid",
        )
    if len(parts) == 3 and parts[1] != stack_config.PROJECT:
        raise OpsError(
            ExitCode.USAGE,
            f"stack {stack!r} belongs to project {parts[1]!r}, not {stack_config.PROJECT!r}",
            f"name it {parts[0]}/{stack_config.PROJECT}/{parts[2]}",
            kind="stack_name_invalid",
        )
    return parts[-1]


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    """`<root>/Pulumi.<stack>.yaml` for any form of the stack's name (`short_name`)."""
    return root / f"Pulumi.{short_name(stack)}.yaml"


def _stack_file(stack: str, root: Path) -> dict[str, Any]:
    path = stack_file(stack, root)
    if not path.is_file():
        raise OpsError(
            ExitCode.CONFIG_ERROR,
            f"no stack file {path.name} in {root}",
            f"use one of: {', '.join(stack_names(root)) or '(none)'}; or create it with `pulumi stack init {stack}`"
            " (or pass --project-dir to the project that has it)",
            kind="stack_file_missing",
        )
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise OpsError(ExitCode.CONFIG_ERROR, f"{path.name} is not valid YAML: {e}", kind="config_invalid") from None
    if not isinstance(doc, dict):
        raise OpsError(
            ExitCode.CONFIG_ERROR, f"{path.name}: expected a mapping at the top level", kind="config_invalid"
        )
    return doc


def _encode(value: Any) -> str:
    """A stack-file value as the CLI hands it to the program: strings as they are, booleans and
    numbers as their YAML text, objects and lists JSON-encoded."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def stack_values(stack: str, root: Path = PROJECT_ROOT) -> tuple[dict[str, str | None], set[str]]:
    """The config the CLI would hand the program for `stack`, and the names of its secret keys.

    `Pulumi.yaml` defaults first, then every key of the stack file (a key without a namespace is
    the project's). A `secure:` value is present and secret, but this module has no passphrase:
    its value is None, which `stack_config.parse_stack_values` treats as "set, not readable".
    """
    project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    name = str(project.get("name", stack_config.PROJECT))
    values: dict[str, str | None] = {}
    secret: set[str] = set()
    for key, decl in (project.get("config") or {}).items():
        if isinstance(decl, dict) and "default" in decl and decl["default"] is not None:
            values[str(key) if ":" in str(key) else f"{name}:{key}"] = _encode(decl["default"])
    for key, value in ((_stack_file(stack, root).get("config")) or {}).items():
        full = str(key) if ":" in str(key) else f"{name}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[full] = None
            secret.add(full)
        elif value is not None:
            values[full] = _encode(value)
    return values, secret


def raw_config(stack: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The model's raw config for `stack` (camelCase keys, objects decoded), as the program reads
    it: `stack_values` through `stack_config.stack_raw`; secrets and other namespaces left out."""
    return stack_config.stack_raw(stack_values(stack, root)[0])[0]


def esc_environments(stack: str, root: Path = PROJECT_ROOT) -> list[str]:
    """The Pulumi ESC environments the stack file imports: `environment:` as a list, or in its
    `imports:` form. Empty when it imports none."""
    env = _stack_file(stack, root).get("environment")
    if isinstance(env, dict):
        env = env.get("imports")
    if isinstance(env, str):
        return [env]
    return [str(e) for e in env] if isinstance(env, list) else []


def esc_problems(values: dict[str, str | None], secret: set[str]) -> list[str]:
    """What the stack file alone decides when ESC environments supply the rest of its config.

    Pulumi Cloud opens the environments when the CLI runs (`pulumi config --open` needs a login
    there), and their `pulumiConfig` fills any key the file does not set, so a missing key or field,
    and every rule that spans keys, can only be judged by the program at preview, on the merged
    config. What stays wrong whatever the environments hold, and so is checked here: a key the
    program does not read (a typo), an object that does not decode, a secret key in plain text."""
    lines = stack_config.stack_raw(values)[2]
    for key in SECRET_KEYS:
        full = f"{stack_config.PROJECT}:{key}"
        if full in values and full not in secret:
            lines.append(
                f"{full}: set in plain text; it is a secret (fix: `pulumi config rm {key}`, then "
                f"`pulumi config set --secret {key}`, or keep it in the ESC environment as a secret)"
            )
    return lines


def validate_stack_config(stack: str, root: Path = PROJECT_ROOT) -> stack_config.StackConfig | None:
    """Validate `Pulumi.<stack>.yaml` exactly as the program does at `pulumi preview`
    (`stack_config.parse_stack_values`: every key, the secret keys, one line per problem);
    ConfigError becomes exit 3. A stack that imports ESC environments is checked by `esc_problems`
    only and gives None: its full config exists only once Pulumi Cloud opens them."""
    values, secret = stack_values(stack, root)
    if esc_environments(stack, root):
        lines = esc_problems(values, secret)
        if lines:
            raise OpsError(ExitCode.CONFIG_ERROR, join_lines(lines), kind="config_invalid")
        return None
    try:
        return stack_config.parse_stack_values(values, secret)
    except stack_config.ConfigError as e:
        raise OpsError(ExitCode.CONFIG_ERROR, str(e), kind="config_invalid") from None


def is_prod(stack: str, root: Path = PROJECT_ROOT) -> bool:
    """A prod stack: its file says environment prod, or it imports ESC environments and does not
    say (they may say prod; the safe side). A missing or unreadable file is left to the operation."""
    try:
        environment = raw_config(stack, root).get("environment")
        return environment == "prod" or (environment is None and bool(esc_environments(stack, root)))
    except (OpsError, OSError, ValueError):
        return False


def local_backend(root: Path = PROJECT_ROOT) -> str:
    """The project's own file backend, `file://<root>/.pulumi-state` (dev's default)."""
    return f"file://{root / STATE_DIR}"


def chosen_backend(root: Path = PROJECT_ROOT, environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(URL, where it was chosen) when the operator chose a backend: `PULUMI_BACKEND_URL`, else
    `backend.url` in Pulumi.yaml (the CLI's own order); None when neither is set."""
    env = os.environ if environ is None else environ
    url = env.get("PULUMI_BACKEND_URL", "").strip()
    if url:
        return url, "PULUMI_BACKEND_URL"
    try:
        project = yaml.safe_load((root / "Pulumi.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    backend = project.get("backend") if isinstance(project, dict) else None
    url = str(backend.get("url") or "").strip() if isinstance(backend, dict) else ""
    return (url, "backend.url in Pulumi.yaml") if url else None


def backend_url(
    root: Path = PROJECT_ROOT, environ: Mapping[str, str] | None = None, *, stack: str | None = None
) -> tuple[str, bool]:
    """(backend URL, whether it is the project's local file backend).

    With no backend chosen (`chosen_backend`), dev gets the local file backend; a prod stack
    (`is_prod`) is refused (exit 3), because its state — every secret of the stack, encrypted,
    and the only record of what exists — would otherwise live in one working copy, silently."""
    chosen = chosen_backend(root, environ)
    if chosen is not None:
        return chosen[0], chosen[0] == local_backend(root)
    if stack is not None and is_prod(stack, root):
        raise OpsError(
            ExitCode.CONFIG_ERROR,
            f"stack {stack!r} is a prod stack and no state backend is chosen: its state would be a file in "
            f"this working copy ({root / STATE_DIR})",
            "choose one: `export PULUMI_BACKEND_URL=s3://<bucket>?endpoint=...` (or https://api.pulumi.com, "
            "or `backend: {url: ...}` in Pulumi.yaml); or keep the state in the working copy on purpose "
            "with --local-state (ops) or `./scripts/up <stack> --local-state`",
            kind="backend_not_chosen",
        )
    return local_backend(root), True


def workspace_env(
    stack: str, root: Path = PROJECT_ROOT, environ: Mapping[str, str] | None = None, *, secrets: bool = True
) -> dict[str, str]:
    """Extra environment for every CLI call; never contains a user-provided secret.

    `LocalWorkspace` prints its `env_vars` in its repr, so a passphrase the user set stays in the
    inherited process environment and is not copied here. With `secrets=False` (the caller only
    reads what the CLI prints masked: `stack output`, `stack export` without --show-secrets) a
    missing passphrase is not an error: the CLI opens the state without its secrets manager.
    """
    env = os.environ if environ is None else environ
    url, default = backend_url(root, env, stack=stack)
    extra = {"PULUMI_BACKEND_URL": url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    if default:
        (root / STATE_DIR).mkdir(exist_ok=True)
    has_passphrase = "PULUMI_CONFIG_PASSPHRASE" in env or "PULUMI_CONFIG_PASSPHRASE_FILE" in env
    if not has_passphrase and _needs_passphrase(stack, root, url):
        if default and short_name(stack) == "dev":
            extra["PULUMI_CONFIG_PASSPHRASE"] = ""  # dev on the local backend: nothing worth encrypting
        elif secrets:
            raise OpsError(
                ExitCode.CONFIG_ERROR,
                f"stack {stack!r} encrypts its secrets with a passphrase and none is set",
                "export PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) and re-run",
                kind="passphrase_missing",
            )
    venv_python = root / ".venv" / "bin" / "python"
    if "PULUMI_PYTHON_CMD" not in env and venv_python.exists():
        extra["PULUMI_PYTHON_CMD"] = str(venv_python)
    return extra


def _needs_passphrase(stack: str, root: Path, url: str) -> bool:
    if not url.startswith(_DIY_SCHEMES):
        return False  # Pulumi Cloud's default secrets provider needs no passphrase
    path = stack_file(stack, root)
    doc = yaml.safe_load(path.read_text()) if path.is_file() else None
    provider = str((doc or {}).get("secretsprovider", "passphrase"))
    return provider in ("passphrase", "default")


@contextmanager
def keep_stack_selection(environ: Mapping[str, str] | None = None) -> Iterator[None]:
    """Leave the operator's selected stack as it was: the Automation API runs `pulumi stack select`
    to open a stack, which would make a raw `pulumi up` after `ops status` act on ops' stack. The CLI
    keeps the selection in `$PULUMI_HOME/workspaces/<project>-<sha1 of the Pulumi.yaml path>-workspace.json`
    (`~/.pulumi` without PULUMI_HOME); this project's files there are put back as they were."""
    env = os.environ if environ is None else environ
    home = Path(env.get("PULUMI_HOME") or os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    workspaces = home / "workspaces"
    pattern = f"{stack_config.PROJECT}-*-workspace.json"

    def snapshot() -> dict[Path, bytes]:
        try:
            return {p: p.read_bytes() for p in workspaces.glob(pattern)}
        except OSError:
            return {}

    before = snapshot()
    try:
        yield
    finally:
        for path in set(snapshot()) - set(before):
            path.unlink(missing_ok=True)
        for path, data in before.items():
            try:
                if not path.is_file() or path.read_bytes() != data:
                    path.write_bytes(data)
            except OSError:
                pass  # never fail the command over the selection


def pulumi_command() -> auto.PulumiCommand:
    """The Pulumi CLI on PATH, checked for a version the SDK supports; exit 2 otherwise."""
    try:
        return auto.PulumiCommand()
    except FileNotFoundError:
        raise OpsError(
            ExitCode.CLI_MISSING, "the Pulumi CLI is not installed (no `pulumi` on PATH)", INSTALL_HINT
        ) from None
    except auto.InvalidVersionError as e:
        raise OpsError(ExitCode.CLI_MISSING, f"unusable Pulumi CLI: {e}", INSTALL_HINT) from None
    except OSError as e:
        raise OpsError(ExitCode.CLI_MISSING, f"cannot run the Pulumi CLI: {e}", INSTALL_HINT) from None


def open_stack(
    stack: str,
    *,
    create: bool = True,
    root: Path = PROJECT_ROOT,
    environ: Mapping[str, str] | None = None,
    command: auto.PulumiCommand | None = None,
    secrets: bool = True,
) -> auto.Stack:
    """Select (or, with `create`, create) `stack` as a local program rooted at `root`; with
    `secrets=False` for a caller that only runs `read_masked` on it (no passphrase needed)."""
    cli = command or pulumi_command()  # before anything touches the disk
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(root), env_vars=workspace_env(stack, root, environ, secrets=secrets), pulumi_command=cli
    )
    try:
        if create:
            return auto.create_or_select_stack(stack, work_dir=str(root), opts=opts)
        return auto.select_stack(stack, work_dir=str(root), opts=opts)
    except auto.StackNotFoundError:
        url = (opts.env_vars or {}).get("PULUMI_BACKEND_URL", "")
        raise OpsError(
            ExitCode.STACK_NOT_FOUND,
            f"stack {stack!r} does not exist in {url}",
            f"deploy it first: python -m ops up --stack {stack} --yes (or set PULUMI_BACKEND_URL to its backend)",
        ) from None
    except auto.CommandError as e:
        raise classify_command_error(e) from None


def read_masked(st: auto.Stack, *args: str) -> Any:
    """The JSON one read-only command prints about the stack with its secrets masked (`stack output
    --json`, `stack export`): the Automation API's own readers always add --show-secrets, which makes
    the CLI build the secrets manager and so ask for the passphrase."""
    ws = st.workspace
    env = {**({"PULUMI_HOME": ws.pulumi_home} if ws.pulumi_home else {}), **ws.env_vars}
    try:
        result = ws.pulumi_command.run([*args, "--stack", st.name], str(ws.work_dir), env)
    except auto.CommandError as e:
        raise classify_command_error(e) from None
    return json.loads(result.stdout)


# What the CLI says when it cannot open the backend or log in to it, or cannot read the passphrase
# file: configuration the operator fixes (exit 3), not a failed operation.
BACKEND_PROBLEMS = (
    "unable to open state directory",
    "unable to open bucket",
    "pulumi_access_token must be set",
    "problem logging in",
    "failed to log in",
    "could not log in",
    "getting user info",
    "pulumi_config_passphrase_file",
)


def classify_command_error(err: auto.CommandError) -> OpsError:
    """Map an Automation API CommandError to an exit code and the CLI's own error line."""
    line = cli_error_line(err)
    if isinstance(err, auto.StackNotFoundError):
        return OpsError(ExitCode.STACK_NOT_FOUND, line or "stack not found")
    if isinstance(err, auto.ConcurrentUpdateError):
        return OpsError(
            ExitCode.STACK_LOCKED,
            line or "the stack is locked by another update",
            "wait for the other update to finish; if it crashed, release the lock: Pulumi Cloud "
            "`pulumi cancel --stack <name>`, file/S3 backends: delete the stale file under <backend>/.pulumi/locks/",
        )
    lowered = line.lower()
    if "passphrase" in lowered and ("incorrect" in lowered or "must be set" in lowered):
        return OpsError(
            ExitCode.CONFIG_ERROR,
            line or "wrong or missing secrets passphrase",
            "set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to the stack's passphrase",
            kind="passphrase_invalid",
        )
    if any(p in lowered for p in BACKEND_PROBLEMS):
        return OpsError(
            ExitCode.CONFIG_ERROR,
            line,
            "check PULUMI_BACKEND_URL (or backend.url in Pulumi.yaml), its credentials "
            "(PULUMI_ACCESS_TOKEN for Pulumi Cloud) and PULUMI_CONFIG_PASSPHRASE_FILE",
            kind="backend_unavailable",
        )
    return OpsError(ExitCode.FAILED, line or "the Pulumi CLI failed", kind="failed")


def cli_error_line(err: auto.CommandError) -> str:
    """The CLI's own error: the last `error:` line it wrote to stderr (else to stdout), else the last
    line of its stderr that is not a warning. The SDK keeps only the text
    `"\\n code: N\\n stdout: ...\\n stderr: ..."` of its CommandResult: the streams are split out of it."""
    head, sep, stderr = str(err).partition("\n stderr: ")
    stdout = head.partition("\n stdout: ")[2] if sep else str(err)
    for stream in (stderr, stdout):
        errors = [ln.strip() for ln in stream.splitlines() if ln.strip().startswith("error:")]
        if errors:
            return errors[-1]
    others = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.strip().startswith("warning:")]
    return others[-1] if others else ""
