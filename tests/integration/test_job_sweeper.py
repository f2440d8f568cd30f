"""The stale-job sweeper (migration 0008, kit/jobs/relay.py) on the real database.

A job whose outbox row went out but whose message never ran (Redis restarted without its
data, Celery dropped it) is made stale here by moving its `updated_at` into the past as the
superuser (setup and ground truth only: it bypasses RLS). Everything asserted about what the
app sees goes through app_rw, the runtime role.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid

import psycopg
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from sqlalchemy import text
from tests.support.db import app_rw, app_session, libpq_conninfo, su_rows
from tests.support.jobs import enqueue_poison_job, run
from tests.support.users import answers, signup
from tests.support.wait import wait_until

from rampart.assessments import service
from rampart.config import Settings
from rampart.kit.db.transaction import Claims
from rampart.kit.jobs import loop, relay

# Far beyond anything else in a test session: only the jobs these tests age are stale.
STALE = 86_400
AGED = "now() - interval '2 days'"


def _accept(client, account, trace_id: str | None = None) -> str:
    """Post an assessment; return its score job's id (job + outbox row, not yet published)."""
    headers = {**account.headers, "X-Request-ID": trace_id} if trace_id else account.headers
    response = client.post("/api/v1/assessments", json={"answers": answers(2)}, headers=headers)
    assert response.status_code == 202, response.text
    return _job_of(response.json()["id"], account.tenant_id)


def _job_of(assessment_id: str, tenant_id: str) -> str:
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        return str(
            session.execute(
                text(
                    "SELECT id FROM jobs WHERE type = 'score_assessment'"
                    " AND payload ->> 'assessment_id' = :a"
                ),
                {"a": assessment_id},
            ).scalar_one()
        )


def _published_and_aged(superuser: str, job_id: str, **columns: str) -> None:
    """As if the relay had published the job long ago and its message then vanished."""
    su_rows(superuser, "UPDATE outbox SET sent_at = now() WHERE job_id = %s", job_id)
    sets = ", ".join([f"updated_at = {AGED}", *(f"{k} = %s" for k in columns)])
    su_rows(superuser, f"UPDATE jobs SET {sets} WHERE id = %s", *columns.values(), job_id)  # noqa: S608


def _outbox(superuser: str, job_id: str) -> list:
    return su_rows(
        superuser,
        "SELECT task, headers, sent_at FROM outbox WHERE job_id = %s ORDER BY id",
        job_id,
    )


def _sweep(stale: int = STALE) -> dict[str, object]:
    """Call the function as app_rw without claims, as the relay does; rows by job id."""
    with app_session(None) as session:
        rows = session.execute(
            text("SELECT * FROM app.jobs_republish_stale(:s, 1000)"), {"s": stale}
        ).all()
    return {str(row.job_id): row for row in rows}


def test_a_published_job_whose_message_vanished_is_republished_once_per_stale_period(
    client, superuser
):
    account = signup(client)
    trace_id = uuid.uuid4().hex
    job_id = _accept(client, account, trace_id)
    _published_and_aged(superuser, job_id)

    swept = _sweep()
    row = swept[job_id]
    assert (str(row.tenant_id), row.type, row.trace_id) == (
        account.tenant_id,
        "score_assessment",
        trace_id,
    )
    first, again = _outbox(superuser, job_id)
    assert first[2] is not None and again[2] is None  # a new row, waiting for the relay
    assert again[0] == first[0] == service.SCORE_JOB
    assert again[1] == {"trace_id": trace_id, "republished": True}

    # Called again at once: nothing more (an unsent row waits, and the job was bumped).
    assert job_id not in _sweep()
    # The relay publishes it; still nothing more within the stale period.
    su_rows(superuser, "UPDATE outbox SET sent_at = now() WHERE job_id = %s", job_id)
    assert job_id not in _sweep()
    assert job_id not in _sweep(stale=60)
    assert len(_outbox(superuser, job_id)) == 2

    # Another stale period later, with no delivery: republished once more.
    su_rows(superuser, f"UPDATE jobs SET updated_at = {AGED} WHERE id = %s", job_id)  # noqa: S608
    assert job_id in _sweep()
    assert job_id not in _sweep()
    assert len(_outbox(superuser, job_id)) == 3

    # `rampart trace` (the operator's role) shows every republish as an enqueued (and
    # published) outbox row.
    with psycopg.connect(libpq_conninfo(os.environ["OPERATOR_DATABASE_URL"])) as conn:
        timeline = conn.execute(
            "SELECT kind, status FROM app.trace_lookup(%s) WHERE kind = 'outbox'", (trace_id,)
        ).fetchall()
    assert sorted(timeline) == sorted([("outbox", "enqueued")] * 3 + [("outbox", "published")] * 2)


def test_a_stale_processing_job_runs_once_more_then_deliveries_are_skipped(client, superuser):
    """The republished delivery of a job left `processing` (its worker's message lost) is
    counted and runs; later duplicates of it are no-ops."""
    account = signup(client)
    job_id = _accept(client, account)
    _published_and_aged(superuser, job_id, status="processing", attempts="1")
    assert job_id in _sweep()

    assert run(job_id, "score_assessment", account.tenant_id) == "succeeded"
    [(status, attempts)] = su_rows(
        superuser, "SELECT status, attempts FROM jobs WHERE id = %s", job_id
    )
    assert (status, attempts) == ("succeeded", 2)
    assert run(job_id, "score_assessment", account.tenant_id) == "skipped"
    su_rows(superuser, f"UPDATE jobs SET updated_at = {AGED} WHERE id = %s", job_id)  # noqa: S608
    assert job_id not in _sweep()  # finished: never republished


def test_fresh_finished_unpublished_and_outboxless_jobs_are_left_alone(client, superuser):
    account = signup(client)
    fresh = _accept(client, account)
    su_rows(superuser, "UPDATE outbox SET sent_at = now() WHERE job_id = %s", fresh)

    succeeded = _accept(client, account)
    _published_and_aged(superuser, succeeded, status="succeeded")

    quarantined = enqueue_poison_job(account.tenant_id)
    assert run(quarantined, "score_assessment", account.tenant_id) == "quarantined"
    _published_and_aged(superuser, quarantined)

    unsent = _accept(client, account)  # the relay has not published it yet
    su_rows(superuser, f"UPDATE jobs SET updated_at = {AGED} WHERE id = %s", unsent)  # noqa: S608

    outboxless = str(uuid.uuid4())  # not made by enqueue: the sweeper knows no task for it
    su_rows(
        superuser,
        "INSERT INTO jobs (id, tenant_id, type, idempotency_key, updated_at)"
        f" VALUES (%s, %s, 'score_assessment', %s, {AGED})",  # noqa: S608
        outboxless,
        account.tenant_id,
        f"no-outbox:{outboxless}",
    )

    jobs = [fresh, succeeded, quarantined, unsent, outboxless]
    before = {job: len(_outbox(superuser, job)) for job in jobs}
    swept = _sweep(stale=60)
    assert not set(jobs) & set(swept)
    assert {job: len(_outbox(superuser, job)) for job in jobs} == before


def test_rls_still_holds_only_the_function_reaches_across_tenants(client, superuser):
    a, b = signup(client, "A"), signup(client, "B")
    job_b = _accept(client, b, uuid.uuid4().hex)
    _published_and_aged(superuser, job_b)

    with app_rw({"tenant_id": a.tenant_id, "role": "service"}) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE id = %s", (job_b,)).fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM outbox")
    with app_rw() as conn:  # no claims, no rows
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
        # Tenant B's job, through the function only: ids, type, trace id; never the payload.
        rows = conn.execute("SELECT * FROM app.jobs_republish_stale(%s, 1000)", (STALE,))
        columns = [c.name for c in rows.description]
        assert job_b in {str(r[0]) for r in rows.fetchall()}
        assert columns == ["job_id", "tenant_id", "type", "trace_id"]
        # ...rolled back: the job stays stale for the check below.

    [(definer, config, owner_is_app_rw, public, audit, runtime)] = su_rows(
        superuser,
        "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) = 'app_rw',"
        " has_function_privilege('public', p.oid, 'EXECUTE'),"
        " has_function_privilege('readonly_audit', p.oid, 'EXECUTE'),"
        " has_function_privilege('app_rw', p.oid, 'EXECUTE')"
        " FROM pg_proc p WHERE p.oid = 'app.jobs_republish_stale(integer, integer)'::regprocedure",
    )
    assert definer and not owner_is_app_rw
    assert config == ["search_path=pg_catalog, public"]
    assert (public, audit, runtime) == (False, False, True)
    assert job_b in _sweep()


def test_the_relay_sweep_logs_and_counts_each_republished_job(client, superuser, capsys):
    account = signup(client)
    trace_id = uuid.uuid4().hex
    job_id = _accept(client, account, trace_id)
    _published_and_aged(superuser, job_id)
    counted = REGISTRY.get_sample_value(
        "rampart_jobs_republished_total", {"type": "score_assessment"}
    )
    capsys.readouterr()

    assert loop.run(relay.sweep_once(STALE, 1000)) >= 1

    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    [logged] = [x for x in lines if x.get("event") == "job_republished" and x["job_id"] == job_id]
    assert (logged["trace_id"], logged["tenant_id"], logged["job_type"]) == (
        trace_id,
        account.tenant_id,
        "score_assessment",
    )
    after = REGISTRY.get_sample_value(
        "rampart_jobs_republished_total", {"type": "score_assessment"}
    )
    assert after >= (counted or 0) + 1


def test_a_failing_sweep_is_logged_and_the_relay_keeps_publishing(monkeypatch, capsys):
    from tests.support.stack import reset_caches

    monkeypatch.setenv("JOB_SWEEP_INTERVAL_SECONDS", "0.01")
    reset_caches()
    rounds: list[int] = []

    async def broken_sweep(_stale: int, _rows: int) -> int:
        raise RuntimeError("the sweep broke")

    async def empty_round(_celery, _n: int) -> int:
        rounds.append(1)
        return 0

    monkeypatch.setattr(relay, "sweep_once", broken_sweep)
    monkeypatch.setattr(relay, "relay_once", empty_round)
    job_loop = loop.start()
    stop = asyncio.run_coroutine_threadsafe(_event(), job_loop).result()
    thread = threading.Thread(target=loop.run, args=(relay.run_relay(None, stop),), daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(rounds) >= 5, 10, 0.05, message="relay rounds after failed sweeps")
        assert thread.is_alive()
    finally:
        job_loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        monkeypatch.delenv("JOB_SWEEP_INTERVAL_SECONDS")
        reset_caches()
    events = [x for x in capsys.readouterr().out.splitlines() if '"job_sweep_failed"' in x]
    assert len(events) >= 2 and "the sweep broke" in events[0]


async def _event() -> asyncio.Event:
    return asyncio.Event()


@pytest.mark.parametrize("stale", [3600, 3599, 1])
def test_the_stale_period_must_exceed_the_visibility_timeout(stale):
    with pytest.raises(ValidationError, match="JOB_STALE_AFTER_SECONDS must exceed"):
        Settings(celery_visibility_timeout_seconds=3600, job_stale_after_seconds=stale)
    settings = Settings(celery_visibility_timeout_seconds=3600, job_stale_after_seconds=3601)
    assert settings.job_stale_after_seconds == 3601
    assert Settings().job_stale_after_seconds == 2 * Settings().celery_visibility_timeout_seconds
