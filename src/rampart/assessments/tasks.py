"""Celery tasks of the assessment pipeline: thin, the work is in the service.

The aliases are the Celery names these jobs had up to migration 0016; the worker accepts
them while messages or processes of that release may remain (docs/migrations.md).
"""

from __future__ import annotations

from rampart.assessments import service
from rampart.kit.jobs.task import job_task

score_assessment = job_task(
    service.SCORE_JOB,
    service.score_step,
    service.mark_failed,
    aliases=("rampart.assessments.score",),
)
generate_roadmap = job_task(
    service.ROADMAP_JOB,
    service.roadmap_step,
    service.mark_failed,
    aliases=("rampart.assessments.roadmap",),
)
