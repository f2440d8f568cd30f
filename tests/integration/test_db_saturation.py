"""Pool exhaustion answers 503 fast instead of hanging (seed 001 §7.4, scenario 3), and
/ready tells saturation apart from a Postgres outage (issue 18, item 7)."""

from __future__ import annotations

import threading
import time

import pytest
from tests.support import httpclient
from tests.support.db import su_lock, waiting_on_a_lock
from tests.support.server import serving
from tests.support.users import answers, signup
from tests.support.wait import wait_until

from rampart.kit.health import SATURATION_WINDOW_SECONDS

# `timing`: wall-clock bounds under a tiny pool; run alone after the parallel run (Makefile).
pytestmark = [pytest.mark.timing, pytest.mark.slow]  # slow: a pool held for seconds

def test_an_exhausted_pool_gives_503_overloaded_and_ready_says_saturated_not_postgres(
    stack, superuser
):
    with serving(DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT_SECONDS="0.5") as http:
        account = signup(http, "Saturated")
        created = http.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
        ).json()
        url = str(http.base_url)
        blocked: list[int] = []
        # A lock taken outside the app: the DELETE below waits for it, holding the pool's
        # only connection (a locked table reads the same way).
        lock = "SELECT 1 FROM assessments WHERE id = %s FOR UPDATE"
        with su_lock(superuser, lock, created["id"]):

            def delete() -> None:
                with httpclient.client(base_url=url, timeout=30) as other:
                    path = f"/api/v1/assessments/{created['id']}"
                    blocked.append(other.delete(path, headers=account.headers).status_code)

            holder = threading.Thread(target=delete)
            holder.start()
            # The DELETE now holds the pool's connection, waiting for the lock.
            wait_until(
                lambda: waiting_on_a_lock(superuser) >= 1, 10, 0.02, message="the DELETE to wait"
            )
            started = time.monotonic()
            refused = http.get("/api/v1/me", headers=account.headers)
            waited = time.monotonic() - started
            ready = http.get("/ready")
        holder.join(30)  # the lock is gone: the DELETE goes through
        assert blocked == [204]
        assert refused.status_code == 503 and waited < 3
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused.headers["retry-after"] == "1"
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["postgres"] == "ok" and checks["redis"] == "ok"
        assert checks["capacity"].startswith("failed: saturated")
        # Once nothing was refused for a few seconds (SATURATION_WINDOW_SECONDS), the process
        # is ready again.
        assert http.get("/api/v1/me", headers=account.headers).status_code == 200
        wait_until(
            lambda: http.get("/ready").status_code == 200, 5 + 5, 0.2, message="/ready to be 200"
        )
        assert time.monotonic() - started >= SATURATION_WINDOW_SECONDS
