"""Process liveness, shared by the dev stack and the metrics exporter."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether `pid` is a live process.

    A zombie (dead but unreaped: in containers whose init never reaps, a SIGKILLed child
    lingers as one and kill(pid, 0) still succeeds) counts as dead, and so does a process
    that exits between the checks. A process we may not signal (EPERM) exists; so does one
    whose state /proc will not tell us, or on a system without /proc.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else; it may still be a zombie
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return not Path("/proc/self").exists()  # exited meanwhile, unless there is no /proc
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22), or None
    when it is gone or /proc cannot tell. A pid and its start time name one process: a
    recycled pid has a later start time."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def same_process(pid: int, started: int | None) -> bool:
    """Whether `pid` is still the live process that had start time `started`."""
    return started is not None and pid_alive(pid) and start_time(pid) == started
