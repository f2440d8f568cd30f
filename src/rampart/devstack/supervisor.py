"""How `rampart up` runs, watches and stops its processes (docs/resilience.md, "The local
stack under `rampart up`").

**Stopping (warm, whatever the pool).** A service is stopped by SIGTERM to its *main*
process only, never to its process group: the main process knows how to stop its own
children. Celery's main process starts a warm shutdown (no new messages; running tasks
finish and are acknowledged; prefork children, or threads, exit after), uvicorn's
supervisor stops accepting and lets its workers finish their requests, the relay finishes
its round. A SIGTERM to the whole group, as before, reached the prefork children too,
which died under their tasks (WorkerLostError): each redo cost an attempt and an LLM call.
Then we wait until nothing of the group runs any more, up to SHUTDOWN_DRAIN_SECONDS, and
SIGKILL whatever is left. Nothing here knows the pool type: only "main process" and
"process group".

**Watching.** `Supervisor` polls each child (the API, worker, relay and the embedded
Postgres and Redis). One that ends is reported with how it ended (exit status or signal)
and started again after a back-off that doubles from 1 s up to 30 s; the back-off starts
over once a child has run for 30 s. A child that keeps ending within 30 s of its start
(5 times in a row) is given up on: `CrashLoop` is raised, and `rampart up` stops the stack
and exits 1 with that line, rather than looping on a configuration error forever.

**Leftovers.** Every process `up` starts asks the kernel for a signal when `up` dies
(PR_SET_PDEATHSIG, `die_with_parent`; the embedded Postgres and Redis too), so a killed
`up` drains its services instead of orphaning them. Every service process also carries
`RAMPART_UP_HOME=<home>` in its environment (uvicorn workers and Celery pool processes
inherit it): `leftovers(home)` finds whatever is still running anyway, and so do the
recorded pids of devstack/running.py, so the next `up` stops it before it starts its own
(and before it hands a dead worker's deliveries back to the queue).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rampart.kit.processes import pid_alive

MARKER = "RAMPART_UP_HOME"
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 30.0
MAX_QUICK_EXITS = 5
_PR_SET_PDEATHSIG = 1


def describe_exit(returncode: int) -> str:
    """`exited with status 3`, `was killed by SIGKILL` (a negative Popen returncode)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after "(comm)": state ppid pgrp ..., or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group `pgid`."""
    members = []
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                fields = _stat_fields(int(entry.name))
                if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
                    members.append(int(entry.name))
    return members


def leftovers(home: Path) -> dict[int, list[int]]:
    """Processes an `up` for `home` started that still run, by process group."""
    marker = f"{MARKER}={Path(home).resolve()}".encode()
    found: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            fields = _stat_fields(int(entry.name))
            if marker in environ and fields and fields[0] not in ("Z", "X"):
                found.setdefault(int(fields[2]), []).append(int(entry.name))
    return found


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(
    groups: Iterable[int],
    drain: float,
    force_now: Callable[[], bool] = lambda: False,
    signals: Mapping[int, int] | None = None,
) -> bool:
    """Warm stop of process groups whose leader is the service's main process: SIGTERM (or
    the group's entry in `signals`) to each leader (if it still runs), wait until every
    group is empty, SIGKILL what is left after `drain` seconds or as soon as `force_now()`
    says so. True if nothing was killed."""
    groups = list(groups)
    for pgid in groups:
        if pid_alive(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pgid, (signals or {}).get(pgid, signal.SIGTERM))
                os.kill(pgid, signal.SIGCONT)  # a stopped (frozen) process gets it too
        else:  # the main process is gone: its orphans cannot finish anything useful
            _killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + drain
    while any(group_members(pgid) for pgid in groups):
        if time.monotonic() >= deadline or force_now():
            for pgid in groups:
                _killpg(pgid, signal.SIGKILL)
            _wait_empty(groups, 10)
            return False
        time.sleep(0.1)
    return True


def _wait_empty(groups: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(group_members(pgid) for pgid in groups) and time.monotonic() < deadline:
        time.sleep(0.05)


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> Callable[[], None]:
    """preexec_fn: send this child `sig` when `up` dies (Linux PR_SET_PDEATHSIG), so it
    stops instead of lingering. It must run after any change of user (Popen's `user=`
    does that first): the kernel clears the setting when credentials change, which is why
    Postgres is not started through setpriv/runuser (postgres.py)."""

    def set_death_signal() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # `up` died before the line above
            os._exit(1)

    return set_death_signal


def rampart_command(*args: str) -> list[str]:
    """`python -m rampart.cli <args>` with this interpreter."""
    return [sys.executable, "-m", "rampart.cli", *args]


@dataclass
class Service:
    """One process of `up` (e.g. `rampart_command("worker")`), in a process group of its
    own whose leader is the service's main process."""

    name: str
    command: list[str]
    env: dict[str, str]
    home: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        env = {**os.environ, **self.env, MARKER: str(Path(self.home).resolve())}
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.command,
            env=env,
            start_new_session=True,  # Ctrl-C reaches `up` only; we stop them ourselves
            umask=0o077,  # its log files are private
            preexec_fn=die_with_parent(os.getpid()),  # noqa: PLW1509 - `up` is single-threaded here
        )

    @property
    def pgid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def ended(self) -> str | None:
        """None while the main process runs, else how it ended."""
        if self.popen is None:
            return "was never started"
        returncode = self.popen.poll()
        return None if returncode is None else describe_exit(returncode)

    def clear_group(self) -> None:
        """SIGKILL what is left of the group of a main process that is gone (orphaned pool
        processes cannot acknowledge anything; their deliveries are released instead)."""
        if self.pgid is not None and self.popen is not None and self.popen.poll() is not None:
            _killpg(self.pgid, signal.SIGKILL)
            _wait_empty([self.pgid], 10)


def stop_services(
    services: Iterable[Service], drain: float, force_now: Callable[[], bool] = lambda: False
) -> bool:
    """Warm stop of all `services` at once (see the module docstring); True if none had to
    be killed. Reaps the main processes."""
    services = [service for service in services if service.popen is not None]
    clean = stop_groups([s.pgid for s in services if s.pgid is not None], drain, force_now)
    for service in services:
        assert service.popen is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.popen.wait(5)
    return clean


class CrashLoop(RuntimeError):
    """A child kept ending soon after each start: `up` gives up on the stack."""


@dataclass
class _Child:
    name: str
    start: Callable[[], None]
    ended: Callable[[], str | None]
    before_restart: Callable[[], None] | None
    started_at: float
    quick_exits: int = 0
    restart_at: float | None = None
    last_end: str = ""


class Supervisor:
    """Restarts children that end, with back-off; see the module docstring."""

    def __init__(
        self,
        say: Callable[[str], None],
        *,
        first_delay: float = FIRST_DELAY,
        max_delay: float = MAX_DELAY,
        stable_after: float = STABLE_AFTER,
        max_quick_exits: int = MAX_QUICK_EXITS,
    ) -> None:
        self.say = say
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.stable_after = stable_after
        self.max_quick_exits = max_quick_exits
        self.children: dict[str, _Child] = {}

    def watch(
        self,
        name: str,
        start: Callable[[], None],
        ended: Callable[[], str | None],
        before_restart: Callable[[], None] | None = None,
    ) -> None:
        """Watch a child that is already running; `start` starts it again."""
        self.children[name] = _Child(name, start, ended, before_restart, time.monotonic())

    def check(self) -> None:
        """Notice ended children and restart those whose back-off is over."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is None:
                how = child.ended()
                if how is not None:
                    self._ended(child, how, now)
            elif now >= child.restart_at:
                self._restart(child)

    def _ended(self, child: _Child, how: str, now: float) -> None:
        ran = now - child.started_at
        child.quick_exits = child.quick_exits + 1 if ran < self.stable_after else 1
        child.last_end = how
        if child.quick_exits >= self.max_quick_exits:
            raise CrashLoop(
                f"{child.name} {how}, {child.quick_exits} times in a row within "
                f"{self.stable_after:g}s of starting; stopping the stack"
            )
        delay = min(self.first_delay * 2 ** (child.quick_exits - 1), self.max_delay)
        child.restart_at = now + delay
        self.say(f"{child.name} {how} after {ran:.0f}s; restarting it in {delay:g}s")

    def _restart(self, child: _Child) -> None:
        child.restart_at = None
        child.started_at = time.monotonic()
        try:
            if child.before_restart is not None:
                child.before_restart()
            child.start()
        except Exception as exc:  # e.g. Postgres did not come up: count it as an exit
            self._ended(child, f"did not start ({exc})", time.monotonic())
            return
        self.say(f"{child.name} restarted")
