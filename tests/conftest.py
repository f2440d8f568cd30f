"""Test fixtures on the real stack: an embedded Postgres and Redis on free ports in a fresh
directory (never `make up`'s .rampart/), migrated as the migration role; the API served by
a real uvicorn on a real socket. Set DATABASE_URL / REDIS_URL to test against other servers.

In parallel (`pytest -n N`, pytest-xdist, `--dist loadgroup` as `make test` runs it) every
worker is its own pytest session, so it starts its own stack: its own Postgres, Redis, mail
capture and API on free ports in its own /tmp home. No two workers share a server, a
database or a queue. Tests are placed on workers in groups (`xdist_group`, see
`_xdist_group`): a whole integration module on one worker (its module fixtures run once),
each chaos or e2e module on one worker (they start real processes, kill and freeze the
worker's own servers, and must not be split).
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rampart.kit import gc_startup
from tests.support import httpclient
from tests.support.stack import TestStack, start_test_stack

# Collecting imports every test module and the app: the cycle collector waits until the
# suite is collected, then skips what collection made (kit/gc_startup.py; test-fast took
# 8 % less CPU).
gc_startup.pause()

ROOT = Path(__file__).resolve().parents[1]
_started: list[TestStack] = []  # the session's stack, once a test asked for it


@pytest.fixture(scope="session")
def stack() -> Iterator[TestStack]:
    # /tmp, not pytest's 0700 tmp: the unprivileged Postgres user must traverse it.
    home = Path(tempfile.mkdtemp(prefix="rampart-test-", dir="/tmp"))
    test_stack = start_test_stack(home)
    _started.append(test_stack)
    try:
        yield test_stack
    finally:
        _started.remove(test_stack)
        test_stack.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def no_leftover_work() -> Iterator[None]:
    """After each module that ran on the stack: no pending job, unpublished outbox row or
    queued message is left for the next module (tests/support/db.py, clear_leftover_work),
    so no module depends on which ran before it, on this worker or in this order."""
    yield
    if _started:
        from tests.support.db import clear_leftover_work

        clear_leftover_work(_started[0])


@pytest.fixture(scope="session")
def api(stack: TestStack) -> Iterator[str]:
    """Base URL of the app served in-process by uvicorn on a free port."""
    from tests.support.server import serve_in_thread

    with serve_in_thread() as url:
        yield url


@pytest.fixture
def client(api: str):
    with httpclient.client(base_url=api, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def http(api: str):
    """A client for the app shared by a module's tests (and its module-scoped fixtures)."""
    with httpclient.client(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def superuser(stack: TestStack) -> str:
    """Conninfo of the embedded Postgres' superuser in the app's database: setup and ground
    truth only (it bypasses RLS); skips the test when DATABASE_URL points elsewhere."""
    from tests.support.db import superuser_conninfo

    return superuser_conninfo(stack)


def _xdist_group(folder: str, module: str) -> str | None:
    """Which tests must run on the same worker, one after another (None: any worker).

    - unit: none, spread one by one.
    - integration: one group per module, so module-scoped fixtures (accounts, servers,
      settings) are set up once and a module's tests keep their order.
    - e2e and chaos: one group per module. Each starts real API, worker and relay
      processes (chaos also stops, restarts and freezes the worker's own Postgres and
      Redis), so a module never shares its stack with another module at the same time:
      a worker runs its tests one at a time.
    """
    if folder == "unit":
        return None
    if folder in ("integration", "e2e", "chaos"):
        return f"{folder}/{module}"
    return None


# The longest modules (minutes each), started first so they do not end the run alone:
# `make test` keeps this order (--no-loadscope-reorder) instead of xdist's default of
# running the modules with the most tests first.
LONGEST_FIRST = (
    "tests/chaos/test_resilience.py",
    "tests/integration/test_backups.py",
    "tests/e2e/test_make_up.py",
    "tests/e2e/test_up_operator.py",
    "tests/integration/test_schemathesis.py",
    "tests/e2e/test_pipeline.py",
    "tests/e2e/test_observability.py",
    "tests/e2e/test_incident_simulation.py",
    "tests/e2e/test_readme.py",
)


def _rank(item: pytest.Item) -> int:
    path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def _check_timing_mark(item: pytest.Item, path: Path) -> None:
    """The Makefile runs the timing tests by collecting only the files that say `mark.timing`
    (TIMING_TESTS): a test marked some other way would run in no pass at all."""
    if item.get_closest_marker("timing") and "mark.timing" not in _source(path):
        raise pytest.UsageError(f"{item.nodeid}: mark timing tests with `pytest.mark.timing`")


@functools.cache
def _source(path: Path) -> str:
    return path.read_text()


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session):
    try:
        return (yield)
    finally:
        gc_startup.resume()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        _check_timing_mark(item, path)
        folder = path.parent.name
        # Each test is marked by its folder, so `-m unit` etc. select as expected.
        if folder in ("unit", "integration", "e2e", "chaos"):
            item.add_marker(getattr(pytest.mark, folder))
        group = _xdist_group(folder, path.stem)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=_rank)  # stable: the rest keep their order


os.environ.setdefault("ENV", "test")
