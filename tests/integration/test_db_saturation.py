"""Pool exhaustion answers 503 fast instead of hanging (seed 001 §7.4, scenario 3)."""

from __future__ import annotations

import httpx
from tests.support.users import signup


def test_exhausted_pool_gives_503_db_unavailable_within_the_acquire_timeout(stack, monkeypatch):
    from tests.support.server import serve_in_thread
    from tests.support.stack import reset_caches

    from rampart.kit.db.engine import get_engine

    for name, value in {
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT_SECONDS": "0.5",
    }.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    try:
        with serve_in_thread() as url, httpx.Client(base_url=url, timeout=10) as client:
            account = signup(client)
            held = get_engine().connect()  # the pool's only connection, taken
            try:
                # Without the pool timeout this would wait 30 s and trip the client's 10 s.
                response = client.get("/api/v1/me", headers=account.headers)
            finally:
                held.close()
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "db_unavailable"
            assert client.get("/api/v1/me", headers=account.headers).status_code == 200
    finally:
        for name in ("DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT_SECONDS"):
            monkeypatch.delenv(name)
        reset_caches()
