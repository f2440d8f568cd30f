"""The Celery application: late acks, requeue on worker loss, one message at a time.

Settings that Celery defaults wrongly for "never lose, never do twice" (see REFERENCE.md):
acks_late so a task is acknowledged only after it finished; reject_on_worker_lost so a
killed worker's message goes back to the queue; prefetch 1 so a busy worker does not hold
messages others could run; a Redis visibility timeout longer than the longest task, so a
running task is not handed to a second worker.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from functools import lru_cache

from celery import Celery

from rampart.kit.jobs.broker import broker_transport
from rampart.kit.settings import job_settings

QUEUE = "rampart"
TASK_MODULE = "tasks"


def discover_task_modules(package: str) -> list[str]:
    """`<package>.<sub>.tasks` for every subpackage that has one: a domain's tasks module is
    found, never listed by hand (the worker includes what this returns)."""
    found = []
    for sub in pkgutil.iter_modules(importlib.import_module(package).__path__):
        name = f"{package}.{sub.name}.{TASK_MODULE}"
        if sub.ispkg and importlib.util.find_spec(name) is not None:
            found.append(name)
    return sorted(found)


# kombu's sweep of deliveries older than the visibility timeout runs under a Redis lock
# that expires after 300 s by default: a worker killed during a sweep (OOM, SIGKILL) kept
# every other worker from redelivering anything for 5 minutes. A sweep handles at most 10
# deliveries (one Redis transaction each, 5 s socket timeout), so 30 s is ample, and a
# second sweeper after a slow one can only put a delivery back twice, which the job row
# makes harmless (a delivery of a finished job does nothing; runner.py).
UNACKED_MUTEX_EXPIRE_SECONDS = 30


def transport_options(visibility_timeout: int) -> dict[str, object]:
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE_SECONDS,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }


@lru_cache
def get_celery() -> Celery:
    settings = job_settings()
    broker = settings.require("redis_url")
    transport = transport_options(settings.celery_visibility_timeout_seconds)
    app = Celery("rampart", broker=broker)
    app.conf.update(
        # kombu's Redis transport, fixed so a broker outage cannot kill a worker (broker.py).
        broker_transport=broker_transport(broker),
        task_default_queue=QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # Meant to keep a task that raised (not retried) for redelivery; Celery 5.7 rejects
        # it without requeue instead (docs/resilience.md, "Known gaps").
        task_acks_on_failure_or_timeout=False,
        worker_prefetch_multiplier=1,
        # The limit of a job run is the runner's (asyncio.timeout, transient: retried;
        # docs/resilience.md, "Time limits"). Celery's threads pool enforces no time limit;
        # the hard one is a safety net should a process pool be used. No soft limit: its
        # SoftTimeLimitExceeded would end the task while the job ran on in the event loop.
        task_time_limit=settings.task_time_limit_seconds,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        # Our JSON handler writes to stdout; redirecting it into a logger would log twice.
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app
