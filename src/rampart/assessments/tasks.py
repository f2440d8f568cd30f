"""Celery tasks of the assessment pipeline: thin, the work is in the service."""

from __future__ import annotations

from rampart.assessments import service
from rampart.kit.jobs.task import job_task

score_assessment = job_task(service.SCORE_TASK, service.score_step, service.mark_failed)
generate_roadmap = job_task(service.ROADMAP_TASK, service.roadmap_step, service.mark_failed)
