"""Quarantine and replay on the real database, through the real runner and CLI."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from tests.support.cli import rampart
from tests.support.db import app_session
from tests.support.jobs import enqueue_poison_job, jobs, run, run_pending, run_work
from tests.support.users import answers, signup

from rampart.assessments import service
from rampart.kit.db.transaction import Claims
from rampart.kit.jobs.runner import TransientJobError

# A client's X-Request-ID that is a 32-hex id becomes the trace id (the OTel trace id).
REPLAY_TRACE_ID = "7e91a0c4d2b8f3a65e4c1d0b9a8f7e6d"


def _as_tenant(tenant_id: str, sql: str, **params):
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        return session.execute(text(sql), params).all()


def _dead_letters(tenant_id: str):
    return _as_tenant(tenant_id, "SELECT * FROM dead_letters ORDER BY id")


def test_a_definitive_failure_is_quarantined_after_one_try_with_everything_kept(client):
    account = signup(client)
    job_id = enqueue_poison_job(account.tenant_id)
    assert run(job_id, "score_assessment", account.tenant_id) == "quarantined"
    job = _as_tenant(account.tenant_id, "SELECT * FROM jobs WHERE id = :id", id=job_id)[0]
    assert job.status == "quarantined" and job.attempts == 1
    [letter] = _dead_letters(account.tenant_id)
    assert letter.error_class == "ValueError"
    assert "not-a-uuid" in letter.error_message or "badly formed" in letter.error_message
    assert "Traceback" in letter.traceback
    assert letter.payload == {"assessment_id": "not-a-uuid"}
    assert letter.attempts == 1 and letter.task == service.SCORE_JOB
    # A quarantined job is not run again by a late duplicate delivery.
    assert run(job_id, "score_assessment", account.tenant_id) == "skipped"


def test_a_transient_failure_is_retried_until_the_attempt_budget_then_quarantined(
    client, monkeypatch
):
    from tests.support.stack import reset_caches

    monkeypatch.setenv("JOB_MAX_ATTEMPTS", "3")
    reset_caches()
    account = signup(client)
    job_id = enqueue_poison_job(account.tenant_id)

    async def flaky(_run):
        raise TransientJobError("provider busy")

    for _attempt in (1, 2):
        with pytest.raises(TransientJobError):  # the task turns this into a Celery retry
            run_work(job_id, account.tenant_id, flaky, task=service.SCORE_JOB)
    assert run_work(job_id, account.tenant_id, flaky, task=service.SCORE_JOB) == "quarantined"
    [letter] = _dead_letters(account.tenant_id)
    assert letter.error_class == "TransientJobError" and letter.attempts == 3
    monkeypatch.delenv("JOB_MAX_ATTEMPTS")
    reset_caches()


def test_a_run_past_the_time_limit_is_retried_and_quarantined_only_when_attempts_run_out(
    client, monkeypatch
):
    """A time limit is transient (docs/resilience.md, "Time limits"): the run is cancelled
    and retried; only the last allowed delivery's overrun quarantines the job."""
    from tests.support.stack import reset_caches

    from rampart.kit.jobs.runner import JobTimeLimitExceeded

    monkeypatch.setenv("JOB_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("TASK_TIME_LIMIT_SECONDS", "1")
    reset_caches()
    try:
        account = signup(client)
        job_id = enqueue_poison_job(account.tenant_id)
        cancelled: list[int] = []

        async def too_slow(run):
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(run.attempts)
                raise

        with pytest.raises(JobTimeLimitExceeded):  # transient: the task retries it
            run_work(job_id, account.tenant_id, too_slow, task=service.SCORE_JOB)
        job = _as_tenant(account.tenant_id, "SELECT * FROM jobs WHERE id = :id", id=job_id)[0]
        assert job.status != "quarantined" and job.attempts == 1
        assert _dead_letters(account.tenant_id) == []
        outcome = run_work(job_id, account.tenant_id, too_slow, task=service.SCORE_JOB)
        assert outcome == "quarantined"
        assert cancelled == [1, 2]  # each run was stopped at the limit, not left running
        [letter] = _dead_letters(account.tenant_id)
        assert letter.error_class == "JobTimeLimitExceeded" and letter.attempts == 2
    finally:
        monkeypatch.delenv("JOB_MAX_ATTEMPTS")
        monkeypatch.delenv("TASK_TIME_LIMIT_SECONDS")
        reset_caches()


def test_a_job_delivered_too_often_is_quarantined_without_running(client):
    account = signup(client)
    job_id = enqueue_poison_job(account.tenant_id)
    # As if each earlier delivery had killed its worker before it could record anything.
    _as_tenant(
        account.tenant_id, "UPDATE jobs SET attempts = 5 WHERE id = :id RETURNING id", id=job_id
    )
    ran = []

    async def record(run):
        ran.append(run)

    outcome = run_work(job_id, account.tenant_id, record, task=service.SCORE_JOB)
    assert outcome == "quarantined" and ran == []
    [letter] = _dead_letters(account.tenant_id)
    assert letter.error_class == "DeliveryLimitExceeded" and letter.attempts == 6


@pytest.mark.slow  # CLI processes
def test_replay_from_the_cli_completes_the_work_and_keeps_the_trace_id(client):
    account = signup(client)
    created = client.post(
        "/api/v1/assessments",
        json={"answers": answers(2)},
        headers={**account.headers, "x-request-id": REPLAY_TRACE_ID},
    )
    assessment_id = created.json()["id"]
    [job] = jobs(account.tenant_id)

    async def broken(_run):
        raise RuntimeError("model returned garbage")

    outcome = run_work(
        str(job.id),
        account.tenant_id,
        broken,
        task=service.SCORE_JOB,
        on_failure=service.mark_failed,
    )
    assert outcome == "quarantined"
    failed = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
    assert failed["status"] == "failed"

    [letter] = _dead_letters(account.tenant_id)
    listing = rampart("dlq", "list").stdout
    assert REPLAY_TRACE_ID in listing and "RuntimeError" in listing, listing
    assert "model returned garbage" in rampart("dlq", "show", str(letter.id)).stdout
    assert "replayed 1 job" in rampart("dlq", "replay", str(letter.id)).stdout

    outbox = _outbox_rows_for(str(job.id))
    assert outbox[-1]["trace_id"] == REPLAY_TRACE_ID
    assert outbox[-1]["replay_of"] == letter.id
    run_pending(account.tenant_id)  # the replayed score job, then the roadmap job
    run_pending(account.tenant_id)
    done = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
    assert done["status"] == "completed" and done["roadmap_id"]
    # Already replayed: a second replay is refused, and nothing is left open.
    assert rampart("dlq", "replay", str(letter.id), check=False).returncode == 1
    from rampart.kit.jobs.quarantine import list_dead_letters

    assert letter.id not in [row["id"] for row in asyncio.run(list_dead_letters())]


def test_replaying_a_job_whose_work_is_done_changes_nothing(client):
    account = signup(client)
    created = client.post(
        "/api/v1/assessments", json={"answers": answers(4)}, headers=account.headers
    )
    assessment_id = created.json()["id"]
    run_pending(account.tenant_id)
    run_pending(account.tenant_id)
    before = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
    assert before["status"] == "completed"
    score_job = next(j for j in jobs(account.tenant_id) if j.type == "score_assessment")
    # Quarantine the (already done) score job as if a late duplicate had failed.
    _as_tenant(
        account.tenant_id,
        "UPDATE jobs SET status = 'processing' WHERE id = :id RETURNING id",
        id=score_job.id,
    )
    async def divide_by_zero(_run):
        return 1 / 0

    run_work(str(score_job.id), account.tenant_id, divide_by_zero, task=service.SCORE_JOB)
    [letter] = _dead_letters(account.tenant_id)
    rampart("dlq", "replay", str(letter.id))
    run_pending(account.tenant_id)
    after = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
    assert after == before
    roadmaps = _as_tenant(
        account.tenant_id, "SELECT id FROM roadmaps WHERE assessment_id = :a", a=assessment_id
    )
    assert len(roadmaps) == 1


def test_discard_closes_a_dead_letter_without_running_it(client):
    account = signup(client)
    job_id = enqueue_poison_job(account.tenant_id)
    run(job_id, "score_assessment", account.tenant_id)
    [letter] = _dead_letters(account.tenant_id)
    assert "discarded" in rampart("dlq", "discard", str(letter.id)).stdout
    [letter] = _dead_letters(account.tenant_id)
    assert letter.discarded_at is not None
    job = _as_tenant(account.tenant_id, "SELECT status FROM jobs WHERE id = :id", id=job_id)[0]
    assert job.status == "quarantined"


def _outbox_rows_for(job_id: str) -> list[dict]:
    """The outbox is write-only for app_rw; read it as the migration role (test setup)."""
    import psycopg
    from sqlalchemy.engine import make_url

    from rampart.config import get_settings

    url = make_url(get_settings().require("migration_database_url")).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        rows = conn.execute(
            "SELECT headers FROM outbox WHERE job_id = %s ORDER BY id", (job_id,)
        ).fetchall()
    return [row[0] for row in rows]
