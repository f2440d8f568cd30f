"""`rampart up` as a test runs it: a real `up` process in a fresh home under /tmp, whatever
it left behind stopped at the end (tests/e2e/test_make_up.py, test_up_operator.py).

    def test_x(runner):           # the fixture, from tests/e2e/conftest.py
        up = runner.start(); runner.wait_up(up)
        ...
        assert runner.terminate(up) == 0
        assert_nothing_left(runner)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres
from rampart.devstack.redis import EmbeddedRedis
from tests.support import httpclient
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # initdb + migrations + three processes, on a busy 2-core runner
STOP_TIMEOUT = 60.0
# Settings that would point `up` at the test session's servers or files.
INHERITED = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "OPERATOR_DATABASE_URL",
    "REDIS_URL",
    "STRIPE_WEBHOOK_SECRET",
    "LOG_FILE",
    "JWT_SECRET",
    "SESSION_SECRET",
    "ALERT_WEBHOOK_TOKEN",
    "RAMPART_HOME",
    "PORT",
    "HOST",
    "SECRETS_DIR",
    "SMTP_URL",
    "STRIPE_API_BASE",
    "STRIPE_API_KEY",
    "BACKUP_DATABASE_URL",
)


@dataclass
class Up:
    """One `rampart up` process."""

    popen: subprocess.Popen[bytes]
    stderr_file: Path
    url: str

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def describe(self) -> str:
        return f"`rampart up` (pid {self.popen.pid}, rc {self.popen.poll()}) said:\n" + "\n".join(
            self.stderr().splitlines()[-25:]
        )


class UpRunner:
    """Starts `rampart up` in `home`; on close, stops whatever is left, whatever happened."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.started: list[Up] = []
        self.metrics: dict[str, str] = {}  # service → its metrics URL, as `up` printed it
        env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        self.env = {
            **env,
            "ENV": "dev",
            "RAMPART_HOME": str(home),
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
            # The tests poll assessments from 127.0.0.1 faster than the default 60/minute.
            "RATE_LIMIT_DEFAULT_PER_IP": "6000/minute",
            # No web app: parallel `up`s would share its port and its build; the browser
            # tests (tests/browser/) serve it themselves.
            "WEB_PORT": "0",
            # Its own metrics ports: `up` prefers 9100-9103 when free, and another test's
            # `up` (xdist) may free one for a moment while a service of it restarts.
            **{
                variable: str(free_port())
                for variable in (
                    "METRICS_PORT",
                    "WORKER_METRICS_PORT",
                    "RELAY_METRICS_PORT",
                    "BILLING_METRICS_PORT",
                )
            },
        }

    def command(self) -> list[str]:
        return [sys.executable, "-m", "rampart.cli", "up"]

    def ports(self) -> dict[str, int]:
        return json.loads((self.home / "ports.json").read_text())

    def secrets(self) -> dict[str, str]:
        return json.loads((self.home / "secrets.json").read_text())

    def sql(self, query: str) -> list[list[str]]:
        """Rows of `query` in the app's database, as the superuser (RLS does not apply)."""
        postgres = EmbeddedPostgres(self.home / "postgres", self.ports()["postgres"])
        out = postgres.psql(query, dbname="rampart")
        return [line.split("|") for line in out.splitlines() if line.strip()]

    def broker(self) -> redis.Redis:
        password = self.secrets().get("redis_password")  # None before `up` made one
        return redis.Redis(
            host="127.0.0.1", port=self.ports()["redis"], password=password, socket_timeout=5
        )

    def service_pids(self, role: str) -> list[int]:
        """Main processes of `rampart <role>` (api, worker, relay) of this stack."""
        found = []
        for pid, cmd in leftovers(self.home, self.port):
            if f"rampart.cli {role}" in cmd and os.getpgid(pid) == pid:
                found.append(pid)
        return found

    def run_to_exit(self, timeout: float = 120) -> tuple[int, list[str]]:
        """An `up` expected to refuse: its exit code and the non-empty lines it said."""
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            self.command(),
            env=self.env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.returncode, [
            line for line in (done.stdout + done.stderr).splitlines() if line.strip()
        ]

    def start(self) -> Up:
        n = len(self.started) + 1
        out = self.home.parent / f"{self.home.name}-up-{n}.out"
        err = self.home.parent / f"{self.home.name}-up-{n}.err"
        with out.open("ab") as stdout, err.open("ab") as stderr:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                self.command(),
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        up = Up(popen, err, self.url)
        self.started.append(up)
        return up

    def wait_up(self, up: Up) -> None:
        def ready() -> bool:
            if up.popen.poll() is not None:
                raise AssertionError("`rampart up` exited while starting.\n" + up.describe())
            return httpclient.get(f"{self.url}/ready", timeout=5).status_code == 200

        wait_until(ready, START_TIMEOUT, 0.25, message=up.describe, ignore=(httpx.HTTPError,))
        # It tells the user where things are.
        printed = wait_until(
            lambda: "Rampart is up" in up.stderr() and up.stderr(),
            10,
            message=up.describe,
        )
        for path in ("/docs", "/ready"):
            assert f"{self.url}{path}" in printed, printed
        # Each service serves its metrics on its own loopback port (METRICS_PORT,
        # WORKER_METRICS_PORT, RELAY_METRICS_PORT), never on the public API port.
        self.metrics = {}
        for service in ("api", "worker", "relay"):
            found = re.search(rf"(http://\S+/metrics) \({service}", printed)
            assert found, printed
            assert not found.group(1).startswith(self.url), printed
            wait_until(
                lambda url=found.group(1): httpclient.get(url, timeout=5).status_code == 200,
                30,
                message=f"the {service}'s metrics endpoint",
                ignore=(httpx.HTTPError,),
            )
            self.metrics[service] = found.group(1)

    def terminate(self, up: Up, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, as Ctrl-C or a service manager would; returns the exit code."""
        up.popen.send_signal(signal.SIGTERM)
        try:
            return up.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"`rampart up` did not exit within {timeout}s of SIGTERM.\n" + up.describe()
            ) from None

    def close(self) -> None:
        for up in self.started:
            if up.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError, AssertionError):
                    self.terminate(up)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(up.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                up.popen.wait(10)
        # Postgres and Redis run in sessions of their own: stop them by their pid files.
        ports_file = self.home / "ports.json"
        if ports_file.exists():
            ports = json.loads(ports_file.read_text())
            with contextlib.suppress(Exception):
                EmbeddedPostgres(self.home / "postgres", ports["postgres"]).stop("immediate")
            with contextlib.suppress(Exception):
                EmbeddedRedis(self.home / "redis", ports["redis"]).kill()
        for pid, _cmd in leftovers(self.home, self.port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def leftovers(home: Path, api_port: int) -> list[tuple[int, str]]:
    """Live processes that belong to the stack in `home`: their command line mentions it or
    one of its ports (postgres, redis-server, uvicorn), they work inside it (Postgres' own
    children), or they were given RAMPART_HOME=home (the API, worker, relay and their
    children). Zombies are dead and do not count."""
    ports = {str(api_port)}
    with contextlib.suppress(OSError, ValueError):
        ports |= {str(p) for p in json.loads((home / "ports.json").read_text()).values()}
    marker = str(home).encode()
    env_marker = f"RAMPART_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(entry / "cwd")
        except (OSError, IndexError):
            continue
        if state in ("Z", "X"):
            continue
        cmdline = _read(entry / "cmdline").replace(b"\0", b" ")
        text = cmdline.decode(errors="replace")
        mentions_port = any(f":{p}" in text or f" {p}" in text or f"={p}" in text for p in ports)
        environ = _read(entry / "environ").split(b"\0")
        if (
            marker in cmdline
            or mentions_port
            or cwd == str(home)
            or cwd.startswith(f"{home}/")
            or env_marker in environ
        ):
            found.append((int(entry.name), text.strip()))
    return found


def assert_nothing_left(runner: UpRunner) -> None:
    """Once `up` has exited, none of its processes may run (a short grace for the kernel
    to finish tearing down processes that are already exiting)."""
    wait_until(
        lambda: not leftovers(runner.home, runner.port),
        3,
        0.1,
        message=lambda: (
            "nothing of the stack to run after `up` exited, but found "
            f"{leftovers(runner.home, runner.port)}"
        ),
    )


@contextlib.contextmanager
def up_runner() -> Iterator[UpRunner]:
    """An UpRunner in a fresh `<tmp>/.rampart` (the default RAMPART_HOME of a command run
    in `<tmp>`); everything it started is stopped and the directory removed at the end."""
    # /tmp and 0755: the unprivileged Postgres user (when we are root) must traverse it.
    parent = Path(tempfile.mkdtemp(prefix="rampart-up-", dir="/tmp"))
    parent.chmod(0o755)
    runner = UpRunner(parent / ".rampart", free_port())
    try:
        yield runner
    finally:
        runner.close()
        for up in runner.started:
            print(up.describe())
        shutil.rmtree(parent, ignore_errors=True)
