"""Metrics on the real Postgres and Redis, in-process (single-process registry): database
query, slow-query, transaction-error and pool metrics; the relay's scrape-time gauges
(jobs, queues, connections); LLM work durations; build info on /metrics. Multiprocess
aggregation across real uvicorn workers and Celery pool processes: tests/e2e."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid

import pytest
from prometheus_client import REGISTRY
from tests.support.db import idle_in_transaction, su_value
from tests.support.jobs import jobs, run_pending
from tests.support.server import scrape_api_metrics
from tests.support.users import answers, signup

from rampart.assessments import service
from rampart.config import get_settings
from rampart.kit import context
from rampart.kit.db.transaction import DatabaseUnavailable, transaction
from rampart.kit.jobs import loop
from rampart.kit.jobs.relay_gauges import OpsCollector
from rampart.kit.jobs.runner import run_job


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def collected(collector: OpsCollector) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def _json_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def slow_query_ms(monkeypatch):
    monkeypatch.setenv("DB_SLOW_QUERY_MS", "50")
    get_settings.cache_clear()
    yield 50
    monkeypatch.delenv("DB_SLOW_QUERY_MS")
    get_settings.cache_clear()


def test_a_slow_query_is_counted_and_logged_with_its_trace_id_and_no_values(
    api, slow_query_ms, capsys
):
    slow_before = value("rampart_db_slow_queries_total")
    selects_before = value("rampart_db_query_duration_seconds_count", operation="select")
    trace_id = uuid.uuid4().hex

    async def queries() -> None:
        context.bind(trace_id=trace_id)
        async with transaction(None) as tx:
            await tx.fetch("SELECT pg_sleep(0.1), 'secret-literal-value' AS x, 123456789")
            await tx.fetch("SELECT 1")  # fast: timed, not slow

    loop.run(queries())
    assert value("rampart_db_slow_queries_total") == slow_before + 1
    assert value("rampart_db_query_duration_seconds_count", operation="select") >= (
        selects_before + 2
    )
    [logged] = [line for line in _json_lines(capsys) if line["event"] == "db_slow_query"]
    assert logged["trace_id"] == trace_id and logged["level"] == "warning"
    assert logged["statement"] == "SELECT pg_sleep(?), ? AS x, ?"
    assert logged["duration_ms"] >= 100 and logged["operation"] == "select"


def test_a_deadlock_is_counted_by_reason_and_its_rollback_too(api):
    deadlocks = value("rampart_db_transaction_errors_total", reason="deadlock")
    rollbacks = value("rampart_db_transaction_errors_total", reason="rollback")
    keys = (uuid.uuid4().int % 2**62, uuid.uuid4().int % 2**62)

    async def both() -> list[BaseException]:
        holding = [asyncio.Event(), asyncio.Event()]

        async def lock(me: int, first: int, second: int) -> None:
            async with transaction(None) as tx:
                await tx.execute("SELECT pg_advisory_xact_lock($1)", first)
                holding[me].set()
                await holding[1 - me].wait()
                await tx.execute("SELECT pg_advisory_xact_lock($1)", second)

        results = await asyncio.gather(
            lock(0, *keys), lock(1, *keys[::-1]), return_exceptions=True
        )
        return [r for r in results if isinstance(r, BaseException)]

    failures = loop.run(both())
    # Postgres broke the cycle by failing one of them: a 503 for a request, a retry for a job.
    assert len(failures) == 1 and isinstance(failures[0], DatabaseUnavailable), failures
    assert value("rampart_db_transaction_errors_total", reason="deadlock") == deadlocks + 1
    assert value("rampart_db_transaction_errors_total", reason="rollback") >= rollbacks + 1


def test_pool_gauges_show_the_pool_size_and_the_connections_in_use(api):
    settings = get_settings()

    async def two_at_once() -> tuple[float, float]:
        async with transaction(None) as tx:
            await tx.fetchval("SELECT 1")  # the pool exists and has been used
        idle = value("rampart_db_pool_in_use")
        async with transaction(None) as first, transaction(None) as second:
            await first.fetchval("SELECT 1")
            await second.fetchval("SELECT 1")
            return idle, value("rampart_db_pool_in_use")

    idle, in_use = loop.run(two_at_once())
    assert value("rampart_db_pool_size") == settings.db_pool_size + settings.db_max_overflow
    assert in_use == idle + 2
    assert value("rampart_db_pool_in_use") == idle


def test_score_and_roadmap_durations_are_observed_by_provider(client):
    account = signup(client)
    scored = value("rampart_assessment_score_duration_seconds_count", provider="offline")
    roadmaps = value("rampart_roadmap_duration_seconds_count", provider="offline")
    created = client.post(
        "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
    )
    assert created.status_code == 202
    run_pending(account.tenant_id)  # score, which enqueues the roadmap
    run_pending(account.tenant_id)
    assert value("rampart_assessment_score_duration_seconds_count", provider="offline") == (
        scored + 1
    )
    assert value("rampart_roadmap_duration_seconds_count", provider="offline") == roadmaps + 1


def test_the_relay_collector_reports_jobs_queues_and_connections_across_tenants(client):
    collector = OpsCollector()
    first, second = signup(client, "Tenant One"), signup(client, "Tenant Two")
    before = collected(collector)
    for account in (first, second):
        created = client.post(
            "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
        )
        assert created.status_code == 202
    # One of them fails for good: an open dead letter counts as quarantined.
    [job] = jobs(second.tenant_id)

    async def broken(_run):
        raise RuntimeError("model returned garbage")

    outcome = loop.run(run_job(str(job.id), second.tenant_id, broken, task=service.SCORE_JOB))
    assert outcome == "quarantined"

    # An app_rw session idle inside a transaction, in another thread, while we scrape.
    with idle_in_transaction(first.tenant_id):
        after = collected(collector)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    pending = {"type": "score_assessment", "state": "pending"}
    quarantined = {"type": "score_assessment", "state": "quarantined"}
    assert delta("rampart_jobs", **pending) == 1  # both tenants' jobs, one now quarantined
    assert delta("rampart_jobs", **quarantined) == 1
    assert delta("rampart_queue_length", queue="outbox") == 2  # no relay runs here
    assert after[("rampart_queue_oldest_age_seconds", (("queue", "outbox"),))] > 0
    assert after[("rampart_queue_oldest_age_seconds", (("queue", "rampart"),))] > 0
    assert ("rampart_queue_length", (("queue", "rampart"),)) in after  # Redis LLEN
    connections = {k[1][0][1]: v for k, v in after.items() if k[0] == "rampart_db_connections"}
    if after[("rampart_db_connection_states_readable", ())] == 1:  # pg_read_all_stats
        assert connections["active"] >= 1  # the collector's own query
        assert connections["idle in transaction"] >= 1  # app_rw's session
    else:  # e.g. RAMPART_TEST_DB_SHAPE=supabase: both sessions counted, states hidden
        assert connections["unknown"] >= 2
    assert after[("rampart_db_max_connections", ())] >= 10
    assert after[("rampart_dependency_up", (("dependency", "postgres"),))] == 1
    assert after[("rampart_dependency_up", (("dependency", "redis"),))] == 1


def test_the_relay_collector_reports_how_long_the_oldest_job_has_been_processing(client, superuser):
    """A delivery that started and hangs (or whose worker died) keeps its job `processing`:
    the relay reports how long, next to the task time limit the alert compares it with."""
    collector = OpsCollector()
    account = signup(client, "Hung Worker Inc")
    created = client.post(
        "/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers
    )
    assert created.status_code == 202
    [job] = jobs(account.tenant_id)
    running, release = threading.Event(), threading.Event()

    async def hangs(run):  # a worker stuck on its LLM call, then finishing
        async with run.transaction():
            pass  # a step's first transaction: the delivery counted, the job `processing`
        running.set()
        await asyncio.to_thread(release.wait, 30)
        async with run.transaction() as tx:
            await run.succeed(tx)

    worker = threading.Thread(
        target=lambda: loop.run(run_job(str(job.id), account.tenant_id, hangs, task="t"))
    )
    worker.start()
    try:
        assert running.wait(10)
        time.sleep(1.5)
        during = collected(collector)
    finally:
        release.set()
        worker.join(30)
    age = during[("rampart_jobs_processing_oldest_age_seconds", ())]
    assert age >= 1.5
    limit = during[("rampart_task_time_limit_seconds", ())]
    assert limit == get_settings().task_time_limit_seconds

    # Done: the age is now that of another processing job, if any, else 0.
    after = collected(collector)[("rampart_jobs_processing_oldest_age_seconds", ())]
    others = su_value(superuser, "SELECT count(*) FROM jobs WHERE status = 'processing'")
    if others == 0:
        assert after == 0


def test_the_relay_collector_says_redis_is_down_instead_of_reporting_zero(stack):
    collector = OpsCollector()
    stack.redis.stop()
    try:
        samples = collected(collector)
    finally:
        stack.redis.start()
    assert samples[("rampart_dependency_up", (("dependency", "redis"),))] == 0
    assert samples[("rampart_dependency_up", (("dependency", "postgres"),))] == 1
    assert ("rampart_queue_length", (("queue", "rampart"),)) not in samples
    assert ("rampart_queue_length", (("queue", "outbox"),)) in samples


def test_every_error_envelope_is_counted_by_status_and_code(client):
    account = signup(client, "Error Codes")
    missing = value("rampart_http_errors_total", status="404", code="not_found")
    invalid = value("rampart_http_errors_total", status="422", code="validation_error")
    unauthorized = value("rampart_http_errors_total", status="401", code="unauthorized")

    path = f"/api/v1/assessments/{uuid.uuid4()}"
    assert client.get(path, headers=account.headers).status_code == 404
    bad = client.post("/api/v1/assessments", json={"answers": {}}, headers=account.headers)
    assert bad.status_code == 422
    assert client.get("/api/v1/me").status_code == 401

    assert value("rampart_http_errors_total", status="404", code="not_found") == missing + 1
    assert value("rampart_http_errors_total", status="422", code="validation_error") == invalid + 1
    assert value("rampart_http_errors_total", status="401", code="unauthorized") == (
        unauthorized + 1
    )


def test_metrics_endpoint_reports_the_build(client):
    body = scrape_api_metrics()
    match = re.search(r'rampart_build_info\{commit="([^"]+)",version="([^"]+)"\} 1\.0', body)
    assert match, "rampart_build_info missing from the API's metrics"
    commit, version = match.groups()
    assert version == get_settings().version
    assert re.fullmatch(r"[0-9a-f]{12}|unknown", commit)
