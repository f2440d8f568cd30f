"""The assessment pipeline on real processes: API, outbox relay and Celery worker run as
subprocesses (`python -m rampart.cli ...`) on the test stack's real Postgres and Redis.

Proves invariants 2 (no accepted work lost, none done twice: broker outage, worker killed
mid-task) and 5 (one trace_id from the HTTP request through relay and worker to job rows).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from sqlalchemy import text
from tests.support import httpclient
from tests.support.chaos import broker_idle
from tests.support.db import app_session
from tests.support.processes import Proc, Processes, processes
from tests.support.users import Account, answers, signup
from tests.support.wait import wait_until

from rampart.kit.db.transaction import Claims
from rampart.kit.jobs.celery_app import QUEUE

if TYPE_CHECKING:  # imported at run time, pytest would try to collect the class
    from tests.support.stack import TestStack

COMPLETION_TIMEOUT = 60.0


@pytest.fixture
def procs(stack: TestStack, tmp_path: Path) -> Iterator[Processes]:
    """Spawns Rampart processes; all of them are killed when the test ends, pass or fail."""
    with processes(stack, tmp_path / "procs") as spawned:
        yield spawned


def start_pipeline(procs: Processes, **worker_env: str) -> tuple[Proc, Proc, Proc]:
    """API, worker and relay, spawned together (they start in parallel), then ready; and
    idle: earlier tests' unpublished outbox rows (integration tests run jobs in-process and
    leave them behind) are published and worked off first, so they cannot get in the way."""
    api = procs.spawn("api")
    worker = procs.spawn("worker", WORKER_CONCURRENCY="1", **worker_env)
    relay = procs.spawn("relay")
    for proc in (api, worker, relay):
        proc.wait_ready()
    broker = redis.Redis.from_url(procs.stack.env["REDIS_URL"])
    try:
        wait_until(
            lambda: broker_idle(broker), 60, 0.1, message="earlier tests' jobs to be worked off"
        )
    finally:
        broker.close()
    return api, worker, relay


def assessment(client: httpx.Client, account: Account, assessment_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_status(
    client: httpx.Client,
    account: Account,
    assessment_id: str,
    status: str,
    timeout: float = COMPLETION_TIMEOUT,
    interval: float = 0.1,
) -> dict[str, Any]:
    seen: list[str] = []

    def reached() -> dict[str, Any] | None:
        body = assessment(client, account, assessment_id)
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        assert body["status"] != "failed", body
        return body if body["status"] == status else None

    return wait_until(
        reached,
        timeout,
        interval,
        message=lambda: f"assessment {assessment_id} to be {status!r} (statuses seen: {seen})",
    )


def jobs(tenant_id: str) -> list[Any]:
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        return session.execute(
            text(
                "SELECT id, type, status, attempts, trace_id FROM jobs"
                " WHERE type <> 'send_mail' ORDER BY created_at"  # not the signup's mail
            )
        ).all()


def roadmap_count(tenant_id: str, assessment_id: str) -> int:
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        return session.execute(
            text("SELECT count(*) FROM roadmaps WHERE assessment_id = :a"),
            {"a": uuid.UUID(assessment_id)},
        ).scalar_one()


def post_assessment(
    client: httpx.Client, account: Account, headers: dict[str, str] | None = None
) -> httpx.Response:
    response = client.post(
        "/api/v1/assessments",
        json={"answers": answers(2)},
        headers={**account.headers, **(headers or {})},
    )
    assert response.status_code == 202, response.text
    return response


def events(proc: Proc, **match: Any) -> list[dict[str, Any]]:
    """`proc`'s log lines whose keys have the given values."""
    return [
        line
        for line in proc.log_lines()
        if all(line.get(key) == value for key, value in match.items())
    ]


def test_assessment_completes_through_real_processes_under_one_trace_id(stack, procs):
    api, worker, relay = start_pipeline(procs)
    trace_id, parent_span = secrets.token_hex(16), secrets.token_hex(8)
    with httpclient.client(base_url=api.url, timeout=30) as client:
        account = signup(client)
        created = post_assessment(
            client, account, {"traceparent": f"00-{trace_id}-{parent_span}-01"}
        )
        assert created.headers["x-request-id"] == trace_id
        out_parent = created.headers["traceparent"].split("-")
        assert out_parent[0] == "00" and out_parent[1] == trace_id and out_parent[3] == "01"
        assessment_id = created.json()["id"]

        done = wait_for_status(client, account, assessment_id, "completed")
        assert done["overall_score"] == 40 and done["provider"] == "offline"
        roadmap = client.get(f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers)
        assert roadmap.status_code == 200, roadmap.text
        assert roadmap.json()["assessment_id"] == assessment_id
        assert len(roadmap.json()["items"]) >= 3

    rows = jobs(account.tenant_id)
    assert [(j.type, j.status, j.attempts) for j in rows] == [
        ("score_assessment", "succeeded", 1),
        ("generate_roadmap", "succeeded", 1),
    ]
    assert {j.trace_id for j in rows} == {trace_id}

    # The trace_id in every process's JSON logs: the request, both publishes, both jobs.
    accepted = events(api, event="assessment_accepted", trace_id=trace_id)
    assert [line["assessment_id"] for line in accepted] == [assessment_id]
    assert events(
        api, event="http_request", route="/api/v1/assessments", status=202, trace_id=trace_id
    )
    job_ids = {str(j.id) for j in rows}
    wait_until(
        lambda: (
            {line["job_id"] for line in events(relay, event="outbox_published", trace_id=trace_id)}
            == job_ids
        ),
        10,
        message="the relay to log both publishes with the trace_id",
    )
    wait_until(
        lambda: (
            {line["job_id"] for line in events(worker, event="job_succeeded", trace_id=trace_id)}
            == job_ids
        ),
        10,
        message="the worker to log both jobs succeeding with the trace_id",
    )
    worker_lines = events(worker, trace_id=trace_id, assessment_id=assessment_id)
    assert {"assessment_scored", "assessment_completed"} <= {line["event"] for line in worker_lines}
    assert all(line["service"] == "worker" for line in worker_lines)


def test_broker_outage_still_accepts_work_and_completes_it_once_redis_is_back(stack, procs):
    api, _worker, relay = start_pipeline(procs)
    with httpclient.client(base_url=api.url, timeout=30) as client:
        account = signup(client)
        stack.redis.stop()
        try:
            assert not stack.redis.is_running()
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"].startswith("failed")

            created = post_assessment(client, account)
            assessment_id = created.json()["id"]
            # The relay keeps trying (and failing) to publish; the work waits in the outbox.
            wait_until(
                lambda: len(events(relay, event="relay_round_failed")) >= 2,
                20,
                message="the relay to fail at least two rounds while Redis is down",
            )
            assert assessment(client, account, assessment_id)["status"] == "queued"
            assert [(j.type, j.status, j.attempts) for j in jobs(account.tenant_id)] == [
                ("score_assessment", "pending", 0)
            ]
            assert not _pipeline_published(relay)
        finally:
            stack.redis.start()  # same port; later tests need it whatever happened here

        done = wait_for_status(client, account, assessment_id, "completed")
        assert (
            client.get(
                f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers
            ).status_code
            == 200
        )
        assert client.get("/ready").status_code == 200

    rows = jobs(account.tenant_id)
    assert [(j.type, j.status, j.attempts) for j in rows] == [
        ("score_assessment", "succeeded", 1),
        ("generate_roadmap", "succeeded", 1),
    ]
    assert roadmap_count(account.tenant_id, assessment_id) == 1
    published = _pipeline_published(relay)
    assert sorted(line["job_id"] for line in published) == sorted(str(j.id) for j in rows)


def _pipeline_published(relay) -> list[dict]:
    """The relay's publishes of assessment jobs (the signup's mail job is not the pipeline)."""
    return [
        line
        for line in events(relay, event="outbox_published")
        if line["task"] != "send_mail"
    ]


def _unacked_delivery_time(client: redis.Redis, job_id: str) -> float | None:
    """When the broker handed the job's message to a worker that has not acked it yet.

    kombu's Redis transport keeps unacked messages in the hash `unacked` (tag -> message)
    and their delivery times in the sorted set `unacked_index`; a worker restores those
    older than the visibility timeout to the queue, among others when it starts.
    """
    for tag, raw in client.hgetall("unacked").items():
        if job_id.encode() in raw:
            return client.zscore("unacked_index", tag)
    return None


@pytest.mark.slow
def test_worker_killed_mid_task_is_redelivered_and_completes_exactly_once(stack, procs):
    # Every worker here: a task may run 9s (soft limit 4s), so a message unacked for 10s
    # belongs to a dead worker and is handed out again (retry delays stay below that).
    visibility_timeout = 10
    jobs_env = {
        "TASK_TIME_LIMIT_SECONDS": "9",
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": str(visibility_timeout),
        "JOB_RETRY_MAX_SECONDS": "5",
    }
    api, idle_worker, _relay = start_pipeline(procs, **jobs_env)
    idle_worker.stop()  # the queue is empty now: the slow worker gets our message
    slow_worker = procs.spawn(
        "worker", WORKER_CONCURRENCY="1", LLM_OFFLINE_LATENCY_SECONDS="3", **jobs_env
    ).wait_ready()
    broker = redis.Redis.from_url(stack.env["REDIS_URL"])
    assert broker.llen(QUEUE) == 0
    with httpclient.client(base_url=api.url, timeout=30) as client:
        account = signup(client)
        assessment_id = post_assessment(client, account).json()["id"]
        wait_for_status(client, account, assessment_id, "scoring", timeout=30, interval=0.05)

        slow_worker.kill()  # SIGKILL the worker's whole process group mid-task
        assert not slow_worker.group_alive()

        [score_job] = jobs(account.tenant_id)
        assert (score_job.type, score_job.status, score_job.attempts) == (
            "score_assessment",
            "processing",
            1,
        )
        # Late ack: the message is not lost, it waits in the broker as unacked.
        delivered_at = _unacked_delivery_time(broker, str(score_job.id))
        assert delivered_at is not None, "the killed worker's message is not in `unacked`"
        # A new worker restores it on start once the visibility timeout has passed.
        wait_until(
            lambda: time.time() > delivered_at + visibility_timeout + 0.5,
            visibility_timeout + 5,
            0.2,
            message="the visibility timeout of the killed worker's message to pass",
        )
        assert assessment(client, account, assessment_id)["status"] == "scoring"
        fresh_worker = procs.spawn("worker", WORKER_CONCURRENCY="1", **jobs_env).wait_ready()

        done = wait_for_status(client, account, assessment_id, "completed")
        assert done["overall_score"] == 40 and done["roadmap_id"]
        roadmap = client.get(f"/api/v1/roadmaps/{done['roadmap_id']}", headers=account.headers)
        assert roadmap.status_code == 200

    rows = jobs(account.tenant_id)
    assert [(j.type, j.status) for j in rows] == [
        ("score_assessment", "succeeded"),
        ("generate_roadmap", "succeeded"),
    ]
    assert rows[0].attempts == 2, "the score job was not redelivered exactly once more"
    assert rows[1].attempts == 1
    assert roadmap_count(account.tenant_id, assessment_id) == 1
    assert _unacked_delivery_time(broker, str(score_job.id)) is None
    redelivered = events(fresh_worker, event="job_succeeded", job_id=str(score_job.id))
    assert [line["attempt"] for line in redelivered] == [2]
    broker.close()
