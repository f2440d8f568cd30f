"""Worker liveness: is the consumer taking work while work waits?

A worker can be alive (its process runs, its `/metrics` answers, `/ready` of the API is 200)
and still take no message at all: issue 18 saw one stop fetching for good after a Redis hang
(rampart/kit/jobs/broker.py), and only the queue's oldest-age alert noticed, minutes later,
without saying which worker. Up/down checks cannot see that, so each worker reports how its
consumer is doing, from its main process (where Celery's consumer runs, whatever the pool:
prefork today, threads later), computed when Prometheus scrapes:

- `rampart_worker_last_task_received_timestamp_seconds`: when the consumer last received a
  task message from the broker (Celery's `task_received` signal); the worker's start time
  until the first one.
- `rampart_worker_tasks_reserved`: task messages the worker holds and has not finished
  (running, or waiting for a free pool slot; a retry waiting for its countdown is not
  counted, as Celery raises the prefetch for those).
- `rampart_worker_prefetch_limit`: the most it takes at once (pool size x prefetch
  multiplier, WORKER_CONCURRENCY by default).

Read together with the relay's `rampart_queue_length{queue="rampart"}`:

| Queue | Reserved vs limit | Last received | The worker is |
| --- | --- | --- | --- |
| empty | below | old | idle: nothing to do |
| waiting | equal | old | busy: every slot runs a (long) task |
| waiting | below | recent | consuming |
| waiting for minutes | below for minutes | minutes ago | stuck: alive but not consuming |

The last row is alert `RampartWorkerNotConsuming` (ops/prometheus/rules/workers.yml; runbook
docs/runbooks/queue-backlog.md). A healthy worker with a free slot and a waiting queue
receives within a second (a BRPOP of kombu's Redis transport waits 1 s at most).

No library reports this (celery-exporter reads Celery's events, which our workers do not
send, and knows nothing of the prefetch window), hence this small module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

__all__ = ["ConsumerProgress"]


class ConsumerProgress:
    """The consumer's progress, fed by Celery's signals in the worker's main process; a
    prometheus_client collector (pass it to `exposition.serve` as an extra collector)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.last_received = clock()
        self._consumer: Any = None  # Celery's Consumer, once the worker is ready

    def connect(self) -> ConsumerProgress:
        """Listen to Celery's signals (the main process's consumer sends both)."""
        from celery.signals import task_received, worker_ready

        task_received.connect(self._received, weak=False)
        worker_ready.connect(self._ready, weak=False)
        return self

    def _received(self, **_kwargs: object) -> None:
        self.last_received = self._clock()

    def _ready(self, sender: Any = None, **_kwargs: object) -> None:
        self._consumer = sender

    def reserved(self) -> int:
        from celery.worker import state

        return len(state.reserved_requests)

    def prefetch_limit(self) -> int | None:
        consumer = self._consumer
        try:
            return int(consumer.max_prefetch_count) if consumer is not None else None
        except (AttributeError, TypeError, ValueError):  # the pool is not there (shutdown)
            return None

    # -- prometheus_client collector --

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily(
            "rampart_worker_last_task_received_timestamp_seconds",
            "Unix time this worker's consumer last received a task message from the broker "
            "(its start time until the first).",
            value=self.last_received,
        )
        limit = self.prefetch_limit()
        if limit is None:  # not consuming yet: no window to compare with
            return
        yield GaugeMetricFamily(
            "rampart_worker_tasks_reserved",
            "Task messages this worker holds and has not finished: running, or waiting for a "
            "free pool slot (retries waiting for their countdown are not counted).",
            value=self.reserved(),
        )
        yield GaugeMetricFamily(
            "rampart_worker_prefetch_limit",
            "Most task messages this worker takes from the broker at once (pool size x "
            "prefetch multiplier).",
            value=limit,
        )
