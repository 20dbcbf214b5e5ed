"""Processes of one `start`: each server process in its own session with its own log file, ports
chosen free on loopback, readiness polled with a deadline, and one JSON document that records
what was started so `stop` stops exactly that."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from servers.errors import ServerError

STATE_FILE = "servers.json"


@dataclass
class Proc:
    server: str
    name: str
    pid: int
    log: str
    argv: list[str]
    started: int = 0  # /proc start time (clock ticks since boot): tells our process from a reused PID


def start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def ours(proc: Proc) -> bool:
    """The PID still names the process we started (not one that reused its number)."""
    return alive(proc.pid) and (proc.started == 0 or start_ticks(proc.pid) == proc.started)


def as_user(argv: Sequence[str], user: str | None) -> list[str]:
    """`argv`, run as `user` when one is named (PostgreSQL refuses to run as root)."""
    if user is None:
        return list(argv)
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def tcp_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by us) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Run:
    """One `start`: its directory (configs, data, logs) and everything it launched."""

    root: Path
    procs: list[Proc] = field(default_factory=list)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    scratch: list[str] = field(default_factory=list)  # directories outside `root`, removed by stop
    _popen: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def dir(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def scratch_dir(self, prefix: str) -> Path:
        """A new directory outside `root` (for a server user that cannot reach `root`); `stop`
        removes it with everything in it."""
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self.scratch.append(str(path))
        self.save()
        return path

    def log(self, server: str, name: str) -> Path:
        return self.dir("logs") / f"{server}-{name}.log"

    def port(self, server: str, wanted: int | None = None) -> int:
        """`wanted` if it is free (else a clear error), or a free port."""
        if wanted is None:
            return free_port()
        if port_in_use(wanted):
            raise ServerError(
                server, f"port {wanted} on 127.0.0.1 is already in use; stop what holds it or pick another"
            )
        return wanted

    def spawn(
        self, server: str, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, user: str | None = None,
    ) -> Proc:
        """Start `argv` in a new session (so `stop` can end its whole group), output to its log."""
        log = self.log(server, name)
        cmd = as_user(argv, user)
        full_env = {**os.environ, **(env or {})}
        with open(log, "ab") as out:
            try:
                p = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=full_env,
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as e:
                raise ServerError(server, f"cannot start {name} ({cmd[0]}): {e}", log) from e
        proc = Proc(server=server, name=name, pid=p.pid, log=str(log), argv=cmd, started=start_ticks(p.pid))
        self.procs.append(proc)
        self._popen[p.pid] = p
        self.save()
        return proc

    def run(
        self, server: str, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, user: str | None = None, timeout: float = 120, stdin: str | None = None,
    ) -> str:
        """Run a one-shot command of a server's set-up; its output goes to the server's log too.

        Secrets go in `stdin` (never logged), not in `argv` (logged, and visible in `ps`)."""
        log = self.log(server, name)
        cmd = as_user(argv, user)
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                input=stdin,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise ServerError(server, f"{name} did not finish in {timeout:.0f} s: {' '.join(cmd)}", log) from e
        except OSError as e:
            raise ServerError(server, f"cannot run {name} ({cmd[0]}): {e}", log) from e
        with open(log, "a") as out:
            out.write(f"$ {' '.join(cmd)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            raise ServerError(server, f"{name} failed (exit {done.returncode}): {' '.join(cmd)}", log)
        return done.stdout

    def wait_ready(
        self, proc: Proc, ready: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
    ) -> None:
        """Poll `ready` until it holds; fail with the log's tail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            if _ready(ready):
                return
            if not alive(proc.pid):
                raise ServerError(proc.server, f"{proc.name} exited before {what}", Path(proc.log))
            if time.monotonic() > deadline:
                raise ServerError(
                    proc.server, f"{proc.name} did not become ready ({what}) within {timeout:.0f} s", Path(proc.log)
                )
            time.sleep(interval)

    def record(self, server: str, section: dict[str, Any]) -> None:
        self.servers[server] = section
        self.save()

    @property
    def state_path(self) -> Path:
        return self.root / STATE_FILE

    def document(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.root),
            "servers": self.servers,
            "processes": [asdict(p) for p in self.procs],
            "scratch": self.scratch,
        }

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds admin credentials
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.document(), indent=2) + "\n")
        tmp.replace(self.state_path)

    def stop(self, timeout: float = 20) -> list[Proc]:
        """Stop every process of this run, newest first; returns the ones that had to be killed."""
        killed = stop_procs(list(reversed(self.procs)), timeout)
        for p in self._popen.values():
            p.poll()
        remove_scratch(self.scratch)
        return killed


def _ready(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:  # noqa: BLE001 - any failure of a probe means "not ready yet"
        return False


def stop_procs(procs: Sequence[Proc], timeout: float = 20) -> list[Proc]:
    """SIGTERM each process group, wait, then SIGKILL what is left; returns what needed SIGKILL."""
    procs = [p for p in procs if ours(p)]
    for p in procs:
        _signal_group(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(ours(p) for p in procs):
        time.sleep(0.1)
    killed = [p for p in procs if ours(p)]
    for p in killed:
        _signal_group(p.pid, signal.SIGKILL)
    return killed


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def remove_scratch(paths: Sequence[str]) -> None:
    """Remove a run's scratch directories (only ones it made: they carry the mkdtemp prefix)."""
    for p in paths:
        if Path(p).name.startswith("identity-platform-"):
            shutil.rmtree(p, ignore_errors=True)


def load(state_path: Path) -> Run:
    """The Run recorded in a state document (for `stop` from another process)."""
    doc = json.loads(state_path.read_text())
    return Run(
        root=Path(doc["run_dir"]),
        procs=[Proc(**p) for p in doc.get("processes", [])],
        servers=doc.get("servers", {}),
        scratch=doc.get("scratch", []),
    )
