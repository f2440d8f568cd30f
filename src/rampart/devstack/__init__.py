"""Dev/test tooling: a real embedded PostgreSQL and Redis, no system packages needed.

Import the pieces from their modules (`devstack.postgres`, `devstack.redis`,
`devstack.ports`); this package only holds the shared error type so that importing
it stays cheap.
"""

from __future__ import annotations

from pathlib import Path


class DevStackError(RuntimeError):
    """A dev-stack server could not be started, stopped or queried."""


def log_tail(path: Path, lines: int = 5) -> str:
    """The last non-empty lines of a log file joined on one line, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


def failure(problem: str, log: Path) -> DevStackError:
    """A one-line DevStackError naming the problem, the log file and its last lines."""
    return DevStackError(f"{problem} (see {log}): {log_tail(log)}")


__all__ = ["DevStackError", "failure", "log_tail"]
