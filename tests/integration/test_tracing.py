"""OpenTelemetry in-process, with an in-memory span exporter: the request's server span
continues the caller's trace, its queries are child spans, the job it enqueues carries its
traceparent, and the job's consume and llm.call spans continue it; log lines carry the same
ids. Across real processes (API → relay → worker over OTLP/HTTP): tests/e2e."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy.engine import make_url
from tests.support.jobs import jobs
from tests.support.stack import reset_caches
from tests.support.users import answers, signup
from tests.support.wait import wait_until

from rampart.kit import tracing

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


@pytest.fixture
def exported(api) -> Iterator[InMemorySpanExporter]:
    """Spans of this test, in memory. `api` first: the app installed the tracer provider."""
    exporter = InMemorySpanExporter()
    processor = tracing.add_exporter(exporter, batch=False)
    reset_caches()  # engines made from now on record database spans
    try:
        yield exporter
    finally:
        processor.shutdown()
        tracing.stop_exporting()
        reset_caches()


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _outbox_headers(job_id: str) -> dict:
    """The outbox is write-only for app_rw; read it as the migration role (test setup)."""
    from rampart.config import get_settings

    url = make_url(get_settings().require("migration_database_url")).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        [row] = conn.execute(
            "SELECT headers FROM outbox WHERE job_id = %s ORDER BY id DESC LIMIT 1", (job_id,)
        ).fetchall()
    return row[0]


def _server_spans(exporter: InMemorySpanExporter, path_part: str = "") -> list:
    return [
        s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.SERVER and path_part in s.name
    ]


def _log_lines(capsys) -> list[dict]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_one_trace_from_the_request_through_the_job_to_the_llm_call(client, exported, capsys):
    from rampart.assessments.tasks import score_assessment

    account = signup(client)
    response = client.post(
        "/api/v1/assessments",
        json={"answers": answers(2)},
        headers={**account.headers, "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
    )
    assert response.status_code == 202, response.text
    # The server span ends just after the response is sent.
    [server] = wait_until(lambda: _server_spans(exported, "assessments"), 5)
    spans = exported.get_finished_spans()

    # The server span continues the caller's trace; the response names it as the parent.
    assert server.name == "POST /api/v1/assessments"
    assert _hex(server.context.trace_id, 32) == TRACE_ID
    assert _hex(server.parent.span_id, 16) == CALLER_SPAN
    assert server.attributes["http.response.status_code"] == 202
    server_span = _hex(server.context.span_id, 16)
    assert response.headers["traceparent"] == f"00-{TRACE_ID}-{server_span}-01"

    # Its queries are database spans under it.
    queries = [
        s for s in spans if s.parent is not None and s.parent.span_id == server.context.span_id
    ]
    assert len(queries) >= 3 and all(s.kind == SpanKind.CLIENT for s in queries)
    assert {
        s.attributes.get("db.system") or s.attributes.get("db.system.name") for s in queries
    } == {"postgresql"}
    assert any(s.name.startswith("INSERT") for s in queries)

    # The log lines carry the same ids.
    accepted = [line for line in _log_lines(capsys) if line["event"] == "assessment_accepted"]
    assert [(line["trace_id"], line["span_id"]) for line in accepted] == [(TRACE_ID, server_span)]

    # The job's outbox row carries the request span as the parent of what comes next.
    [job] = jobs(account.tenant_id)
    headers = _outbox_headers(str(job.id))
    assert headers == {"trace_id": TRACE_ID, "traceparent": f"00-{TRACE_ID}-{server_span}-01"}

    # The real task, run in-process with those message headers (Celery's own `apply`).
    exported.clear()
    outcome = score_assessment.apply(args=[str(job.id), account.tenant_id], headers=headers)
    assert outcome.get() == "succeeded"
    spans = exported.get_finished_spans()
    [consume] = [s for s in spans if s.name == "queue.consume"]
    assert consume.kind == SpanKind.CONSUMER
    assert _hex(consume.context.trace_id, 32) == TRACE_ID
    assert consume.parent.span_id == server.context.span_id
    [llm_call] = [s for s in spans if s.name == "llm.call"]
    assert llm_call.parent.span_id == consume.context.span_id
    assert llm_call.attributes["gen_ai.system"] == "offline"
    assert llm_call.attributes["rampart.llm.outcome"] == "success"
    assert any(
        s.kind == SpanKind.CLIENT and s.parent.span_id == consume.context.span_id
        for s in spans
        if s.parent is not None and s.name != "llm.call"
    ), "the job's queries are not under its consume span"
    consume_span = _hex(consume.context.span_id, 16)
    job_lines = [line for line in _log_lines(capsys) if line.get("job_id") == str(job.id)]
    assert {"job_started", "job_succeeded"} <= {line["event"] for line in job_lines}
    assert {(line["trace_id"], line.get("span_id")) for line in job_lines} == {
        (TRACE_ID, consume_span)
    }

    # The roadmap job it enqueued continues from the consume span.
    roadmap_job = next(j for j in jobs(account.tenant_id) if j.type == "generate_roadmap")
    assert _outbox_headers(str(roadmap_job.id))["traceparent"] == (
        f"00-{TRACE_ID}-{consume_span}-01"
    )


def test_a_request_without_trace_headers_gets_a_fresh_trace_and_a_hex_request_id_is_one(
    client, exported
):
    plain = client.get("/health")
    trace_id = plain.headers["x-request-id"]
    assert len(trace_id) == 32 and plain.headers["traceparent"].split("-")[1] == trace_id

    chosen = "c0ffee00c0ffee00c0ffee00c0ffee00"
    by_request_id = client.get("/health", headers={"x-request-id": chosen})
    assert by_request_id.headers["x-request-id"] == chosen
    assert by_request_id.headers["traceparent"].split("-")[1] == chosen
    roots = wait_until(lambda: len(_server_spans(exported)) == 2 and _server_spans(exported), 5)
    assert {_hex(s.context.trace_id, 32) for s in roots} == {trace_id, chosen}
    assert all(s.parent is None for s in roots)

    # Any other well-formed request id is echoed back, and the trace id stays a real one.
    own = client.get("/health", headers={"x-request-id": "client-req-0001"})
    assert own.headers["x-request-id"] == "client-req-0001"
    assert len(own.headers["traceparent"].split("-")[1]) == 32
