"""The outbox relay on the real database and broker: several copies never publish a job
twice (rows are claimed with SKIP LOCKED), and a commit wakes a waiting relay at once
(LISTEN/NOTIFY) instead of at its next poll."""

from __future__ import annotations

import asyncio
import json
import time

import redis
from tests.support.jobs import jobs
from tests.support.users import answers, signup

from rampart.kit.jobs import loop, relay
from rampart.kit.jobs.celery_app import QUEUE, get_celery


def _published_job_ids(broker: redis.Redis) -> list[str]:
    """The task id (= job id) of every message waiting in the Celery queue."""
    return [json.loads(raw)["headers"]["id"] for raw in broker.lrange(QUEUE, 0, -1)]


def _accept(http, account, count: int) -> None:
    for _ in range(count):
        created = http.post(
            "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
        )
        assert created.status_code == 202


def test_two_relays_side_by_side_publish_every_job_exactly_once(http, stack):
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    broker.delete(QUEUE)
    account = signup(http, "Two relays")
    _accept(http, account, 40)
    celery = get_celery()

    async def drain(batch: int) -> int:
        published = 0
        while count := await relay.relay_once(celery, batch):
            published += count
        return published

    async def both() -> list[int]:
        return list(await asyncio.gather(drain(3), drain(3)))

    counts = loop.run(both())

    ours = {str(job.id) for job in jobs(account.tenant_id)}
    published = _published_job_ids(broker)
    assert sum(counts) == len(published)  # (other tests' leftover outbox rows count too)
    mine = [job_id for job_id in published if job_id in ours]
    assert sorted(mine) == sorted(ours) and len(ours) == 40  # each of ours exactly once
    assert all(counts), counts  # both took part
    broker.delete(QUEUE)


def test_a_commit_wakes_a_waiting_relay_long_before_its_poll(http, stack, monkeypatch):
    from tests.support.stack import reset_caches

    monkeypatch.setenv("RELAY_POLL_INTERVAL_SECONDS", "30")
    reset_caches()
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    account = signup(http, "Woken relay")
    job_loop = loop.start()
    stop = asyncio.run_coroutine_threadsafe(_event(), job_loop).result()
    running = asyncio.run_coroutine_threadsafe(relay.run_relay(get_celery(), stop), job_loop)
    try:
        time.sleep(1.0)  # the relay is waiting now, for up to 30 s
        broker.delete(QUEUE)
        started = time.monotonic()
        _accept(http, account, 1)
        while not broker.llen(QUEUE) and time.monotonic() - started < 10:
            time.sleep(0.005)
        waited = time.monotonic() - started
    finally:
        job_loop.call_soon_threadsafe(stop.set)
        running.result(10)
        monkeypatch.delenv("RELAY_POLL_INTERVAL_SECONDS")
        reset_caches()
    assert broker.llen(QUEUE) == 1
    assert waited < 2, waited  # woken by NOTIFY, not by the 30 s poll
    broker.delete(QUEUE)


async def _event() -> asyncio.Event:
    return asyncio.Event()
