"""Bad environments with a real server: the message names the server, says what went wrong and
ends with the server's own log lines (here PostgreSQL, the quickest of the four to start)."""

from __future__ import annotations

import socket
from pathlib import Path

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
    monkeypatch.setattr(postgres, "READY_SECONDS", 0)
    run = Run(tmp_path / "run")
    started: list[process.Proc] = []
    spawn = Run.spawn

    def spy(self: Run, *args: object, **kwargs: object) -> process.Proc:
        proc = spawn(self, *args, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc

    monkeypatch.setattr(Run, "spawn", spy)
    with pytest.raises(ServerError) as e:
        servers.start(["postgres"], run=run)
    assert "postgres: server did not become ready (accepting connections on 127.0.0.1:" in str(e.value)
    assert "within 0 s" in str(e.value) and "log: " in str(e.value)
    assert started and not any(process.alive(p.pid) for p in started)  # nothing left running
