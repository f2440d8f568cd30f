"""Celery tasks of accounts: thin, the work is in the service."""

from __future__ import annotations

from rampart.accounts import service
from rampart.kit.jobs.task import job_task

send_mail = job_task(service.MAIL_TASK, service.mail_step)
