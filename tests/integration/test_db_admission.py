"""Past the pool's capacity the API queues requests instead of stalling: transactions wait
in order for a pooled connection (kit/db/transaction.py), and one that waits longer than
DB_POOL_TIMEOUT_SECONDS gets 503 `overloaded`.

(The sync request path once stalled here: with a pool of 2 and anyio's 40 threads, 80
concurrent reads let every thread block in pool checkout while the connection holders
waited for a thread. The async path has no threads to run out of; this keeps it so.)
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from prometheus_client import REGISTRY
from tests.support import httpclient
from tests.support.server import serving
from tests.support.users import answers, signup

CONCURRENT = 80


# `timing`: wall-clock bounds under a tiny pool; run alone after the parallel run (Makefile).
pytestmark = [pytest.mark.timing, pytest.mark.slow]  # slow: a pool held for seconds

def _get_all(base_url: str, path: str, headers: dict[str, str]) -> list[int]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    with (
        httpclient.client(base_url=base_url, timeout=60, limits=limits) as http,
        ThreadPoolExecutor(CONCURRENT) as pool,
    ):
        futures = [
            pool.submit(lambda: http.get(path, headers=headers).status_code)
            for _ in range(CONCURRENT * 3)
        ]
        return [future.result() for future in futures]


def test_more_requests_than_threads_and_connections_all_succeed(stack):
    with serving(DB_POOL_SIZE="2", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT_SECONDS="3") as http:
        account = signup(http, "Admission")
        created = http.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
        )
        path = f"/api/v1/assessments/{created.json()['id']}"
        statuses = _get_all(str(http.base_url), path, account.headers)
    assert statuses.count(200) == len(statuses), sorted(set(statuses))


def test_a_request_that_waits_too_long_for_a_connection_gets_503_overloaded(stack):
    # Capacity 1 and a 50 ms wait: 80 concurrent requests cannot all be admitted in time.
    with serving(DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT_SECONDS="0.05") as http:
        account = signup(http, "Overloaded")
        before = (
            REGISTRY.get_sample_value(
                "rampart_http_errors_total", {"status": "503", "code": "overloaded"}
            )
            or 0
        )
        statuses = _get_all(str(http.base_url), "/api/v1/me", account.headers)
        refused = http.get("/health")
    assert 503 in statuses and 200 in statuses
    assert set(statuses) == {200, 503}
    after = REGISTRY.get_sample_value(
        "rampart_http_errors_total", {"status": "503", "code": "overloaded"}
    )
    assert after == before + statuses.count(503)
    assert refused.status_code == 200  # probes are never queued
