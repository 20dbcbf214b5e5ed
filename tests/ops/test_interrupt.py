"""Ctrl-C / SIGTERM during an engine run: the CLI child is let cancel, exit 130, the lock hint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ops import interrupt, operations
from ops.errors import ExitCode
from tests.ops.conftest import FakeCli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children are found in /proc")

# A child that takes its time to cancel on SIGINT, like the CLI (which then releases the lock).
SLOW_CANCEL = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, lambda *_: (time.sleep(0.5), sys.exit(3)))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_stop_children_forwards_one_sigint_and_waits_for_the_exit() -> None:
    child = subprocess.Popen([sys.executable, "-c", SLOW_CANCEL], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        name = open(f"/proc/{child.pid}/comm").read().strip()
        started = time.monotonic()
        assert interrupt.stop_children((name,), timeout=10) == [child.pid]
        assert time.monotonic() - started >= 0.4  # it waited for the cancel, not just signalled
        assert child.wait(timeout=1) == 3  # the SIGINT handler ran: one graceful cancel
    finally:
        child.kill()
        child.wait()


COUNTS_SIGINTS = (
    "import signal, sys, time\n"
    "n = [0]\n"
    "signal.signal(signal.SIGINT, lambda *_: n.__setitem__(0, n[0] + 1))\n"
    "print('ready', flush=True)\n"
    "while not n[0]: time.sleep(0.01)\n"
    "time.sleep(0.5)\n"
    "sys.exit(2 + n[0])\n"
)


def test_a_ctrl_c_the_child_got_from_the_terminal_is_not_sent_twice() -> None:
    """A terminal's Ctrl-C reaches the whole foreground process group, the CLI included: a second
    SIGINT would be the CLI's "^C again", which stops it at once and leaves the lock."""
    child = subprocess.Popen([sys.executable, "-c", COUNTS_SIGINTS], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        assert os.getpgid(child.pid) == os.getpgrp()
        name = open(f"/proc/{child.pid}/comm").read().strip()
        os.kill(child.pid, signal.SIGINT)  # what the terminal sent the group
        with pytest.raises(KeyboardInterrupt):
            interrupt._raise_interrupt(signal.SIGINT, None)  # and ops
        started = time.monotonic()
        assert interrupt.stop_children((name,), timeout=10) == [child.pid]
        assert time.monotonic() - started >= 0.3  # waited for the cancel
        assert child.wait(timeout=1) == 3  # one SIGINT, the terminal's
    finally:
        interrupt._last_signal = None
        child.kill()
        child.wait()


def test_no_children_no_wait() -> None:
    assert interrupt.stop_children(("no-such-command",), timeout=10) == []


def test_an_interrupted_up_exits_130_with_the_lock_hint(
    fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(operations, "up", interrupted)
    fake_cli.configure(stacks=["dev"])
    res = fake_cli.run("up", "--stack", "dev", "--yes")
    assert res.code == ExitCode.INTERRUPTED
    assert "interrupted" in res.stderr and ".pulumi/locks/" in res.stderr and "Traceback" not in res.stderr


def test_sigterm_is_an_interrupt_while_a_command_runs(fake_cli: FakeCli, monkeypatch: pytest.MonkeyPatch) -> None:
    def terminated(*_: object, **__: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(operations, "up", terminated)
    fake_cli.configure(stacks=["dev"])
    res = fake_cli.run("up", "--stack", "dev", "--yes")
    assert res.code == ExitCode.INTERRUPTED and ".pulumi/locks/" in res.stderr
    assert signal.getsignal(signal.SIGTERM) is not interrupt._raise_interrupt  # put back afterwards
