"""A stand-in for the `pulumi` CLI: records every invocation and answers from recorded JSON.

Installed by `tests/ops/conftest.py` as an executable named `pulumi` in a directory put first on
PATH, which is exactly how `pulumi.automation.PulumiCommand()` finds the real CLI. It implements
the calls the Automation API 3.272 makes for the flows under test, with the CLI's observable
behaviour: `version`; `stack select --stack S` (error text "no stack named 'S' found", exit 255,
which the SDK maps to StackNotFoundError); `stack init S`; `stack output --json [--show-secrets]`
(secrets masked as "[secret]" without the flag; with it, no passphrase in the environment is the
CLI's error); `stack history --json`; and `preview`, `up`,
`refresh`, `destroy`, which print recorded engine output lines and send recorded engine events to
`--event-log` (a `tcp://` gRPC Events stream, as CLIs newer than 3.205 do, or a file otherwise).

Everything is driven by `$FAKE_PULUMI_DIR`: `scenario.json` (what to answer), `state.json` (which
stacks exist, their outputs and history; updated like a backend) and `calls.jsonl` (one line per
invocation: argv, cwd and selected environment variables).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

RECORDED_ENV = (
    "PULUMI_BACKEND_URL",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "PULUMI_PYTHON_CMD",
    "PULUMI_AUTOMATION_API",
    "PULUMI_SKIP_UPDATE_CHECK",
)
OPERATIONS = ("preview", "up", "refresh", "destroy")
# The CLI 3.274.1's words for a passphrase stack read with --show-secrets and no passphrase set.
NO_PASSPHRASE = (
    'error: constructing secrets manager of type "passphrase": constructing secrets manager: passphrase must be '
    "set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
)

HOME = Path(os.environ["FAKE_PULUMI_DIR"])
SCENARIO: dict[str, Any] = json.loads((HOME / "scenario.json").read_text())
STATE_PATH = HOME / "state.json"


def load_state() -> dict[str, Any]:
    if STATE_PATH.exists():
        state: dict[str, Any] = json.loads(STATE_PATH.read_text())
        return state
    return {"stacks": {name: {"outputs": {}, "history": []} for name in SCENARIO.get("stacks", [])}}


def save_state(state: dict[str, Any]) -> None:
    STATE_PATH.write_text(json.dumps(state, indent=2))


def opt(args: list[str], name: str) -> str | None:
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def fail(stderr: str, code: int = 255, stdout: str = "") -> None:
    if stdout:
        print(stdout)
    print(stderr, file=sys.stderr)
    sys.exit(code)


def send_events(target: str | None, events: list[dict[str, Any]]) -> None:
    if not target:
        return
    now = int(time.time())
    lines = [json.dumps({"sequence": i, "timestamp": now, **e}) for i, e in enumerate(events)]
    if target.startswith("tcp://"):
        import grpc
        from pulumi.runtime.proto import events_pb2, events_pb2_grpc

        with grpc.insecure_channel(target[len("tcp://") :]) as channel:
            stub = events_pb2_grpc.EventsStub(channel)
            stub.StreamEvents(iter([events_pb2.EventRequest(event=line) for line in lines]), timeout=30)
    else:
        with open(target, "a", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")


def read_recorded(name: str) -> Any:
    return json.loads((HOME / "recorded" / name).read_text())


def operation(command: str, args: list[str], stack: str, state: dict[str, Any]) -> None:
    spec: dict[str, Any] = SCENARIO.get("operations", {}).get(command, {})
    events: list[dict[str, Any]] = []
    for name in spec.get("events", []):
        events.extend(json.loads(line) for line in (HOME / "recorded" / name).read_text().splitlines() if line.strip())
    if not events and command == "preview":
        # The CLI always ends with a summary (the Automation API fails a preview without one); a
        # scenario that leaves the preview unset (testing what follows it) gets an empty one.
        summary = {"maybeCorrupt": False, "durationSeconds": 0, "resourceChanges": {}, "PolicyPacks": {}}
        events = [{"summaryEvent": summary}]
    for line in spec.get("stdout", []):
        print(line, flush=True)
    send_events(opt(args, "--event-log"), events)
    if spec.get("code", 0):
        fail(spec.get("stderr", "error: update failed"), spec["code"])
    if command == "preview":
        return
    entry = read_recorded("stack-history.json")[0]
    entry = {**entry, "kind": "update" if command == "up" else command}
    summary = next((e["summaryEvent"] for e in events if "summaryEvent" in e), None)
    if summary is not None:
        entry["resourceChanges"] = summary["resourceChanges"]
    state["stacks"][stack]["history"].insert(0, entry)
    if command == "up" and "outputs" in spec:
        state["stacks"][stack]["outputs"] = {
            "plain": read_recorded(spec["outputs"]["show_secrets"]),
            "masked": read_recorded(spec["outputs"]["masked"]),
        }
    if command == "destroy":
        state["stacks"][stack]["outputs"] = {}
    save_state(state)


def select(name: str) -> None:
    """Remember `name` as the selected stack, where the CLI does: the project's workspace file
    `$PULUMI_HOME/workspaces/<project>-<sha1 of the Pulumi.yaml path>-workspace.json`."""
    home = os.environ.get("PULUMI_HOME")
    if not home:
        return
    import hashlib

    yaml_path = os.path.join(os.getcwd(), "Pulumi.yaml")
    digest = hashlib.sha1(yaml_path.encode(), usedforsecurity=False).hexdigest()  # the CLI's own naming
    path = Path(home) / "workspaces" / f"identity-platform-{digest}-workspace.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stacks": {os.environ.get("PULUMI_BACKEND_URL", ""): name}}))


def main() -> None:
    argv = sys.argv[1:]
    with open(HOME / "calls.jsonl", "a", encoding="utf-8") as f:
        env = {k: os.environ[k] for k in RECORDED_ENV if k in os.environ}
        f.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "env": env}) + "\n")
    args = [a for a in argv if a != "--non-interactive"]
    if args[:1] == ["version"]:
        print(SCENARIO.get("version", "v3.272.0"))
        return
    stack = opt(args, "--stack")
    key = " ".join(args[:2]) if args[0] == "stack" else args[0]
    forced = SCENARIO.get("fail", {}).get(key)
    if forced:
        fail(forced.get("stderr", ""), forced.get("code", 255), forced.get("stdout", ""))
    state = load_state()
    stacks: dict[str, Any] = state["stacks"]
    if key == "stack select":
        if stack not in stacks:
            fail(f"error: no stack named '{stack}' found")
        select(stack)
        return
    if key == "stack init":
        name = args[2]
        if name in stacks:
            fail(f"error: stack '{name}' already exists")
        stacks[name] = {"outputs": {}, "history": []}
        save_state(state)
        select(name)
        print(f"Created stack '{name}'")
        return
    if stack is None or stack not in stacks:
        fail(f"error: no stack named '{stack}' found")
    assert stack is not None
    passphrase = {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"} & set(os.environ)
    if "--show-secrets" in args and not passphrase:
        fail(NO_PASSPHRASE)  # the secrets manager is built only to show secrets
    if key == "stack output":
        outs = stacks[stack]["outputs"]
        shown = outs.get("plain" if "--show-secrets" in args else "masked", {})
        print(json.dumps(shown, indent=2))
        return
    if key == "stack history":
        print(json.dumps(stacks[stack]["history"][: int(opt(args, "--page-size") or 10)], indent=4))
        return
    if args[0] in OPERATIONS:
        operation(args[0], args, stack, state)
        return
    fail(f"fake pulumi: unsupported command {argv}", 2)


if __name__ == "__main__":
    main()
