"""Run real Rampart processes (API, worker, relay) as subprocesses, and always clean them up.

Each process runs `python -m rampart.cli <role>` in its own session (so its process group
holds it and every child it forks: prefork workers, uvicorn), with stdout/stderr in
`<role>-<n>.out` and its JSON log lines in `<role>-<n>.log` (LOG_FILE).

    with Processes(stack, log_dir) as procs:
        api = procs.spawn("api")
        worker = procs.spawn("worker", WORKER_CONCURRENCY="1")
        api.wait_ready(); worker.wait_ready()
        ...
    # every process group spawned here is SIGKILLed by now, even if the block raised

Waiting is `tests.support.wait.wait_until` (polls, with a deadline that scales).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from rampart.devstack.ports import free_port
from tests.support import httpclient
from tests.support.stack import TestStack
from tests.support.wait import wait_until

T = TypeVar("T")
ROLES = ("api", "worker", "relay")
_counter = itertools.count(1)
_live: set[int] = set()  # process group ids still to be killed (safety net at exit)


def group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # fields after "(comm)": state ppid pgrp ...
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class Proc:
    """One Rampart process (and its process group)."""

    role: str
    popen: subprocess.Popen[bytes]
    output_file: Path
    log_file: Path
    env: dict[str, str]
    url: str | None = None  # the API's base URL
    metrics_url: str | None = None  # the API's metrics listener (METRICS_PORT)
    _ready: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the leader's pid is the group id

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """Whether anything in the process group still runs (e.g. orphaned pool children)."""
        return bool(group_members(self.pgid))

    def output(self, lines: int = 30) -> str:
        """The last lines of stdout/stderr, for error messages."""
        try:
            text = self.output_file.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far to LOG_FILE (anything else is skipped)."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return []
        lines = []
        for raw in text.splitlines():
            raw = raw.strip()
            if not raw.startswith("{"):
                continue
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            if isinstance(value, dict):
                lines.append(value)
        return lines

    def wait_ready(self, timeout: float = 45.0) -> Proc:
        """API: /ready answers 200. Worker: Celery logged that it is ready. Relay: it logged
        `relay_started`. Fails at once, with the output, if the process exits meanwhile."""

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(
                    f"{self.role} exited with {self.popen.returncode} before it was ready:\n"
                    + self.output()
                )
            if self.role == "api":
                assert self.url is not None
                return httpclient.get(f"{self.url}/ready", timeout=5).status_code == 200
            if self.role == "worker":
                return any(
                    str(line.get("event", "")).endswith(" ready.") for line in self.log_lines()
                )
            return any(line.get("event") == "relay_started" for line in self.log_lines())

        wait_until(
            ready,
            timeout,
            0.1,
            message=lambda: f"{self.role} (pid {self.pid}) to be ready; output:\n{self.output()}",
            ignore=(httpx.HTTPError,),
        )
        self._ready = True
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to the process group, then SIGKILL if it is not gone in `timeout`.
        Returns the leader's exit code."""
        _killpg(self.pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout)
        deadline = time.monotonic() + 5
        while self.group_alive() and time.monotonic() < deadline:  # e.g. pool children
            time.sleep(0.05)
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (like a machine losing the container) and reap."""
        _killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        wait_until(
            lambda: not self.group_alive(),
            10,
            0.05,
            message=f"process group {self.pgid} ({self.role}) to die after SIGKILL",
        )
        _live.discard(self.pgid)


def spawn(role: str, stack: TestStack, log_dir: Path, **env: str) -> Proc:
    """Start `python -m rampart.cli <role>` against the test stack; `env` overrides settings.

    Prefer `Processes.spawn`, which guarantees cleanup; a bare spawn is registered for an
    at-exit kill only.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    log_dir.mkdir(parents=True, exist_ok=True)
    name = f"{role}-{next(_counter)}"
    output_file = log_dir / f"{name}.out"
    log_file = log_dir / f"{name}.log"
    args = [sys.executable, "-m", "rampart.cli", role]
    url = metrics_url = None
    if role == "api":
        port = free_port()
        args += ["--host", "127.0.0.1", "--port", str(port)]
        url = f"http://127.0.0.1:{port}"
        # The API's metrics are served on their own port, never on the public one.
        env = {"METRICS_PORT": str(free_port()), **env}
        metrics_url = f"http://127.0.0.1:{env['METRICS_PORT']}/metrics"
    process_env = stack.process_env(LOG_FILE=str(log_file), **env)
    process_env.setdefault("PYTHONUNBUFFERED", "1")
    with output_file.open("ab") as out:
        popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            args,
            env=process_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _live.add(popen.pid)
    return Proc(role, popen, output_file, log_file, process_env, url, metrics_url)


class Processes:
    """Spawns processes and kills every process group it spawned on exit, even on failure."""

    def __init__(self, stack: TestStack, log_dir: Path) -> None:
        self.stack = stack
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def spawn(self, role: str, **env: str) -> Proc:
        proc = spawn(role, self.stack, self.log_dir, **env)
        self.procs.append(proc)
        return proc

    def log_lines(self) -> list[dict[str, Any]]:
        """Every process's JSON log lines."""
        return [line for proc in self.procs for line in proc.log_lines()]

    def report(self, lines: int = 15) -> str:
        """The tail of every process's output (printed at teardown: pytest shows it on
        failure)."""
        return "\n".join(
            f"--- {p.role} pid {p.pid} rc {p.popen.poll()} ({p.output_file}) ---\n"
            + p.output(lines)
            for p in self.procs
        )

    def close(self) -> None:
        for proc in self.procs:
            _killpg(proc.pgid, signal.SIGKILL)
        for proc in self.procs:
            proc.kill()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


@contextlib.contextmanager
def processes(stack: TestStack, log_dir: Path) -> Iterator[Processes]:
    """`with processes(stack, dir) as procs:`; prints the output tails at the end."""
    with Processes(stack, log_dir) as procs:
        try:
            yield procs
        finally:
            print(procs.report())


@atexit.register
def _kill_leftovers() -> None:  # last resort, e.g. after an interrupted session
    for pgid in list(_live):
        _killpg(pgid, signal.SIGKILL)
