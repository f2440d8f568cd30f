"""One name per job type: the jobs row's type, its outbox row's task and the Celery task
the worker registers are the same string; a message under a name of the previous release
(an alias) still runs, as the job (kit/jobs/task.py, docs/migrations.md)."""

from __future__ import annotations

import importlib

from tests.support.db import su_rows
from tests.support.jobs import enqueue_poison_job, run_pending
from tests.support.users import answers, signup

from rampart.kit.jobs.celery_app import discover_task_modules, get_celery


def registered() -> dict:
    """The worker's task registry: the discovered task modules, as rampart/worker.py has."""
    for module in discover_task_modules("rampart"):
        importlib.import_module(module)
    return get_celery().tasks


def test_a_job_has_one_name_in_its_row_its_outbox_row_and_the_worker(client, superuser):
    account = signup(client)  # a mail job
    created = client.post(
        "/api/v1/assessments", json={"answers": answers()}, headers=account.headers
    )
    assert created.status_code == 202, created.text
    run_pending(account.tenant_id)  # the score job, which enqueues the roadmap job
    names = su_rows(
        superuser,
        "SELECT j.type, o.task FROM jobs j JOIN outbox o ON o.job_id = j.id WHERE j.tenant_id = %s",
        account.tenant_id,
    )
    assert {job_type for job_type, _ in names} == {
        "send_mail",
        "score_assessment",
        "generate_roadmap",
    }
    assert all(job_type == task for job_type, task in names), names
    tasks = registered()
    for job_type, _ in names:
        assert tasks[job_type].name == job_type


def test_a_message_under_the_previous_releases_name_runs_as_the_job(client, superuser):
    account = signup(client)
    job_id = enqueue_poison_job(account.tenant_id)  # fails definitively: quarantined
    old_name = registered()["rampart.assessments.score"]
    outcome = old_name.apply(args=[job_id, account.tenant_id])
    assert outcome.get() == "quarantined"
    letters = "SELECT job_type, task FROM dead_letters WHERE job_id = %s"
    assert su_rows(superuser, letters, job_id)[0] == ("score_assessment", "score_assessment")
