"""One error type for everything that can go wrong with a local server: it names the server and,
when there is one, ends with the tail of that server's log, so a failure is readable in place."""

from __future__ import annotations

from pathlib import Path

TAIL_LINES = 40


def log_tail(log: Path, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of `log` ('' when it does not exist)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServerError(RuntimeError):
    """`<server>: <what happened>` plus the log's path and its last lines."""

    def __init__(self, server: str, message: str, log: Path | None = None) -> None:
        self.server = server
        self.log = log
        text = f"{server}: {message}"
        if log is not None:
            tail = log_tail(log)
            text += f"\n  log: {log}"
            if tail:
                lines = "\n".join(f"  | {line}" for line in tail.splitlines())
                text += f"\n  --- last lines of {log.name} ---\n{lines}"
        super().__init__(text)
