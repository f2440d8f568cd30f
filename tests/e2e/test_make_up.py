"""`rampart up` (what `make up` runs) on a fresh machine: no DATABASE_URL, REDIS_URL, so it
starts its own embedded Postgres and Redis, migrates, and runs API, worker and relay.

Proves the "two commands and it runs" promise end to end: the product works through it,
a second `up` on the same data dir refuses to start, SIGTERM leaves nothing running, and
the data survives a restart.
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
import pytest
from tests.support.processes import wait_until
from tests.support.users import PASSWORD, answers, signup

from rampart.devstack.ports import free_port
from rampart.devstack.postgres import EmbeddedPostgres
from rampart.devstack.redis import EmbeddedRedis

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # initdb + migrations + three processes, on a busy 2-core runner
STOP_TIMEOUT = 60.0
# Settings that would point `up` at the test session's servers or files.
INHERITED = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "REDIS_URL",
    "LOG_FILE",
    "JWT_SECRET",
    "SESSION_SECRET",
    "ALERT_WEBHOOK_TOKEN",
    "RAMPART_HOME",
    "PORT",
    "HOST",
    "SECRETS_DIR",
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
        env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        self.env = {
            **env,
            "ENV": "dev",
            "RAMPART_HOME": str(home),
            "PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }

    def command(self) -> list[str]:
        return [sys.executable, "-m", "rampart.cli", "up"]

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
            return httpx.get(f"{self.url}/ready", timeout=5).status_code == 200

        wait_until(ready, START_TIMEOUT, 0.25, message=up.describe, ignore=(httpx.HTTPError,))
        # It tells the user where things are.
        printed = wait_until(
            lambda: "Rampart is up" in up.stderr() and up.stderr(),
            10,
            message=up.describe,
        )
        for path in ("/docs", "/metrics", "/ready"):
            assert f"{self.url}{path}" in printed, printed
        # The worker and the relay serve their own metrics (WORKER_/RELAY_METRICS_PORT).
        for service in ("worker", "relay"):
            found = re.search(rf"(http://\S+/metrics) \({service}", printed)
            assert found, printed
            wait_until(
                lambda url=found.group(1): httpx.get(url, timeout=5).status_code == 200,
                30,
                message=f"the {service}'s metrics endpoint",
                ignore=(httpx.HTTPError,),
            )

    def terminate(self, up: Up) -> int:
        """SIGTERM, as Ctrl-C or a service manager would; returns the exit code."""
        up.popen.send_signal(signal.SIGTERM)
        try:
            return up.popen.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"`rampart up` did not exit within {STOP_TIMEOUT}s of SIGTERM.\n" + up.describe()
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


@pytest.fixture
def runner() -> Iterator[UpRunner]:
    # /tmp and 0755: the unprivileged Postgres user (when we are root) must traverse it.
    parent = Path(tempfile.mkdtemp(prefix="rampart-up-", dir="/tmp"))
    parent.chmod(0o755)
    home = parent / "home"
    up_runner = UpRunner(home, free_port())
    try:
        yield up_runner
    finally:
        up_runner.close()
        for up in up_runner.started:
            print(up.describe())
        shutil.rmtree(parent, ignore_errors=True)


def test_up_runs_the_product_refuses_a_second_copy_stops_clean_and_keeps_data(runner):
    first = runner.start()
    runner.wait_up(first)

    # Everything it started is visible (so the "nothing left" check below can see it).
    running = " | ".join(cmd for _pid, cmd in leftovers(runner.home, runner.port))
    for name in (
        "postgres",
        "redis-server",
        "rampart.cli api",
        "rampart.cli worker",
        "rampart.cli relay",
    ):
        assert name in running, f"{name!r} not among the stack's processes: {running}"

    with httpx.Client(base_url=runner.url, timeout=30) as client:
        account = signup(client)
        created = client.post(
            "/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers
        )
        assert created.status_code == 202, created.text
        assessment_id = created.json()["id"]

        def completed() -> dict | None:
            url = f"/api/v1/assessments/{assessment_id}"
            body = client.get(url, headers=account.headers).json()
            return body if body["status"] == "completed" else None

        done = wait_until(
            completed, 60, 0.2, message=f"assessment {assessment_id} to complete via `up`"
        )
        roadmap = client.get(f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers)
        assert roadmap.status_code == 200

    # A second `up` on the same data dir refuses, with one clear line, and leaves the
    # first alone.
    second = subprocess.run(  # noqa: S603
        runner.command(),
        env=runner.env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode != 0
    said = [line for line in (second.stderr + second.stdout).splitlines() if line.strip()]
    assert len(said) == 1 and "already running" in said[0], said
    assert f"pid {first.popen.pid}" in said[0], said
    assert first.popen.poll() is None
    assert httpx.get(f"{runner.url}/ready", timeout=5).status_code == 200

    # SIGTERM stops everything it started, then it exits cleanly.
    assert runner.terminate(first) == 0, first.describe()
    assert_nothing_left(runner)
    assert "stopped." in first.stderr()

    # Start again: same data dir, same data.
    again = runner.start()
    runner.wait_up(again)
    with httpx.Client(base_url=runner.url, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        kept = client.get(f"/api/v1/assessments/{assessment_id}", headers=headers)
        assert kept.status_code == 200
        assert kept.json()["status"] == "completed"
        assert kept.json()["roadmap_id"] == done["roadmap_id"]
    assert runner.terminate(again) == 0, again.describe()
    assert_nothing_left(runner)
