"""Celery tasks of accounts: thin, the work is in the service.

The alias is the Celery name of the mail job up to migration 0016 (docs/migrations.md).
"""

from __future__ import annotations

from rampart.accounts import service
from rampart.kit.jobs.task import job_task

send_mail = job_task(service.MAIL_JOB, service.mail_step, aliases=("rampart.accounts.send_mail",))
