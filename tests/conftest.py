"""Test fixtures on the real stack: an embedded Postgres and Redis on free ports in a fresh
directory (never `make up`'s .rampart/), migrated as the migration role; the API served by
a real uvicorn on a real socket. Set DATABASE_URL / REDIS_URL to test against other servers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import TestStack, start_test_stack


@pytest.fixture(scope="session")
def stack() -> Iterator[TestStack]:
    # /tmp, not pytest's 0700 tmp: the unprivileged Postgres user must traverse it.
    home = Path(tempfile.mkdtemp(prefix="rampart-test-", dir="/tmp"))
    test_stack = start_test_stack(home)
    try:
        yield test_stack
    finally:
        test_stack.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def api(stack: TestStack) -> Iterator[str]:
    """Base URL of the app served in-process by uvicorn on a free port."""
    from tests.support.server import serve_in_thread

    with serve_in_thread() as url:
        yield url


@pytest.fixture
def client(api: str):
    import httpx

    with httpx.Client(base_url=api, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def http(api: str):
    """A client for the app shared by a module's tests (and its module-scoped fixtures)."""
    import httpx

    with httpx.Client(base_url=api, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def superuser(stack: TestStack) -> str:
    """Conninfo of the embedded Postgres' superuser in the app's database: setup and ground
    truth only (it bypasses RLS); skips the test when DATABASE_URL points elsewhere."""
    from tests.support.db import superuser_conninfo

    return superuser_conninfo(stack)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Each test is marked by its folder, so `-m unit` etc. select as expected.
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in ("unit", "integration", "e2e", "chaos"):
            item.add_marker(getattr(pytest.mark, folder))


os.environ.setdefault("ENV", "test")
