"""What the chaos suite needs beyond `processes.py`: the books (accepted vs completed vs
duplicated vs lost), the broker's idleness, client traffic in a thread, the shared circuit
breaker in Redis, a Redis outage that keeps the broker's data like a persistent Redis, and a
Redis that hangs.

Everything is read from the real stores: assessments, roadmaps and jobs from Postgres (as
the runtime role, inside the tenant), queues and breaker state from Redis, and what the
workers did from their JSON log files.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import redis
from sqlalchemy import text

from rampart.kit.db.transaction import Claims
from rampart.kit.jobs.celery_app import QUEUE
from rampart.kit.resilience.breaker import KEY_PREFIX
from tests.support import httpclient
from tests.support.db import app_session
from tests.support.processes import Processes
from tests.support.users import Account, answers
from tests.support.wait import wait_until

if TYPE_CHECKING:
    from rampart.devstack.redis import EmbeddedRedis
    from tests.support.stack import TestStack

# --- the stores --------------------------------------------------------------------------


def as_tenant(tenant_id: str, sql: str, **params: Any) -> list[Any]:
    """Rows of `sql` run as the runtime role within the tenant (RLS applies)."""
    with app_session(Claims(tenant_id=tenant_id, role="service")) as session:
        return list(session.execute(text(sql), params))


def broker_client(stack: TestStack) -> redis.Redis:
    return redis.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=2, socket_connect_timeout=2)


def outbox_pending() -> int:
    with app_session(None) as session:
        return session.execute(text("SELECT pending FROM app.outbox_pending()")).scalar_one()


def broker_idle(broker: redis.Redis) -> bool:
    """No outbox row waits to be published, no message waits in the queue or is unacked."""
    return outbox_pending() == 0 and broker.llen(QUEUE) == 0 and broker.hlen("unacked") == 0


def unacked_delivery_times(broker: redis.Redis) -> list[float]:
    """When the broker handed out each message still unacknowledged (kombu's Redis transport
    keeps them in the hash `unacked` and their delivery times in the zset `unacked_index`)."""
    return [score for _tag, score in broker.zrange("unacked_index", 0, -1, withscores=True)]


# --- the books ---------------------------------------------------------------------------


@dataclass
class Figures:
    """One scenario's accounting, printed (run pytest with -s) and optionally appended as a
    JSON line to $CHAOS_FIGURES_FILE."""

    scenario: str
    accepted: int  # 202 responses (distinct assessment ids)
    in_db: int  # the tenant's assessments (a write answered 5xx must have left nothing)
    completed: int  # accepted ones whose status is completed
    lost: int  # accepted ones not completed (or missing)
    duplicated: int  # extra completions logged by workers + extra roadmaps
    roadmaps: int
    jobs: int
    job_attempts: int  # sum of deliveries counted by the job runner
    quarantined: int
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> Figures:
        fields = " ".join(f"{k}={v}" for k, v in asdict(self).items() if k not in ("extra",))
        extra = " ".join(f"{k}={v}" for k, v in self.extra.items())
        print(f"\nCHAOS FIGURES {fields} {extra}".rstrip())
        path = os.environ.get("CHAOS_FIGURES_FILE")
        if path:
            with open(path, "a") as handle:
                handle.write(json.dumps(asdict(self)) + "\n")
        return self


def statuses(tenant_id: str, ids: Iterable[str]) -> dict[str, str]:
    rows = as_tenant(
        tenant_id,
        "SELECT id::text AS id, status FROM assessments WHERE id = ANY(CAST(:ids AS uuid[]))",
        ids=list(ids),
    )
    return {row.id: row.status for row in rows}


def wait_completed(tenant_id: str, ids: list[str], timeout: float = 60.0) -> None:
    """Poll Postgres until every assessment in `ids` is completed; fail at once on `failed`."""
    last: dict[str, str] = {}

    def done() -> bool:
        nonlocal last
        last = statuses(tenant_id, ids)
        failed = [i for i, s in last.items() if s == "failed"]
        assert not failed, f"assessments failed: {failed}"
        return len(last) == len(ids) and all(s == "completed" for s in last.values())

    wait_until(
        done,
        timeout,
        0.2,
        message=lambda: f"{len(ids)} assessments to complete (now {Counter(last.values())})",
    )


def book(
    scenario: str,
    tenant_id: str,
    accepted: list[str],
    procs: Processes | None = None,
    **extra: Any,
) -> Figures:
    """Count what happened to the tenant's work, from Postgres and the workers' logs."""
    assert len(set(accepted)) == len(accepted), "an id was accepted twice"
    state = statuses(tenant_id, accepted)
    in_db = as_tenant(tenant_id, "SELECT count(*) AS n FROM assessments")[0].n
    roadmaps = as_tenant(
        tenant_id, "SELECT assessment_id::text AS a, count(*) AS n FROM roadmaps GROUP BY 1"
    )
    # The pipeline's jobs (not the signup's mail job).
    jobs = as_tenant(tenant_id, "SELECT status, attempts FROM jobs WHERE type <> 'send_mail'")
    per_assessment = {row.a: row.n for row in roadmaps}
    completions: Counter[str] = Counter()
    if procs is not None:
        completions.update(
            line.get("assessment_id")
            for line in procs.log_lines()
            if line.get("service") == "worker" and line.get("event") == "assessment_completed"
        )
    duplicated = sum(max(0, n - 1) for n in per_assessment.values()) + sum(
        max(0, n - 1) for key, n in completions.items() if key in state
    )
    completed = sum(1 for i in accepted if state.get(i) == "completed")
    return Figures(
        scenario=scenario,
        accepted=len(accepted),
        in_db=in_db,
        completed=completed,
        lost=len(accepted) - completed,
        duplicated=duplicated,
        roadmaps=sum(per_assessment.values()),
        jobs=len(jobs),
        job_attempts=sum(j.attempts for j in jobs),
        quarantined=sum(1 for j in jobs if j.status == "quarantined"),
        extra=extra,
    ).record()


def assert_exactly_once(
    figures: Figures, tenant_id: str, accepted: list[str], quarantined: int = 0
) -> None:
    """Every accepted assessment completed, with exactly one roadmap and one succeeded job
    per step; nothing else in the tenant but `quarantined` quarantined score jobs."""
    assert figures.lost == 0, figures
    assert figures.duplicated == 0, figures
    assert figures.in_db == figures.accepted, figures  # no write half-done behind a 5xx
    counts = {
        row.a: row.n
        for row in as_tenant(
            tenant_id,
            "SELECT a.id::text AS a, count(r.id) AS n FROM assessments a "
            "LEFT JOIN roadmaps r ON r.assessment_id = a.id GROUP BY a.id",
        )
    }
    assert {i: counts.get(i) for i in accepted} == dict.fromkeys(accepted, 1)
    jobs = as_tenant(tenant_id, "SELECT type, status FROM jobs WHERE type <> 'send_mail'")
    expected = {
        ("score_assessment", "succeeded"): len(accepted),
        ("generate_roadmap", "succeeded"): len(accepted),
    }
    if quarantined:
        expected[("score_assessment", "quarantined")] = quarantined
    assert Counter((j.type, j.status) for j in jobs) == expected


def post_assessment(client: httpx.Client, account: Account) -> httpx.Response:
    return client.post("/api/v1/assessments", json={"answers": answers(2)}, headers=account.headers)


def accept(client: httpx.Client, account: Account, n: int = 1) -> list[str]:
    """Post `n` assessments; each must be accepted (202)."""
    ids = []
    for _ in range(n):
        response = post_assessment(client, account)
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def seen_by_user(
    client: httpx.Client, account: Account, assessment_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The completed assessment and its roadmap, as their owner reads them over the API."""
    response = client.get(f"/api/v1/assessments/{assessment_id}", headers=account.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed", body
    roadmap = client.get(f"/api/v1/roadmaps/{body['roadmap_id']}", headers=account.headers)
    assert roadmap.status_code == 200, roadmap.text
    assert roadmap.json()["assessment_id"] == assessment_id
    return body, roadmap.json()


def worker_events(procs: Processes, event: str, **match: Any) -> list[dict[str, Any]]:
    return [
        line
        for line in procs.log_lines()
        if line.get("service") == "worker"
        and line.get("event") == event
        and all(line.get(k) == v for k, v in match.items())
    ]


# --- the circuit breaker in Redis ---------------------------------------------------------


def breaker_keys(provider: str) -> list[str]:
    name = f"llm.{provider}"
    return [f"{KEY_PREFIX}{{{name}}}:state", f"{KEY_PREFIX}{{{name}}}:trial"]


def reset_breaker(broker: redis.Redis, provider: str = "openai") -> None:
    broker.delete(*breaker_keys(provider))


def breaker_hash(broker: redis.Redis, provider: str = "openai") -> dict[str, str]:
    raw = broker.hgetall(breaker_keys(provider)[0])
    return {k.decode(): v.decode() for k, v in raw.items()}


def redis_now_ms(broker: redis.Redis) -> int:
    seconds, micros = broker.time()
    return seconds * 1000 + micros // 1000


# --- client traffic ------------------------------------------------------------------------


@dataclass
class Hit:
    at: float  # time.monotonic()
    what: str  # "POST", "GET", "LIST"
    status: int  # 0: no HTTP answer at all
    code: str | None = None  # the error envelope's code
    error: str | None = None


class Traffic(threading.Thread):
    """A client that keeps posting assessments and reading them back until stopped.

    Every answer is kept (`hits`); each 202's id is in `accepted`. A transport error (no
    HTTP answer) is recorded with status 0: the API itself must never go away.
    """

    def __init__(self, base_url: str, account: Account, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="chaos-traffic")
        self.base_url = base_url
        self.account = account
        self.interval = interval
        self.hits: list[Hit] = []
        self.accepted: list[str] = []
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        with httpclient.client(base_url=self.base_url, timeout=15) as client:
            while not self._halt.is_set():
                self._hit(client, "POST")
                if self.accepted:
                    self._hit(client, "GET")
                self._hit(client, "LIST")
                self._halt.wait(self.interval)

    def _hit(self, client: httpx.Client, what: str) -> None:
        at = time.monotonic()
        try:
            if what == "POST":
                response = post_assessment(client, self.account)
            elif what == "GET":
                response = client.get(
                    f"/api/v1/assessments/{self.accepted[-1]}", headers=self.account.headers
                )
            else:
                response = client.get("/api/v1/assessments?limit=5", headers=self.account.headers)
        except httpx.HTTPError as exc:
            with self._lock:
                self.hits.append(Hit(at, what, 0, error=repr(exc)))
            return
        code = None
        if response.status_code >= 400:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                code = response.json()["error"]["code"]
        with self._lock:
            self.hits.append(Hit(at, what, response.status_code, code))
            if what == "POST" and response.status_code == 202:
                self.accepted.append(response.json()["id"])

    def count(self, what: str | None = None, since: float = 0.0, **match: Any) -> int:
        with self._lock:
            hits = list(self.hits)
        return sum(
            1
            for h in hits
            if (what is None or h.what == what)
            and h.at >= since
            and all(getattr(h, k) == v for k, v in match.items())
        )

    def snapshot(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        assert not self.is_alive(), "the traffic thread did not stop"


@contextlib.contextmanager
def traffic(base_url: str, account: Account, interval: float = 0.5) -> Iterator[Traffic]:
    client = Traffic(base_url, account, interval)
    client.start()
    try:
        yield client
    finally:
        if client.is_alive():
            client.stop()


def status_summary(hits: list[Hit]) -> dict[str, int]:
    return dict(Counter(f"{h.what} {h.status}{'/' + h.code if h.code else ''}" for h in hits))


# --- a Redis outage that keeps the broker's data ------------------------------------------


@contextlib.contextmanager
def durable_redis_outage(stack: TestStack) -> Iterator[None]:
    """Stop the stack's Redis, and start it again (same port) when the block ends, even if
    it raised.

    Production brokers persist (`rampart up` runs Redis with an append-only file); the test
    stack's Redis runs without persistence for speed, so a plain stop would also wipe the
    queue, which is a different failure (data loss in the broker, not an outage). Here Redis
    snapshots on shutdown (`save` configured just before the SIGTERM) and loads the snapshot
    on start; the snapshot is deleted afterwards so later restarts start empty as before.
    """
    assert stack.redis is not None, "needs the embedded Redis (REDIS_URL is set elsewhere)"
    snapshot = stack.redis.data_dir / "dump.rdb"
    client = broker_client(stack)
    try:
        client.config_set("save", "3600 1")  # SIGTERM now writes dump.rdb
    finally:
        client.close()
    stack.redis.stop()
    try:
        assert not stack.redis.is_running()
        yield
    finally:
        stack.redis.start()  # `--save ""` again: nothing more is snapshotted
        snapshot.unlink(missing_ok=True)


# --- a Redis that hangs ---------------------------------------------------------------------


@contextlib.contextmanager
def frozen_redis(server: EmbeddedRedis) -> Iterator[int]:
    """SIGSTOP `server` (the stack's Redis, or one a test started) for the block and SIGCONT
    it when the block ends, even if it raised: a hang, not a crash. Its sockets stay open and
    take bytes that nobody reads, so clients wait for their socket timeout instead of being
    refused, and it keeps its data. Yields the server's pid."""
    assert server.is_running(), "Redis is not running"
    pid = int(server.pid_file.read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)
