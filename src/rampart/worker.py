"""The Celery worker's composition root: the app plus every domain's tasks (each domain's
`tasks` module, discovered: kit/jobs/celery_app.py `discover_task_modules`).

The pool is Celery's threads pool: every job's work runs on the process's one event loop
(kit/jobs/loop.py), started with the first job and stopped, its database pool closed, when
the worker shuts down (`worker_shutdown`).

Logs: one JSON line each, like every service. Logging is configured at `celeryd_init`, the
first thing the worker program does (before `worker_init` logs `metrics_serving` and before
Celery's privilege check warns), and the `setup_logging` receiver tells Celery to leave
logging alone. `rampart worker` starts it quiet (no banner); Celery's few raw notices
(`safe_say`: "Warm shutdown", "Hitting Ctrl+C again...") become log lines too.

Observability (docs/observability.md): the process starts Sentry (`celeryd_init`, as
Sentry's Celery integration wants), its OpenTelemetry provider and the metrics endpoint on
WORKER_METRICS_PORT (`worker_init`), with the consumer's progress (kit/jobs/liveness.py:
alive but not consuming?), and flushes its spans on the way out.
"""

from __future__ import annotations

from celery.apps import worker as celery_worker_program
from celery.signals import celeryd_init, setup_logging, worker_init, worker_shutdown

from rampart.config import get_settings
from rampart.kit import tracing
from rampart.kit.jobs import loop
from rampart.kit.jobs.celery_app import discover_task_modules, get_celery
from rampart.kit.jobs.liveness import ConsumerProgress
from rampart.kit.logging import configure_service_logging, get_logger
from rampart.kit.metrics import exposition
from rampart.kit.metrics.process_setup import setup_process
from rampart.kit.sentry import init_sentry

celery_app = get_celery()
celery_app.conf.include = discover_task_modules("rampart")
consumer_progress = ConsumerProgress().connect()


def _configure_logging(**_kwargs: object) -> None:
    configure_service_logging("worker", get_settings())


def _leave_logging_alone(**_kwargs: object) -> None:
    """A `setup_logging` receiver: its presence alone stops Celery configuring logging."""


def _say(msg: str, _file: object = None) -> None:
    """Celery's `safe_say` (a raw write to stdout, meant for a terminal), as a log line.
    Called from Celery's signal handlers; our threads pool has no eventlet hub to upset."""
    get_logger("celery.apps.worker").warning(msg.strip())


def _start_sentry(**_kwargs: object) -> None:
    init_sentry("worker")


def _start(**_kwargs: object) -> None:
    setup_process("worker", sentry=False)  # OpenTelemetry, rampart_build_info
    settings = get_settings()
    served = exposition.serve(
        settings.worker_metrics_port, settings.metrics_host, extra_collectors=[consumer_progress]
    )
    if served is not None:
        get_logger("rampart.metrics").info(
            "metrics_serving", host=settings.metrics_host, port=settings.worker_metrics_port
        )


def _stop(**_kwargs: object) -> None:
    from rampart.llm.service import aclose

    loop.run(aclose())  # the LLM providers' HTTP connections, on the loop that opened them
    loop.stop()
    tracing.shutdown()


celeryd_init.connect(_configure_logging, weak=False)  # first: everything after logs JSON
celeryd_init.connect(_start_sentry, weak=False)
setup_logging.connect(_leave_logging_alone, weak=False)
worker_init.connect(_start, weak=False)
worker_shutdown.connect(_stop, weak=False)
celery_worker_program.safe_say = _say  # its only hook: a module global, looked up per call
