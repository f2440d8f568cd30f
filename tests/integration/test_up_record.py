"""What `rampart up` records in up.json (devstack/running.py), on real processes: a recorded
child counts as a leftover only while its pid is still the very process `up` started (a
reused pid is never signalled), and the operator commands' fallback takes the running
`up`'s URLs, says so once, and refuses in one line when no `up` runs."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rampart.config import MissingSetting
from rampart.devstack import running
from rampart.kit.processes import start_time


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not ours to stop."""
    process = subprocess.Popen(["sleep", "300"])  # noqa: S607
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


def dead_pid() -> tuple[int, int | None]:
    """A pid and start time of a process that has exited (a killed `up`)."""
    process = subprocess.Popen(["sleep", "300"])  # noqa: S607
    started = start_time(process.pid)
    process.kill()
    process.wait(10)
    return process.pid, started


def record(home: Path, up: tuple[int, int | None], children: dict[str, running.Child]) -> None:
    urls = {"REDIS_URL": "redis://127.0.0.1:1/0"}
    running.write(home, running.UpRecord(up[0], up[1], urls, children))


def test_a_recorded_child_of_a_dead_up_is_a_leftover_only_while_it_is_the_same_process(
    tmp_path, sleeper
):
    pid = sleeper.pid
    record(tmp_path, dead_pid(), {"postgres": running.child(pid, signal.SIGINT)})
    assert running.leftover_groups(tmp_path) == {pid: signal.SIGINT}

    # The same pid with another start time: the kernel gave it to another process.
    started = start_time(pid)
    assert started is not None
    record(tmp_path, dead_pid(), {"postgres": running.Child(pid, started - 1, signal.SIGINT)})
    assert running.leftover_groups(tmp_path) == {}
    assert sleeper.poll() is None


def test_the_children_of_an_up_that_still_runs_are_no_leftovers(tmp_path, sleeper):
    me = (os.getpid(), start_time(os.getpid()))
    record(tmp_path, me, {"relay": running.child(sleeper.pid)})
    assert running.leftover_groups(tmp_path) == {}
    assert running.running_up(tmp_path) is not None


def test_the_fallback_uses_the_running_ups_urls_and_says_so_once(tmp_path):
    said: list[str] = []
    fallback = running.StackFallback(lambda: tmp_path, said.append)
    record(tmp_path, (os.getpid(), start_time(os.getpid())), {})
    assert fallback("REDIS_URL") == "redis://127.0.0.1:1/0"
    assert fallback("REDIS_URL") == "redis://127.0.0.1:1/0"
    assert said == [f"using the stack of `rampart up` (pid {os.getpid()}) in {tmp_path}"]
    with pytest.raises(MissingSetting, match="OPERATOR_DATABASE_URL is not set, nor known"):
        fallback("OPERATOR_DATABASE_URL")


def test_the_fallback_refuses_in_one_line_when_the_recording_up_is_gone(tmp_path):
    fallback = running.StackFallback(lambda: tmp_path, lambda line: None)
    with pytest.raises(MissingSetting) as refused:
        fallback("REDIS_URL")  # no up.json at all
    record(tmp_path, dead_pid(), {})
    with pytest.raises(MissingSetting) as refused_again:
        fallback("REDIS_URL")  # up.json of a killed up
    for error in (refused.value, refused_again.value):
        message = str(error)
        assert "\n" not in message
        assert f"no `rampart up` is running in {tmp_path}" in message
        assert "set REDIS_URL" in message
