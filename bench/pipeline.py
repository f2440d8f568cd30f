"""Throughput of the whole background pipeline, and how fast an accepted job starts.

Pipeline: API POST → assessment + job + outbox rows (one transaction, NOTIFY at commit) →
the relay, woken, publishes → the worker (`rampart worker`: Celery threads pool, every
job on the process's one event loop) scores → enqueues the roadmap job → relay → worker
writes the roadmap → `completed`.

Relay latency: per job, from its row's `created_at` to its `started_at`, on the database
clock. Both are `now()`, i.e. the start of their transactions: the API's transaction that
accepted the job (a few ms before its commit) and the worker's first statement. Split at
the outbox row's `sent_at` (the start of the relay round that published it).

Progress and timings are read as the Postgres superuser of the bench stack (no RLS: an
observer, not part of what is measured).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import contextmanager

import httpx
import psycopg

from bench.accounts import Account
from bench.load import CpuWatch, percentile
from bench.procs import Proc, Procs

POLL_S = 0.02
POST_CONCURRENCY = 16


async def _post_many(base_url: str, account: Account, body: bytes, count: int) -> list[str]:
    headers = {**account.headers, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=POST_CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        gate = asyncio.Semaphore(POST_CONCURRENCY)

        async def one() -> str:
            async with gate:
                response = await client.post("/api/v1/assessments", content=body, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(
                    f"POST /api/v1/assessments: {response.status_code} {response.text}"
                )
            return response.json()["id"]

        return list(await asyncio.gather(*(one() for _ in range(count))))


def post_many(base_url: str, account: Account, body: bytes, count: int) -> list[str]:
    """POST `count` assessments, 16 at a time; their ids."""
    return asyncio.run(_post_many(base_url, account, body, count))


def wait_completed(
    conn: psycopg.Connection,
    ids: list[str],
    timeout: float,
    procs: list[Proc],
    on_poll: Callable[[], None] = lambda: None,
) -> tuple[float, int]:
    """Poll until every id is completed or failed; (monotonic time seen, failed)."""
    deadline = time.monotonic() + timeout
    while True:
        completed, failed = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'),"
            " count(*) FILTER (WHERE status = 'failed')"
            " FROM assessments WHERE id = ANY(%s::uuid[])",
            [ids],
        ).fetchone()
        now = time.monotonic()
        if completed + failed >= len(ids):
            return now, failed
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} died during the run:\n{proc.tail()}")
        if now > deadline:
            raise RuntimeError(
                f"pipeline: only {completed}/{len(ids)} completed ({failed} failed) after "
                f"{timeout:.0f}s; worker log:\n{procs[-1].tail()}"
            )
        on_poll()
        time.sleep(POLL_S)


@contextmanager
def relay_and_worker(procs: Procs, concurrency: int, name: str = "worker", env=None):
    """The outbox relay and one `rampart worker` process, stopped on exit."""
    relay = procs.start("relay", ["-m", "rampart.cli", "relay"])
    worker = procs.start(
        name, ["-m", "rampart.cli", "worker", "--concurrency", str(concurrency)], env=env
    )
    try:
        yield relay, worker
    finally:
        procs.stop(worker)
        procs.stop(relay)


def _ms(values: list[float]) -> dict[str, float | None]:
    values = sorted(values)
    return {
        "p50": round(percentile(values, 50), 1) if values else None,
        "p95": round(percentile(values, 95), 1) if values else None,
        "max": round(values[-1], 1) if values else None,
    }


def job_latency(conn: psycopg.Connection, ids: list[str]) -> dict:
    """Accepted → published → started, per job type, for the jobs of these assessments
    (a job's first outbox row; `retried`: jobs delivered more than once)."""
    rows = conn.execute(
        "SELECT j.type,"
        " extract(epoch FROM o.sent_at - j.created_at) * 1000,"
        " extract(epoch FROM j.started_at - o.sent_at) * 1000,"
        " extract(epoch FROM j.started_at - j.created_at) * 1000,"
        " j.attempts"
        " FROM jobs j JOIN outbox o ON o.job_id = j.id"
        " WHERE j.payload->>'assessment_id' = ANY(%s) AND j.started_at IS NOT NULL"
        " AND o.id = (SELECT min(id) FROM outbox WHERE job_id = j.id)",
        [ids],
    ).fetchall()
    out = {}
    for job_type in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == job_type]
        out[job_type] = {
            "jobs": len(mine),
            "retried": sum(1 for r in mine if r[4] > 1),
            "accepted_to_published_ms": _ms([float(r[1]) for r in mine]),
            "published_to_started_ms": _ms([float(r[2]) for r in mine]),
            "accepted_to_started_ms": _ms([float(r[3]) for r in mine]),
        }
    return out


def end_to_end_ms(conn: psycopg.Connection, ids: list[str]) -> dict:
    """Per assessment: the POST's transaction → `completed` (updated_at), DB clock."""
    rows = conn.execute(
        "SELECT extract(epoch FROM updated_at - created_at) * 1000 FROM assessments"
        " WHERE id = ANY(%s::uuid[]) AND status = 'completed'",
        [ids],
    ).fetchall()
    return _ms([float(r[0]) for r in rows])


def measure_pipeline(
    procs: Procs,
    *,
    watch: dict[str, list[int]],
    base_url: str,
    admin_url: str,
    account: Account,
    body: bytes,
    count: int,
    concurrency: int,
) -> dict:
    """Offline LLM provider: `count` assessments, from the first POST to all completed."""
    with (
        relay_and_worker(procs, concurrency) as (relay, worker),
        psycopg.connect(admin_url, autocommit=True) as conn,
    ):
        # Warm-up: worker and relay booted, connections open, code paths hot.
        warm = post_many(base_url, account, body, 4)
        wait_completed(conn, warm, 90, [relay, worker])

        cpu_watch = CpuWatch({**watch, "relay": [relay.pid], "worker": [worker.pid]})
        started = time.monotonic()
        ids = post_many(base_url, account, body, count)
        posted = time.monotonic()
        done, failed = wait_completed(conn, ids, 120, [relay, worker])
        cpu = cpu_watch.stop()
        latency = job_latency(conn, ids)
        e2e = end_to_end_ms(conn, ids)
    elapsed = done - started
    return {
        "assessments": count,
        "worker": f"rampart worker: Celery threads pool, concurrency {concurrency}",
        "worker_concurrency": concurrency,
        "elapsed_s": round(elapsed, 3),
        "posting_s": round(posted - started, 3),
        "failed": failed,
        "assessments_per_s": round(count / elapsed, 1),
        "end_to_end_ms": e2e,
        "job_latency": latency,
        "sample_assessment_id": ids[0],
        "cpu_percent": {k: round(v, 1) for k, v in cpu.items()},
    }
