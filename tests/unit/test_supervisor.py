"""How `rampart up` stops, watches and cleans up its processes (devstack/supervisor.py), on
real processes that stand in for the services: a main process with a forked "pool" child,
as Celery prefork has (a threads pool or uvicorn's workers are stopped the same way: only
the main process is signalled).
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.support.wait import wait_until

from rampart.devstack.supervisor import (
    CrashLoop,
    Service,
    Supervisor,
    group_members,
    leftovers,
    stop_groups,
    stop_services,
)

# A main process that forks one "pool" child working for WORK seconds. The child dies
# (and leaves a mark) if a SIGTERM reaches it; the main process, on SIGTERM, waits for
# the child to finish its work, like Celery's warm shutdown.
PREFORK = textwrap.dedent(
    """
    import os, signal, sys, time
    marks, work, main_ignores_sigterm = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    def warm_shutdown(*_):
        os.waitpid(-1, 0)  # the child: this process may not have stored its pid yet
        sys.exit(0)
    # Before the fork: once the child says it is working, a SIGTERM must find this handler.
    signal.signal(signal.SIGTERM, signal.SIG_IGN if main_ignores_sigterm else warm_shutdown)
    child = os.fork()
    if child == 0:
        def hit(*_):
            open(os.path.join(marks, "child-got-sigterm"), "w").close()
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_IGN if main_ignores_sigterm else hit)
        open(os.path.join(marks, "child-working"), "w").close()
        time.sleep(work)
        open(os.path.join(marks, "child-finished"), "w").close()
        os._exit(0)
    while True:
        time.sleep(0.05)
    """
)


def prefork(tmp_path: Path, work: float, ignores_sigterm: bool = False) -> Service:
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    command = [sys.executable, "-c", PREFORK, str(marks), str(work), str(int(ignores_sigterm))]
    return Service("worker", command, {}, tmp_path)


def test_a_warm_stop_signals_only_the_main_process_and_lets_its_work_finish(tmp_path):
    service = prefork(tmp_path, work=1.5)
    service.start()
    marks = tmp_path / "marks"
    wait_until(lambda: (marks / "child-working").exists(), 10, 0.02)

    started = time.monotonic()
    assert stop_services([service], drain=20) is True  # nothing had to be killed
    took = time.monotonic() - started

    assert (marks / "child-finished").exists()
    assert not (marks / "child-got-sigterm").exists()
    assert service.ended() == "exited with status 0"
    assert group_members(service.pgid) == []
    assert 0.5 < took < 10


def test_what_outlives_the_drain_is_killed_with_its_whole_group(tmp_path):
    service = prefork(tmp_path, work=60, ignores_sigterm=True)
    service.start()
    wait_until(lambda: (tmp_path / "marks" / "child-working").exists(), 10, 0.02)
    assert len(group_members(service.pgid)) == 2

    started = time.monotonic()
    assert stop_services([service], drain=1.0) is False
    took = time.monotonic() - started

    assert service.ended() == "was killed by SIGKILL"
    assert group_members(service.pgid) == []
    assert not (tmp_path / "marks" / "child-finished").exists()
    assert 0.9 < took < 8


def test_a_second_signal_stops_waiting_for_the_drain(tmp_path):
    service = prefork(tmp_path, work=60, ignores_sigterm=True)
    service.start()
    wait_until(lambda: (tmp_path / "marks" / "child-working").exists(), 10, 0.02)
    asked = time.monotonic() + 0.5
    started = time.monotonic()
    assert stop_services([service], drain=60, force_now=lambda: time.monotonic() > asked) is False
    assert time.monotonic() - started < 8
    assert group_members(service.pgid) == []


def test_a_crashing_child_is_restarted_with_a_growing_delay_then_given_up_on(tmp_path):
    service = Service("api", [sys.executable, "-c", "import sys; sys.exit(3)"], {}, tmp_path)
    said: list[str] = []
    supervisor = Supervisor(
        said.append, first_delay=0.1, max_delay=0.25, stable_after=10, max_quick_exits=4
    )
    service.start()
    supervisor.watch("api", service.start, service.ended)

    def gives_up() -> str | None:
        try:
            supervisor.check()
        except CrashLoop as exc:
            return str(exc)
        return None

    message = wait_until(gives_up, 20, 0.02, message=lambda: f"a CrashLoop; said {said}")
    assert message == (
        "api exited with status 3, 4 times in a row within 10s of starting; stopping the stack"
    )
    ended = [line for line in said if "restarting" in line]
    assert [line.rsplit(" in ", 1)[1] for line in ended] == ["0.1s", "0.2s", "0.25s"]
    assert all(line.startswith("api exited with status 3 after 0s;") for line in ended)
    assert said.count("api restarted") == 3


def test_a_killed_child_is_reported_by_its_signal_and_runs_again(tmp_path):
    service = Service("relay", [sys.executable, "-c", "import time; time.sleep(60)"], {}, tmp_path)
    said: list[str] = []
    supervisor = Supervisor(said.append, first_delay=0.1)
    service.start()
    supervisor.watch("relay", service.start, service.ended)
    first = service.popen.pid
    os.kill(first, signal.SIGKILL)

    def restarted() -> bool:
        supervisor.check()
        return "relay restarted" in said

    wait_until(restarted, 10, 0.02, message=lambda: f"a restart; said {said}")
    assert said[0].startswith("relay was killed by SIGKILL after 0s; restarting it in 0.1s")
    assert service.popen.pid != first and service.ended() is None
    stop_services([service], drain=5)


def test_leftovers_of_a_dead_up_are_found_and_stopped(tmp_path):
    """A killed `up` leaves its services running: the next one finds them by their marker."""
    service = prefork(tmp_path, work=0.5)
    service.start()
    wait_until(lambda: (tmp_path / "marks" / "child-working").exists(), 10, 0.02)
    found = leftovers(tmp_path)
    assert set(found) == {service.pgid}
    assert len(found[service.pgid]) == 2
    assert stop_groups(found, drain=10) is True
    assert leftovers(tmp_path) == {}
    assert (tmp_path / "marks" / "child-finished").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_a_service_is_asked_to_stop_when_up_dies(tmp_path):
    mark, ready = tmp_path / "got-sigterm", tmp_path / "ready"
    child = (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(mark)!r}, 'w').close(), "
        "sys.exit(0)))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )
    parent = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from rampart.devstack.supervisor import Service\n"
        f"Service('relay', [sys.executable, '-c', {child!r}], {{}}, Path({str(tmp_path)!r}))"
        ".start()\n"
        "time.sleep(60)\n"
    )
    import subprocess

    up = subprocess.Popen([sys.executable, "-c", parent])  # noqa: S603
    wait_until(ready.exists, 10, 0.05, message="the service to start")
    assert leftovers(tmp_path)
    up.kill()
    up.wait(5)
    wait_until(lambda: mark.exists(), 10, 0.05, message="the service to get SIGTERM")
    wait_until(lambda: not leftovers(tmp_path), 10, 0.05)
