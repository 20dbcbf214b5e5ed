"""The bad environments `scripts/servers` must explain in one message naming the server and its
log: a port in use, a server that exits or never becomes ready, a build that fails; and `stop`
stops exactly what a start started."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import servers
from servers import cache, toolchain
from servers.errors import ServerError
from servers.process import Run, alive, load, stop_procs

PY = sys.executable
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready'); time.sleep(60)"


def test_a_port_in_use_names_the_server_and_the_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        with pytest.raises(ServerError) as e:
            Run(tmp_path).port("keycloak", taken)
    assert str(e.value).startswith(f"keycloak: port {taken} on 127.0.0.1 is already in use")


def test_a_server_that_exits_fails_with_its_log_tail(tmp_path: Path) -> None:
    run = Run(tmp_path)
    proc = run.spawn("spire", "server", [PY, "-c", "import sys; print('config error: bad trust domain'); sys.exit(3)"])
    with pytest.raises(ServerError) as e:
        run.wait_ready(proc, lambda: False, timeout=10, what="the admin socket")
    text = str(e.value)
    assert text.startswith("spire: server exited before the admin socket")
    assert f"log: {proc.log}" in text
    assert "| config error: bad trust domain" in text


def test_a_server_that_never_becomes_ready_times_out_clearly(tmp_path: Path) -> None:
    run = Run(tmp_path)
    proc = run.spawn("ziti", "controller", [PY, "-c", "import time; print('waiting for raft'); time.sleep(60)"])
    t0 = time.monotonic()
    with pytest.raises(ServerError) as e:
        run.wait_ready(proc, lambda: False, timeout=1, what="GET /version")
    assert time.monotonic() - t0 < 5
    assert "ziti: controller did not become ready (GET /version) within 1 s" in str(e.value)
    assert "| waiting for raft" in str(e.value)
    run.stop()
    assert not alive(proc.pid)


def test_a_failing_build_names_the_server_and_its_build_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_PLATFORM_CACHE", str(tmp_path / "cache"))
    module = tmp_path / "go" / "broken"
    module.mkdir(parents=True)
    (module / "go.mod").write_text("module broken\n\ngo 1.22\n")
    (module / "go.sum").write_text("")
    monkeypatch.setattr(toolchain, "GO_MODULES", tmp_path / "go")
    with pytest.raises(ServerError) as e:
        toolchain.go_build("spire", "0.0.0", "broken", ["example.invalid/no/such/package"])
    text = str(e.value)
    assert text.startswith("spire: building spire 0.0.0 (example.invalid/no/such/package) failed")
    assert "build.log" in text and "example.invalid" in text
    # The half-built entry carries no stamp, so the next install tries again instead of trusting it.
    entries = list((tmp_path / "cache" / "servers").glob("spire-0.0.0-*"))
    assert entries and not any(cache.is_complete(p) for p in entries)


def test_a_missing_toolchain_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServerError, match=r"^go: the Go toolchain is not installed"):
        toolchain.go_version()


def test_a_setup_command_failure_names_the_server(tmp_path: Path) -> None:
    run = Run(tmp_path)
    with pytest.raises(ServerError) as e:
        fails = "import sys; sys.stderr.write('initdb: directory not empty'); sys.exit(1)"
        run.run("postgres", "initdb", [PY, "-c", fails])
    assert str(e.value).startswith("postgres: initdb failed (exit 1)")
    assert "initdb: directory not empty" in str(e.value)


def test_stop_from_the_state_document_stops_exactly_what_was_started(tmp_path: Path) -> None:
    bystander = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        run = Run(tmp_path)
        a = run.spawn("spire", "server", [PY, "-c", "import time; time.sleep(60)"])
        b = run.spawn("spire", "agent", [PY, "-uc", IGNORES_TERM])
        run.wait_ready(b, lambda: "ready" in Path(b.log).read_text(), timeout=10, what="its handler")
        doc = json.loads(run.state_path.read_text())
        assert [p["pid"] for p in doc["processes"]] == [a.pid, b.pid]
        killed = servers.stop(run.state_path)
        assert killed == [f"spire/agent (pid {b.pid})"]  # it ignored SIGTERM
        run.stop()  # reaps; a second stop of stopped processes is harmless
        assert not alive(a.pid) and not alive(b.pid)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_reused_pid_is_not_stopped(tmp_path: Path) -> None:
    other = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    try:
        run = Run(tmp_path)
        proc = run.spawn("ziti", "router", [PY, "-c", "pass"])
        time.sleep(0.5)
        run.stop()
        state = load(run.state_path)
        # Pretend the recorded PID now belongs to another process with a different start time.
        state.procs[0].pid = other.pid
        state.procs[0].started = proc.started + 1 if proc.started else 1
        stop_procs(state.procs, timeout=1)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_scratch_directories_go_with_stop(tmp_path: Path) -> None:
    run = Run(tmp_path)
    a = run.scratch_dir("identity-platform-test-")
    (a / "data").write_text("x")
    run.stop()
    assert not a.exists()
    again = Run(tmp_path / "two")
    b = again.scratch_dir("identity-platform-test-")
    servers.stop(again.state_path)  # from the state document, as `scripts/servers stop` does
    assert not b.exists()
