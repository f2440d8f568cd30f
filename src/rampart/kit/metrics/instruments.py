"""Prometheus metrics: how any module declares one, and the kit's own (names are a contract).

The kit gives the mechanism, each domain its counters: a domain declares its metrics in its
own `metrics.py` with `counter`, `histogram` and `gauge` from here, which hold the house
rules in one place (docs/observability.md): the `rampart_` prefix, base units (`_total`
for counters, `_seconds` or `_bytes` for histograms), and an explicit multiprocess mode for
every gauge (kit/metrics/exposition.py says why). Labels stay bounded: a route template, a
provider, an outcome; never a raw path or an id.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

_PREFIX = "rampart_"


def _named(name: str, *suffixes: str) -> str:
    if not name.startswith(_PREFIX) or (suffixes and not name.endswith(suffixes)):
        wanted = f"{_PREFIX}...{'|'.join(suffixes)}" if suffixes else f"{_PREFIX}..."
        raise ValueError(f"metric {name!r}: the house naming is {wanted}")
    return name


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    return Counter(_named(name, "_total"), documentation, labels)


def histogram(
    name: str, documentation: str, labels: Sequence[str] = (), *, buckets: Sequence[float]
) -> Histogram:
    return Histogram(_named(name, "_seconds", "_bytes"), documentation, labels, buckets=buckets)


def gauge(
    name: str, documentation: str, labels: Sequence[str] = (), *, multiprocess_mode: str
) -> Gauge:
    return Gauge(_named(name), documentation, labels, multiprocess_mode=multiprocess_mode)


HTTP_REQUESTS = counter(
    "rampart_http_requests_total", "HTTP requests served.", ["method", "route", "status"]
)
HTTP_DURATION = histogram(
    "rampart_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
)
HTTP_ERRORS = counter(
    "rampart_http_errors_total",
    "Error envelopes answered, by HTTP status and the envelope's error code: 5xx by cause "
    "(db_unavailable, read_only, internal_error, ...), 4xx by why the request was refused.",
    ["status", "code"],
)
JOB_DURATION = histogram(
    "rampart_job_duration_seconds",
    "Background job run time.",
    ["type"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
OUTBOX_PUBLISHED = counter(
    "rampart_outbox_published_total", "Outbox rows published to the broker.", ["task"]
)
JOBS_QUARANTINED = counter(
    "rampart_jobs_quarantined_total", "Jobs moved to quarantine (dead letters).", ["type"]
)
JOB_RETRIES = counter("rampart_job_retries_total", "Job retries scheduled.", ["type"])
JOBS_REPUBLISHED = counter(
    "rampart_jobs_republished_total",
    "Stale jobs (pending/processing, published, unchanged for JOB_STALE_AFTER_SECONDS) "
    "published again by the relay's sweeper: their broker message was lost.",
    ["type"],
)

# --- circuit breakers (kit/resilience/breaker.py) ---------------------------------------------
CIRCUIT_BREAKER_STATE = gauge(
    "rampart_circuit_breaker_state",
    "Circuit breaker state as last seen by this process: 0 closed, 1 half-open, 2 open.",
    ["provider"],
    multiprocess_mode="mostrecent",
)

# --- rate limits -----------------------------------------------------------------------------
RATE_LIMITED = counter(
    "rampart_rate_limited_total",
    "Requests refused with 429 by a rate limit (default, login_ip, login_ip_email, signup_ip, "
    "assessments, uploads).",
    ["limit"],
)
RATE_LIMIT_FAIL_OPEN = counter(
    "rampart_rate_limit_fail_open_total",
    "Rate-limit checks that let a request through because Redis could not be asked.",
)

# --- database, build (docs/observability.md) -------------------------------------------------
# Gauges set by a process carry an explicit multiprocess mode: under `rampart api|worker`
# every process writes its own file and the service's /metrics aggregates them
# (kit/metrics/exposition.py). The jobs, queue and pg_stat_activity gauges are not here: the
# relay computes them at scrape time (kit/jobs/relay_gauges.py), once for the whole system. Nor
# are the worker's consumer-progress gauges (rampart_worker_*: alive but not consuming?):
# its main process computes them at scrape time from Celery's consumer
# (kit/jobs/liveness.py).
DB_QUERY_DURATION = histogram(
    "rampart_db_query_duration_seconds",
    "Duration of one SQL statement, by operation (select, insert, update, delete, other).",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DB_SLOW_QUERIES = counter(
    "rampart_db_slow_queries_total",
    "SQL statements slower than DB_SLOW_QUERY_MS (each one is also logged as db_slow_query).",
)
DB_TRANSACTION_ERRORS = counter(
    "rampart_db_transaction_errors_total",
    "Failed or rolled-back database work by reason: rollback, deadlock, "
    "serialization_failure, lock_timeout, statement_timeout, integrity, connection, other.",
    ["reason"],
)
DB_POOL_IN_USE = gauge(
    "rampart_db_pool_in_use",
    "Connections checked out of this service's pools, summed over processes.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = gauge(
    "rampart_db_pool_size",
    "Most connections this service's pools may hold: pool size + max overflow, summed over "
    "its live processes.",
    multiprocess_mode="livesum",
)
DB_ADMISSION_WAITING = gauge(
    "rampart_db_admission_waiting",
    "Transactions waiting for a pooled connection (more in flight than the pool has "
    "connections), summed over live processes.",
    multiprocess_mode="livesum",
)
BUILD_INFO = gauge(
    "rampart_build_info",
    "Always 1; the labels say which version and commit this service runs.",
    ["version", "commit"],
    multiprocess_mode="max",
)

# --- browser sessions and CSRF ----------------------------------------------------------------
SESSION_EVENTS = counter(
    "rampart_session_events_total",
    "Cookie session events: created, revoked (logout), store_unavailable (Redis could not "
    "be asked: the request got 503).",
    ["event"],
)
CSRF_FAILURES = counter(
    "rampart_csrf_failures_total",
    "Cookie-authenticated writes refused with 403 csrf_failed, by reason: missing, "
    "cookie_mismatch, bad_signature.",
    ["reason"],
)
