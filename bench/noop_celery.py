"""The Celery ceiling: one no-op task on the same Redis broker, with Rampart's settings.

The settings that shape throughput (late acks, reject on worker loss, prefetch 1, ignored
results, JSON) are copied from Rampart's own Celery app, so the only difference from the
pipeline is the work a task does. Each task INCRs a Redis counter, so the driver can tell
when all are done without a result backend.

Worker: `python -m celery -A bench.noop_celery worker --pool threads|prefork --concurrency N
-Q bench-noop --without-gossip --without-mingle --without-heartbeat` (bench/celery_ceiling.py).
"""

from __future__ import annotations

import os
from functools import lru_cache

import redis
from celery import Celery

from rampart.kit.jobs.celery_app import get_celery

QUEUE = "bench-noop"
TASK = "bench.noop"
COUNTER_KEY = "bench:noop:done"
SHARED_SETTINGS = (
    "broker_transport",
    "task_acks_late",
    "task_reject_on_worker_lost",
    "task_acks_on_failure_or_timeout",
    "worker_prefetch_multiplier",
    "task_time_limit",
    "task_soft_time_limit",
    "broker_transport_options",
    "broker_connection_retry_on_startup",
    "broker_connection_timeout",
    "task_ignore_result",
    "task_serializer",
    "accept_content",
    "worker_hijack_root_logger",
    "worker_redirect_stdouts",
    "worker_send_task_events",
    "task_send_sent_event",
)

_rampart = get_celery()
app = Celery("bench_noop", broker=os.environ["REDIS_URL"])
app.conf.update({key: _rampart.conf[key] for key in SHARED_SETTINGS})
app.conf.update(task_default_queue=QUEUE)


@lru_cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["REDIS_URL"])


@app.task(name=TASK)
def noop() -> None:
    _redis().incr(COUNTER_KEY)
