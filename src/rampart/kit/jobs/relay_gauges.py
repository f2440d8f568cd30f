"""System-wide gauges read from Postgres and Redis when Prometheus scrapes.

These describe shared state (the jobs table, the broker queue, the database's sessions), not
one process, so exactly one process reports them: the relay (it already reads every
tenant's outbox rows). Were the API or the workers to report them too, `sum()` would
multiply them by the number of processes.

- `rampart_jobs{type,state}`: pending, processing, failed jobs; quarantined = open dead
  letters (app.job_counts(), migration 0006). A type once seen keeps reporting 0s.
- `rampart_queue_length{queue}`: `rampart` = messages waiting in the Celery queue (Redis
  LLEN); `outbox` = committed jobs the relay has not published yet.
- `rampart_queue_oldest_age_seconds{queue}`: `outbox` = oldest unpublished outbox row;
  `rampart` = oldest job still pending (accepted, not yet started by a worker).
- `rampart_jobs_processing_oldest_age_seconds`: how long ago the current delivery of the
  oldest `processing` job started (app.jobs_processing_oldest_age(), migration 0009). Past
  `rampart_task_time_limit_seconds` (the TASK_TIME_LIMIT_SECONDS setting) no live delivery
  can still run it: its worker died and Redis hands the message out again only after the
  visibility timeout.
- `rampart_db_connections{state}` (pg_stat_activity of this database, client backends) and
  `rampart_db_max_connections`. The counts run as the migration role (app.db_connection_counts(),
  0006/0013); on a managed database it may lack pg_read_all_stats (Supabase's `postgres`
  had no pg_monitor before 2023; a role you create has neither), and then other roles'
  sessions count as state `unknown`: `rampart_db_connection_states_readable` is 0.
- `rampart_dependency_up{dependency}`: 1 when postgres / redis answered this scrape, else 0;
  the families that source feeds are then absent rather than wrong.

Every query runs with short timeouts (statement_timeout 2 s, Redis 1 s), so a sick database
or broker slows a scrape a little and never hangs it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily

from rampart.kit import redis_clients
from rampart.kit.db.pool import connect
from rampart.kit.jobs.celery_app import QUEUE
from rampart.kit.logging import get_logger
from rampart.kit.settings import job_settings

log = get_logger("rampart.metrics")

JOB_STATES = ("pending", "processing", "failed", "quarantined")
CONNECTION_STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "unknown",  # sessions whose state the monitoring role may not read
)
STATEMENT_TIMEOUT_MS = 2000
_WARN_EVERY_SECONDS = 60.0


async def _postgres_figures() -> dict[str, Any]:
    conn = await connect()
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
            jobs: dict[tuple[str, str], int] = {}
            pending_oldest = 0.0
            for row in await conn.fetch("SELECT * FROM app.job_counts()"):
                jobs[(row["job_type"], row["state"])] = int(row["jobs"])
                if row["state"] == "pending":
                    pending_oldest = max(pending_oldest, float(row["oldest_age_seconds"]))
            outbox = await conn.fetchrow("SELECT * FROM app.outbox_pending()")
            processing_oldest = await conn.fetchval("SELECT app.jobs_processing_oldest_age()")
            connections = {
                row["state"]: int(row["connections"])
                for row in await conn.fetch("SELECT * FROM app.db_connection_counts()")
            }
            max_connections = await conn.fetchval("SELECT current_setting('max_connections')::int")
            states_readable = await conn.fetchval("SELECT app.db_connection_states_readable()")
    finally:
        conn.terminate()
    return {
        "jobs": jobs,
        "pending_oldest": pending_oldest,
        "processing_oldest": float(processing_oldest),
        "outbox_pending": int(outbox["pending"]),
        "outbox_oldest": float(outbox["oldest_age_seconds"]),
        "connections": connections,
        "states_readable": bool(states_readable),
        "max_connections": int(max_connections),
    }


class OpsCollector:
    """A prometheus_client collector; register it on the relay's registry only."""

    def __init__(self, queue: str = QUEUE) -> None:
        self.queue = queue
        self._types: set[str] = set()
        self._redis: redis.Redis | None = None
        self._last_warning: dict[str, float] = {}

    def describe(self) -> list[Any]:
        return []  # never query anything just to register

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily(
            "rampart_dependency_up",
            "1 when the dependency answered the relay's last scrape-time queries, else 0.",
            labels=["dependency"],
        )
        database = self._from_postgres()
        up.add_metric(["postgres"], 0 if database is None else 1)
        queued = self._from_redis()
        up.add_metric(["redis"], 0 if queued is None else 1)
        yield up

        length = GaugeMetricFamily(
            "rampart_queue_length",
            "Messages waiting: `rampart` = the Celery queue in Redis, `outbox` = committed "
            "jobs not yet published by the relay.",
            labels=["queue"],
        )
        if queued is not None:
            length.add_metric([self.queue], queued)
        if database is None:
            yield length
            return
        length.add_metric(["outbox"], database["outbox_pending"])
        yield length

        oldest = GaugeMetricFamily(
            "rampart_queue_oldest_age_seconds",
            "Age of the oldest waiting work: `outbox` = oldest unpublished outbox row, "
            "`rampart` = oldest job not yet started by a worker (0 when none).",
            labels=["queue"],
        )
        oldest.add_metric(["outbox"], database["outbox_oldest"])
        oldest.add_metric([self.queue], database["pending_oldest"])
        yield oldest
        yield GaugeMetricFamily(
            "rampart_jobs_processing_oldest_age_seconds",
            "Seconds since the current delivery of the oldest `processing` job started (0 "
            "when none). Past the task time limit its worker is gone: the message comes back "
            "only after the broker's visibility timeout.",
            value=database["processing_oldest"],
        )
        yield GaugeMetricFamily(
            "rampart_task_time_limit_seconds",
            "The TASK_TIME_LIMIT_SECONDS setting: Celery kills a task running longer.",
            value=job_settings().task_time_limit_seconds,
        )

        jobs = GaugeMetricFamily(
            "rampart_jobs",
            "Jobs by type and state: pending, processing, failed; quarantined = open dead "
            "letters (not replayed or discarded).",
            labels=["type", "state"],
        )
        counts = database["jobs"]
        self._types.update(job_type for job_type, _state in counts)
        for job_type in sorted(self._types):
            for state in JOB_STATES:
                jobs.add_metric([job_type, state], counts.get((job_type, state), 0))
        yield jobs

        connections = GaugeMetricFamily(
            "rampart_db_connections",
            "Client connections to this database by state (pg_stat_activity); `unknown` = "
            "sessions whose state the monitoring role may not read.",
            labels=["state"],
        )
        by_state = {state: 0 for state in CONNECTION_STATES} | database["connections"]
        for state, count in sorted(by_state.items()):
            connections.add_metric([state], count)
        yield connections
        yield GaugeMetricFamily(
            "rampart_db_connection_states_readable",
            "1 when the role counting rampart_db_connections may read every session's state "
            "(pg_read_all_stats); 0 when other roles' sessions count as `unknown`.",
            value=1 if database["states_readable"] else 0,
        )
        yield GaugeMetricFamily(
            "rampart_db_max_connections",
            "The server's max_connections setting.",
            value=database["max_connections"],
        )

    # --- sources -------------------------------------------------------------------------

    def _from_postgres(self) -> dict[str, Any] | None:
        try:
            # The scrape runs in the metrics server's thread: one short-lived loop and
            # connection per scrape (every 15 s or so), never the pool of another loop.
            return asyncio.run(_postgres_figures())
        except Exception as exc:  # a scrape must never fail: report the source as down
            self._warn("postgres", exc)
            return None

    def _from_redis(self) -> int | None:
        try:
            if self._redis is None:
                url = job_settings().require("redis_url")
                self._redis = redis_clients.sync_client(url, redis_clients.SCRAPE)
            return int(self._redis.llen(self.queue))
        except Exception as exc:
            self._warn("redis", exc)
            return None

    def _warn(self, source: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(source, float("-inf")) < _WARN_EVERY_SECONDS:
            return
        self._last_warning[source] = now
        log.warning(
            "metrics_source_unavailable",
            source=source,
            error_type=type(exc).__name__,
            error=str(exc)[:300],
        )
