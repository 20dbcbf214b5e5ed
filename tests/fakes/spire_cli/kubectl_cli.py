"""A fake `kubectl`: `kubectl [--kubeconfig K] [--context C] [-n NS] exec POD [-c C] -- CMD...`.

Mirrors kubectl's behaviour for the cases the provider meets: an unknown context ("context ...
does not exist"), a missing pod (`Error from server (NotFound)`), a missing container, `TYPE/NAME`
targets (`pod/x`, `sts/x`, `statefulset/x`, `deploy/x` pick the first matching pod), the
"Defaulted container" notice when `-c` is left out, and a failing remote command reported as
"command terminated with exit code N" with that exit status.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence
from typing import Any

from tests.fakes.spire_cli import load_world, log_exec, server_cli

_GLOBAL_VALUE = {"--kubeconfig", "--context", "-n", "--namespace", "--request-timeout", "--cluster", "--user"}
_EXEC_VALUE = {"-c", "--container", "--pod-running-timeout", "-f", "--filename"}
_EXEC_BOOL = {"-i", "--stdin", "-t", "--tty", "-q", "--quiet", "-it", "-ti"}


def _resolve_pod(pods: dict[str, Any], target: str) -> str | None:
    kind, slash, name = target.partition("/")
    if not slash:
        return target if target in pods else None
    if kind in ("pod", "pods", "po"):
        return name if name in pods else None
    matches = sorted(p for p in pods if p.startswith(name + "-"))
    return matches[0] if matches else None


def main(argv: Sequence[str]) -> int:
    world = load_world()
    kube = world["kubernetes"]
    args = list(argv)
    context = kube.get("current_context")
    namespace = "default"
    container_name: str | None = None
    positional: list[str] = []
    command: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            command = args[i + 1 :]
            break
        name, eq, value = a.partition("=")
        if name in _GLOBAL_VALUE or name in _EXEC_VALUE:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if name == "--context":
                context = value
            elif name in ("-n", "--namespace"):
                namespace = value
            elif name in ("-c", "--container"):
                container_name = value
        elif name in _EXEC_BOOL:
            pass
        elif a.startswith("-"):
            sys.stderr.write(f"error: unknown flag: {a}\nSee 'kubectl exec --help' for usage.\n")
            return 1
        else:
            positional.append(a)
        i += 1

    stdout, stderr = io.StringIO(), io.StringIO()
    record = {"tool": "kubectl", "argv": list(argv), "context": context, "namespace": namespace}
    rc = _run(kube, context, namespace, positional, container_name, command, stdout, stderr)
    log_exec(world, {**record, "rc": rc})
    sys.stdout.write(stdout.getvalue())
    sys.stderr.write(stderr.getvalue())
    return rc


def _run(
    kube: dict[str, Any],
    context: str | None,
    namespace: str,
    positional: list[str],
    container_name: str | None,
    command: list[str],
    stdout: Any,
    stderr: Any,
) -> int:
    if not positional or positional[0] != "exec":
        stderr.write(f'error: unknown command "{positional[0] if positional else ""}" for "kubectl" (fake: exec)\n')
        return 1
    if len(positional) < 2 or not command:
        stderr.write("error: you must specify at least one command for the container\n")
        return 1
    if context is None or context not in kube["contexts"]:
        stderr.write(f'error: context "{context}" does not exist\n')
        return 1
    pods = kube["contexts"][context]["namespaces"].get(namespace, {}).get("pods", {})
    target = positional[1]
    pod_name = _resolve_pod(pods, target)
    if pod_name is None:
        _kind, slash, name = target.partition("/")
        what = f'pods "{name if slash else target}"'
        stderr.write(f"Error from server (NotFound): {what} not found\n")
        return 1
    containers = pods[pod_name]["containers"]
    if container_name is None:
        container_name = next(iter(containers))
        if len(containers) > 1:
            stderr.write(f'Defaulted container "{container_name}" out of: {", ".join(containers)}\n')
    container = containers.get(container_name)
    if container is None:
        stderr.write(f'error: unable to upgrade connection: container not found ("{container_name}")\n')
        return 1
    if command[0] not in container["executables"]:
        stderr.write(
            "error: Internal error occurred: error executing command in container: failed to exec in container: "
            f"failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: "
            f'"{command[0]}": stat {command[0]}: no such file or directory: unknown\n'
        )
        return 1
    rc = server_cli.main(command[1:], server_cli.Env(stdout, stderr, container["files"]))
    if rc != 0:
        stderr.write(f"command terminated with exit code {rc}\n")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
