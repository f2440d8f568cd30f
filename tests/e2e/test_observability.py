"""Observability on real processes: `rampart api` with two uvicorn workers, `rampart worker`
with two pool processes and `rampart relay`, exporting spans over OTLP/HTTP and errors to
Sentry, both received by a local server speaking those protocols (tests/support/receivers.py).

Proves: one trace from the HTTP request to the worker's LLM call across the three services;
per-service metrics endpoints whose numbers add up over every process of the service and
forget a killed one; a job that fails for good reaches Sentry once, tagged and scrubbed;
`rampart trace` tells the story of a request from the log files and the database.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from tests.support import httpclient
from tests.support.cli import rampart
from tests.support.db import app_session
from tests.support.processes import Proc, Processes, processes
from tests.support.receivers import Receiver, Span
from tests.support.users import Account, answers, signup
from tests.support.wait import wait_until

from rampart.assessments import service
from rampart.devstack.ports import free_port
from rampart.kit import context
from rampart.kit.db.transaction import Claims, transaction
from rampart.kit.jobs import loop
from rampart.kit.jobs.celery_app import QUEUE
from rampart.kit.jobs.enqueue import enqueue

if TYPE_CHECKING:  # imported at run time, pytest would try to collect the class
    from tests.support.stack import TestStack

pytestmark = pytest.mark.slow

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP span kinds
SCORE, ROADMAP = service.SCORE_JOB, service.ROADMAP_JOB


@dataclass
class Observed:
    procs: Processes
    api: Proc
    worker: Proc
    relay: Proc
    receiver: Receiver
    metrics_dir: Path  # PROMETHEUS_MULTIPROC_DIR of all three
    log_dir: Path
    worker_metrics: str
    relay_metrics: str


def _broker_idle(broker: redis.Redis) -> bool:
    with app_session(None) as session:
        pending = session.execute(text("SELECT pending FROM app.outbox_pending()")).scalar_one()
    return pending == 0 and broker.llen(QUEUE) == 0 and broker.hlen("unacked") == 0


@pytest.fixture(scope="module")
def observed(stack: TestStack, tmp_path_factory) -> Iterator[Observed]:
    base = tmp_path_factory.mktemp("observability")
    log_dir, metrics_dir = base / "procs", base / "prometheus"
    worker_port, relay_port = free_port(), free_port()
    with Receiver() as receiver, processes(stack, log_dir) as procs:
        common = {
            "SENTRY_DSN": receiver.sentry_dsn,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.otlp_endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        }
        api = procs.spawn("api", WEB_CONCURRENCY="2", **common)
        worker = procs.spawn(
            "worker",
            WORKER_CONCURRENCY="2",
            WORKER_METRICS_PORT=str(worker_port),
            LLM_OFFLINE_LATENCY_SECONDS="0.3",  # both pool processes get work below
            **common,
        )
        relay = procs.spawn("relay", RELAY_METRICS_PORT=str(relay_port), **common)
        for proc in (api, worker, relay):
            proc.wait_ready(60)
        broker = redis.Redis.from_url(stack.env["REDIS_URL"])
        try:  # earlier tests' unpublished jobs are worked off first
            wait_until(lambda: _broker_idle(broker), 90, 0.2, message="the broker to be idle")
        finally:
            broker.close()
        yield Observed(
            procs,
            api,
            worker,
            relay,
            receiver,
            metrics_dir,
            log_dir,
            f"http://127.0.0.1:{worker_port}/metrics",
            f"http://127.0.0.1:{relay_port}/metrics",
        )


# --- helpers --------------------------------------------------------------------------------


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    response = httpclient.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


HEALTH = {"method": "GET", "route": "/health", "status": "200"}


def health_count(url: str, at_least: float = 0) -> float:
    """GET /health's rampart_http_requests_total, once it is at least `at_least`: a request
    is counted after its response went out, so the last one may land just after the client
    has its answer."""

    def reached() -> list[float]:
        count = sample(scrape(url), "rampart_http_requests_total", **HEALTH)
        return [count] if count >= at_least else []

    return wait_until(reached, 10, 0.05, message=f"the /health count to reach {at_least}")[0]


def names(samples: dict) -> set[str]:
    return {name for name, _labels in samples}


def post_assessment(client: httpx.Client, account: Account, trace_id: str | None = None) -> str:
    headers = dict(account.headers)
    if trace_id:
        headers["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    response = client.post("/api/v1/assessments", json={"answers": answers(2)}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_completed(client: httpx.Client, account: Account, assessment_id: str) -> None:
    def completed() -> bool:
        body = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers).json()
        assert body["status"] != "failed", body
        return body["status"] == "completed"

    wait_until(completed, 60, 0.1, message=f"assessment {assessment_id} to complete")


def pids(directory: Path, prefix: str) -> set[int]:
    return {
        int(match.group(1))
        for path in directory.glob(f"{prefix}_*.db")
        if (match := re.search(r"_(\d+)\.db$", path.name))
    }


def service_dir(observed: Observed, proc: Proc) -> Path:
    return observed.metrics_dir / f"{proc.role}-{proc.pid}"


# --- tests ----------------------------------------------------------------------------------


def test_one_trace_runs_from_the_request_through_relay_and_worker_to_the_llm(observed):
    trace_id = secrets.token_hex(16)
    with httpclient.client(base_url=observed.api.url, timeout=30) as client:
        account = signup(client)
        caller_span = secrets.token_hex(8)
        response = client.post(
            "/api/v1/assessments",
            json={"answers": answers(2)},
            headers={**account.headers, "traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert response.status_code == 202
        wait_completed(client, account, response.json()["id"])

    def trace_spans() -> list[Span]:
        return [s for s in observed.receiver.spans() if s.trace_id == trace_id]

    def complete() -> bool:
        spans = trace_spans()
        return (
            sum(s.name == "queue.consume" for s in spans) == 2
            and sum(s.name == "llm.call" for s in spans) == 2
            and any(s.kind == SERVER for s in spans)
        )

    wait_until(complete, 20, 0.2, message=lambda: f"the trace's spans, have {trace_spans()}")
    spans = trace_spans()
    by_task = {
        (s.name, s.attributes.get("rampart.task")): s
        for s in spans
        if s.name in ("queue.publish", "queue.consume")
    }
    [server] = [s for s in spans if s.kind == SERVER and s.name == "POST /api/v1/assessments"]
    publish_score, consume_score = by_task["queue.publish", SCORE], by_task["queue.consume", SCORE]
    publish_roadmap = by_task["queue.publish", ROADMAP]
    consume_roadmap = by_task["queue.consume", ROADMAP]
    llm_calls = {s.parent_span_id: s for s in spans if s.name == "llm.call"}

    assert (server.service, server.parent_span_id) == ("rampart-api", caller_span)
    assert (publish_score.service, publish_score.kind) == ("rampart-relay", PRODUCER)
    assert publish_score.parent_span_id == server.span_id
    assert (consume_score.service, consume_score.kind) == ("rampart-worker", CONSUMER)
    assert consume_score.parent_span_id == publish_score.span_id
    assert llm_calls[consume_score.span_id].attributes["gen_ai.system"] == "offline"
    # The roadmap job was enqueued by the score job: its publish continues from there.
    assert publish_roadmap.parent_span_id == consume_score.span_id
    assert consume_roadmap.parent_span_id == publish_roadmap.span_id
    assert consume_roadmap.span_id in llm_calls
    queries = [s for s in spans if s.kind == CLIENT and s.name != "llm.call"]
    assert {s.service for s in queries} >= {"rampart-api", "rampart-worker"}
    assert any(s.parent_span_id == server.span_id for s in queries)
    assert any(s.parent_span_id == consume_score.span_id for s in queries)

    # The logs carry the same ids: the log trace_id is the OTel trace id.
    worker_lines = [
        line
        for line in observed.worker.log_lines()
        if line.get("trace_id") == trace_id and line.get("event") == "job_started"
    ]
    assert {line["span_id"] for line in worker_lines} == {
        consume_score.span_id,
        consume_roadmap.span_id,
    }


def test_each_service_has_its_own_metrics_endpoint_adding_up_all_its_processes(observed):
    api_metrics = observed.api.metrics_url
    assert api_metrics is not None
    before = {
        "api": scrape(api_metrics),
        "worker": scrape(observed.worker_metrics),
        "relay": scrape(observed.relay_metrics),
    }
    count = 4
    with httpclient.client(base_url=observed.api.url, timeout=30) as client:
        account = signup(client)
        ids = [post_assessment(client, account) for _ in range(count)]
        for assessment_id in ids:
            wait_completed(client, account, assessment_id)
    after = {
        "api": scrape(api_metrics),
        "worker": scrape(observed.worker_metrics),
        "relay": scrape(observed.relay_metrics),
    }

    def delta(service_name: str, name: str, **labels: str) -> float:
        return sample(after[service_name], name, **labels) - sample(
            before[service_name], name, **labels
        )

    # API: every uvicorn worker's requests, counted once.
    accepted = {"method": "POST", "route": "/api/v1/assessments", "status": "202"}
    assert delta("api", "rampart_http_requests_total", **accepted) == count
    # Worker: its jobs (a threads pool: they run in the worker process itself).
    for job_type in ("score_assessment", "generate_roadmap"):
        assert delta("worker", "rampart_job_duration_seconds_count", type=job_type) == count
    assert (
        delta("worker", "rampart_assessment_score_duration_seconds_count", provider="offline")
        == count
    )
    assert (
        delta("worker", "rampart_llm_requests_total", provider="offline", outcome="success")
        == 2 * count
    )
    writers = pids(service_dir(observed, observed.worker), "counter")
    assert writers == {observed.worker.pid}, f"metrics written by {writers}"
    # Relay: its publishes, and the system-wide gauges (it alone reports them).
    assert delta("relay", "rampart_outbox_published_total", task=SCORE) == count
    assert delta("relay", "rampart_outbox_published_total", task=ROADMAP) == count
    relay_now = after["relay"]
    assert sample(relay_now, "rampart_dependency_up", dependency="postgres") == 1
    assert sample(relay_now, "rampart_dependency_up", dependency="redis") == 1
    assert sample(relay_now, "rampart_db_connections", state="active") >= 1
    assert ("rampart_queue_length", frozenset({("queue", QUEUE)})) in relay_now
    assert ("rampart_queue_oldest_age_seconds", frozenset({("queue", "outbox")})) in relay_now
    # Nothing is reported twice: job and system gauges live in one service each.
    assert not names(after["api"]) & {"rampart_job_duration_seconds_count", "rampart_jobs"}
    assert "rampart_jobs" not in names(after["worker"])
    for samples in after.values():
        assert "rampart_build_info" in names(samples)
        assert sample(samples, "rampart_db_pool_size") > 0


def listening_sockets(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on `port` (any address), from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    found.add(inode)
    return found


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    return inodes


def test_api_metrics_are_on_one_private_listener_for_all_workers_not_the_public_port(observed):
    api = observed.api
    assert api.metrics_url is not None
    # The public port has no /metrics: the normal 404 envelope, like any unknown path.
    public = httpclient.get(f"{api.url}/metrics", timeout=10)
    assert public.status_code == 404, public.text
    assert public.json()["error"]["code"] == "not_found"
    assert public.headers["content-type"].startswith("application/json")

    # Its metrics port serves the API's series, from every uvicorn worker.
    before = health_count(api.metrics_url)
    for _ in range(10):
        assert httpclient.get(f"{api.url}/health", headers={"Connection": "close"}).is_success
    assert health_count(api.metrics_url, before + 10) == before + 10
    samples = scrape(api.metrics_url)
    assert "rampart_build_info" in names(samples)
    assert "rampart_http_request_duration_seconds_bucket" in names(samples)

    # Exactly one listener, in the main `rampart api` process (uvicorn's supervisor), and
    # both workers (WEB_CONCURRENCY=2) write into the directory it reads, each once it has
    # started (the API answered as soon as one had: the other may still be importing).
    port = int(api.metrics_url.rsplit(":", 1)[1].split("/")[0])
    listeners = listening_sockets(port)
    assert len(listeners) == 1, listeners
    assert listeners <= socket_inodes(api.pid)

    def started_workers() -> set[int]:
        workers = pids(service_dir(observed, api), "gauge_max") - {api.pid}
        return {pid for pid in workers if Path(f"/proc/{pid}").exists() and not _zombie(pid)}

    wait_until(
        lambda: len(started_workers()) == 2,
        30,
        0.1,
        message=lambda: f"both uvicorn workers to write their metrics: {started_workers()}",
    )


def test_api_counts_stay_exact_across_uvicorn_workers_and_forget_a_killed_one(observed):
    api_metrics = observed.api.metrics_url
    assert api_metrics is not None
    directory = service_dir(observed, observed.api)

    def get(path: str) -> httpx.Response:  # a new connection each time: both workers get some
        return httpclient.get(f"{observed.api.url}{path}", headers={"Connection": "close"})

    def both_workers_served() -> bool:
        get("/ready")  # not /health, whose count is taken next
        return len(pids(directory, "counter") - {observed.api.pid}) >= 2

    wait_until(both_workers_served, 30, 0.01, message="both uvicorn workers to serve requests")
    before = health_count(api_metrics)
    for _ in range(30):
        assert get("/health").is_success
    assert health_count(api_metrics, before + 30) == before + 30

    workers = (pids(directory, "gauge_livesum") & pids(directory, "counter")) - {observed.api.pid}
    assert len(workers) >= 2, workers
    victim = max(workers)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{victim}").exists() or _zombie(victim), 10)

    def forgotten() -> bool:
        scrape(api_metrics)  # a scrape forgets the live gauges of dead processes
        return victim not in pids(directory, "gauge_livesum")

    wait_until(forgotten, 20, 0.2, ignore=(httpx.HTTPError,), message="the dead worker forgotten")
    # Its requests still count: counters of dead processes are kept.
    assert health_count(api_metrics) == before + 30
    assert victim in pids(directory, "counter")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_a_job_failing_for_good_reaches_sentry_once_tagged_and_scrubbed(observed):
    trace_id = secrets.token_hex(16)
    email, password = "poison.victim@example.com", "hunter2-poison-pw"
    with httpclient.client(base_url=observed.api.url, timeout=30) as client:
        account = signup(client)
    async def enqueue_poison() -> uuid.UUID:
        context.bind(trace_id=trace_id)
        async with transaction(Claims(tenant_id=account.tenant_id, sub=account.user_id)) as tx:
            return await enqueue(
                tx,
                tenant_id=uuid.UUID(account.tenant_id),
                job_type=SCORE,
                idempotency_key=f"poison:{uuid.uuid4()}",
                # A bad payload is a definitive error: no retry, quarantined at once.
                payload={"assessment_id": "not-a-uuid", "contact": email, "password": password},
            )

    job_id = loop.run(enqueue_poison())

    def ours() -> list[dict[str, Any]]:
        return [
            e for e in observed.receiver.events() if e.get("tags", {}).get("trace_id") == trace_id
        ]

    [event] = wait_until(ours, 30, 0.2, message="the worker's Sentry event")
    time.sleep(2.0)  # a second report would have arrived by now
    assert len(ours()) == 1, "the job's failure reached Sentry more than once"
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["tags"]["tenant_id"] == account.tenant_id
    assert event["tags"]["job_id"] == str(job_id)
    assert event["tags"]["job_type"] == "score_assessment"
    assert event["tags"]["service"] == "worker"
    assert event["contexts"]["trace"]["trace_id"] == trace_id
    raw = observed.receiver.sentry_bodies().decode()
    assert email not in raw and password not in raw
    with app_session(Claims(tenant_id=account.tenant_id, role="service")) as session:
        status = session.execute(
            text("SELECT status FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()
    assert status == "quarantined"

    # And the on-call person finds it by its trace id.
    shown = rampart("trace", trace_id, "--logs", str(observed.log_dir)).stdout
    print(shown)
    assert re.search(r"worker\s+job_quarantined .*error_type=ValueError", shown), shown
    assert re.search(r"db\s+dead_letter\.quarantined .*ValueError", shown), shown


def test_rampart_trace_tells_what_happened_to_a_request_in_order(observed):
    trace_id = secrets.token_hex(16)
    with httpclient.client(base_url=observed.api.url, timeout=30) as client:
        account = signup(client)
        assessment_id = post_assessment(client, account, trace_id)
        wait_completed(client, account, assessment_id)
    # The causal chain, as each process logged it. (The relay logs a publish just after it
    # returns, so a fast worker may log job_started first: publishes are checked against
    # the end of their job.)
    chain = [
        r"db\s+job\.created .*detail=score_assessment",
        r"api\s+assessment_accepted ",
        r"worker\s+job_started .*job_type=score_assessment",
        r"worker\s+job_succeeded .*job_type=score_assessment",
        r"worker\s+job_started .*job_type=generate_roadmap",
        r"worker\s+job_succeeded .*job_type=generate_roadmap",
    ]
    publishes = [
        (rf"relay\s+outbox_published .*task={re.escape(SCORE)}", chain[3]),
        (rf"relay\s+outbox_published .*task={re.escape(ROADMAP)}", chain[5]),
    ]

    def shown() -> str | None:  # the last worker line may still be on its way to the file
        out = rampart("trace", trace_id, "--logs", str(observed.log_dir)).stdout
        return out if re.search(chain[-1], out) else None

    output = wait_until(shown, 10, 0.5, message="the roadmap job in the trace")
    print(output)
    lines = output.splitlines()
    assert lines[0].startswith(f"trace {trace_id}")

    def position(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"{pattern!r} not in:\n{output}"
        return found[0]

    order = [position(pattern) for pattern in chain]
    assert order == sorted(order), f"out of order {order}:\n{output}"
    for publish, job_done in publishes:
        assert position(chain[1]) < position(publish) < position(job_done), output
    for pattern in (
        r"api\s+http_request .*method=POST route=/api/v1/assessments status=202",
        rf"db\s+assessment\.created .*id={assessment_id}",
        r"db\s+job\.succeeded .*detail=generate_roadmap",
        r"db\s+outbox\.published ",
    ):
        position(pattern)
    # Nothing from other traces slipped in.
    assert trace_id in output and all(
        account.tenant_id in line for line in lines if re.search(r"\bdb\s", line)
    )
