"""The Redis-backed circuit breaker on a real Redis: shared state, one half-open trial across
processes (two breaker instances with their own connections stand in for two processes),
fail fast while open, and fail-open when Redis is gone."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import redis
from tests.support.processes import wait_until

from rampart.devstack.ports import free_port
from rampart.kit.resilience import BreakerState, CircuitBreaker, CircuitOpenError


class Boom(Exception):
    pass


@pytest.fixture
def redis_url(stack) -> str:
    return stack.env["REDIS_URL"]


@pytest.fixture
def make_breaker(redis_url):
    """Breakers sharing one fresh name; each call opens its own connection pool
    (a separate "process")."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    clients: list[redis.Redis] = []

    def make(**options) -> CircuitBreaker:
        client = redis.Redis.from_url(redis_url)
        clients.append(client)
        defaults = {"failure_threshold": 3, "cooldown_seconds": 0.3, "trial_ttl_seconds": 10}
        return CircuitBreaker(name, client, **{**defaults, **options})

    yield make
    if clients:
        clients[0].delete(*make().keys)
    for client in clients:
        client.close()


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises((Boom, CircuitOpenError)):
            breaker.call(_boom)


def _boom() -> None:
    raise Boom("provider down")


def test_breaker_opens_after_the_threshold_of_consecutive_failures(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.state() is BreakerState.CLOSED
    assert breaker.failures() == 2
    fail(breaker, 1)
    assert breaker.state() is BreakerState.OPEN


def test_a_success_resets_the_consecutive_failure_count(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    fail(breaker, 2)
    assert breaker.call(lambda: "ok") == "ok"
    fail(breaker, 2)
    assert breaker.state() is BreakerState.CLOSED


def test_while_open_calls_fail_fast_without_calling(make_breaker):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=60)
    fail(breaker)
    calls = []
    t0 = time.perf_counter()
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: calls.append(1))
    assert calls == []
    assert info.value.state is BreakerState.OPEN
    assert 55 < info.value.retry_in <= 60
    assert breaker.allow() is None
    assert time.perf_counter() - t0 < 0.5


def test_state_is_shared_between_processes(make_breaker):
    here, elsewhere = make_breaker(), make_breaker()
    fail(here, 3)
    calls = []
    with pytest.raises(CircuitOpenError):
        elsewhere.call(lambda: calls.append(1))
    assert calls == []


def test_half_open_lets_exactly_one_trial_through_across_processes(make_breaker):
    a, b = make_breaker(cooldown_seconds=0.3), make_breaker(cooldown_seconds=0.3)
    fail(a, 3)
    wait_until(lambda: a.state() is BreakerState.HALF_OPEN, timeout=5, interval=0.02)

    permits = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def contend(breaker: CircuitBreaker) -> None:
        start.wait()
        permit = breaker.allow()
        if permit is not None:
            with lock:
                permits.append(permit)

    threads = [threading.Thread(target=contend, args=(a if i % 2 else b,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)

    assert len(permits) == 1
    assert permits[0].trial
    # While the trial runs, everyone else still fails fast.
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert info.value.state is BreakerState.HALF_OPEN


def test_a_successful_trial_closes_the_breaker_for_everyone(make_breaker):
    a, b = make_breaker(), make_breaker()
    fail(a, 3)
    permit = wait_until(lambda: a.allow(), timeout=5, interval=0.02)
    assert permit.trial
    assert a.record_success(permit) is BreakerState.CLOSED
    assert b.state() is BreakerState.CLOSED
    assert b.call(lambda: "ok") == "ok"
    assert b.failures() == 0


def test_a_failed_trial_reopens_for_a_new_cool_down(make_breaker):
    a, b = make_breaker(cooldown_seconds=0.5), make_breaker(cooldown_seconds=0.5)
    fail(a, 3)
    permit = wait_until(lambda: a.allow(), timeout=5, interval=0.02)
    assert permit.trial
    assert a.record_failure(permit) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert info.value.state is BreakerState.OPEN
    assert info.value.retry_in > 0.3  # a fresh cool-down, not the old one
    # And after that cool-down, a new single trial.
    trial = wait_until(lambda: b.allow(), timeout=5, interval=0.02)
    assert trial.trial


def test_call_runs_the_trial_and_closes_on_success(make_breaker):
    breaker = make_breaker(cooldown_seconds=0.2)
    fail(breaker, 3)
    wait_until(lambda: breaker.state() is BreakerState.HALF_OPEN, timeout=5, interval=0.02)
    assert breaker.call(lambda: "recovered") == "recovered"
    assert breaker.state() is BreakerState.CLOSED


def test_a_trial_whose_process_died_is_taken_over_after_its_ttl(make_breaker):
    a = make_breaker(cooldown_seconds=0.1, trial_ttl_seconds=0.4)
    b = make_breaker(cooldown_seconds=0.1, trial_ttl_seconds=0.4)
    fail(a, 3)
    lost = wait_until(lambda: a.allow(), timeout=5, interval=0.02)  # a "dies" holding it
    assert lost.trial
    assert b.allow() is None
    taken = wait_until(lambda: b.allow(), timeout=5, interval=0.05)
    assert taken.trial


def test_a_late_success_from_before_the_opening_does_not_close_it(make_breaker):
    breaker = make_breaker(cooldown_seconds=60)
    early = breaker.allow()  # a slow call started while closed...
    fail(breaker, 3)  # ...meanwhile others failed and opened the breaker
    assert breaker.record_success(early) is BreakerState.OPEN
    assert breaker.state() is BreakerState.OPEN


def test_an_exception_that_is_not_a_failure_releases_the_trial(make_breaker):
    breaker = make_breaker(cooldown_seconds=0.1, failure_exceptions=(Boom,))
    fail(breaker, 3)
    wait_until(lambda: breaker.state() is BreakerState.HALF_OPEN, timeout=5, interval=0.02)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(_interrupt)
    assert breaker.state() is BreakerState.HALF_OPEN
    assert breaker.allow().trial  # the next caller can run the trial at once


def _interrupt() -> None:
    raise KeyboardInterrupt


def test_with_redis_unreachable_the_breaker_fails_open(caplog):
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    breaker = CircuitBreaker("test-no-redis", client, failure_threshold=1)
    calls = []
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(_boom)
    assert breaker.call(lambda: calls.append(1) or "ok") == "ok"
    assert calls == [1]
    assert breaker.state() is BreakerState.CLOSED


def test_without_a_redis_client_the_breaker_allows_everything():
    breaker = CircuitBreaker("test-none", None, failure_threshold=1)
    for _ in range(3):
        with pytest.raises(Boom):
            breaker.call(_boom)
    assert breaker.call(lambda: "ok") == "ok"
