"""Ctrl-C and SIGTERM while the Pulumi CLI runs: let it cancel, then stop.

The Automation API leaves its `pulumi` child behind on KeyboardInterrupt (`Popen.__exit__` waits a
quarter of a second), so ops would exit while the CLI still cancels and holds the stack's lock,
and its plugins would be orphaned. `stop_children` lets each `pulumi` child cancel (the CLI's own
graceful cancel: one SIGINT, forwarded unless the child had it from the process group, as from a
terminal's Ctrl-C) and waits for them to exit; a second Ctrl-C stops the waiting.
Children are found in /proc (Linux); elsewhere nothing is found and nothing is waited for.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

LOCK_HINT = (
    "if the stack stays locked, release the lock: Pulumi Cloud `pulumi cancel --stack <name>`, "
    "file/S3 backends: delete the stale file under <backend>/.pulumi/locks/"
)
_interrupted = threading.Event()
_last_signal: int | None = None  # what interrupted this run (SIGINT, SIGTERM), if a signal did


def children(names: tuple[str, ...] = ("pulumi",)) -> list[int]:
    """Pids of this process's children whose command name starts with one of `names`."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, _, rest = text.partition("(")[2].rpartition(")")
        fields = rest.split()
        if len(fields) > 1 and fields[1] == str(me) and (comm.startswith(names) or _argv_named(stat.parent, names)):
            found.append(int(stat.parent.name))
    return found


def _argv_named(proc: Path, names: tuple[str, ...]) -> bool:
    """The program or (for an interpreted script, e.g. a `pulumi` wrapper) its script is one of `names`."""
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")[:2]
    except OSError:
        return False
    return any(os.path.basename(a.decode(errors="replace")) in names for a in argv)


def _alive(pid: int) -> bool:
    """Running (a zombie has exited: its status is left to whoever started it)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _got_it_too(pid: int) -> bool:
    """A SIGINT to ops' process group (a terminal's Ctrl-C) reached the child as well: a second one
    would be the CLI's "^C again", which stops it at once, lock and all."""
    try:
        return _last_signal == signal.SIGINT and os.getpgid(pid) == os.getpgrp()
    except ProcessLookupError:
        return True


def stop_children(names: tuple[str, ...] = ("pulumi",), timeout: float = 120.0) -> list[int]:
    """Let each child named `names` cancel (one SIGINT, unless it had its own from the process group)
    and wait (up to `timeout`) for them to exit. Returns their pids; a KeyboardInterrupt while
    waiting stops the wait."""
    pids = children(names)
    for pid in pids:
        if _got_it_too(pid):
            continue
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    until = time.monotonic() + timeout
    try:
        while any(_alive(p) for p in pids) and time.monotonic() < until:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    return pids


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    global _last_signal
    _last_signal = signum
    _interrupted.set()
    raise KeyboardInterrupt


def _quiet_after_interrupt(args: threading.ExceptHookArgs) -> None:
    """The SDK's output-reading threads fail on a closed pipe once interrupted: not ops' error."""
    if _interrupted.is_set() and args.exc_type in (ValueError, OSError):
        return
    _previous_hook(args)


_previous_hook = threading.excepthook


@contextmanager
def handled() -> Iterator[None]:
    """SIGTERM behaves as Ctrl-C (KeyboardInterrupt); reader threads stay quiet after either.
    Only in the main thread (signal handlers can be set nowhere else)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _last_signal
    _interrupted.clear()
    _last_signal = None
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    threading.excepthook = _quiet_after_interrupt
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        threading.excepthook = _previous_hook
