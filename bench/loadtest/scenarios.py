"""The load scenarios (`make load`): Stripe webhooks at stepped rates, a mixed tenant
workload, a queue flood. Each returns a report.Scenario; the ground truth of what happened
is read from Postgres as its superuser (RLS does not hide rows from it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench import load
from bench.http_rows import assessment_body
from bench.loadtest import alert, slo, workload
from bench.loadtest.report import Scenario
from bench.loadtest.target import Stack

Say = Callable[[str], None]


@dataclass
class LoadConfig:
    webhook_rates: tuple[float, ...] = (100.0, 500.0, 1000.0)
    webhook_duration_s: float = 120.0
    webhook_connections: int = 100
    webhook_tenants: int = 20
    mixed_rate: float = 50.0
    mixed_duration_s: float = 120.0
    mixed_connections: int = 50
    flood_jobs: int = 10_000
    flood_rate: float = 500.0
    flood_connections: int = 100
    flood_timeout_s: float = 1800.0
    sample_every_s: float = 2.0
    # None: the rule file's threshold (300 s); a quick run may lower it to see it fire.
    alert_threshold_s: float | None = None


def _run(target: load.Target, batch: workload.Batch, rate: float, connections: int
         ) -> load.LoadResult:
    return load.run(load.run_open_loop(target, batch.requests, rate=rate,
                                       connections=connections, drain_timeout_s=120.0))


def _scenario(name: str, rate: float | None, result: load.LoadResult, batch: workload.Batch,
              objective: slo.Slo, extra_ok: bool, notes: str, details: dict) -> Scenario:
    status_of = result.status_of or [0] * len(batch.requests)
    wrong = batch.errors(status_of)
    errors = sum(wrong.values())
    sent = len(batch.requests)
    good = sent - errors
    achieved = good / result.duration_s if result.duration_s > 0 else 0.0
    lat = result.latency_ms
    passed = extra_ok and slo.meets(objective, requests=sent, errors=errors, p99_ms=lat["p99"])
    if wrong:
        notes += f"; wrong answers (kind:status): {workload.json_dump(wrong)}"
    return Scenario(
        name=name, target_rps=rate, duration_s=result.duration_s, achieved_rps=achieved,
        requests=sent, errors=errors, p50_ms=lat["p50"], p95_ms=lat["p95"], p99_ms=lat["p99"],
        slo=objective, passed=passed, notes=notes.lstrip("; "),
        details={**details, "statuses": result.statuses, "max_ms": round(lat["max"], 2),
                 "cpu_percent": {k: round(v, 1) for k, v in result.cpu_percent.items()}},
    )


def _watch(stack: Stack) -> dict[str, list[int]]:
    return {name: [pid] for name, pid in stack.pids.items()
            if name in ("api", "postgres", "worker", "relay")}


def webhooks(stack: Stack, config: LoadConfig, say: Say) -> list[Scenario]:
    say(f"webhooks: {config.webhook_tenants} pro tenants with bound Stripe customers...")
    tenants = workload.pro_tenants(stack.api_url, stack.superuser_url, stack.webhook_secret,
                                   config.webhook_tenants, "load-webhooks")
    customers = [t.customer for t in tenants]
    target = load.Target("POST /api/v1/webhooks/stripe", stack.api_host, stack.api_port, b"")
    warm = workload.webhook_batch(stack.api_host, stack.api_port, customers, 200,
                                  stack.webhook_secret, seed=1)
    _run(target, warm, 100.0, config.webhook_connections)
    out = []
    for rate in config.webhook_rates:
        count = max(1, round(rate * config.webhook_duration_s))
        say(f"webhooks: signing {count} deliveries for {rate:g}/s...")
        batch = workload.webhook_batch(stack.api_host, stack.api_port, customers, count,
                                       stack.webhook_secret, seed=int(rate * 1000))
        say(f"webhooks: {count} deliveries at {rate:g}/s, open loop...")
        result = load.run(load.run_open_loop(
            target, batch.requests, rate=rate, connections=config.webhook_connections,
            watch_pids=_watch(stack), drain_timeout_s=120.0))
        truth = workload.check_webhooks(stack.superuser_url, batch, result.status_of or [])
        exact = (truth["lost"] == 0 and truth["doubled"] == 0
                 and truth["effects_missing"] == 0 and truth["effects_doubled"] == 0)
        notes = (
            f"{truth['events']} distinct events + {truth['redeliveries']} redeliveries "
            f"(200, no 2nd effect) + {truth['replays']} exact replays (409); recorded once "
            f"{truth['recorded_once']}, lost {truth['lost']}, doubled {truth['doubled']}; "
            f"effects (audit rows) {truth['effects']}, missing {truth['effects_missing']}, "
            f"doubled {truth['effects_doubled']}; the webhook path applies the event in its "
            "own transaction and enqueues no job"
        )
        out.append(_scenario(f"webhooks@{rate:g}/s", rate, result, batch, slo.WEBHOOKS,
                             exact, notes, {"ground_truth": truth}))
    return out


def mixed(stack: Stack, config: LoadConfig, say: Say, *, tenants: list | None = None,
          duration_s: float | None = None, rate: float | None = None, name: str = "mixed",
          objective: slo.Slo = slo.MIXED, seed: int = 7) -> Scenario:
    rate = rate or config.mixed_rate
    duration = duration_s or config.mixed_duration_s
    count = max(1, round(rate * duration))
    if tenants is None:
        tenants = mixed_tenants(stack, workload.creates_in(count), say)
    batch = workload.mixed_batch(stack.api_host, stack.api_port, tenants, count, seed)
    say(f"{name}: {count} requests at {rate:g}/s, open loop...")
    target = load.Target("mixed", stack.api_host, stack.api_port, b"")
    result = load.run(load.run_open_loop(
        target, batch.requests, rate=rate, connections=config.mixed_connections,
        watch_pids=_watch(stack), drain_timeout_s=120.0))
    kinds = {k: batch.kinds.count(k) for k in workload.MIXED_WEIGHTS}
    notes = "mix " + ", ".join(f"{k} {v}" for k, v in kinds.items() if v)
    return _scenario(name, rate, result, batch, objective, True, notes, {"mix": kinds})


def mixed_tenants(stack: Stack, creates: int, say: Say) -> list[workload.Tenant]:
    count = workload.tenants_for(creates) + 1
    say(f"mixed: {count} pro tenants, each with assessments to read and attach to...")
    tenants = workload.pro_tenants(stack.api_url, stack.superuser_url, stack.webhook_secret,
                                   count, "load-mixed")
    workload.seed_assessments(stack.api_url, tenants)
    return tenants


# --- queue flood ---------------------------------------------------------------------------


def relay_figures(url: str | None) -> dict[str, float]:
    """{"age": oldest pending job (s), "outbox_age", "queue_length"} from the relay's
    /metrics, or {} when it cannot be read."""
    if url is None:
        return {}
    try:
        text = httpx.get(url, timeout=10).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            queue = sample.labels.get("queue")
            if sample.name == alert.METRIC:
                out["age" if queue == "rampart" else "outbox_age"] = sample.value
            elif sample.name == "rampart_queue_length" and queue == "rampart":
                out["queue_length"] = sample.value
    return out


class Sampler(threading.Thread):
    """Every `every` seconds: the relay's queue figures, until stopped."""

    def __init__(self, url: str | None, every: float) -> None:
        super().__init__(daemon=True)
        self.url, self.every = url, every
        self.start_at = time.monotonic()
        self.samples: list[dict[str, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            figures = relay_figures(self.url)
            if figures:
                self.samples.append({"t": round(time.monotonic() - self.start_at, 2), **figures})
            self.stopped.wait(self.every)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def _flood_counts(superuser_url: str, tenant_ids: list[str]) -> dict[str, int]:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'completed'),"
            " count(*) FILTER (WHERE status = 'failed')"
            " FROM assessments WHERE tenant_id = ANY(%s::uuid[])", [tenant_ids]).fetchone()
    return {"assessments": row[0], "completed": row[1], "failed": row[2]}


def _flood_truth(superuser_url: str, tenant_ids: list[str]) -> dict:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        one = conn.execute
        jobs = dict(one(
            "SELECT status, count(*) FROM jobs WHERE tenant_id = ANY(%s::uuid[])"
            " GROUP BY status", [tenant_ids]).fetchall())
        doubled_jobs = one(
            "SELECT count(*) FROM (SELECT tenant_id, idempotency_key FROM jobs"
            " WHERE tenant_id = ANY(%s::uuid[]) GROUP BY 1, 2 HAVING count(*) > 1) d",
            [tenant_ids]).fetchone()[0]
        without_score_job = one(
            "SELECT count(*) FROM assessments a WHERE a.tenant_id = ANY(%s::uuid[])"
            " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.tenant_id = a.tenant_id"
            " AND j.idempotency_key = 'score:' || a.id)", [tenant_ids]).fetchone()[0]
        roadmaps = one(
            "SELECT count(*), count(DISTINCT assessment_id) FROM roadmaps"
            " WHERE tenant_id = ANY(%s::uuid[])", [tenant_ids]).fetchone()
        redelivered = one(
            "SELECT count(*) FROM jobs WHERE tenant_id = ANY(%s::uuid[]) AND attempts > 1",
            [tenant_ids]).fetchone()[0]
        span = one(
            "SELECT extract(epoch FROM max(updated_at) - min(created_at)),"
            " percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP"
            " (ORDER BY extract(epoch FROM updated_at - created_at))"
            " FROM assessments WHERE tenant_id = ANY(%s::uuid[]) AND status = 'completed'",
            [tenant_ids]).fetchone()
    return {
        "jobs": {k: int(v) for k, v in jobs.items()},
        "doubled_jobs": int(doubled_jobs),
        "assessments_without_score_job": int(without_score_job),
        "roadmaps": int(roadmaps[0]),
        "roadmaps_doubled": int(roadmaps[0] - roadmaps[1]),
        "jobs_delivered_more_than_once": int(redelivered),
        "accept_to_completed_span_s": float(span[0] or 0.0),
        "accept_to_completed_s": [round(float(v), 2) for v in (span[1] or [])],
    }


def queue_flood(stack: Stack, config: LoadConfig, say: Say) -> Scenario:
    jobs = config.flood_jobs
    per_tenant = int(workload.PLAN_QUOTA * workload.QUOTA_MARGIN)
    count_tenants = max(1, -(-jobs // per_tenant))
    say(f"queue flood: {count_tenants} pro tenants (at most {per_tenant} assessments each, "
        "inside the pro quota)...")
    tenants = workload.pro_tenants(stack.api_url, stack.superuser_url, stack.webhook_secret,
                                   count_tenants, "load-flood")
    tenant_ids = [t.account.tenant_id for t in tenants]
    body = assessment_body()
    batch = workload.Batch()
    for i in range(jobs):
        tenant = tenants[i % count_tenants]
        batch.add(load.build_request(
            "POST", stack.api_host, stack.api_port, "/api/v1/assessments", body=body,
            headers={**tenant.account.headers, "Content-Type": "application/json"}), 202, "create")
    rule = alert.oldest_age_rule()
    if config.alert_threshold_s is not None:
        rule = alert.AgeRule(config.alert_threshold_s, min(rule.for_s, config.alert_threshold_s),
                             rule.severity)
    sampler = Sampler(stack.relay_metrics_url, config.sample_every_s)
    sampler.start()
    say(f"queue flood: {jobs} assessments POSTed at {config.flood_rate:g}/s...")
    target = load.Target("POST /api/v1/assessments", stack.api_host, stack.api_port, b"")
    result = load.run(load.run_open_loop(
        target, batch.requests, rate=config.flood_rate, connections=config.flood_connections,
        watch_pids=_watch(stack), drain_timeout_s=120.0))
    accepted = sum(1 for s in result.status_of or [] if s == 202)
    say(f"queue flood: {accepted} accepted; waiting for the workers to drain them...")
    deadline = time.monotonic() + config.flood_timeout_s
    counts = _flood_counts(stack.superuser_url, tenant_ids)
    while counts["completed"] + counts["failed"] < counts["assessments"]:
        if time.monotonic() > deadline:
            break
        time.sleep(config.sample_every_s)
        counts = _flood_counts(stack.superuser_url, tenant_ids)
    drained_at = time.monotonic() - sampler.start_at
    # The alert resolves on the next samples after the drain.
    time.sleep(max(config.sample_every_s * 3, 5.0))
    sampler.stop()
    truth = _flood_truth(stack.superuser_url, tenant_ids)
    ages = [(s["t"], s["age"]) for s in sampler.samples if "age" in s]
    trace = alert.evaluate(ages, rule)
    drained = counts["completed"] + counts["failed"] == counts["assessments"]
    # The generator keeps statuses, not bodies: an acknowledged assessment is lost when the
    # database holds fewer than were acknowledged. More than acknowledged is normal under
    # overload: the client gave up waiting (drain timeout) on requests the API still
    # committed; they are counted, not lost.
    lost = max(0, accepted - counts["assessments"])
    unanswered_committed = max(0, counts["assessments"] - accepted)
    drain_rate = counts["completed"] / truth["accept_to_completed_span_s"] if (
        truth["accept_to_completed_span_s"] > 0) else 0.0
    crossed = trace.peak_age_s > rule.threshold_s
    if trace.fired_at is not None:
        alert_ok = trace.resolved_at is not None
        alert_note = (f"alert condition ({alert.METRIC} > {rule.threshold_s:g}s for "
                      f"{rule.for_s:g}s) fired at +{trace.fired_at:.0f}s, resolved at "
                      + (f"+{trace.resolved_at:.0f}s" if trace.resolved_at else "never"))
    else:
        alert_ok = not crossed or not drained
        alert_note = (f"alert condition ({alert.METRIC} > {rule.threshold_s:g}s for "
                      f"{rule.for_s:g}s) never held: peak oldest age {trace.peak_age_s:.0f}s"
                      " (the queue drained before the threshold; the alert was not exercised)")
    if not ages:
        alert_ok = False
        alert_note = f"no sample of {alert.METRIC} from the relay ({stack.relay_metrics_url})"
    exact = (drained and lost == 0 and truth["doubled_jobs"] == 0
             and truth["roadmaps_doubled"] == 0 and counts["failed"] == 0
             and truth["assessments_without_score_job"] == 0)
    notes = (
        f"{accepted} accepted (202), {counts['assessments']} in the DB ("
        f"{unanswered_committed} committed without an answer in time), {counts['completed']} "
        f"completed, {counts['failed']} failed, lost {lost}, doubled jobs "
        f"{truth['doubled_jobs']}, doubled roadmaps {truth['roadmaps_doubled']}; drained "
        + (f"in {truth['accept_to_completed_span_s']:.0f}s ({drain_rate:.1f} assessments/s)"
           if drained else f"NOT within {config.flood_timeout_s:g}s")
        + f"; {alert_note}"
    )
    scenario = _scenario(
        "queue-flood", config.flood_rate, result, batch, slo.QUEUE_FLOOD, exact and alert_ok,
        notes, {"ground_truth": {**counts, **truth, "accepted": int(accepted), "lost": lost,
                                 "committed_unanswered": unanswered_committed},
                "drain_rate_per_s": round(drain_rate, 2), "drained_at_s": round(drained_at, 1),
                "alert": {"threshold_s": rule.threshold_s, "for_s": rule.for_s,
                          "fired_at_s": trace.fired_at, "resolved_at_s": trace.resolved_at,
                          "peak_age_s": round(trace.peak_age_s, 1)},
                "samples": sampler.samples[:: max(1, len(sampler.samples) // 200)]})
    return scenario
