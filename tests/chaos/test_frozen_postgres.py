"""A frozen Postgres never hangs a request (issue 18, item 2).

SIGSTOP on every Postgres process: the kernel still accepts connections and acknowledges
what is sent, so neither connect nor TCP keepalives notice; only a client-side bound on
every wait does (DB_COMMAND_TIMEOUT_SECONDS, DB_CONNECT_TIMEOUT_SECONDS,
DB_POOL_TIMEOUT_SECONDS). Requests already in a transaction and new ones alike must get a
503 within that bound, and the API must serve again by itself once Postgres thaws.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.support import httpclient
from tests.support.server import serving
from tests.support.users import answers, signup

from rampart.devstack.postgres import _processes_in

BOUND_SECONDS = 5.0  # command timeout 2 s, connect timeout 2 s, and slack for a busy machine


def _signal_postgres(stack, sig: int) -> int:
    pids = _processes_in(stack.postgres.data_dir)
    for pid in pids:
        os.kill(pid, sig)
    return len(pids)


def test_requests_during_a_postgres_freeze_end_in_503_within_the_bound_and_recover(stack):
    if stack.postgres is None:
        pytest.fail("needs the embedded Postgres to freeze it")
    with serving(
        DB_COMMAND_TIMEOUT_SECONDS="2",
        DB_STATEMENT_TIMEOUT_MS="1000",
        DB_CONNECT_TIMEOUT_SECONDS="2",
        DB_POOL_TIMEOUT_SECONDS="1",
        DB_POOL_SIZE="4",
        DB_MAX_OVERFLOW="0",
    ) as http:
        account = signup(http, "Frozen")
        created = http.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
        ).json()
        path = f"/api/v1/assessments/{created['id']}"
        for _ in range(8):  # the pool holds open connections now
            assert http.get(path, headers=account.headers).status_code == 200
        base = str(http.base_url)

        def timed_get() -> tuple[int, float, str]:
            with httpclient.client(base_url=base, timeout=30) as client:
                t0 = time.monotonic()
                response = client.get(path, headers=account.headers)
                code = response.json().get("error", {}).get("code", "")
                return response.status_code, time.monotonic() - t0, code

        frozen_at = None
        try:
            assert _signal_postgres(stack, signal.SIGSTOP) > 0
            frozen_at = time.monotonic()
            with ThreadPoolExecutor(12) as pool:
                results = list(pool.map(lambda _: timed_get(), range(12)))
            ready = http.get("/ready")
        finally:
            _signal_postgres(stack, signal.SIGCONT)
        frozen_for = time.monotonic() - frozen_at

        recovered_after = None
        thawed = time.monotonic()
        while time.monotonic() - thawed < 15:
            if http.get(path, headers=account.headers).status_code == 200:
                recovered_after = time.monotonic() - thawed
                break
            time.sleep(0.2)

    statuses = {status for status, _t, _c in results}
    slowest = max(t for _s, t, _c in results)
    print(
        f"\nfrozen {frozen_for:.1f}s: {len(results)} requests, slowest {slowest:.2f}s, "
        f"codes {sorted({c for _s, _t, c in results})}, recovered after {recovered_after}s"
    )
    assert statuses == {503}
    assert {code for _s, _t, code in results} <= {"db_unavailable", "overloaded"}
    assert slowest < BOUND_SECONDS
    assert ready.status_code == 503 and ready.json()["checks"]["postgres"] != "ok"
    assert recovered_after is not None and recovered_after < 5
