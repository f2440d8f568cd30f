"""The Celery worker's composition root: the app plus every domain's tasks.

Observability (docs/observability.md): the main process starts Sentry (`celeryd_init`,
before the pool forks, as Sentry's Celery integration wants) and serves the metrics of
every pool process on WORKER_METRICS_PORT (`worker_init`), with the consumer's progress
(kit/jobs/liveness.py: alive but not consuming?); each pool process sets up its
own OpenTelemetry provider (`worker_process_init`) and, on its way out, flushes its spans
and drops its live gauges (`worker_process_shutdown`).
"""

from __future__ import annotations

from celery.signals import (
    after_setup_logger,
    celeryd_init,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from rampart.config import get_settings
from rampart.kit import metrics_export, tracing
from rampart.kit.jobs.celery_app import get_celery
from rampart.kit.jobs.liveness import ConsumerProgress
from rampart.kit.logging import configure_logging, get_logger
from rampart.kit.observability import setup_process
from rampart.kit.sentry import init_sentry

celery_app = get_celery()
celery_app.conf.include = ["rampart.assessments.tasks"]
consumer_progress = ConsumerProgress().connect()


def _configure_logging(**_kwargs: object) -> None:
    settings = get_settings()
    configure_logging(
        service="worker",
        env=settings.env,
        version=settings.version,
        level=settings.log_level,
        log_file=settings.log_file,
    )


def _start_sentry(**_kwargs: object) -> None:
    init_sentry("worker")


def _serve_metrics(**_kwargs: object) -> None:
    settings = get_settings()
    served = metrics_export.serve(
        settings.worker_metrics_port, settings.metrics_host, extra_collectors=[consumer_progress]
    )
    if served is not None:
        get_logger("rampart.metrics").info(
            "metrics_serving", host=settings.metrics_host, port=settings.worker_metrics_port
        )
    metrics_export.record_build_info()


def _pool_process_started(**_kwargs: object) -> None:
    setup_process("worker", sentry=False)  # Sentry came with the fork


def _pool_process_stopping(**_kwargs: object) -> None:
    tracing.shutdown()
    metrics_export.mark_dead()


after_setup_logger.connect(_configure_logging, weak=False)
worker_process_init.connect(_configure_logging, weak=False)
celeryd_init.connect(_start_sentry, weak=False)
worker_init.connect(_serve_metrics, weak=False)
worker_process_init.connect(_pool_process_started, weak=False)
worker_process_shutdown.connect(_pool_process_stopping, weak=False)
