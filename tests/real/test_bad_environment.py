"""Bad environments with a real server: the message names the server, says what went wrong and
ends with the server's own log lines (here PostgreSQL, the quickest of the four to start)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

import servers
from servers import postgres, process
from servers.errors import ServerError
from servers.process import Run


def test_a_port_taken_between_choice_and_bind_fails_with_the_servers_own_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        monkeypatch.setattr(process, "free_port", lambda: taken)
        run = Run(tmp_path / "run")
        with pytest.raises(ServerError) as e:
            servers.start(["postgres"], run=run)
    text = str(e.value)
    assert text.startswith("postgres: server exited before accepting connections on 127.0.0.1:")
    assert "postgres-server.log" in text
    assert "Address already in use" in text  # PostgreSQL's own line, from the log tail
    assert "postgres" not in run.servers and not any(process.alive(p.pid) for p in run.procs)
    assert run.scratch == []  # its data directory outside the run went with it


def test_a_server_that_is_not_ready_in_time_is_stopped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real server starts, but its readiness probe never answers yes (as when it hangs)."""
    monkeypatch.setattr(postgres, "READY_SECONDS", 2)
    real_run = subprocess.run

    def probe_says_no(argv: Any, *args: Any, **kwargs: Any) -> Any:
        if str(argv[0]).endswith("pg_isready"):
            return subprocess.CompletedProcess(argv, 2, b"", b"")
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(postgres.subprocess, "run", probe_says_no)
    started: list[process.Proc] = []
    spawn = Run.spawn

    def spy(self: Run, *args: Any, **kwargs: Any) -> process.Proc:
        proc = spawn(self, *args, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(Run, "spawn", spy)
    run = Run(tmp_path / "run")
    with pytest.raises(ServerError) as e:
        servers.start(["postgres"], run=run)
    text = str(e.value)
    assert "postgres: server did not become ready (accepting connections on 127.0.0.1:" in text
    assert "within 2 s" in text and "postgres-server.log" in text
    assert run.procs == [] and run.scratch == []  # what this start launched was stopped and removed
    assert started and not any(process.alive(p.pid) for p in started)
