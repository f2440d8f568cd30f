"""The Redis-backed circuit breaker on a real Redis, through redis.asyncio: shared state, one
half-open trial across processes (breaker instances with their own connection pools stand in
for processes), fail fast while open, and fail-open when Redis is gone or too slow."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from functools import partial

import pytest
import redis.asyncio as aioredis
from tests.support.wait import wait_until_async

from rampart.devstack.ports import free_port
from rampart.kit import redis_clients
from rampart.kit.resilience import BreakerState, CircuitBreaker, CircuitOpenError

# `timing`: wall-clock bounds of concurrency; run alone after the parallel run (Makefile).
pytestmark = [pytest.mark.anyio, pytest.mark.timing]


class Boom(Exception):
    pass


@pytest.fixture
def redis_url(stack) -> str:
    return stack.env["REDIS_URL"]


@pytest.fixture
async def make_breaker(redis_url):
    """Breakers sharing one fresh name; each call opens its own connection pool
    (a separate "process")."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    clients: list[aioredis.Redis] = []

    def make(**options) -> CircuitBreaker:
        client = aioredis.Redis.from_url(redis_url)
        clients.append(client)
        defaults = {"failure_threshold": 3, "cooldown_seconds": 0.3, "trial_ttl_seconds": 10}
        return CircuitBreaker(name, lambda: client, **{**defaults, **options})

    yield make
    if clients:
        await make().reset()
    for client in clients:
        await client.aclose()


async def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises((Boom, CircuitOpenError)):
            await breaker.call(_boom)


async def _boom() -> None:
    raise Boom("provider down")


async def _ok() -> str:
    return "ok"


async def test_breaker_opens_after_the_threshold_of_consecutive_failures(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    await fail(breaker, 2)
    assert await breaker.state() is BreakerState.CLOSED
    assert await breaker.failures() == 2
    await fail(breaker, 1)
    assert await breaker.state() is BreakerState.OPEN


async def test_a_success_resets_the_consecutive_failure_count(make_breaker):
    breaker = make_breaker(failure_threshold=3)
    await fail(breaker, 2)
    assert await breaker.call(_ok) == "ok"
    await fail(breaker, 2)
    assert await breaker.state() is BreakerState.CLOSED


async def test_while_open_calls_fail_fast_without_calling(make_breaker):
    breaker = make_breaker(failure_threshold=1, cooldown_seconds=60)
    await fail(breaker)
    calls = []

    async def record() -> None:
        calls.append(1)

    t0 = time.perf_counter()
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(record)
    assert calls == []
    assert info.value.state is BreakerState.OPEN
    assert 55 < info.value.retry_in <= 60
    assert await breaker.allow() is None
    assert time.perf_counter() - t0 < 0.5


async def test_state_is_shared_between_processes(make_breaker):
    here, elsewhere = make_breaker(), make_breaker()
    await fail(here, 3)
    with pytest.raises(CircuitOpenError):
        await elsewhere.call(_ok)


async def test_half_open_lets_exactly_one_trial_through_across_processes(make_breaker):
    a, b = make_breaker(cooldown_seconds=0.3), make_breaker(cooldown_seconds=0.3)
    await fail(a, 3)
    await wait_until_async(lambda: _is(a, BreakerState.HALF_OPEN))

    # 16 callers at once, half through each "process".
    permits = await asyncio.gather(*((a if i % 2 else b).allow() for i in range(16)))
    granted = [p for p in permits if p is not None]

    assert len(granted) == 1
    assert granted[0].trial
    # While the trial runs, everyone else still fails fast.
    with pytest.raises(CircuitOpenError) as info:
        await b.call(_ok)
    assert info.value.state is BreakerState.HALF_OPEN


async def test_a_successful_trial_closes_the_breaker_for_everyone(make_breaker):
    a, b = make_breaker(), make_breaker()
    await fail(a, 3)
    permit = await wait_until_async(a.allow)
    assert permit.trial
    assert await a.record_success(permit) is BreakerState.CLOSED
    assert await b.state() is BreakerState.CLOSED
    assert await b.call(_ok) == "ok"
    assert await b.failures() == 0


async def test_a_failed_trial_reopens_for_a_new_cool_down(make_breaker):
    a, b = make_breaker(cooldown_seconds=0.5), make_breaker(cooldown_seconds=0.5)
    await fail(a, 3)
    permit = await wait_until_async(a.allow)
    assert permit.trial
    assert await a.record_failure(permit) is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        await b.call(_ok)
    assert info.value.state is BreakerState.OPEN
    assert info.value.retry_in > 0.3  # a fresh cool-down, not the old one
    # And after that cool-down, a new single trial.
    trial = await wait_until_async(b.allow)
    assert trial.trial


async def test_call_runs_the_trial_and_closes_on_success(make_breaker):
    breaker = make_breaker(cooldown_seconds=0.2)
    await fail(breaker, 3)
    await wait_until_async(lambda: _is(breaker, BreakerState.HALF_OPEN))
    assert await breaker.call(_ok) == "ok"
    assert await breaker.state() is BreakerState.CLOSED


async def test_a_trial_whose_process_died_is_taken_over_after_its_ttl(make_breaker):
    a = make_breaker(cooldown_seconds=0.1, trial_ttl_seconds=0.4)
    b = make_breaker(cooldown_seconds=0.1, trial_ttl_seconds=0.4)
    await fail(a, 3)
    lost = await wait_until_async(a.allow)  # a "dies" holding it
    assert lost.trial
    assert await b.allow() is None
    taken = await wait_until_async(b.allow)
    assert taken.trial


async def test_a_late_success_from_before_the_opening_does_not_close_it(make_breaker):
    breaker = make_breaker(cooldown_seconds=60)
    early = await breaker.allow()  # a slow call started while closed...
    await fail(breaker, 3)  # ...meanwhile others failed and opened the breaker
    assert await breaker.record_success(early) is BreakerState.OPEN
    assert await breaker.state() is BreakerState.OPEN


async def test_a_cancelled_call_releases_the_trial_without_a_verdict(make_breaker):
    breaker = make_breaker(cooldown_seconds=0.1, failure_exceptions=(Boom,))
    await fail(breaker, 3)
    await wait_until_async(lambda: _is(breaker, BreakerState.HALF_OPEN))
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    trial = asyncio.create_task(breaker.call(slow))
    await started.wait()
    assert await breaker.allow() is None  # the trial is taken
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert await breaker.state() is BreakerState.HALF_OPEN
    assert (await breaker.allow()).trial  # the next caller can run the trial at once


async def test_with_redis_unreachable_the_breaker_fails_open():
    url = f"redis://127.0.0.1:{free_port()}/0"
    breaker = CircuitBreaker(
        "test-no-redis",
        partial(redis_clients.shared, url, redis_clients.Profile(timeout=0.2)),
        failure_threshold=1,
    )
    for _ in range(3):
        with pytest.raises(Boom):
            await breaker.call(_boom)
    assert await breaker.call(_ok) == "ok"
    assert (await breaker.allow()).unguarded
    assert await breaker.state() is BreakerState.CLOSED


async def test_with_redis_too_slow_the_breaker_fails_open_within_its_timeout():
    """A server that accepts connections and never answers (a hung Redis): every breaker
    step gives up after the client's timeout (one retry) and lets the call through."""
    with socket.create_server(("127.0.0.1", 0)) as hung:  # never accepts, never answers
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        breaker = CircuitBreaker(
            "test-hung-redis",
            partial(redis_clients.shared, url, redis_clients.Profile(timeout=0.2)),
            failure_threshold=1,
        )
        t0 = time.perf_counter()
        permit = await breaker.allow()
        assert permit is not None and permit.unguarded
        assert time.perf_counter() - t0 < 2.0  # 2 tries x 0.2 s, not a hang
        with pytest.raises(Boom):
            await breaker.call(_boom)
        assert await breaker.call(_ok) == "ok"


async def test_without_a_redis_client_the_breaker_allows_everything():
    breaker = CircuitBreaker("test-none", None, failure_threshold=1)
    for _ in range(3):
        with pytest.raises(Boom):
            await breaker.call(_boom)
    assert await breaker.call(_ok) == "ok"


async def test_more_concurrent_callers_than_pooled_connections_are_all_guarded(redis_url):
    """Past the per-loop pool's connections, callers wait for one (briefly) instead of
    failing: the breaker still counts every failure, so it opens as configured."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    breaker = CircuitBreaker(
        name,
        partial(redis_clients.shared, redis_url, redis_clients.Profile(timeout=2.0)),
        failure_threshold=10_000,
        cooldown_seconds=60,
    )
    callers = redis_clients.MAX_CONNECTIONS * 2
    try:
        permits = await asyncio.gather(*(breaker.acquire() for _ in range(callers)))
        assert not any(p.unguarded for p in permits)
        await asyncio.gather(*(breaker.record_failure(p) for p in permits))
        assert await breaker.failures() == callers
    finally:
        await breaker.reset()


async def _is(breaker: CircuitBreaker, state: BreakerState) -> bool:
    return await breaker.state() is state
