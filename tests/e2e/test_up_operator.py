"""The operator's first hour with `rampart up` (what `make up` runs).

- Every `rampart ...` command of the runbooks' shell blocks runs against the running stack
  with no variable set: the operator commands find the `up` of the default RAMPART_HOME
  (.rampart/ in the working directory) by its up.json, and say which one they use. With
  no `up` running they refuse in one line, without a traceback.
- A busy port stops `up` with one line before it starts anything.
- SIGKILL of `up` takes every child with it; the next `up` comes up clean, stops what a
  killed one left running (a frozen Postgres) by its recorded pid, and leaves alone a
  process that merely got a recorded pid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from tests.support import httpclient
from tests.support.up import REPO, UpRunner, assert_nothing_left, leftovers, up_runner
from tests.support.users import answers, signup
from tests.support.wait import wait_until

from rampart.devstack.ports import free_port
from rampart.kit.processes import pid_alive, start_time

pytestmark = pytest.mark.slow

RUNBOOKS = sorted((REPO / "docs" / "runbooks").glob("*.md"))
SHELL_BLOCK = re.compile(r"^[ \t]*```(?:sh|bash|shell)[ \t]*\n(.*?)^[ \t]*```", re.M | re.S)
COMMAND = re.compile(r"^\s*(rampart\s[^#\n]*?)\s*(?:#.*)?$", re.M)
# Exit codes the runbooks document for a command run against a healthy `up` stack.
EXPECTED = {
    # queue-backlog.md: "It refuses while any worker answers a ping" (up's worker does).
    "rampart release-deliveries": (1, "refusing"),
}
USING = "using the stack of `rampart up`"


def runbook_commands() -> list[tuple[str, str]]:
    """(runbook, command) for every `rampart ...` line of a shell block, in reading order."""
    return [
        (path.name, command.group(1))
        for path in RUNBOOKS
        for block in SHELL_BLOCK.finditer(path.read_text())
        for command in COMMAND.finditer(block.group(1))
    ]


def operator(runner: UpRunner, command: str) -> subprocess.CompletedProcess[str]:
    """`command` as an operator types it, in the directory holding the stack's .rampart/:
    no RAMPART_HOME, no URL in the environment."""
    env = {k: v for k, v in runner.env.items() if k != "RAMPART_HOME"}
    args = command.split()[1:]
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "rampart.cli", *args],
        env={**env, "COLUMNS": "200"},
        cwd=runner.home.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def open_dead_letters(runner: UpRunner) -> list[str]:
    rows = runner.sql(
        "SELECT id FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL ORDER BY id"
    )
    return [row[0] for row in rows]


def dead_letter(runner: UpRunner, tenant_id: str) -> str:
    """An open dead letter: a poison job enqueued as the app does, quarantined by up's
    worker after its one (definitive) failure."""
    known = set(open_dead_letters(runner))
    urls = json.loads((runner.home / "up.json").read_text())["urls"]
    code = "import sys; from tests.support.jobs import enqueue_poison_job as e; e(sys.argv[1])"
    subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code, tenant_id],
        env={**runner.env, **urls},
        cwd=REPO,
        check=True,
        timeout=60,
    )
    new = wait_until(
        lambda: [i for i in open_dead_letters(runner) if i not in known],
        60,
        0.2,
        message="the poison job to be quarantined",
    )
    return new[0]


def test_every_runbook_command_runs_against_the_make_up_stack_without_a_variable(runner):
    commands = runbook_commands()
    assert len(commands) >= 15, commands  # the extraction finds the runbooks' commands
    up = runner.start()
    runner.wait_up(up)
    with httpclient.client(base_url=runner.url, timeout=30) as client:
        account = signup(client, mailbox=runner.home / "mail")
        created = client.post(
            "/api/v1/assessments", json={"answers": answers(3)}, headers=account.headers
        )
        assert created.status_code == 202, created.text
        trace_id = created.headers["X-Request-ID"]

    ran = []
    for runbook, command in commands:
        line = command.replace("<trace_id>", trace_id)
        if re.search(r"\bID\b", line):
            open_ids = open_dead_letters(runner)
            chosen = open_ids[0] if open_ids else dead_letter(runner, account.tenant_id)
            line = re.sub(r"\bID\b", chosen, line)
        done = operator(runner, line)
        said = done.stdout + done.stderr
        code, marker = EXPECTED.get(command, (0, ""))
        where = f"{runbook}: `{line}` exited {done.returncode}:\n{said}"
        assert done.returncode == code, where
        assert marker in said, where
        # (stdout may hold one: `dlq show` prints the quarantined job's own traceback)
        assert "Traceback" not in done.stderr and "is not set" not in said, where
        if "--no-database" not in line:
            assert USING in done.stderr, where
        ran.append(line)
    print(f"{len(ran)} runbook commands ran against `rampart up`:\n" + "\n".join(ran))
    assert runner.terminate(up) == 0, up.describe()
    assert_nothing_left(runner)


def test_an_operator_command_without_a_running_stack_refuses_in_one_line(tmp_path):
    for command in ("dlq list", "incidents", "maintenance read-only on", "billing-reconcile"):
        env = {
            k: v for k, v in os.environ.items() if not k.endswith("_URL") and k != "RAMPART_HOME"
        }
        done = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "rampart.cli", *command.split()],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        assert done.returncode == 1, lines
        assert len(lines) == 1, lines
        assert f"no `rampart up` is running in {tmp_path / '.rampart'}" in lines[0], lines


# --- busy ports -----------------------------------------------------------------------------


def listening(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def refused_up(runner: UpRunner) -> list[str]:
    returncode, lines = runner.run_to_exit()
    assert returncode == 1, lines
    return lines


def assert_nothing_started(runner: UpRunner) -> None:
    assert not (runner.home / "postgres" / "data").exists()
    assert not (runner.home / "redis").exists()
    assert not leftovers(runner.home, runner.port)


@pytest.mark.parametrize("service", ["API", "Postgres"])
def test_a_busy_port_stops_up_with_one_line_before_it_starts_anything(service):
    with up_runner() as runner:
        if service == "API":
            port, hint = runner.port, "set PORT to another port"
        else:  # the port recorded for the embedded Postgres of this home
            port = free_port()
            runner.home.mkdir(mode=0o700)
            (runner.home / "ports.json").write_text(
                json.dumps({"postgres": port, "redis": port, "smtp": port})
            )
            hint = f'delete "postgres" from {runner.home / "ports.json"}'
        with listening(port):
            lines = refused_up(runner)
        assert len(lines) == 1, lines
        assert f"port {port} ({service}) is already in use on 127.0.0.1" in lines[0], lines
        assert hint in lines[0], lines
        assert_nothing_started(runner)


# --- a killed `up` ----------------------------------------------------------------------------


def recorded(runner: UpRunner) -> dict[str, int]:
    """Child name → pid, as the running `up` recorded them in up.json."""
    children = json.loads((runner.home / "up.json").read_text())["children"]
    return {name: child["pid"] for name, child in children.items()}


def wait_recorded(runner: UpRunner) -> dict[str, int]:
    names = {"postgres", "redis", "api", "worker", "relay", "backups", "billing"}
    wait_until(
        lambda: (runner.home / "up.json").exists() and set(recorded(runner)) == names,
        30,
        message="up.json to record every child",
    )
    return recorded(runner)


def test_children_die_with_a_killed_up_and_the_next_up_stops_what_was_left(runner):
    first = runner.start()
    runner.wait_up(first)
    children = wait_recorded(runner)
    started = time.monotonic()
    first.popen.send_signal(signal.SIGKILL)
    first.popen.wait(10)
    wait_until(
        lambda: not [pid for pid in children.values() if pid_alive(pid)],
        30,
        0.1,
        message=lambda: (
            "every child of the killed `up` to die: still "
            + str({n: p for n, p in children.items() if pid_alive(p)})
        ),
    )
    died = time.monotonic() - started
    assert_nothing_left(runner)
    print(f"children gone {died:.1f}s after SIGKILL of `up`")

    second = runner.start()
    runner.wait_up(second)
    now = wait_recorded(runner)
    assert not set(now.values()) & set(children.values())
    assert "left running" not in second.stderr(), second.describe()

    # A child that cannot act on its death signal (a frozen Postgres) outlives a killed
    # `up`; the next `up` stops it by its recorded pid. A pid up.json names that now
    # belongs to someone else (another start time) is left alone.
    postmaster = now["postgres"]
    os.kill(postmaster, signal.SIGSTOP)
    second.popen.send_signal(signal.SIGKILL)
    second.popen.wait(10)
    bystander = subprocess.Popen(["sleep", "300"])  # noqa: S607
    try:
        record = json.loads((runner.home / "up.json").read_text())
        other_start = start_time(bystander.pid) - 100  # the pid, not the process, recorded
        record["children"]["relay"] = {"pid": bystander.pid, "started": other_start}
        (runner.home / "up.json").write_text(json.dumps(record))
        others = [pid for name, pid in now.items() if name != "postgres"]
        wait_until(
            lambda: not [pid for pid in others if pid_alive(pid)],
            30,
            0.1,
            message="the other children to act on their death signal",
        )
        assert pid_alive(postmaster)

        third = runner.start()
        runner.wait_up(third)
        assert not pid_alive(postmaster), third.describe()
        assert "stopping 1 process group(s) an earlier `up` left running" in third.stderr()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(10)
    assert runner.terminate(third) == 0, third.describe()
    assert_nothing_left(runner)
