"""Throughput of the whole background pipeline, and of bare Celery on the same broker.

Pipeline: API POST → assessment + job + outbox rows (one transaction) → relay publishes →
Celery worker scores (offline provider) → enqueues the roadmap job → relay → worker writes
the roadmap → `completed`. Per assessment: two tasks and seven transactions (1 in the API,
3 per task), plus the relay's batched claim-and-mark rounds.

Ceiling: a no-op Celery task (bench.noop_celery) with the same Celery settings, the same
broker and a worker with the same concurrency.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import psycopg
import redis

from bench.load import CpuWatch, percentile
from bench.procs import Procs
from rampart.kit.db.transaction import Claims

POLL_S = 0.02


@dataclass(frozen=True)
class Account:
    user_id: str
    tenant_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _claims(account: Account) -> str:
    return Claims(tenant_id=account.tenant_id, sub=account.user_id).as_json()


def _counts(conn: psycopg.Connection, account: Account, ids: list[str]) -> tuple[int, int]:
    """(completed, failed) among `ids`, read as the tenant's user through RLS."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [_claims(account)])
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'),"
            " count(*) FILTER (WHERE status = 'failed')"
            " FROM assessments WHERE id = ANY(%s::uuid[])",
            [ids],
        ).fetchone()
    return int(row[0]), int(row[1])


def _end_to_end_ms(conn: psycopg.Connection, account: Account, ids: list[str]) -> list[float]:
    """Per assessment: POST's transaction (created_at) → `completed` (updated_at), DB clock."""
    with conn.transaction():
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", [_claims(account)])
        rows = conn.execute(
            "SELECT extract(epoch FROM updated_at - created_at) * 1000 FROM assessments"
            " WHERE id = ANY(%s::uuid[]) AND status = 'completed'",
            [ids],
        ).fetchall()
    return sorted(float(r[0]) for r in rows)


async def _post_many(base_url: str, account: Account, body: bytes, count: int) -> list[str]:
    headers = {**account.headers, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(16)

        async def one() -> str:
            async with gate:
                response = await client.post("/api/v1/assessments", content=body, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(
                    f"POST /api/v1/assessments: {response.status_code} {response.text}"
                )
            return response.json()["id"]

        return list(await asyncio.gather(*(one() for _ in range(count))))


def _wait_completed(
    conn: psycopg.Connection, account: Account, ids: list[str], timeout: float
) -> tuple[float, int]:
    """Poll until every id is completed or failed; return (monotonic time seen, failed)."""
    deadline = time.monotonic() + timeout
    while True:
        completed, failed = _counts(conn, account, ids)
        now = time.monotonic()
        if completed + failed >= len(ids):
            return now, failed
        if now > deadline:
            raise RuntimeError(
                f"pipeline: only {completed}/{len(ids)} completed ({failed} failed) "
                f"after {timeout:.0f}s"
            )
        time.sleep(POLL_S)


def measure_pipeline(
    procs: Procs,
    *,
    watch: dict[str, list[int]],
    base_url: str,
    database_url: str,
    account: Account,
    body: bytes,
    count: int,
    concurrency: int,
) -> dict:
    relay = procs.start("relay", ["-m", "rampart.cli", "relay"])
    worker = procs.start(
        "worker", ["-m", "rampart.cli", "worker", "--concurrency", str(concurrency)]
    )
    conn = psycopg.connect(database_url, autocommit=True)
    try:
        # Warm-up: worker and relay booted, connections open, code paths hot.
        warm = asyncio.run(_post_many(base_url, account, body, 4))
        _wait_completed(conn, account, warm, timeout=90)

        cpu_watch = CpuWatch({**watch, "relay": [relay.pid], "worker": [worker.pid]})
        started = time.monotonic()
        ids = asyncio.run(_post_many(base_url, account, body, count))
        posted = time.monotonic()
        done, failed = _wait_completed(conn, account, ids, timeout=300)
        cpu = cpu_watch.stop()
        for proc in (relay, worker):
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died during the run:\n{proc.tail()}")
        e2e = _end_to_end_ms(conn, account, ids)
    finally:
        conn.close()
        procs.stop(relay)
        procs.stop(worker)
    elapsed = done - started
    return {
        "assessments": count,
        "worker_concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "posting_s": round(posted - started, 3),
        "failed": failed,
        "assessments_per_s": round(count / elapsed, 1),
        "end_to_end_ms": {
            "p50": round(percentile(e2e, 50), 1),
            "p95": round(percentile(e2e, 95), 1),
            "max": round(e2e[-1], 1) if e2e else None,
        },
        "sample_assessment_id": ids[0],
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }


def _wait_counter(client: redis.Redis, key: str, target: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = int(client.get(key) or 0)
        now = time.monotonic()
        if value >= target:
            return now
        if now > deadline:
            raise RuntimeError(f"noop tasks: only {value}/{target} done after {timeout:.0f}s")
        time.sleep(0.005)


def measure_noop(
    procs: Procs, *, watch: dict[str, list[int]], redis_url: str, count: int, concurrency: int
) -> dict:
    from bench import noop_celery  # needs REDIS_URL and Rampart's settings in os.environ

    worker = procs.start(
        "noop-worker",
        [
            "-m", "celery", "-A", "bench.noop_celery", "worker",
            "--pool", "prefork", "--concurrency", str(concurrency), "-Q", noop_celery.QUEUE,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--loglevel", "WARNING",
        ],
    )
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(noop_celery.COUNTER_KEY)
        for _ in range(20):  # warm-up: worker booted, broker connections open
            noop_celery.app.send_task(noop_celery.TASK, retry=False)
        _wait_counter(client, noop_celery.COUNTER_KEY, 20, timeout=90)
        client.delete(noop_celery.COUNTER_KEY)

        cpu_watch = CpuWatch({**watch, "worker": [worker.pid]})
        started = time.monotonic()
        for _ in range(count):
            noop_celery.app.send_task(noop_celery.TASK, retry=False)
        sent = time.monotonic()
        done = _wait_counter(client, noop_celery.COUNTER_KEY, count, timeout=300)
        cpu = cpu_watch.stop()
        if not worker.alive():
            raise RuntimeError(f"noop worker died:\n{worker.tail()}")
    finally:
        procs.stop(worker)
        client.close()
    elapsed = done - started
    return {
        "tasks": count,
        "worker_concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "sending_s": round(sent - started, 3),
        "tasks_per_s": round(count / elapsed, 1),
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }
