"""The Celery worker's composition root: the app plus every domain's tasks."""

from __future__ import annotations

from celery.signals import after_setup_logger, worker_process_init

from rampart.config import get_settings
from rampart.kit.jobs.celery_app import get_celery
from rampart.kit.logging import configure_logging

celery_app = get_celery()
celery_app.conf.include = ["rampart.assessments.tasks"]


def _configure_logging(**_kwargs: object) -> None:
    settings = get_settings()
    configure_logging(
        service="worker",
        env=settings.env,
        version=settings.version,
        level=settings.log_level,
        log_file=settings.log_file,
    )


after_setup_logger.connect(_configure_logging, weak=False)
worker_process_init.connect(_configure_logging, weak=False)
